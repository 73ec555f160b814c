"""``python -m bench [--quick] [--list] [--markdown] [NAME ...]``: run benchmarks, print one table.

- ``NAME ...``: the modules to run (``actors``, ``durable``, ...; all by default).
- ``--quick``: only the most telling case of each module, at a tenth of the size and three
  rounds (``BENCH_SCALE`` and ``BENCH_REPEATS`` still override): under two minutes on a 2-core
  machine, for a first look before and after a change. Full figures need the full run.
- ``--list``: print the modules (with ``--quick``, the quick cases) and run nothing.
- ``--markdown``: print the final table as Markdown, as docs/performance.md shows it.

Every case with a peer alternates ours and the peer round by round in this one process and
prints the median of the paired ratios and their min-max.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from ._harness import Report, use_quick_settings


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--quick", action="store_true",
                        help="the most telling case of each, smaller: under two minutes")
    parser.add_argument("--list", action="store_true", help="list the cases, run nothing")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}",
              file=sys.stderr)
        return 2
    modules = {name: importlib.import_module(f"bench.bench_{name}") for name in names}
    if args.list:
        for name, module in modules.items():
            print(f"{name}: {module.QUICK}" if args.quick else name)
        return 0
    if args.quick:
        use_quick_settings()
    report = Report()
    for name, module in modules.items():
        print(f"== {name}" + (f" (quick: {module.QUICK})" if args.quick else ""), flush=True)
        module.run(report, quick=args.quick)
    print()
    print(report.markdown() if args.markdown else report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
