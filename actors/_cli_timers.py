"""``timers``: every pending notification and unfinished durable sleep in a store.

Each actor's timers are folded from its newest snapshot and the runtime's events after it; the
actor's own events are not decoded, so its classes need not be importable. A timer token whose
class is not importable (give its module with ``-m``) is shown as its stored form.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import attrs

from eventstore import DecodeError, EventStore

from ._actor import Actor
from ._events import NotificationScheduled, ScopeCommitted, SleepStarted, SystemEvent
from ._index import WorkIndex
from ._state import ActorState


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
    streams.update(index.wake)
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
            state.restore(_decodable_snapshot(snapshot.state, codec.decode_value),
                          snapshot.version, fields=False)
    start = state.version + 1
    system = {codec.type_name(cls) for cls in SystemEvent.__subclasses__()} - {
        codec.type_name(ScopeCommitted)}  # it marks user events, which are not read here
    decode = codec.decode
    async with contextlib.aclosing(store.read(stream, from_version=start)) as events:
        async for recorded in events:
            if recorded.type in system:
                state.fold(_decodable(decode(recorded), codec.decode_value))
    return state


def _undecoded(token: Any) -> str:
    """A stand-in for a token that cannot be decoded here: its stored form, as text."""
    return f"<undecoded {json.dumps(token, ensure_ascii=False, default=str)}>"


def _decodable(event: Any, decode_value: Any) -> Any:
    """``event``, with a token that does not decode replaced by its stored form."""
    if not isinstance(event, NotificationScheduled):
        return event
    try:
        decode_value(event.token)
    except DecodeError:
        return attrs.evolve(event, token=_undecoded(event.token))
    return event


def _decodable_snapshot(state: Any, decode_value: Any) -> Any:
    """A snapshot's data, with pending tokens that do not decode replaced by their stored form."""
    pending = state.get("notifier", {}).get("pending") if isinstance(state, dict) else None
    if not isinstance(pending, list):
        return state
    fixed = []
    for item in pending:
        seq, at, token = item
        try:
            decode_value(token)
        except DecodeError:
            token = _undecoded(token)
        fixed.append([seq, at, token])
    return {**state, "notifier": {**state["notifier"], "pending": fixed}}
