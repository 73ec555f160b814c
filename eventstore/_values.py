"""Self-describing values: any supported value in and out of tagged JSON-compatible data.

The codec's ``encode_value`` and ``decode_value`` delegate here. A value that is not plain JSON
becomes a one-key object whose key names its type (``{"$tuple": [...]}``). The codec passes in
what only it knows: how an attrs instance is named and unstructured, how stored attrs data is
loaded, and its cached import of ``module:QualName``. The text forms of ``datetime``, ``UUID`` and
the like live here too, because the codec's converter uses them for fields.
"""

from __future__ import annotations

import base64
import enum
import math
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

import attrs
import cattrs

from ._errors import DecodeError, SerializationError
from ._script import double_import, portable_module

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """A one-line account of ``exc``, listing every cattrs validation error."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return f"{type(exc).__name__}: {exc}"


# -- text forms -----------------------------------------------------------------------------------

def _structure_str_as(kind: Callable[[str], T]) -> Callable[[Any, Any], T]:
    def structure(value: Any, _: Any) -> T:
        if not isinstance(value, str):
            raise TypeError(f"expected an ISO/str form, got {type(value).__name__}")
        return kind(value)

    return structure


_structure_datetime: Final = _structure_str_as(datetime.fromisoformat)
_structure_date: Final = _structure_str_as(date.fromisoformat)
_structure_uuid: Final = _structure_str_as(uuid.UUID)


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    return Decimal(value)


def _structure_bytes(value: Any, _: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a base64 string, got {type(value).__name__}")
    return base64.b64decode(value, validate=True)


def _unstructure_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# exact type -> (tag for encode_value, to JSON text, from JSON text), for fields and values alike
TEXT_TYPES: Final[dict[type, tuple[str, Callable[[Any], str], Callable[[Any, Any], Any]]]] = {
    datetime: ("$datetime", datetime.isoformat, _structure_datetime),
    date: ("$date", date.isoformat, _structure_date),
    uuid.UUID: ("$uuid", str, _structure_uuid),
    Decimal: ("$decimal", str, _structure_decimal),
    bytes: ("$bytes", _unstructure_bytes, _structure_bytes),
}
_FROM_TEXT: Final = {tag: from_text for tag, _, from_text in TEXT_TYPES.values()}
_COLLECTIONS: Final[dict[str, Callable[[Iterable[Any]], Any]]] = {
    "$tuple": tuple, "$set": set, "$frozenset": frozenset,
}
_COLLECTION_TAGS: Final[dict[type, str]] = {tuple: "$tuple", set: "$set", frozenset: "$frozenset"}


# -- the value codec ------------------------------------------------------------------------------

class ValueCodec:
    """Encodes and decodes self-describing values on behalf of one ``Codec``.

    Args:
        encode_attrs: Takes an attrs instance to its ``[type name, schema version, data]``.
        load_attrs: Takes ``(type name, stored schema version, data)`` back to the instance.
        import_name: The object ``module:QualName`` names, or None (cached by the codec).
    """

    __slots__ = ("_encode_attrs", "_import", "_load_attrs")

    def __init__(self, encode_attrs: Callable[[Any], list[Any]],
                 load_attrs: Callable[[str, Any, Any], Any],
                 import_name: Callable[[str], Any]) -> None:
        self._encode_attrs = encode_attrs
        self._load_attrs = load_attrs
        self._import = import_name

    def encode_value(self, obj: Any) -> Any:
        """Encode ``obj`` as ``Codec.encode_value`` documents.

        Raises:
            SerializationError: ``obj`` holds a value of an unsupported type, a non-finite float,
                a dict key that is not a ``str``, or contains itself.
        """
        kind = type(obj)
        if kind is str or kind is int or kind is bool or obj is None:
            return obj
        try:
            return self._encode(obj)
        except RecursionError:
            raise SerializationError("value nests too deeply or contains itself") from None

    def _encode(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str or kind is int or kind is bool or obj is None:
            return obj
        if kind is float:
            if not math.isfinite(obj):
                raise SerializationError(f"cannot encode the non-finite float {obj!r}")
            return obj
        if kind is list:
            return [self._encode(item) for item in obj]
        if kind is dict:
            for key in obj:
                if type(key) is not str:
                    raise SerializationError(
                        f"cannot encode a dict with a {type(key).__name__} key ({key!r}); "
                        "dict keys must be str"
                    )
            return {"$dict": {key: self._encode(item) for key, item in obj.items()}}
        if kind in _COLLECTION_TAGS:
            return {_COLLECTION_TAGS[kind]: [self._encode(item) for item in obj]}
        if kind in TEXT_TYPES:
            tag, to_text, _ = TEXT_TYPES[kind]
            return {tag: to_text(obj)}
        if isinstance(obj, enum.Enum):
            name = f"{portable_module(kind.__module__)}:{kind.__qualname__}"
            twice = double_import(kind.__module__, kind.__qualname__, kind)
            if twice is not None:
                raise SerializationError(twice)
            if self._import(name) is not kind:
                raise SerializationError(
                    f"cannot encode {obj!r}: its enum has no importable name ({name!r}); define "
                    "the enum at module level"
                )
            return {"$enum": [name, self._encode(obj.value)]}
        if attrs.has(kind):
            return {"$attrs": self._encode_attrs(obj)}
        raise SerializationError(
            f"cannot encode a value of type {kind.__module__}.{kind.__qualname__}; encode None, "
            "bool, int, finite float, str, list, tuple, set, frozenset, dict with str keys, "
            "datetime, date, UUID, Decimal, bytes, enum members or attrs instances"
        )

    def decode_value(self, data: Any) -> Any:
        """Decode what ``encode_value`` returned, as ``Codec.decode_value`` documents.

        Raises:
            DecodeError: The data is not in the form ``encode_value`` writes, or an attrs value
                cannot be decoded.
        """
        kind = type(data)
        if kind is str or kind is int or kind is bool or data is None or kind is float:
            return data
        if kind is list:
            return [self.decode_value(item) for item in data]
        if kind is not dict or len(data) != 1:
            raise DecodeError(f"{_short(data)} is not an encoded value")
        ((tag, payload),) = data.items()
        try:
            if tag == "$dict" and type(payload) is dict:
                return {key: self.decode_value(item) for key, item in payload.items()}
            if tag in _COLLECTIONS and type(payload) is list:
                return _COLLECTIONS[tag](self.decode_value(item) for item in payload)
            if tag in _FROM_TEXT:
                return _FROM_TEXT[tag](payload, None)
            if tag == "$enum" and type(payload) is list and len(payload) == 2:
                return self._decode_enum(payload[0], self.decode_value(payload[1]))
            if tag == "$attrs" and type(payload) is list and len(payload) == 3:
                name, stored, fields = payload
                if type(name) is not str:
                    raise TypeError(f"type name must be a str, got {name!r}")
                return self._load_attrs(name, stored, fields)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(
                f"{_short(data)} is not a valid {tag} value ({describe(exc)})"
            ) from exc
        raise DecodeError(f"{_short(data)} is not an encoded value")

    def _decode_enum(self, name: Any, value: Any) -> enum.Enum:
        found = self._import(name) if type(name) is str else None
        if not (isinstance(found, type) and issubclass(found, enum.Enum)):
            raise DecodeError(f"{name!r} does not name an importable enum", type=str(name))
        return found(value)


def _short(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."
