"""Identifiers the hub mints: time-ordered event ids and deterministic delivery ids."""
from __future__ import annotations

import base64
import hashlib
import os
import time


def event_id() -> str:
    """`evt_` + 48-bit milliseconds + 80 random bits, base32: sortable by arrival, unguessable."""
    raw = int(time.time() * 1000).to_bytes(6, "big") + os.urandom(10)
    return "evt_" + base64.b32encode(raw).decode().rstrip("=").lower()


def delivery_id(*parts: str) -> str:
    """The same inputs always give the same id, so replaying a stream record writes nothing new.

    It doubles as the delivery's `webhook-id`, which stays the same across retries.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:20]
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()
