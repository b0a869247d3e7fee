"""Flow 5, inquiries (查询): a court or a bank asks for a unit's registration facts, or for the units of a
person, on a recorded legal basis; the registry answers; the answer goes back to the asker and to no one
else (Tangshan's "涉案不动产网上信息查询", seed 002).

    court | bank ── inquiry.requested ─→ hub ── inquiry.forwarded (who asks, on what basis) ─→ registry
    registry ── inquiry.answered ─→ hub ── inquiry.answered (+ the answering city) ─→ the asker only

Who is asked: the registry of the unit's city; for an inquiry about a person only (no unit code), the
registry of the asker's own city. The legal basis must be one the asker's kind may hold:

    court  investigation_order (执行调查), assistance_notice (协助查询通知书), court_ruling
    bank   owner_consent, loan_application, investigation_order (a court's 调查令 held as a litigant:
           seed 002, "律师查询时提供法院调查令编号")

anything else is refused (422 legal_basis_not_allowed), and the basis document, when given, must be the
asker's verified upload (it is forwarded with a short-lived link; so is the registry's result document).

Storage: one record per inquiry in the cases table, `pk = inquiry#<inquiry_id>`, `sk = record` (the
partition of its time-limit clock, `inquiry:<id>`, stage `inquiry_answer`), a `flows.relay.Record`
written with the same optimistic concurrency. It keeps who asked, whom the hub asked, the legal basis
(kind, number, document id) and the answer's outcome and count: no subject, no owners, no records
(those travel in the events and deliveries only). An inquiry id is the asker's reference and unique in
the hub (`inquiry_id_in_use` for another partner's); the same request again is accepted and sends
nothing; a different one under a used id is refused (`inquiry_already_requested`).

Answers: from a registry that was not asked, or for an unknown inquiry, the same 422 `unknown_inquiry`;
a second answer that repeats the first is accepted and changes nothing, another is refused
(`inquiry_already_answered`); a found answer about a unit inquiry lists records of that unit only
(`answer_unit_mismatch`). The record is read with `read_inquiry` (GET /v1/inquiries/{inquiry_id},
signed like a case read) by the asker and the registries asked, and by no one else.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from chalicelib import cases
from chalicelib.cases import UNCHANGED
from chalicelib.errors import HubError
from chalicelib.flows import checks, digest, handles, iso, now_iso, send
from chalicelib.flows.relay import Record, link_ttl_s, load, update
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

INQUIRY = "inquiry"
STAGE = "inquiry_answer"
LEGAL_BASES = {"court": ("investigation_order", "assistance_notice", "court_ruling"),
               "bank": ("owner_consent", "loan_application", "investigation_order")}
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # models.common.Ref


def _refuse(code: str, message: str, field: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": message}])


def _registry_city(asker_city: str, data: dict[str, Any]) -> str:
    return city_of(data["unit_code"]) if data.get("unit_code") else asker_city


def _link(ref: dict[str, Any] | None, field: str, owner: str) -> list[dict[str, Any]]:
    """The document, checked again (the sender's, verified, as described), with a download link."""
    from chalicelib import documents

    if not ref:
        return []
    documents.require_verified(ref, field=field, partner_id=owner)
    ttl = link_ttl_s()
    return [{"document_id": ref["document_id"], "download_url": documents.download_url(ref["document_id"], ttl),
             "url_expires_at": (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat()}]


def _clock(action: str, record: Record, at: float) -> None:
    from chalicelib import clocks

    subject = clocks.subject_key(INQUIRY, record.case_id)
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    if action == "stop":
        clocks.stop(subject, STAGE, moment)
        return
    registries = record.doc["registry_partner_ids"]
    clocks.start(subject, STAGE, service="inquiry", city=record.doc["registry_city"],
                 responsible_partner_id=registries[0] if len(registries) == 1 else None, started_at=moment,
                 detail={"unit_code": record.doc["unit_code"]} if record.doc["unit_code"] else None)


# ---------------------------------------------------------------------------------------------------
# door checks


@checks("inquiry.requested")
def _check_requested(partner: Any, data: dict[str, Any]) -> str:
    from chalicelib import documents

    basis = data["legal_basis"]
    allowed = LEGAL_BASES.get(partner.kind, ())
    if basis["kind"] not in allowed:
        raise _refuse("legal_basis_not_allowed", f"A {partner.kind} inquires on one of: {', '.join(allowed)}.",
                      "data.legal_basis.kind")
    if not get_directory().find("registry", city=_registry_city(partner.city, data)):
        raise HubError(422, "no_route_target", "No registry serves the city asked.",
                       [{"field": "data.unit_code" if data.get("unit_code") else "data.subject", "code": "no_target",
                         "message": "no registry partner"}])
    record = load(INQUIRY, data["inquiry_id"])
    if record is not None:
        if record.doc["asker_partner_id"] != partner.id:
            raise _refuse("inquiry_id_in_use", "Another partner's inquiry has this inquiry_id; use another.",
                          "data.inquiry_id")
        if record.doc["digest"] != digest(data):
            raise _refuse("inquiry_already_requested", "This inquiry_id was used for another request; a new "
                          "request takes a new inquiry_id.", "data.inquiry_id")
        return record.key_text  # the same request again: accepted, nothing sent twice
    if basis.get("document"):
        documents.require_verified(basis["document"], field="data.legal_basis.document", partner_id=partner.id)
    return f"{INQUIRY}#{data['inquiry_id']}"


def _asked(partner: Any, inquiry_id: str) -> Record:
    record = load(INQUIRY, inquiry_id)
    # The same refusal for an inquiry that does not exist and one this registry was not asked.
    if record is None or partner.id not in record.doc["registry_partner_ids"]:
        raise _refuse("unknown_inquiry", "No inquiry with this id was sent to you.", "data.inquiry_id")
    return record


@checks("inquiry.answered")
def _check_answered(partner: Any, data: dict[str, Any]) -> str:
    from chalicelib import documents

    record = _asked(partner, data["inquiry_id"])
    answer = record.doc["answer"]
    if answer is not None:
        if answer["partner_id"] == partner.id and answer["digest"] == digest(data):
            return record.key_text  # the same answer again: accepted, nothing sent twice
        raise _refuse("inquiry_already_answered", "This inquiry was answered already.", "data.inquiry_id")
    unit_code = record.doc["unit_code"]
    if unit_code and any(r["unit_code"] != unit_code for r in data.get("records", [])):
        raise _refuse("answer_unit_mismatch", "The inquiry asked about one unit; answer with its records only.",
                      "data.records")
    if data.get("document"):
        documents.require_verified(data["document"], field="data.document", partner_id=partner.id)
    return record.key_text


# ---------------------------------------------------------------------------------------------------
# handlers


@handles("inquiry.requested")
def on_inquiry_requested(stored: Any) -> None:
    data = stored.data
    asker = get_directory().get(stored.partner_id)
    if asker is None:
        return
    registry_city = _registry_city(asker.city, data)
    registries = get_directory().find("registry", city=registry_city)
    basis = data["legal_basis"]
    create = {"inquiry_id": data["inquiry_id"], "unit_code": data.get("unit_code"),
              "target": "unit" if data.get("unit_code") else "subject", "scope": data.get("scope", ["all"]),
              "asker_partner_id": asker.id, "asker_kind": asker.kind, "asker_city": asker.city,
              "registry_city": registry_city, "registry_partner_ids": sorted(p.id for p in registries),
              "participants": sorted({asker.id, *(p.id for p in registries)}),
              "legal_basis": {"kind": basis["kind"], "number": basis["number"],
                              "document_id": (basis.get("document") or {}).get("document_id")},
              "digest": digest(data), "requested_event": stored.event_id, "received_at": stored.received_at,
              "refused": None, "answer": None}
    record, _ = update(INQUIRY, data["inquiry_id"], lambda r: None if r.is_new else UNCHANGED, create=create)
    if record.doc["requested_event"] != stored.event_id:
        return  # the same request under another webhook-id: its first event forwarded it
    try:
        links = _link(basis.get("document"), "data.legal_basis.document", asker.id)
    except HubError as exc:  # the basis document is no longer the verified upload it was at the door
        _refused(record, stored, f"{exc.code}: the legal basis document is not verified")
        return
    send(stored.event_id, "forwarded", "inquiry.forwarded", {
        **data, "requester_kind": asker.kind, "requester_partner_id": asker.id, "requester_uscc": asker.uscc,
        "document_links": links, "received_at": iso(stored.received_at)}, registries, record.ref)
    _clock("start", record, stored.received_at)
    logger.info("inquiry forwarded", extra={"inquiry_id": record.case_id, "registry_city": registry_city,
                                            "legal_basis": basis["kind"], "target": create["target"]})
    metrics.add_metric(name="InquiriesForwarded", unit="Count", value=1)


def _refused(record: Record, stored: Any, reason: str) -> None:
    """The hub cannot forward the inquiry: the asker gets a refused answer, the registry nothing."""
    def mark(r: Record) -> Any:
        if r.doc["refused"]:
            return UNCHANGED
        r.doc["refused"] = reason
        return None

    update(INQUIRY, record.case_id, mark)
    asker = get_directory().get(record.doc["asker_partner_id"])
    send(stored.event_id, "refused", "inquiry.answered", {
        "inquiry_id": record.case_id, "outcome": "refused", "refusal_reason": reason, "answered_at": now_iso(),
        "city": record.doc["registry_city"]}, [asker] if asker else [], record.ref)


@handles("inquiry.answered")
def on_inquiry_answered(stored: Any) -> None:
    data = stored.data
    record = load(INQUIRY, data["inquiry_id"])
    if record is None or stored.partner_id not in record.doc["registry_partner_ids"]:
        logger.warning("answer without its inquiry", extra={"inquiry_id": data["inquiry_id"]})
        return
    fact = {"event_id": stored.event_id, "partner_id": stored.partner_id, "outcome": data["outcome"],
            "records": len(data.get("records", [])), "digest": digest(data),
            "document_id": (data.get("document") or {}).get("document_id"), "answered_at": data["answered_at"],
            "received_at": stored.received_at}

    def record_answer(r: Record) -> Any:
        if r.doc["answer"] is not None:
            return UNCHANGED  # answered (by this event on an earlier run, a repeat, or a racing answer)
        r.doc["answer"] = fact
        return None

    record, _ = update(INQUIRY, data["inquiry_id"], record_answer)
    if record.doc["answer"]["event_id"] != stored.event_id:
        if record.doc["answer"]["digest"] != fact["digest"]:
            logger.warning("a second, different answer not applied", extra={"inquiry_id": record.case_id})
        return
    _clock("stop", record, stored.received_at)
    asker = get_directory().get(record.doc["asker_partner_id"])
    try:
        links = _link(data.get("document"), "data.document", stored.partner_id)
    except HubError:  # replaced since the door: the answer goes without the document's link
        logger.error("an answer's document is no longer verified", extra={"inquiry_id": record.case_id})
        links = []
    send(stored.event_id, "answered", "inquiry.answered", {
        **data, "city": record.doc["registry_city"], "document_links": links}, [asker] if asker else [], record.ref)
    logger.info("inquiry answered", extra={"inquiry_id": record.case_id, "outcome": data["outcome"]})


# ---------------------------------------------------------------------------------------------------
# the signed read: GET /v1/inquiries/{inquiry_id}


def inquiry_view(inquiry_id: str, partner: Any) -> dict[str, Any]:
    """The asker and the registries asked see the inquiry; anyone else the same 404 as for no inquiry."""
    record = load(INQUIRY, inquiry_id) if _REF.fullmatch(inquiry_id or "") else None
    if record is None or partner.id not in record.doc["participants"]:
        raise HubError(404, "inquiry_not_found", "No inquiry with this id that you take part in.")
    doc = record.doc
    answer = doc["answer"]
    state = "answered" if answer else "refused" if doc["refused"] else "forwarded"
    return {"inquiry": {
        "inquiry_id": record.case_id, "unit_code": doc["unit_code"], "target": doc["target"], "scope": doc["scope"],
        "state": state, "asker_partner_id": doc["asker_partner_id"], "asker_kind": doc["asker_kind"],
        "registry_city": doc["registry_city"], "participants": doc["participants"], "legal_basis": doc["legal_basis"],
        "refused": doc["refused"], "received_at": iso(doc["received_at"]),
        "answer": {k: answer[k] for k in ("outcome", "records", "partner_id", "answered_at", "document_id")}
        if answer else None,
        "timeline": cases.timeline(INQUIRY, record.case_id),
    }}


def read_inquiry(inquiry_id: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """The route's (status, body), signed like a case read (chalicelib/reads.py)."""
    from chalicelib import reads

    return reads.answer("GET", f"/v1/inquiries/{inquiry_id}", headers,
                        lambda partner: inquiry_view(inquiry_id, partner))
