"""The harness every benchmark module plugs into: interleaved rounds, paired ratios, one table.

A benchmark module ``bench/bench_NAME.py`` defines ``QUICK`` (a line naming the cases it runs
under ``--quick``) and ``run(report: Report, *, quick: bool) -> None``. A case with a peer runs
through ``paired`` (or ``rounds`` for several peers at once): ours and the peer alternate round
by round in one process, so drift of a shared machine hits both, and the row carries the ratio
of each round. The table prints the median ratio and its min-max over the rounds.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs


@attrs.define
class Settings:
    """Rounds per case and the size factor; ``--quick`` lowers both."""

    repeats: int = int(os.environ.get("BENCH_REPEATS", "5"))
    scale: float = float(os.environ.get("BENCH_SCALE", "1"))


SETTINGS = Settings()


def use_quick_settings() -> None:
    """Three rounds at a tenth of the size, unless the environment sets them."""
    SETTINGS.repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    SETTINGS.scale = float(os.environ.get("BENCH_SCALE", "0.1"))


def scaled(n: int) -> int:
    """``n`` times the scale (at least 1): ``BENCH_SCALE=0.1`` or ``--quick`` make it small."""
    return max(1, int(n * SETTINGS.scale))


def measure(work: Callable[[], float | None], *, repeats: int | None = None) -> float:
    """Median over ``repeats`` runs of ``work``, for a case without a peer.

    ``work`` returns the figure of one run (say, events per second), or None to have the harness
    time it, in which case the median is in seconds.
    """
    figures = []
    for _ in range(repeats or SETTINGS.repeats):
        started = time.perf_counter()
        figure = work()
        elapsed = time.perf_counter() - started
        figures.append(elapsed if figure is None else figure)
    return statistics.median(figures)


def rounds(cases: Mapping[str, Callable[[], float]], *,
           repeats: int | None = None) -> dict[str, list[float]]:
    """Run every case once per round, ``repeats`` rounds; the figures of each case, by round.

    The order rotates each round (with two cases: ours first, then the peer first, ...), so
    neither side always runs on a machine warmed or tired by the other.
    """
    names = list(cases)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for n in range(repeats or SETTINGS.repeats):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            figures[name].append(cases[name]())
    return figures


@attrs.frozen
class Paired:
    """Figures of ours and a peer from the same rounds, and the ratio of each round."""

    ours: tuple[float, ...]
    peer: tuple[float, ...]
    higher_is_better: bool = True

    @classmethod
    def of(cls, figures: Mapping[str, Sequence[float]], ours: str, peer: str, *,
           higher_is_better: bool = True) -> Paired:
        """The pair ``ours``/``peer`` out of ``rounds``' figures."""
        return cls(tuple(figures[ours]), tuple(figures[peer]), higher_is_better)

    @property
    def ratios(self) -> list[float]:
        """Ours over the peer in each round (the peer over ours when lower is better)."""
        pairs = zip(self.ours, self.peer, strict=True)
        if self.higher_is_better:
            return [a / b if b else float("inf") for a, b in pairs]
        return [b / a if a else float("inf") for a, b in pairs]

    @property
    def median(self) -> float:
        return statistics.median(self.ours)

    @property
    def peer_median(self) -> float:
        return statistics.median(self.peer)


def paired(ours: Callable[[], float], peer: Callable[[], float], *,
           higher_is_better: bool = True, repeats: int | None = None) -> Paired:
    """Ours and the peer in alternating rounds (see ``rounds``)."""
    figures = rounds({"ours": ours, "peer": peer}, repeats=repeats)
    return Paired.of(figures, "ours", "peer", higher_is_better=higher_is_better)


@attrs.frozen
class Row:
    benchmark: str
    case: str
    value: float
    unit: str
    peer: str | None = None
    pair: Paired | None = None
    target: str | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.pair is None else statistics.median(self.pair.ratios)

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        if self.pair is None:
            return None
        ratios = self.pair.ratios
        return min(ratios), max(ratios)

    @property
    def met(self) -> bool | None:
        """Whether the target holds for the medians; None when it cannot be judged."""
        return judge(self.target, self.value, self.ratio) if self.target else None


_CLAUSE = re.compile(r"^(>=|<=|==|<|>)\s*([\d.,]+)\s*(k|M|KB)?\s*(x)?")
_MULTIPLIERS = {None: 1.0, "k": 1e3, "M": 1e6, "KB": 1024.0}


def judge(target: str, value: float, ratio: float | None) -> bool | None:
    """Check ``target`` (clauses such as ``>= 0.8x``, ``< 10 ms``, joined by ``and``).

    A clause ending in ``x`` is about the median ratio, any other about the median value in the
    row's unit (``k``, ``M`` and ``KB`` multiply). Anything else (``~1x``) is not judged.
    """
    verdict = True
    for clause in target.split(" and "):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            return None
        op, number, multiplier, is_ratio = match.groups()
        limit = float(number.replace(",", "")) * _MULTIPLIERS[multiplier]
        figure = ratio if is_ratio else value
        if figure is None:
            return None
        verdict = verdict and {">=": figure >= limit, "<=": figure <= limit, "==": figure == limit,
                               "<": figure < limit, ">": figure > limit}[op]
    return verdict


_HEADER = ("benchmark", "case", "median", "unit", "peer", "peer median", "ratio",
           "ratio min-max", "rounds", "target", "met")


@attrs.define
class Report:
    rows: list[Row] = attrs.Factory(list)

    def row(self, benchmark: str, case: str, value: float | Paired, unit: str, *,
            peer: str | None = None, target: str | None = None) -> None:
        """Add a row: a plain median, or a ``Paired`` measurement against ``peer``.

        Raises:
            ValueError: ``peer`` named without a ``Paired`` measurement, or the reverse.
        """
        pair = value if isinstance(value, Paired) else None
        if (peer is None) != (pair is None):
            raise ValueError(f"row {case!r}: a peer needs a Paired measurement and vice versa; "
                             "measure the two sides with paired() or rounds()")
        median = value.median if isinstance(value, Paired) else value
        row = Row(benchmark, case, median, unit, peer, pair, target)
        self.rows.append(row)
        cells = dict(zip(_HEADER, _cells(row), strict=True))
        print(f"  {benchmark}: {case}: {cells['median']} {unit}"
              + (f" (peer {peer}: {cells['peer median']}; ratio {cells['ratio']}, "
                 f"{cells['ratio min-max']} over {cells['rounds']} rounds)" if pair else ""),
              flush=True)

    def table(self) -> str:
        """The rows as aligned plain text."""
        lines = [_HEADER, *(_cells(r) for r in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
        out = []
        for n, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in out)

    def markdown(self) -> str:
        """The rows as a Markdown table, for docs/performance.md."""
        out = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        out += ["| " + " | ".join(cell or "—" for cell in _cells(r)) + " |" for r in self.rows]
        return "\n".join(out)


def _cells(r: Row) -> tuple[str, ...]:
    span = r.ratio_range
    met = {None: "", True: "met", False: "MISSED"}[r.met]
    return (r.benchmark, r.case, _fmt(r.value), r.unit, r.peer or "",
            "" if r.pair is None else _fmt(r.pair.peer_median),
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            "" if span is None else f"{span[0]:.2f}-{span[1]:.2f}x",
            "" if r.pair is None else str(len(r.pair.ours)), r.target or "", met)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


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
