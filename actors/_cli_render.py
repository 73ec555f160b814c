"""How ``log`` shows the runtime's messaging events: one readable line each.

Sends, received messages, recorded replies, durable calls, steps and dead letters read as
sentences (``sent bank.Deposit to Account-a1 (id t-1)``) instead of their stored fields. A
recorded value (a reply, a call's answer, a step's result) is decoded with the store's codec and
shown as Python writes it; one whose class is not importable here (give its module with ``-m``)
is shown as stored. ``--json`` always prints the events as stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from eventstore import Codec, RecordedEvent

from ._cli_util import to_json
from ._inbox import VALUE


def _value(codec: Codec, value: Any) -> str:
    """A recorded value (the codec's tagged encoding) as Python writes it, else as stored."""
    with contextlib.suppress(Exception):
        return repr(codec.decode_value(value))
    return to_json(value)


def _id(message_id: Any) -> str:
    return "" if message_id is None else f" (id {message_id})"


def _key(data: dict[str, Any]) -> str:
    """A durable call's key: ``scope#index``, and its task when it is not the scope's own."""
    branch = data.get("branch") or ()
    task = f" (task {'.'.join(map(str, branch))})" if branch else ""
    return f"{data['scope']}#{data['index']}{task}"


def _sent(data: dict[str, Any], codec: Codec) -> str:
    return f"sent {data['type']} to {data['to']}{_id(data.get('message_id'))}"


def _message(data: dict[str, Any], codec: Codec) -> str:
    """A stored message: its type and data, or a plain value as Python writes it."""
    if data["type"] == VALUE:
        return f"value {_value(codec, data.get('data'))}"
    return f"{data['type']} {to_json(data.get('data'))}"


def _received(data: dict[str, Any], codec: Codec) -> str:
    if data.get("data") is None and data.get("message_id") is not None:
        return (f"received #{data['seq']} {data['type']} again{_id(data['message_id'])}: "
                "processed before, consumed without running")
    replied = "" if data.get("replied_at") is None else ", replied None"
    return f"received #{data['seq']} {_message(data, codec)}{_id(data.get('message_id'))}{replied}"


def _consumed(data: dict[str, Any], codec: Codec) -> str:
    return f"consumed #{data['seq']}: its turn, cut by a commit point, is complete"


def _replied(data: dict[str, Any], codec: Codec) -> str:
    return f"replied {_value(codec, data['value'])} to id {data['message_id']}"


def _called(data: dict[str, Any], codec: Codec) -> str:
    call = f"call {_key(data)}: ask {data['target']}{_id(data['message_id'])}"
    error = data.get("error")
    if error is not None:
        text = error.get("text", error) if isinstance(error, dict) else error
        return f"{call} failed: {text}"
    return f"{call} answered {_value(codec, data['value'])}"


def _step(data: dict[str, Any], codec: Codec) -> str:
    step = f"step {_key(data)}: {data['function']}"
    if data.get("error") is not None:
        return f"{step} failed: {data['error']}"
    return f"{step} returned {_value(codec, data['value'])}"


def _dead(data: dict[str, Any], codec: Codec) -> str:
    attempts = data["attempts"]
    return (f"dead letter #{data['seq']} {_message(data, codec)}"
            f"{_id(data.get('message_id'))} after {attempts} attempt"
            f"{'' if attempts == 1 else 's'}: {data['error']}")


def _resolved(data: dict[str, Any], codec: Codec) -> str:
    return f"dead letter #{data['seq']} of {data['stream']} {data['action']}"


_SENTENCES: dict[str, Callable[[dict[str, Any], Codec], str]] = {
    "actors.MessageSent": _sent,
    "actors.Received": _received,
    "actors.Consumed": _consumed,
    "actors.ReplyRecorded": _replied,
    "actors.CallReplied": _called,
    "actors.StepRecorded": _step,
    "actors.DeadLettered": _dead,
    "actors.DeadLetterResolved": _resolved,
}


def sentence(recorded: RecordedEvent, codec: Codec) -> str | None:
    """The event as one readable line, or None for an event shown as its data."""
    render = _SENTENCES.get(recorded.type)
    if render is None or not isinstance(recorded.data, dict):
        return None
    try:
        return render(recorded.data, codec)
    except (KeyError, TypeError, AttributeError):
        return None  # not the shape this release writes: show it as stored
