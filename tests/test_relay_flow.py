"""Flow 6 (five cities) through the app's own handlers: Chalice's test client + moto in-process, the
events stream pumped by hand, scans uploaded through the documents endpoint and judged by the verifier.

Relays (`relay.collected` → `relay.requested` → accepted / rejected / originals / completed → `relay.status`)
for all twenty directed pairs of the five cities and for a sixth city added as data; the assisted
online handoff; the signed relay read; and every bad input of the issue: a malformed unit code or one
of the office's own city, a city with no registry, a resubmission after completion, answers from a
registry that does not own the unit or for an unknown relay, originals before acceptance, scans whose
bytes differ from the declared hash or size or that came through an expired link, and an office
reading another office's relay. No refusal ever lets a scan through: every one checks that nothing
was sent to a registry.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
import requests
from standardwebhooks import Webhook

from tests.support import envelope, lambda_context, new_secret, secret_of, sign_request

CITIES = {  # city code → (partner prefix, a unit code of that city)
    "110000": ("bj", "110105001001GB00001F00010001"),
    "310000": ("sh", "310115004003GB00012F00020015"),
    "440100": ("gz", "440106003001GB00021F00030102"),
    "440300": ("sz", "440305001002GB00001F00010001"),
    "330100": ("hz", "330106002005GB00008F00011203"),
}
TIANJIN = ("120000", "tj", "120101001001GB00001F00010001")  # the sixth city: data only
CHONGQING_UNIT = "500101001001GB00001F00010001"  # a city with no registry partner
PAIRS = list(itertools.permutations(CITIES, 2))
PDF = b"%PDF-1.7\n" + b"scanned page of the sale contract\n" * 30 + b"%%EOF\n"
PDF2 = b"%PDF-1.7\n" + b"corrected, readable scan of page 3\n" * 30 + b"%%EOF\n"
APPLICANTS = [  # valid ID numbers; names and numbers must never show in a relay read
    {"role": "obligee", "name": "周七", "id_type": "resident_id", "id_number": "310115199003011236",
     "phone": "13500135000", "share": "100%"},
    {"role": "obligor", "name": "赵六", "id_type": "resident_id", "id_number": "440106197811204523",
     "phone": "13700137000"},
]
NOW = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731


def prefix(city: str) -> str:
    return TIANJIN[1] if city == TIANJIN[0] else CITIES[city][0]


def unit_of(city: str) -> str:
    return TIANJIN[2] if city == TIANJIN[0] else CITIES[city][1]


def relay_partners(endpoint: str, extra_cities: tuple[tuple[str, str], ...] = ()) -> dict:
    def p(pid, kind, city):
        return {"id": pid, "kind": kind, "city": city, "secrets": [new_secret()], "mapping": "canonical",
                "endpoint": f"{endpoint}/{pid}"}

    cities = [(code, pre) for code, (pre, _unit) in CITIES.items()] + list(extra_cities)
    return {"hub": {"signing_secret": new_secret()},
            "partners": [p(f"{pre}-{kind}", kind.replace("office", "city_office"), code)
                         for code, pre in cities for kind in ("registry", "office")]}


@pytest.fixture
def partners(tmp_path, monkeypatch):
    """Overrides conftest's: a registry and a city office in each of the five cities."""
    from chalicelib.settings import reset_settings

    doc = relay_partners("http://127.0.0.1:9")
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("HUB_PARTNER_SOURCE", "file")
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    reset_settings()
    return doc


class Relays:
    """Partners posting signed events and uploading scans; the stream handler run by hand."""

    def __init__(self, hub, partners):
        self.hub = hub
        self.partners = partners
        self.seen: set[str] = set()

    # -- events
    def post(self, partner_id: str, event_type: str, data: dict, msg_id: str | None = None) -> tuple[int, dict]:
        body = envelope(event_type, data)
        response = self.hub.http.post(f"/v1/partners/{partner_id}/events", body=body.encode(),
                                      headers=sign_request(secret_of(self.partners, partner_id), body, msg_id=msg_id))
        return response.status_code, json.loads(response.body)

    def send(self, partner_id: str, event_type: str, data: dict) -> dict:
        status, answer = self.post(partner_id, event_type, data)
        assert status == 202, answer
        self.pump()
        return answer

    def refused(self, partner_id: str, event_type: str, data: dict, code: str, status: int = 422) -> dict:
        before = self.event_count()
        got, body = self.post(partner_id, event_type, data)
        assert (got, body["error"]["code"]) == (status, code), body
        assert self.event_count() == before  # nothing stored
        return body["error"]

    def event_count(self) -> int:
        from chalicelib.settings import get_settings

        return len(boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"])

    def pump(self, reverse: bool = False) -> None:
        import app
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]
        fresh = sorted((i for i in items if i["event_id"]["S"] not in self.seen), key=lambda i: i["event_id"]["S"],
                       reverse=reverse)
        for item in fresh:
            self.seen.add(item["event_id"]["S"])
            self.route(item)

    @staticmethod
    def route(item: dict) -> None:
        import app

        record = {"eventID": item["event_id"]["S"], "eventName": "INSERT", "eventVersion": "1.1",
                  "eventSource": "aws:dynamodb", "awsRegion": "cn-north-1",
                  "eventSourceARN": "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/x",
                  "dynamodb": {"Keys": {"dedup_key": item["dedup_key"]}, "NewImage": item,
                               "SequenceNumber": item["event_id"]["S"], "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}}
        result = app.route_accepted({"Records": [record]}, lambda_context("route_accepted"))
        assert result == {"batchItemFailures": []}

    def sent(self, event_type: str, partner_id: str | None = None, relay_id: str | None = None) -> list[dict]:
        """Bodies the hub scheduled for delivery, oldest first, as the partner would receive them."""
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        items.sort(key=lambda i: float(i["created_at"]["N"]))
        found = [json.loads(i["body"]["S"])["data"] for i in items
                 if i["type"]["S"] == event_type and i["body"]["S"]
                 and (partner_id is None or i["partner_id"]["S"] == partner_id)]
        key = "assist_id" if event_type.startswith("assist.") else "relay_id"
        return [d for d in found if relay_id is None or d.get(key) == relay_id]

    def delivery_count(self) -> int:
        from chalicelib.settings import get_settings

        return len(boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"])

    # -- documents
    def upload(self, partner_id: str, data: bytes = PDF, stored: bytes | None = None, issued_at: float | None = None,
               media_type: str = "application/pdf") -> dict:
        """Ask for a slot at the documents endpoint, PUT `stored` (default: the declared bytes), let the
        verifier judge it; return the reference an event carries."""
        from chalicelib import documents

        body = json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "media_type": media_type})
        headers = sign_request(secret_of(self.partners, partner_id), body,
                               timestamp=int(issued_at) if issued_at else None)
        if issued_at is None:
            response = self.hub.http.post(f"/v1/partners/{partner_id}/documents", body=body.encode(), headers=headers)
            status, slot = response.status_code, json.loads(response.body)
        else:  # a slot issued in the past (its link has expired by now)
            status, slot = documents.request_upload(partner_id, headers, body.encode(), now=issued_at)
        assert status == 201, slot
        if stored is not False:
            key = documents.object_key(partner_id, slot["document_id"])
            bucket = documents.document_settings().bucket
            boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data if stored is None else stored,
                                          ContentType=media_type)
            documents.verify_object(bucket, key)
        return {"document_id": slot["document_id"], "sha256": hashlib.sha256(data).hexdigest(),
                "media_type": media_type, "size": len(data)}

    # -- reads
    def read(self, partner_id: str, relay_id: str, nonce: str | None = None) -> tuple[int, dict]:
        from chalicelib.flows import relay

        nonce = nonce or f"read_{uuid.uuid4().hex}"
        stamp = int(time.time())
        signature = Webhook(secret_of(self.partners, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/relays/{relay_id}")
        return relay.read_relay(relay_id, {"hub-partner-id": partner_id, "webhook-id": nonce,
                                           "webhook-timestamp": str(stamp), "webhook-signature": signature})


@pytest.fixture
def relays(hub, partners):
    return Relays(hub, partners)


def collected(office_city: str, unit_code: str, relay_id: str, scans: list[dict], attempt: int = 1,
              **changes) -> dict:
    data = {
        "relay_id": relay_id, "attempt": attempt, "service": "transfer", "unit_code": unit_code,
        "office_city": office_city, "office_name": "不动产登记中心", "applicants": APPLICANTS,
        "evidence": [{"applicant_index": i, "purpose": purpose, "method": method, "result": "passed",
                      "checked_at": NOW(), "reference": f"{purpose[:2].upper()}-{relay_id}-{i}"}
                     for i in range(len(APPLICANTS))
                     for purpose, method in (("identity", "face_check"), ("intention", "recorded_confirmation"))],
        "documents": [{"kind": kind, "title": "扫描件", "document": scan}
                      for kind, scan in zip(itertools.cycle(["contract", "identity_document"]), scans)],
        "originals": {"courier": "EMS", "tracking_number": f"EMS{abs(hash(relay_id)) % 10**10:010d}", "sent_at": NOW()},
        "collected_at": NOW(),
    }
    data.update(changes)
    return data


def accepted(relay_id: str, case_id: str = "RC-2026-0001", attempt: int = 1) -> dict:
    return {"relay_id": relay_id, "attempt": attempt, "registry_case_id": case_id, "accepted_at": NOW()}


def rejected(relay_id: str, attempt: int = 1, resubmittable: bool = True) -> dict:
    return {"relay_id": relay_id, "attempt": attempt, "resubmittable": resubmittable, "rejected_at": NOW(),
            "reasons": [{"code": "scan_unreadable", "message": "合同扫描件第3页不清晰"}]}


def originals(relay_id: str, case_id: str | None = "RC-2026-0001") -> dict:
    data = {"relay_id": relay_id, "tracking_number": "1180123456789", "complete": True, "missing": [],
            "received_at": NOW()}
    if case_id:
        data["registry_case_id"] = case_id
    return data


def completed(relay_id: str, case_id: str = "RC-2026-0001") -> dict:
    return {"relay_id": relay_id, "registry_case_id": case_id, "completed_at": NOW(),
            "certificates": [{"kind": "ownership_certificate", "number": "(2026)不动产权第0567890号",
                              "holder_name": "周七"}],
            "return_shipment": {"courier": "EMS", "tracking_number": "1180987654321"}}


def start(relays: Relays, office_city: str, unit_city: str, relay_id: str, scans: int = 2) -> dict:
    """An office of `office_city` relays a unit of `unit_city`; returns what the registry received."""
    office, registry = f"{prefix(office_city)}-office", f"{prefix(unit_city)}-registry"
    refs = [relays.upload(office, PDF if n % 2 == 0 else PDF2) for n in range(scans)]
    relays.send(office, "relay.collected", collected(office_city, unit_of(unit_city), relay_id, refs))
    requested = relays.sent("relay.requested", registry, relay_id)
    assert len(requested) == 1, relays.sent("relay.status", office, relay_id)
    return requested[0]


def statuses(relays: Relays, office: str, relay_id: str) -> list[tuple[int, str]]:
    return [(s["attempt"], s["status"]) for s in relays.sent("relay.status", office, relay_id)]


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


# ---------------------------------------------------------------------------------------------------
# the twenty directed pairs


@pytest.mark.parametrize("office_city,unit_city", PAIRS, ids=[f"{prefix(a)}-to-{prefix(b)}" for a, b in PAIRS])
def test_every_directed_city_pair_relays_through_acceptance_originals_and_completion(relays, office_city, unit_city):
    office, registry = f"{prefix(office_city)}-office", f"{prefix(unit_city)}-registry"
    relay_id = f"RC-{prefix(office_city)}-{prefix(unit_city)}-1"
    request = start(relays, office_city, unit_city, relay_id)

    # Only the owning city's registry gets the case, with the office, scans by reference and hash, and
    # short-lived links that give exactly the verified bytes.
    assert [len(relays.sent("relay.requested", f"{p}-registry")) for p, _ in CITIES.values()] == [
        1 if city == unit_city else 0 for city in CITIES]
    assert request["office_partner_id"] == office and request["office_city"] == office_city
    assert request["unit_code"] == unit_of(unit_city) and request["applicants"] == APPLICANTS
    for scan, body in zip(request["documents"], (PDF, PDF2)):
        assert scan["document"]["sha256"] == hashlib.sha256(body).hexdigest()
        expires = datetime.fromisoformat(scan["url_expires_at"])
        assert timedelta(hours=1) < expires - datetime.now(timezone.utc) <= timedelta(hours=24)
        download = requests.get(scan["download_url"], timeout=10)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == scan["document"]["sha256"]
    assert statuses(relays, office, relay_id) == [(1, "forwarded")]

    relays.send(registry, "relay.accepted", accepted(relay_id))
    relays.send(registry, "relay.originals_received", originals(relay_id))
    relays.send(registry, "relay.completed", completed(relay_id))
    assert statuses(relays, office, relay_id) == [(1, "forwarded"), (1, "accepted"), (1, "originals_received"),
                                                  (1, "completed")]
    sent = relays.sent("relay.status", office, relay_id)
    assert all(s["registry_city"] == unit_city for s in sent)
    assert sent[1]["registry_case_id"] == "RC-2026-0001"
    assert sent[3]["certificates"][0]["number"] == "(2026)不动产权第0567890号"
    assert sent[3]["return_shipment"]["tracking_number"] == "1180987654321"

    for reader in (office, registry):
        status, body = relays.read(reader, relay_id)
        assert status == 200, body
        view = body["relay"]
        assert view["state"] == "completed" and view["registry_case_id"] == "RC-2026-0001"
        assert (view["office_city"], view["registry_city"]) == (office_city, unit_city)
        assert [a["answer"] for a in view["submissions"][0]["answers"]] == [
            "accepted", "originals_received", "completed"]
    others = [f"{p}-office" for c, (p, _) in CITIES.items() if c != office_city] + \
             [f"{p}-registry" for c, (p, _) in CITIES.items() if c != unit_city]
    for outsider in others:
        assert relays.read(outsider, relay_id)[0] == 404


def test_a_sixth_city_is_a_partner_record_away(relays, partners, tmp_path, monkeypatch):
    from chalicelib.settings import reset_settings

    tj_code, tj, tj_unit = TIANJIN
    bj_scan = relays.upload("bj-office")
    relays.refused("bj-office", "relay.collected", collected("110000", tj_unit, "RC-BJ-TJ-0", [bj_scan]),
                   "no_route_target")

    # Add Tianjin's registry and office to the partners file: nothing else changes.
    more = relay_partners("http://127.0.0.1:9", extra_cities=((tj_code, tj),))
    partners["partners"] += [p for p in more["partners"] if p["id"].startswith(f"{tj}-")]
    (tmp_path / "partners.json").write_text(json.dumps(partners))
    reset_settings()

    for office_city, unit_city in ((tj_code, "110000"), ("110000", tj_code), (tj_code, "440300")):
        relay_id = f"RC-{prefix(office_city)}-{prefix(unit_city)}-6"
        start(relays, office_city, unit_city, relay_id, scans=1)
        registry = f"{prefix(unit_city)}-registry"
        relays.send(registry, "relay.accepted", accepted(relay_id))
        relays.send(registry, "relay.completed", completed(relay_id))
        assert statuses(relays, f"{prefix(office_city)}-office", relay_id)[-1] == (1, "completed")


# ---------------------------------------------------------------------------------------------------
# rejection and resubmission


def test_a_rejected_relay_is_corrected_and_resubmitted_keeping_its_history(relays):
    relay_id = "RC-SZ-BJ-REJ"
    first = start(relays, "440300", "110000", relay_id)
    relays.send("bj-registry", "relay.rejected", rejected(relay_id))
    rejection = relays.sent("relay.status", "sz-office", relay_id)[-1]
    assert (rejection["status"], rejection["resubmittable"]) == ("rejected", True)
    assert rejection["reasons"][0]["code"] == "scan_unreadable"

    # Answers to the rejected attempt are refused; the office corrects the scan and resubmits.
    relays.refused("bj-registry", "relay.accepted", accepted(relay_id), "relay_rejected")
    corrected = relays.upload("sz-office", PDF2)
    data = collected("440300", unit_of("110000"), relay_id, [corrected], attempt=2)
    relays.send("sz-office", "relay.collected", data)
    requests_ = relays.sent("relay.requested", "bj-registry", relay_id)
    assert [r["attempt"] for r in requests_] == [1, 2]
    assert requests_[1]["documents"][0]["document"]["document_id"] == corrected["document_id"]
    assert requests_[1]["documents"][0]["download_url"] != first["documents"][0]["download_url"]

    relays.refused("bj-registry", "relay.accepted", accepted(relay_id, attempt=1), "attempt_mismatch")
    relays.send("bj-registry", "relay.accepted", accepted(relay_id, "BJ-RC-77", attempt=2))
    assert statuses(relays, "sz-office", relay_id) == [(1, "forwarded"), (1, "rejected"), (2, "forwarded"),
                                                       (2, "accepted")]

    status, body = relays.read("sz-office", relay_id)
    assert status == 200
    view = body["relay"]
    assert (view["state"], view["attempt"], view["registry_case_id"]) == ("accepted", 2, "BJ-RC-77")
    first_sub, second_sub = view["submissions"]
    assert [a["answer"] for a in first_sub["answers"]] == ["rejected"]
    assert first_sub["answers"][0]["reasons"][0]["code"] == "scan_unreadable"
    assert [a["answer"] for a in second_sub["answers"]] == ["accepted"]
    assert second_sub["documents"][0]["sha256"] == hashlib.sha256(PDF2).hexdigest()
    types = [t["type"] for t in view["timeline"]]
    assert types.count("relay.collected") == 2 and types.count("relay.requested") == 2
    assert {"relay.rejected", "relay.accepted", "relay.status"} <= set(types)
    # No personal data in the read: not the names, ID numbers or phones of the applicants.
    text = json.dumps(body, ensure_ascii=False)
    for applicant in APPLICANTS:
        for value in (applicant["name"], applicant["id_number"], applicant["phone"]):
            assert value not in text
    assert not _keys(body) & {"name", "id_number", "phone", "applicants_detail", "holder_name", "title"}


def test_resubmissions_only_in_turn(relays):
    relay_id = "RC-GZ-HZ-TURN"
    scan = relays.upload("gz-office")
    base = collected("440100", unit_of("330100"), relay_id, [scan])
    relays.refused("gz-office", "relay.collected", {**base, "attempt": 2}, "attempt_out_of_order")
    relays.send("gz-office", "relay.collected", base)

    # The same submission again under a new webhook-id is accepted and changes nothing.
    before = relays.delivery_count()
    relays.send("gz-office", "relay.collected", base)
    assert relays.delivery_count() == before
    relays.refused("gz-office", "relay.collected", {**base, "remarks": "changed"}, "attempt_already_submitted")
    relays.refused("gz-office", "relay.collected", {**base, "attempt": 2}, "relay_not_resubmittable")  # no answer yet
    relays.send("hz-registry", "relay.rejected", rejected(relay_id))
    relays.refused("gz-office", "relay.collected", {**base, "attempt": 3}, "attempt_out_of_order")
    relays.refused("gz-office", "relay.collected", {**base, "attempt": 2, "unit_code": "330102001001GB00001F00010001"},
                   "relay_unit_changed")
    relays.send("gz-office", "relay.collected", {**base, "attempt": 2})
    relays.send("hz-registry", "relay.rejected", rejected(relay_id, attempt=2, resubmittable=False))
    relays.refused("gz-office", "relay.collected", {**base, "attempt": 3}, "relay_not_resubmittable")
    assert [r["attempt"] for r in relays.sent("relay.requested", "hz-registry", relay_id)] == [1, 2]


def test_a_resubmission_after_completion_is_refused(relays):
    relay_id = "RC-SH-GZ-DONE"
    start(relays, "310000", "440100", relay_id, scans=1)
    relays.send("gz-registry", "relay.accepted", accepted(relay_id))
    relays.send("gz-registry", "relay.completed", completed(relay_id))
    scan = relays.upload("sh-office")
    error = relays.refused("sh-office", "relay.collected",
                           collected("310000", unit_of("440100"), relay_id, [scan], attempt=2), "relay_completed")
    assert error["details"][0]["field"] == "data.relay_id"
    for answer, data in (("relay.rejected", rejected(relay_id)), ("relay.accepted", accepted(relay_id, "OTHER")),
                         ("relay.originals_received", originals(relay_id)),
                         ("relay.completed", completed(relay_id, "RC-2026-0001") | {"certificates": []})):
        relays.refused("gz-registry", answer, data, "relay_completed")
    # The same completion again is a repeat: accepted, nothing sent twice.
    before = relays.delivery_count()
    relays.send("gz-registry", "relay.completed", completed(relay_id))
    assert relays.delivery_count() == before
    assert len(relays.sent("relay.requested", "gz-registry", relay_id)) == 1


# ---------------------------------------------------------------------------------------------------
# bad input at the door: a clear refusal, nothing stored, nothing sent


def test_a_malformed_unit_code_is_refused(relays):
    scan = relays.upload("sz-office")
    for bad in ("110105001001GB00001F0001000", "110105001001XX00001F00010001", "999999001001GB00001F00010001"):
        error = relays.refused("sz-office", "relay.collected", collected("440300", bad, "RC-BAD-UNIT", [scan]),
                               "invalid_data")
        assert [d["field"] for d in error["details"]] == ["data.unit_code"]
    assert relays.delivery_count() == 0


def test_a_relay_to_the_offices_own_city_is_refused_even_if_it_declares_another(relays):
    scan = relays.upload("sz-office")
    error = relays.refused("sz-office", "relay.collected",
                           collected("440300", unit_of("440300"), "RC-OWN", [scan]), "invalid_data")
    assert error["details"][0]["code"] == "relay_to_own_city"
    error = relays.refused("sz-office", "relay.collected",
                           collected("110000", unit_of("440300"), "RC-OWN", [scan]), "relay_to_own_city")
    assert error["details"][0]["field"] == "data.unit_code"
    relays.refused("sz-office", "relay.collected", collected("110000", unit_of("310000"), "RC-LIE", [scan]),
                   "office_city_mismatch")
    relays.refused("sz-office", "assist.requested", assist("440300", unit_of("440300"), "AS-OWN"), "invalid_data")
    relays.refused("sz-office", "assist.requested", assist("110000", unit_of("440300"), "AS-OWN"),
                   "relay_to_own_city")
    assert relays.delivery_count() == 0


def test_a_city_with_no_registry_partner_is_refused(relays):
    scan = relays.upload("sh-office")
    error = relays.refused("sh-office", "relay.collected", collected("310000", CHONGQING_UNIT, "RC-CQ", [scan]),
                           "no_route_target")
    assert error["details"] == [{"field": "data.unit_code", "code": "no_registry",
                                 "message": "no registry partner in the unit code's city"}]
    relays.refused("sh-office", "assist.requested", assist("310000", CHONGQING_UNIT, "AS-CQ"), "no_route_target")


@pytest.mark.parametrize("case", ["hash_mismatch", "size_mismatch", "upload_expired", "pending", "other_partner",
                                  "declared_hash_differs", "evidence_unverified"])
def test_a_scan_that_is_not_the_verified_upload_is_refused_and_never_forwarded(relays, monkeypatch, case):
    monkeypatch.setenv("HUB_DOCUMENT_UPLOAD_GRACE", "0")
    good = relays.upload("bj-office")
    if case == "hash_mismatch":  # same size, other bytes
        bad = relays.upload("bj-office", PDF, stored=PDF.replace(b"contract", b"cantract"))
    elif case == "size_mismatch":
        bad = relays.upload("bj-office", PDF, stored=PDF + b"more")
    elif case == "upload_expired":  # the link was issued an hour ago; the bytes arrive now
        bad = relays.upload("bj-office", PDF, issued_at=time.time() - 3600)
    elif case == "pending":  # never uploaded
        bad = relays.upload("bj-office", PDF, stored=False)
    elif case == "other_partner":  # the registry's upload, not the office's
        bad = relays.upload("sz-registry", PDF)
    elif case == "declared_hash_differs":
        bad = {**good, "sha256": hashlib.sha256(b"something else").hexdigest()}
    else:
        bad = good
    data = collected("110000", unit_of("440300"), f"RC-DOC-{case}", [good, bad])
    if case == "evidence_unverified":
        data["evidence"][1]["document"] = relays.upload("bj-office", PDF2, stored=False)
    error = relays.refused("bj-office", "relay.collected", data, "document_not_verified")
    detail = error["details"][0]
    expected = {"hash_mismatch": ("data.documents.1.document.document_id", "hash_mismatch"),
                "size_mismatch": ("data.documents.1.document.document_id", "size_mismatch"),
                "upload_expired": ("data.documents.1.document.document_id", "upload_expired"),
                "pending": ("data.documents.1.document.document_id", "pending"),
                "other_partner": ("data.documents.1.document.document_id", "not_found"),
                "declared_hash_differs": ("data.documents.1.document.sha256", "mismatch"),
                "evidence_unverified": ("data.evidence.1.document.document_id", "pending")}[case]
    assert (detail["field"], detail["code"]) == expected
    assert relays.sent("relay.requested") == [] and relays.delivery_count() == 0


def test_a_scan_replaced_after_the_door_is_refused_on_the_stream_never_forwarded(relays):
    """Verified when the relay was accepted; replaced (a second PUT) before the hub forwards it."""
    from chalicelib import documents

    relay_id = "RC-HZ-SH-SWAP"
    scan = relays.upload("hz-office")
    data = collected("330100", unit_of("310000"), relay_id, [scan])
    status, _ = relays.post("hz-office", "relay.collected", data)
    assert status == 202
    key = documents.object_key("hz-office", scan["document_id"])
    bucket = documents.document_settings().bucket
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=PDF.replace(b"contract", b"forgery!"),
                                  ContentType="application/pdf")
    assert documents.verify_object(bucket, key) == "rejected"
    relays.pump()
    assert relays.sent("relay.requested") == []
    refusal = relays.sent("relay.status", "hz-office", relay_id)
    assert [(s["status"], s["reasons"][0]["code"]) for s in refusal] == [("refused", "document_not_verified")]
    relays.refused("sh-registry", "relay.accepted", accepted(relay_id), "relay_not_forwarded")

    # After a refusal the office uploads again and resubmits; this time it goes through.
    fresh = relays.upload("hz-office")
    relays.send("hz-office", "relay.collected", {**data, "attempt": 2, "documents": [
        {"kind": "contract", "document": fresh}]})
    assert [r["attempt"] for r in relays.sent("relay.requested", "sh-registry", relay_id)] == [2]
    status, body = relays.read("hz-office", relay_id)
    assert [s["outcome"] for s in body["relay"]["submissions"]] == ["refused", "forwarded"]


def test_another_offices_relay_id_is_refused(relays):
    start(relays, "440300", "110000", "RC-SHARED", scans=1)
    scan = relays.upload("gz-office")
    relays.refused("gz-office", "relay.collected", collected("440100", unit_of("110000"), "RC-SHARED", [scan]),
                   "relay_id_in_use")


@pytest.mark.parametrize("answer", ["relay.accepted", "relay.rejected", "relay.originals_received",
                                    "relay.completed"])
def test_answers_from_a_registry_that_does_not_own_the_unit_or_for_an_unknown_relay_are_refused(relays, answer):
    relay_id = "RC-SZ-BJ-WHO"
    start(relays, "440300", "110000", relay_id, scans=1)
    data = {"relay.accepted": accepted, "relay.rejected": rejected, "relay.originals_received": originals,
            "relay.completed": completed}[answer]
    for stranger in ("sh-registry", "sz-registry"):  # another city's; the office's own city's
        error = relays.refused(stranger, answer, data(relay_id), "unknown_relay")
        assert error["details"][0]["field"] == "data.relay_id"
    unknown = relays.refused("bj-registry", answer, data("RC-NEVER-SENT"), "unknown_relay")
    assert unknown == relays.refused("sh-registry", answer, data(relay_id), "unknown_relay")  # nothing to probe
    assert statuses(relays, "sz-office", relay_id) == [(1, "forwarded")]


def test_originals_or_completion_before_acceptance_are_refused(relays):
    relay_id = "RC-BJ-GZ-EARLY"
    start(relays, "110000", "440100", relay_id, scans=1)
    relays.refused("gz-registry", "relay.originals_received", originals(relay_id), "relay_not_accepted")
    relays.refused("gz-registry", "relay.completed", completed(relay_id), "relay_not_accepted")
    relays.send("gz-registry", "relay.accepted", accepted(relay_id))
    relays.refused("gz-registry", "relay.originals_received", originals(relay_id, "NOT-THE-CASE"),
                   "registry_case_mismatch")
    relays.refused("gz-registry", "relay.accepted", accepted(relay_id, "OTHER-CASE"), "relay_already_accepted")
    relays.refused("gz-registry", "relay.completed", completed(relay_id) | {"certificates": [],
                                                                           "return_shipment": None},
                   "completion_result_missing")
    # Incomplete originals, then the rest: both reach the office.
    relays.send("gz-registry", "relay.originals_received", originals(relay_id) | {"complete": False,
                                                                                  "missing": ["委托书原件"]})
    relays.send("gz-registry", "relay.originals_received", originals(relay_id, None))
    relays.send("gz-registry", "relay.completed", completed(relay_id))
    sent = relays.sent("relay.status", "bj-office", relay_id)
    assert [s["status"] for s in sent] == ["forwarded", "accepted", "originals_received", "originals_received",
                                           "completed"]
    assert sent[2]["missing"] == ["委托书原件"] and sent[3]["missing"] == []
    assert sent[3]["registry_case_id"] == "RC-2026-0001"  # from the acceptance when the answer does not repeat it


def test_acceptance_and_originals_sent_back_to_back_are_both_taken_in_either_stream_order(relays):
    """The registry does not wait for the stream: the door counts an acceptance not yet applied, and the
    handlers record the facts whichever comes first."""
    relay_id = "RC-SH-SZ-FAST"
    start(relays, "310000", "440300", relay_id, scans=1)
    assert relays.post("sz-registry", "relay.accepted", accepted(relay_id))[0] == 202
    assert relays.post("sz-registry", "relay.originals_received", originals(relay_id))[0] == 202
    assert relays.post("sz-registry", "relay.completed", completed(relay_id))[0] == 202
    relays.pump(reverse=True)  # completed, originals, then the acceptance
    assert sorted(statuses(relays, "sh-office", relay_id)) == sorted(
        [(1, "forwarded"), (1, "completed"), (1, "originals_received"), (1, "accepted")])
    status, body = relays.read("sz-registry", relay_id)
    assert body["relay"]["state"] == "completed" and body["relay"]["registry_case_id"] == "RC-2026-0001"


def test_a_stream_record_handled_twice_and_a_resent_answer_change_nothing(relays):
    from chalicelib.settings import get_settings

    relay_id = "RC-GZ-SH-TWICE"
    start(relays, "440100", "310000", relay_id, scans=1)
    relays.send("sh-registry", "relay.accepted", accepted(relay_id))
    before = relays.delivery_count()
    for item in boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]:
        relays.route(item)  # the stream hands every record again
    relays.send("sh-registry", "relay.accepted", accepted(relay_id))  # resent under a new webhook-id, restamped
    assert relays.delivery_count() == before
    assert statuses(relays, "gz-office", relay_id) == [(1, "forwarded"), (1, "accepted")]


# ---------------------------------------------------------------------------------------------------
# the signed read


def test_only_the_two_parties_read_a_relay(relays):
    relay_id = "RC-SZ-BJ-READ"
    start(relays, "440300", "110000", relay_id, scans=1)
    assert relays.read("sz-office", relay_id)[0] == 200 and relays.read("bj-registry", relay_id)[0] == 200
    not_found = relays.read("gz-office", relay_id)
    assert not_found == (404, {"error": {"code": "relay_not_found",
                                         "message": "No relay with this id that you take part in.", "details": []}})
    assert relays.read("sz-registry", relay_id) == not_found  # the office's own city's registry: not a party
    assert relays.read("sz-office", "RC-NO-SUCH") == not_found
    assert relays.read("sz-office", "bad/../id") == not_found  # not a relay id at all
    # A replayed read (same nonce) and an unsigned one are not answered.
    assert relays.read("sz-office", relay_id, nonce="read_once")[0] == 200
    assert relays.read("sz-office", relay_id, nonce="read_once")[0] == 401
    from chalicelib.flows import relay

    assert relay.read_relay(relay_id, {"hub-partner-id": "sz-office"})[0] == 400
    assert relay.read_relay(relay_id, {})[0] == 400


# ---------------------------------------------------------------------------------------------------
# assisted online


def assist(office_city: str, unit_code: str, assist_id: str) -> dict:
    return {"assist_id": assist_id, "service": "change", "unit_code": unit_code, "office_city": office_city,
            "applicants": [APPLICANTS[0]], "channel": "video", "requested_at": NOW(),
            "evidence": [{"applicant_index": 0, "purpose": "identity", "method": "face_check", "result": "passed",
                          "checked_at": NOW(), "reference": f"FC-{assist_id}"}]}


def session(assist_id: str, url: str = "https://zwfw.example.gov.cn/bdc/assist/8f3a2c9d") -> dict:
    opened = datetime.now(timezone.utc)
    return {"assist_id": assist_id, "session_url": url, "registry_case_id": "WB-0456",
            "opened_at": opened.isoformat(), "session_expires_at": (opened + timedelta(hours=2)).isoformat()}


def test_assisted_online_hands_the_session_link_back_to_the_office(relays):
    relays.send("gz-office", "assist.requested", assist("440100", unit_of("330100"), "AS-GZ-HZ-1"))
    asked = relays.sent("assist.requested", "hz-registry", "AS-GZ-HZ-1")
    assert len(asked) == 1 and asked[0]["office_partner_id"] == "gz-office" and asked[0]["channel"] == "video"
    assert relays.sent("assist.requested", "gz-registry") == []

    relays.refused("sz-registry", "assist.session_opened", session("AS-GZ-HZ-1"), "unknown_assist")
    relays.refused("hz-registry", "assist.session_opened", session("AS-UNKNOWN"), "unknown_assist")
    relays.refused("sz-office", "assist.requested", assist("440300", unit_of("330100"), "AS-GZ-HZ-1"),
                   "assist_id_in_use")
    relays.refused("gz-office", "assist.requested", assist("440100", unit_of("110000"), "AS-GZ-HZ-1"),
                   "assist_already_requested")

    relays.send("hz-registry", "assist.session_opened", session("AS-GZ-HZ-1"))
    relays.send("hz-registry", "assist.session_opened", session("AS-GZ-HZ-1"))  # the same link again
    handed = relays.sent("assist.session_opened", "gz-office", "AS-GZ-HZ-1")
    assert len(handed) == 1
    assert handed[0]["registry_city"] == "330100"
    assert handed[0]["session_url"] == "https://zwfw.example.gov.cn/bdc/assist/8f3a2c9d"
    assert datetime.fromisoformat(handed[0]["session_expires_at"]) > datetime.now(timezone.utc)
    # A new link (the first one expired unused) is handed over too.
    relays.send("hz-registry", "assist.session_opened", session("AS-GZ-HZ-1", "https://zwfw.example.gov.cn/bdc/a/2"))
    assert len(relays.sent("assist.session_opened", "gz-office", "AS-GZ-HZ-1")) == 2


def test_relays_run_against_the_same_time_limits_and_alert_exactly_once(relays):
    """A relay the owning registry never accepts: case.overdue to that registry, once; an accepted one
    then runs its completion clock instead."""
    import time as _time

    from chalicelib import clocks, flows

    start(relays, "440300", "110000", "RC-SLOW-1")
    later = _time.time() + 30 * 86400
    flows.sweep(now=later)
    flows.sweep(now=later + 60)
    alerts = [a for a in relays.sent("case.overdue", "bj-registry") if a.get("stage") == "relay_acceptance"]
    assert len(alerts) == 1

    start(relays, "440300", "110000", "RC-QUICK-1")
    relays.send("bj-registry", "relay.accepted", accepted("RC-QUICK-1"))
    subject = clocks.subject_key("relay", "RC-QUICK-1")
    assert clocks.get(subject, "relay_acceptance", instance="1")["state"] != "running"
    assert clocks.get(subject, "relay_completion", instance="1")["state"] == "running"
