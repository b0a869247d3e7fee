"""Flow 6, five cities (DOMAIN.md): relays (异地代收、本地办理) and assisted online applications
(跨城全程网办) between the office of city A and the registry of city B, the city that owns the unit.

    office A ── relay.collected (attempt n) ─→ hub ── relay.requested (links + sha256) ─→ registry of B
                                                  └── relay.status "forwarded" (or "refused") ─→ office A
    registry B ── relay.accepted | relay.rejected | relay.originals_received | relay.completed ─→ hub
                                                  └── relay.status (the answer) ─→ office A
    office A ── relay.collected (attempt n+1), after a rejection or a refusal: the same relay, history kept

    office A ── assist.requested ─→ hub ── assist.requested (+ office_partner_id) ─→ registry of B
    registry B ── assist.session_opened ─→ hub ── assist.session_opened (+ registry_city) ─→ office A

Who is who is data: the office's city is its partner record's city (the `office_city` it declares must
agree), the owning city is `city_of(unit_code)`, and the registry of B is every registry partner of that
city in the partner directory (normally one). Every ordered pair of cities works the same way, and a
sixth city is a partner record away.

Storage: one item per relay in the cases table, `pk = "relay#<relay_id>"`, `sk = "record"` (assistance
requests: `assist#<assist_id>`). Not under `case#…`: a relay id is the office's reference and could be
anyone's case number, and `GET /v1/cases/{id}` must never find a relay. The item is a `cases.Case`
(document + version), written with `cases.save`'s optimistic concurrency by `update` (the same loop as
`cases.update`). The relay id is the office's own reference, kept across resubmissions; registries
answer with it only, so it is unique in the hub: another office's relay.collected with an id in use is
refused (`relay_id_in_use`).

The relay document holds no personal data (no applicant names, ID numbers or phones: those travel in
the events and deliveries only). It keeps every submission (attempt, documents by reference and
hash, evidence references, courier, and whether it was forwarded or refused) and, on each submission,
the registry's answers to it. Events and deliveries of a relay carry the key `relay#<relay_id>`
(door checks return it; `routing.emit` gets `("relay", relay_id)`), so the history of messages in and
out is read from the events and deliveries tables' case-index (`cases.timeline`), never written twice.

Door checks (422 before anything is stored): a unit of the office's own city, an office_city that is
not the sender's, a city without a registry partner, a relay id used by another office, an attempt out
of turn, a resubmission that is not after a rejection or refusal (or after completion), a document
that is not the sender's verified upload (pending, rejected for its hash, size, type or an expired
upload link, or another partner's); answers for an unknown relay or from a registry that is not of
the owning city (the same `unknown_relay`: a registry learns nothing about other cities' relays), for
another attempt, originals or completion before acceptance, and any answer after completion. A repeat
of an answer already recorded is accepted and changes nothing (a partner may resend a fact under a new
webhook-id). Scans are checked again when the relay is forwarded: a scan that is no longer verified by
then (its bytes replaced) makes the hub refuse the submission (relay.status "refused"), never forward it.

Ordering: registries may send relay.accepted and relay.originals_received (or relay.completed) back to
back, before the stream has applied the acceptance. The door check therefore also counts an accepted
relay.accepted event not yet applied (looked up through the events case-index), and the handlers
record facts whatever order the stream hands them in; the relay's state is derived from the set of
facts of its current submission, not from their order.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from chalicelib import aws, cases, documents
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import checks, digest, handles, iso, now_iso, send
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory
from chalicelib.settings import get_settings

RELAY, ASSIST = "relay", "assist"
# Download links in relay.requested: presigned GETs valid this long (HUB_RELAY_LINK_TTL seconds). The
# delivery body is frozen when it is scheduled and retried on HUB_RETRY_SCHEDULE, so the links should
# outlive the first retries (the default schedule's first five waits add up to about 7.6 h).
DEFAULT_LINK_TTL_S = 24 * 3600
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # models.common.Ref


def link_ttl_s() -> int:
    from chalicelib.documents import MAX_PRESIGN_S

    return max(60, min(int(os.environ.get("HUB_RELAY_LINK_TTL", str(DEFAULT_LINK_TTL_S))), MAX_PRESIGN_S))


def _refuse(status: int, code: str, message: str, field: str, detail_code: str, detail: str) -> HubError:
    return HubError(status, code, message, [{"field": field, "code": detail_code, "message": detail}])


# ---------------------------------------------------------------------------------------------------
# the record: a cases.Case under its own partition


@dataclass
class Record(Case):
    """A relay (or assistance request): `case_id` holds its id, `unit_code` its unit; key `<kind>#<id>`."""

    kind: str = RELAY

    @property
    def key_text(self) -> str:
        return f"{self.kind}#{self.case_id}"

    @property
    def ref(self) -> tuple[str, str]:
        """What `routing.emit` makes the case key of a delivery from: "<kind>#<id>"."""
        return self.kind, self.case_id

    @property
    def key(self) -> dict[str, Any]:
        return {"pk": {"S": self.key_text}, "sk": {"S": "record"}}


def load(kind: str, ref: str) -> Record | None:
    item = aws.client("dynamodb").get_item(
        TableName=get_settings().cases_table, Key={"pk": {"S": f"{kind}#{ref}"}, "sk": {"S": "record"}},
        ConsistentRead=True).get("Item")
    if not item:
        return None
    doc = json.loads(item["doc"]["S"])
    return Record(ref, doc["unit_code"], doc, int(item["version"]["N"]), kind=kind)


def update(kind: str, ref: str, change: Callable[[Record], Any], create: dict[str, Any] | None = None
            ) -> tuple[Record, Any]:
    """`cases.update` for a record: read, change, write conditionally on the version read; retried."""
    for _ in range(cases.MAX_UPDATE_ATTEMPTS):
        record = load(kind, ref)
        if record is None:
            if create is None:
                raise HubError(422, f"unknown_{kind}", f"No such {kind}.")
            record = Record(ref, create["unit_code"], json.loads(json.dumps(create)), 0, is_new=True, kind=kind)
        result = change(record)
        if result is UNCHANGED or isinstance(result, HubError):
            return record, result
        if cases.save(record):
            return record, result
    raise RuntimeError(f"{kind} update kept losing races")  # the stream retries the record


def _registries(city: str) -> list:
    return get_directory().find("registry", city=city)


# ---------------------------------------------------------------------------------------------------
# rules shared by the door checks and the handlers


def _check_offices_city(partner: Any, data: dict[str, Any]) -> str:
    """The city of B, after the rules on A: not the office's own city, the declared city is the office's,
    and B has a registry. Returns B's city code."""
    unit_city = city_of(data["unit_code"])
    if unit_city == partner.city:
        raise _refuse(422, "relay_to_own_city", "The unit is in the office's own city: handle it locally.",
                      "data.unit_code", "relay_to_own_city", "the unit code's city is the office's city")
    if data["office_city"] != partner.city:
        raise _refuse(422, "office_city_mismatch", "office_city is not the city of the sending office.",
                      "data.office_city", "office_city_mismatch", "must be the sending office's city")
    if not _registries(unit_city):
        raise _refuse(422, "no_route_target", "No registry partner serves the city that owns the unit.",
                      "data.unit_code", "no_registry", "no registry partner in the unit code's city")
    return unit_city


def _document_refs(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field, reference) of every document a relay or assistance request points at."""
    refs = [(f"data.documents.{i}.document", scan["document"]) for i, scan in enumerate(data.get("documents", []))]
    refs += [(f"data.evidence.{i}.document", item["document"]) for i, item in enumerate(data.get("evidence", []))
             if item.get("document")]
    return refs


def _require_documents(data: dict[str, Any], owner: str) -> None:
    for field, ref in _document_refs(data):
        documents.require_verified_upload(ref, field=field, partner_id=owner)


def _submission_summary(stored: Any, outcome: str, reasons: list[dict[str, Any]]) -> dict[str, Any]:
    """What the relay keeps of a submission: references, hashes and checks; no names, numbers or phones."""
    data = stored.data
    return {
        "attempt": data["attempt"], "event_id": stored.event_id, "digest": digest(data),
        "received_at": stored.received_at, "collected_at": data["collected_at"], "service": data["service"],
        "applicants": len(data["applicants"]),
        "documents": [{"kind": scan["kind"], **{k: scan["document"][k] for k in ("document_id", "sha256", "size",
                                                                                  "media_type")}}
                      for scan in data["documents"]],
        "evidence": [{k: item[k] for k in ("applicant_index", "purpose", "method", "result", "checked_at", "reference")}
                     | ({"document_id": item["document"]["document_id"]} if item.get("document") else {})
                     for item in data["evidence"]],
        "originals": data.get("originals"),
        "outcome": outcome, "reasons": reasons,
        "accepted": None, "rejected": None, "originals_received": [], "completed": None,
    }


def state_of(doc: dict[str, Any]) -> str:
    """Where a relay stands: derived from the facts of its current submission, whatever their order."""
    sub = doc["submissions"][-1]
    if sub["completed"]:
        return "completed"
    if sub["rejected"]:
        return "rejected"
    if sub["outcome"] == "refused":
        return "refused"
    if sub["originals_received"]:
        return "originals_received"
    if sub["accepted"]:
        return "accepted"
    return "forwarded"


def _resubmittable(doc: dict[str, Any]) -> bool:
    sub = doc["submissions"][-1]
    if sub["completed"]:
        return False
    if sub["outcome"] == "refused":
        return True
    return bool(sub["rejected"]) and sub["rejected"]["fact"]["resubmittable"]


def _check_resubmission(doc: dict[str, Any], partner_id: str, data: dict[str, Any]) -> bool:
    """Raise the 422 of a relay.collected that may not add a submission; True for a repeat of the last one."""
    if doc["office_partner_id"] != partner_id:
        raise _refuse(422, "relay_id_in_use", "Another office's relay has this relay_id; use another reference.",
                      "data.relay_id", "in_use", "relay ids are unique in the hub")
    sub = doc["submissions"][-1]
    if data["attempt"] == sub["attempt"] and digest(data) == sub["digest"]:
        return True  # the same submission again under another webhook-id: accepted, changes nothing
    if data["unit_code"] != doc["unit_code"]:
        raise _refuse(422, "relay_unit_changed", "A resubmission is for the same unit; start a new relay.",
                      "data.unit_code", "changed", "differs from the relay's unit code")
    if sub["completed"]:
        raise _refuse(422, "relay_completed", "The relay is completed; nothing can be resubmitted.",
                      "data.relay_id", "completed", "the registry completed this relay")
    if any(s["attempt"] == data["attempt"] for s in doc["submissions"]):
        raise _refuse(422, "attempt_already_submitted", "This attempt was submitted already; a correction is "
                      "the next attempt.", "data.attempt", "already_submitted",
                      f"attempt {data['attempt']} exists; the next is {sub['attempt'] + 1}")
    if not _resubmittable(doc):
        state = state_of(doc)
        why = ("the registry refused it as final" if state == "rejected"
               else "resubmit only after a rejection or a refusal")
        raise _refuse(422, "relay_not_resubmittable", f"The relay is {state}; {why}.", "data.relay_id", state, why)
    if data["attempt"] != sub["attempt"] + 1:
        raise _refuse(422, "attempt_out_of_order", "A resubmission is the next attempt.", "data.attempt",
                      "out_of_order", f"the next attempt is {sub['attempt'] + 1}")
    return False


def _answer_fact(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the relay keeps of an answer (and compares to tell a repeat from a conflict)."""
    if kind == "accepted":
        return {"registry_case_id": data["registry_case_id"], "expected_completion": data.get("expected_completion"),
                "at": data["accepted_at"]}
    if kind == "rejected":
        return {"reasons": data["reasons"], "resubmittable": data["resubmittable"], "at": data["rejected_at"]}
    if kind == "originals_received":
        return {"registry_case_id": data.get("registry_case_id"), "tracking_number": data.get("tracking_number"),
                "complete": data["complete"], "missing": data.get("missing", []), "at": data["received_at"]}
    # Certificates by kind and number (the holder's name is not kept on the relay; it reaches the office).
    return {"registry_case_id": data["registry_case_id"],
            "certificates": [{k: c[k] for k in ("kind", "number", "e_certificate_id") if k in c}
                             for c in data.get("certificates", [])],
            "return_shipment": data.get("return_shipment"),
            "result_document_id": (data.get("result_document") or {}).get("document_id"), "at": data["completed_at"]}


def _is_repeat(sub: dict[str, Any], kind: str, fact: dict[str, Any]) -> bool:
    """The same fact again (its time aside: a resend may restamp it)."""
    def same(recorded: dict[str, Any]) -> bool:
        return {k: v for k, v in recorded["fact"].items() if k != "at"} == {k: v for k, v in fact.items() if k != "at"}

    recorded = sub[kind]
    if kind == "originals_received":
        return any(same(r) for r in recorded)
    return bool(recorded) and same(recorded)


def _answer_rule(doc: dict[str, Any], kind: str, data: dict[str, Any], accepted: dict[str, Any] | None,
                 at_door: bool) -> HubError | None:
    """The refusal of an answer the relay's current submission cannot take, or None (repeats pass).

    `accepted` is the acceptance of the current attempt (recorded, or at the door one not yet applied).
    At the door the order is enforced. On the stream an answer has passed the door already, so only a
    contradiction is refused there: facts the registry sent back to back are recorded in whatever order
    the stream hands them over (originals before the acceptance, the acceptance after the completion).
    """
    sub = doc["submissions"][-1]
    if _is_repeat(sub, kind, _answer_fact(kind, data)):
        return None
    if "attempt" in data and data["attempt"] != sub["attempt"]:
        return _refuse(422, "attempt_mismatch", "The answer is for another attempt than the relay's current one.",
                       "data.attempt", "attempt_mismatch", f"the current attempt is {sub['attempt']}")
    if sub["outcome"] == "refused":
        return _refuse(422, "relay_not_forwarded", "The hub refused this attempt; the registry never got it.",
                       "data.relay_id", "refused", "the current attempt was not forwarded")
    if sub["completed"] and (at_door or kind in ("rejected", "completed")):
        return _refuse(422, "relay_completed", "The relay is completed; it takes no further answers.",
                       "data.relay_id", "completed", "the relay is completed")
    if sub["rejected"]:
        if kind == "rejected":
            return _refuse(422, "relay_already_rejected", "This attempt was rejected already, for other reasons.",
                           "data.reasons", "already_rejected", "differs from the recorded rejection")
        return _refuse(422, "relay_rejected", "This attempt was rejected; the office may resubmit.",
                       "data.relay_id", "rejected", "the current attempt is rejected")
    if kind == "accepted" and sub["accepted"]:
        return _refuse(422, "relay_already_accepted", "This attempt was accepted under another case number.",
                       "data.registry_case_id", "already_accepted", "differs from the recorded acceptance")
    if kind in ("originals_received", "completed"):
        if accepted is None:
            if at_door:
                return _refuse(422, "relay_not_accepted", "The registry has not accepted this relay.",
                               "data.relay_id", "not_accepted", "accept the relay first (relay.accepted)")
        elif data.get("registry_case_id") and data["registry_case_id"] != accepted["registry_case_id"]:
            return _refuse(422, "registry_case_mismatch", "Not the case number the relay was accepted under.",
                           "data.registry_case_id", "mismatch", "differs from the accepted registry_case_id")
    if kind == "completed" and not (data.get("certificates") or data.get("return_shipment")
                                    or data.get("result_document")):
        return _refuse(422, "completion_result_missing", "A completion gives the certificates, the tracking number "
                       "of the mailed certificates, or the result document.", "data.certificates", "missing",
                       "certificates, return_shipment or result_document")
    return None


def _pending_acceptance(record: Record) -> dict[str, Any] | None:
    """An accepted relay.accepted for the current attempt that the stream has not applied yet."""
    from chalicelib import event_store

    sub = record.doc["submissions"][-1]
    pages = aws.client("dynamodb").get_paginator("query").paginate(
        TableName=get_settings().events_table, IndexName="case-index", KeyConditionExpression="case_key = :k",
        FilterExpression="#t = :t", ExpressionAttributeNames={"#t": "type"},
        ExpressionAttributeValues={":k": {"S": record.key_text}, ":t": {"S": "relay.accepted"}})
    for page in pages:
        for item in page["Items"]:
            stored = event_store.get(item["partner_id"]["S"], item["webhook_id"]["S"])
            if stored is not None and stored.data.get("attempt", 1) == sub["attempt"]:
                return {"registry_case_id": stored.data["registry_case_id"]}
    return None


def _answered_relay(partner: Any, relay_id: str) -> Record:
    record = load(RELAY, relay_id)
    # The same refusal for a relay that does not exist and one of another city's registry.
    if record is None or partner.kind != "registry" or partner.city != record.doc["registry_city"]:
        raise _refuse(422, "unknown_relay", "No relay with this id for the sender's city.", "data.relay_id",
                      "unknown_relay", "no such relay for a unit of your city")
    return record


# ---------------------------------------------------------------------------------------------------
# door checks


@checks("relay.collected")
def _check_collected(partner: Any, data: dict[str, Any]) -> str:
    _check_offices_city(partner, data)
    record = load(RELAY, data["relay_id"])
    if record is None:
        if data["attempt"] != 1:
            raise _refuse(422, "attempt_out_of_order", "A new relay starts at attempt 1.", "data.attempt",
                          "out_of_order", "no relay with this id yet")
    elif _check_resubmission(record.doc, partner.id, data):
        return record.key_text  # a repeat: its documents were checked when it was first accepted
    _require_documents(data, partner.id)
    return f"{RELAY}#{data['relay_id']}"


def _check_answer(kind: str, partner: Any, data: dict[str, Any]) -> str:
    record = _answered_relay(partner, data["relay_id"])
    sub = record.doc["submissions"][-1]
    accepted = sub["accepted"]["fact"] if sub["accepted"] else None
    if kind in ("originals_received", "completed") and accepted is None and not sub["rejected"]:
        accepted = _pending_acceptance(record)
    problem = _answer_rule(record.doc, kind, data, accepted, at_door=True)
    if problem is not None:
        raise problem
    if kind == "completed":  # what the office will be sent must be the registry's verified uploads
        refs = [(f"data.certificates.{i}.e_certificate", c["e_certificate"])
                for i, c in enumerate(data.get("certificates", [])) if c.get("e_certificate")]
        if data.get("result_document"):
            refs.append(("data.result_document", data["result_document"]))
        for field, ref in refs:
            documents.require_verified_upload(ref, field=field, partner_id=partner.id)
    return record.key_text


ANSWERS = {"relay.accepted": "accepted", "relay.rejected": "rejected",
           "relay.originals_received": "originals_received", "relay.completed": "completed"}


def _door_for(kind: str) -> Callable[[Any, dict[str, Any]], str]:
    return lambda partner, data: _check_answer(kind, partner, data)


for _type, _kind in ANSWERS.items():
    checks(_type)(_door_for(_kind))


@checks("assist.requested")
def _check_assist(partner: Any, data: dict[str, Any]) -> str:
    _check_offices_city(partner, data)
    record = load(ASSIST, data["assist_id"])
    if record is not None:
        if record.doc["office_partner_id"] != partner.id:
            raise _refuse(422, "assist_id_in_use", "Another office's request has this assist_id; use another.",
                          "data.assist_id", "in_use", "assistance ids are unique in the hub")
        if record.doc["digest"] != digest(data):
            raise _refuse(422, "assist_already_requested", "This assist_id was requested already; a new request "
                          "takes a new assist_id.", "data.assist_id", "already_requested", "assist_id in use")
        return record.key_text
    _require_documents(data, partner.id)
    return f"{ASSIST}#{data['assist_id']}"


@checks("assist.session_opened")
def _check_session(partner: Any, data: dict[str, Any]) -> str:
    record = load(ASSIST, data["assist_id"])
    if record is None or partner.kind != "registry" or partner.city != record.doc["registry_city"]:
        raise _refuse(422, "unknown_assist", "No assistance request with this id for the sender's city.",
                      "data.assist_id", "unknown_assist", "no such request for a unit of your city")
    return record.key_text


# ---------------------------------------------------------------------------------------------------
# relay handlers


def _links(data: dict[str, Any], office_id: str) -> list[dict[str, Any]]:
    """Every scan, checked again (verified, the office's, as described), with a short-lived download link."""
    ttl = link_ttl_s()
    for field, ref in _document_refs(data):
        documents.require_verified_upload(ref, field=field, partner_id=office_id)
    expires_at = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat()
    return [{**scan, "download_url": documents.download_url(scan["document"]["document_id"], ttl),
             "url_expires_at": expires_at} for scan in data["documents"]]


def _status(record: Record, source_event_id: str, purpose: str, status: str, attempt: int,
            **fields: Any) -> None:
    office = get_directory().get(record.doc["office_partner_id"])
    send(source_event_id, purpose, "relay.status", {
        "relay_id": record.case_id, "attempt": attempt, "status": status,
        "registry_city": record.doc["registry_city"], "status_at": now_iso(),
        **{k: v for k, v in fields.items() if v not in (None, [])}}, [office] if office else [], record.ref)


@handles("relay.collected")
def on_relay_collected(stored: Any) -> None:
    data = stored.data
    relay_id, attempt, office = data["relay_id"], data["attempt"], stored.partner_id
    registry_city = city_of(data["unit_code"])
    registries = _registries(registry_city)
    try:
        links = _links(data, office)
        outcome, reasons = "forwarded", []
    except HubError as exc:  # a scan is no longer the verified upload it was at the door
        links = []
        outcome = "refused"
        reasons = [{"code": "document_not_verified",
                    "message": "; ".join(f"{d['field']}: {d['code']}" for d in exc.details)[:500] or exc.message}]
    submission = _submission_summary(stored, outcome, reasons)
    create = {"relay_id": relay_id, "unit_code": data["unit_code"], "office_partner_id": office,
              "office_city": data["office_city"], "registry_city": registry_city,
              "participants": sorted({office, *(p.id for p in registries)}), "created_at": stored.received_at,
              "submissions": []}

    def record_submission(r: Record) -> Any:
        subs = r.doc["submissions"]
        if r.doc["office_partner_id"] == office and any(s["attempt"] == attempt for s in subs):
            return UNCHANGED  # recorded (by this event on an earlier run, or by a repeat of it)
        if subs:
            try:
                _check_resubmission(r.doc, office, data)
            except HubError as exc:
                return exc  # raced past the door (two offices, or two resubmissions at once)
        subs.append(submission)
        r.doc["participants"] = sorted({*r.doc["participants"], *(p.id for p in registries)})
        return None

    record, result = update(RELAY, relay_id, record_submission, create=create)
    if isinstance(result, HubError):
        logger.warning("relay submission refused on the stream", extra={"relay_id": relay_id, "code": result.code})
        record_ref = record.ref if record.doc["office_partner_id"] == office else None
        office_partner = get_directory().get(office)
        send(stored.event_id, "refused", "relay.status", {
            "relay_id": relay_id, "attempt": attempt, "status": "refused", "registry_city": registry_city,
            "reasons": [{"code": result.code, "message": result.message}], "status_at": now_iso()},
            [office_partner] if office_partner else [], record_ref)
        return
    sub = next(s for s in record.doc["submissions"] if s["attempt"] == attempt)
    if sub["event_id"] != stored.event_id:
        return  # this attempt came first under another webhook-id: that event forwards it
    if sub["outcome"] == "forwarded" and not links:
        # Forwarded on an earlier run, and a scan changed since: never send it; say so.
        logger.error("a forwarded relay's scan is no longer verified", extra={"relay_id": relay_id})
        return
    if sub["outcome"] == "refused":
        _status(record, stored.event_id, "status", "refused", attempt, reasons=sub["reasons"])
        metrics.add_metric(name="RelaysRefused", unit="Count", value=1)
        return
    send(stored.event_id, "requested", "relay.requested", {
        **{k: v for k, v in data.items() if k != "documents"}, "documents": links,
        "office_partner_id": office, "received_at": iso(stored.received_at),
    }, registries, record.ref)
    _status(record, stored.event_id, "status", "forwarded", attempt)
    _clock("start", relay_id, "relay_acceptance", attempt, stored.received_at, service=data["service"],
           city=registry_city, responsible=registries[0].id if len(registries) == 1 else None,
           detail={"unit_code": data["unit_code"], "office_partner_id": office})
    logger.info("relay forwarded", extra={"relay_id": relay_id, "attempt": attempt, "registry_city": registry_city})
    metrics.add_metric(name="RelaysForwarded", unit="Count", value=1)


def _clock(action: str, relay_id: str, stage: str, attempt: int, at: float, **start: Any) -> None:
    """Relays run against the same time limits as cases (chalicelib.clocks): one clock per attempt."""
    from datetime import datetime, timezone

    from chalicelib import clocks

    subject = clocks.subject_key("relay", relay_id)
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    if action == "stop":
        clocks.stop(subject, stage, moment, instance=str(attempt))
        return
    clocks.start(subject, stage, service=start["service"], city=start["city"],
                 responsible_partner_id=start["responsible"], started_at=moment, detail=start["detail"],
                 instance=str(attempt))


def _on_answer(stored: Any, kind: str) -> None:
    data = stored.data
    sender = get_directory().get(stored.partner_id)
    record = load(RELAY, data["relay_id"])
    if record is None or sender is None or sender.city != record.doc["registry_city"]:
        logger.warning("relay answer without its relay", extra={"relay_id": data["relay_id"]})
        return
    fact = _answer_fact(kind, data)

    def record_answer(r: Record) -> Any:
        sub = r.doc["submissions"][-1]
        if _is_repeat(sub, kind, fact):
            return UNCHANGED
        accepted = sub["accepted"]["fact"] if sub["accepted"] else None
        problem = _answer_rule(r.doc, kind, data, accepted, at_door=False)
        if problem is not None:
            return problem
        entry = {"fact": fact, "event_id": stored.event_id, "partner_id": stored.partner_id,
                 "received_at": stored.received_at}
        if kind == "originals_received":
            sub[kind].append(entry)
        else:
            sub[kind] = entry
        r.doc["participants"] = sorted({*r.doc["participants"], stored.partner_id})
        return None

    record, result = update(RELAY, data["relay_id"], record_answer)
    if isinstance(result, HubError):
        # Passed the door, then overtaken by another fact (a rejection racing an acceptance…): kept in the
        # events (the timeline shows it), not applied.
        logger.warning("relay answer not applied", extra={"relay_id": record.case_id, "code": result.code})
        return
    sub = record.doc["submissions"][-1]
    recorded = sub[kind]
    mine = (any(r["event_id"] == stored.event_id for r in recorded) if kind == "originals_received"
            else recorded and recorded["event_id"] == stored.event_id)
    if not mine:
        return  # a repeat of a recorded answer: its first event told the office
    accepted = sub["accepted"]["fact"] if sub["accepted"] else {}
    fields: dict[str, Any] = {"registry_case_id": data.get("registry_case_id") or accepted.get("registry_case_id")}
    if kind == "rejected":
        fields.update(reasons=data["reasons"], resubmittable=data["resubmittable"])
    elif kind == "originals_received":
        fields.update(missing=data.get("missing", []))
    elif kind == "completed":
        fields.update(certificates=data.get("certificates", []), return_shipment=data.get("return_shipment"))
    _status(record, stored.event_id, "status", kind, sub["attempt"], **fields)
    if kind in ("accepted", "rejected"):
        _clock("stop", record.case_id, "relay_acceptance", sub["attempt"], stored.received_at)
    if kind == "accepted":
        _clock("start", record.case_id, "relay_completion", sub["attempt"], stored.received_at,
               service=sub["service"], city=record.doc["registry_city"],
               responsible=stored.partner_id,
               detail={"unit_code": record.doc["unit_code"], "office_partner_id": record.doc["office_partner_id"],
                       "case_id": fields["registry_case_id"]})
    if kind in ("completed", "rejected"):
        _clock("stop", record.case_id, "relay_completion", sub["attempt"], stored.received_at)
    logger.info("relay answered", extra={"relay_id": record.case_id, "answer": kind, "attempt": sub["attempt"]})


@handles(*ANSWERS)
def on_relay_answer(stored: Any) -> None:
    _on_answer(stored, ANSWERS[stored.type])


# ---------------------------------------------------------------------------------------------------
# assistance handlers


def _session_key(data: dict[str, Any]) -> str:
    """A session by the hash of its link: the one-time link itself is not kept on the record."""
    return hashlib.sha256(data["session_url"].encode()).hexdigest()[:32]


@handles("assist.requested")
def on_assist_requested(stored: Any) -> None:
    data = stored.data
    registry_city = city_of(data["unit_code"])
    registries = _registries(registry_city)
    create = {"assist_id": data["assist_id"], "unit_code": data["unit_code"], "office_partner_id": stored.partner_id,
              "office_city": data["office_city"], "registry_city": registry_city, "digest": digest(data),
              "requested_event": stored.event_id, "received_at": stored.received_at,
              "participants": sorted({stored.partner_id, *(p.id for p in registries)}), "sessions": {}}
    record, _ = update(ASSIST, data["assist_id"], lambda r: None if r.is_new else UNCHANGED, create=create)
    if record.doc["requested_event"] != stored.event_id:
        return  # another event made this request (a repeat, or another office racing for the id)
    send(stored.event_id, "requested", "assist.requested", {
        **data, "office_partner_id": stored.partner_id,
        "received_at": iso(stored.received_at)}, registries, record.ref)
    logger.info("assistance requested", extra={"assist_id": data["assist_id"], "registry_city": registry_city})


@handles("assist.session_opened")
def on_assist_session_opened(stored: Any) -> None:
    data = stored.data
    sender = get_directory().get(stored.partner_id)
    record = load(ASSIST, data["assist_id"])
    if record is None or sender is None or sender.city != record.doc["registry_city"]:
        logger.warning("session for an unknown assistance request", extra={"assist_id": data["assist_id"]})
        return
    key = _session_key(data)

    def record_session(r: Record) -> Any:
        if key in r.doc["sessions"]:
            return UNCHANGED
        r.doc["sessions"][key] = {"event_id": stored.event_id, "partner_id": stored.partner_id,
                                  "registry_case_id": data.get("registry_case_id"),
                                  "opened_at": data["opened_at"], "expires_at": data["session_expires_at"]}
        r.doc["participants"] = sorted({*r.doc["participants"], stored.partner_id})
        return None

    record, _ = update(ASSIST, data["assist_id"], record_session)
    if record.doc["sessions"][key]["event_id"] != stored.event_id:
        return
    office = get_directory().get(record.doc["office_partner_id"])
    send(stored.event_id, "session", "assist.session_opened", {**data, "registry_city": record.doc["registry_city"]},
         [office] if office else [], record.ref)


# ---------------------------------------------------------------------------------------------------
# the signed read: GET /v1/relays/{relay_id}


def relay_view(relay_id: str, partner: Any) -> dict[str, Any]:
    """The whole history, to the office and the owning registry only: the same 404 for anyone else."""
    record = load(RELAY, relay_id) if _REF.fullmatch(relay_id or "") else None
    if record is None or partner.id not in record.doc["participants"]:
        raise HubError(404, "relay_not_found", "No relay with this id that you take part in.")
    doc = record.doc
    submissions = []
    for sub in doc["submissions"]:
        answers = [{"answer": kind, **entry["fact"], "event_id": entry["event_id"], "partner_id": entry["partner_id"],
                    "received_at": iso(entry["received_at"])}
                   for kind in ("accepted", "rejected", "completed") if sub[kind] for entry in [sub[kind]]]
        answers += [{"answer": "originals_received", **entry["fact"], "event_id": entry["event_id"],
                     "partner_id": entry["partner_id"], "received_at": iso(entry["received_at"])}
                    for entry in sub["originals_received"]]
        submissions.append({
            **{k: sub[k] for k in ("attempt", "event_id", "collected_at", "service", "applicants", "documents",
                                   "evidence", "originals", "outcome", "reasons")},
            "received_at": iso(sub["received_at"]),
            "answers": sorted(answers, key=lambda a: a["received_at"]),
        })
    current = doc["submissions"][-1]
    accepted = current["accepted"]["fact"] if current["accepted"] else None
    return {"relay": {
        "relay_id": record.case_id, "unit_code": doc["unit_code"], "service": current["service"],
        "state": state_of(doc), "attempt": current["attempt"], "resubmittable": _resubmittable(doc),
        "registry_case_id": accepted["registry_case_id"] if accepted else None,
        "office_partner_id": doc["office_partner_id"], "office_city": doc["office_city"],
        "registry_city": doc["registry_city"], "participants": doc["participants"],
        "submissions": submissions,
        "timeline": cases.timeline(RELAY, record.case_id),
    }}


def read_relay(relay_id: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """The route's (status, body), signed like a case read (chalicelib/reads.py)."""
    from chalicelib import reads

    return reads.answer("GET", f"/v1/relays/{relay_id}", headers, lambda partner: relay_view(relay_id, partner))
