"""Run every example in this directory and fail if any of them fails.

Each example runs in a fresh interpreter (the one running this script), with
warnings turned into errors and a time limit, so an example that breaks, warns or
hangs fails CI. Modules whose names start with ``_`` are helpers the examples import,
not examples. The README cannot include files, so it copies some example sections:
each copy follows a ``<!-- examples/NAME.py:SECTION -->`` line, and this script fails
if it differs from the section, so the two cannot drift apart. In the same way, a
``text`` block that follows an ``<!-- output of examples/NAME.py -->`` line in the
README or a docs page must be exactly what the example prints.
Usage: ``python examples/run_all.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
PAGES = [README, *sorted((HERE.parent / "docs").rglob("*.md"))]
TIME_LIMIT = 30.0  # seconds; each example is meant to finish in well under 2

# The section markers of pymdownx.snippets, which the docs use to include sections.
MARKER = re.compile(r"-+8<-+[ \t]+\[[ \t]*(start|end)[ \t]*:[ \t]*([a-z][-_0-9a-z]*)[ \t]*\]")
COPY = re.compile(
    r"^<!-- (examples/[\w.]+\.py):([a-z][-_0-9a-z]*) -->\n```\w*\n(.*?)^```$", re.M | re.S
)
OUTPUT = re.compile(r"^<!-- output of examples/([\w.]+\.py) -->\n```text\n(.*?)^```$", re.M | re.S)


def section(path: Path, name: str) -> str | None:
    """The lines of ``path`` between the markers of section ``name``, as the docs show them."""
    lines: list[str] = []
    inside = False
    for line in path.read_text().splitlines():
        marker = MARKER.search(line)
        if marker is None:
            if inside:
                lines.append(line)
        elif marker[2] == name:
            if marker[1] == "end":
                return "\n".join(lines) + "\n"
            inside = True
    return None


def readme_drift() -> list[str]:
    """Every README copy of an example section that differs from the section."""
    problems: list[str] = []
    copies = COPY.findall(README.read_text())
    if not copies:
        problems.append(f"{README.name}: no copy of an example section found")
    for file, name, copy in copies:
        original = section(HERE.parent / file, name)
        if original is None:
            problems.append(f"{README.name}: {file} has no section {name!r}")
        elif copy != original:
            problems.append(f"{README.name}: its copy of {file}:{name} differs from the file")
    return problems


def output_drift(outputs: dict[str, str]) -> list[str]:
    """Every output shown in the README or the docs that differs from the example's."""
    problems: list[str] = []
    for page in PAGES:
        for name, shown in OUTPUT.findall(page.read_text()):
            if name not in outputs:
                problems.append(f"{page.name}: shows the output of {name}, which did not run")
            elif shown != outputs[name]:
                problems.append(f"{page.name}: the output it shows of {name} is not what it prints")
    return problems


def main() -> int:
    examples = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    drift = readme_drift()
    for problem in drift:
        print(f"FAIL {problem}")
    if not drift:
        print(f"ok   {README.name}: its copies of example sections match the examples")
    failed: list[str] = []
    outputs: dict[str, str] = {}
    for path in examples:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-W", "error", str(path)],
                capture_output=True,
                text=True,
                timeout=TIME_LIMIT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"FAIL {path.name}: still running after {TIME_LIMIT:g}s")
            failed.append(path.name)
            continue
        elapsed = time.perf_counter() - start
        if done.returncode == 0:
            print(f"ok   {path.name} ({elapsed:.2f}s)")
            outputs[path.name] = done.stdout
        else:
            print(f"FAIL {path.name}: exit code {done.returncode} ({elapsed:.2f}s)")
            print(done.stdout, end="")
            print(done.stderr, end="", file=sys.stderr)
            failed.append(path.name)
    if not examples:
        print("no examples found")
        return 1
    print(f"{len(examples) - len(failed)} of {len(examples)} examples passed")
    shown = output_drift(outputs)
    for problem in shown:
        print(f"FAIL {problem}")
    return 1 if failed or drift or shown else 0


if __name__ == "__main__":
    sys.exit(main())
