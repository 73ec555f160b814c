"""What telemetry costs on the hot path.

- ``tell`` with no provider configured, against the same program on the revision just before
  the telemetry hook points were added (the parent of the commit that added
  ``actors/_telemetry.py``, exported with ``git archive``; ``BENCH_OTEL_BASE`` names another
  revision). Each round runs both in fresh processes, alternately: the tells (and the actors
  handling them) are timed inside the process, its start excluded, in CPU time, which other
  work on a shared machine disturbs less than wall time; each process sends its tells
  ``TRIES`` times and reports its fastest. Target: at most 5% slower (ratio >= 0.95x).
- ``tell`` with an OpenTelemetry SDK tracer and meter provider installed (spans made and
  dropped: no processor), against the same system with ``telemetry=None``: the price of
  turning it on. One measurement of ours, no target.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
from eventstore.memory import MemoryEventStore

from ._harness import Report, paired, scaled

BENCHMARK = "otel"
QUICK = "tell, 1 actor, no provider, against the revision before the hook points"
ROOT = Path(__file__).resolve().parents[1]
TRIES = 5
"""Times a process sends its tells; it reports the fastest, the least disturbed by others."""

TELL = """
import sys, time
import attrs, trio
import actors
from eventstore.memory import MemoryEventStore

@attrs.define
class Echo(actors.Actor):
    async def receive(self, message):
        return message

async def main(count, n, tries):
    each = max(1, n // count)
    store = MemoryEventStore()
    best = 0.0
    async with trio.open_nursery() as nursery:
        refs = [await actors.spawn(nursery, Echo, f"e{k}", store=store) for k in range(count)]
        for _ in range(tries):
            started = time.process_time()
            for i in range(each):
                for ref in refs:
                    ref.tell(i)
            async with trio.open_nursery() as asks:
                for ref in refs:
                    asks.start_soon(ref.ask, None)
            best = max(best, each * count / (time.process_time() - started))
        nursery.cancel_scope.cancel()
    print(best, actors.__file__)

trio.run(main, int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
"""


@functools.cache
def base_tree() -> Path:
    """The ``actors`` and ``eventstore`` packages of the base revision, in a temporary folder."""
    revision = os.environ.get("BENCH_OTEL_BASE")
    if revision is None:
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "actors/_telemetry.py"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        if not added:
            raise RuntimeError("cannot find the commit that added actors/_telemetry.py; set "
                               "BENCH_OTEL_BASE to the revision to compare against")
        revision = f"{added[-1]}^"
    folder = Path(tempfile.mkdtemp(prefix="bench-otel-base-"))
    archive = subprocess.run(["git", "archive", "--format=tar", revision, "actors",
                              "eventstore"], cwd=ROOT, capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as file:
        file.write(archive)
        file.seek(0)
        with tarfile.open(fileobj=file) as tar:
            tar.extractall(folder, filter="data")
    return folder


def tell_in(tree: Path, count: int, n: int) -> float:
    """Messages per CPU second of ``TELL`` run with ``tree``'s packages."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", TELL, str(count), str(n), str(TRIES)], cwd=tree,
                          env=env,
                          capture_output=True, text=True, check=True)
    rate, used = done.stdout.split()
    if not Path(used).is_relative_to(tree):
        raise RuntimeError(f"the benchmark imported {used}, not the tree {tree}")
    return float(rate)


def tell_with(telemetry: Any, n: int) -> float:
    """Messages per second of tells to one actor of an ``ActorSystem`` with ``telemetry``."""

    async def main() -> float:
        async with actors.ActorSystem(MemoryEventStore(), actors=[Echo],
                                      telemetry=telemetry) as system:
            ref = system.ref(Echo, "e")
            await ref.ask(None)  # activated before the clock starts
            started = time.perf_counter()
            for i in range(n):
                ref.tell(i)
            await ref.ask(None)
            return n / (time.perf_counter() - started)

    rate: float = trio.run(main)
    return rate


@attrs.define
class Echo(actors.Actor):
    async def receive(self, message: Any) -> Any:
        return message


def run(report: Report, *, quick: bool) -> None:
    n = scaled(200_000)
    counts = (1,) if quick else (1, 100)
    for count in counts:
        label = f"{count:,} actor{'s' if count > 1 else ''}"
        pair = paired(functools.partial(tell_in, ROOT, count, n),
                      functools.partial(tell_in, base_tree(), count, n))
        report.row(BENCHMARK, f"tell, {label}, no provider", pair, "messages/CPU s",
                   peer="the revision before the hook points", target=">= 0.95x")
    if quick:
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from actors.otel import OpenTelemetry

    on = OpenTelemetry(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    pair = paired(functools.partial(tell_with, on, n), functools.partial(tell_with, None, n))
    report.row(BENCHMARK, "tell, 1 actor, SDK providers installed", pair, "messages/s",
               peer="telemetry=None")
