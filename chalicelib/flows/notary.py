"""Flow 4, notaries (不动产登记+公证: Tangshan's 公证继承同步办, Zaozhuang's 继承公证与不动产登记协同一次办):
a notarized inheritance or gift arrives with its e-notarial certificate; the hub files the registration
application with the registry of the unit's city on the heirs' or donees' behalf and tells the notary.

    notary ── notarization.completed (certificate + scans, verified documents) ─→ hub
        └─ application.requested (source_kind notary, download links) ─→ the registry of the unit's city
    registry ── registration.booked | application.rejected (request_id) ─→ hub
        └─ registration.result (booked with certificates | rejected with reasons) ─→ the notary

The case: one per notarization, keyed `NZ_<notary partner id>_<notarization_id>` (a hash stands in
when that is not a valid case id: too long, or `.`/`:` in the notarization id) and the unit code;
`doc["flow"] == "notary"`. Partner ids never contain `_`, so two notaries' keys cannot meet. The
document holds references only (no names, ID numbers or phones: those travel in the events and the
application the hub files): the notarization id, matter, certificate number and document hashes, and
one filing per attempt:

    {"attempt", "request_id": "<case id>-<attempt>", "event_id", "digest", "certificate": {document
     reference}, "documents": n, "registry_partner_ids", "filed_at", "outcome": None | "booked" |
     "rejected" | "refused", "decision": {...}}

The request id is indexed (`cases.index_ref("request", …)`, the index the bank flows use too) before
the application leaves, so the registry's `registration.booked` / `application.rejected` (which carry
`request_id`) find the case; handlers and door checks here ignore a request that is not a notary
case's. The notary reads the case as `GET /v1/cases/<hub case id>` (registration.result's `case_id`).

Door checks (422, nothing stored): the notary office named in the event is not the sender's own
(`notary_office_mismatch`: the partner record's uscc, which a notary partner must have); the
certificate or a scan is not the sender's verified upload or does not match the sha256/size/type given
(`document_not_verified`, with the verifier's reason: hash_mismatch, size_mismatch…); no registry
serves the unit's city (`no_route_target`); the notarization id is in use for another unit
(`notarization_unit_changed`), or its application is still open (`notarization_in_progress`), booked
(`notarization_booked`) or finally rejected (`notarization_rejected`). The same notarization again
(same content, any webhook-id) is accepted and changes nothing; after a resubmittable rejection (or a
filing refused because a document changed) new content is the next attempt. For the registry's
answers: a request id of a notary case that was not filed with the sender, or for another unit
(`unknown_request`), an answer contradicting the one recorded (`application_already_decided`), and an
e-certificate that is not the registry's verified upload (`document_not_verified`). A request id that
is no notary case's is left to the other flows (the bank flows answer for theirs).

When the application is filed the scans are checked again; a document that is no longer verified is
never sent: the filing is `refused` and the notary gets registration.result rejected
(`document_not_verified`). Time limit: stage `registration` (the registry's), one clock per attempt.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib import cases, documents, restrictions
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import answers, checks, digest, handles, now_iso, send, views
from chalicelib.flows.relay import link_ttl_s
from chalicelib.flows.transfer import start_case_clock, stop_case_clock
from chalicelib.flows.utility import bounded_ref
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

FLOW = "notary"
SERVICE = "transfer"  # 继承/赠与 are transfer registrations (转移登记)
_CASE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # models.common.CaseId


def case_id_for(notary_partner_id: str, notarization_id: str) -> str:
    readable = f"NZ_{notary_partner_id}_{notarization_id}"
    if _CASE_ID.fullmatch(readable):
        return readable
    digest = hashlib.sha256(f"{notary_partner_id}\x1f{notarization_id}".encode()).hexdigest()[:24]
    return f"NZ_{notary_partner_id[:30]}_{digest}"


def request_id_for(case_id: str, attempt: int) -> str:
    tail = f"-{attempt}"
    return bounded_ref(case_id, 64 - len(tail)) + tail


def _registries(city: str) -> list:
    return get_directory().find("registry", city=city)


def _refuse(code: str, message: str, field: str, detail: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": detail}])


def _scans(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field, scan) of every document the notarization points at, the certificate first."""
    certificate = {"kind": "notarial_certificate", "title": "公证书", "document": data["certificate"]}
    return [("data.certificate", certificate)] + [(f"data.documents.{i}.document", scan)
                                                   for i, scan in enumerate(data.get("documents", []))]


def _filing_of(doc: dict[str, Any], request_id: str) -> dict[str, Any] | None:
    return next((f for f in doc["filings"] if f["request_id"] == request_id), None)


def _open_to_new_content(filing: dict[str, Any]) -> bool:
    if filing["outcome"] == "refused":
        return True
    return filing["outcome"] == "rejected" and filing["decision"]["resubmittable"]


def _refusal_for_new_content(doc: dict[str, Any]) -> HubError | None:
    last = doc["filings"][-1]
    if _open_to_new_content(last):
        return None
    if last["outcome"] is None:
        return _refuse("notarization_in_progress", "This notarization's application is with the registry; wait "
                       "for its answer.", "data.notarization_id", "an application for it is open")
    if last["outcome"] == "booked":
        return _refuse("notarization_booked", "This notarization was booked already.", "data.notarization_id",
                       "booked")
    return _refuse("notarization_rejected", "The registry rejected this notarization's application as final.",
                   "data.notarization_id", "rejected, not resubmittable")


# ---------------------------------------------------------------- door checks

@checks("notarization.completed")
def _check_notarization(partner: Any, data: dict[str, Any]) -> str:
    if not partner.uscc or partner.uscc != data["notary_office"]["uscc"]:
        raise _refuse("notary_office_mismatch", "The notary office named is not the sending notary's own.",
                      "data.notary_office.uscc", "must be the unified social credit code of the sending notary")
    for field, scan in _scans(data):
        documents.require_verified_upload(scan["document"], field=field, partner_id=partner.id)
    if not _registries(city_of(data["unit_code"])):
        raise _refuse("no_route_target", "No registry partner serves the unit's city.", "data.unit_code",
                      "no registry partner in the unit code's city")
    case_id = case_id_for(partner.id, data["notarization_id"])
    for case in cases.find(case_id):
        if case.unit_code != data["unit_code"]:
            raise _refuse("notarization_unit_changed", "This notarization id is in use for another unit.",
                          "data.unit_code", "differs from the unit of this notarization's case")
        content = digest(data)
        if case.doc["filings"] and not any(f["digest"] == content for f in case.doc["filings"]):
            refusal = _refusal_for_new_content(case.doc)
            if refusal:
                raise refusal
    return f"{case_id}#{data['unit_code']}"


@answers.files_applications(FLOW)
def _filed_with(case: Case, request_id: str) -> tuple[list[str], str | None] | None:
    filing = _filing_of(case.doc, request_id)
    return (filing["registry_partner_ids"], filing["outcome"]) if filing else None


# ---------------------------------------------------------------- the notarization

@handles("notarization.completed")
def on_notarization_completed(stored: Any) -> None:
    data = stored.data
    notary = stored.partner_id
    case_id, unit_code, city = case_id_for(notary, data["notarization_id"]), data["unit_code"], city_of(data["unit_code"])
    registries = [p.id for p in _registries(city)]
    content = digest(data)
    create = {"case_id": case_id, "unit_code": unit_code, "city": city, "flow": FLOW, "service": SERVICE,
              "matter": data["matter"], "notarization_id": data["notarization_id"],
              "certificate_number": data["certificate_number"], "notary_partner_id": notary,
              "participants": sorted({notary, *registries}), "created_at": stored.received_at, "filings": []}

    def record(c: Case) -> Any:
        filings = c.doc["filings"]
        if c.unit_code != unit_code or any(f["digest"] == content for f in filings):
            return UNCHANGED
        if filings and _refusal_for_new_content(c.doc):
            return "raced"  # passed the door, then another submission was filed first
        attempt = len(filings) + 1
        filings.append({
            "attempt": attempt, "request_id": request_id_for(case_id, attempt), "event_id": stored.event_id,
            "digest": content, "certificate": dict(data["certificate"]), "documents": len(data.get("documents", [])),
            "registry_partner_ids": registries, "filed_at": stored.received_at, "outcome": None, "decision": None})
        c.doc["participants"] = sorted({*c.doc["participants"], *registries})
        return None

    case, result = cases.update(case_id, unit_code, record, create=create)
    filing = next((f for f in case.doc["filings"] if f["digest"] == content), None)
    if result == "raced" or filing is None or filing["event_id"] != stored.event_id:
        if result == "raced":
            logger.warning("notarization not filed: another submission came first", extra={"case_key": case.key_text})
        return  # a repeat: the event that recorded this filing files it
    file_application(case, filing, stored)


def file_application(case: Case, filing: dict[str, Any], stored: Any) -> None:
    """File the notarized inheritance or gift with the registry of the unit's city: the one place the
    hub sends `application.requested` for a notary (idempotent: a re-run sends nothing new).

    The scans are checked again first: one that is no longer the verified upload is never sent; the
    filing is refused and the notary told why."""
    data = stored.data
    if filing["outcome"] == "refused":
        _tell_notary(case, filing, stored.event_id, "rejected", reasons=filing["decision"]["reasons"])
        return
    try:
        documents = _linked_documents(data, stored.partner_id)
    except HubError as exc:
        reasons = [{"code": "document_not_verified",
                    "message": "; ".join(f"{d['field']}: {d['code']}" for d in exc.details)[:500] or exc.message}]
        case = _decide(case, filing["request_id"], "refused", {"reasons": reasons, "resubmittable": True,
                                                                "event_id": stored.event_id})
        _tell_notary(case, _filing_of(case.doc, filing["request_id"]), stored.event_id, "rejected", reasons=reasons)
        logger.warning("notarization refused: a document is no longer verified", extra={"case_key": case.key_text})
        return
    registries = [p for p in (get_directory().get(pid) for pid in filing["registry_partner_ids"]) if p]
    # Before the registry can answer.
    cases.index_ref(answers.REQUEST_REF, filing["request_id"], case.case_id, case.unit_code)
    for registry in registries:  # a seized unit is flagged to the registry with the application (flow 5)
        restrictions.watch(case.unit_code, case.key_text, FLOW, registry.id, stored.event_id,
                           request_id=filing["request_id"])
    send(stored.event_id, f"application-{filing['attempt']}", "application.requested", {
        "request_id": filing["request_id"], "source_kind": "notary", "source_reference": data["notarization_id"],
        "unit_code": case.unit_code, "service": SERVICE, "registrations": ["transfer"], "parties": data["parties"],
        "property_use": data["property_use"],
        "notarization": {"certificate_number": data["certificate_number"], "matter": data["matter"],
                         "document": data["certificate"]},
        "documents": documents, "requested_at": now_iso(),
    }, registries, case.ref)
    start_case_clock(case, "registration", filing["filed_at"], registries[0].id if len(registries) == 1 else None,
                     instance=str(filing["attempt"]))
    logger.info("notarization filed", extra={"case_key": case.key_text, "attempt": filing["attempt"],
                                             "registries": len(registries)})
    metrics.add_metric(name="NotaryApplicationsFiled", unit="Count", value=1)


def _linked_documents(data: dict[str, Any], notary: str) -> list[dict[str, Any]]:
    """Every scan (the certificate first) checked again and given a short-lived download link, as relays are."""
    ttl = link_ttl_s()
    for field, scan in _scans(data):
        documents.require_verified_upload(scan["document"], field=field, partner_id=notary)
    expires_at = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat()
    return [{**scan, "download_url": documents.download_url(scan["document"]["document_id"], ttl),
             "url_expires_at": expires_at} for _field, scan in _scans(data)]


# ---------------------------------------------------------------- the registry's answer

def _decide(case: Case, request_id: str, outcome: str, decision: dict[str, Any]) -> Case:
    """Record the first outcome of a filing; a later, different one changes nothing (first wins)."""
    def record(c: Case) -> Any:
        filing = _filing_of(c.doc, request_id)
        if filing["outcome"] is not None:
            return UNCHANGED
        filing["outcome"], filing["decision"] = outcome, decision
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    return case


def _answered_case(stored: Any) -> tuple[Case, dict[str, Any]] | None:
    request_id = stored.data.get("request_id")
    case = answers.filed_case(request_id, FLOW)
    if case is None:
        return None
    filing = _filing_of(case.doc, request_id)
    return (case, filing) if filing else None


def _tell_notary(case: Case, filing: dict[str, Any], source_event_id: str, outcome: str,
                 certificates: list[dict[str, Any]] | None = None, reasons: list[dict[str, Any]] | None = None,
                 service: str = SERVICE, decided_at: str | None = None) -> None:
    notary = get_directory().get(case.doc["notary_partner_id"])
    send(source_event_id, f"result-{filing['attempt']}", "registration.result", {
        "case_id": case.case_id, "reference": case.doc["notarization_id"], "unit_code": case.unit_code,
        "service": service, "outcome": outcome, "certificates": certificates or [], "reasons": reasons or [],
        "decided_at": decided_at or now_iso()}, [notary] if notary else [], case.ref)


def _on_answer(stored: Any, outcome: str, decision: dict[str, Any], **result: Any) -> None:
    """Record the registry's answer to a filing (the first one wins) and tell the notary, once."""
    found = _answered_case(stored)
    if found is None:
        return
    case, filing = found
    case = _decide(case, filing["request_id"], outcome, {"event_id": stored.event_id, **decision})
    stop_case_clock(case, "registration", stored.received_at, instance=str(filing["attempt"]))
    restrictions.unwatch(case.unit_code, case.key_text)  # decided: no longer an open application
    filing = _filing_of(case.doc, filing["request_id"])
    if filing["decision"].get("event_id") != stored.event_id:
        return  # decided by another event (a repeat, or a contradicting answer that lost)
    _tell_notary(case, filing, stored.event_id, outcome, decided_at=decision["decided_at"], **result)


@handles("registration.booked")
def on_registration_booked(stored: Any) -> None:
    data = stored.data
    _on_answer(stored, "booked", {"registry_case_id": data["case_id"], "decided_at": data["booked_at"],
                                  "certificate_numbers": [c["number"] for c in data["certificates"]]},
               certificates=data["certificates"], service=data["service"])


@handles("application.rejected")
def on_application_rejected(stored: Any) -> None:
    data = stored.data
    _on_answer(stored, "rejected", {"decided_at": data["rejected_at"], "reasons": data["reasons"],
                                    "resubmittable": data["resubmittable"]}, reasons=data["reasons"])


# ---------------------------------------------------------------- the read

def stage(doc: dict[str, Any]) -> str:
    outcome = doc["filings"][-1]["outcome"] if doc["filings"] else None
    return {None: "filed", "booked": "booked", "rejected": "rejected", "refused": "refused"}[outcome]


@views(FLOW)
def view(case: Case) -> dict[str, Any]:
    """For the notary and the registry: filings, outcomes and the timeline; no names, ID numbers or phones."""
    doc = case.doc
    filings = []
    for f in doc["filings"]:
        decision = f["decision"] or {}
        filings.append({
            "attempt": f["attempt"], "request_id": f["request_id"], "outcome": f["outcome"],
            "filed_at": datetime.fromtimestamp(f["filed_at"], timezone.utc).isoformat(),
            "certificate": f["certificate"], "documents": f["documents"],
            "registry_case_id": decision.get("registry_case_id"),
            "certificate_numbers": decision.get("certificate_numbers", []),
            "reasons": [r["code"] for r in decision.get("reasons", [])],
            "resubmittable": decision.get("resubmittable"), "decided_at": decision.get("decided_at")})
    return {
        "case_id": case.case_id, "unit_code": case.unit_code, "city": doc["city"], "flow": doc["flow"],
        "service": doc["service"], "stage": stage(doc), "matter": doc["matter"],
        "notarization_id": doc["notarization_id"], "certificate_number": doc["certificate_number"],
        "participants": doc["participants"], "filings": filings,
        "timeline": cases.timeline(case.case_id, case.unit_code),
    }
