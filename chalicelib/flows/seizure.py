"""Flow 5, courts: seizure, release and renewal orders (查封、解封、续封) to the registry that owns the
unit, receipts back to the court, and the restriction index that flags seized units (Tangshan's
"不动产登记+司法", Zaozhuang's "登记+查（解）封协同办", seed 002).

    court ── seizure.ordered (seize | release | renew) ─→ hub ── seizure.forwarded (+ links) ─→ registry
                                                         └── seizure.receipt "forwarded" ─→ court
    registry ── restriction.recorded (seizure: recorded | released | renewed) ─→ hub
          ├── seizure.receipt (recorded | waiting_list + rank | released | renewed) ─→ that court only
          └── restriction.flagged (raised | lifted) ─→ the registry of each open application on the unit

The seizure's state lives in the restriction index (`chalicelib/restrictions.py`, one document per
unit). The court's view of it is a case, `flow = "seizure"`, numbered by the index (`seizure_id`: one
seize order on one unit; its releases and renewals belong to it) and read with GET /v1/cases/{case_id}
by its court and the unit's registry only; every receipt carries that number (`case_id`).

Door checks (422 before anything is stored):
- the court named in the order must be the sender: when both the partner record and the order give a
  USCC, they are equal (`court_mismatch`);
- the unit's city has a registry (`no_route_target`);
- the ruling and the assistance notice are the court's own verified uploads (`document_not_verified`);
- the order rules of `restrictions.order_refusal`: a seize order number already used on the unit
  (`order_number_in_use`, unless it is the same order again: then accepted, and nothing is sent twice),
  a release or renewal of a seizure the index does not know for this unit or that another court made
  (`unknown_seizure`), of one released or expired (`seizure_not_active`), a renewal that does not
  extend the term (`renewal_not_later`).
A second court's seize order on a unit already seized is accepted and forwarded with
`waiting_list_expected` (轮候); the court's receipt says waiting_list, with its rank, once the registry
records it so.

restriction.recorded (registry): from a registry of another city than the unit's,
`unit_outside_partner_city`; for seizures the rules of `restrictions.restriction_refusal` (a release or
renewal of a seizure the index does not know: `unknown_seizure`; of one released or expired:
`seizure_not_active`; …). A record of an order the hub never forwarded (the registry's own, older
seizures) updates the index and flags applications, but no court is sent a receipt.

Expiry: a seizure whose term ended without renewal expires (the `seizures_expired` sweeper, every
minute): its flags are lifted as by a release. The court is not sent a receipt for it (no order of its
was acted on); its case reads `expired`.

Stream: an order that passed the door and can no longer apply (two releases racing, a document replaced
since) gets a `refused` receipt with the reason, never forwarded. No names, ID numbers or phones in
logs or on the case: the subject and the officers travel in the events and deliveries only.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib import cases, restrictions
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import checks, digest, handles, iso, now_iso, send, sweeps, views
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

DOCUMENT_FIELDS = ("legal_document", "assistance_notice")
RECEIPT_STATUS = {"recorded": "recorded", "waiting_list": "waiting_list", "promoted": "recorded",
                  "renewed": "renewed", "released": "released"}


def _registries(unit_code: str) -> list:
    return get_directory().find("registry", city=city_of(unit_code))


def _documents(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"data.{name}", data[name]) for name in DOCUMENT_FIELDS if data.get(name)]


def _links(data: dict[str, Any], court_id: str) -> list[dict[str, Any]]:
    """Each paper of the order, checked again (the court's, verified, as described), with a download link."""
    from chalicelib import documents
    from chalicelib.flows.relay import link_ttl_s

    ttl = link_ttl_s()
    expires_at = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat()
    links = []
    for field, ref in _documents(data):
        documents.require_verified(ref, field=field, partner_id=court_id)
        links.append({"document_id": ref["document_id"], "download_url": documents.download_url(ref["document_id"], ttl),
                      "url_expires_at": expires_at})
    return links


# ---------------------------------------------------------------------------------------------------
# door checks


def _check_court(partner: Any, data: dict[str, Any]) -> None:
    named = (data.get("court") or {}).get("uscc")
    if named and partner.uscc and named != partner.uscc:
        raise HubError(422, "court_mismatch", "The order names another court than the sender.",
                       [{"field": "data.court.uscc", "code": "court_mismatch",
                         "message": "differs from the sending court's unified social credit code"}])


@checks("seizure.ordered")
def _check_order(partner: Any, data: dict[str, Any]) -> str:
    from chalicelib import documents

    _check_court(partner, data)
    unit_code = data["unit_code"]
    if not _registries(unit_code):
        raise HubError(422, "no_route_target", "No registry serves the unit's city.",
                       [{"field": "data.unit_code", "code": "no_target", "message": "no registry partner"}])
    for field, ref in _documents(data):
        documents.require_verified(ref, field=field, partner_id=partner.id)
    index = restrictions.load(unit_code)
    refusal = restrictions.order_refusal(index, data, partner.id, digest(data))
    if isinstance(refusal, HubError):
        raise refusal
    if data["action"] == "seize":
        sid = restrictions.seizure_id(data["order_number"], unit_code)
    else:
        sid = index.find(data["original_order_number"])["seizure_id"]
    return f"{sid}#{unit_code}"


@checks("restriction.recorded")
def _check_restriction(partner: Any, data: dict[str, Any]) -> str | None:
    unit_code = data["unit_code"]
    if city_of(unit_code) != partner.city:
        raise HubError(422, "unit_outside_partner_city", "The unit belongs to another city's registry.",
                       [{"field": "data.unit_code", "code": "other_city",
                         "message": "the unit code's city is not the sender's city"}])
    if data["restriction_type"] != "seizure":
        return None
    index = restrictions.load(unit_code)
    entry = index.find(data.get("seizure_order_number"), data["restriction_id"]) if index else None
    refusal = restrictions.restriction_refusal(entry, data)
    if refusal is not None:
        raise refusal
    return f"{entry['seizure_id']}#{unit_code}" if entry and entry["court_partner_id"] else None


# ---------------------------------------------------------------------------------------------------
# handlers


def _seizure_case(entry: dict[str, Any], court_id: str, stored: Any) -> Case:
    """The court's case of this seizure (created once): who may read it, and its number."""
    unit_code = entry["unit_code"]
    doc = {"case_id": entry["seizure_id"], "unit_code": unit_code, "city": city_of(unit_code), "flow": "seizure",
           "service": "seizure", "court_partner_id": court_id,
           "participants": sorted({court_id, *(p.id for p in _registries(unit_code))}),
           "created_event": stored.event_id, "created_at": stored.received_at}
    case, _ = cases.update(entry["seizure_id"], unit_code, lambda c: None if c.is_new else UNCHANGED, create=doc)
    return case


def _refuse(stored: Any, reason: HubError) -> None:
    """An order that passed the door and can no longer apply: the court is told, nothing is forwarded."""
    data = stored.data
    court = get_directory().get(stored.partner_id)
    logger.warning("seizure order refused on the stream", extra={"code": reason.code})
    metrics.add_metric(name="SeizureOrdersRefused", unit="Count", value=1)
    send(stored.event_id, "receipt-refused", "seizure.receipt", {
        "order_number": data["order_number"], "unit_code": data["unit_code"], "action": data["action"],
        "status": "refused", "reason": f"{reason.code}: {reason.message}"[:500], "receipt_at": now_iso()},
        [court] if court else [], None)


@handles("seizure.ordered")
def on_seizure_ordered(stored: Any) -> None:
    data = stored.data
    unit_code, court_id = data["unit_code"], stored.partner_id
    try:
        links = _links(data, court_id)
    except HubError as exc:  # a paper is no longer the verified upload it was at the door
        _refuse(stored, exc)
        return
    index = restrictions.load(unit_code)
    if data["action"] == "seize":
        sid = restrictions.seizure_id(data["order_number"], unit_code)
    else:
        found = index.find(data["original_order_number"]) if index else None
        sid = found["seizure_id"] if found else None
    if sid is None:
        _refuse(stored, HubError(422, "unknown_seizure", "No seizure by this order on the unit."))
        return
    index, result = restrictions.update(unit_code, lambda i: restrictions.record_order(
        i, sid, data, court_id, stored.event_id, stored.received_at, digest(data)))
    if isinstance(result, HubError):
        _refuse(stored, result)
        return
    entry = index.seizures[sid]
    if not any(o["event_id"] == stored.event_id for o in entry["orders"]):
        return  # the same order under another webhook-id: its first event forwarded it
    case = _seizure_case(entry, court_id, stored)
    registries = _registries(unit_code)
    forwarded = {**data, "court_partner_id": court_id, "document_links": links, "received_at": iso(stored.received_at)}
    if data["action"] == "seize":
        forwarded["waiting_list_expected"] = entry["expected"] == "waiting_list"
    send(stored.event_id, "forwarded", "seizure.forwarded", forwarded, registries, (case.case_id, unit_code))
    court = get_directory().get(court_id)
    send(stored.event_id, "receipt-forwarded", "seizure.receipt", {
        "order_number": data["order_number"], "unit_code": unit_code, "action": data["action"], "status": "forwarded",
        "valid_until": data.get("valid_until"), "case_id": case.case_id, "receipt_at": now_iso()},
        [court] if court else [], (case.case_id, unit_code))
    logger.info("seizure order forwarded", extra={"seizure_id": sid, "action": data["action"],
                                                  "registries": len(registries)})
    metrics.add_metric(name="SeizureOrdersForwarded", unit="Count", value=1)


@handles("restriction.recorded")
def on_restriction_recorded(stored: Any) -> None:
    data = stored.data
    if data["restriction_type"] != "seizure":
        return
    _, entry, transition = restrictions.record_restriction(data["unit_code"], data, stored.event_id)
    if entry is None or transition is None or not entry["court_partner_id"]:
        return  # a repeat, a contradiction (logged), or the registry's own seizure: no court to tell
    action = {"renewed": "renew", "released": "release"}.get(transition, "seize")
    order = next((o for o in reversed(entry["orders"]) if o["action"] == action), None)
    court = get_directory().get(entry["court_partner_id"])
    receipt = {"order_number": order["order_number"] if order else entry["order_number"],
               "unit_code": entry["unit_code"], "action": action, "status": RECEIPT_STATUS[transition],
               "restriction_id": data["restriction_id"], "recorded_at": data["recorded_at"],
               "case_id": entry["seizure_id"], "receipt_at": now_iso()}
    if transition in ("recorded", "waiting_list", "promoted"):
        receipt.update(rank=data.get("rank"), valid_until=entry.get("valid_until"))
    elif transition == "renewed":
        receipt["valid_until"] = entry["valid_until"]
    send(stored.event_id, f"receipt-{transition}", "seizure.receipt", receipt, [court] if court else [],
         (entry["seizure_id"], entry["unit_code"]))


@sweeps("seizures_expired")
def sweep_expired(now: float | None = None) -> int:
    """Seizures whose term ended without a renewal: expired, their flags lifted (restrictions.expire_due)."""
    return restrictions.expire_due(now)


# ---------------------------------------------------------------------------------------------------
# the court's read


@views("seizure")
def view(case: Case) -> dict[str, Any]:
    """The seizure as its court and the unit's registry see it: state, term, the registry's record, the
    orders and the timeline. No subject, no officers, nothing of other applications on the unit."""
    index = restrictions.load(case.unit_code)
    entry = index.seizures.get(case.case_id) if index else None
    entry = entry or {"state": "forwarded", "orders": []}
    return {
        "case_id": case.case_id, "unit_code": case.unit_code, "city": case.doc["city"], "flow": "seizure",
        "stage": entry["state"], "participants": case.doc["participants"],
        "court_partner_id": entry.get("court_partner_id") or case.doc["court_partner_id"],
        "seizure": {k: entry.get(k) for k in ("order_number", "kind", "expected", "restriction_id", "rank",
                                              "valid_from", "valid_until", "recorded_at", "released_at")},
        "binding": entry["state"] == "recorded",
        "orders": [{"action": o["action"], "order_number": o["order_number"], "event_id": o["event_id"],
                    "received_at": iso(o["received_at"]), "valid_from": o.get("valid_from"),
                    "valid_until": o.get("valid_until")} for o in entry["orders"]],
        "timeline": cases.timeline(case.case_id, case.unit_code),
    }
