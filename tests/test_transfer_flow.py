"""Flow 1 end to end through the app's own handlers (Chalice test client + moto), for every payer mode,
and the bad input of the one-window issue: unknown orders, wrong totals, missing and extra sub-orders,
duplicated and concurrent callbacks, refunds too large or too early, clearance without assessment."""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import boto3
import pytest
from standardwebhooks import Webhook

from tests.support import envelope, lambda_context, secret_of, sign_request

BJ_UNIT = "110105001001GB00001F00010001"
NOW = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731


class Flow:
    """Partners posting signed events, and the stream handler run by hand (chalice test client has no stream)."""

    def __init__(self, hub, partners):
        self.hub = hub
        self.partners = partners
        self.seen: set[str] = set()

    def post(self, partner_id: str, event_type: str, data: dict) -> tuple[int, dict]:
        body = envelope(event_type, data)
        response = self.hub.http.post(f"/v1/partners/{partner_id}/events", body=body.encode(),
                                      headers=sign_request(secret_of(self.partners, partner_id), body))
        return response.status_code, json.loads(response.body)

    def send(self, partner_id: str, event_type: str, data: dict) -> dict:
        status, answer = self.post(partner_id, event_type, data)
        assert status == 202, answer
        self.pump()
        return answer

    def pump(self) -> None:
        import app
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]
        fresh = sorted((i for i in items if i["event_id"]["S"] not in self.seen), key=lambda i: i["event_id"]["S"])
        for item in fresh:
            self.seen.add(item["event_id"]["S"])
            record = {"eventID": item["event_id"]["S"], "eventName": "INSERT", "eventVersion": "1.1",
                      "eventSource": "aws:dynamodb", "awsRegion": "cn-north-1",
                      "eventSourceARN": "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/x",
                      "dynamodb": {"Keys": {"dedup_key": item["dedup_key"]}, "NewImage": item,
                                   "SequenceNumber": item["event_id"]["S"], "SizeBytes": 1,
                                   "StreamViewType": "NEW_IMAGE"}}
            result = app.route_accepted({"Records": [record]}, lambda_context("route_accepted"))
            assert result == {"batchItemFailures": []}

    def sent(self, event_type: str, partner_id: str | None = None) -> list[dict]:
        """Bodies the hub scheduled for delivery, as the partner would receive them."""
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        return [json.loads(i["body"]["S"])["data"] for i in items
                if i["type"]["S"] == event_type and i["body"]["S"]
                and (partner_id is None or i["partner_id"]["S"] == partner_id)]

    def read(self, partner_id: str, case_id: str, nonce: str | None = None) -> tuple[int, dict]:
        nonce = nonce or f"read_{uuid.uuid4().hex}"
        stamp = int(time.time())
        signature = Webhook(secret_of(self.partners, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/cases/{case_id}")
        response = self.hub.http.get(f"/v1/cases/{case_id}", headers={
            "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(stamp),
            "webhook-signature": signature})
        return response.status_code, json.loads(response.body)


def application(case_id: str, payer_mode: str, land_revenue_fen: int | None = None) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = json.loads(json.dumps(EVENT_TYPES["application.submitted"].example))
    data.update(case_id=case_id, unit_code=BJ_UNIT, payer_mode=payer_mode, service="transfer",
                property_use="residential", extra_certificates=1, price_fen=350_000_000, submitted_at=NOW())
    data.pop("registration_fee_fen", None)
    data["parties"] = [
        {"role": "obligee", "name": "张三", "id_type": "resident_id", "id_number": "11010519491231002X"},
        {"role": "obligor", "name": "李四", "id_type": "resident_id", "id_number": "110105195001010039"},
    ]
    if land_revenue_fen:
        data["land_revenue_fen"] = land_revenue_fen
    else:
        data.pop("land_revenue_fen", None)
    return data


def assessment(case_id: str) -> dict:
    def line(n, code, role, amount):
        return {"line_id": f"L{n}", "tax_item_code": code, "payer_role": role, "taxable_base_fen": 350_000_000,
                "rate": "0.01", "amount_fen": amount, "tax_ticket_no": f"3110{n:08d}",
                "treasury_code": "1101050000", "budget_subject": "1011901" if code == "10119" else "1010101",
                "collecting_authority": "11101050000"}
    lines = [line(1, "10119", "obligee", 3_500_000), line(2, "10101", "obligor", 1_019_417),
             line(3, "10111", "obligee", 0)]
    return {"case_id": case_id, "unit_code": BJ_UNIT, "assessment_id": f"HD-{case_id}", "lines": lines,
            "total_fen": sum(x["amount_fen"] for x in lines), "assessed_at": NOW()}


def bill_for(request: dict) -> dict:
    return {"request_id": request["request_id"], "case_id": request["case_id"],
            "bill_no": f"B-{request['request_id']}", "payment_code": f"PC{abs(hash(request['request_id'])) % 10**12:012d}",
            "receiving_unit": "110105001", "lines": request["lines"], "total_fen": request["total_fen"],
            "issued_at": NOW()}


def pay(order: dict, **changes) -> dict:
    lines = [{"sub_order_id": l["sub_order_id"], "platform_sub_order_id": "P" + l["sub_order_id"], "status": "paid",
              "amount_fen": l["amount_fen"]} for l in order["tax_lines"] + order["nontax_lines"]]
    result = {"order_id": order["order_id"], "platform_order_id": "P-" + order["order_id"],
              "total_fen": order["total_fen"], "paid_at": NOW(), "lines": lines}
    result.update(changes)
    return result


def clearance(case_id: str) -> dict:
    due = [l for l in assessment(case_id)["lines"] if l["amount_fen"]]
    return {"case_id": case_id, "unit_code": BJ_UNIT, "assessment_id": f"HD-{case_id}",
            "certificate_no": f"WS-{case_id}", "ticket_type": "electronic_tax_certificate",
            "lines": [{"tax_ticket_no": l["tax_ticket_no"], "amount_fen": l["amount_fen"]} for l in due],
            "total_fen": sum(l["amount_fen"] for l in due), "cleared_at": NOW()}


def _ledger(case_id: str) -> list[dict]:
    from chalicelib import cases

    return cases.ledger_entries(case_id, BJ_UNIT)


def _to_orders(flow: Flow, case_id: str) -> list[dict]:
    """Submit, assess and bill a case; return the orders the hub sent to the payment platform."""
    flow.send("bj-registry", "application.submitted", application(case_id, flow.payer_mode, flow.land_revenue))
    for request in flow.sent("nontax.bill_requested", "bj-fiscal"):
        if request["case_id"] == case_id:
            flow.send("bj-fiscal", "nontax.bill_issued", bill_for(request))
    flow.send("bj-tax", "tax.assessed", assessment(case_id))
    return [o for o in flow.sent("payment.order_requested", "bj-pay") if o["case_id"] == case_id]


@pytest.fixture
def flow(hub, partners):
    f = Flow(hub, partners)
    f.payer_mode, f.land_revenue = "each_pays_own", None
    return f


@pytest.mark.parametrize("payer_mode,land_revenue,orders_expected", [
    ("obligee_pays_all", None, 1), ("obligor_pays_all", 500_000, 1), ("each_pays_own", 500_000, 2)])
def test_a_complete_transfer_closes_its_loop(flow, payer_mode, land_revenue, orders_expected):
    flow.payer_mode, flow.land_revenue = payer_mode, land_revenue
    case_id = f"BJ-{payer_mode}"
    assert [r["case_id"] for r in flow.sent("tax.assessment_requested", "bj-tax")] == []  # nothing before submission
    orders = _to_orders(flow, case_id)
    assert len(flow.sent("tax.assessment_requested", "bj-tax")) == 1
    assert len(orders) == orders_expected
    for order in orders:  # every order sums to its total
        assert order["total_fen"] == sum(l["amount_fen"] for l in order["tax_lines"] + order["nontax_lines"])
    fee_total = 8000 + 1000  # residential case + one extra certificate
    assert sum(o["total_fen"] for o in orders) == 3_500_000 + 1_019_417 + fee_total + (land_revenue or 0)
    if payer_mode == "each_pays_own":
        roles = {o["payer_role"]: o for o in orders}
        assert {l["tax_item_code"] for l in roles["obligee"]["tax_lines"]} == {"10119"}
        assert {l["tax_item_code"] for l in roles["obligor"]["tax_lines"]} == {"10101"}

    for order in orders:
        flow.send("bj-pay", "payment.succeeded", pay(order))
    ledger = _ledger(case_id)
    assert sum(e["amount_fen"] for e in ledger) == sum(o["total_fen"] for o in orders)
    assert all(e["debit"] == "clearing:bj-pay" for e in ledger)
    assert {e["credit"].split(":")[0] for e in ledger} == {"treasury", "nontax"}
    assert flow.sent("case.ready_to_book") == []  # paid but not yet cleared

    flow.send("bj-tax", "tax.cleared", clearance(case_id))
    ready = flow.sent("case.ready_to_book", "bj-registry")
    assert len(ready) == 1 and ready[0]["total_paid_fen"] == sum(o["total_fen"] for o in orders)

    flow.send("bj-registry", "registration.booked", {
        "case_id": case_id, "unit_code": BJ_UNIT, "service": "transfer", "booked_at": NOW(),
        "certificates": [{"kind": "ownership_certificate", "number": "京(2026)朝阳区不动产权第0012345号"}]})
    shared = flow.sent("tax.booking_shared", "bj-tax")
    assert len(shared) == 1 and shared[0]["tax_certificate_no"] == f"WS-{case_id}"

    status, view = flow.read("bj-registry", case_id)
    assert status == 200, view
    case = view["cases"][0]
    assert case["stage"] == "closed" and case["holds"] == [] and case["risks"] == []
    assert {"application.submitted", "tax.assessed", "payment.order_requested", "case.ready_to_book",
            "tax.booking_shared"} <= {t["type"] for t in case["timeline"]}
    text = json.dumps(view, ensure_ascii=False)
    assert "11010519491231002X" not in text and "张三" not in text and "李四" not in text


def test_reads_are_for_participants_only_and_cannot_be_replayed(flow):
    _to_orders(flow, "BJ-READ-1")
    assert flow.read("bj-tax", "BJ-READ-1")[0] == 200
    assert flow.read("sz-registry", "BJ-READ-1") == flow.read("sz-registry", "NO-SUCH-CASE")  # same 404
    assert flow.read("sz-registry", "BJ-READ-1")[0] == 404
    assert flow.read("bj-registry", "BJ-READ-1", nonce="once")[0] == 200
    status, body = flow.read("bj-registry", "BJ-READ-1", nonce="once")
    assert (status, body["error"]["code"]) == (401, "unauthenticated")


def test_a_read_signed_for_another_path_fails(flow):
    _to_orders(flow, "BJ-READ-2")
    stamp = int(time.time())
    signature = Webhook(secret_of(flow.partners, "bj-registry")).sign(
        "n1", datetime.fromtimestamp(stamp, tz=timezone.utc), "GET /v1/cases/SOMETHING-ELSE")
    response = flow.hub.http.get("/v1/cases/BJ-READ-2", headers={
        "hub-partner-id": "bj-registry", "webhook-id": "n1", "webhook-timestamp": str(stamp),
        "webhook-signature": signature})
    assert response.status_code == 401


def test_payment_for_an_unknown_order_is_refused(flow):
    status, body = flow.post("bj-pay", "payment.succeeded", pay({
        "order_id": "NO-SUCH-ORDER", "total_fen": 100, "tax_lines": [],
        "nontax_lines": [{"sub_order_id": "X-N1", "amount_fen": 100}]}))
    assert (status, body["error"]["code"]) == (422, "unknown_order")


@pytest.mark.parametrize("tamper,reason", [
    (lambda r: r.update(total_fen=r["total_fen"] + 1), "total_mismatch"),
    (lambda r: r["lines"].pop(), "missing_sub_order"),
    (lambda r: r["lines"].append({**r["lines"][0], "sub_order_id": "EXTRA-1"}), "unknown_sub_order"),
    (lambda r: r["lines"][0].update(amount_fen=r["lines"][0]["amount_fen"] - 1), "amount_mismatch"),
])
def test_a_result_that_does_not_match_its_order_is_held_never_booked(flow, tamper, reason):
    flow.payer_mode = "obligee_pays_all"  # one order with every line
    order = _to_orders(flow, "BJ-HOLD")[0]
    result = pay(order)
    tamper(result)
    status, answer = flow.post("bj-pay", "payment.succeeded", result)
    assert status == 202, answer
    flow.pump()
    assert _ledger("BJ-HOLD") == []
    status, view = flow.read("bj-registry", "BJ-HOLD")
    holds = view["cases"][0]["holds"]
    assert [h["reason"] for h in holds] == [reason] or reason in {h["reason"] for h in holds}


def test_the_same_callback_many_times_and_concurrently_books_once(flow):
    order = _to_orders(flow, "BJ-DUP")[0]
    result = pay(order)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: flow.post("bj-pay", "payment.succeeded", result)[0], range(50)))
    # Chalice's test client shares one current_request between threads, so a request may see another's
    # webhook-id and be answered as its duplicate (200): the point here is what gets booked.
    assert set(statuses) <= {200, 202} and 202 in statuses
    flow.pump()
    ledger = _ledger("BJ-DUP")
    assert len(ledger) == len({e["entry_id"] for e in ledger})
    assert sum(e["amount_fen"] for e in ledger) == order["total_fen"]


def test_partial_success_books_only_the_paid_lines(flow):
    flow.payer_mode = "obligee_pays_all"  # one order
    order = _to_orders(flow, "BJ-PART")[0]
    result = pay(order)
    result["lines"][0]["status"] = "failed"
    flow.send("bj-pay", "payment.succeeded", result)
    paid = sum(l["amount_fen"] for l in result["lines"][1:])
    assert sum(e["amount_fen"] for e in _ledger("BJ-PART")) == paid
    assert flow.read("bj-registry", "BJ-PART")[1]["cases"][0]["orders"][0]["state"] == "partially_paid"
    flow.send("bj-pay", "payment.succeeded", pay(order))  # the rest paid later: completes, nothing twice
    ledger = _ledger("BJ-PART")
    assert sum(e["amount_fen"] for e in ledger) == order["total_fen"] and len(ledger) == len({e["entry_id"] for e in ledger})


def test_refunds_reverse_what_was_booked_and_no_more(flow):
    order = _to_orders(flow, "BJ-REF")[0]
    line = (order["tax_lines"] + order["nontax_lines"])[0]
    early = {"order_id": order["order_id"], "refund_id": "R0", "total_fen": line["amount_fen"], "whole": False,
             "lines": [{"sub_order_id": line["sub_order_id"], "amount_fen": line["amount_fen"]}], "refunded_at": NOW()}
    flow.send("bj-pay", "payment.refunded", early)  # before the payment: held
    flow.send("bj-pay", "payment.succeeded", pay(order))
    too_much = {**early, "refund_id": "R1", "total_fen": line["amount_fen"] + 1,
                "lines": [{"sub_order_id": line["sub_order_id"], "amount_fen": line["amount_fen"] + 1}]}
    flow.send("bj-pay", "payment.refunded", too_much)
    ok = {**early, "refund_id": "R2"}
    flow.send("bj-pay", "payment.refunded", ok)
    flow.send("bj-pay", "payment.refunded", ok)  # the same refund again
    refunds = [e for e in _ledger("BJ-REF") if e["kind"] == "refund"]
    assert [e["amount_fen"] for e in refunds] == [line["amount_fen"]]
    reasons = {h["reason"] for h in flow.read("bj-registry", "BJ-REF")[1]["cases"][0]["holds"]}
    assert {"refund_before_payment", "refund_exceeds_booked"} <= reasons


def test_clearance_for_a_case_never_assessed_is_refused(flow):
    flow.send("bj-registry", "application.submitted", application("BJ-NOTAX", "each_pays_own"))
    status, body = flow.post("bj-tax", "tax.cleared", clearance("BJ-NOTAX"))
    assert (status, body["error"]["code"]) == (422, "case_not_assessed")
    status, body = flow.post("bj-tax", "tax.cleared", clearance("NEVER-SUBMITTED"))
    assert (status, body["error"]["code"]) == (422, "case_not_assessed")


def test_a_clearance_that_disagrees_with_the_assessment_is_held(flow):
    for order in _to_orders(flow, "BJ-CLR"):
        flow.send("bj-pay", "payment.succeeded", pay(order))
    wrong = clearance("BJ-CLR")
    wrong["lines"][0]["amount_fen"] += 100
    wrong["total_fen"] += 100
    flow.send("bj-tax", "tax.cleared", wrong)
    assert flow.sent("case.ready_to_book") == []
    assert "clearance_mismatch" in {h["reason"] for h in flow.read("bj-registry", "BJ-CLR")[1]["cases"][0]["holds"]}


def test_a_stated_fee_that_differs_from_the_schedule_is_refused(flow):
    data = application("BJ-FEE", "each_pays_own")
    data["registration_fee_fen"] = 12345
    status, body = flow.post("bj-registry", "application.submitted", data)
    assert (status, body["error"]["code"]) == (422, "fee_mismatch")


def test_booked_without_clearance_goes_on_the_risk_list(flow):
    from chalicelib import cases

    _to_orders(flow, "BJ-RISK")
    flow.send("bj-registry", "registration.booked", {
        "case_id": "BJ-RISK", "unit_code": BJ_UNIT, "service": "transfer", "booked_at": NOW(),
        "certificates": [{"kind": "ownership_certificate", "number": "京(2026)朝阳区不动产权第0099999号"}]})
    assert "booked_without_clearance" in {r["reason"] for r in cases.listed("risk:open")}


def test_cleared_but_never_booked_goes_on_the_risk_list_after_the_limit(flow):
    from chalicelib import cases
    from chalicelib.flows import transfer

    for order in _to_orders(flow, "BJ-LATE"):
        flow.send("bj-pay", "payment.succeeded", pay(order))
    flow.send("bj-tax", "tax.cleared", clearance("BJ-LATE"))
    assert transfer.sweep_risks(now=time.time()) == 0
    assert transfer.sweep_risks(now=time.time() + transfer.BOOKING_LIMIT.total_seconds() + 60) == 1
    assert transfer.sweep_risks(now=time.time() + transfer.BOOKING_LIMIT.total_seconds() + 60) in (0, 1)
    assert [r["reason"] for r in cases.listed("risk:open")] == ["cleared_not_booked"]


def test_e_receipt_is_attached_and_the_registry_told(flow):
    _to_orders(flow, "BJ-RCPT")
    bill = next(b for b in flow.sent("nontax.bill_requested", "bj-fiscal") if b["case_id"] == "BJ-RCPT")
    flow.send("bj-fiscal", "nontax.receipt_issued", {
        "case_id": "BJ-RCPT", "bill_no": f"B-{bill['request_id']}", "payment_code": "PC1", "receipt_number": "0012345678",
        "total_fen": bill["total_fen"], "issued_at": NOW()})
    assert len(flow.sent("nontax.receipt_shared", "bj-registry")) == 1
    assert flow.read("bj-registry", "BJ-RCPT")[1]["cases"][0]["receipts"][0]["receipt_number"] == "0012345678"


def test_daily_settlement_file_is_reconciled_against_the_ledger(flow, partners):
    """Two cases paid; the platform's csv file (one line's amount wrong, one line missing, one extra) is
    uploaded as a verified document; settlement.ready yields a stored report operators can list."""
    import hashlib

    from chalicelib import cases, documents, reconcile
    from chalicelib.flows import settlement
    from chalicelib.settings import get_settings

    flow.payer_mode = "obligee_pays_all"
    for case_id in ("BJ-SET-1", "BJ-SET-2"):
        for order in _to_orders(flow, case_id):
            flow.send("bj-pay", "payment.succeeded", pay(order))
    day = settlement.settlement_day(NOW())
    entries = cases.listed(settlement.ledger_list_key("bj-pay", day))
    assert len(entries) == len(_ledger("BJ-SET-1")) + len(_ledger("BJ-SET-2")) >= 4
    rows = [reconcile.row_of_entry(e) for e in entries]
    rows[0]["amount_fen"] += 1                      # amount mismatch
    dropped = rows.pop(1)                           # missing in the file
    rows.append({**dropped, "platform_order_id": "P-UNKNOWN", "platform_sub_order_id": "P-UNKNOWN-1",
                 "order_id": "", "sub_order_id": ""})  # missing in the hub
    content = ("\n".join(reconcile.render_csv(day, rows)) + "\n").encode()

    slot_body = json.dumps({"sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
                            "media_type": "text/csv"})
    status, slot = documents.request_upload("bj-pay", sign_request(secret_of(partners, "bj-pay"), slot_body),
                                            slot_body.encode())
    assert status == 201, slot
    record = documents.get(slot["document_id"])
    boto3.client("s3").put_object(Bucket=get_settings().documents_bucket, Key=record.key, Body=content,
                                  ContentType="text/csv")
    assert documents.verify_object(get_settings().documents_bucket, record.key) == "verified"

    notice = {"settlement_date": day, "format": "csv",
              "file": {"document_id": slot["document_id"], "sha256": hashlib.sha256(content).hexdigest(),
                       "media_type": "text/csv", "size": len(content)},
              "totals": reconcile.totals_of(rows)}
    flow.send("bj-pay", "settlement.ready", notice)
    [listed] = settlement.reports()
    assert listed["ok"] is False
    assert listed["summary"]["amount_mismatch"] == 1 and listed["summary"]["missing_in_file"] == 1
    assert listed["summary"]["missing_in_hub"] == 1 and listed["summary"]["matched"] == len(entries) - 2
    assert settlement.report(listed["report_key"])["summary"] == listed["summary"]


def test_a_settlement_notice_for_an_unverified_document_is_refused(flow):
    status, body = flow.post("bj-pay", "settlement.ready", {
        "settlement_date": "2026-11-20", "format": "csv",
        "file": {"document_id": "doc_" + "a" * 32, "sha256": "0" * 64, "media_type": "text/csv", "size": 10},
        "totals": {"payment_count": 0, "payment_fen": 0, "refund_count": 0, "refund_fen": 0}})
    assert (status, body["error"]["code"]) == (422, "document_not_verified")


def test_clearance_before_the_payment_callback_waits_and_then_completes(flow):
    """Tax and the payment platform answer independently: a clearance may come first."""
    flow.payer_mode = "obligee_pays_all"
    orders = _to_orders(flow, "BJ-EARLY")
    flow.send("bj-tax", "tax.cleared", clearance("BJ-EARLY"))
    assert flow.sent("case.ready_to_book") == []
    assert flow.read("bj-registry", "BJ-EARLY")[1]["cases"][0]["holds"] == []
    for order in orders:
        flow.send("bj-pay", "payment.succeeded", pay(order))
    assert len(flow.sent("case.ready_to_book", "bj-registry")) == 1


def test_a_crash_between_booking_and_recording_books_nothing_twice(flow, monkeypatch):
    """The ledger entries are written, then the process dies before the case records the payment;
    the stream hands the same event again."""
    from chalicelib import cases
    from chalicelib.flows import transfer

    flow.payer_mode = "obligee_pays_all"
    order = _to_orders(flow, "BJ-CRASH")[0]
    status, _ = flow.post("bj-pay", "payment.succeeded", pay(order))
    assert status == 202
    real_update = cases.update

    def dies_on_payment(case_id, unit_code, change, create=None):
        if case_id == "BJ-CRASH" and change.__qualname__.startswith("on_payment_succeeded"):
            raise RuntimeError("process killed")
        return real_update(case_id, unit_code, change, create)

    with monkeypatch.context() as patched:
        patched.setattr(cases, "update", dies_on_payment)
        with pytest.raises(Exception):
            for item in _unseen_events(flow):
                transfer.on_payment_succeeded(item)
    booked_once = _ledger("BJ-CRASH")
    assert sum(e["amount_fen"] for e in booked_once) == order["total_fen"]
    flow.pump()  # the retry
    assert _ledger("BJ-CRASH") == booked_once
    assert flow.read("bj-registry", "BJ-CRASH")[1]["cases"][0]["orders"][0]["state"] == "paid"


def _unseen_events(flow: Flow) -> list:
    from chalicelib.event_store import StoredEvent
    from chalicelib.settings import get_settings

    items = boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]
    return [StoredEvent.from_item(i) for i in items if i["event_id"]["S"] not in flow.seen
            and i["type"]["S"] == "payment.succeeded"]


def test_an_assessment_that_never_comes_alerts_the_tax_bureau_exactly_once(flow):
    """Time limits (效能监管) with a compressed clock: sweeps far in the future, repeated."""
    from chalicelib import flows

    flow.send("bj-registry", "application.submitted", application("BJ-SLOW", "obligee_pays_all"))
    request = next(r for r in flow.sent("nontax.bill_requested", "bj-fiscal") if r["case_id"] == "BJ-SLOW")
    flow.send("bj-fiscal", "nontax.bill_issued", bill_for(request))  # the fiscal system answers; tax does not
    assert flows.sweep(now=time.time())["overdue_alerted"] == 0
    later = time.time() + 30 * 86400
    first = flows.sweep(now=later)
    again = flows.sweep(now=later + 60)
    alerts = [a for a in flow.sent("case.overdue") if a.get("case_id") == "BJ-SLOW"]
    stages = sorted(a["stage"] for a in alerts)
    assert "tax_assessment" in stages and "nontax_bill" not in stages
    assert stages.count("tax_assessment") == 1 and again["overdue_alerted"] == 0 and first["overdue_alerted"] >= 1
    assert [a for a in flow.sent("case.overdue", "bj-tax") if a["stage"] == "tax_assessment"]
