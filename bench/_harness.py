"""The harness every benchmark module plugs into: repeat, take medians, print one table.

A benchmark module ``bench/bench_NAME.py`` defines ``run(report: Report) -> None``; it measures
its cases with ``measure`` (or its own loop) and adds rows with ``report.row``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def scaled(n: int) -> int:
    """``n`` times ``BENCH_SCALE`` (at least 1): a quick run sets ``BENCH_SCALE=0.1``."""
    return max(1, int(n * SCALE))


def measure(work: Callable[[], float | None], *, repeats: int = REPEATS) -> float:
    """Median over ``repeats`` runs of ``work``.

    ``work`` returns the figure of one run (say, events per second), or None to have the harness
    time it, in which case the median is in seconds.
    """
    figures = []
    for _ in range(repeats):
        started = time.perf_counter()
        figure = work()
        elapsed = time.perf_counter() - started
        figures.append(elapsed if figure is None else figure)
    return statistics.median(figures)


@attrs.frozen
class Row:
    benchmark: str
    case: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    target: str | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.peer_value is None or self.peer_value == 0 or self.value == 0:
            return None
        if self.higher_is_better:
            return self.value / self.peer_value
        return self.peer_value / self.value


@attrs.define
class Report:
    rows: list[Row] = attrs.Factory(list)

    def row(self, benchmark: str, case: str, value: float, unit: str, *,
            peer: str | None = None, peer_value: float | None = None,
            target: str | None = None, higher_is_better: bool = True) -> None:
        """Add a median; with a peer, the table prints ours/peer (or peer/ours if lower wins)."""
        self.rows.append(Row(benchmark, case, value, unit, peer, peer_value, target,
                             higher_is_better))
        print(f"  {benchmark}: {case}: {_fmt(value)} {unit}"
              + (f" (peer {peer}: {_fmt(peer_value)})" if peer_value is not None else ""),
              flush=True)

    def table(self) -> str:
        header = ("benchmark", "case", "median", "unit", "peer", "peer median", "ratio", "target")
        lines = [header]
        for r in self.rows:
            ratio = r.ratio
            lines.append((r.benchmark, r.case, _fmt(r.value), r.unit, r.peer or "",
                          "" if r.peer_value is None else _fmt(r.peer_value),
                          "" if ratio is None else f"{ratio:.2f}x", r.target or ""))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for n, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def paired(ours: Callable[[], float], peer: Callable[[], float], *,
           repeats: int = REPEATS) -> tuple[float, float]:
    """Medians of ``ours`` and ``peer``, their repeats interleaved so load drifts hit both."""
    figures: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        figures[0].append(ours())
        figures[1].append(peer())
    return statistics.median(figures[0]), statistics.median(figures[1])


class Files:
    """Fresh database paths in one temporary directory, removed by ``remove()``."""

    def __init__(self, prefix: str = "bench-") -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.count = 0

    def new(self) -> Path:
        self.count += 1
        return self.root / f"db{self.count}.db"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
