"""A Python script in a child process that reports by printing JSON lines, for crash tests."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

WAIT = 20.0  # seconds: a bound on every wait, never reached unless something is broken


class JsonChild:
    """Runs ``script`` with ``args``; threads read its stdout (JSON lines) and its stderr."""

    def __init__(self, script: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=self._drain, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        self.errors.extend(self.proc.stderr)

    def expect(self, key: str) -> dict[str, Any]:
        """The next line, which must be a JSON object holding ``key``; stamped with ``seen``."""
        try:
            line = self.lines.get(timeout=WAIT)
        except queue.Empty:
            self.kill()
            pytest.fail(f"the child printed nothing for {WAIT} s (waiting for {key!r})")
        if line is None:
            pytest.fail(f"the child exited ({self.wait()}) before printing {key!r}:\n"
                        f"{''.join(self.errors)}")
        fields: dict[str, Any] = json.loads(line)
        assert key in fields, f"expected {key!r}, the child printed {line!r}"
        fields["seen"] = time.time()
        return fields

    def value(self, key: str) -> float:
        """The value of the next line, which must be ``{key: value, ...}``."""
        return float(self.expect(key)[key])

    def wait(self) -> int:
        """Wait for the child to exit; return its exit code (``-9`` when killed)."""
        code = self.proc.wait(timeout=WAIT)
        for reader in self._readers:
            reader.join(timeout=WAIT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL

    def finish(self, *, nothing_more: bool = False) -> None:
        """Wait for a clean exit; with ``nothing_more``, no unread line may be left."""
        assert self.wait() == 0, "".join(self.errors)
        if nothing_more:
            assert self.lines.get(timeout=WAIT) is None, "the child printed more than expected"


def raw_log(db: Path, stream: str) -> list[tuple[str, Any]]:
    """``(type, data)`` of each event of ``stream`` in the SQLite file a child wrote.

    Undecoded, since a child's own event classes live in its ``__main__``; versions are checked
    to run 1, 2, 3, ... with no gap or duplicate.
    """
    import trio

    from eventstore.sqlite import SQLiteEventStore

    async def read() -> list[tuple[str, Any]]:
        async with SQLiteEventStore(db) as store:
            recorded = [r async for r in store.read(stream)]
        assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
        return [(r.type, r.data) for r in recorded]

    return trio.run(read)
