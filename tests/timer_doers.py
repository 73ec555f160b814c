"""What the timer red-team tests (``test_redteam_timers*.py``) share: the event their actors
record, a base for those actors, and the check that a log folds to the live state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import attrs

import actors
import eventstore
from actors import durable, replay
from actors.testing import ActorTestKit


@eventstore.event_type("tests.timer_doers.Did")
@attrs.frozen
class Did:
    what: str


@attrs.define
class Doer(actors.Actor):
    """Each ``Did`` event is recorded in ``done``; a message ``"done?"`` reads it (sorted,
    unless ``ordered``), a token schedules it in 10 s, and a pair ``(token, seconds)``
    schedules the token that many seconds on."""

    ordered: ClassVar[bool] = True

    done: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Did):
            self.done.append(event.what)

    async def receive(self, message: Any) -> Any:
        if message == "done?":
            return list(self.done) if self.ordered else sorted(self.done)
        token, seconds = message if isinstance(message, tuple) else (message, 10)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=seconds), token)
        return None


async def fold_equals_live(kit: ActorTestKit, ref: actors.ActorRef, cls: type) -> Any:
    """The log folds (``replay.state_at``) to the live state's fields; the folded actor."""
    folded: Any = await replay.state_at(kit.store, cls, ref.actor_id)
    live = kit.state(ref)
    for field in attrs.fields(cls):
        assert getattr(folded, field.name) == getattr(live, field.name), field.name
    return folded
