"""Durable calls: ``await ref.ask(msg)`` inside a turn records the reply in the caller's log.

The call is sent with a deterministic message id (the caller's stream, scope and call index), so
the callee, which records its reply per id, answers a resend with the same reply and runs its
handler once. The caller records ``CallReplied`` with its pending events (no commit of its
own): if the caller's turn dies before committing, its re-execution sends again with the same
id and gets the callee's recorded reply; once committed, a re-execution gets the reply from its
own log without sending at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eventstore import Codec
from eventstore._script import portable_module

from ._calls import describe, next_call
from ._errors import ActorStopped, CallFailed, NonDeterminismError
from ._events import CallReplied
from ._turn import Turn

Send = Callable[[str | None], Awaitable[Any]]


def call_id(turn: Turn, index: int) -> str:
    """The id a durable call is sent with: the same on every execution of the scope."""
    return f"{turn.cell.stream}/{turn.scope}/{'.'.join(map(str, (*turn.branch, index)))}"


def _failure(exc: Exception, codec: Codec) -> dict[str, Any]:
    kind = type(exc)
    try:
        args = codec.encode_value(list(exc.args))
    except Exception:
        args = None  # rebuilt as CallFailed on replay
    return {"type": f"{portable_module(kind.__module__)}:{kind.__qualname__}", "args": args,
            "text": f"{kind.__name__}: {exc}"}


def _raise_again(target: str, error: dict[str, Any], codec: Codec) -> None:
    """Raise a recorded failure as its own class, rebuilt from its args, or as ``CallFailed``."""
    rebuilt: object = None
    if error.get("args") is not None:
        try:
            kind = codec._import(str(error["type"]))  # the codec's lookup of module:QualName
            rebuilt = None if kind is None else kind(*codec.decode_value(error["args"]))
        except Exception:
            rebuilt = None
    if not isinstance(rebuilt, Exception):
        raise CallFailed(target, str(error.get("text")))
    raise rebuilt


async def durable_ask(turn: Turn, target: str, send: Send, message_id: str | None = None
                      ) -> Any:
    """Make (or replay) the durable call at ``turn``'s next key; ``send(id)`` asks the callee,
    with ``message_id`` when the caller gave one, else the call's deterministic id.

    In a scope that can never run again (a message sent without an id) there is nothing to
    replay and no stable key to deduplicate on, and ``on_start`` runs under one scope name at
    every activation, so a key there would meet an earlier activation's reply: in both the call
    is a plain ask, recorded nowhere.
    """
    if not turn.can_run_again or turn.scope == "start":
        return await send(message_id)
    cell = turn.cell
    codec = cell.codec
    scope, index, recorded = next_call(turn)
    if recorded is not None:
        if not isinstance(recorded, CallReplied) or recorded.target != target:
            raise NonDeterminismError(cell.name, scope, index, describe(recorded),
                                      f"ask({target})")
        if recorded.error is not None:
            _raise_again(target, recorded.error, codec)
        return codec.decode_value(recorded.value)
    cell.clock.time()  # a re-run (``check``) stops at a call the log has not recorded
    if message_id is None:
        message_id = call_id(turn, index)
    try:
        value = await send(message_id)
    except ActorStopped:
        raise  # the callee may not have run: nothing to record, a re-execution sends again
    except Exception as exc:
        cell.emit_system(CallReplied(scope, index, target, message_id, None,
                                     _failure(exc, codec), turn.branch))
        raise
    encoded = codec.encode_value(value)  # the callee recorded it: it is encodable
    cell.emit_system(CallReplied(scope, index, target, message_id, encoded, None, turn.branch))
    return codec.decode_value(encoded)
