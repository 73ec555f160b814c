"""``python -m bench [NAME ...]``: run the named benchmarks (all by default), print one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from ._harness import Report


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}",
              file=sys.stderr)
        return 2
    report = Report()
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.bench_{name}").run(report)
    print()
    print(report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
