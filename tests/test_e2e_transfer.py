"""Flow 1 (the one-window transfer) end to end in local mode, over HTTP, for every payer mode.

One local-mode hub (`python -m localmode`, a subprocess) against a moto server for the module; the
Beijing partners (bj-registry, bj-tax, bj-fiscal, bj-pay, canonical formats) act as real partners:
a real HTTP receiver gets the hub's deliveries, every delivery's signature is checked with the official
standardwebhooks library and the hub's secret, and the test answers each delivery the way the partner
would, by posting the next event, signed, over HTTP. The case is then read back with a signed read.
Every wait is bounded.
"""
from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from tests.support import Receiver, partners_doc, secret_of
from tests.test_e2e import LocalHub, http
from tests.test_transfer_flow import BJ_UNIT, NOW, application, assessment, bill_for, clearance, pay

pytestmark = pytest.mark.e2e

TAXES_FEN = 3_500_000 + 1_019_417  # deed tax (obligee) + income tax (obligor); stamp duty is 0
FEES_FEN = 8000 + 1000  # residential registration fee + one extra certificate
LAND_REVENUE_FEN = 500_000
PHONES = {"obligee": "13900139000", "obligor": "13800138000"}
WAIT_S = 20  # bound of every wait for something that should arrive
QUIET_S = 3  # how long the sad path waits for something that must not arrive


class Inbox:
    """The partners' side of the receiver: every delivery verified with the hub's secret (official
    library), kept once per webhook-id (delivery is at least once), looked up by case."""

    def __init__(self, receiver: Receiver, hub_secret: str):
        self.receiver = receiver
        self.webhook = Webhook(hub_secret)
        self.got: list[dict] = []
        self.ids: set[str] = set()
        self.repeats = 0
        self.lock = threading.Lock()

    def _pull(self, timeout: float) -> None:
        try:
            raw = self.receiver.take(timeout=max(0.01, timeout))
        except queue.Empty:
            return
        payload = self.webhook.verify(raw["body"], raw["headers"])  # raises if the hub's signature is wrong
        webhook_id = raw["headers"]["webhook-id"]
        with self.lock:
            if webhook_id in self.ids:
                self.repeats += 1
                return
            self.ids.add(webhook_id)
            self.got.append({"partner": raw["path"].strip("/"), "type": payload["type"], "data": payload["data"],
                             "webhook_id": webhook_id, "at": raw["at"]})

    def find(self, case_id: str, event_type: str | None = None, partner: str | None = None) -> list[dict]:
        with self.lock:
            return [d for d in self.got if d["data"].get("case_id") == case_id
                    and (event_type is None or d["type"] == event_type) and (partner is None or d["partner"] == partner)]

    def wait(self, case_id: str, event_type: str, partner: str, count: int = 1, timeout: float = WAIT_S) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(case_id, event_type, partner)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(d["partner"], d["type"]) for d in self.find(case_id)]
                raise AssertionError(f"{count} × {event_type} to {partner} for {case_id} not received within "
                                     f"{timeout} s; got {len(found)}; everything for the case: {seen}")
            self._pull(min(left, 0.5))

    def listen(self, seconds: float) -> None:
        """Take whatever arrives during `seconds` (for checks that something did NOT arrive)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pull(min(left, 0.5))


class World:
    def __init__(self, hub: LocalHub, doc: dict, inbox: Inbox):
        self.hub, self.doc, self.inbox = hub, doc, inbox

    def post(self, partner_id: str, event_type: str, data: dict, answering: dict | None = None) -> dict:
        """A partner posts an event, signed; an answer to a delivery reuses an id derived from it, so
        a re-delivered request answered again is a duplicate at the hub, as with a real partner."""
        msg_id = f"ans_{answering['webhook_id']}_{event_type}" if answering else None
        status, answer = self.hub.post_event(partner_id, secret_of(self.doc, partner_id), event_type, data,
                                             msg_id=msg_id)
        assert status == 202, (event_type, status, answer)
        return answer

    def read(self, partner_id: str, case_id: str, url_id: str | None = None) -> dict:
        """The signed case read of chalicelib/reads.py: the request line signed in place of a body (with
        the id as it is; `url_id` is how the URL spells it, percent-encoded or not)."""
        nonce = f"read_{uuid.uuid4().hex}"
        stamp = int(time.time())
        signature = Webhook(secret_of(self.doc, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/cases/{case_id}")
        status, body = http("GET", f"{self.hub.url}/v1/cases/{url_id or case_id}", headers={
            "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(stamp),
            "webhook-signature": signature})
        assert status == 200, (status, body)
        assert len(body["cases"]) == 1, body
        return body["cases"][0]

    def read_until(self, partner_id: str, case_id: str, predicate, what: str, timeout: float = WAIT_S) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            case = self.read(partner_id, case_id)
            if predicate(case):
                return case
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s; the case reads {json.dumps(case)[:2000]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners

    with hub_with_partners(tmp_path_factory.mktemp("e2e_transfer"), partners_doc) as (hub, doc, receiver):
        yield World(hub, doc, Inbox(receiver, doc["hub"]["signing_secret"]))
        log = hub.log.read_text()
        assert "11010519491231002X" not in log and "110105195001010039" not in log  # no ID numbers in the log


def _case_id(tag: str) -> str:
    return f"E2E-{tag}-{uuid.uuid4().hex[:6]}"


def _submitted(case_id: str, payer_mode: str, land_revenue: int | None) -> dict:
    data = application(case_id, payer_mode, land_revenue)
    for party in data["parties"]:
        party["phone"] = PHONES[party["role"]]
    return data


def _to_orders(world: World, case_id: str, payer_mode: str, land_revenue: int | None, bills: int) -> list[dict]:
    """Submit; the tax bureau and the fiscal system answer what they receive; return the orders bj-pay got."""
    inbox = world.inbox
    world.post("bj-registry", "application.submitted", _submitted(case_id, payer_mode, land_revenue))

    # Parallel dispatch: the assessment request and every bill request arrive before anyone answers.
    asked = inbox.wait(case_id, "tax.assessment_requested", "bj-tax")
    requests = inbox.wait(case_id, "nontax.bill_requested", "bj-fiscal", count=bills)
    assert len(asked) == 1 and len(requests) == bills
    assert {(d["partner"], d["type"]) for d in inbox.find(case_id)} == {
        ("bj-tax", "tax.assessment_requested"), ("bj-fiscal", "nontax.bill_requested")}
    assert asked[0]["data"]["unit_code"] == BJ_UNIT and asked[0]["data"]["price_fen"] == 350_000_000
    assert all(r["data"]["payer"]["id_number"] for r in requests)  # the fiscal system is told who pays

    # The fiscal system issues a bill for each request, built from it; the tax bureau assesses.
    for request in requests:
        world.post("bj-fiscal", "nontax.bill_issued", bill_for(request["data"]), answering=request)
    world.post("bj-tax", "tax.assessed", assessment(asked[0]["data"]["case_id"]), answering=asked[0])
    expected_orders = 2 if payer_mode == "each_pays_own" else 1
    orders = inbox.wait(case_id, "payment.order_requested", "bj-pay", count=expected_orders)
    assert len(orders) == expected_orders
    return orders


@pytest.mark.parametrize("payer_mode,land_revenue,bills", [
    ("obligee_pays_all", None, 1), ("obligor_pays_all", LAND_REVENUE_FEN, 1), ("each_pays_own", LAND_REVENUE_FEN, 2)])
def test_a_complete_transfer_over_http_closes_its_loop(world, payer_mode, land_revenue, bills):
    inbox = world.inbox
    case_id = _case_id({"obligee_pays_all": "EE", "obligor_pays_all": "OR", "each_pays_own": "EO"}[payer_mode])

    deliveries = _to_orders(world, case_id, payer_mode, land_revenue, bills)
    orders = [d["data"] for d in deliveries]
    for order in orders:  # every order sums to its total
        assert order["total_fen"] == sum(l["amount_fen"] for l in order["tax_lines"] + order["nontax_lines"])
    assert sum(o["total_fen"] for o in orders) == TAXES_FEN + FEES_FEN + (land_revenue or 0)
    if payer_mode == "each_pays_own":  # one order per payer, each with what that payer owes
        by_role = {o["payer_role"]: o for o in orders}
        assert sorted(by_role) == ["obligee", "obligor"]
        assert by_role["obligee"]["total_fen"] == 3_500_000 + FEES_FEN
        assert by_role["obligor"]["total_fen"] == 1_019_417 + LAND_REVENUE_FEN
    else:
        assert orders[0]["payer_role"] == payer_mode.split("_")[0]

    # The payment platform reports each order paid.
    for delivery in deliveries:
        world.post("bj-pay", "payment.succeeded", pay(delivery["data"]), answering=delivery)
    paid = world.read_until("bj-pay", case_id, lambda c: c["orders"] and all(o["state"] == "paid" for o in c["orders"]),
                            "every order paid")
    assert paid["stage"] == "awaiting_clearance"
    assert {o["order_id"]: o["paid_fen"] for o in paid["orders"]} == {o["order_id"]: o["total_fen"] for o in orders}
    inbox.listen(1.0)
    assert inbox.find(case_id, "case.ready_to_book") == []  # paid, not yet cleared: not ready

    # The tax bureau clears (two-way check); only now is the case ready to book.
    cleared_at = time.time()
    world.post("bj-tax", "tax.cleared", clearance(case_id))
    ready = inbox.wait(case_id, "case.ready_to_book", "bj-registry")
    assert len(ready) == 1 and ready[0]["at"] > cleared_at
    assert ready[0]["data"]["total_paid_fen"] == sum(o["total_fen"] for o in orders)
    assert ready[0]["data"]["tax"]["certificate_no"] == f"WS-{case_id}"

    # The registry books; the hub shares the booking with the tax bureau: the loop is closed.
    obligees = [p for p in _submitted(case_id, payer_mode, land_revenue)["parties"] if p["role"] == "obligee"]
    number = f"京(2026)朝阳区不动产权第{abs(hash(case_id)) % 10**7:07d}号"
    booked_at = time.time()
    world.post("bj-registry", "registration.booked", {
        "case_id": case_id, "unit_code": ready[0]["data"]["unit_code"], "service": "transfer", "booked_at": NOW(),
        "certificates": [{"kind": "ownership_certificate", "number": number, "holder_name": obligees[0]["name"]}],
        "obligees": obligees}, answering=ready[0])
    shared = inbox.wait(case_id, "tax.booking_shared", "bj-tax")
    assert len(shared) == 1 and shared[0]["at"] > booked_at
    assert shared[0]["data"]["tax_certificate_no"] == f"WS-{case_id}"
    assert shared[0]["data"]["assessment_id"] == f"HD-{case_id}"
    assert shared[0]["data"]["certificate_numbers"] == [number]

    # Each partner of the case reads it: closed, nothing held, nothing at risk, no personal data.
    for reader in ("bj-registry", "bj-tax"):
        case = world.read_until(reader, case_id, lambda c: c["stage"] == "closed", "stage closed")
        assert case["holds"] == [] and case["risks"] == []
        assert case["booking"]["certificate_numbers"] == [number]
        assert {"application.submitted", "tax.assessed", "nontax.bill_issued", "payment.order_requested",
                "payment.succeeded", "tax.cleared", "case.ready_to_book", "registration.booked",
                "tax.booking_shared"} <= {t["type"] for t in case["timeline"]}
        text = json.dumps(case, ensure_ascii=False)  # ensure_ascii=False: Chinese names stay searchable
        for party in _submitted(case_id, payer_mode, land_revenue)["parties"]:
            for value in (party["name"], party["id_number"], party["phone"]):
                assert value not in text, f"{reader} can read personal data of the {party['role']}"
        assert not _keys(case) & {"name", "holder_name", "id_number", "phone", "payer", "parties", "obligees"}
    # Nothing else reached the partners for this case, and every order got exactly one payment request.
    assert sorted((d["partner"], d["type"]) for d in inbox.find(case_id)) == sorted(
        [("bj-tax", "tax.assessment_requested")] + [("bj-fiscal", "nontax.bill_requested")] * bills
        + [("bj-pay", "payment.order_requested")] * len(orders)
        + [("bj-registry", "case.ready_to_book"), ("bj-tax", "tax.booking_shared")])


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def test_a_payment_with_a_wrong_total_is_held_and_the_case_never_becomes_ready(world):
    inbox = world.inbox
    case_id = _case_id("BAD")
    delivery = _to_orders(world, case_id, "obligee_pays_all", None, 1)[0]
    order = delivery["data"]
    world.post("bj-pay", "payment.succeeded", pay(order, total_fen=order["total_fen"] + 1), answering=delivery)
    held = world.read_until("bj-registry", case_id, lambda c: c["holds"], "a hold on the case")
    assert [h["reason"] for h in held["holds"]] == ["total_mismatch"]
    assert held["orders"][0]["paid_fen"] == 0 and held["stage"] == "awaiting_payment"

    # The tax bureau clears anyway: with nothing booked for its tickets the clearance waits for a payment
    # (it may simply have come first); the case never becomes ready.
    world.post("bj-tax", "tax.cleared", clearance(case_id))
    inbox.listen(QUIET_S)
    case = world.read("bj-registry", case_id)
    assert [h["reason"] for h in case["holds"]] == ["total_mismatch"]
    assert "tax.cleared" in {t["type"] for t in case["timeline"]}
    assert inbox.find(case_id, "case.ready_to_book") == []
    case = world.read("bj-registry", case_id)
    assert case["stage"] == "awaiting_payment" and case["clearance"] is None and case["booking"] is None


def test_a_case_read_by_a_percent_encoded_id_is_the_same_read(world):
    """API Gateway decodes path parameters before the hub sees them; local mode does the same, so the
    request line the partner signed (with the id as it is) matches what the hub checks."""
    case_id = _case_id("ENC")
    world.post("bj-registry", "application.submitted", _submitted(case_id, "obligee_pays_all", None))
    world.inbox.wait(case_id, "nontax.bill_requested", "bj-fiscal")  # the case exists once its bill is asked for
    encoded = "".join(f"%{byte:02X}" for byte in case_id.encode())
    assert world.read("bj-registry", case_id, url_id=encoded)["case_id"] == case_id
