"""Flow 2 (banks) end to end in local mode, over HTTP.

One local-mode hub (`python -m localmode`, a subprocess) against a moto server for the module, with the
partners of tests/support.py acting as real partners: the Shenzhen registry, CCB (sz-ccb) and CMB
(sz-cmb). Documents (mortgage contracts, the borrowers' signed consents, the registry's e-certificates)
are uploaded through the documents endpoint (a signed slot request, then an HTTP PUT to the presigned
URL) and judged by local mode's upload driver; events are posted signed over HTTP; a real HTTP receiver
gets the hub's deliveries, each verified with the official standardwebhooks library and the hub's
secret; the registry fetches every document through the link it was sent and checks its SHA-256; the
banks read their cases with a signed `GET /v1/cases/{case_id}`. Every wait is bounded.

Scenarios: a first mortgage from a bank; each 带押过户 package — combined, staged (and the old
mortgage's release after payoff, carrying the escrow reference), same-bank change.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
from standardwebhooks import Webhook

from tests.support import partners_doc, secret_of
from tests.test_e2e import http
from tests.test_e2e_relay import World as RelayWorld
from tests.test_e2e_transfer import Inbox as CaseInbox
from tests.test_mortgage_flow import (BUYER, CCB, CMB, CONSENT, CONSENTS_OF, E_CERT, PERSONAL, SELLER, SZ_UNIT,
                                      booking, mortgage_request, package_request, recorded_mortgage)
from tests.test_relay_flow import PDF, PDF2

pytestmark = pytest.mark.e2e

WAIT_S = 20  # bound of every wait for something that should arrive
QUIET_S = 3  # how long to listen for something that must not arrive


class Inbox(CaseInbox):
    """The receiver's deliveries, verified and kept once per webhook-id, looked up by the hub's case id
    (mortgage.registered, registration.result) or request id (application.requested: the same id)."""

    def find(self, key: str, event_type: str | None = None, partner: str | None = None) -> list[dict]:
        with self.lock:
            return [d for d in self.got if key in (d["data"].get("case_id"), d["data"].get("request_id"))
                    and event_type in (None, d["type"]) and partner in (None, d["partner"])]


class World(RelayWorld):
    """Partners over HTTP: signed events, the claim-check upload, signed case reads."""

    def post_verified(self, partner_id: str, event_type: str, data: dict) -> dict:
        """Post an event that points at documents; while the upload driver has not judged one yet the
        hub answers 422 `pending` (nothing stored), and the partner tries again."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, answer = self.hub.post_event(partner_id, secret_of(self.doc, partner_id), event_type, data)
            if status == 202:
                return answer
            pending = status == 422 and answer["error"]["code"] == "document_not_verified" and \
                {d["code"] for d in answer["error"]["details"]} == {"pending"}
            assert pending and time.monotonic() < deadline, (status, answer)
            time.sleep(0.2)

    def read(self, partner_id: str, case_id: str) -> tuple[int, dict]:  # type: ignore[override]
        nonce, stamp = f"read_{uuid.uuid4().hex}", int(time.time())
        signature = Webhook(secret_of(self.doc, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/cases/{case_id}")
        return http("GET", f"{self.hub.url}/v1/cases/{case_id}", headers={
            "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(stamp),
            "webhook-signature": signature})

    def case_until(self, partner_id: str, case_id: str, stage: str) -> dict:
        """The case once it reaches `stage` (a 404 until the stream has made it)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, body = self.read(partner_id, case_id)
            assert status in (200, 404), (status, body)
            if status == 200 and body["cases"][0]["stage"] == stage:
                return body["cases"][0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{case_id} not {stage} within {WAIT_S} s: {json.dumps(body)[:2000]}")
            time.sleep(0.2)

    def scans(self, bank: str, body: bytes = PDF) -> list[dict]:
        return [{"kind": "mortgage_contract", "title": "抵押合同", "document": self.upload(bank, body)}]

    def book(self, registry: str, application: dict, proofs: list[str], ownership: bool = False) -> dict:
        """The registry fetches every document it was sent, checks it, books, and uploads the e-certificates."""
        for scan in application["documents"]:
            got = requests.get(scan["download_url"], timeout=30)
            assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == scan["document"]["sha256"]
        data = booking(application, proofs, [self.upload(registry, E_CERT + p.encode()) for p in proofs],
                       int(time.time() * 1000) % 10_000, ownership=ownership)
        self.post_verified(registry, "registration.booked", data)
        return data


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners

    with hub_with_partners(tmp_path_factory.mktemp("e2e_mortgage"), partners_doc) as (hub, doc, receiver):
        yield World(hub, doc, Inbox(receiver, doc["hub"]["signing_secret"]))
        log = hub.log.read_text()
        assert not [p for p in PERSONAL if p in log]  # no names, ID numbers or phones in the hub's log


def _proof(tag: str) -> str:
    return f"粤(2026)深圳市不动产证明第{tag}{uuid.uuid4().int % 10**6:06d}号"


def test_a_first_mortgage_from_a_bank_over_http(world):
    inbox = world.inbox
    request = mortgage_request("sz-ccb", "first", SZ_UNIT, world.scans("sz-ccb"))
    world.post_verified("sz-ccb", "mortgage.requested", request)
    case_id = f"MTG_sz-ccb_{request['request_id']}"

    [application] = inbox.wait(case_id, "application.requested", "sz-registry")
    data = application["data"]
    assert data["source_kind"] == "bank" and data["registrations"] == ["mortgage_first"]
    assert data["mortgages"] == [{"mortgagee": CCB, "terms": request["terms"]}]
    assert world.case_until("sz-ccb", case_id, "filed")["participants"] == ["sz-ccb", "sz-registry"]

    proof = _proof("A")
    booked = world.book("sz-registry", data, [proof])
    [registered] = inbox.wait(case_id, "mortgage.registered", "sz-ccb")
    assert registered["data"]["request_id"] == request["request_id"] and registered["data"]["kind"] == "first"
    assert registered["data"]["proof"]["number"] == proof and registered["data"]["registry_case_id"] == booked["case_id"]
    assert registered["data"]["proof"]["e_certificate"] == booked["certificates"][0]["e_certificate"]

    case = world.case_until("sz-ccb", case_id, "booked")
    assert {"mortgage.requested", "application.requested", "registration.booked", "mortgage.registered"} <= \
        {t["type"] for t in case["timeline"]}
    assert world.read("sz-cmb", case_id)[0] == 404  # a bank sees its own cases only


def _package(world: World, bank: str, role: str, mode: str, package_id: str, old_proof: str, old_bank: dict) -> dict:
    consents = {r: world.upload(bank, CONSENT + f"{package_id} {r}".encode()) for r in CONSENTS_OF[role]}
    old = {"mortgagee": dict(old_bank), "proof_number": old_proof, "outstanding_fen": 150_000_000}
    return package_request(bank, role, consents, world.scans(bank, PDF2), mode, package_id, SZ_UNIT, old_bank, CCB,
                           old_mortgage=old)


@pytest.mark.parametrize("mode", ["combined", "staged", "same_bank_change"])
def test_a_package_over_http_collects_every_consent_files_once_and_answers_each_bank(world, mode):
    inbox = world.inbox
    package_id, old_proof = f"PKG-E2E-{mode}-{uuid.uuid4().hex[:6]}", _proof("O")
    case_id = f"PKG_{package_id}"
    old_bank = CCB if mode == "same_bank_change" else CMB
    if mode != "staged":  # combined and same-bank change act on the old mortgage: the register says it is there
        world.post("sz-registry", "restriction.recorded", recorded_mortgage(old_proof, old_bank))

    if mode == "same_bank_change":
        parts = [("sz-ccb", _package(world, "sz-ccb", "both", mode, package_id, old_proof, old_bank))]
    else:
        parts = [("sz-ccb", _package(world, "sz-ccb", "new_mortgagee", mode, package_id, old_proof, old_bank)),
                 ("sz-cmb", _package(world, "sz-cmb", "old_mortgagee", mode, package_id, old_proof, old_bank))]
    for n, (bank, request) in enumerate(parts):
        if n == len(parts) - 1 and n > 0:  # one consent in, one missing: nothing reaches the registry
            assert world.case_until("sz-ccb", case_id, "awaiting_consent")["package"]["awaiting"] == ["old_mortgagee"]
            inbox.listen(QUIET_S)
            assert inbox.find(case_id, "application.requested") == []
        world.post_verified(bank, "mortgage.requested", request)

    [application] = inbox.wait(case_id, "application.requested", "sz-registry")
    data = application["data"]
    assert data["registrations"] == {"combined": ["transfer", "mortgage_release", "mortgage_first"],
                                     "staged": ["transfer", "mortgage_first"],
                                     "same_bank_change": ["transfer", "mortgage_change"]}[mode]
    assert data["parties"] == [BUYER, SELLER] and data["package"]["package_id"] == package_id
    consents = {c["document"]["document_id"] for _b, r in parts for c in r["package"]["consents"]}
    assert consents <= {d["document"]["document_id"] for d in data["documents"]}
    if mode == "staged":
        assert data["package"]["escrow_reference"] == "ZJJG-2026-0001" and data["mortgages"][0]["terms"]["rank"] == 2

    new_proof = _proof("N")
    world.book("sz-registry", data, [new_proof], ownership=True)
    new_request = parts[0][1]
    [registered] = inbox.wait(case_id, "mortgage.registered", "sz-ccb")
    assert registered["data"]["proof"]["number"] == new_proof and registered["data"]["package_id"] == package_id
    assert registered["data"]["request_id"] == new_request["request_id"]
    if mode != "same_bank_change":
        [told] = inbox.wait(case_id, "registration.result", "sz-cmb")
        assert told["data"]["outcome"] == "booked" and told["data"]["reference"] == parts[1][1]["request_id"]
        assert told["data"]["certificates"] == [{"kind": "registration_proof", "number": old_proof}]
    case = world.case_until("sz-ccb", case_id, "booked")
    assert not [p for p in PERSONAL if p in json.dumps(case, ensure_ascii=False)]

    if mode == "staged":  # the escrow paid the old loan off: the old bank releases its mortgage
        release = mortgage_request("sz-cmb", "release", SZ_UNIT, world.scans("sz-cmb"), existing_proof_number=old_proof)
        world.post_verified("sz-cmb", "mortgage.requested", release)
        release_case = f"MTG_sz-cmb_{release['request_id']}"
        [filed] = inbox.wait(release_case, "application.requested", "sz-registry")
        assert filed["data"]["registrations"] == ["mortgage_release"]
        assert filed["data"]["package"] == {"mode": "staged", "package_id": package_id,
                                            "escrow_reference": "ZJJG-2026-0001"}
        world.book("sz-registry", filed["data"], [_proof("R")])
        [released] = inbox.wait(release_case, "mortgage.registered", "sz-cmb")
        assert released["data"]["kind"] == "release"
        deadline = time.monotonic() + WAIT_S
        while not world.case_until("sz-cmb", case_id, "booked")["package"]["old_mortgage_released"]:
            assert time.monotonic() < deadline, "the package never showed the old mortgage released"
            time.sleep(0.2)
