"""A cluster on PostgreSQL: turns/s and turns per CPU-second with 1, 2 and 4 member processes,
the commit ceiling of the PostgreSQL primary, and what fencing costs a single member.

Every member is a real process (``python -m bench.bench_cluster member ...``) running an
``ActorSystem`` with ``cluster=actors.Cluster()`` (the defaults: a 6 s lease, a 1 s poll) on
``PostgresEventStore``, driven line by line over its stdin by this process. Each message is one
turn of a ``Counter`` actor that emits one event. A member's driver is ``SENDERS`` (100) tasks,
each asking one message after another (a closed loop: one outstanding ask per task). The actors
are claimed and recovered before the first round.

- **partitioned**: member ``i`` owns actors ``p{i}-0..99`` (it claimed them first) and each of
  its senders asks one of them: every ask is local. ``LOCAL_ASKS`` asks per sender and round,
  shared among the members (4 members: a quarter each), so a round is the same work at every
  size.
- **uniform**: ``100 x N`` actors ``u{t}``, ``u{t}`` claimed by member ``t mod N``; each ask
  goes to an actor drawn at random (seeded per sender) from all of them, so about
  ``(N - 1) / N`` of the asks cross members (the row says how many did): stored in the owner's
  inbox, the owner woken by ``LISTEN/NOTIFY``, the reply recorded in the owner's log
  (``Received`` + the event + ``ReplyRecorded``) and read back by the asker's subscription to
  the global log. ``CROSSING_ASKS`` per sender and round, shared the same way. Before the
  rounds every member asks every actor once, so that the rounds find the owners known
  (``remote_ttl`` is 30 s; a longer run locates them again). With one member nothing crosses:
  that row is the same member asking random actors rather than one each.

The members of one size (1, 2 or 4) run the two workloads in alternating rounds; the row pairs
uniform (ours) with partitioned (the peer), so the ratio is what crossing members costs. The
sizes run one after another, not interleaved, so rows of different sizes can see different load
from other processes on the machine. Figures: turns per second of wall-clock time, from the
command to the last member's "done"; and turns per CPU-second, the CPU time (user + system,
``/proc/<pid>/stat``, all threads) of the member processes and of their PostgreSQL backends
(found in ``pg_stat_activity`` by ``application_name``), over the same span. Not counted:
PostgreSQL's WAL writer, checkpointer and background writer. A printed line per side gives its
median and min-max, and how the CPU splits between members and backends.

**Commit ceiling**: ``n`` threads of this process, each with its own psycopg connection in
autocommit, insert one small row per transaction in a loop for a fixed time: commits per second
of the server (``synchronous_commit`` as configured), and commits per CPU-second of this process
and the backends. Python threads share the GIL, so at many connections the client is part of
the limit: the figure is what one client process gets from this server on this machine, a floor
of the server's ceiling. Our turns share commits (group commit), so turns/s may exceed it.

**Fencing**: one clustered member (ours) against one member process running the same
``ActorSystem`` without ``cluster`` (the peer), each on its own schema of the same server, the
partitioned workload (``FENCING_ASKS`` per sender), in alternating rounds; judged on wall
clock, ``>= 0.8x``. Besides the fenced append (the owner and epoch checked in the append
statement, the epoch stamped into each event's metadata), the clustered member renews its lease
on a thread, listens for inbox notifications and polls for due work once a second.

``--quick``: fencing (the case with a target) at a tenth of the asks and three rounds, and the
ceiling at 16 connections only; no scaling rounds (under half a minute on an idle 2-core
machine). Skips with a printed line when no
server answers at ``ACTORS_TEST_POSTGRES_URL`` (default: the local test database). Each group of
members works in a schema of its own, dropped afterwards. ``BENCH_CLUSTER_PROFILE=DIR`` writes a
cProfile of each member's main thread to ``DIR``.
"""

from __future__ import annotations

import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore

from ._harness import SETTINGS, Paired, Report, rounds, scaled

BENCHMARK = "cluster"
QUICK = ("fencing: 1 clustered member against a plain one; 1, 2, 4 member processes, uniform "
         "against partitioned asks; commit ceiling at 16 connections")
URL = os.environ.get("ACTORS_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
SENDERS = 100  # concurrent asking tasks per member, and actors per member
SIZES = (1, 2, 4)
FENCING_ASKS = 1000  # per sender and round, at scale 1 (--quick: a tenth)
LOCAL_ASKS = 500  # per sender and round of the partitioned workload, shared by the members
CROSSING_ASKS = 300  # the same for the uniform workload, whose turns cost more
ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
REPLY_TIMEOUT = 120.0  # seconds a member may take to answer a command before the bench fails


# -- the actor ------------------------------------------------------------------------------------

@eventstore.event_type("bench.cluster.Added")
@attrs.frozen
class Added:
    n: int


@attrs.define
class Counter(actors.Actor):
    kind = "BenchClusterCounter"
    count: int = 0

    def apply(self, event: Added) -> None:
        self.count += 1

    async def receive(self, message: int | None) -> int:
        if message is not None:  # None: a read
            self.emit(Added(message))
        return self.count


# -- a member process -----------------------------------------------------------------------------

def app_name(schema: str, index: int | str) -> str:
    """The ``application_name`` of a member's connections (at most 63 bytes)."""
    return f"clbench-{schema}-{index}"


async def serve(schema: str, index: int, members: int, clustered: bool) -> None:
    """A member: activate its actors, say ``ready``, then run the commands read from stdin
    (``warm``, ``run partitioned EACH``, ``run uniform EACH``, ``quit``), one reply line each."""
    from psycopg.conninfo import make_conninfo

    from eventstore.postgres import PostgresEventStore

    store = PostgresEventStore(make_conninfo(URL, application_name=app_name(schema, index)),
                               schema=schema)
    cluster = actors.Cluster() if clustered else None
    async with store, actors.ActorSystem(store, actors=[Counter], cluster=cluster,
                                         telemetry=None) as system:
        own = [system.ref(Counter, f"p{index}-{k}") for k in range(SENDERS)]
        everyone = [system.ref(Counter, f"u{t}") for t in range(SENDERS * members)]
        for ref in own + everyone[index::members]:  # claimed here, before others address them
            await ref.ask(None)
        say("ready")
        while True:
            command = (await trio.to_thread.run_sync(sys.stdin.readline)).split()
            if not command or command[0] == "quit":
                break
            if command[0] == "warm":  # find every owner (and claim nothing new)
                async with trio.open_nursery() as nursery:
                    for ref in everyone:
                        nursery.start_soon(ref.ask, None)
                say("warmed")
                continue
            workload, each = command[1], int(command[2])
            if workload == "partitioned":
                plans = [[own[k]] * each for k in range(SENDERS)]
                crossing = 0
            else:
                draws = [random.Random(f"{index}-{k}") for k in range(SENDERS)]
                picks = [[draw.randrange(len(everyone)) for _ in range(each)] for draw in draws]
                plans = [[everyone[t] for t in pick] for pick in picks]
                crossing = sum(t % members != index for pick in picks for t in pick)
            started = time.perf_counter()
            with trio.fail_after(REPLY_TIMEOUT):
                async with trio.open_nursery() as nursery:
                    for plan in plans:
                        nursery.start_soon(ask_each, plan)
            say(f"done {SENDERS * each} {crossing} {time.perf_counter() - started:.6f}")


async def ask_each(plan: list[actors.ActorRef]) -> None:
    for n, ref in enumerate(plan):
        await ref.ask(n)  # no timeout: a local ask may run inline on this task


def say(line: str) -> None:
    print(line, flush=True)


# -- driving members from here --------------------------------------------------------------------

@attrs.frozen
class Figures:
    """One run of a workload on a group of members."""

    turns: int
    crossing: int
    wall: float
    member_cpu: float
    backend_cpu: float

    @property
    def per_second(self) -> float:
        return self.turns / self.wall

    @property
    def per_cpu_second(self) -> float:
        return self.turns / (self.member_cpu + self.backend_cpu)


class Members:
    """``count`` member processes on ``schema``, driven line by line over stdin/stdout."""

    def __init__(self, schema: str, count: int, *, clustered: bool = True) -> None:
        self.schema = schema
        self.logs = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        self.procs: list[subprocess.Popen[str]] = []
        self.lines: list[queue.Queue[str]] = []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            for index in range(count):
                with open(self.logs / f"member{index}.log", "w") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bench.bench_cluster", "member", schema,
                         str(index), str(count), "clustered" if clustered else "plain"],
                        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=log, text=True, bufsize=1)
                lines: queue.Queue[str] = queue.Queue()
                threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
                self.procs.append(proc)
                self.lines.append(lines)
            self.replies("ready")
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def command(self, line: str, expected: str) -> list[list[str]]:
        """Send ``line`` to every member; their replies (each starting with ``expected``)."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        return self.replies(expected)

    def replies(self, expected: str) -> list[list[str]]:
        replies = []
        for index, lines in enumerate(self.lines):
            try:
                reply = lines.get(timeout=REPLY_TIMEOUT).split()
            except queue.Empty:
                reply = []
            if not reply or reply[0] != expected:
                log = (self.logs / f"member{index}.log").read_text()[-3000:]
                raise RuntimeError(f"member {index} answered {reply!r}, not {expected!r}; its "
                                   f"log ends:\n{log}")
            replies.append(reply)
        return replies

    def run(self, workload: str, each: int, meter: CpuMeter) -> Figures:
        before = meter.snapshot(self.pids)
        started = time.perf_counter()
        replies = self.command(f"run {workload} {each}", "done")
        wall = time.perf_counter() - started
        after = meter.snapshot(self.pids)
        members, backends = meter.used(before, after)
        return Figures(sum(int(r[1]) for r in replies), sum(int(r[2]) for r in replies), wall,
                       members, backends)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write("quit\n")
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs.iterdir():
            log.unlink()
        self.logs.rmdir()


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put("exited")


# -- CPU time -------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


class CpuMeter:
    """CPU time of given processes and of the PostgreSQL backends whose ``application_name``
    starts with ``prefix``, found through ``pg_stat_activity`` on a connection of its own."""

    def __init__(self, prefix: str) -> None:
        import psycopg

        self.prefix = prefix
        self.conn = psycopg.connect(URL, autocommit=True, application_name="clbench-meter")
        self.lost = 0  # backends that ended between two snapshots: their CPU is not counted

    def backends(self) -> list[int]:
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name "
                                 "LIKE %s", (self.prefix + "%",)).fetchall()
        return [pid for (pid,) in rows]

    def snapshot(self, pids: list[int]) -> tuple[dict[int, float], dict[int, float]]:
        return _times(pids), _times(self.backends())

    def used(self, before: tuple[dict[int, float], dict[int, float]],
             after: tuple[dict[int, float], dict[int, float]]) -> tuple[float, float]:
        """CPU seconds of the processes, and of the backends, between two snapshots; a backend
        that started between them counts whole."""
        self.lost += len(set(before[1]) - set(after[1]))
        processes, backends = (sum(t - was.get(pid, 0.0) for pid, t in now.items())
                               for was, now in zip(before, after, strict=True))
        return processes, backends

    def close(self) -> None:
        self.conn.close()


def _times(pids: list[int]) -> dict[int, float]:
    times = {pid: cpu_seconds(pid) for pid in pids}
    return {pid: t for pid, t in times.items() if t is not None}


# -- schemas --------------------------------------------------------------------------------------

def sql(query: str, *params: Any) -> None:
    import psycopg

    with psycopg.connect(URL, autocommit=True, application_name="clbench-setup") as conn:
        conn.execute(query, params)


@contextmanager
def fresh_schema() -> Iterator[str]:
    name = f"clbench_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def open_members(count: int, *, clustered: bool = True) -> Iterator[tuple[Members, CpuMeter]]:
    with fresh_schema() as schema:
        meter = CpuMeter(app_name(schema, ""))
        try:
            members = Members(schema, count, clustered=clustered)
            try:
                yield members, meter
            finally:
                members.close()
        finally:
            meter.close()


# -- the cases ------------------------------------------------------------------------------------

def scaling(report: Report, size: int, local: int, crossing: int) -> None:
    """Uniform against partitioned asks on ``size`` members, in alternating rounds."""
    runs: dict[str, list[Figures]] = {"uniform": [], "partitioned": []}
    with open_members(size) as (members, meter):
        members.command("warm", "warmed")

        def side(workload: str) -> Callable[[], float]:
            def work() -> float:
                each = local if workload == "partitioned" else crossing
                figures = members.run(workload, each, meter)
                runs[workload].append(figures)
                return figures.per_second
            return work

        figures = rounds({name: side(name) for name in runs})
        lost = meter.lost
    uniform, partitioned = runs["uniform"], runs["partitioned"]
    share = sum(f.crossing for f in uniform) / sum(f.turns for f in uniform)
    case = f"{size} member{'s' * (size > 1)}, uniform ({share:.0%} cross)"
    peer = f"partitioned, {size} member{'s' * (size > 1)}"
    report.row(BENCHMARK, f"{case}, wall clock", Paired.of(figures, "uniform", "partitioned"),
               "turns/s", peer=peer)
    report.row(BENCHMARK, f"{case}, CPU time",
               Paired(tuple(f.per_cpu_second for f in uniform),
                      tuple(f.per_cpu_second for f in partitioned)), "turns/CPU-s", peer=peer)
    for name, done in runs.items():
        spread(f"{size} members, {name}", done)
    if lost:
        print(f"  {BENCHMARK}: {lost} backend(s) ended mid-round: their CPU is not counted")


def fencing(report: Report, each: int) -> None:
    """One clustered member against one plain ``ActorSystem``, partitioned asks."""
    runs: dict[str, list[Figures]] = {"clustered": [], "plain": []}
    with open_members(1) as (clustered, meter), open_members(1, clustered=False) as (plain, other):
        def side(name: str, members: Members, meter: CpuMeter) -> Callable[[], float]:
            def work() -> float:
                figures = members.run("partitioned", each, meter)
                runs[name].append(figures)
                return figures.per_second
            return work

        figures = rounds({"clustered": side("clustered", clustered, meter),
                          "plain": side("plain", plain, other)})
    ours, peer = runs["clustered"], runs["plain"]
    case = f"fencing: 1 clustered member, {SENDERS} actors, 1 event per ask"
    report.row(BENCHMARK, f"{case}, wall clock", Paired.of(figures, "clustered", "plain"),
               "turns/s", peer="same member, no cluster", target=">= 0.8x")
    report.row(BENCHMARK, f"{case}, CPU time",
               Paired(tuple(f.per_cpu_second for f in ours),
                      tuple(f.per_cpu_second for f in peer)),
               "turns/CPU-s", peer="same member, no cluster")
    for name, done in runs.items():
        spread(f"fencing, {name}", done)


def spread(what: str, runs: list[Figures]) -> None:
    """Print the median and min-max of one side's figures (the table shows medians only)."""
    def span(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    print(f"  {BENCHMARK}: {what}: {span([f.per_second for f in runs])} turns/s, "
          f"{span([f.per_cpu_second for f in runs])} turns/CPU-s; CPU per round: members "
          f"{statistics.median(f.member_cpu for f in runs):.2f} s, PostgreSQL backends "
          f"{statistics.median(f.backend_cpu for f in runs):.2f} s, wall "
          f"{statistics.median(f.wall for f in runs):.2f} s", flush=True)


def commit_ceiling(connections: int, seconds: float) -> tuple[float, float]:
    """Commits per second and per CPU-second: ``connections`` threads, each inserting one
    small row per autocommit transaction for ``seconds``."""
    import psycopg

    with fresh_schema() as schema:
        sql(f'CREATE SCHEMA "{schema}"')
        sql(f'CREATE TABLE "{schema}".t (id bigserial PRIMARY KEY, stream text NOT NULL, '
            "data text NOT NULL)")
        insert = f'INSERT INTO "{schema}".t (stream, data) VALUES (%s, %s)'
        name = app_name(schema, "raw")
        conns = [psycopg.connect(URL, autocommit=True, application_name=name)
                 for _ in range(connections)]
        meter = CpuMeter(name)
        try:
            counts = [0] * connections
            start = threading.Barrier(connections + 1)
            stop = threading.Event()

            def commit(k: int) -> None:
                conn, n = conns[k], 0
                start.wait()
                while not stop.is_set():
                    conn.execute(insert, (f"s{k}", '{"n": 1}'))
                    n += 1
                counts[k] = n

            threads = [threading.Thread(target=commit, args=(k,)) for k in range(connections)]
            for thread in threads:
                thread.start()
            before = meter.snapshot([os.getpid()])
            started = time.perf_counter()
            start.wait()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            client, backends = meter.used(before, meter.snapshot([os.getpid()]))
        finally:
            meter.close()
            for conn in conns:
                conn.close()
    return sum(counts) / wall, sum(counts) / (client + backends)


def ceiling(report: Report, connection_counts: tuple[int, ...], seconds: float) -> None:
    for connections in connection_counts:
        figures = [commit_ceiling(connections, seconds) for _ in range(SETTINGS.repeats)]
        per_second = [f[0] for f in figures]
        per_cpu = [f[1] for f in figures]
        report.row(BENCHMARK, f"commit ceiling, raw psycopg, {connections} connections",
                   statistics.median(per_second), "commits/s")
        print(f"  {BENCHMARK}: commit ceiling, {connections} connections: "
              f"{min(per_second):,.0f}-{max(per_second):,.0f} commits/s; "
              f"{statistics.median(per_cpu):,.0f} ({min(per_cpu):,.0f}-{max(per_cpu):,.0f}) "
              "commits/CPU-s (this process and its backends)", flush=True)


def run(report: Report, *, quick: bool = False) -> None:
    try:
        import psycopg

        with psycopg.connect(URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        print(f"  {BENCHMARK}: skipped, no PostgreSQL server at {URL}: "
              f"{' '.join(str(exc).split())}")
        return
    # Asks per sender; the scaling rounds share a fixed total among the members.
    local, crossing = scaled(LOCAL_ASKS), scaled(CROSSING_ASKS)
    print(f"  {BENCHMARK}: load average before: {Path('/proc/loadavg').read_text().strip()}",
          flush=True)
    fencing(report, scaled(FENCING_ASKS))
    for size in () if quick else SIZES:
        scaling(report, size, max(1, local // size), max(1, crossing // size))
    ceiling(report, (16,) if quick else (1, 4, 16, 32), 1.0 if quick else 3.0)
    print(f"  {BENCHMARK}: load average after: {Path('/proc/loadavg').read_text().strip()}",
          flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["member"]:
        schema, index, members, mode = sys.argv[2:6]
        profiles = os.environ.get("BENCH_CLUSTER_PROFILE")  # a directory: cProfile each member
        if profiles:
            import cProfile

            with cProfile.Profile() as profile:
                trio.run(serve, schema, int(index), int(members), mode == "clustered")
            profile.dump_stats(Path(profiles) / f"{mode}-{members}-{index}.prof")
        else:
            trio.run(serve, schema, int(index), int(members), mode == "clustered")
    else:
        sys.exit(f"usage: python -m bench {BENCHMARK} (this module runs members for it)")
