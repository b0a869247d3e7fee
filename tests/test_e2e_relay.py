"""Flow 6 (five cities) end to end in local mode, over HTTP.

One local-mode hub (`python -m localmode`, a subprocess) against a moto server for the module, with a
registry and a city office in each of the five cities acting as real partners: scans are uploaded
through the documents endpoint (a signed slot request, then an HTTP PUT of the bytes to the presigned
URL) and judged by local mode's upload driver; events are posted signed over HTTP; a real HTTP
receiver gets the hub's deliveries, each checked with the official standardwebhooks library and the
hub's secret; the registry fetches the scans through the links it was sent and checks their SHA-256;
the relay is read back with a signed `GET /v1/relays/{relay_id}`. Every wait is bounded.

Scenarios: a Shenzhen office relays a Beijing transfer through acceptance, originals and completion;
a rejection and a corrected resubmission; an assisted-online handoff.
"""
from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from standardwebhooks import Webhook

from tests.support import Receiver, secret_of, sign_request
from tests.test_e2e import LocalHub, http
from tests.test_relay_flow import (APPLICANTS, PDF, PDF2, accepted, assist, collected, completed, originals,
                                   rejected, relay_partners, unit_of)

pytestmark = pytest.mark.e2e

WAIT_S = 20  # bound of every wait for something that should arrive


class Inbox:
    """The partners' side of the receiver: every delivery verified with the hub's secret, kept once per
    webhook-id (delivery is at least once), looked up by relay or assistance id."""

    def __init__(self, receiver: Receiver, hub_secret: str):
        self.receiver = receiver
        self.webhook = Webhook(hub_secret)
        self.got: list[dict] = []
        self.ids: set[str] = set()
        self.lock = threading.Lock()

    def _pull(self, timeout: float) -> None:
        try:
            raw = self.receiver.take(timeout=max(0.01, timeout))
        except queue.Empty:
            return
        payload = self.webhook.verify(raw["body"], raw["headers"])  # raises if the hub's signature is wrong
        with self.lock:
            if raw["headers"]["webhook-id"] in self.ids:
                return
            self.ids.add(raw["headers"]["webhook-id"])
            self.got.append({"partner": raw["path"].strip("/"), "type": payload["type"], "data": payload["data"],
                             "webhook_id": raw["headers"]["webhook-id"]})

    def find(self, ref: str, event_type: str | None = None, partner: str | None = None) -> list[dict]:
        with self.lock:
            return [d for d in self.got if ref in (d["data"].get("relay_id"), d["data"].get("assist_id"))
                    and event_type in (None, d["type"]) and partner in (None, d["partner"])]

    def wait(self, ref: str, event_type: str, partner: str, count: int = 1, timeout: float = WAIT_S) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(ref, event_type, partner)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(d["partner"], d["type"], d["data"].get("status")) for d in self.find(ref)]
                raise AssertionError(f"{count} × {event_type} to {partner} for {ref} not received within {timeout} s;"
                                     f" everything for it: {seen}")
            self._pull(min(left, 0.5))

    def status(self, relay_id: str, office: str, count: int) -> dict:
        """The office's `count`-th relay.status for the relay."""
        return self.wait(relay_id, "relay.status", office, count=count)[count - 1]["data"]


class World:
    def __init__(self, hub: LocalHub, doc: dict, inbox: Inbox):
        self.hub, self.doc, self.inbox = hub, doc, inbox

    def post(self, partner_id: str, event_type: str, data: dict, answering: dict | None = None) -> dict:
        msg_id = f"ans_{answering['webhook_id']}_{event_type}" if answering else None
        status, answer = self.hub.post_event(partner_id, secret_of(self.doc, partner_id), event_type, data,
                                             msg_id=msg_id)
        assert status == 202, (event_type, status, answer)
        return answer

    def upload(self, partner_id: str, data: bytes) -> dict:
        """The claim check as a partner does it: a signed slot request, then a PUT of the bytes."""
        body = json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                           "media_type": "application/pdf"})
        status, slot = http("POST", f"{self.hub.url}/v1/partners/{partner_id}/documents", body.encode(),
                            sign_request(secret_of(self.doc, partner_id), body))
        assert status == 201, slot
        put = requests.put(slot["upload_url"], data=data, headers={"Content-Type": "application/pdf"}, timeout=30)
        assert put.status_code == 200
        return {"document_id": slot["document_id"], "sha256": hashlib.sha256(data).hexdigest(),
                "media_type": "application/pdf", "size": len(data)}

    def collect(self, office: str, data: dict) -> dict:
        """Post a relay.collected; while the upload driver has not judged a scan yet the hub answers 422
        `pending` (nothing stored), and the office tries again."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, answer = self.hub.post_event(office, secret_of(self.doc, office), "relay.collected", data)
            if status == 202:
                return answer
            pending = status == 422 and answer["error"]["code"] == "document_not_verified" and \
                {d["code"] for d in answer["error"]["details"]} == {"pending"}
            assert pending and time.monotonic() < deadline, (status, answer)
            time.sleep(0.2)

    def read(self, partner_id: str, relay_id: str) -> tuple[int, dict]:
        nonce = f"read_{uuid.uuid4().hex}"
        stamp = int(time.time())
        signature = Webhook(secret_of(self.doc, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/relays/{relay_id}")
        return http("GET", f"{self.hub.url}/v1/relays/{relay_id}", headers={
            "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(stamp),
            "webhook-signature": signature})

    def read_until(self, partner_id: str, relay_id: str, predicate, what: str) -> dict:
        deadline = time.monotonic() + WAIT_S
        while True:
            status, body = self.read(partner_id, relay_id)
            assert status == 200, (status, body)
            if predicate(body["relay"]):
                return body["relay"]
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {WAIT_S} s; the relay reads {json.dumps(body)[:2000]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners

    with hub_with_partners(tmp_path_factory.mktemp("e2e_relay"), relay_partners) as (hub, doc, receiver):
        yield World(hub, doc, Inbox(receiver, doc["hub"]["signing_secret"]))
        log = hub.log.read_text()
        for applicant in APPLICANTS:  # no ID numbers or phones in the hub's log
            assert applicant["id_number"] not in log and applicant["phone"] not in log


def _id(tag: str) -> str:
    return f"RC-{tag}-{uuid.uuid4().hex[:6]}"


def _fetch_scans(request: dict, expected: list[bytes]) -> None:
    """What the registry does with relay.requested: fetch each scan by its link and check its hash."""
    assert len(request["documents"]) == len(expected)
    for scan, body in zip(request["documents"], expected):
        assert datetime.fromisoformat(scan["url_expires_at"]) <= datetime.now(timezone.utc) + timedelta(hours=24)
        got = requests.get(scan["download_url"], timeout=30)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == scan["document"]["sha256"] and got.content == body


def test_a_shenzhen_office_relays_a_beijing_transfer_through_acceptance_originals_and_completion(world):
    inbox, relay_id = world.inbox, _id("SZ-BJ")
    scans = [world.upload("sz-office", PDF), world.upload("sz-office", PDF2)]
    world.collect("sz-office", collected("440300", unit_of("110000"), relay_id, scans))

    request = inbox.wait(relay_id, "relay.requested", "bj-registry")[0]
    assert request["data"]["office_partner_id"] == "sz-office" and request["data"]["attempt"] == 1
    assert request["data"]["unit_code"] == unit_of("110000") and request["data"]["applicants"] == APPLICANTS
    _fetch_scans(request["data"], [PDF, PDF2])
    assert inbox.status(relay_id, "sz-office", 1)["status"] == "forwarded"

    world.post("bj-registry", "relay.accepted", accepted(relay_id, "BJ-YD-2026-0088"), answering=request)
    got = inbox.status(relay_id, "sz-office", 2)
    assert (got["status"], got["registry_case_id"], got["registry_city"]) == ("accepted", "BJ-YD-2026-0088", "110000")
    world.post("bj-registry", "relay.originals_received", originals(relay_id, "BJ-YD-2026-0088"))
    assert inbox.status(relay_id, "sz-office", 3)["status"] == "originals_received"
    world.post("bj-registry", "relay.completed", completed(relay_id, "BJ-YD-2026-0088"))
    done = inbox.status(relay_id, "sz-office", 4)
    assert done["status"] == "completed" and done["certificates"][0]["number"] == "(2026)不动产权第0567890号"
    assert done["return_shipment"]["tracking_number"] == "1180987654321"

    # Both parties read the whole history; no one else learns the relay exists.
    for reader in ("sz-office", "bj-registry"):
        view = world.read_until(reader, relay_id, lambda r: {"relay.status"} <= {t["type"] for t in r["timeline"]}
                                and sum(t["type"] == "relay.status" for t in r["timeline"]) == 4, "four statuses")
        assert view["state"] == "completed" and view["registry_case_id"] == "BJ-YD-2026-0088"
        assert [a["answer"] for a in view["submissions"][0]["answers"]] == [
            "accepted", "originals_received", "completed"]
        assert {"relay.collected", "relay.requested", "relay.accepted", "relay.originals_received",
                "relay.completed"} <= {t["type"] for t in view["timeline"]}
        text = json.dumps(view, ensure_ascii=False)
        for applicant in APPLICANTS:
            assert applicant["name"] not in text and applicant["id_number"] not in text
    for outsider in ("gz-office", "bj-office", "sh-registry", "sz-registry"):
        status, body = world.read(outsider, relay_id)
        assert (status, body["error"]["code"]) == (404, "relay_not_found")
    # The registry of another city answering is refused; nothing reached any other partner.
    status, body = world.hub.post_event("sh-registry", secret_of(world.doc, "sh-registry"), "relay.accepted",
                                        accepted(relay_id))
    assert (status, body["error"]["code"]) == (422, "unknown_relay")
    assert sorted((d["partner"], d["type"]) for d in inbox.find(relay_id)) == sorted(
        [("bj-registry", "relay.requested")] + [("sz-office", "relay.status")] * 4)


def test_a_rejected_relay_is_corrected_and_resubmitted(world):
    inbox, relay_id = world.inbox, _id("GZ-SH")
    unreadable = world.upload("gz-office", PDF)
    first = collected("440100", unit_of("310000"), relay_id, [unreadable])
    world.collect("gz-office", first)
    request = inbox.wait(relay_id, "relay.requested", "sh-registry")[0]
    _fetch_scans(request["data"], [PDF])
    world.post("sh-registry", "relay.rejected", rejected(relay_id), answering=request)
    rejection = inbox.status(relay_id, "gz-office", 2)
    assert (rejection["status"], rejection["attempt"], rejection["resubmittable"]) == ("rejected", 1, True)
    assert rejection["reasons"][0]["code"] == "scan_unreadable"

    # The office scans page 3 again and resubmits the same relay as attempt 2.
    readable = world.upload("gz-office", PDF2)
    world.collect("gz-office", {**first, "attempt": 2, "documents": [{"kind": "contract", "document": readable}]})
    again = inbox.wait(relay_id, "relay.requested", "sh-registry", count=2)[1]
    assert again["data"]["attempt"] == 2
    _fetch_scans(again["data"], [PDF2])
    assert inbox.status(relay_id, "gz-office", 3)["attempt"] == 2
    world.post("sh-registry", "relay.accepted", accepted(relay_id, "SH-YD-0042", attempt=2), answering=again)
    got = inbox.status(relay_id, "gz-office", 4)
    assert (got["status"], got["attempt"], got["registry_case_id"]) == ("accepted", 2, "SH-YD-0042")

    view = world.read_until("gz-office", relay_id, lambda r: r["state"] == "accepted", "accepted")
    assert [(s["attempt"], s["outcome"], [a["answer"] for a in s["answers"]]) for s in view["submissions"]] == [
        (1, "forwarded", ["rejected"]), (2, "forwarded", ["accepted"])]
    assert view["submissions"][0]["documents"][0]["document_id"] == unreadable["document_id"]
    assert view["submissions"][1]["documents"][0]["document_id"] == readable["document_id"]


def test_an_assisted_online_handoff(world):
    inbox = world.inbox
    assist_id = f"AS-HZ-SZ-{uuid.uuid4().hex[:6]}"
    world.post("hz-office", "assist.requested", assist("330100", unit_of("440300"), assist_id))
    asked = inbox.wait(assist_id, "assist.requested", "sz-registry")[0]
    assert asked["data"]["office_partner_id"] == "hz-office" and asked["data"]["unit_code"] == unit_of("440300")

    opened = datetime.now(timezone.utc)
    link = f"https://zwfw.sz.example.gov.cn/bdc/assist/{uuid.uuid4().hex}"
    world.post("sz-registry", "assist.session_opened", {
        "assist_id": assist_id, "session_url": link, "registry_case_id": "SZ-WB-0456",
        "opened_at": opened.isoformat(), "session_expires_at": (opened + timedelta(hours=2)).isoformat(),
        "instructions": "请申请人扫码登录后按提示操作"}, answering=asked)
    handed = inbox.wait(assist_id, "assist.session_opened", "hz-office")[0]["data"]
    assert handed["session_url"] == link and handed["registry_city"] == "440300"
    assert datetime.fromisoformat(handed["session_expires_at"]) > datetime.now(timezone.utc)
    assert sorted((d["partner"], d["type"]) for d in inbox.find(assist_id)) == [
        ("hz-office", "assist.session_opened"), ("sz-registry", "assist.requested")]
