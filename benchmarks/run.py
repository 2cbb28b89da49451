"""Run resilio's benchmarks side by side with its peers.

Usage: ``python benchmarks/run.py breaker [--quick] [--report DIR]`` (``all`` runs
every group). ``--report DIR`` also writes ``DIR/benchmarks.md`` (a markdown fragment
the docs include) and ``DIR/benchmarks.png`` (a bar chart of added cost per call).
The peers come with the ``bench`` extra: ``pip install -e '.[bench]'``. Nothing is
installed by this script. ``--quick`` runs a few short repeats, to check that the
benchmarks still work, not to measure.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result

GROUPS = {
    "breaker": "bench_breaker",
    "buckets": "bench_buckets",
    "retry": "bench_retry",
    "pool": "bench_pool",
    "sessions": "bench_sessions",
    "compose": "bench_compose",
    "overhead": "bench_overhead",
    "fallback": "bench_fallback",
    "keyed": "bench_keyed",
}
PEERS = [
    "pybreaker",
    "circuitbreaker",
    "aiobreaker",
    "purgatory",
    "aiolimiter",
    "limits",
    "pyrate-limiter",
    "tenacity",
    "backoff",
    "stamina",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=[*GROUPS, "all"])
    parser.add_argument("--quick", action="store_true", help="smoke run, not a measurement")
    parser.add_argument(
        "--report", metavar="DIR", type=Path, help="write DIR/benchmarks.md and .png"
    )
    args = parser.parse_args(argv)
    versions = []
    for name in ["resilio-primitives", *PEERS]:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    system = (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.machine()}"
    )
    print(f"# resilio benchmarks — {system}")
    print("Versions: " + ", ".join(versions))
    groups = list(GROUPS) if args.group == "all" else [args.group]
    outputs: dict[str, Any] = {}
    sections: dict[str, list[str]] = {}
    for group in groups:
        module = __import__(GROUPS[group])
        outputs[group] = module.main(quick=args.quick)
        sections[group] = list(getattr(module, "SECTIONS", []))
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        md = args.report / "benchmarks.md"
        md.write_text(_markdown(system, versions, outputs, sections), encoding="utf-8")
        results = [r for out in outputs.values() if isinstance(out, list) for r in out]
        png = args.report / "benchmarks.png"
        if results:
            _chart(results, png)
        print(f"\nreport: {md}" + (f", {png}" if results else ""))
    return 0


def _cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


def _text_section(text: str) -> str:
    """A printed section as markdown: tables kept, other lines as paragraphs."""
    out: list[str] = []
    text = text.replace("MISSED", "**missed**")  # as in the tables
    for line in text.strip("\n").splitlines():
        if line.startswith("|"):
            out.append(line)
        elif line.strip():
            if out and out[-1]:
                out.append("")
            out.extend([line, ""])
        elif out and out[-1]:
            out.append("")
    return "\n".join(out).strip("\n") + "\n"


def _result_table(result: Result) -> str:
    resilio = [name for name in result.added if name.startswith("resilio")]
    lines = [
        f"### {result.title}",
        "",
        f"| case | added per call | lowest–highest | "
        f"{' | '.join(f'{r} ÷ case' for r in resilio)} |",
        f"|---|---:|---:|{'---:|' * len(resilio)}",
    ]
    for name, added in result.added.items():
        ratios = " | ".join(
            f"{result.added[r] / added:.2f}×" if added > 0 else "—" for r in resilio
        )
        runs = result.added_runs.get(name, [])
        spread = f"{min(runs) * 1e9:,.0f}–{max(runs) * 1e9:,.0f}" if runs and added > 0 else "—"
        lines.append(f"| {name} | {_ns(added)} | {spread} | {ratios} |")
    return "\n".join(lines) + "\n"


def _markdown(
    system: str,
    versions: list[str],
    outputs: dict[str, Any],
    sections: dict[str, list[str]],
) -> str:
    parts = [
        f"Measured on {system}.\n\nVersions: {', '.join(versions)}.\n",
        "Added cost per call is the case's time minus the baseline's in the same repeat "
        "(median over repeats; lowest–highest is the range over the repeats, in ns); each "
        "ratio is resilio's added cost over the case's, so below 1× means resilio adds "
        "less.\n",
    ]
    targets: list[tuple[str, tuple[Any, float, bool], tuple[float, ...], int]] = []
    for group, out in outputs.items():
        if isinstance(out, list):
            parts.append(f"## {group}\n")
            for result in out:
                parts.append(_result_table(result))
                repeats = len(next(iter(result.added_runs.values()), []))
                targets.extend(
                    (result.title, t, s, repeats)
                    for t, s in zip(result.targets, result.spreads, strict=True)
                )
        elif group == "pool":
            parts.append(_pool_table(out))
        elif group == "sessions":
            parts.append(_sessions_table(out))
        parts.extend(_text_section(text) for text in sections.get(group, []))
    if targets:
        rows = [
            "## Targets",
            "",
            "<!-- --8<-- [start:targets] -->",  # a section the landing page includes
            "| benchmark | target | measured | middle half of the repeats | all repeats | |",
            "|---|---|---:|---:|---:|---|",
        ]
        for title, (target, ratio, ok), (low, q1, q3, high), repeats in targets:
            rows.append(
                f"| {title} | {target.resilio} ≤ {target.ratio:g}× {target.peer} "
                f"| {ratio:.3f}× | {q1:.3f}–{q3:.3f}× | {low:.3f}–{high:.3f}× ({repeats}) "
                f"| {'met' if ok else '**missed**'} |"
            )
        rows.append("<!-- --8<-- [end:targets] -->")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _pool_table(out: dict[str, Any]) -> str:
    rates, heaps = out["rates"], out["heaps"]
    ranges = out.get("ranges", {})
    raw = rates.get("raw: 64 workers on asyncio.Queue(128)")
    rows = [
        "## pool",
        "",
        f"{out.get('n', 100_000):,} trivial tasks, at most 64 in flight (asyncio); median "
        f"of {out.get('repeats', 1)} interleaved runs, lowest–highest beside it.",
        "",
        "| approach | tasks/s | lowest–highest | ÷ raw queue | peak heap |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rate in rates.items():
        versus = f"{rate / raw:.2f}×" if raw else "—"
        low, high = ranges.get(name, (rate, rate))
        rows.append(
            f"| {name} | {rate:,.0f} | {low:,.0f}–{high:,.0f} | {versus} | {heaps[name]:.1f} MB |"
        )
    trio_map, trio_submit = out["trio"]
    rows += [
        "",
        f"trio: WorkerPool.map {trio_map:,.0f} tasks/s, "
        f"WorkerPool.submit {trio_submit:,.0f} tasks/s.",
    ]
    for target in out.get("targets", []):
        rows += ["", target.replace("MISSED", "**missed**")]
    return "\n".join(rows) + "\n"


def _sessions_table(out: dict[str, Any]) -> str:
    rows = [
        "## sessions",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| create | {out['create'] * 1e6:.2f} µs per call |",
        f"| touch | {out['touch'] * 1e6:.2f} µs per call |",
        f"| heap per session beyond its data | {out['bytes']:.0f} bytes |",
        f"| expiry lateness p50 | {out['p50'] * 1e3:.2f} ms |",
        f"| expiry lateness p99 | {out['p99'] * 1e3:.2f} ms |",
    ]
    return "\n".join(rows) + "\n"


def _chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [len(r.added) - 1 for r in results]  # no bar for the baseline
    fig, axes = plt.subplots(
        len(results),
        1,
        figsize=(7, 0.25 * sum(heights) + 0.6 * len(results) + 0.5),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, result in zip(axes[:, 0], results, strict=True):
        # the baseline's added cost is 0 by construction: it has no bar
        cases = [(n, a * 1e9) for n, a in result.added.items() if a > 0]
        names = [n for n, _ in cases][::-1]
        values = [v for _, v in cases][::-1]
        colours = ["tab:blue" if n.startswith("resilio") else "0.7" for n in names]
        ax.barh(names, values, color=colours)
        ax.set_title(result.title, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=7)
        ax.set_xlim(0, max(values, default=1) * 1.15)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel("added ns per call (lower is better)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    try:  # a palette PNG is a third of the size
        from PIL import Image

        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=64)
        small.save(path, optimize=True)
    except ImportError:
        pass
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
