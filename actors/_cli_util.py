"""What the ``python -m actors`` commands share: opening stores, naming streams, output, progress.

Progress bars are ``tqdm``'s: drawn on stderr only when stderr is a terminal, so pipes, files
and tests get clean output.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote

import attrs
from tqdm import tqdm

import eventstore
from eventstore import EventStore, RecordedEvent


class CliError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit status 2."""


# -- stores --------------------------------------------------------------------------------------


def open_store(url: str, *, create: bool = False) -> EventStore:
    """The store at ``url``. Unless ``create``, nothing is ever created or upgraded in it: a
    missing SQLite file, or a database or PostgreSQL schema without an event store, is an error
    on first use (read-only commands leave no trace)."""
    if not create and url.startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///"):])
        if path and not os.path.exists(path):
            raise CliError(f"no SQLite database at {path!r} (from {url!r}): check the path; "
                           "read-only commands never create one")
    if url.startswith("memory:"):
        raise CliError(f"{url!r} names a store that lives only inside one process: give a "
                       "sqlite:/// or postgresql:// URL")
    return eventstore.open(url, create=create)


@attrs.frozen
class StreamInfo:
    """One stream as ``streams`` lists it."""

    stream: str
    kind: str
    events: int
    last_version: int
    last_activity: datetime

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "kind": self.kind, "id": self.stream[len(self.kind) + 1:],
                "events": self.events, "last_version": self.last_version,
                "last_activity": iso(self.last_activity)}


def kind_of_stream(stream: str) -> str:
    """The actor kind of an actor's stream (``Account-a1`` -> ``Account``)."""
    return stream.partition("-")[0]


async def list_streams(store: EventStore, *, progress: tqdm[Any] | None = None
                       ) -> list[StreamInfo]:
    """Every stream in ``store``, by name, from one pass over ``read_all`` (memory: per stream)."""
    found: dict[str, list[Any]] = {}
    async with contextlib.aclosing(store.read_all()) as events:
        async for recorded in events:
            seen = found.get(recorded.stream)
            if seen is None:
                found[recorded.stream] = [1, recorded.version, recorded.recorded_at]
            else:
                seen[0] += 1
                seen[1] = recorded.version
                seen[2] = recorded.recorded_at
            if progress is not None:
                progress.update()
    return [StreamInfo(stream, kind_of_stream(stream), count, version, at)
            for stream, (count, version, at) in sorted(found.items())]


async def require_stream(store: EventStore, stream: str, url: str) -> int:
    """``stream``'s last version; an error suggesting near names when it has no events."""
    version = await store.last_version(stream)
    if version:
        return version
    names = [info.stream for info in await list_streams(store)]
    raise CliError(f"stream {stream!r} has no events in {url}" + suggest(stream, names)
                   + (" (`python -m actors streams URL` lists them)" if names else
                      "; the store holds no events at all"))


def suggest(wrong: str, names: list[str]) -> str:
    """``; did you mean 'x' or 'y'?`` for near matches of ``wrong`` among ``names``, or ''."""
    near = difflib.get_close_matches(wrong, names, n=3, cutoff=0.6)
    if not near:
        return ""
    return f"; did you mean {' or '.join(map(repr, near))}?"


# -- output --------------------------------------------------------------------------------------


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def iso(moment: datetime | float) -> str:
    """An instant as ISO 8601 in UTC (epoch seconds too)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


# The runtime events' stable type names (``@event_type``) and their epoch-seconds fields.
_TIMES = {"actors.SleepStarted": ("started_at",), "actors.TimeObserved": ("value",)}


def shown_data(recorded: RecordedEvent) -> Any:
    """An event's data for people: the runtime's epoch times as ISO instants."""
    fields = _TIMES.get(recorded.type)
    data = recorded.data
    if fields is None or not isinstance(data, dict):
        return data
    shown = dict(data)
    for field in fields:
        value = shown.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError, OSError, ValueError):
                shown[field] = iso(value)
    return shown


@contextlib.contextmanager
def output(path: str | None) -> Iterator[TextIO]:
    """``path`` opened for writing, or stdout when None."""
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as out:
        yield out


# -- progress ------------------------------------------------------------------------------------


def progress_bar(total: int | None, what: str, *, unit: str = "events",
                 shown: bool = True) -> tqdm[Any]:
    """A progress bar on stderr, drawn only when stderr is a terminal (and ``shown``)."""
    return tqdm(total=total, desc=what, unit=f" {unit}", file=sys.stderr, leave=False,
                disable=not (shown and stderr_is_terminal()), mininterval=0.1,
                dynamic_ncols=True, unit_scale=unit == "B")


def stderr_is_terminal() -> bool:
    """Whether progress bars are drawn (tests replace it)."""
    return sys.stderr.isatty()


def counting(bar: tqdm[Any]) -> Any:
    """A ``progress(version)`` callback that moves ``bar`` to ``version``."""
    def progress(done: int) -> None:
        if done > bar.n:
            bar.update(done - bar.n)
    return progress

