"""Time-ordered event ids: UUID version 7 (RFC 9562), as ``uuid.UUID``.

Python 3.11's ``uuid`` has no ``uuid7``. An id here is 48 bits of Unix time in milliseconds, the
version (7), 74 bits of counter, and the RFC variant bits. Ids sort by creation time, so a store's
id index grows at its end (full pages, a warm right edge) instead of at random places.

Monotonic within a process (RFC 9562 section 6.2, method 2, a counter seeded at random): the
first id of a millisecond starts the counter at 73 random bits (the top bit clear, so it has room
to count); each further id in the same millisecond, or while the clock stands behind the last id's
time, adds one. Should the counter ever overflow, the id takes the next millisecond. Ids made in a
row in one process therefore always sort in creation order; ids of different processes in the same
millisecond differ in their random counters. A child process starts a fresh counter after
``fork``, so parent and child never count from the same value.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7"]

_COUNTER_BITS = 74
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_LOW_BITS = 62  # rand_b: the counter's low bits, after the variant
_LOW_MASK = (1 << _LOW_BITS) - 1
_VERSION = 7 << 76
_VARIANT = 0b10 << 62

_lock = threading.Lock()  # ids are made on worker threads too (plain ``def`` handlers)
_last_ms = -1
_counter = 0

_new = object.__new__
_set_int = uuid.UUID.__dict__["int"].__set__
_set_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown


def _seed() -> int:
    """A fresh counter: 73 random bits."""
    return int.from_bytes(os.urandom(10)) >> 7


def uuid7() -> uuid.UUID:
    """A new UUID version 7, later in sort order than every one this process made before.

    Returns:
        A ``uuid.UUID`` with version 7 and the RFC 4122 variant.
    """
    global _last_ms, _counter
    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _last_ms, _counter = now, _seed()
        elif _counter < _COUNTER_MAX:
            _counter += 1
        else:
            _last_ms, _counter = _last_ms + 1, _seed()
        ms, counter = _last_ms, _counter
    value: uuid.UUID = _new(uuid.UUID)
    # The same value as uuid.UUID(int=...), without its range checks: every part is in range.
    _set_int(value, (ms << 80) | _VERSION | ((counter >> _LOW_BITS) << 64) | _VARIANT
             | (counter & _LOW_MASK))
    _set_safe(value, _UNKNOWN)
    return value


def _forget() -> None:
    """In a forked child: start a fresh counter at the next id, with a lock no thread holds."""
    global _last_ms, _counter, _lock
    _last_ms, _counter, _lock = -1, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
