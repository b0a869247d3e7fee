"""What one leaf of the audit log says, and where leaves come from.

A leaf is canonical JSON (keys sorted, no spaces, UTF-8) of a version, a kind, hub-minted ids,
event types, partner ids, the SHA-256 of a payload and times (ISO 8601, UTC, milliseconds):

    {"event_id":"evt_…","kind":"event","partner_id":"sz-registry","payload_sha256":"…",
     "received_at":"2026-11-23T01:30:00.123Z","type":"application.submitted","v":1}
    {"at":"…","attempts":1,"delivery_id":"msg_…","event_id":"evt_…","http_status":200,
     "kind":"delivery","outcome":"delivered","partner_id":"sz-tax","payload_sha256":"…","replay":0,
     "type":"tax.assessment_requested","v":1}
    {"action":"dead_letter.replay","action_id":"opr_…","at":"…","details_sha256":"…",
     "kind":"operator","operator_id":"ops-7","target_ref":"msg_…","v":1}

Never a name, an ID number, a phone or a secret, and no text a partner chose (a webhook-id is the
partner's free text, so it is left out; the hub's event id stands for it). A partner checks its own
payload by hashing the raw body it sent (events) or received (deliveries).

Leaves come from durable facts, not from extra writes on the request path: an accepted event is an
INSERT on the events table's stream; a delivery outcome is a delivery item entering `delivered` or
`dead` on the deliveries table's stream (a replayed dead letter that is then delivered is a second
outcome, told apart by its replay count). Operator actions are recorded by the operator command.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

VERSION = 1
FINAL_STATES = ("delivered", "dead")

_NAME = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#/-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


@dataclass(frozen=True)
class Leaf:
    ref: str  # what a partner looks it up by: event id, delivery id, operator action id
    sub: str  # which leaf of that ref: "event", "delivered#0", "dead#1", "operator"
    body: dict[str, Any]
    parties: tuple[str, ...]  # partners who may read its inclusion proof, besides the case's participants
    case_key: str | None = None

    @property
    def entry(self) -> bytes:
        return canonical(self.body)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _plain(image: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, typed in image.items():
        (kind, value), = typed.items()
        out[key] = value
    return out


def from_event_record(record: dict[str, Any]) -> list[Leaf]:
    """An INSERT on the events stream: the accepted event."""
    if record.get("eventName") != "INSERT":
        return []
    item = _plain(record["dynamodb"]["NewImage"])
    return [Leaf(item["event_id"], "event", {
        "v": VERSION, "kind": "event", "event_id": item["event_id"], "type": item["type"],
        "partner_id": item["partner_id"], "payload_sha256": item["payload_sha256"],
        "received_at": iso(float(item["received_at"])),
    }, (item["partner_id"],), item.get("case_key"))]


def from_delivery_record(record: dict[str, Any]) -> list[Leaf]:
    """A delivery item written in a final state: delivered, or dead (the schedule used up, or no
    route at all). Other writes of a delivery (attempts, retries) are not outcomes."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return []
    item = _plain(record["dynamodb"]["NewImage"])
    state = item.get("state")
    if state not in FINAL_STATES:
        return []
    replay = int(item.get("replays", "0"))
    at = item.get("delivered_at") if state == "delivered" else item.get("dead_at")
    return [Leaf(item["delivery_id"], f"{state}#{replay}", {
        "v": VERSION, "kind": "delivery", "delivery_id": item["delivery_id"], "event_id": item["event_id"],
        "type": item["type"], "partner_id": item["partner_id"], "outcome": state,
        "attempts": int(item.get("attempts", "0")), "http_status": int(item.get("last_status", "0")),
        "payload_sha256": hashlib.sha256(item.get("body", "").encode("utf-8")).hexdigest(),
        "at": iso(float(at or item["created_at"])), "replay": replay,
    }, (item["partner_id"],), item.get("case_key"))]


def _carries_personal_data(text: str) -> bool:
    from chalicelib.identifiers import IdentifierError, validate_resident_id

    if _MOBILE.search(text):
        return True
    for candidate in _ID_NUMBER.findall(text):
        try:
            validate_resident_id(candidate.upper())
            return True
        except IdentifierError:
            continue
    return False


def operator_leaf(action_id: str, operator_id: str, action: str, target_ref: str, details_sha256: str,
                  at: float) -> Leaf:
    """An operator's action (issue 7). `details_sha256` is the SHA-256 of whatever the operator's
    tool keeps as the details; only the hash enters the log."""
    from chalicelib.errors import HubError

    problems = []
    for field, value, pattern in (("operator_id", operator_id, _NAME), ("action", action, _NAME),
                                  ("target_ref", target_ref, _REF), ("details_sha256", details_sha256, _SHA256)):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            problems.append({"field": field, "code": "invalid_format", "message": f"must match {pattern.pattern}"})
        elif _carries_personal_data(value):
            problems.append({"field": field, "code": "personal_data", "message": "an audit leaf holds no ID "
                             "number or phone number"})
    if problems:
        raise HubError(422, "invalid_audit_record", "The operator action cannot be recorded as given.", problems)
    return Leaf(action_id, "operator", {
        "v": VERSION, "kind": "operator", "action_id": action_id, "operator_id": operator_id, "action": action,
        "target_ref": target_ref, "details_sha256": details_sha256, "at": iso(at),
    }, ())
