"""Time-ordered report ids: UUIDv7 (RFC 9562), monotonic within a process."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(now_ms: int | None = None) -> str:
    """A UUIDv7 string; ids made later in the same process always sort after earlier ones.

    The 12-bit ``rand_a`` field holds a counter within the same millisecond
    (RFC 9562, method 1); when it overflows, the timestamp is advanced by one.
    """
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _last_ms = ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"  # str(uuid.UUID(int=value)) without the object: one per intake
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time_ms(value: str) -> int:
    """The millisecond timestamp inside a UUIDv7."""
    return uuid.UUID(value).int >> 80
