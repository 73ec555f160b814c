"""The codec: type names, schema versions, upcasting, aliases, round trips and its errors."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import DecodeError, EventStoreError, InvalidArgument, SerializationError
from eventstore._codec import Codec, event_type
from eventstore._model import NewEvent, RecordedEvent

HERE = __name__
ID = uuid.UUID(int=7)
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    x: int
    y: int


@attrs.frozen
class Rich:
    when: datetime
    who: uuid.UUID
    color: Color
    level: Level
    where: Point
    path: tuple[Point, ...]
    pair: tuple[int, str]
    tags: frozenset[str]
    day: date
    price: Decimal
    raw: bytes
    note: str | None = None
    later: datetime | None = None


@attrs.frozen
class Plain:
    name: str
    count: int


@event_type(f"{HERE}.Renamed", aliases=[f"{HERE}:OldName", "old-name"])
@attrs.frozen
class Renamed:
    name: str


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data["amount"] = data.pop("cents") / 100  # v2 renamed cents to amount, in units
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}  # v3 added a currency


@event_type(f"{HERE}.Paid", version=3, upcasters={1: _v1_to_v2, 2: _v2_to_v3})
@attrs.frozen
class Paid:
    amount: float
    currency: str


@event_type(f"{HERE}.Gap", version=3, upcasters={2: lambda d: {**d, "extra": len(d["items"])}})
@attrs.frozen
class Gap:
    items: list[int]
    extra: int


@event_type(f"{HERE}.Broken", version=2, upcasters={1: lambda d: d["missing"]})
@attrs.frozen
class Broken:
    value: int


@attrs.frozen
class Loose:
    anything: Any


@attrs.frozen
class Ratio:
    value: float


@attrs.frozen
class Child(Renamed):
    extra: int = 0


class NotAttrs:
    pass


def recorded(new: NewEvent, *, stream: str = "s-1", version: int = 3) -> RecordedEvent:
    """What a store gives back: the event after a JSON round trip."""
    return RecordedEvent(
        stream=stream, version=version, position=version, type=new.type,
        data=json.loads(json.dumps(new.data)), metadata=json.loads(json.dumps(new.metadata)),
        id=new.id, recorded_at=NOW,
    )


def stored(type: str, data: Any, schema_version: int | None = None) -> RecordedEvent:
    metadata = {} if schema_version is None else {"schema_version": schema_version}
    return RecordedEvent(stream="acct-9", version=12, position=40, type=type, data=data,
                         metadata=metadata, id=ID, recorded_at=NOW)


def assert_names_event(error: DecodeError, type: str) -> None:
    assert (error.stream, error.version, error.type) == ("acct-9", 12, type)
    message = str(error)
    assert "'acct-9'" in message and "version 12" in message and repr(type) in message


def assert_identical(a: Any, b: Any) -> None:
    """Equal, and of the same type all the way down (so 1 is not 1.0 nor True)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_identical(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_identical(a[key], b[key])
    else:
        assert a == b
        if isinstance(a, datetime):
            assert a.utcoffset() == b.utcoffset()


# -- strategies -----------------------------------------------------------------------------------

offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
aware = st.datetimes(timezones=offsets)
any_datetime = st.one_of(st.datetimes(), aware)
points = st.builds(Point, st.integers(), st.integers())
finite = st.floats(allow_nan=False, allow_infinity=False)

rich = st.builds(
    Rich,
    when=aware,
    who=st.uuids(),
    color=st.sampled_from(Color),
    level=st.sampled_from(Level),
    where=points,
    path=st.lists(points, max_size=3).map(tuple),
    pair=st.tuples(st.integers(), st.text()),
    tags=st.frozensets(st.text(max_size=5), max_size=4),
    day=st.dates(),
    price=st.decimals(allow_nan=False, allow_infinity=False),
    raw=st.binary(max_size=16),
    note=st.none() | st.text(),
    later=st.none() | any_datetime,
)

hashable = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.uuids())
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), finite, st.text(), any_datetime, st.uuids(),
    st.dates(), st.binary(max_size=8), st.sampled_from(Color), st.sampled_from(Level), points,
    st.frozensets(hashable, max_size=3), st.sets(hashable, max_size=3),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


# -- round trips ----------------------------------------------------------------------------------

@given(rich)
def test_events_round_trip_through_json(event: Rich) -> None:
    codec = Codec()
    new = codec.new_event(event)
    assert new.type == f"{HERE}:Rich"
    assert new.metadata == {}
    json.dumps(new.data, allow_nan=False)  # JSON-compatible as it stands
    decoded = codec.decode(recorded(new))
    assert decoded == event
    assert decoded.when.utcoffset() == event.when.utcoffset()
    assert type(decoded.path) is tuple and type(decoded.tags) is frozenset


@given(values)
def test_values_round_trip_through_json_keeping_types(value: Any) -> None:
    codec = Codec()
    encoded = codec.encode_value(value)
    assert_identical(codec.decode_value(json.loads(json.dumps(encoded, allow_nan=False))), value)


def test_simple_values_pass_through_untagged() -> None:
    codec = Codec()
    for value in ("text", 3, True, None, 1.5, ["a", 1]):
        assert codec.encode_value(value) == value
    assert codec.encode_value((1, 2)) == {"$tuple": [1, 2]}
    assert codec.encode_value({"a": 1}) == {"$dict": {"a": 1}}


def test_attrs_values_carry_type_name_and_schema_version() -> None:
    codec = Codec()
    encoded = codec.encode_value(Paid(amount=1.5, currency="USD"))
    assert encoded == {"$attrs": [f"{HERE}.Paid", 3, {"amount": 1.5, "currency": "USD"}]}
    old = {"$attrs": [f"{HERE}.Paid", 1, {"cents": 250}]}
    assert codec.decode_value(old) == Paid(amount=2.5, currency="EUR")


def test_metadata_and_id_are_kept() -> None:
    new = Codec().new_event(Plain("a", 1), metadata={"actor": "x"}, id=ID)
    assert (new.metadata, new.id) == ({"actor": "x"}, ID)


def test_snapshot_states_use_the_converter() -> None:
    codec = Codec()
    state = {"points": (Point(1, 2),), "when": NOW}
    data = codec.unstructure(state, dict[str, Any])
    assert json.loads(json.dumps(data)) == data
    assert codec.structure(codec.unstructure(Point(1, 2)), Point) == Point(1, 2)
    assert codec.structure(["1", "2"], tuple[int, ...]) == (1, 2)
    with pytest.raises(DecodeError, match="Point"):
        codec.structure({"x": 1}, Point)


# -- names, versions, upcasting, aliases ----------------------------------------------------------

def test_undecorated_class_decodes_by_module_qualname_without_registration() -> None:
    new = Codec().new_event(Plain("a", 1))
    assert new.type == f"{HERE}:Plain"
    assert Codec().decode(recorded(new)) == Plain("a", 1)


def test_decorated_class_has_name_and_version() -> None:
    codec = Codec()
    assert codec.type_name(Paid) == f"{HERE}.Paid"
    assert codec.schema_version(Paid) == 3
    assert codec.schema_version(Plain) == 1
    new = codec.new_event(Paid(amount=1.0, currency="EUR"))
    assert new.metadata == {"schema_version": 3}
    assert codec.new_event(Plain("a", 1)).metadata == {}


def test_upcaster_chain_runs_from_stored_version_to_current() -> None:
    codec = Codec()
    old = stored(f"{HERE}.Paid", {"cents": 250})  # no schema_version: version 1
    assert codec.decode(old) == Paid(amount=2.5, currency="EUR")
    assert old.data == {"cents": 250}  # upcasters work on a copy
    middle = stored(f"{HERE}.Paid", {"amount": 3.0}, schema_version=2)
    assert codec.decode(middle) == Paid(amount=3.0, currency="EUR")
    current = stored(f"{HERE}.Paid", {"amount": 3.0, "currency": "GBP"}, schema_version=3)
    assert codec.decode(current) == Paid(amount=3.0, currency="GBP")


def test_missing_upcaster_means_the_data_did_not_change_shape() -> None:
    assert Codec().decode(stored(f"{HERE}.Gap", {"items": [1, 2]})) == Gap([1, 2], 2)


def test_aliases_decode_to_the_renamed_class() -> None:
    codec = Codec()
    assert codec.type_name(Renamed) == f"{HERE}.Renamed"
    for name in (f"{HERE}:OldName", "old-name", f"{HERE}.Renamed"):
        assert codec.decode(stored(name, {"name": "n"})) == Renamed("n")


def test_subclass_of_decorated_class_gets_its_own_default_name() -> None:
    codec = Codec()
    assert codec.type_name(Child) == f"{HERE}:Child"
    assert codec.decode(recorded(codec.new_event(Child("n", 2)))) == Child("n", 2)


def test_register_overrides_the_decorator_for_one_codec() -> None:
    codec = Codec()
    codec.register(Paid, "payments.Paid", version=4, aliases=["paid-v0"],
                   upcasters={3: lambda d: {**d, "currency": d["currency"].lower()}})
    assert codec.type_name(Paid) == "payments.Paid"
    assert Codec().type_name(Paid) == f"{HERE}.Paid"
    new = codec.new_event(Paid(amount=1.0, currency="eur"))
    assert (new.type, new.metadata) == ("payments.Paid", {"schema_version": 4})
    old = {"amount": 1.0, "currency": "EUR"}
    for name in ("paid-v0", "payments.Paid", f"{HERE}.Paid"):
        assert codec.decode(stored(name, old, schema_version=3)) == Paid(1.0, "eur")


def test_register_undecorated_class_and_reregister() -> None:
    codec = Codec()
    codec.register(Point, "geo.Point")
    codec.register(Point, "geo.Point2", aliases=["geo.Point"])
    assert codec.type_name(Point) == "geo.Point2"
    assert codec.decode(stored("geo.Point", {"x": 1, "y": 2})) == Point(1, 2)
    with pytest.raises(InvalidArgument, match="already belongs"):
        codec.register(Plain, "geo.Point")


def test_class_inside_a_function_needs_a_name() -> None:
    @attrs.frozen
    class Local:
        value: int

    codec = Codec()
    with pytest.raises(SerializationError, match="importable"):
        codec.new_event(Local(1))
    codec.register(Local, f"{HERE}.Local")
    assert codec.decode(recorded(codec.new_event(Local(1)))) == Local(1)


# -- errors ---------------------------------------------------------------------------------------

def test_errors_belong_to_the_package_and_the_matching_builtin() -> None:
    assert issubclass(DecodeError, EventStoreError)
    assert issubclass(SerializationError, TypeError)
    assert issubclass(InvalidArgument, ValueError)


def test_unknown_type_names_stream_version_and_type() -> None:
    with pytest.raises(DecodeError, match="no event class") as info:
        Codec().decode(stored("no.such:Thing", {}))
    assert_names_event(info.value, "no.such:Thing")


def test_importable_non_attrs_object_is_not_an_event() -> None:
    for name in (f"{HERE}:NotAttrs", f"{HERE}:recorded", "os:system"):
        with pytest.raises(DecodeError, match="no event class") as info:
            Codec().decode(stored(name, {}))
        assert_names_event(info.value, name)


@pytest.mark.parametrize("data", [{"name": "a"}, {"name": "a", "count": "many"}, [1, 2], None])
def test_bad_data_names_stream_version_and_type(data: Any) -> None:
    with pytest.raises(DecodeError, match="does not fit Plain") as info:
        Codec().decode(stored(f"{HERE}:Plain", data))
    assert_names_event(info.value, f"{HERE}:Plain")
    assert info.value.__cause__ is not None


def test_newer_schema_version_says_so() -> None:
    with pytest.raises(DecodeError, match="schema version 4, newer") as info:
        Codec().decode(stored(f"{HERE}.Paid", {"amount": 1.0}, schema_version=4))
    assert_names_event(info.value, f"{HERE}.Paid")


@pytest.mark.parametrize("schema_version", [0, "2", True])
def test_invalid_stored_schema_version(schema_version: Any) -> None:
    with pytest.raises(DecodeError, match="schema version") as info:
        Codec().decode(stored(f"{HERE}.Paid", {"cents": 1}, schema_version=schema_version))
    assert_names_event(info.value, f"{HERE}.Paid")


def test_failing_upcaster_names_its_step() -> None:
    with pytest.raises(DecodeError, match="upcaster 1 -> 2 of Broken failed") as info:
        Codec().decode(stored(f"{HERE}.Broken", {"value": 1}))
    assert_names_event(info.value, f"{HERE}.Broken")
    with pytest.raises(DecodeError, match="returned a int"):
        Codec().decode(stored(f"{HERE}.Broken", {"missing": 5}))


def test_non_attrs_event_is_rejected() -> None:
    for obj in (NotAttrs(), {"a": 1}, 5):
        with pytest.raises(SerializationError, match="events must be attrs classes"):
            Codec().new_event(obj)


@pytest.mark.parametrize("value", [object(), {(1, 2): "a"}, float("nan"), Point])
def test_non_json_field_value_is_rejected_before_writing(value: Any) -> None:
    with pytest.raises(SerializationError, match="not JSON-compatible"):
        Codec().new_event(Loose(value))
    with pytest.raises(SerializationError):
        Codec().new_event(Ratio(float("inf")))


@attrs.frozen
class Counts:
    counts: dict[int, int]


@pytest.mark.parametrize(("obj", "where"), [
    (Loose({1: "a", "1": "b"}), r"data\['anything'\]\[1\] is a dict key of type int"),
    (Loose([{"x": {None: 1}}]), r"data\['anything'\]\[0\]\['x'\]\[None\] is a dict key"),
    (Counts({1: 2, "1": 3}), r"keys that are equal as text"),  # type: ignore[dict-item]
    (Loose("lone \ud800"), r"data\['anything'\] holds text with a lone surrogate"),
    (Plain("\udcff", 1), r"data\['name'\] holds text with a lone surrogate"),
])
def test_data_the_store_would_refuse_is_refused_at_encode_time(obj: Any, where: str) -> None:
    with pytest.raises(SerializationError, match=where):
        Codec().new_event(obj)


def test_int_keyed_dict_fields_round_trip_exactly() -> None:
    codec = Codec()
    new = codec.new_event(Counts({1: 2, -3: 4}))
    assert new.data == {"counts": {"1": 2, "-3": 4}}
    assert codec.decode(recorded(new)) == Counts({1: 2, -3: 4})


def test_nul_characters_in_data_are_fine() -> None:
    assert Codec().new_event(Plain("a\x00b", 1)).data == {"name": "a\x00b", "count": 1}


@pytest.mark.parametrize("metadata", [{"id": "\ud800"}, {"\ud800": 1}, {"m": {1: 2}}])
def test_metadata_the_store_would_refuse_is_refused_at_encode_time(
        metadata: dict[str, Any]) -> None:
    with pytest.raises(SerializationError, match="metadata"):
        Codec().new_event(Plain("a", 1), metadata=metadata)


@pytest.mark.parametrize("name", ["A\x00B", "lone \ud800", "T" * 513])
def test_type_names_the_store_would_refuse_are_refused(name: str) -> None:
    @attrs.frozen
    class Local:
        n: int

    with pytest.raises(InvalidArgument, match="@event_type name"):
        event_type(name)(Local)
    with pytest.raises(InvalidArgument, match=r"Codec\.register name"):
        Codec().register(Local, name)
    with pytest.raises(InvalidArgument, match=r"Codec\.register alias"):
        Codec().register(Local, "fine", aliases=[name])


def test_reserved_metadata_key() -> None:
    with pytest.raises(InvalidArgument, match="reserved"):
        Codec().new_event(Plain("a", 1), metadata={"schema_version": 2})


@pytest.mark.parametrize("value", [object(), {1: 2}, float("inf"), NotAttrs, "s".encode, Color])
def test_encode_value_rejects_other_types(value: Any) -> None:
    with pytest.raises(SerializationError, match="cannot encode"):
        Codec().encode_value([value])


def test_encode_value_rejects_cycles_and_local_enums() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        Codec().encode_value(loop)

    class Local(enum.Enum):
        A = 1

    with pytest.raises(SerializationError, match="importable"):
        Codec().encode_value(Local.A)


@pytest.mark.parametrize("data", [
    {"a": 1}, {"$tuple": 5}, {"$what": []}, {"$datetime": "yesterday"}, {"$enum": ["os:sep", 1]},
    {"$enum": [f"{HERE}:Color", "blue"]}, {"$attrs": ["no.such:Thing", 1, {}]}, (1,), 1j,
])
def test_decode_value_rejects_malformed_data(data: Any) -> None:
    with pytest.raises(DecodeError):
        Codec().decode_value(data)


def test_decode_value_of_bad_attrs_names_the_type() -> None:
    with pytest.raises(DecodeError, match="does not fit Point") as info:
        Codec().decode_value({"$attrs": [f"{HERE}:Point", 1, {"x": 1}]})
    assert info.value.type == f"{HERE}:Point"


def _plain() -> type:
    @attrs.frozen
    class Fresh:
        value: int

    return Fresh


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("",), {}, "non-empty"),
    (("  ",), {}, "non-empty"),
    ((5,), {}, "non-empty"),
    (("ok.Zero",), {"version": 0}, "version must be an int >= 1"),
    (("ok.Bool",), {"version": True}, "version must be an int >= 1"),
    (("ok.Key",), {"version": 2, "upcasters": {2: dict}}, "1..1"),
    (("ok.Key0",), {"version": 3, "upcasters": {0: dict}}, "1..2"),
    (("ok.NotCallable",), {"version": 2, "upcasters": {1: "f"}}, "callable"),
    (("ok.Map",), {"version": 2, "upcasters": [dict]}, "map"),
    (("ok.StrAlias",), {"aliases": "old"}, "aliases"),
    (("ok.EmptyAlias",), {"aliases": [""]}, "aliases"),
    ((None,), {}, "inside a function"),
])
def test_bad_decorator_and_register_arguments(args: tuple[Any, ...], kwargs: dict[str, Any],
                                              match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        event_type(*args, **kwargs)(_plain())
    with pytest.raises(InvalidArgument, match=match):
        Codec().register(_plain(), *args, **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"name": f"{HERE}.Paid"},
    {"name": "ok.Alias", "aliases": [f"{HERE}:OldName"]},
])
def test_decorator_rejects_a_name_of_another_class(kwargs: dict[str, Any]) -> None:
    fresh = _plain()
    with pytest.raises(InvalidArgument, match="already belongs to"):
        event_type(**kwargs)(fresh)
    Codec().register(fresh, **kwargs)  # a codec's own names may shadow the index


def test_decorator_rejects_non_attrs_classes_and_missing_parentheses() -> None:
    with pytest.raises(InvalidArgument, match="attrs class"):
        event_type("ok.NotAttrs")(NotAttrs)
    with pytest.raises(InvalidArgument, match="attrs class"):
        Codec().register(NotAttrs)
    with pytest.raises(InvalidArgument, match="parentheses"):
        event_type(Plain)  # type: ignore[arg-type]


def test_redecorating_the_same_class_is_allowed() -> None:
    assert event_type(f"{HERE}.Renamed", aliases=[f"{HERE}:OldName", "old-name"])(Renamed)
    assert Codec().decode(stored("old-name", {"name": "n"})) == Renamed("n")
