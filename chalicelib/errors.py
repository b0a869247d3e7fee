"""The one error type the hub answers with: a status, a stable code, a message, details.

Messages and details never carry the offending value (it may be an ID number or a name).
"""
from __future__ import annotations

from typing import Any


class HubError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


# The 401 body is the same whatever failed (unknown partner, bad signature, stale timestamp),
# so that a caller cannot probe which partner ids exist.
def unauthenticated() -> HubError:
    return HubError(401, "unauthenticated", "The request could not be authenticated.")
