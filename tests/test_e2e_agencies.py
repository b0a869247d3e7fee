"""Notaries and utilities (flows 3 and 4) end to end in local mode, over HTTP.

One local-mode hub (`python -m localmode`, a subprocess) against a moto server for the module, with the
partners of tests/support.py (Shenzhen's tax bureau and payment platform speaking the canonical format
here, so the test can answer them without their mappings) acting as real partners: documents are
uploaded through the documents endpoint and an HTTP PUT, judged by local mode's upload driver; events
are posted signed over HTTP; a real HTTP receiver gets the hub's deliveries, each verified with the
official standardwebhooks library and the hub's secret; cases are read back with signed reads; the
operator uses `hubctl`. Every wait is bounded.

Scenarios: a notarized inheritance filed with the registry, booked and reported to the notary (with a
duplicate and two refusals on the way); a one-window transfer paid, cleared and booked, after which
three utilities are asked, one fails, an operator retries it and it completes.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
import requests

from tests.support import partners_doc, secret_of
from tests.test_e2e_relay import World as RelayWorld
from tests.test_e2e_transfer import QUIET_S, WAIT_S, Inbox, World
from tests.test_notary_flow import CERTIFICATE, DECEDENT, HEIR, KINSHIP, booked, notarization
from tests.test_transfer_flow import application, assessment, bill_for, clearance, pay
from tests.test_utility_flow import ACCOUNTS, ADDRESS, BUYER, SELLER, SZ_UNIT, completed, failed

pytestmark = pytest.mark.e2e
PEOPLE = (HEIR, DECEDENT, BUYER, SELLER)


def agency_partners(endpoint_base: str) -> dict:
    doc = partners_doc(endpoint_base)
    for partner in doc["partners"]:
        if partner["id"] in ("sz-tax", "sz-ccb-govpay"):
            partner["mapping"] = "canonical"
    return doc


class AgencyInbox(Inbox):
    """Deliveries looked up by any reference they carry: a case, a request or the notary's own reference."""

    def find(self, ref: str, event_type: str | None = None, partner: str | None = None) -> list[dict]:
        with self.lock:
            return [d for d in self.got
                    if ref in {d["data"].get(k) for k in ("case_id", "request_id", "source_reference", "reference")}
                    and event_type in (None, d["type"]) and partner in (None, d["partner"])]


class AgencyWorld(World):
    upload = RelayWorld.upload  # the claim check as a partner does it: a signed slot request, then a PUT

    def post_when_verified(self, partner_id: str, event_type: str, data: dict) -> dict:
        """While the upload driver has not judged a document yet the hub answers 422 `pending` (nothing
        stored), and the partner tries again."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, answer = self.hub.post_event(partner_id, secret_of(self.doc, partner_id), event_type, data)
            if status == 202:
                return answer
            pending = status == 422 and answer["error"]["code"] == "document_not_verified" and \
                {d["code"] for d in answer["error"]["details"]} == {"pending"}
            assert pending and time.monotonic() < deadline, (status, answer)
            time.sleep(0.2)

    def refused(self, partner_id: str, event_type: str, data: dict) -> dict:
        status, answer = self.hub.post_event(partner_id, secret_of(self.doc, partner_id), event_type, data)
        assert status == 422, (status, answer)
        return answer["error"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners

    with hub_with_partners(tmp_path_factory.mktemp("e2e_agencies"), agency_partners) as (hub, doc, receiver):
        yield AgencyWorld(hub, doc, AgencyInbox(receiver, doc["hub"]["signing_secret"]))
        log = hub.log.read_text()
        for person in PEOPLE:  # no ID numbers or phones in the hub's log
            assert person["id_number"] not in log and person.get("phone", person["id_number"]) not in log


def _no_personal_data(case: dict, people) -> None:
    text = json.dumps(case, ensure_ascii=False)
    for person in people:
        for value in (person["name"], person["id_number"], *([person["phone"]] if "phone" in person else [])):
            assert value not in text


def test_a_notarized_inheritance_over_http_is_filed_booked_and_reported_to_the_notary(world):
    from chalicelib.flows.notary import case_id_for

    inbox = world.inbox
    notarization_id = f"NZ-E2E-{uuid.uuid4().hex[:8]}"
    case_id = case_id_for("sz-notary", notarization_id)
    certificate, kinship = world.upload("sz-notary", CERTIFICATE), world.upload("sz-notary", KINSHIP)
    data = notarization(notarization_id, certificate, [kinship])

    world.post_when_verified("sz-notary", "notarization.completed", data)
    # Refused at the door, nothing stored: a certificate whose declared hash is not the upload's; another office.
    tampered = {**data, "certificate": {**certificate, "sha256": hashlib.sha256(b"forged").hexdigest()}}
    error = world.refused("sz-notary", "notarization.completed", tampered)
    assert error["code"] == "document_not_verified" and error["details"][0]["field"] == "data.certificate.sha256"
    error = world.refused("sz-notary", "notarization.completed",
                          {**data, "notary_office": {"name": "另一公证处", "uscc": "11440300000000001R"}})
    assert error["code"] == "notary_office_mismatch"
    (filed,) = inbox.wait(notarization_id, "application.requested", "sz-registry")
    request = filed["data"]
    assert request["source_kind"] == "notary" and request["request_id"] == f"{case_id}-1"
    assert request["parties"] == [HEIR, DECEDENT] and request["notarization"]["document"] == certificate
    for scan, body in zip(request["documents"], (CERTIFICATE, KINSHIP)):  # the registry fetches the scans
        download = requests.get(scan["download_url"], timeout=10)
        assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == scan["document"]["sha256"]
        assert download.content == body

    # The same notarization again (a resend under a new webhook-id): accepted, nothing filed twice.
    status, answer = world.hub.post_event("sz-notary", secret_of(world.doc, "sz-notary"), "notarization.completed", data)
    assert status == 202, answer
    inbox.listen(QUIET_S)
    assert len(inbox.find(notarization_id, "application.requested")) == 1

    booked_at = time.time()
    world.post("sz-registry", "registration.booked", booked(request, "SZ2026-JC-E2E"), answering=filed)
    (result,) = inbox.wait(notarization_id, "registration.result", "sz-notary")
    assert result["at"] > booked_at
    assert result["data"]["outcome"] == "booked" and result["data"]["case_id"] == case_id
    assert result["data"]["certificates"][0]["number"] == "粤(2026)深圳市不动产权第0200001号"

    case = world.read_until("sz-notary", case_id, lambda c: c["stage"] == "booked", "the notary's case booked")
    assert case["filings"][0]["registry_case_id"] == "SZ2026-JC-E2E"
    assert {"notarization.completed", "application.requested", "registration.booked",
            "registration.result"} <= {t["type"] for t in case["timeline"]}
    _no_personal_data(case, (HEIR, DECEDENT))
    assert sorted((d["partner"], d["type"]) for d in inbox.find(notarization_id)) == [
        ("sz-notary", "registration.result"), ("sz-registry", "application.requested")]


def _booked_transfer(world: AgencyWorld, case_id: str) -> None:
    """A Shenzhen transfer through the one window: assessed, billed, paid, cleared, booked."""
    inbox = world.inbox
    data = application(case_id, "obligee_pays_all")
    data.update(unit_code=SZ_UNIT, parties=[BUYER, SELLER], location=ADDRESS,
                utilities_consented=["water", "electricity", "gas"],
                utility_accounts=[{"utility": u, "account_number": n} for u, n in ACCOUNTS.items()])
    world.post("sz-registry", "application.submitted", data)
    (asked,) = inbox.wait(case_id, "tax.assessment_requested", "sz-tax")
    (bill,) = inbox.wait(case_id, "nontax.bill_requested", "sz-fiscal")
    world.post("sz-fiscal", "nontax.bill_issued", bill_for(bill["data"]), answering=bill)
    world.post("sz-tax", "tax.assessed", {**assessment(case_id), "unit_code": SZ_UNIT}, answering=asked)
    (order,) = inbox.wait(case_id, "payment.order_requested", "sz-ccb-govpay")
    world.post("sz-ccb-govpay", "payment.succeeded", pay(order["data"]), answering=order)
    world.post("sz-tax", "tax.cleared", {**clearance(case_id), "unit_code": SZ_UNIT})
    (ready,) = inbox.wait(case_id, "case.ready_to_book", "sz-registry")
    world.post("sz-registry", "registration.booked", {
        "case_id": case_id, "unit_code": SZ_UNIT, "service": "transfer", "booked_at": ready["data"]["ready_at"],
        "certificates": [{"kind": "ownership_certificate", "number": "粤(2026)深圳市不动产权第0300001号"}]},
        answering=ready)


def test_a_booked_transfer_over_http_reaches_three_utilities_and_an_operator_retries_the_failed_one(world):
    inbox = world.inbox
    case_id = f"E2E-UT-{uuid.uuid4().hex[:6]}"
    booked_at = time.time()
    _booked_transfer(world, case_id)

    asked = {p: inbox.wait(case_id, "utility.transfer_requested", p)[0] for p in ("sz-water", "sz-power", "sz-gas")}
    assert all(d["at"] > booked_at for d in asked.values())
    assert {p: d["data"]["utility"] for p, d in asked.items()} == {"sz-water": "water", "sz-power": "electricity",
                                                                   "sz-gas": "gas"}
    for delivery in asked.values():  # each utility learns what moving the account needs, and no more
        request = delivery["data"]
        assert request["address"] == ADDRESS and request.get("account_number") == ACCOUNTS.get(request["utility"])
        assert request["old_holder"] == {"name": SELLER["name"], "id_number_masked": "440106********4523"}
        assert request["new_holder"]["id_number"] == BUYER["id_number"]
        body = json.dumps(delivery["data"], ensure_ascii=False)
        assert SELLER["id_number"] not in body and SELLER["phone"] not in body
        assert "350000000" not in body and "price" not in body and "fen" not in body

    world.post("sz-water", "utility.transfer_completed", completed(asked["sz-water"]["data"]),
               answering=asked["sz-water"])
    world.post("sz-gas", "utility.transfer_completed", completed(asked["sz-gas"]["data"]), answering=asked["sz-gas"])
    world.post("sz-power", "utility.transfer_failed", failed(asked["sz-power"]["data"]), answering=asked["sz-power"])
    case = world.read_until("sz-registry", case_id, lambda c: len(
        [u for u in c["utilities"].values() if u["state"] != "requested"]) == 3, "every utility answered")
    assert {u: s["state"] for u, s in case["utilities"].items()} == {
        "electricity": "failed", "gas": "completed", "water": "completed"}
    assert case["utilities"]["electricity"]["reason_code"] == "arrears"

    code, failures = world.hub.hubctl("utilities", "list")
    assert code == 0 and [(f["case_id"], f["utility"]) for f in failures if f["case_id"] == case_id] == [
        (case_id, "electricity")]
    code, retried = world.hub.hubctl("utilities", "retry", case_id, "--utility", "electricity",
                                     "--operator", "ops-e2e", "--reason", "arrears_settled")
    assert code == 0 and retried["attempt"] == 2 and retried["partner_ids"] == ["sz-power"]
    code, again = world.hub.hubctl("utilities", "retry", case_id, "--utility", "water",
                                   "--operator", "ops-e2e", "--reason", "by_mistake")
    assert code == 1 and again is None  # only a failed utility can be retried (the error goes to stderr)

    first, second = inbox.wait(case_id, "utility.transfer_requested", "sz-power", count=2)
    assert second["webhook_id"] != first["webhook_id"]
    assert (second["data"]["attempt"], second["data"]["request_id"]) == (2, retried["request_id"])
    world.post("sz-power", "utility.transfer_completed", completed(second["data"]), answering=second)
    case = world.read_until("sz-registry", case_id, lambda c: c["utilities"]["electricity"]["state"] == "completed",
                            "the retried utility completed")
    power = case["utilities"]["electricity"]
    assert [(a["attempt"], a["state"]) for a in power["attempts"]] == [(1, "failed"), (2, "completed")]
    assert power["attempts"][1]["retry"]["by"] == "ops-e2e"
    assert [f for f in world.hub.hubctl("utilities", "list")[1] if f["case_id"] == case_id] == []
    assert case["stage"] == "closed" and case["risks"] == []
    _no_personal_data(case, (BUYER, SELLER))
    assert len(inbox.find(case_id, "utility.transfer_requested")) == 4
