"""Docs generated from data: the committed file is what its generator makes of the data."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_comparison", DOCS / "gen_comparison.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_comparison", module)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / "data" / "comparison.json").read_text("utf-8"))
    return loaded


def test_generated_comparison_is_current() -> None:
    committed = (DOCS / "generated" / "comparison.md").read_text(encoding="utf-8")
    assert committed == gen.generate(), "stale: run python docs/gen_comparison.py"


def test_check_mode_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert gen.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_landing_page_includes_the_generated_comparison() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert '--8<-- "docs/generated/comparison.md"' in index
    assert "| Feature | resilio |" not in index  # no hand-written copy to drift


def test_every_row_has_every_library(data: dict[str, Any]) -> None:
    libraries = data["libraries"]
    for row in data["rows"]:
        assert set(row) == {"feature", *libraries}, row["feature"]


@pytest.mark.parametrize(
    "feature",
    [
        "State shared across processes and hosts",
        "Per-key limits (per client, per route) from one definition",
        "Composable stop conditions",
        "Composable wait strategies",
        "Fallback value instead of an error",
        "Hedged requests (a second try before the first has failed)",
    ],
)
def test_rows_where_others_are_ahead_are_kept(data: dict[str, Any], feature: str) -> None:
    rows = {row["feature"]: row for row in data["rows"]}
    assert feature in rows
    text = gen.generate()
    ahead = text.split(f"#### {data['ahead_title']}")[1]
    if gen.verdict(rows[feature]["resilio"]) != "yes":
        assert f"| {feature} |" in ahead


def test_a_row_moves_up_once_resilio_has_the_feature(data: dict[str, Any]) -> None:
    changed = copy.deepcopy(data)
    row = next(r for r in changed["rows"] if r["feature"].startswith("Hedged"))
    row["resilio"] = "yes"
    text = gen.render(changed)
    level, ahead = text.split(f"#### {data['ahead_title']}")
    assert f"| {row['feature']} | yes |" in level
    assert row["feature"] not in ahead


def test_rows_split_by_resilio_verdict(data: dict[str, Any]) -> None:
    level, ahead = gen.render(data).split(f"#### {data['ahead_title']}")
    for row in data["rows"]:
        where = level if gen.verdict(row["resilio"]) == "yes" else ahead
        assert f"| {row['feature']} |" in where


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rows"][0].update(resilio="maybe"), "must start with one of"),
        (lambda d: d["rows"][0].pop("limits"), "missing \\['limits'\\]"),
        (lambda d: d["rows"][0].update(extra="yes"), "unknown \\['extra'\\]"),
        (lambda d: d["rows"][0].update(tenacity="no | yes"), "'\\|' outside `code`"),
        (lambda d: d["rows"].append(dict(d["rows"][0])), "distinct 'feature'"),
        (lambda d: d.update(libraries=d["libraries"][1:]), "must start with 'resilio'"),
    ],
)
def test_bad_data_is_refused(data: dict[str, Any], change: Any, message: str) -> None:
    changed = copy.deepcopy(data)
    change(changed)
    with pytest.raises(ValueError, match=message):
        gen.render(changed)


def test_a_pipe_inside_code_is_allowed(data: dict[str, Any]) -> None:
    changed = copy.deepcopy(data)
    changed["rows"][0]["tenacity"] = "yes: `a | b`"
    assert "`a | b`" in gen.render(changed)


def test_stale_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "comparison.md"
    stale.write_text("| Feature | resilio |\n", encoding="utf-8")
    monkeypatch.setattr(gen, "OUTPUT", stale)
    assert gen.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert gen.main([]) == 0
    assert stale.read_text(encoding="utf-8") == gen.generate()


def _load_benchmark_runner() -> ModuleType:
    path = DOCS.parent / "benchmarks" / "run.py"
    spec = importlib.util.spec_from_file_location("benchmarks_run", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_benchmark_runner()
harness = sys.modules["_harness"]


def test_benchmarks_page_explains_every_group() -> None:
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for group in runner.GROUPS:
        assert f"(`{group}`)" in page, group


def _result() -> Any:
    result = harness.Result(
        title="Sync: a call",
        per_call={"baseline": 1e-7, "resilio x": 2e-7, "peer y": 5e-7},
        added={"baseline": 0.0, "resilio x": 1e-7, "peer y": 4e-7},
        added_runs={
            "baseline": [0.0, 0.0, 0.0],
            "resilio x": [1e-7, 1.2e-7, 0.9e-7],
            "peer y": [4e-7, 3e-7, 4.5e-7],
        },
    )
    targets = [
        harness.Target("resilio x", "peer y", 0.3),
        harness.Target("resilio x", "peer y", 0.2),
    ]
    return harness.check(result, targets)


def test_targets_carry_the_spread_of_per_repeat_ratios() -> None:
    result = _result()
    assert result.ratio_runs("resilio x", "peer y") == pytest.approx([0.25, 0.4, 0.2])
    low, q1, q3, high = result.spreads[0]
    assert (low, high) == pytest.approx((0.2, 0.4))
    assert low <= q1 <= 0.25 <= q3 <= high
    assert result.spreads[1] == result.spreads[0]
    assert [ok for _, _, ok in result.targets] == [True, False]


def test_report_names_machine_spread_and_verdicts() -> None:
    text = runner._markdown("Python 3.x, Some CPU", ["resilio 0"], {"g": [_result()]}, {})
    assert "Measured on Python 3.x, Some CPU." in text
    times, dash = "\u00d7", "\u2013"  # the report's multiplication sign and en dash
    assert f"| resilio x | 100 ns | 90{dash}120 | 1.00{times} |" in text
    q1, q3 = _result().spreads[0][1:3]
    middle = f"{q1:.3f}{dash}{q3:.3f}{times}"
    assert f"| 0.250{times} | {middle} | 0.200{dash}0.400{times} (3) | met |" in text
    assert f"| 0.250{times} | {middle} | 0.200{dash}0.400{times} (3) | **missed** |" in text


def test_cpu_model_is_named() -> None:
    model = runner._cpu_model()
    assert model
    assert model != "unknown CPU" or not Path("/proc/cpuinfo").exists()
