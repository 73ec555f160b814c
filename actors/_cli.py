"""``python -m actors`` (or ``actors``): look into actor logs in any store, replay and check them.

Every command takes a store URL (``sqlite:///app.db``, ``postgresql://...``); errors print one
line and exit with status 2; ``check`` exits with 1 when the code diverges from the log.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import trio

from eventstore import Codec, EventStore, EventStoreError, RecordedEvent
from eventstore.sqlite import SQLiteEventStore

from . import replay
from ._actor import Actor
from ._actor_class import check_actor_class, kind_of
from ._cli_cluster import cluster
from ._cli_dead import DeadLetter, dead_letters, resolve
from ._cli_parser import INDEX_STREAM, parser
from ._cli_projections import projections
from ._cli_render import sentence
from ._cli_timers import pending_timers
from ._cli_util import (
    CliError,
    StreamInfo,
    counting,
    iso,
    list_streams,
    open_store,
    output,
    progress_bar,
    require_stream,
    shown_data,
    suggest,
    to_json,
)
from ._errors import ActorError
from ._jsonl_log import JsonlLog

__all__ = ["INDEX_STREAM", "CliError", "load_class", "main", "pending_timers"]

MAIN = "__main__"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 divergence, 2 error)."""
    commands = parser()
    args, extra = commands.parse_known_args(argv)
    if extra and args.command == "dead-letters" and not any(word.startswith("-")
                                                            for word in extra):
        args.words += extra  # positionals after an option: `drop --json URL STREAM SEQ`
    elif extra:
        commands.parse_args(argv)  # the usual error for what is left over
    run = {"streams": _streams, "log": _log, "replay": _replay, "export": _export,
           "import": _import, "check": _check, "timers": _timers,
           "projections": projections,
           "dead-letters": _dead_letters, "cluster": cluster}[args.command]
    try:
        status: int = trio.run(run, args)
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
        hint = ""
        if "cannot decode" in str(error) and not args.module:
            hint = " (on the command line: give the module that defines it with -m MODULE)"
        print(f"actors {args.command}: error: {error}{hint}", file=sys.stderr)
        return 2
    return status


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside nested single-exception groups (trio wraps errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


# -- types and modules ---------------------------------------------------------------------------


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


def import_modules(names: list[str]) -> None:
    """Import the modules ``-m`` names (they register event and token classes)."""
    for name in names:
        _import_module(name, f"-m {name}")


def _read_main_from(codec: Codec, module: str | None = None) -> None:
    """Decode the ``__main__:X`` type names that a script stored (before default names became
    portable) as ``module:X``: the module of ``--actor``, or the first ``-m``."""
    if module is not None and module != MAIN:
        codec.alias_module(MAIN, module)


def _import_module(name: str, option: str) -> Any:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise CliError(f"cannot import {name!r} ({option}): {exc!r}") from None


def _actor_id(cls: type[Actor], stream: str) -> str:
    prefix = f"{kind_of(cls)}-"
    if not stream.startswith(prefix) or stream == prefix:
        raise CliError(f"stream {stream!r} is not a {cls.__qualname__} stream: those are named "
                       f"{prefix}<id>")
    return stream[len(prefix):]




def _print(value: Any, *, as_json: bool, text: str, out: Any = None) -> None:
    print(to_json(value) if as_json else text, file=out)


# -- the commands --------------------------------------------------------------------------------


async def _streams(args: argparse.Namespace) -> int:
    import_modules(args.module)
    async with open_store(args.url) as store:
        bar = progress_bar(None, "streams")
        with bar:
            found = await list_streams(store, progress=bar)
    if args.kind is not None and not any(info.kind == args.kind for info in found):
        kinds = sorted({info.kind for info in found})
        raise CliError(f"no stream of kind {args.kind!r} in {args.url}"
                       + suggest(args.kind, kinds)
                       + (f"; its kinds are {', '.join(kinds)}" if kinds else
                          "; the store holds no events"))
    shown = [info for info in found if info.stream.startswith(args.prefix)
             and (args.kind is None or info.kind == args.kind)]
    width = max([24, *(len(info.stream) for info in shown)])
    if not args.json:
        if not shown:
            print("no streams" + (f" starting with {args.prefix!r}" if args.prefix else ""))
            return 0
        print(f"{'STREAM':<{width}}  {'KIND':<16}  {'EVENTS':>8}  {'VERSION':>8}  LAST ACTIVITY")
    for info in shown:
        _print(info.as_json(), as_json=args.json, text=_stream_row(info, width))
    return 0


def _stream_row(info: StreamInfo, width: int) -> str:
    return (f"{info.stream:<{width}}  {info.kind:<16}  {info.events:>8}  {info.last_version:>8}"
            f"  {iso(info.last_activity)}")


async def _log(args: argparse.Namespace) -> int:
    import_modules(args.module)
    async with open_store(args.url) as store:
        last = await require_stream(store, args.stream, args.url)
        if not 1 <= args.first <= last:
            raise CliError(f"--from {args.first} is outside stream {args.stream!r}: it has "
                           f"versions 1 to {last}")
        with output(args.output) as out:
            wanted = _type_filter(args.types)
            if not args.json:
                print(f"{'VERSION':>7}  {'POSITION':>8}  {'TIME':<29}  TYPE  DATA", file=out)
            left = args.limit
            bar = progress_bar(last - args.first + 1, f"log {args.stream}",
                               shown=args.output is not None)
            after = 0
            with bar:
                read = store.read(args.stream, from_version=args.first)
                async with contextlib.aclosing(read) as events:
                    async for recorded in events:
                        bar.update()
                        after = recorded.position
                        if wanted(recorded.type) and left != 0:
                            _print_event(recorded, store.codec, as_json=args.json, out=out)
                            left = None if left is None else left - 1
            if args.follow and left != 0:
                out.flush()
                await _follow(store, args, out, after=after, left=left, wanted=wanted)
    return 0


async def _follow(store: EventStore, args: argparse.Namespace, out: Any, *, after: int,
                  left: int | None, wanted: Callable[[str], bool]) -> None:
    """Print the stream's new events as they are appended, through ``subscribe``."""
    async with contextlib.aclosing(store.subscribe(after_position=after)) as events:
        async for recorded in events:
            if recorded.stream != args.stream or not wanted(recorded.type):
                continue
            _print_event(recorded, store.codec, as_json=args.json, out=out)
            out.flush()
            if left is not None:
                left -= 1
                if not left:
                    return


def _type_filter(types: list[str]) -> Callable[[str], bool]:
    """Whether a stored type name is one of ``types`` (whole, or its part after '.' or ':')."""
    if not types:
        return lambda _: True
    wanted = set(types)

    def matches(name: str) -> bool:
        return name in wanted or name.rpartition(".")[2] in wanted or \
            name.rpartition(":")[2] in wanted
    return matches


def _print_event(recorded: RecordedEvent, codec: Codec, *, as_json: bool, out: Any) -> None:
    if as_json:
        print(to_json(replay._event_json(recorded)), file=out)
        return
    at = recorded.recorded_at.isoformat(timespec="milliseconds")
    shown = sentence(recorded, codec)
    print(f"{recorded.version:>7}  {recorded.position:>8}  {at:<29}  {recorded.type}  "
          f"{to_json(shown_data(recorded)) if shown is None else shown}", file=out)


def _state(actor: Actor) -> Any:
    return json.loads(to_json(actor.snapshot()))


async def _replay(args: argparse.Namespace) -> int:
    import_modules(args.module)
    cls = load_class(args.actor)
    actor_id = _actor_id(cls, args.stream)
    async with open_store(args.url) as store:
        _read_main_from(store.codec, cls.__module__)
        last = await require_stream(store, args.stream, args.url)
        if args.to is not None and not 1 <= args.to <= last:
            raise CliError(f"--to {args.to} is outside stream {args.stream!r}: it has "
                           f"versions 1 to {last}")
        first = 1 if args.to is None else args.to
        before = _state(await replay.state_at(store, cls, actor_id, first - 1))
        if not args.json:
            print(f"state at version {first - 1}: {to_json(before)}")
        # On a terminal the bar would mix with the output: drawn only when it goes elsewhere.
        with progress_bar(last - first + 1, f"replay {args.stream}",
                          shown=not sys.stdout.isatty()) as bar:
            async for step in replay.steps(store, cls, actor_id, from_version=first,
                                           to_version=args.to):
                after = _state(step.state)
                _print_step(step, before, after, as_json=args.json)
                before = after
                bar.update()
    return 0


def _print_step(step: replay.Step[Actor], before: Any, after: Any, *, as_json: bool) -> None:
    changed = replay.changes(before, after)
    if as_json:
        print(to_json({**replay._event_json(step.recorded), "state": after, "changes": [
            {"path": path, "before": _absent(old), "after": _absent(new)}
            for path, old, new in changed]}))
        return
    recorded = step.recorded
    print(f"{recorded.version:>7}  {recorded.type}  {to_json(shown_data(recorded))}")
    if changed:
        print(f"{'':>7}  state: {to_json(after)}")
        for path, old, new in changed:
            print(f"{'':>7}  ~ {path}: {_shown(old)} -> {_shown(new)}")


def _absent(value: Any) -> Any:
    return None if value is ... else value


def _shown(value: Any) -> str:
    return "(absent)" if value is ... else to_json(value)


async def _export(args: argparse.Namespace) -> int:
    import_modules(args.module)
    async with open_store(args.url) as store:
        last = await require_stream(store, args.stream, args.url)
        with output(args.output) as out, progress_bar(last, f"export {args.stream}",
                                                     shown=args.output is not None) as bar:
            written = await replay.export_jsonl(store, args.stream, out, progress=counting(bar))
    _print({"stream": args.stream, "events": written, "file": args.output}, as_json=args.json,
           text=f"exported {written} events of {args.stream!r}", out=sys.stderr)
    return 0


async def _import(args: argparse.Namespace) -> int:
    import_modules(args.module)
    store = open_store(args.url, create=True)  # checks the URL; SQLite creates the file on use
    try:
        _read_main_from(store.codec, args.module[0] if args.module else None)
        parsed = _parse_log(store, args.file)
    except BaseException:
        await store.aclose()
        raise
    if not parsed.events:
        await store.aclose()
        raise CliError(f"{args.file} holds no events: give a log that export wrote")
    with _removed_on_failure(store):
        async with store:
            with progress_bar(len(parsed.events), "import", unit="streams") as bar:
                counts = await replay._write(store, parsed)
                bar.update(len(parsed.events))
    for stream, count in counts.items():
        held = len(parsed.events[stream])
        _print({"stream": stream, "imported": count, "already_held": held if not count else 0},
               as_json=args.json, text=f"imported {count} events into {stream!r}" if count
               else f"{stream!r} already held its {held} events")
    return 0


def _parse_log(store: EventStore, file: str) -> replay._Parsed:
    """Every line of ``file`` ('-' for stdin) checked, before the store is opened."""
    if file == "-":
        return replay._parse(store.codec, sys.stdin, "stdin")
    if not os.path.isfile(file):
        raise CliError(f"no log file at {file!r}: give the path of a JSON Lines file "
                       "(or '-' for stdin)")
    with open(file, encoding="utf-8") as lines, progress_bar(
            os.path.getsize(file), f"read {file}", unit="B") as bar:
        return replay._parse(store.codec, _counted(lines, bar), file)


def _counted(lines: Any, bar: Any) -> Iterator[str]:
    for line in lines:
        bar.update(len(line))
        yield line


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
    import_modules(args.module)
    cls = load_class(args.actor)
    if not os.path.isfile(args.file):
        raise CliError(f"no log file at {args.file!r}: give the path of a JSON Lines file "
                       "that export wrote")
    async with JsonlLog(args.file) as log:
        _read_main_from(log.codec, cls.__module__)
        with progress_bar(os.path.getsize(args.file), f"read {args.file}", unit="B") as bar:
            log.index(progress=counting(bar))
        counts = log.streams
        prefix = f"{kind_of(cls)}-"
        streams = [stream for stream in counts if stream.startswith(prefix) and stream != prefix]
        if not streams:
            raise CliError(f"{args.file} holds no {cls.__qualname__} stream (named {prefix}<id>)"
                           f"; it holds {', '.join(map(repr, counts)) or 'nothing'}: give the "
                           "class of its actors to --actor")
        status = 0
        for stream in streams:
            with progress_bar(counts[stream], f"check {stream}") as bar:
                result = await replay.check(log, cls, _actor_id(cls, stream),
                                            progress=counting(bar))
            status = max(status, _report(args, result))
    return status


def _report(args: argparse.Namespace, result: replay.CheckResult) -> int:
    """Print one stream's check; 1 when it diverged."""
    divergence = result.divergence
    if args.json:
        print(to_json({"file": args.file, "stream": result.stream, "ok": result.ok,
                       "events": result.events, "snapshots": result.snapshots,
                       "reruns": result.reruns, "turns": result.turns,
                       "divergence": None if divergence is None else {
                           "version": divergence.version, "reason": divergence.reason}}))
    elif divergence is not None:
        print(f"{args.file}: DIVERGED: {divergence}")
    else:
        turns = f", {result.turns} message turns re-run" if result.turns else ""
        print(f"{args.file}: {result.stream}: ok: {result.events} events, {result.snapshots} "
              f"snapshots compared, {result.reruns} recoveries re-run{turns}")
    return 0 if divergence is None else 1


async def _timers(args: argparse.Namespace) -> int:
    import_modules(args.module)
    async with open_store(args.url) as store:
        _read_main_from(store.codec, args.module[0] if args.module else None)
        timers = await pending_timers(store, args.index_stream)
    if not timers and not args.json:
        print("no pending timers")
    elif not args.json:
        print(f"{'DUE':<25}  {'STREAM':<24}  WHAT")
    for timer in timers:
        due = iso(timer["due"])
        if args.json:
            shown = {**timer, "due": due}
            if "started_at" in shown:
                shown["started_at"] = iso(shown["started_at"])
            print(to_json(shown))
        elif timer["kind"] == "notification":
            print(f"{due:<25}  {timer['stream']:<24}  notification {timer['token']!r}")
        else:
            print(f"{due:<25}  {timer['stream']:<24}  sleep {timer['scope']}#{timer['index']} "
                  f"({timedelta(seconds=timer['seconds'])} from {iso(timer['started_at'])})")
    return 0


async def _dead_letters(args: argparse.Namespace) -> int:
    import_modules(args.module)
    words = args.words
    if words[0] in ("retry", "drop"):
        if len(words) != 4:
            raise CliError(f"{words[0]} takes URL STREAM SEQ, e.g. `python -m actors dead-letters "
                           f"{words[0]} sqlite:///app.db Account-a1 42`; got {len(words) - 1} "
                           "argument(s)")
        action, url, stream, text = words
        try:
            seq = int(text)
        except ValueError:
            raise CliError(f"SEQ must be a whole number (the inbox sequence that "
                           f"`dead-letters URL` lists), got {text!r}") from None
        async with open_store(url) as store:
            done = await resolve(store, stream, seq, "retried" if action == "retry" else
                                 "dropped", url=url)
        _print(done.as_json(), as_json=args.json, text=(
            f"retried dead letter {seq} of {stream!r}: stored again in its inbox (a running "
            "ActorSystem picks it up when the actor is next activated or sent a message)"
            if action == "retry" else f"dropped dead letter {seq} of {stream!r}"))
        return 0
    if len(words) != 1:
        raise CliError(f"the list takes one URL, got {' '.join(map(repr, words))}; to resolve a "
                       "dead letter: `dead-letters retry|drop URL STREAM SEQ`")
    async with open_store(words[0]) as store:
        found = await dead_letters(store, resolved=args.all)
    width = max([24, *(len(letter.stream) for letter in found)])
    if not args.json:
        if not found:
            print("no dead letters" if args.all else "no dead letters waiting")
            return 0
        print(f"{'WHEN':<29}  {'STREAM':<{width}}  {'SEQ':>6}  {'TYPE':<20}  ATTEMPTS  "
              f"{'MESSAGE ID':<16}  ERROR")
    for letter in found:
        _print(letter.as_json(), as_json=args.json, text=_dead_row(letter, width))
    return 0


def _dead_row(letter: DeadLetter, width: int) -> str:
    resolved = "" if letter.resolved is None else f"  [{letter.resolved}]"
    return (f"{iso(letter.at):<29}  {letter.stream:<{width}}  {letter.seq:>6}  "
            f"{letter.type:<20}  {letter.attempts:>8}  {letter.message_id or '-':<16}  "
            f"{letter.error}{resolved}")
