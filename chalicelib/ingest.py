"""The inbound endpoint of CONTRACT.md, in the order its checks must run.

size (413) → signature headers (400) → partner, signature, tolerance (401) → JSON and envelope (400)
→ type allowed for the partner's kind (403) → mapping, canonical model, door rules (422)
→ one conditional PutItem (202, or 200 with the first answer for a repeated webhook-id).
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from chalicelib import event_store, ids, signatures
from chalicelib.errors import HubError
from chalicelib.observability import log_keys, logger, metrics
from chalicelib.partners import Partner, get_directory
from chalicelib.settings import get_settings

MAX_JSON_DEPTH = 32
# An envelope stamped further ahead than this is refused: clocks drift, events do not come from the future.
FUTURE_SKEW = timedelta(minutes=5)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$", max_length=64)
    timestamp: AwareDatetime
    data: dict[str, Any]


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise HubError(400, "duplicate_json_key", "A JSON object repeats a key.",
                           [{"field": "body", "code": "duplicate_key", "message": "keys must be unique"}])
        result[key] = value
    return result


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
    return False


def parse_json(text: str) -> Any:
    """A partner's JSON body, or 400: not JSON, a repeated key, or nested deeper than the limit."""
    try:
        parsed = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except RecursionError:
        raise HubError(400, "json_too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError:
        raise HubError(400, "invalid_json", "The body is not JSON.") from None
    if _depth_exceeds(parsed, MAX_JSON_DEPTH):
        raise HubError(400, "json_too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    return parsed


def parse_envelope(text: str) -> Envelope:
    parsed = parse_json(text)
    if not isinstance(parsed, dict):
        raise HubError(400, "invalid_envelope", "The body must be a JSON object {type, timestamp, data}.")
    try:
        return Envelope.model_validate(parsed)
    except ValidationError as exc:
        from chalicelib.models import error_details

        raise HubError(400, "invalid_envelope", "The body must be {type, timestamp, data}.",
                       error_details(exc, prefix="")) from None


def _duplicate_answer(stored: event_store.StoredEvent) -> tuple[int, dict[str, Any]]:
    return 200, {**stored.answer, "duplicate": True}


def verified_request(partner_id: str, headers: Mapping[str, str], raw_body: bytes,
                     now: float) -> tuple[Partner, str, str]:
    """The door every signed partner POST passes, in the contract's order: 413 size, 400 headers,
    400 not UTF-8, 401 partner/signature/tolerance. Returns (partner, webhook-id, body text)."""
    settings = get_settings()
    if len(raw_body) > settings.max_body_bytes:
        raise HubError(413, "payload_too_large", f"The body is over {settings.max_body_bytes} bytes.")
    msg_id, stamp, signature_header = signatures.read_headers(headers)
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise HubError(400, "invalid_json", "The body is not UTF-8 JSON.") from None
    partner = get_directory().get(partner_id)
    signatures.verify(partner.secrets if partner else None, msg_id, stamp, signature_header, text,
                      now, settings.timestamp_tolerance_s)
    assert partner is not None
    log_keys(partner_id=partner.id, webhook_id=msg_id)
    return partner, msg_id, text


def accept(partner_id: str, headers: Mapping[str, str], raw_body: bytes, now: float | None = None) -> tuple[int, dict]:
    now = time.time() if now is None else now
    partner, msg_id, text = verified_request(partner_id, headers, raw_body, now)

    try:
        envelope, data, case_key = _admit(partner, text, now)
    except HubError:
        # A signed retry of an accepted webhook-id gets its first answer, whatever its body now says.
        stored = event_store.get(partner.id, msg_id)
        if stored is not None:
            return _duplicate_answer(stored)
        raise

    event_id = ids.event_id()
    answer = {"event_id": event_id, "webhook_id": msg_id, "status": "accepted"}
    event = event_store.StoredEvent(
        event_id=event_id, partner_id=partner.id, webhook_id=msg_id, type=envelope.type,
        timestamp=envelope.timestamp.isoformat(), data=data,
        payload_sha256=hashlib.sha256(raw_body).hexdigest(), received_at=now, answer=answer, case_key=case_key,
    )
    if not event_store.put_new(event):
        stored = event_store.get(partner.id, msg_id)
        if stored is None:  # only if the item expired between the two calls
            raise HubError(409, "conflict", "Retry the request.")
        if stored.payload_sha256 != event.payload_sha256:
            logger.warning("webhook-id reused with a different body", extra={"event_id": stored.event_id})
        metrics.add_metric(name="DuplicateEvents", unit="Count", value=1)
        return _duplicate_answer(stored)
    log_keys(correlation_id=event.event_id)
    logger.info("event accepted", extra={"event_type": event.type, "payload_sha256": event.payload_sha256})
    metrics.add_metric(name="EventsAccepted", unit="Count", value=1)
    return 202, answer


def _admit(partner: Partner, text: str, now: float) -> tuple[Envelope, dict[str, Any], str | None]:
    """Everything between a verified signature and the write: 400, 403 or 422, or the canonical data
    and the key of the case it is about, if any."""
    from chalicelib import flows, mapping, models, routing

    envelope = parse_envelope(text)
    if envelope.type not in models.inbound_types_for_kind(partner.kind):
        raise HubError(403, "event_type_not_allowed",
                       f"A partner of kind {partner.kind} may not send {envelope.type}.",
                       [{"field": "type", "code": "not_allowed", "message": f"not an inbound type for kind {partner.kind}"}])
    if envelope.timestamp > datetime.fromtimestamp(now, tz=timezone.utc) + FUTURE_SKEW:
        raise HubError(422, "timestamp_in_future", "The envelope timestamp is in the future.",
                       [{"field": "timestamp", "code": "in_future", "message": "more than 5 minutes ahead"}])
    canonical = mapping.load_mapping(partner.mapping).to_canonical(envelope.type, envelope.data)
    model = models.validate_data(envelope.type, canonical)
    data = model.model_dump(mode="json", exclude_none=True)
    routing.check_admissible(partner, envelope.type, data)
    case_key = flows.door_check(partner, envelope.type, data)
    if case_key is None and isinstance(data.get("case_id"), str) and isinstance(data.get("unit_code"), str):
        case_key = f"{data['case_id']}#{data['unit_code']}"
    return envelope, data, case_key
