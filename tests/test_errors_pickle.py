"""Errors are data: every error class the event store exports survives a pickle round trip."""

from __future__ import annotations

import inspect
import pickle
import types
import typing
import uuid
from typing import Any

import pytest

import eventstore
import eventstore.memory
import eventstore.postgres
import eventstore.sqlite

MODULES = [eventstore, eventstore.memory, eventstore.sqlite, eventstore.postgres]

ERRORS = sorted({
    exported for module in MODULES for name in getattr(module, "__all__", dir(module))
    if isinstance(exported := getattr(module, name), type) and issubclass(exported, BaseException)
}, key=lambda cls: cls.__name__)


def sample(name: str, annotation: Any) -> Any:
    """A value of the annotated type that differs from every other field's."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (
        annotation,)
    if int in options:
        return sum(map(ord, name))
    if str in options:
        return f"<{name}>"
    return uuid.uuid5(uuid.NAMESPACE_URL, name)  # Any: a value of a type of its own


def make(cls: type[BaseException]) -> tuple[BaseException, list[str]]:
    """An instance of ``cls`` with every constructor argument set, and the argument names."""
    defined_by = next(kind for kind in cls.__mro__ if "__init__" in vars(kind))
    if defined_by.__module__ == "builtins":  # a message-only error
        return cls(f"{cls.__name__} message"), []
    hints = typing.get_type_hints(cls.__init__)
    names = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    return cls(**{name: sample(name, hints.get(name, str)) for name in names}), names


def test_the_error_classes_are_found() -> None:
    assert {cls.__name__ for cls in ERRORS} >= {
        "EventStoreError", "InvalidArgument", "StoreClosed", "WrongExpectedVersion",
        "DuplicateEventId", "SerializationError", "DecodeError", "SchemaError",
        "ConnectionFailed"}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_eventstore_error_survives_a_pickle_round_trip(cls: type[BaseException]) -> None:
    error, fields = make(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    for field in fields:
        assert getattr(copy, field) == getattr(error, field), field


@pytest.mark.parametrize("outcome", [None, "nothing was written"])
def test_connection_failed_keeps_what_it_was_doing(outcome: str | None) -> None:
    error = eventstore.postgres.ConnectionFailed("host=db", "reset", doing="append",
                                                 outcome=outcome)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.server, copy.reason, copy.doing, copy.outcome) == (
        "host=db", "reset", "append", outcome)
    assert "while trying to append" in str(copy)
