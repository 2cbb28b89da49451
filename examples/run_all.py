"""Run every example in this directory and fail if any of them fails.

Each example runs in a fresh interpreter (the one running this script), with
warnings turned into errors and a time limit, so an example that breaks, warns or
hangs fails CI. Usage: ``python examples/run_all.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIME_LIMIT = 30.0  # seconds; each example is meant to finish in well under 2


def main() -> int:
    examples = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    failed: list[str] = []
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
        else:
            print(f"FAIL {path.name}: exit code {done.returncode} ({elapsed:.2f}s)")
            print(done.stdout, end="")
            print(done.stderr, end="", file=sys.stderr)
            failed.append(path.name)
    if not examples:
        print("no examples found")
        return 1
    print(f"{len(examples) - len(failed)} of {len(examples)} examples passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
