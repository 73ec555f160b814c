"""``eventstore.open(url)``: a store from a URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ._errors import InvalidArgument
from ._store import EventStore

SCHEMES = ("memory://", "sqlite:///path.db", "postgresql://user@host:port/database")


def open(url: str, *, create: bool = True, **options: Any) -> EventStore:
    """Open the store that ``url`` names; ``options`` go to the backend's constructor.

    ``memory://`` keeps everything in this process; ``sqlite:///relative.db`` and
    ``sqlite:////absolute/path.db`` name a SQLite file (created on first use);
    ``postgresql://...`` is a libpq URL (needs the ``postgres`` extra), where
    ``?schema=billing`` names the PostgreSQL schema (default ``eventstore``). Connections are
    made on first use, so this does not block; close the store with ``async with`` or
    ``aclose()``.

    Args:
        create: False to open an existing store only: a SQLite file or PostgreSQL schema is
            then never created or upgraded (a missing one is an error on first use).

    Raises:
        InvalidArgument: the URL is not a string or its scheme is not one of those above.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"url must be a string such as 'sqlite:///events.db', got {url!r}")
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # such as an unclosed "[" of an IPv6 address
        raise InvalidArgument(f"store URL {url!r} is malformed ({exc})") from None
    if scheme == "memory":
        from .memory import MemoryEventStore

        return MemoryEventStore(**options)
    if scheme == "sqlite":
        path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
        if not path:
            raise InvalidArgument(
                f"a SQLite URL names a file: 'sqlite:///relative.db' or "
                f"'sqlite:////absolute/path.db', got {url!r}")
        from .sqlite import SQLiteEventStore

        return SQLiteEventStore(path, create=create, **options)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresEventStore

        conninfo, schema = _schema_from_query(url)
        if schema is not None:
            options = {**options, "schema": schema}
        return PostgresEventStore(conninfo, create=create, **options)
    raise InvalidArgument(
        f"unknown store URL {url!r}; use one of: {', '.join(SCHEMES)}")


def _schema_from_query(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema=`` query parameter (not a libpq one), and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if not schemas:
        return url, None
    if len(schemas) > 1:
        raise InvalidArgument(f"store URL {url!r} names ?schema= more than once")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return parts._replace(query=rest).geturl(), schemas[0]
