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
