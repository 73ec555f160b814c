"""What makes a class an actor class, and the names the runtime derives from it."""

from __future__ import annotations

import math
from typing import Any

import attrs

from ._actor import Actor
from ._errors import InvalidActorArgument, InvalidActorType


def kind_of(cls: type[Actor]) -> str:
    """The prefix of the actor's streams: ``cls.kind``, or the class name."""
    return cls.kind or cls.__name__


def check_actor_class(cls: object) -> type[Actor]:
    """``cls`` if it is an attrs ``Actor`` subclass whose fields all have defaults."""
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise InvalidActorType(f"{cls!r} is not a subclass of actors.Actor")
    actor_class: type[Actor] = cls
    fields_of: Any = cls
    if not attrs.has(fields_of):
        raise InvalidActorType(f"decorate {cls.__qualname__} with @attrs.define: its attrs "
                               "fields are the actor's state")
    missing = [f.name for f in attrs.fields(fields_of) if f.default is attrs.NOTHING]
    if missing:
        raise InvalidActorType(f"{cls.__qualname__}'s state fields need defaults (the state of "
                               f"an actor with an empty log): {', '.join(missing)}")
    every = actor_class.snapshot_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise InvalidActorType(f"{cls.__qualname__}.snapshot_every must be an int >= 1 or None")
    window = actor_class.remember_replies
    if isinstance(window, bool) or not isinstance(window, int | float) or not window >= 0 \
            or window == math.inf:
        raise InvalidActorType(f"{cls.__qualname__}.remember_replies must be finite seconds >= 0 "
                               f"of durable time, got {window!r}")
    tries = actor_class.max_deliveries
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise InvalidActorType(f"{cls.__qualname__}.max_deliveries must be an int >= 1, got "
                               f"{tries!r}")
    return actor_class


def check_actor_id(actor_id: object) -> str:
    if not isinstance(actor_id, str) or not actor_id:
        raise InvalidActorArgument(f"an actor id must be a non-empty string, got {actor_id!r}")
    return actor_id


def overrides(cls: type[Actor], name: str) -> bool:
    """Whether ``cls`` defines its own ``name`` (``run``, ``on_start``...)."""
    return getattr(cls, name, None) is not getattr(Actor, name, None)
