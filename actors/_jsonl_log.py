"""A JSON Lines log (what ``export`` writes) as a read-only store, in bounded memory.

``check`` replays a log file through this instead of loading it into a memory store: one pass
checks every line and keeps only where each event and snapshot starts in the file (8 bytes an
event); ``read`` then parses the lines of each page as it goes.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from eventstore import Codec, DecodeError, EventStore, RecordedEvent, WorkEntry

from .replay import ReplayError, _load_line, _parse_event


class JsonlLog(EventStore):
    """The events and snapshots of a JSON Lines file, read-only; call ``index()`` first.

    Positions and recording times are the file's when its lines have them (an exported log
    does), else 0 and the epoch.
    """

    def __init__(self, path: str, *, codec: Codec | None = None) -> None:
        super().__init__(codec=codec)
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by aclose
        self._offsets: dict[str, array[int]] = {}  # stream -> offset of each version's line
        self._snapshots: dict[str, list[tuple[int, int]]] = {}  # stream -> (version, offset)

    @property
    def streams(self) -> dict[str, int]:
        """Each stream of the log and its number of events, in the order they first appear."""
        return {stream: len(offsets) for stream, offsets in self._offsets.items()}

    def index(self, progress: Callable[[int], None] | None = None) -> None:
        """Check every line, as ``import`` does, and note where each one starts.

        Args:
            progress: called with the number of bytes read so far, now and then.

        Raises:
            ReplayError: a line is invalid, named by its number (nothing is kept then).
        """
        decode = self.codec.decode
        now = datetime.now(UTC)
        offset = 0
        self._file.seek(0)
        for number, raw in enumerate(self._file, start=1):
            start, offset = offset, offset + len(raw)
            if progress is not None and number % 4096 == 0:
                progress(offset)
            where = f"{self.path} line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ReplayError(f"{where}: not UTF-8 text ({exc})") from None
            if not line.strip():
                continue
            item = _load_line(line, where)
            if "snapshot" in item:
                self._snapshot(item["snapshot"], start, where)
                continue
            stream, version, new = _parse_event(item, where)
            offsets = self._offsets.setdefault(stream, array("q"))
            if version != len(offsets) + 1:
                raise ReplayError(f"{where}: stream {stream!r} " + (
                    f"starts at version {version}; a log starts at version 1" if not offsets
                    else f"goes from version {len(offsets)} to {version}: versions must "
                    "follow each other (a gap, or lines out of order)"))
            try:
                decode(RecordedEvent(stream, version, 0, new.type, new.data, new.metadata,
                                     new.id, now))
            except DecodeError as exc:
                raise ReplayError(f"{where}: {exc}") from None
            offsets.append(start)
        if progress is not None:
            progress(offset)

    def _snapshot(self, item: Any, start: int, where: str) -> None:
        if not isinstance(item, dict) or "state" not in item:
            raise ReplayError(f"{where}: a snapshot needs 'stream', 'version' and 'state'")
        stream, version = item.get("stream"), item.get("version")
        held = len(self._offsets.get(stream, ())) if isinstance(stream, str) else 0
        if not isinstance(stream, str) or isinstance(version, bool) or \
                not isinstance(version, int) or not 1 <= version <= held:
            raise ReplayError(f"{where}: a snapshot of stream {stream!r} at version {version!r} "
                              "must follow the event of that version")
        self._snapshots.setdefault(stream, []).append((version, start))

    def _line(self, offset: int) -> dict[str, Any]:
        self._file.seek(offset)
        return json.loads(self._file.readline())  # type: ignore[no-any-return]

    def _recorded(self, offset: int) -> RecordedEvent:
        item = self._line(offset)
        stream, version, new = _parse_event(item, self.path)
        position = item.get("position")
        return RecordedEvent(stream, version, position if isinstance(position, int) else 0,
                             new.type, new.data, new.metadata, new.id,
                             new.recorded_at or datetime.fromtimestamp(0, UTC))

    # -- the store's primitives ------------------------------------------------------------------

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        offsets = self._offsets.get(stream)
        if offsets is None:
            return []
        end = len(offsets) if last is None else min(last, len(offsets))
        return [self._recorded(offsets[version - 1])
                for version in range(first, min(end, first + size - 1) + 1)]

    async def _last_version(self, stream: str) -> int:
        return len(self._offsets.get(stream, ()))

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        best = None
        for version, offset in self._snapshots.get(stream, ()):
            if (max_version is None or version <= max_version) and (
                    best is None or version >= best[0]):
                best = (version, offset)
        if best is None:
            return None
        state = self._line(best[1])["snapshot"]["state"]
        return best[0], json.dumps(state), datetime.fromtimestamp(0, UTC)

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        self._read_only("read_all")

    async def _append(self, stream: str, events: list[Any], expected: Any, side: Any) -> Any:
        self._read_only("append")

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        return []  # a log holds events and snapshots only: no inboxes

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        self._read_only("set_wake")

    async def _work(self) -> list[WorkEntry]:
        return []

    async def _delete_up_to(self, stream: str, version: int) -> None:
        self._read_only("delete_up_to")

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        self._read_only("save_snapshot")

    def _read_only(self, what: str) -> NoReturn:
        raise ReplayError(f"{self.path} is a read-only log: it has no {what}")

    async def _aclose(self) -> None:
        self._file.close()

