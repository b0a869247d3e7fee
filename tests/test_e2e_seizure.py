"""Flow 5 (courts) end to end in local mode, over HTTP.

One local-mode hub (`python -m localmode`, a subprocess) against a moto server for the module, with the
partners of tests/support.py acting as real partners: the court uploads its ruling and assistance notice
through the documents endpoint (signed slot request, HTTP PUT to the presigned URL, judged by local
mode's upload driver), every event is posted signed over HTTP, a real HTTP receiver gets the hub's
deliveries (each verified with the official standardwebhooks library and the hub's secret), the registry
fetches the court's papers through the links it was sent, and cases are read back with signed reads.
Every wait is bounded.

Scenarios: a seizure recorded on a unit with an open transfer holds the transfer's case.ready_to_book,
and the release lets it go (the transfer driven as tests/test_e2e_transfer.py does); a release of a
seizure that does not exist is refused and reaches no registry; a court's inquiry is answered to that
court only.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from tests.support import partners_doc, secret_of
from tests.test_e2e import http
from tests.test_e2e_relay import World as RelayWorld
from tests.test_e2e_transfer import QUIET_S, WAIT_S, Inbox, World, _case_id, _submitted, _to_orders
from tests.test_seizure_flow import NOTICE, RULING, SUBJECT, recorded, release, seize
from tests.test_transfer_flow import BJ_UNIT, NOW, clearance, pay

pytestmark = pytest.mark.e2e


class Courts(World):
    upload = RelayWorld.upload  # the claim check as a partner does it: a signed slot request, then a PUT

    def papers(self, court: str) -> dict:
        return {"legal_document": self.upload(court, RULING), "assistance_notice": self.upload(court, NOTICE)}

    def order(self, court: str, data: dict) -> tuple[int, dict]:
        """Post a court's order; while the upload driver has not judged a paper yet the hub answers 422
        `pending` (nothing stored), and the court tries again."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, answer = self.hub.post_event(court, secret_of(self.doc, court), "seizure.ordered", data)
            pending = status == 422 and answer["error"]["code"] == "document_not_verified" and \
                {d["code"] for d in answer["error"]["details"]} == {"pending"}
            if not pending or time.monotonic() > deadline:
                return status, answer
            time.sleep(0.2)

    def wait_for(self, event_type: str, partner: str, what: str, count: int = 1, **match) -> list[dict]:
        """Deliveries of a type to a partner whose data has the values in `match`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            with self.inbox.lock:
                found = [d for d in self.inbox.got if d["type"] == event_type and d["partner"] == partner
                         and all(d["data"].get(k) == v for k, v in match.items())]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {count} × {event_type} to {partner} not received within {WAIT_S} s")
            self.inbox._pull(0.5)

    def read_as(self, partner_id: str, path: str) -> tuple[int, dict]:
        from datetime import datetime, timezone

        from standardwebhooks import Webhook

        nonce, stamp = f"read_{uuid.uuid4().hex}", int(time.time())
        signature = Webhook(secret_of(self.doc, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET {path}")
        return http("GET", f"{self.hub.url}{path}", headers={
            "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(stamp),
            "webhook-signature": signature})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners

    with hub_with_partners(tmp_path_factory.mktemp("e2e_seizure"), partners_doc) as (hub, doc, receiver):
        yield Courts(hub, doc, Inbox(receiver, doc["hub"]["signing_secret"]))
        log = hub.log.read_text()
        assert SUBJECT["id_number"] not in log and SUBJECT["name"] not in log  # no personal data in the log


def test_a_seizure_holds_a_transfer_over_http_and_its_release_lets_it_be_booked(world):
    from chalicelib import restrictions

    case_id, order = _case_id("CF"), f"(2026)京0105执保{uuid.uuid4().int % 10**6}号"
    deliveries = _to_orders(world, case_id, "obligee_pays_all", None, 1)  # a transfer on the unit, at its order

    # The court seizes the unit: the owning registry gets the order and fetches the papers by their links.
    papers = world.papers("bj-court")
    status, answer = world.order("bj-court", seize(order, BJ_UNIT, papers))
    assert status == 202, answer
    forwarded = world.wait_for("seizure.forwarded", "bj-registry", "the order forwarded", order_number=order)[0]
    assert forwarded["data"]["court_partner_id"] == "bj-court" and forwarded["data"]["subject"] == SUBJECT
    for link, expected in zip(forwarded["data"]["document_links"], (RULING, NOTICE)):
        got = requests.get(link["download_url"], timeout=30)
        assert got.status_code == 200 and got.content == expected
    sid = restrictions.seizure_id(order, BJ_UNIT)
    receipt = world.wait_for("seizure.receipt", "bj-court", "receipt forwarded", status="forwarded", case_id=sid)[0]
    assert receipt["data"]["order_number"] == order

    # The registry records it: the court's receipt, and the open application flagged to its registry at once.
    rid = f"CF-110105-{uuid.uuid4().hex[:8]}"
    world.post("bj-registry", "restriction.recorded", recorded(order, rid), answering=forwarded)
    recorded_receipt = world.wait_for("seizure.receipt", "bj-court", "receipt recorded", status="recorded",
                                      case_id=sid)[0]
    assert recorded_receipt["data"]["restriction_id"] == rid and recorded_receipt["data"]["rank"] == 1
    raised = world.wait_for("restriction.flagged", "bj-registry", "flag raised", case_id=case_id, change="raised")[0]
    assert raised["data"]["blocked"] is True and raised["data"]["restriction"]["restriction_id"] == rid

    # The transfer is paid and cleared, yet not ready to book while the seizure binds.
    for delivery in deliveries:
        world.post("bj-pay", "payment.succeeded", pay(delivery["data"]), answering=delivery)
    world.post("bj-tax", "tax.cleared", clearance(case_id))
    held = world.read_until("bj-registry", case_id, lambda c: c["clearance"] is not None, "cleared")
    world.inbox.listen(QUIET_S)
    assert world.inbox.find(case_id, "case.ready_to_book") == []
    assert world.read("bj-registry", case_id)["stage"] == held["stage"] == "paid"

    # The court releases; the registry records the release: the flag is lifted and the case is ready.
    release_order = f"{order[:-1]}之一号"
    status, answer = world.order("bj-court", release(release_order, order, BJ_UNIT, world.papers("bj-court")))
    assert status == 202, answer
    forwarded_release = world.wait_for("seizure.forwarded", "bj-registry", "the release forwarded",
                                       order_number=release_order)[0]
    world.post("bj-registry", "restriction.recorded",
               recorded(release_order, rid, action="released", kind=None, rank=None, valid_until=None),
               answering=forwarded_release)
    world.wait_for("seizure.receipt", "bj-court", "receipt released", status="released", case_id=sid)
    lifted = world.wait_for("restriction.flagged", "bj-registry", "flag lifted", case_id=case_id, change="lifted")[0]
    assert (lifted["data"]["lift_reason"], lifted["data"]["blocked"]) == ("released", False)
    ready = world.inbox.wait(case_id, "case.ready_to_book", "bj-registry")
    assert len(ready) == 1 and ready[0]["data"]["restriction_flags"] == []

    # The registry books; the loop closes as for any transfer.
    obligees = [p for p in _submitted(case_id, "obligee_pays_all", None)["parties"] if p["role"] == "obligee"]
    world.post("bj-registry", "registration.booked", {
        "case_id": case_id, "unit_code": BJ_UNIT, "service": "transfer", "booked_at": NOW(),
        "certificates": [{"kind": "ownership_certificate", "number": f"京(2026)朝阳区不动产权第{uuid.uuid4().int % 10**7:07d}号"}],
        "obligees": obligees}, answering=ready[0])
    world.inbox.wait(case_id, "tax.booking_shared", "bj-tax")

    # The court reads its seizure: released, its two orders; another court cannot.
    status, body = world.read_as("bj-court", f"/v1/cases/{sid}")
    assert status == 200, body
    case = body["cases"][0]
    assert case["stage"] == "released" and [o["action"] for o in case["orders"]] == ["seize", "release"]
    assert case_id not in json.dumps(body) and SUBJECT["id_number"] not in json.dumps(body, ensure_ascii=False)
    assert world.read_as("sz-court", f"/v1/cases/{sid}")[0] == 404
    assert world.read_as("bj-court", f"/v1/cases/{case_id}")[0] == 404  # a court does not see the transfer


def test_a_release_without_a_seizure_is_refused_and_reaches_no_registry(world):
    order = f"(2026)京0105解{uuid.uuid4().int % 10**6}号"
    status, answer = world.order("bj-court", release(order, f"(2026)京0105执保{uuid.uuid4().int % 10**6}号", BJ_UNIT,
                                                     world.papers("bj-court")))
    assert (status, answer["error"]["code"]) == (422, "unknown_seizure")
    world.inbox.listen(QUIET_S)
    with world.inbox.lock:
        assert not [d for d in world.inbox.got if d["data"].get("order_number") == order]


def test_a_courts_inquiry_is_answered_to_that_court_only_over_http(world):
    inquiry_id = f"INQ-E2E-{uuid.uuid4().hex[:8]}"
    world.post("bj-court", "inquiry.requested", {
        "inquiry_id": inquiry_id, "unit_code": BJ_UNIT, "scope": ["ownership", "seizure"],
        "legal_basis": {"kind": "investigation_order", "number": "(2026)京0105执调字第5号"}, "requested_at": NOW()})
    asked = world.wait_for("inquiry.forwarded", "bj-registry", "inquiry forwarded", inquiry_id=inquiry_id)[0]
    assert (asked["data"]["requester_kind"], asked["data"]["requester_partner_id"]) == ("court", "bj-court")
    world.post("bj-registry", "inquiry.answered", {"inquiry_id": inquiry_id, "outcome": "not_found",
                                                   "answered_at": NOW()}, answering=asked)
    answered = world.wait_for("inquiry.answered", "bj-court", "answer", inquiry_id=inquiry_id)[0]
    assert (answered["data"]["outcome"], answered["data"]["city"]) == ("not_found", "110000")
    world.inbox.listen(1.0)
    with world.inbox.lock:
        assert [(d["partner"], d["type"]) for d in world.inbox.got if d["data"].get("inquiry_id") == inquiry_id] == [
            ("bj-registry", "inquiry.forwarded"), ("bj-court", "inquiry.answered")]
