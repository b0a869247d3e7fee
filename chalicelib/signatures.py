"""Standard Webhooks `v1` signatures: HMAC-SHA256 over "{id}.{timestamp}.{body}".

The HMAC and the secret format (`whsec_` + base64, padded or not) come from the official
`standardwebhooks` library. Its `verify()` is not used: it reads the clock itself (the tolerance
check must take an injected "now" for tests and replays), and it raises on a signature entry
without a comma or with bad base64, where the contract wants such entries skipped.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from datetime import datetime, timezone
from typing import Iterable, Mapping

from standardwebhooks.webhooks import Webhook

from chalicelib.errors import HubError, unauthenticated

_TIMESTAMP = re.compile(r"^\d{1,12}$")
_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")
# Verifying against this when the partner is unknown keeps the answer time the same.
_DECOY_SECRET = "whsec_" + base64.b64encode(b"\x00" * 32).decode()


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def check_secret(secret: str) -> str:
    """A secret is `whsec_` + base64 of 24 to 64 random bytes."""
    if not isinstance(secret, str) or not _SECRET.match(secret):
        raise ValueError("secret must be whsec_ followed by base64")
    raw = base64.b64decode(secret[len("whsec_"):] + "==")
    if not 24 <= len(raw) <= 64:
        raise ValueError("secret must decode to 24-64 bytes")
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return _signer(secret).sign(msg_id=msg_id, timestamp=moment, data=body)


def signed_headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def read_headers(headers: Mapping[str, str]) -> tuple[str, int, str]:
    """The three Standard Webhooks headers, or 400: missing or malformed headers are bad input."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signature = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signature:
        missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", stamp),
                                  ("webhook-signature", signature)) if not v]
        raise HubError(400, "missing_signature_headers", "Standard Webhooks headers are required.",
                       [{"field": name, "code": "missing", "message": "header is required"} for name in missing])
    if not _WEBHOOK_ID.match(msg_id):
        raise HubError(400, "invalid_webhook_id", "webhook-id must be 1-256 visible ASCII characters.",
                       [{"field": "webhook-id", "code": "invalid_format", "message": "1-256 visible ASCII characters"}])
    if not _TIMESTAMP.match(stamp.strip()):
        raise HubError(400, "invalid_webhook_timestamp", "webhook-timestamp must be whole seconds since the epoch.",
                       [{"field": "webhook-timestamp", "code": "invalid_format", "message": "integer seconds"}])
    return msg_id, int(stamp.strip()), signature


def _v1_signatures(header: str) -> Iterable[bytes]:
    for entry in header.split():
        version, sep, value = entry.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            yield base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue


def verify(secrets: Iterable[str] | None, msg_id: str, timestamp: int, signature_header: str, body: str,
           now: float, tolerance_s: int) -> None:
    """Raise the contract's 401 unless one of the secrets signed this exact body recently.

    `secrets` is None for an unknown partner: the work is done anyway against a decoy.
    """
    if abs(now - timestamp) > tolerance_s:
        # Refused before any HMAC: a stamp far outside the tolerance (year 24079) is not even a time
        # `sign` can represent, and the caller knows the stamp it sent, so answering early tells nothing.
        raise unauthenticated()
    candidates = list(secrets) if secrets is not None else [_DECOY_SECRET]
    offered = list(_v1_signatures(signature_header))
    matched = False
    for secret in candidates:
        expected = base64.b64decode(sign(secret, msg_id, timestamp, body).split(",", 1)[1])
        for sig in offered:
            matched |= hmac.compare_digest(expected, sig)
    if secrets is None or not matched:
        raise unauthenticated()
