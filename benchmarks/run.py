"""Run resilio's benchmarks side by side with its peers.

Usage: ``python benchmarks/run.py breaker [--quick]`` (``all`` runs every group).
The peers come with the ``bench`` extra: ``pip install -e '.[bench]'``. Nothing is
installed by this script. ``--quick`` runs a few short repeats, to check that the
benchmarks still work, not to measure.
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

GROUPS = {
    "breaker": "bench_breaker",
    "buckets": "bench_buckets",
    "retry": "bench_retry",
    "pool": "bench_pool",
    "sessions": "bench_sessions",
    "compose": "bench_compose",
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
    args = parser.parse_args(argv)
    versions = []
    for name in ["resilio", *PEERS]:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    print(f"# resilio benchmarks — Python {platform.python_version()}, {platform.machine()}")
    print("Versions: " + ", ".join(versions))
    groups = list(GROUPS) if args.group == "all" else [args.group]
    for group in groups:
        module = __import__(GROUPS[group])
        module.main(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
