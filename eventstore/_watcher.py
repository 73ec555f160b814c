"""``Watcher``: a daemon thread that watches the database for a trio run, until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

import trio


class Watcher:
    """Runs ``watch`` on a daemon thread; ``stop()`` asks it to end (it checks ``stopping``),
    ``join()`` waits for it. Made on trio's thread: ``trio_token`` reaches that run."""

    def __init__(self, watch: Callable[[], None], name: str) -> None:
        self.trio_token = trio.lowlevel.current_trio_token()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=watch, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def join(self) -> None:
        self._thread.join()
