"""Time-ordered job ids (UUID version 7, RFC 9562).

Jobs of one batch share ``created_at``; the id breaks the tie, so it must
follow creation order for a batch to be leased and listed in input order.
A UUIDv7 starts with the Unix time in milliseconds and, here, a 12-bit
counter that keeps ids of one process strictly increasing within a
millisecond. They also append to the primary-key B-tree instead of
scattering across it as random UUIDs do.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A new UUIDv7, greater than every earlier one from this process."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, 0
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | counter << 64
    value |= 0b10 << 62 | random_bits
    return uuid.UUID(int=value)


def short_id(value: uuid.UUID | str) -> str:
    """``01a22c8f…9e3f04aa``: the first and last 8 hex digits of a job id, for lists.

    The first 8 digits are the creation time (every job of a minute shares
    them); the last 8 are random, so jobs of one millisecond still read
    apart. Lists show the full id on hover; the job's page shows it whole.
    """
    text = str(value)
    return f"{text[:8]}…{text[-8:]}" if len(text) > 16 else text
