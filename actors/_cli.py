"""``python -m actors`` (or ``actors``): look into actor logs in any store, replay and check them.

Every command takes a store URL (``sqlite:///app.db``, ``postgresql://...``); errors print one
line and exit with status 2; ``check`` exits with 1 when the code diverges from the log.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import unquote

import attrs
import trio

import eventstore
from eventstore import Codec, EventStore, EventStoreError
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

from . import replay
from ._actor import Actor
from ._actor_class import check_actor_class, kind_of
from ._errors import ActorError
from ._events import NotificationScheduled, ScopeCommitted, SleepStarted, SystemEvent
from ._index import WorkIndex
from ._state import ActorState

INDEX_STREAM = "$actors-index"
MAIN = "__main__"


class CliError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 divergence, 2 error)."""
    args = _parser().parse_args(argv)
    try:
        status: int = trio.run(args.run, args)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        error = _leaf(exc)
        if isinstance(error, BrokenPipeError):  # the reader went away (``| head``)
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if not isinstance(error, CliError | ActorError | EventStoreError | OSError):
            raise
        print(f"actors {args.command}: error: {error}", file=sys.stderr)
        return 2
    return status


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside nested single-exception groups (trio wraps errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m actors", description="Inspect, replay, move and check actor logs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], Awaitable[int]],
                help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    log = command("log", _log, "print a stream's events: version, position, time, type, data")
    _url_and_stream(log)
    log.add_argument("--json", action="store_true", help="one JSON object per event")

    rep = command("replay", _replay, "the actor's state after each event (and what changed), "
                                     "or at one version")
    _url_and_stream(rep)
    _actor_option(rep)
    rep.add_argument("--to", type=int, metavar="VERSION", help="only the state at VERSION")
    rep.add_argument("--json", action="store_true", help="one JSON object per event")

    export = command("export", _export, "write a stream's events and snapshots as JSON Lines")
    _url_and_stream(export)
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")

    imp = command("import", _import, "append the events of a JSON Lines log to a store; "
                                     "after a crash, run it again to finish")
    imp.add_argument("url", metavar="URL", help="the target store, e.g. sqlite:///app.db")
    imp.add_argument("file", metavar="FILE", help="the JSON Lines log ('-' for stdin)")
    imp.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                     help="import MODULE first: it defines event classes of the log (repeat "
                          "for several); every event must decode before anything is written")

    chk = command("check", _check, "re-run an actor class against a recorded log; exit 1 at "
                                   "the first divergence")
    _actor_option(chk)
    chk.add_argument("file", metavar="FILE", help="a JSON Lines log, as export writes it")

    timers = command("timers", _timers, "pending notifications and unfinished durable sleeps "
                                        "of every actor, soonest first")
    timers.add_argument("url", metavar="URL", help="the store, e.g. sqlite:///app.db")
    timers.add_argument("--json", action="store_true", help="one JSON object per timer")
    timers.add_argument("--index-stream", default=INDEX_STREAM, metavar="STREAM",
                        help=f"the ActorSystem's work index (default {INDEX_STREAM!r})")
    return parser


def _url_and_stream(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the store, e.g. sqlite:///app.db")
    parser.add_argument("stream", metavar="STREAM", help="the actor's stream, e.g. Account-a1")


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", required=True, metavar="MODULE:CLASS",
                        help="the actor class, importable from the current directory")


# -- shared pieces -------------------------------------------------------------------------------


def _open(url: str, *, create: bool = False) -> EventStore:
    """The store at ``url``; a SQLite file must exist unless ``create``."""
    if not create and url.startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///"):])
        if path and not os.path.exists(path):
            raise CliError(f"no SQLite database at {path!r} (from {url!r})")
    return eventstore.open(url)


async def _require(store: EventStore, stream: str, url: str) -> int:
    version = await store.last_version(stream)
    if not version:
        raise CliError(f"stream {stream!r} has no events in {url}")
    return version


def load_class(spec: str) -> type[Actor]:
    """The actor class ``module:QualName`` names, importable from the current directory."""
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise CliError(f"--actor takes module:Class, e.g. myapp.accounts:Account; got {spec!r}")
    found: Any = _import_module(module_name, f"--actor {spec}")
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise CliError(f"module {module_name!r} has no {qualname!r} (--actor {spec})")
    return check_actor_class(found)


def _import_module(name: str, option: str) -> Any:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise CliError(f"cannot import {name!r} ({option}): {exc!r}") from None


def _read_main_from(codec: Codec, module: str | None = None) -> None:
    """Decode the ``__main__:X`` type names that a script stored (before default names became
    portable) as ``module:X``: the module of ``--actor``, or the first ``-m``."""
    if module is not None and module != MAIN:
        codec.alias_module(MAIN, module)


def _actor_id(cls: type[Actor], stream: str) -> str:
    prefix = f"{kind_of(cls)}-"
    if not stream.startswith(prefix) or stream == prefix:
        raise CliError(f"stream {stream!r} is not a {cls.__qualname__} stream: those are named "
                       f"{prefix}<id>")
    return stream[len(prefix):]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Progress:
    """A one-line progress bar on stderr while a long log is read (only on a terminal)."""

    def __init__(self, total: int, what: str, *, out: TextIO | None) -> None:
        self.total = max(total, 1)
        self.what = what
        self.out = out
        self.started = time.monotonic()
        self.shown = -math.inf
        self.drawn = False

    def __call__(self, done: int) -> None:
        if self.out is None or (done & 1023 and done != self.total):
            return
        now = time.monotonic()
        if now - self.shown < 0.1 and done != self.total:
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        self.out.write(f"\r{self.what}: {done:,}/{self.total:,} events "
                       f"({100 * done / self.total:.0f}%), {rate:,.0f} events/s")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.out is not None and self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()


def _progress(total: int, what: str, *, unless_output_is_a_terminal: bool = False) -> Progress:
    show = sys.stderr.isatty() and not (unless_output_is_a_terminal and sys.stdout.isatty())
    return Progress(total, what, out=sys.stderr if show else None)


# -- the commands --------------------------------------------------------------------------------


async def _log(args: argparse.Namespace) -> int:
    async with _open(args.url) as store:
        await _require(store, args.stream, args.url)
        if not args.json:
            print(f"{'VERSION':>7}  {'POSITION':>8}  {'TIME':<29}  TYPE  DATA")
        async with contextlib.aclosing(store.read(args.stream)) as events:
            async for recorded in events:
                if args.json:
                    print(_json(replay._event_json(recorded)))
                else:
                    at = recorded.recorded_at.isoformat(timespec="milliseconds")
                    print(f"{recorded.version:>7}  {recorded.position:>8}  {at:<29}  "
                          f"{recorded.type}  {_json(recorded.data)}")
    return 0


def _state(actor: Actor) -> Any:
    return json.loads(_json(actor.snapshot()))


async def _replay(args: argparse.Namespace) -> int:
    cls = load_class(args.actor)
    actor_id = _actor_id(cls, args.stream)
    async with _open(args.url) as store:
        _read_main_from(store.codec, cls.__module__)
        last = await _require(store, args.stream, args.url)
        if args.to is not None and not 1 <= args.to <= last:
            raise CliError(f"--to {args.to} is outside stream {args.stream!r}: it has "
                           f"versions 1 to {last}")
        first = 1 if args.to is None else args.to
        before = _state(await replay.state_at(store, cls, actor_id, first - 1))
        if not args.json:
            print(f"state at version {first - 1}: {_json(before)}")
        progress = _progress(last, "replay", unless_output_is_a_terminal=True)
        async for step in replay.steps(store, cls, actor_id, from_version=first,
                                       to_version=args.to):
            after = _state(step.state)
            _print_step(step, before, after, as_json=args.json)
            before = after
            progress(step.version)
        progress.close()
    return 0


def _print_step(step: replay.Step[Actor], before: Any, after: Any, *, as_json: bool) -> None:
    changed = replay.changes(before, after)
    if as_json:
        print(_json({**replay._event_json(step.recorded), "state": after, "changes": [
            {"path": path, "before": _absent(old), "after": _absent(new)}
            for path, old, new in changed]}))
        return
    recorded = step.recorded
    print(f"{recorded.version:>7}  {recorded.type}  {_json(recorded.data)}")
    if changed:
        print(f"{'':>7}  state: {_json(after)}")
        for path, old, new in changed:
            print(f"{'':>7}  ~ {path}: {_shown(old)} -> {_shown(new)}")


def _absent(value: Any) -> Any:
    return None if value is ... else value


def _shown(value: Any) -> str:
    return "(absent)" if value is ... else _json(value)


async def _export(args: argparse.Namespace) -> int:
    async with _open(args.url) as store:
        await _require(store, args.stream, args.url)
        with _output(args.output) as out:
            written = await replay.export_jsonl(store, args.stream, out)
    print(f"exported {written} events of {args.stream!r}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as out:
        yield out


async def _import(args: argparse.Namespace) -> int:
    for name in args.module:
        _import_module(name, f"--module {name}")
    store = _open(args.url, create=True)  # checks the URL; SQLite creates the file on entering
    try:
        _read_main_from(store.codec, args.module[0] if args.module else None)
        parsed = _parse_log(store, args.file)
    except BaseException:
        await store.aclose()
        raise
    if not parsed.events:
        await store.aclose()
        raise CliError(f"{args.file} holds no events")
    with _removed_on_failure(store):
        async with store:
            counts = await replay._write(store, parsed)
    for stream, count in counts.items():
        if count:
            print(f"imported {count} events into {stream!r}")
        else:
            print(f"{stream!r} already held its {len(parsed.events[stream])} events")
    return 0


def _parse_log(store: EventStore, file: str) -> replay._Parsed:
    """Every line of ``file`` ('-' for stdin) checked, before the store is opened."""
    if file == "-":
        return replay._parse(store.codec, sys.stdin, "stdin")
    with open(file, encoding="utf-8") as lines:
        return replay._parse(store.codec, lines, file)


@contextlib.contextmanager
def _removed_on_failure(store: EventStore) -> Iterator[None]:
    """Remove the SQLite files that opening ``store`` creates, if the block fails.

    Only when the database file did not exist before: a failed import into an existing
    database leaves it as it was (the import wrote nothing, or whole streams that a re-run
    accepts), and never removes a file it did not create.
    """
    if not isinstance(store, SQLiteEventStore) or os.path.exists(store.path):
        yield
        return
    created = [store.path + suffix for suffix in ("", "-wal", "-shm", "-journal")
               if not os.path.exists(store.path + suffix)]
    try:
        yield
    except BaseException:
        for path in created:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        raise


async def _check(args: argparse.Namespace) -> int:
    cls = load_class(args.actor)
    store = MemoryEventStore()
    _read_main_from(store.codec, cls.__module__)
    with open(args.file, encoding="utf-8") as lines:
        counts = await replay.import_jsonl(store, lines, source=args.file)
    prefix = f"{kind_of(cls)}-"
    streams = [stream for stream in counts if stream.startswith(prefix) and stream != prefix]
    if not streams:
        raise CliError(f"{args.file} holds no {cls.__qualname__} stream (named {prefix}<id>); "
                       f"it holds {', '.join(map(repr, counts)) or 'nothing'}")
    status = 0
    for stream in streams:
        progress = _progress(counts[stream], f"check {stream}")
        result = await replay.check(store, cls, _actor_id(cls, stream), progress=progress)
        progress.close()
        if result.divergence is not None:
            print(f"{args.file}: DIVERGED: {result.divergence}")
            status = 1
        else:
            print(f"{args.file}: {stream}: ok: {result.events} events, {result.snapshots} "
                  f"snapshots compared, {result.reruns} recoveries re-run")
    return status


@attrs.define
class _Opaque(Actor):
    """Stands in for an actor class the CLI does not know: only runtime events are folded."""


async def pending_timers(store: EventStore, index_stream: str) -> list[dict[str, Any]]:
    """Every pending notification and unfinished durable sleep in ``store``, soonest first.

    A sleep is unfinished when it is the last durable call of a scope that has not completed.
    The actors come from the ``ActorSystem``'s work index (an actor with work there may keep
    its timers in a snapshot only) and from a ``read_all`` over the ``NotificationScheduled``
    and ``SleepStarted`` events (actors spawned without a system are not in the index). Each
    stream's timers are then folded from its newest snapshot and the runtime events after it.
    """
    streams: set[str] = set()
    index = WorkIndex(store, index_stream)
    await index.load()
    streams.update(f"{kind}-{actor_id}" for kind, actor_id in index.wake)
    codec = store.codec
    types = [codec.type_name(NotificationScheduled), codec.type_name(SleepStarted)]
    async with contextlib.aclosing(store.read_all(types=types)) as events:
        async for recorded in events:
            streams.add(recorded.stream)
    found: list[dict[str, Any]] = []
    for stream in sorted(streams):
        state = await _runtime_state(store, stream)
        for at, token in state.notifier.pending():
            found.append({"due": at.timestamp(), "stream": stream, "kind": "notification",
                          "token": token})
        for calls in state.record.calls():
            sleep = calls[-1]  # a scope's earlier sleeps are over: it went on to other calls
            if not isinstance(sleep, SleepStarted):
                continue
            found.append({"due": sleep.started_at + sleep.seconds, "stream": stream,
                          "kind": "sleep", "scope": sleep.scope, "index": sleep.index,
                          "started_at": sleep.started_at, "seconds": sleep.seconds})
    found.sort(key=lambda timer: (timer["due"], timer["stream"]))
    return found


async def _runtime_state(store: EventStore, stream: str) -> ActorState:
    """A state holding ``stream``'s timers and durable-call record (the actor's own events are
    not decoded: their classes need not be importable here)."""
    codec = store.codec
    state = ActorState(_Opaque, "timers", codec)
    snapshot = await store.load_snapshot(stream)
    if snapshot is not None:
        with contextlib.suppress(Exception):  # unusable: the log is folded from the start
            state.restore(snapshot.state, snapshot.version, fields=False)
    start = state.version + 1
    system = {codec.type_name(cls) for cls in SystemEvent.__subclasses__()} - {
        codec.type_name(ScopeCommitted)}  # it marks user events, which are not read here
    decode = codec.decode
    async with contextlib.aclosing(store.read(stream, from_version=start)) as events:
        async for recorded in events:
            if recorded.type in system:
                state.fold(decode(recorded))
    return state



async def _timers(args: argparse.Namespace) -> int:
    async with _open(args.url) as store:
        timers = await pending_timers(store, args.index_stream)
    if not timers and not args.json:
        print("no pending timers")
    elif not args.json:
        print(f"{'DUE':<25}  {'STREAM':<24}  WHAT")
    for timer in timers:
        due = datetime.fromtimestamp(timer["due"], UTC).isoformat(timespec="seconds")
        if args.json:
            print(_json({**timer, "due": due}))
        elif timer["kind"] == "notification":
            print(f"{due:<25}  {timer['stream']:<24}  notification {timer['token']!r}")
        else:
            started = datetime.fromtimestamp(timer["started_at"], UTC).isoformat(
                timespec="seconds")
            print(f"{due:<25}  {timer['stream']:<24}  sleep {timer['scope']}#{timer['index']} "
                  f"({timedelta(seconds=timer['seconds'])} from {started})")
    return 0
