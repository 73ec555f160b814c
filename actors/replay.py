"""Replay an actor's log for debugging: step through it, rebuild any version, check the code.

- ``steps(store, Account, "a-1")`` iterates the log as ``Step``\\ s: each event and the state
  right after it. It reads in pages, so memory stays bounded on a log of any length.
- ``state_at(store, Account, "a-1", version)`` rebuilds the actor at one version (from the
  newest snapshot at or below it, when the class takes snapshots).
- ``check(store, Account, "a-1")`` re-runs the class against the log without writing anything
  and reports the first divergence: a state that differs from a snapshot the log holds, a
  recovery whose ``run()`` body no longer makes the durable calls the log recorded, or a
  recorded message (a durable ``send``) whose turn now emits something else.
- ``export_jsonl`` / ``import_jsonl`` move logs in and out of stores as JSON Lines (what
  ``python -m actors export`` and ``import`` do); golden logs in a test suite use them.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Generic, TextIO, TypeVar

import attrs
import trio

from eventstore import (
    NO_STREAM,
    Codec,
    DecodeError,
    EventStore,
    NewEvent,
    RecordedEvent,
)

from ._actor import Actor
from ._actor_class import check_actor_class, check_actor_id, kind_of, overrides
from ._errors import ActorError, RecoveryError
from ._events import Received, SleepStarted
from ._journal import recover_into
from ._record import DurableRecord
from ._rerun import rerun
from ._rerun_turn import MessageTurn
from ._rerun_turn import begin as begin_turn
from ._rerun_turn import rerun as rerun_turn
from ._state import ActorState

__all__ = [
    "CheckResult",
    "Divergence",
    "ReplayError",
    "Step",
    "changes",
    "check",
    "export_jsonl",
    "import_jsonl",
    "state_at",
    "steps",
]

A = TypeVar("A", bound=Actor)


class ReplayError(ActorError, ValueError):
    """A log cannot be replayed or imported as it is: a version gap, a bad line, a bad range."""


@attrs.define
class Step(Generic[A]):
    """One event of a replayed log and the actor right after it.

    ``state`` is the replaying actor itself, which the next step changes in place (copying the
    state at every step would make replay slow): keep ``state.snapshot()`` or a copy of the
    fields you need, not the object. (Not frozen either, for the same reason: speed.)
    ``recorded`` is built when it is first read, on a store that hands out stored rows (SQLite):
    a replay that only looks at ``event`` and ``state`` does not pay for it.
    """

    recorded: RecordedEvent
    event: Any
    state: A

    @property
    def version(self) -> int:
        """The version of the log that ``state`` reflects."""
        held = _held(self)
        return held[2][0] if type(held) is tuple else held.version  # type: ignore[no-any-return]


def _lazy_recorded() -> Callable[[Step[Any]], Any]:
    """Let a ``Step``'s ``recorded`` slot hold a stored row (``eventstore``'s ``Held``) until
    ``recorded`` is first read; return the function that reads the slot as it is.

    As with ``RecordedEvent.id``, ``recorded`` becomes a property over the attrs slot, so every
    reader (equality, repr, ``attrs.evolve``) sees the ``RecordedEvent``.
    """
    slot = Step.__dict__["recorded"]
    get, put = slot.__get__, slot.__set__

    def read(step: Step[Any]) -> RecordedEvent:
        value = get(step)
        if type(value) is tuple:
            build, stream, row = value
            value = build(stream, row)
            put(step, value)
        return value  # type: ignore[no-any-return]

    setattr(Step, "recorded", property(  # noqa: B010
        read, put, doc="The event as stored: stream, version, position, type, data, id."))
    return get  # type: ignore[no-any-return]


_held: Final = _lazy_recorded()


def _fast_step() -> Callable[[Any, Any, Any], Step[Any]]:
    """``Step``'s constructor for the replay loop: sets the slots without ``__init__``."""
    new = object.__new__
    put_recorded = Step.__dict__["recorded"].fset

    def make(recorded: Any, event: Any, state: Any) -> Step[Any]:
        step: Step[Any] = new(Step)
        step.event = event
        step.state = state
        put_recorded(step, recorded)
        return step

    return make


_step: Final = _fast_step()


def steps(store: EventStore, cls: type[A], actor_id: str, *, from_version: int = 1,
          to_version: int | None = None) -> AsyncIterator[Step[A]]:
    """Iterate the actor's log from ``from_version`` to ``to_version`` (inclusive) as steps.

    The state before ``from_version`` is rebuilt first (from a snapshot when the class takes
    snapshots). Runtime events (durable calls, timers) are folded into the actor's record and
    ``notifier`` as at recovery; the others go to ``apply``. Reads in pages; each page is a
    checkpoint, and cancelling leaves nothing behind. Close it with ``contextlib.aclosing``
    when you stop early.

    Raises:
        ReplayError: the log has a gap (events deleted without a snapshot covering them).
        DecodeError: an event cannot be decoded with the current code (names its version).
    """
    if from_version < 1:
        raise ReplayError(f"from_version must be >= 1, got {from_version}")
    state = ActorState(check_actor_class(cls), check_actor_id(actor_id), store.codec)
    return _walk(state, store, from_version=from_version, to_version=to_version)


def _stream(state: ActorState) -> str:
    return f"{kind_of(state.cls)}-{state.actor_id}"


async def _walk(state: ActorState, store: EventStore, *, from_version: int = 1,
                to_version: int | None = None,
                before: Callable[[RecordedEvent, Any], None] | None = None,
                ) -> AsyncGenerator[Step[Any], None]:
    """``steps`` over a given state (``check`` uses the state afterwards); ``before`` is called
    with each event before it is folded."""
    stream = _stream(state)
    try:
        if from_version > 1:
            await recover_into(state, store, stream, to_version=from_version - 1,
                               snapshots=state.cls.snapshot_every is not None)
        actor = state.actor
        codec = state.codec
        step = _step
        # A hook that reads each RecordedEvent (check's message turns) takes the plain pages.
        rows = None if before is not None else store._row_pages(
            stream, from_version=state.version + 1, to_version=to_version)
        if rows is None:
            decode = codec.decode
            fold = state.fold_recorded
            async with contextlib.aclosing(store.read_pages(
                    stream, from_version=state.version + 1, to_version=to_version)) as pages:
                async for page in pages:
                    for recorded in page:
                        event = decode(recorded)
                        if before is not None:
                            before(recorded, event)
                        fold(recorded, event)
                        yield step(recorded, event, actor)
            return
        # Stored rows, most of them decoded by the store's reader thread: the step builds its
        # RecordedEvent only if someone reads it.
        fold_next = state.fold_next
        async with contextlib.aclosing(rows):
            async for rows_page in rows:
                build, name, typed = rows_page.build, rows_page.stream, rows_page.typed
                for row, event in zip(rows_page.rows, rows_page.events, strict=True):
                    kind = row[2]
                    # The reader's event, unless a class was named again since it decoded it
                    # (the codec's typed_decoders, read without the property: per event).
                    if event is not None and (typed is codec._typed or
                                              type(event) is codec.typed_classes.get(kind)):
                        held: Any = (build, name, row)
                    else:
                        event, held = rows_page.decode(row, codec)
                    fold_next(row[0], event, name, kind)
                    yield step(held, event, actor)
    except RecoveryError as exc:
        raise ReplayError(str(exc)) from exc


async def state_at(store: EventStore, cls: type[A], actor_id: str,
                   version: int | None = None) -> A:
    """The actor rebuilt at ``version`` (default: the end of its log), as recovery does.

    Starts from the newest snapshot at or below ``version`` when the class takes snapshots, and
    folds the log after it. A checkpoint.

    Raises:
        ReplayError: the log does not reach ``version``.
        RecoveryError: the log cannot be folded (a gap, a snapshot ahead of the log).
    """
    state = ActorState(check_actor_class(cls), check_actor_id(actor_id), store.codec)
    stream = _stream(state)
    await recover_into(state, store, stream, to_version=version,
                       snapshots=state.cls.snapshot_every is not None)
    if version is not None and state.version != version:
        raise ReplayError(f"stream {stream!r} has no version {version}: it ends at "
                          f"version {state.version}")
    actor: A = state.actor  # type: ignore[assignment]
    return actor


# -- the determinism check -----------------------------------------------------------------------


@attrs.frozen(eq=False)
class Divergence:
    """Where the current code and a recorded log part ways: the first such version.

    ``error`` is the ``NonDeterminismError`` (or other exception) a re-run raised; ``expected``
    and ``actual`` are the snapshot's state and the folded one when a state differs.
    """

    stream: str
    version: int
    reason: str
    error: BaseException | None = None
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        return f"stream {self.stream!r}, version {self.version}: {self.reason}"


@attrs.frozen
class CheckResult:
    """What ``check`` looked at, and the first divergence (None when the code fits the log)."""

    stream: str
    events: int
    snapshots: int
    reruns: int
    divergence: Divergence | None
    turns: int = 0
    """Message turns re-run: those of messages the log recorded (``Received``)."""

    @property
    def ok(self) -> bool:
        return self.divergence is None


async def check(store: EventStore, cls: type[Actor], actor_id: str, *,
                to_version: int | None = None,
                progress: Callable[[int], None] | None = None) -> CheckResult:
    """Re-run ``cls`` against the actor's recorded log without writing anything.

    Walks the log in order and stops at the first divergence:

    - at every snapshot the store holds, the state folding the log gives (fields, durable-call
      record, timers) must equal the snapshot's: a changed ``apply`` shows up here;
    - at every point where a recovery of ``run()`` could resume (each ``durable.sleep`` of
      ``run()``, and the end of the log while ``run()`` is unfinished), ``on_start`` and
      ``run()`` are re-run from that state as recovery would run them, until they make a
      durable call the log has not recorded yet (or wait for what only a message would
      bring). A ``NonDeterminismError``, any other exception, or a state changed again before
      ``run()`` reaches its last recorded call (it redid what the log holds) is a divergence.
      The re-run's own events and commits are thrown away.
    - every message turn whose message the log recorded (a durable ``send``: its turn begins
      with ``Received``) is re-run: ``receive(message)`` on the state before it, its durable
      calls (time, sleeps, steps, calls to other actors) answered from the log, never run
      again. What it emits (events, sends, timers) must be what the log holds after
      ``Received``; a different event, one more or one fewer (where the log holds the turn's
      end), a durable call the turn did not make, or an exception is a divergence.

    Turns of ``ask`` and ``tell`` messages, and timer wake-ups, are not re-run: their inputs are
    not in the log. A checkpoint.

    Args:
        progress: called with each version as it is folded (the CLI draws a progress bar).

    Raises:
        ReplayError, DecodeError: the log itself cannot be replayed (a gap, an unknown type).
    """
    state = ActorState(check_actor_class(cls), check_actor_id(actor_id), store.codec)
    stream = _stream(state)
    has_run = overrides(state.cls, "run")
    snapshots = await _snapshot_versions(store, stream, to_version)
    events = reruns = turns = 0
    result = None
    resume_at = None  # the last version a re-run started from
    turn: MessageTurn | None = None  # a recorded message turn being gathered
    starting: MessageTurn | None = None
    previous: Any = None

    def before(recorded: RecordedEvent, event: Any) -> None:
        nonlocal starting, previous
        # A resent id the actor had processed is recorded without data: nothing ran.
        if isinstance(event, Received) and (event.data is not None or event.message_id is None):
            starting = begin_turn(state, recorded, event, previous)
        previous = event

    async def finish(found: Divergence | None) -> Divergence | None:
        """Re-run the gathered turn; the earlier of its divergence and ``found``."""
        nonlocal turn, turns
        assert turn is not None
        gathered, turn = turn, None
        turns += 1
        diverged = await rerun_turn(gathered, store)
        if diverged is None:
            return found
        version, reason, error = diverged
        if found is not None and found.version <= version:
            return found
        return Divergence(stream, version, reason, error=error)

    async with contextlib.aclosing(_walk(state, store, to_version=to_version,
                                         before=before)) as walk:
        async for step in walk:
            recorded, event = step.recorded, step.event
            events += 1
            if progress is not None:
                progress(recorded.version)
            if turn is not None and not turn.take(recorded, event):
                result = await finish(None)
            if starting is not None:
                turn, starting = starting, None
            if result is None and recorded.version in snapshots:
                result = await _compare_snapshot(state, store, stream)
            if result is None and has_run and isinstance(event, SleepStarted) \
                    and event.scope == "run":
                reruns += 1
                resume_at = recorded.version
                result = await _recover(state, store, stream, recorded)
            if result is not None:
                break
    if turn is not None:
        result = await finish(result)
    if result is None and has_run and not state.run_done and state.version and \
            resume_at != state.version:
        reruns += 1
        result = await _recover(state, store, stream, None)
    return CheckResult(stream, events, len(snapshots), reruns, result, turns)


async def _snapshot_versions(store: EventStore, stream: str, to_version: int | None) -> set[int]:
    """The versions of every snapshot of ``stream`` up to ``to_version``."""
    found: set[int] = set()
    below = to_version
    while below is None or below >= 1:
        snapshot = await store.load_snapshot(stream, max_version=below)
        if snapshot is None:
            break
        found.add(snapshot.version)
        below = snapshot.version - 1
    return found


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), to compare with stored data."""
    return json.loads(json.dumps(value))


async def _compare_snapshot(state: ActorState, store: EventStore,
                            stream: str) -> Divergence | None:
    snapshot = await store.load_snapshot(stream, max_version=state.version)
    if snapshot is None or snapshot.version != state.version:
        return None
    actual = _plain(state.snapshot())
    if snapshot.state == actual or _relaid(snapshot.state, state) == actual:
        return None
    listed = "; ".join(f"{path}: {before!r} in the snapshot, {after!r} by folding"
                       for path, before, after in changes(snapshot.state, actual)[:5])
    return Divergence(stream, state.version,
                      f"the snapshot at this version differs from the state folding the log "
                      f"gives ({listed}): apply() or the state's fields changed since the "
                      "snapshot was taken", expected=snapshot.state, actual=actual)


def _relaid(data: Any, state: ActorState) -> Any:
    """A snapshot's ``data`` with its durable-call record laid out as this code dumps it (earlier
    code put its scopes in the order the state had met them); ``data`` if it does not load."""
    try:
        record = DurableRecord.load(data["record"], state.codec)
    except Exception:
        return data
    return {**data, "record": _plain(record.dump(state.codec))}


async def _recover(state: ActorState, store: EventStore, stream: str,
                   recorded: RecordedEvent | None) -> Divergence | None:
    found = await rerun(state, store, recorded)
    if found is None:
        return None
    reason, error = found
    return Divergence(stream, state.version, reason, error=error)


def changes(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON-compatible values differ: ``(path, before, after)`` for each leaf.

    Paths read like ``balance`` or ``items[2].qty``; a key present on one side only has
    ``...`` (``Ellipsis``) on the other.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[tuple[str, Any, Any]] = []
        for key in list(before) + [k for k in after if k not in before]:
            where = f"{path}.{key}" if path else str(key)
            found.extend(changes(before.get(key, ...), after.get(key, ...), where))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for n, (a, b) in enumerate(zip(before, after, strict=True)):
            found.extend(changes(a, b, f"{path}[{n}]"))
        return found
    return [] if before == after else [(path or "(state)", before, after)]


# -- JSON Lines ----------------------------------------------------------------------------------


def _event_json(recorded: RecordedEvent) -> dict[str, Any]:
    """One recorded event as a JSON Lines object (what ``export`` writes)."""
    return {"stream": recorded.stream, "version": recorded.version,
            "position": recorded.position, "recorded_at": recorded.recorded_at.isoformat(),
            "type": recorded.type, "data": recorded.data, "metadata": recorded.metadata,
            "id": str(recorded.id)}


async def export_jsonl(store: EventStore, stream: str, out: TextIO, *,
                       progress: Callable[[int], None] | None = None) -> int:
    """Write ``stream``'s events, and its snapshots after their versions, as JSON Lines.

    Event lines hold ``stream, version, position, recorded_at, type, data, metadata, id``; a
    snapshot is a line ``{"snapshot": {"stream", "version", "state"}}``. Reads in pages.

    Args:
        progress: called with each version as it is written (the CLI draws a progress bar).

    Returns:
        The number of events written.
    """
    snapshots = await _snapshot_versions(store, stream, None)
    written = 0
    async with contextlib.aclosing(store.read(stream)) as events:
        async for recorded in events:
            out.write(json.dumps(_event_json(recorded), ensure_ascii=False) + "\n")
            written += 1
            if progress is not None:
                progress(recorded.version)
            if recorded.version in snapshots:
                snapshot = await store.load_snapshot(stream, max_version=recorded.version)
                assert snapshot is not None
                out.write(json.dumps({"snapshot": {"stream": stream, "version": snapshot.version,
                                                   "state": snapshot.state}},
                                     ensure_ascii=False) + "\n")
    return written


@attrs.define
class _Parsed:
    events: dict[str, list[NewEvent]] = attrs.Factory(dict)
    snapshots: list[tuple[str, int, Any]] = attrs.Factory(list)


async def import_jsonl(store: EventStore, lines: Iterable[str], *,
                       source: str = "the log") -> dict[str, int]:
    """Append the events of a JSON Lines log to ``store``; resumable after a crash.

    Every line is checked first (JSON, fields, versions consecutive from 1 in each stream, event
    ids unique, the type decodes with the current code), then every stream of the log: it must
    be empty in ``store``, or hold exactly the log's events (the same ids at the same versions:
    what an import that was interrupted already wrote). Only then is anything written: each
    empty stream in one atomic batch with the events' ids, data and metadata, then the snapshot
    lines (saving one again replaces it with the same state). So the same call after a crash
    finishes the job without duplicates. Positions are ``store``'s own; recording times are the
    lines' ``recorded_at`` (the import's time for a line without one); an event line without an
    ``id`` gets one derived from its stream, version and content, so a re-run gives it the same
    id.

    Not one transaction across streams: a crash mid-way leaves some streams imported. Event ids
    that ``store`` holds in another stream are only found when that stream is appended
    (``DuplicateEventId``), after the streams before it.

    Args:
        lines: the log's lines, e.g. an open text file.
        source: how errors name the log (a file name).

    Returns:
        How many events each stream of the log received: 0 for one that held them already.

    Raises:
        ReplayError: a line is invalid (named with its number), or a stream holds other events;
            nothing is written then.
    """
    await trio.lowlevel.checkpoint()  # also for an empty log: a checkpoint on every path
    return await _write(store, _parse(store.codec, lines, source))


async def _write(store: EventStore, parsed: _Parsed) -> dict[str, int]:
    """Append what ``parsed`` holds to the streams that do not hold it yet, then its snapshots."""
    held = {stream: await _holds(store, stream, events)
            for stream, events in parsed.events.items()}
    for stream, events in parsed.events.items():
        if not held[stream]:
            await store.append(stream, events, expected_version=NO_STREAM)
    for stream, version, state in parsed.snapshots:
        await store.save_snapshot(stream, version, state)
    return {stream: 0 if held[stream] else len(events)
            for stream, events in parsed.events.items()}


async def _holds(store: EventStore, stream: str, events: list[NewEvent]) -> bool:
    """Whether ``stream`` holds exactly ``events`` (by id); False when it is empty.

    Raises:
        ReplayError: it holds other events.
    """
    last = await store.last_version(stream)
    if not last:
        return False
    if last == len(events):
        differs = None
        async with contextlib.aclosing(store.read(stream)) as stored:
            async for recorded in stored:
                if recorded.id != events[recorded.version - 1].id:
                    differs = recorded.version
                    break
        if differs is None:
            return True
        why = f"its event {differs} has another id than the log's"
    else:
        why = f"the log has {len(events)}"
    raise ReplayError(f"stream {stream!r} already holds {last} events in the target store and "
                      f"they are not the log's ({why}): import into a store where the stream is "
                      "empty, or holds exactly the log's events (a re-run after a crash); "
                      "nothing was written")


def _parse(codec: Codec, lines: Iterable[str], source: str) -> _Parsed:
    parsed = _Parsed()
    now = datetime.now(UTC)
    ids: dict[uuid.UUID, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        item = _load_line(line, where)
        if "snapshot" in item:
            parsed.snapshots.append(_parse_snapshot(item["snapshot"], parsed, where))
            continue
        stream, version, new = _parse_event(item, where)
        events = parsed.events.setdefault(stream, [])
        if version != len(events) + 1:
            raise ReplayError(f"{where}: stream {stream!r} " + (
                f"starts at version {version}; an imported log starts at version 1"
                if not events else f"goes from version {len(events)} to {version}: "
                "versions must follow each other (a gap, or lines out of order)"))
        if new.id in ids:
            raise ReplayError(f"{where}: id {new.id} is already the id of {ids[new.id]}: every "
                              "event needs its own id (drop the 'id' to have one derived)")
        ids[new.id] = f"stream {stream!r} version {version} (line {number})"
        try:
            codec.decode(RecordedEvent(stream, version, 0, new.type, new.data, new.metadata,
                                       new.id, now))
        except DecodeError as exc:
            raise ReplayError(f"{where}: {exc}") from None
        events.append(new)
    return parsed


def _load_line(line: str, where: str) -> dict[str, Any]:
    """One line of a JSON Lines log as its object; ``where`` names the line in errors."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        truncated = "" if line.endswith("\n") else (
            "; the line has no newline at its end: the file looks truncated")
        raise ReplayError(f"{where}: not valid JSON ({exc}){truncated}") from None
    if not isinstance(item, dict):
        raise ReplayError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return item


def _parse_event(item: dict[str, Any], where: str) -> tuple[str, int, NewEvent]:
    stream, version, kind = item.get("stream"), item.get("version"), item.get("type")
    if not isinstance(stream, str) or not stream:
        raise ReplayError(f"{where}: 'stream' must be a non-empty string, got {stream!r}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReplayError(f"{where}: 'version' must be an int, got {version!r}")
    if not isinstance(kind, str) or not kind:
        raise ReplayError(f"{where}: 'type' must be a non-empty string, got {kind!r}")
    if "data" not in item:
        raise ReplayError(f"{where}: the event has no 'data'")
    metadata = item.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ReplayError(f"{where}: 'metadata' must be an object, got {metadata!r}")
    try:
        event_id = uuid.UUID(item["id"]) if "id" in item else _derived_id(
            stream, version, kind, item["data"], metadata)
    except (TypeError, ValueError, AttributeError):
        raise ReplayError(f"{where}: 'id' must be a UUID, got {item['id']!r}") from None
    at = item.get("recorded_at")
    try:
        recorded_at = None if at is None else datetime.fromisoformat(at)
    except (TypeError, ValueError):
        recorded_at = None
    if at is not None and (recorded_at is None or recorded_at.utcoffset() is None):
        raise ReplayError(f"{where}: 'recorded_at' must be an ISO 8601 time with a UTC offset "
                          f"(as export writes it), got {at!r}; or drop it")
    return stream, version, NewEvent(type=kind, data=item["data"], metadata=metadata,
                                     id=event_id, recorded_at=recorded_at)


_IMPORTED = uuid.uuid5(uuid.NAMESPACE_URL, "urn:trio-actors:import")


def _derived_id(stream: str, version: int, kind: str, data: Any, metadata: Any) -> uuid.UUID:
    """The id of an event line without one: the same for the same line, so a re-run matches."""
    text = json.dumps([stream, version, kind, data, metadata], sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return uuid.uuid5(_IMPORTED, text)


def _parse_snapshot(item: Any, parsed: _Parsed, where: str) -> tuple[str, int, Any]:
    if not isinstance(item, dict) or "state" not in item:
        raise ReplayError(f"{where}: a snapshot needs 'stream', 'version' and 'state'")
    stream, version = item.get("stream"), item.get("version")
    held = len(parsed.events.get(stream, ())) if isinstance(stream, str) else 0
    if not isinstance(stream, str) or isinstance(version, bool) or \
            not isinstance(version, int) or not 1 <= version <= held:
        raise ReplayError(f"{where}: a snapshot of stream {stream!r} at version {version!r} "
                          "must follow the event of that version")
    return stream, version, item["state"]
