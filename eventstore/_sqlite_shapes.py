"""The shapes of SQLite format 7: the ``types`` row an event is stored under, and its data's form.

A shape is a type name and the keys of data stored as the JSON array of its values (``fields``,
JSON text), or no keys (NULL) for data stored as it is. Data that is a JSON object is stored
positionally under the shape of its keys, in order, unless its name has ``MAX_SHAPES`` shapes
with keys already: it is then stored as an object, under the name's shape without keys. The
writer keeps the shapes it knows to be committed (``ShapeBook``), so that the usual append needs
no lookup in SQL; a shape it does not know is found or added in the careful way's transaction
(``resolve``) and learnt once that commits. Shapes are never deleted nor renumbered, so an id
once committed stays right. Readers take a row's name and fields from a join (another process
may have added the shape), and rebuild the object with ``rebuild``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ._sqlite_schema import MAX_SHAPES
from ._validate import EncodedEvent, json_text

Keys = tuple[str, ...]
Shape = tuple[str, Keys | None]
"""A type name, and the keys of its data in order or None (data stored as it is)."""
Stored = tuple[int, bool]
"""Where data of a shape goes: the ``types`` id, and whether positionally (else as an object)."""

SHAPES_OF = "SELECT id, fields FROM types WHERE name = ?"
ADD_SHAPE = "INSERT INTO types (name, fields) VALUES (?, ?)"

_parse = msgspec.json.Decoder().decode


class ShapeBook:
    """The shapes this store's writer knows to be committed in its file."""

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: dict[str, dict[Keys | None, Stored]] = {}

    def stored(self, event: EncodedEvent) -> tuple[int, str] | None:
        """The type id and data text to store ``event`` with, or None: its shape is new to the
        book (the careful way finds it, or adds it)."""
        by_name = self.known.get(event.type)
        if by_name is None:
            return None
        found = by_name.get(event.fields)
        if found is None:
            return None
        return found[0], data_text(event, found[1])

    def learn(self, shapes: dict[Shape, Stored]) -> None:
        """Take shapes resolved in a transaction that committed."""
        for (name, keys), stored in shapes.items():
            self.known.setdefault(name, {})[keys] = stored


def data_text(event: EncodedEvent, positional: bool) -> str:
    """The text ``event``'s data is stored as under a shape stored ``positional``ly or not."""
    values = event.values
    return values if positional and values is not None else event.data


def shape_of(event: EncodedEvent) -> Shape:
    return event.type, event.fields


def resolve(conn: sqlite3.Connection, shape: Shape) -> Stored:
    """Find or add ``shape``'s row in the caller's write transaction: where its data goes.

    A name with ``MAX_SHAPES`` shapes with keys already stores data of new keys as an object.
    """
    name, keys = shape
    rows = conn.execute(SHAPES_OF, (name,)).fetchall()
    ids = {None if fields is None else tuple(_parse(fields)): id for id, fields in rows}
    if keys in ids:
        return ids[keys], keys is not None
    if keys is not None and len(ids) - (None in ids) < MAX_SHAPES:
        return _add(conn, name, json_text(list(keys))), True
    if None in ids:
        return ids[None], False
    return _add(conn, name, None), False


def _add(conn: sqlite3.Connection, name: str, fields: str | None) -> int:
    id = conn.execute(ADD_SHAPE, (name, fields)).lastrowid
    assert id is not None
    return id


# -- reading --------------------------------------------------------------------------------------

_KEYS: dict[str, Keys] = {}
_MOST_KEYS = 4096  # fields texts remembered, for programs that make up keys


def keys_of(fields: str) -> Keys:
    """The keys a stored ``fields`` text names (remembered: a file has few shapes)."""
    keys = _KEYS.get(fields)
    if keys is None:
        found = _parse(fields)
        if type(found) is not list or not all(type(key) is str for key in found):
            raise ValueError(f"fields {fields!r} is not a JSON array of strings")
        if len(_KEYS) >= _MOST_KEYS:
            _KEYS.clear()
        keys = _KEYS[fields] = tuple(found)
    return keys


def rebuild(fields: str, values: Any) -> dict[str, Any]:
    """The data object of ``values``, parsed from data stored under ``fields``.

    Raises:
        ValueError: the values are not a JSON array of as many values as there are keys.
    """
    keys = keys_of(fields)
    if type(values) is not list or len(values) != len(keys):
        raise ValueError(f"data {values!r} is not a JSON array of {len(keys)} values, as its "
                         f"type's fields {fields} say")
    return dict(zip(keys, values, strict=True))
