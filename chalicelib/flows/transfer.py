"""Flow 1, one window (一窗受理、并行办理、税费同缴): the transfer case across registry, tax, fiscal and
the payment platform.

    application.submitted ─┬─ tax.assessment_requested (static route)   ─→ tax.assessed ──┐
                           └─ nontax.bill_requested, one per paying party ─→ nontax.bill_issued ┤
    all in ─→ payment.order_requested, one per order (payer mode) ─→ payment.succeeded → ledger
    paid + tax.cleared (two-way check) ─→ case.ready_to_book ─→ registration.booked ─→ tax.booking_shared

Every fact is stored on the case document once (by what it is, not by which webhook carried it), so
duplicated and reordered callbacks change nothing. Money is written as ledger entries with
deterministic ids before the document records it, so a crash between the two re-runs to the same
result and a split is never booked twice. A result that does not match its order is held, never booked.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib import cases, restrictions
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import checks, handles, now_iso, send, sweeps, views
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

ROLES = ("obligee", "obligor")
ORDER_VALIDITY = timedelta(days=7)
# How long a case ready to book may wait for its booking before it goes on the risk list.
BOOKING_LIMIT = timedelta(days=30)


def _targets(kind: str, city: str) -> list:
    return get_directory().find(kind, city=city)


def _hold(case: Case, hold_id: str, reason: str, about: dict[str, Any], problems: list[str] | None = None) -> None:
    """A money or clearance fact held for an operator: visible on the case and on the open-holds list."""
    entry = {"hold_id": hold_id, "reason": reason, "unit_code": case.unit_code, "at": time.time(), **about}
    if problems:
        entry["problems"] = problems[:20]
    if cases.put_once(case.case_id, case.unit_code, "hold", hold_id, entry, listed="hold:open"):
        logger.warning("held for review", extra={"case_hold": hold_id, "reason": reason})
        metrics.add_metric(name="Holds", unit="Count", value=1)


def _risk(case: Case, risk_id: str, reason: str) -> None:
    entry = {"risk_id": risk_id, "reason": reason, "unit_code": case.unit_code, "at": time.time()}
    if cases.put_once(case.case_id, case.unit_code, "risk", risk_id, entry, listed="risk:open"):
        logger.warning("case on the risk list", extra={"risk": risk_id, "reason": reason})


def start_case_clock(case: Case, stage: str, started_at: float, responsible: Any,
                     instance: str | None = None) -> None:
    """Start a stage's time limit (效能监管); `chalicelib.clocks` raises case.overdue if it runs out."""
    from chalicelib import clocks

    clocks.start(clocks.case_subject(case.case_id, case.unit_code), stage, service=case.doc["service"],
                 city=case.doc["city"], responsible_partner_id=getattr(responsible, "id", responsible),
                 started_at=datetime.fromtimestamp(started_at, tz=timezone.utc), instance=instance)


def stop_case_clock(case: Case, stage: str, stopped_at: float, instance: str | None = None) -> None:
    from chalicelib import clocks

    clocks.stop(clocks.case_subject(case.case_id, case.unit_code), stage,
                datetime.fromtimestamp(stopped_at, tz=timezone.utc), instance=instance)


def _only(partners: list) -> Any:
    return partners[0] if len(partners) == 1 else None


def _payer(parties: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    for party in parties:
        if party["role"] == role:
            return {k: party[k] for k in ("name", "id_type", "id_number", "phone") if k in party}
    return None


def _bill_roles(payer_mode: str) -> tuple[str, str]:
    """Who owes the fee lines and who owes land revenue, by payer mode (DOMAIN.md, Money)."""
    if payer_mode == "obligee_pays_all":
        return "obligee", "obligee"
    if payer_mode == "obligor_pays_all":
        return "obligor", "obligor"
    # Each pays their own: the registration fee is the new holder's, land revenue the seller's.
    return "obligee", "obligor"


def _bill_plan(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from chalicelib.money import fees

    fee_role, land_role = _bill_roles(doc["payer_mode"])
    plan: dict[str, list[dict[str, Any]]] = {}
    fee_lines = [line for line in doc["fee"]["lines"] if line["amount_fen"] > 0]
    if fee_lines:
        plan.setdefault(fee_role, []).extend(fee_lines)
    if doc.get("land_revenue_fen"):
        plan.setdefault(land_role, []).append(fees.land_revenue_line(doc["land_revenue_fen"]))
    return {role: lines for role, lines in plan.items() if _payer(doc["parties"], role)}


def _case_for(partner: Any, data: dict[str, Any]) -> Case | None:
    """The case a partner's fact names, if the partner takes part in it: for another city's tax bureau
    or fiscal system it is None, as for a case that does not exist (the door's 422 tells nothing more)."""
    unit_code = data.get("unit_code")
    if unit_code:
        found = [c for c in [cases.load(data["case_id"], unit_code)] if c]
    else:
        found = cases.find(data["case_id"], city=partner.city)
    found = [c for c in found if partner is not None and partner.id in c.doc.get("participants", [])]
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------- door checks (422 before anything is stored)

@checks("application.submitted")
def _check_application(partner: Any, data: dict[str, Any]) -> None:
    from chalicelib.money import fees

    quote = fees.quote_application(data, half_rate=data.get("half_rate", False))
    stated = data.get("registration_fee_fen")
    if stated is not None and stated != quote.total_fen:
        raise HubError(422, "fee_mismatch", "The stated registration fee differs from the fee schedule.",
                       [{"field": "data.registration_fee_fen", "code": "fee_mismatch",
                         "message": f"the schedule ({quote.schedule_version}) gives {quote.total_fen} fen"}])
    if data["payer_mode"] != "each_pays_own":
        role = "obligee" if data["payer_mode"] == "obligee_pays_all" else "obligor"
        if _payer(data["parties"], role) is None:
            raise HubError(422, "payer_missing", f"The payer mode needs an {role} among the parties.",
                           [{"field": "data.payer_mode", "code": "payer_missing", "message": f"no {role} party"}])
    city = city_of(data["unit_code"])
    for kind in ("fiscal", "payment"):
        if not _targets(kind, city):
            raise HubError(422, "no_route_target", f"No {kind} partner serves the unit's city.",
                           [{"field": "data.unit_code", "code": "no_target", "message": f"no {kind} partner"}])


@checks("tax.assessed", "nontax.bill_issued", "nontax.receipt_issued")
def _check_known_case(partner: Any, data: dict[str, Any]) -> str:
    case = _case_for(partner, data)
    if case is None:
        raise HubError(422, "unknown_case", "No case with this number and unit in the sender's city.",
                       [{"field": "data.case_id", "code": "unknown_case", "message": "no such case"}])
    return case.key_text


@checks("tax.cleared")
def _check_assessed(partner: Any, data: dict[str, Any]) -> str:
    case = _case_for(partner, data)
    if case is None or not case.doc.get("assessment"):
        raise HubError(422, "case_not_assessed", "A clearance for a case the hub has no assessment of.",
                       [{"field": "data.case_id", "code": "case_not_assessed", "message": "no assessment on record"}])
    return case.key_text


@checks("payment.succeeded", "payment.failed", "payment.refunded")
def _check_known_order(partner: Any, data: dict[str, Any]) -> str:
    # Only a platform the order was sent to (a participant of its case) may answer for it; another
    # platform gets the answer of an order that does not exist.
    ref = cases.case_of_ref("order", data["order_id"])
    case = cases.load(*ref) if ref else None
    if case is None or partner.id not in case.doc.get("participants", []):
        raise HubError(422, "unknown_order", "No order with this id.",
                       [{"field": "data.order_id", "code": "unknown_order", "message": "no such order"}])
    return case.key_text


# ---------------------------------------------------------------- handlers

@handles("application.submitted")
def on_application_submitted(stored: Any) -> None:
    from chalicelib.money import fees

    data = stored.data
    quote = fees.quote_application(data, half_rate=data.get("half_rate", False))
    city = city_of(data["unit_code"])
    doc = {
        "case_id": data["case_id"], "unit_code": data["unit_code"], "city": city, "flow": "transfer",
        "registry_partner_id": stored.partner_id, "service": data["service"], "property_use": data["property_use"],
        "payer_mode": data["payer_mode"], "parties": data["parties"],
        "utilities_consented": data.get("utilities_consented", []), "land_revenue_fen": data.get("land_revenue_fen"),
        # What the consented utilities get after booking (flows/utility.py).
        "location": data.get("location"), "utility_accounts": data.get("utility_accounts", []),
        "fee": {"schedule_version": quote.schedule_version, "total_fen": quote.total_fen, "lines": list(quote.lines)},
        "submitted_event": stored.event_id, "submitted_at": stored.received_at,
        "participants": sorted({stored.partner_id, *(p.id for p in _targets("tax", city)),
                                *(p.id for p in _targets("fiscal", city)), *(p.id for p in _targets("payment", city))}),
        "assessment": None, "bills": {}, "orders": {}, "clearance": None, "booking": None, "receipts": {},
        "restriction_flags": [],
    }
    case, _ = cases.update(data["case_id"], data["unit_code"], lambda c: None if c.is_new else UNCHANGED, create=doc)
    if case.doc["submitted_event"] != stored.event_id:
        return  # the same application under another webhook-id: the first one started the flow
    _flag_restrictions(case)
    start_case_clock(case, "registration", stored.received_at, stored.partner_id)
    start_case_clock(case, "tax_assessment", stored.received_at, _only(_targets("tax", case.doc["city"])))
    for role, lines in _bill_plan(case.doc).items():
        start_case_clock(case, "nontax_bill", stored.received_at, _only(_targets("fiscal", case.doc["city"])),
                         instance=role)
        send(stored.event_id, f"bill-{role}", "nontax.bill_requested", {
            "request_id": f"{case.case_id}-{role}", "case_id": case.case_id, "unit_code": case.unit_code,
            "payer": _payer(case.doc["parties"], role), "lines": lines,
            "total_fen": sum(line["amount_fen"] for line in lines), "combined_payment": True,
            "requested_at": now_iso()}, _targets("fiscal", case.doc["city"]), case.ref)
    _maybe_order(case, stored.event_id)  # a case with nothing to bill may be ready for its order already


def _flag_restrictions(case: Case) -> None:
    """The case watches its unit on the restriction index (chalicelib/restrictions.py): a seizure recorded
    on it, now or later, is flagged to the registry at once (restriction.flagged), and while one binds
    the case is not sent case.ready_to_book (`_maybe_ready`)."""
    restrictions.watch(case.unit_code, case.key_text, "transfer", case.doc["registry_partner_id"],
                       case.doc["submitted_event"], case_id=case.case_id)


@restrictions.on_lift("transfer")
def _restriction_lifted(case_key: str, source_event_id: str) -> None:
    """A seizure on the unit was released or expired: the case may be ready to book now."""
    case_id, _, unit_code = case_key.partition("#")
    case = cases.load(case_id, unit_code)
    if case is not None and case.doc.get("flow") == "transfer":
        _maybe_ready(case, source_event_id)


def _unwatch(case: Case) -> None:
    restrictions.unwatch(case.unit_code, case.key_text)


@handles("tax.assessed")
def on_tax_assessed(stored: Any) -> None:
    data = stored.data
    directory = get_directory()
    case = _case_for(directory.get(stored.partner_id), data)
    if case is None:
        return

    def record(c: Case) -> Any:
        current = c.doc.get("assessment")
        if current and current["assessment_id"] == data["assessment_id"]:
            return UNCHANGED
        if c.doc["orders"]:
            return "reassessed_after_order"
        c.doc["assessment"] = {"assessment_id": data["assessment_id"], "lines": data["lines"],
                               "total_fen": data["total_fen"], "tax_partner_id": stored.partner_id}
        return None

    case, outcome = cases.update(case.case_id, case.unit_code, record)
    stop_case_clock(case, "tax_assessment", stored.received_at)
    if outcome == "reassessed_after_order":
        _hold(case, f"reassessed-{data['assessment_id']}", "reassessed_after_order",
              {"assessment_id": data["assessment_id"]})
        return
    _maybe_order(case, stored.event_id)


@handles("nontax.bill_issued")
def on_bill_issued(stored: Any) -> None:
    data = stored.data
    case = _case_for(get_directory().get(stored.partner_id), data)
    if case is None:
        return
    planned = _bill_plan(case.doc)
    role = next((r for r in planned if data.get("request_id") == f"{case.case_id}-{r}"), None)
    if role is None:
        _hold(case, f"bill-{data['bill_no']}", "unrequested_bill", {"bill_no": data["bill_no"]})
        return
    expected = sum(line["amount_fen"] for line in planned[role])
    if data["total_fen"] != expected:
        _hold(case, f"bill-{data['bill_no']}", "bill_total_mismatch", {"bill_no": data["bill_no"]})
        return

    def record(c: Case) -> Any:
        if role in c.doc["bills"]:
            return UNCHANGED
        c.doc["bills"][role] = {k: data[k] for k in ("bill_no", "payment_code", "receiving_unit", "lines", "total_fen")}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    stop_case_clock(case, "nontax_bill", stored.received_at, instance=role)
    _maybe_order(case, stored.event_id)


def _maybe_order(case: Case, source_event_id: str) -> None:
    """When the assessment and every planned bill are in, build the combined order(s) once and send them."""
    from chalicelib.money import orders as order_builder

    doc = case.doc
    planned = _bill_plan(doc)
    if doc["orders"] or doc.get("assessment") is None or set(planned) - set(doc["bills"]):
        if doc.get("orders_source_event") == source_event_id:
            _send_orders(case, source_event_id)  # a re-run of the event that built them: send (idempotent)
        return
    expires_at = (datetime.now(timezone.utc) + ORDER_VALIDITY).isoformat()
    built = order_builder.build_orders(
        case.case_id, doc["payer_mode"], doc["parties"], doc["assessment"]["lines"],
        [{"payer_role": role, "bill": bill} for role, bill in sorted(doc["bills"].items())], expires_at,
        unit_code=case.unit_code)

    def record(c: Case) -> Any:
        if c.doc["orders"]:
            return UNCHANGED
        c.doc["orders"] = {o["order_id"]: {"order": o, "paid": {}, "failed": {}, "refunded": {}, "state": "requested"}
                           for o in built}
        c.doc["orders_source_event"] = source_event_id
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    if case.doc.get("orders_source_event") == source_event_id:
        _send_orders(case, source_event_id)
    _maybe_ready(case, source_event_id)


def _send_orders(case: Case, source_event_id: str) -> None:
    for order_id, state in sorted(case.doc["orders"].items()):
        cases.index_ref("order", order_id, case.case_id, case.unit_code)  # before the platform can call back
        send(source_event_id, f"order-{order_id}", "payment.order_requested", state["order"],
             _targets("payment", case.doc["city"]), case.ref)


def _order_case(stored: Any) -> Case | None:
    ref = cases.case_of_ref("order", stored.data["order_id"])
    if ref is None:
        return None
    return cases.load(*ref)


@handles("payment.succeeded")
def on_payment_succeeded(stored: Any) -> None:
    from chalicelib.money import ledger, payments

    data = stored.data
    case = _order_case(stored)
    if case is None:
        return
    order = case.doc["orders"][data["order_id"]]["order"]
    match = payments.match(order, data)
    if not match.ok:
        _hold(case, f"pay-{data['order_id']}-{data['platform_order_id']}-{match.hold_reason}", match.hold_reason,
              {"order_id": data["order_id"], "platform_order_id": data["platform_order_id"],
               "total_fen": data["total_fen"]})
        return
    entries = ledger.entries_for_payment(order, match.paid_lines, f"clearing:{stored.partner_id}")
    _book(case, entries, stored.partner_id, data["paid_at"])

    def record(c: Case) -> Any:
        state = c.doc["orders"][data["order_id"]]
        before = (dict(state["paid"]), dict(state["failed"]))
        for line in match.paid_lines:
            state["paid"][line["sub_order_id"]] = line["amount_fen"]
            state["failed"].pop(line["sub_order_id"], None)
        for line in match.failed_lines:
            if line["sub_order_id"] not in state["paid"]:
                state["failed"][line["sub_order_id"]] = line["amount_fen"]
        state["platform_order_id"] = data["platform_order_id"]
        state["paid_at"] = state.get("paid_at") or data["paid_at"]
        state["state"] = _order_state(state)
        return UNCHANGED if (state["paid"], state["failed"]) == before else None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    metrics.add_metric(name="PaymentsBooked", unit="Count", value=len(entries))
    if case.doc.get("clearance_waiting") and not case.doc.get("clearance"):
        _apply_clearance(case, case.doc["clearance_waiting"], stored.event_id)
    else:
        _maybe_ready(case, stored.event_id)


def _book(case: Case, entries: list, platform_partner_id: str, moved_at: str) -> None:
    """Money first, each entry once (deterministic ids): a re-run books nothing twice. Each entry is
    also listed under its platform's settlement day, which is what the daily reconciliation reads."""
    from chalicelib.flows.settlement import ledger_list_key, settlement_day

    listed = ledger_list_key(platform_partner_id, settlement_day(moved_at))
    for entry in entries:
        cases.put_once(case.case_id, case.unit_code, "ledger", entry.entry_id, {**entry.to_dict(), "at": time.time()},
                       listed=listed)


def _order_state(state: dict[str, Any]) -> str:
    lines = _order_lines(state["order"])
    paid = sum(state["paid"].values())
    refunded = sum(state["refunded"].values())
    if paid == 0:
        return "failed" if state["failed"] else "requested"
    if refunded and refunded >= paid:
        return "refunded"
    if set(state["paid"]) == set(lines):
        return "partially_refunded" if refunded else "paid"
    return "partially_paid"


def _order_lines(order: dict[str, Any]) -> dict[str, int]:
    return {line["sub_order_id"]: line["amount_fen"] for line in order["tax_lines"] + order["nontax_lines"]}


@handles("payment.failed")
def on_payment_failed(stored: Any) -> None:
    case = _order_case(stored)
    if case is None:
        return

    def record(c: Case) -> Any:
        state = c.doc["orders"][stored.data["order_id"]]
        if state["state"] != "requested":
            return UNCHANGED  # a failure after a payment (or twice) changes nothing
        state["state"] = "failed"
        state["failure"] = {"reason_code": stored.data["reason_code"], "at": stored.data["failed_at"]}
        return None

    cases.update(case.case_id, case.unit_code, record)


@handles("payment.refunded")
def on_payment_refunded(stored: Any) -> None:
    from chalicelib.money import ledger

    data = stored.data
    case = _order_case(stored)
    if case is None:
        return
    order = case.doc["orders"][data["order_id"]]["order"]
    booked = [e for e in cases.ledger_entries(case.case_id, case.unit_code) if e["order_id"] == data["order_id"]]
    outcome = ledger.entries_for_refund(order, booked, data)
    if isinstance(outcome, str):
        _hold(case, f"refund-{data['order_id']}-{data['refund_id']}", outcome,
              {"order_id": data["order_id"], "refund_id": data["refund_id"], "total_fen": data["total_fen"]})
        return
    _book(case, outcome, stored.partner_id, data["refunded_at"])

    def record(c: Case) -> Any:
        state = c.doc["orders"][data["order_id"]]
        done = state.setdefault("refunds", [])
        if data["refund_id"] in done:
            return UNCHANGED
        done.append(data["refund_id"])
        for entry in outcome:
            state["refunded"][entry.sub_order_id] = state["refunded"].get(entry.sub_order_id, 0) + entry.amount_fen
        state["state"] = _order_state(state)
        return None

    cases.update(case.case_id, case.unit_code, record)


@handles("tax.cleared")
def on_tax_cleared(stored: Any) -> None:
    data = stored.data
    case = _case_for(get_directory().get(stored.partner_id), data)
    if case is None:
        return
    _apply_clearance(case, data, stored.event_id)


def _apply_clearance(case: Case, data: dict[str, Any], source_event_id: str) -> None:
    """The two-way check (Ningbo): cleared = assessed = paid, ticket by ticket.

    Tax and the payment platform answer independently, so a clearance may arrive before the payment
    callback. A clearance whose only problem is "not paid yet" waits on the case and is checked again
    when the payment is booked; any other disagreement is held for an operator.
    """
    from chalicelib.money import clearance

    problems = clearance.check(case.doc["assessment"]["lines"], _paid_tax_lines(case.doc), data)
    waiting = bool(problems) and all(p.startswith("cleared_not_paid:") for p in problems)
    if problems and not waiting:
        _hold(case, f"clearance-{data['certificate_no']}", "clearance_mismatch",
              {"certificate_no": data["certificate_no"]}, problems)
        return

    def record(c: Case) -> Any:
        if c.doc.get("clearance"):
            return UNCHANGED
        if waiting:
            if c.doc.get("clearance_waiting") == data:
                return UNCHANGED
            c.doc["clearance_waiting"] = data
            return None
        c.doc.pop("clearance_waiting", None)
        c.doc["clearance"] = {"assessment_id": data["assessment_id"], "certificate_no": data["certificate_no"],
                              "ticket_type": data["ticket_type"], "total_fen": data["total_fen"],
                              "event_id": source_event_id}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    if not waiting:
        _maybe_ready(case, source_event_id)


def _paid_tax_lines(doc: dict[str, Any]) -> list[dict[str, Any]]:
    paid = []
    for state in doc["orders"].values():
        for line in state["order"]["tax_lines"]:
            if line["sub_order_id"] in state["paid"]:
                paid.append(line)
    return paid


def _tax_due(doc: dict[str, Any]) -> bool:
    return bool(doc.get("assessment")) and doc["assessment"]["total_fen"] > 0


def _all_paid(doc: dict[str, Any]) -> bool:
    return all(state["state"] in ("paid",) for state in doc["orders"].values())


def _maybe_ready(case: Case, source_event_id: str) -> None:
    """Paid in full and (where tax is due) cleared both ways: the registry may book. Sent once."""
    doc = case.doc
    if doc.get("ready_event") and doc["ready_event"] != source_event_id:
        return
    if doc.get("assessment") is None or set(_bill_plan(doc)) - set(doc["bills"]):
        return
    if not _all_paid(doc) or (_tax_due(doc) and not doc.get("clearance")):
        return
    index = restrictions.load(case.unit_code)
    if not doc.get("ready_event") and index is not None and index.blocked():
        return  # a binding seizure holds the case: its release or expiry runs this again (_restriction_lifted)

    def record(c: Case) -> Any:
        if c.doc.get("ready_event"):
            return UNCHANGED
        c.doc["ready_event"] = source_event_id
        c.doc["ready_at"] = time.time()
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    if case.doc["ready_event"] != source_event_id:
        return
    cases.put_once(case.case_id, case.unit_code, "await", "booking",
                   {"unit_code": case.unit_code, "at": case.doc["ready_at"]}, listed="await:booking")
    start_case_clock(case, "booking", case.doc["ready_at"], case.doc["registry_partner_id"])
    payments_ = [{"order_id": oid, "total_fen": st["order"]["total_fen"], "paid_at": st["paid_at"]}
                 for oid, st in sorted(doc["orders"].items())]
    clearance_ = case.doc.get("clearance")
    send(source_event_id, "ready-to-book", "case.ready_to_book", {
        "case_id": case.case_id, "unit_code": case.unit_code,
        "tax": {k: clearance_[k] for k in ("assessment_id", "certificate_no", "ticket_type")} if clearance_ else None,
        "payments": payments_, "total_paid_fen": sum(p["total_fen"] for p in payments_),
        "nontax_receipts": [{"bill_no": r["bill_no"], "receipt_number": r["receipt_number"]}
                            for r in case.doc["receipts"].values()],
        "restriction_flags": index.flags()[:20] if index else [], "ready_at": now_iso(),
    }, [p for p in [get_directory().get(case.doc["registry_partner_id"])] if p], case.ref)


@handles("registration.booked")
def on_registration_booked(stored: Any) -> None:
    data = stored.data
    case = cases.load(data["case_id"], data["unit_code"])
    if case is None or case.doc.get("flow") != "transfer":
        return

    def record(c: Case) -> Any:
        if c.doc.get("booking"):
            return UNCHANGED
        c.doc["booking"] = {"event_id": stored.event_id, "booked_at": data["booked_at"],
                            "certificate_numbers": [cert["number"] for cert in data["certificates"]]}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    for stage in ("booking", "registration"):
        stop_case_clock(case, stage, stored.received_at)
    _unwatch(case)
    if case.doc["booking"]["event_id"] != stored.event_id:
        return
    if not case.doc.get("ready_event") or (_tax_due(case.doc) and not case.doc.get("clearance")):
        _risk(case, "booked-without-clearance", "booked_without_clearance")
    clearance_ = case.doc.get("clearance") or {}
    send(stored.event_id, "booking-shared", "tax.booking_shared", {
        "case_id": case.case_id, "unit_code": case.unit_code,
        "assessment_id": (case.doc.get("assessment") or {}).get("assessment_id"),
        "tax_certificate_no": clearance_.get("certificate_no"),
        "certificate_numbers": case.doc["booking"]["certificate_numbers"],
        "obligees": data.get("obligees", []), "booked_at": data["booked_at"],
    }, _targets("tax", case.doc["city"]), case.ref)


@handles("nontax.receipt_issued")
def on_receipt_issued(stored: Any) -> None:
    data = stored.data
    case = _case_for(get_directory().get(stored.partner_id), data)
    if case is None:
        return

    def record(c: Case) -> Any:
        if data["bill_no"] in c.doc["receipts"]:
            return UNCHANGED
        c.doc["receipts"][data["bill_no"]] = {"bill_no": data["bill_no"], "receipt_number": data["receipt_number"],
                                              "event_id": stored.event_id}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    if case.doc["receipts"][data["bill_no"]]["event_id"] == stored.event_id:
        registry = get_directory().get(case.doc["registry_partner_id"])
        send(stored.event_id, "receipt", "nontax.receipt_shared", data, [registry] if registry else [], case.ref)


@handles("application.rejected")
def on_application_rejected(stored: Any) -> None:
    data = stored.data
    if not data.get("case_id"):
        return
    case = cases.load(data["case_id"], data["unit_code"])
    if case is None:
        return

    def record(c: Case) -> Any:
        if c.doc.get("rejected"):
            return UNCHANGED
        c.doc["rejected"] = {"at": data["rejected_at"], "codes": [r.get("code") for r in data["reasons"]]}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    for stage in ("registration", "tax_assessment", "booking"):
        stop_case_clock(case, stage, stored.received_at)
    _unwatch(case)
    for role in ROLES:
        stop_case_clock(case, "nontax_bill", stored.received_at, instance=role)


def stage(doc: dict[str, Any]) -> str:
    """Where a transfer case stands, derived from its facts (so reordered events cannot confuse it)."""
    if doc.get("rejected"):
        return "rejected"
    if doc.get("booking"):
        return "closed"
    if doc.get("ready_event"):
        return "ready_to_book"
    if doc["orders"] and _all_paid(doc):
        return "awaiting_clearance" if _tax_due(doc) and not doc.get("clearance") else "paid"
    if doc["orders"]:
        return "awaiting_payment"
    return "awaiting_assessment_and_bills"


@sweeps("risks_flagged")
def sweep_risks(now: float | None = None) -> int:
    """Cases ready to book that were never booked within the limit go on the risk list (once)."""
    now = time.time() if now is None else now
    flagged = 0
    for waiting in cases.listed("await:booking"):
        if waiting["at"] > now - BOOKING_LIMIT.total_seconds():
            continue
        case = cases.load(waiting["case_id"], waiting["unit_code"])
        if case is not None and not case.doc.get("booking"):
            _risk(case, "not-booked-in-time", "cleared_not_booked")
            flagged += 1
    return flagged


@views("transfer")
def view(case: Case) -> dict[str, Any]:
    """What a party may see: stages, amounts, ids and the timeline. No names, ID numbers or phones."""
    from chalicelib.flows import utility

    doc = case.doc
    orders = [{"order_id": oid, "payer_role": st["order"]["payer_role"], "total_fen": st["order"]["total_fen"],
               "state": st["state"], "paid_fen": sum(st["paid"].values()),
               "refunded_fen": sum(st["refunded"].values())} for oid, st in sorted(doc["orders"].items())]
    assessment = doc.get("assessment")
    return {
        "case_id": case.case_id, "unit_code": case.unit_code, "city": doc["city"], "flow": doc["flow"],
        "stage": stage(doc), "service": doc["service"], "property_use": doc["property_use"],
        "payer_mode": doc["payer_mode"], "participants": doc["participants"],
        "fee": {"schedule_version": doc["fee"]["schedule_version"], "total_fen": doc["fee"]["total_fen"]},
        "assessment": {"assessment_id": assessment["assessment_id"], "total_fen": assessment["total_fen"],
                       "lines": len(assessment["lines"])} if assessment else None,
        "bills": {role: {"bill_no": b["bill_no"], "total_fen": b["total_fen"]} for role, b in doc["bills"].items()},
        "orders": orders,
        "clearance": doc.get("clearance"),
        "booking": doc.get("booking"),
        "receipts": sorted(doc["receipts"].values(), key=lambda r: r["bill_no"]),
        "utilities": utility.utilities_view(doc),
        "holds": cases.items(case.case_id, case.unit_code, "hold"),
        "risks": cases.items(case.case_id, case.unit_code, "risk"),
        "timeline": cases.timeline(case.case_id, case.unit_code),
    }
