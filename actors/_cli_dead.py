"""``dead-letters``: the inbox messages actors set aside, and retrying or dropping them.

A message whose turn kept failing is recorded as ``DeadLettered`` in its actor's log and
consumed. Its resolution is recorded in the ``$dead-letters`` stream (``DeadLetterResolved``):
``retried`` stores the message again in the actor's inbox, in the same transaction, ``dropped``
only records the decision. Neither needs the message's class: the message is stored as it was.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

import attrs

from eventstore import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion

from ._cli_util import CliError, iso, list_streams, suggest
from ._events import DeadLettered, DeadLetterResolved

DEAD_LETTERS = "$dead-letters"
"""The stream where retried and dropped dead letters are recorded."""

ACTIONS = ("retried", "dropped")

_NAMESPACE = uuid.UUID("0b6a4d0e-5f53-4f4e-8c53-7d1f0f0c2a61")


@attrs.frozen
class DeadLetter:
    """One dead letter: where it is recorded, the message, and how it failed."""

    stream: str
    version: int
    at: datetime
    seq: int
    message_id: str | None
    type: str
    data: Any
    error: str
    attempts: int
    resolved: str | None = None
    """``retried`` or ``dropped`` once resolved, else None."""

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "seq": self.seq, "message_id": self.message_id,
                "type": self.type, "data": self.data, "error": self.error,
                "attempts": self.attempts, "at": iso(self.at), "version": self.version,
                "resolved": self.resolved}


def _dead_letter(recorded: Any) -> DeadLetter:
    data = recorded.data
    return DeadLetter(recorded.stream, recorded.version, recorded.recorded_at, data["seq"],
                      data.get("message_id"), data["type"], data.get("data"), data["error"],
                      data["attempts"])


async def _resolutions(store: EventStore) -> tuple[dict[tuple[str, int], str], int]:
    """What ``$dead-letters`` records, by ``(stream, seq)``, and the stream's version."""
    found: dict[tuple[str, int], str] = {}
    version = 0
    async with contextlib.aclosing(store.read(DEAD_LETTERS)) as events:
        async for recorded in events:
            version = recorded.version
            data = recorded.data
            if isinstance(data, dict):
                found[(data["stream"], data["seq"])] = data["action"]
    return found, version


async def dead_letters(store: EventStore, *, resolved: bool = False) -> list[DeadLetter]:
    """Every dead letter in ``store`` not yet retried or dropped (all of them with ``resolved``),
    in the order they were recorded. Reads the store once (``read_all`` over ``DeadLettered``)."""
    done, _ = await _resolutions(store)
    found = []
    types = [store.codec.type_name(DeadLettered)]
    async with contextlib.aclosing(store.read_all(types=types)) as events:
        async for recorded in events:
            letter = _dead_letter(recorded)
            action = done.get((letter.stream, letter.seq))
            if action is None or resolved:
                found.append(attrs.evolve(letter, resolved=action))
    return found


async def _find(store: EventStore, stream: str, seq: int, url: str) -> DeadLetter:
    """The dead letter ``seq`` of ``stream``.

    Raises:
        CliError: the stream has no events, or no dead letter ``seq``.
    """
    if not await store.last_version(stream):
        names = sorted({letter.stream for letter in await dead_letters(store, resolved=True)})
        if not names:
            names = [info.stream for info in await list_streams(store)]
        raise CliError(f"stream {stream!r} has no events in {url}" + suggest(stream, names)
                       + " (`python -m actors dead-letters URL` lists the dead letters)")
    name = store.codec.type_name(DeadLettered)
    seqs = []
    async with contextlib.aclosing(store.read(stream)) as events:
        async for recorded in events:
            if recorded.type == name:
                letter = _dead_letter(recorded)
                if letter.seq == seq:
                    return letter
                seqs.append(letter.seq)
    listed = ", ".join(map(str, seqs))
    raise CliError(f"stream {stream!r} has no dead letter {seq}" + (
        f"; its dead letters are {listed}" if seqs else "; it has no dead letters")
        + " (SEQ is the message's inbox sequence, as `dead-letters URL` shows it)")


def retry_id(letter: DeadLetter) -> uuid.UUID:
    """The inbox id a retried dead letter is stored with: the same on every retry of it."""
    return uuid.uuid5(_NAMESPACE, f"{letter.stream}\x00{letter.seq}\x00retry")


async def resolve(store: EventStore, stream: str, seq: int, action: str, *,
                  url: str = "the store") -> DeadLetter:
    """Record that the dead letter ``seq`` of ``stream`` is ``action`` (retried or dropped).

    ``retried`` stores the message again in the actor's inbox, with its ``message_id`` (so the
    actor's de-duplication still applies) and an inbox id derived from the dead letter, in the
    transaction that appends ``DeadLetterResolved`` to ``$dead-letters``: both happen or
    neither, and a dead letter is resolved once. A checkpoint.

    Raises:
        CliError: no such dead letter, it is already resolved, or another resolution was
            recorded at the same moment (nothing was written then).
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    letter = await _find(store, stream, seq, url)
    done, version = await _resolutions(store)
    before = done.get((stream, seq))
    if before is not None:
        raise CliError(f"dead letter {seq} of {stream!r} was already {before}: nothing to do "
                       "(a retried message that failed again is a new dead letter, with a new "
                       "SEQ)")
    event = store.codec.new_event(DeadLetterResolved(stream, seq, action),
                                  id=uuid.uuid5(_NAMESPACE, f"{stream}\x00{seq}"))
    enqueue = []
    if action == "retried":
        metadata = {} if letter.message_id is None else {"message_id": letter.message_id}
        enqueue.append((stream, NewEvent(letter.type, letter.data, metadata, retry_id(letter))))
    try:
        await store.append(DEAD_LETTERS, [event], expected_version=version or NO_STREAM,
                           enqueue=enqueue)
    except WrongExpectedVersion:
        raise CliError(f"{DEAD_LETTERS} changed while dead letter {seq} of {stream!r} was "
                       "being resolved (another retry or drop): nothing was written; run the "
                       "command again") from None
    return attrs.evolve(letter, resolved=action)
