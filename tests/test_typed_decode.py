"""Typed replay: the SQLite reader decodes a plain event class's JSON straight into the class.

Whatever path an event takes, ``Codec.decode`` gives what cattrs gives from the data dict, and
``RecordedEvent.data`` stays the stored data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

import eventstore
from eventstore import Codec, NewEvent
from eventstore._codec import typed_decoder
from eventstore.sqlite import SQLiteEventStore
from eventstore.testing import collect


@eventstore.event_type("test.typed.Moved")
@attrs.frozen
class Moved:
    x: int
    label: str | None = None
    speed: float = 1.0
    ok: bool = True


@attrs.frozen
class Checked:
    x: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen
class Converted:
    x: int = attrs.field(converter=int)


@attrs.frozen
class Nested:
    items: list[int]


@attrs.frozen
class Private:
    _x: int


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore(tmp_path / "typed.db") as store:
        store.page_size = 2  # several pages: the later ones are decoded by the typed path
        yield store


def test_only_plain_classes_get_a_typed_decoder() -> None:
    converter = Codec().converter
    assert typed_decoder(Moved, converter) is not None
    for cls in (Checked, Converted, Nested, Private):
        assert typed_decoder(cls, converter) is None, cls


def test_a_structure_hook_of_the_users_turns_the_typed_path_off() -> None:
    codec = Codec()
    codec.converter.register_structure_hook(int, lambda value, _: int(value) * 10)
    assert typed_decoder(Moved, codec.converter) is None
    forbidding = Codec()
    forbidding.converter.forbid_extra_keys = True
    assert typed_decoder(Moved, forbidding.converter) is None


async def test_events_decode_as_cattrs_decodes_them(store: SQLiteEventStore) -> None:
    codec = store.codec
    written = [Moved(n, label=None if n % 2 else f"n{n}", speed=n / 2) for n in range(7)]
    await store.append("s", [codec.new_event(event) for event in written])
    # Data the typed decoder refuses but cattrs takes, or that has extra keys.
    await store.append("s", [NewEvent("test.typed.Moved", {"x": "8"}),
                             NewEvent("test.typed.Moved", {"x": 9, "extra": [1]}),
                             NewEvent("test.typed.Moved", {"x": 10, "speed": 3})])
    for _ in range(2):  # the second read finds the decoder the first one made
        recorded = await collect(store.read("s"))
        decoded = [codec.decode(event) for event in recorded]
        assert decoded == [*written, Moved(8), Moved(9), Moved(10, speed=3.0)]
        assert [codec.converter.structure(event.data, Moved) for event in recorded] == decoded
        assert type(decoded[-1].speed) is float
        assert recorded[8].data == {"x": 9, "extra": [1]}
    assert "test.typed.Moved" in codec.typed_decoders


async def test_decoding_twice_gives_equal_new_objects(store: SQLiteEventStore) -> None:
    await store.append("s", [store.codec.new_event(Moved(n)) for n in range(5)])
    await collect(store.read("s"))  # the codec now knows the class
    [*_, last] = await collect(store.read("s"))
    first, second = store.codec.decode(last), store.codec.decode(last)
    assert first == second == Moved(4)
    assert first is not second
    assert last.data == {"x": 4, "label": None, "speed": 1.0, "ok": True}


async def test_a_class_named_again_decodes_into_the_new_class(store: SQLiteEventStore) -> None:
    @attrs.frozen
    class Renamed:
        x: int
        label: str | None = None
        speed: float = 1.0
        ok: bool = True

    await store.append("s", [store.codec.new_event(Moved(n)) for n in range(5)])
    await collect(store.read("s"))
    pages = store.read_pages("s")
    first = await pages.__anext__()  # the next page is being read ahead, the typed way
    store.codec.register(Renamed, "test.typed.Moved")
    rest = [event async for page in pages for event in page]
    assert {type(store.codec.decode(event)) for event in [*first, *rest]} == {Renamed}
