"""Flow 4 (notaries, 不动产登记+公证) through the app's own handlers: Chalice's test client + moto in-process,
the events stream pumped by hand, the certificate and scans uploaded through the documents endpoint and
judged by the verifier. Partners of tests/support.py: sz-notary (its uscc on record), sz-registry.

A notarized inheritance is filed with the registry of the unit's city (links to the verified scans) and
the booking reaches the notary; a gift rejected as resubmittable is corrected and filed again; every
bad input is refused at the door with nothing stored and nothing sent to a registry: a certificate that
is missing, not the notary's, not yet uploaded, or whose hash or size does not match; another notary
office; a city without a registry; registry answers for applications not filed with them, for another
unit, or contradicting the recorded outcome. A document replaced after the door is never filed.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import boto3
import pytest
import requests

from chalicelib.models.examples import HZ_UNIT, SZ_UNIT
from tests.test_relay_flow import Relays
from tests.test_transfer_flow import Flow

NOTARY_USCC = "124403004000000014"  # sz-notary's, in tests/support.py
HEIR = {"role": "obligee", "name": "吴八测试", "id_type": "resident_id", "id_number": "330106199208080611",
        "phone": "13300133000", "share": "100%"}
DECEDENT = {"role": "obligor", "name": "吴某测试", "id_type": "resident_id", "id_number": "11010519500101999X"}
CERTIFICATE = b"%PDF-1.7\n" + "继承公证书 (2026)粤深证民字第0001号\n".encode() * 20 + b"%%EOF\n"
KINSHIP = b"%PDF-1.7\n" + b"kinship certificate page\n" * 25 + b"%%EOF\n"
NOW = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731


def notarization(notarization_id: str, certificate: dict, scans: list[dict] = (), matter: str = "inheritance",
                 unit_code: str = SZ_UNIT, **changes) -> dict:
    data = {
        "notarization_id": notarization_id, "certificate_number": "(2026)粤深证民字第0001号", "matter": matter,
        "notary_office": {"name": "广东省深圳市深圳公证处", "uscc": NOTARY_USCC}, "notary_name": "陈公证员",
        "unit_code": unit_code, "property_use": "residential", "floor_area_m2": "76.30", "parties": [HEIR, DECEDENT],
        "certificate": certificate,
        "documents": [{"kind": "other", "title": "亲属关系证明", "document": scan} for scan in scans],
        "notarized_at": NOW(),
    }
    data.update(changes)
    return data


def booked(request: dict, registry_case_id: str = "SZ2026-JC-0001") -> dict:
    return {"case_id": registry_case_id, "request_id": request["request_id"], "unit_code": request["unit_code"],
            "service": "transfer", "registrations": ["transfer"],
            "certificates": [{"kind": "ownership_certificate", "number": "粤(2026)深圳市不动产权第0200001号",
                              "holder_name": HEIR["name"], "e_certificate_id": "ECERT-440300-2026-0200001"}],
            "obligees": [HEIR], "booked_at": NOW()}


def rejected(request: dict, resubmittable: bool = True) -> dict:
    return {"request_id": request["request_id"], "unit_code": request["unit_code"],
            "reasons": [{"code": "missing_material", "message": "缺少亲属关系证明"}], "resubmittable": resubmittable,
            "rejected_at": NOW()}


class Notaries(Relays):
    def read_case(self, partner_id: str, case_id: str) -> tuple[int, dict]:
        return Flow.read(self, partner_id, case_id)

    def filed(self, registry: str = "sz-registry") -> list[dict]:
        return self.sent("application.requested", registry)

    def results(self) -> list[dict]:
        return self.sent("registration.result", "sz-notary")


@pytest.fixture
def notaries(hub, partners):
    return Notaries(hub, partners)


def _case_id(notarization_id: str) -> str:
    from chalicelib.flows.notary import case_id_for

    return case_id_for("sz-notary", notarization_id)


def test_a_notarized_inheritance_is_filed_booked_and_reported_to_the_notary(notaries):
    from chalicelib import clocks

    certificate, kinship = notaries.upload("sz-notary", CERTIFICATE), notaries.upload("sz-notary", KINSHIP)
    data = notarization("NZ-SZ-2026-0001", certificate, [kinship])
    answer = notaries.send("sz-notary", "notarization.completed", data)
    case_id = _case_id("NZ-SZ-2026-0001")
    assert case_id == "NZ_sz-notary_NZ-SZ-2026-0001"

    (request,) = notaries.filed()
    assert request["request_id"] == f"{case_id}-1" and request["source_kind"] == "notary"
    assert request["source_reference"] == "NZ-SZ-2026-0001" and request["unit_code"] == SZ_UNIT
    assert request["service"] == "transfer" and request["registrations"] == ["transfer"]
    assert request["parties"] == [HEIR, DECEDENT]  # heirs as obligees, the decedent as obligor
    assert request["notarization"] == {"certificate_number": "(2026)粤深证民字第0001号", "matter": "inheritance",
                                       "document": certificate}
    assert [d["kind"] for d in request["documents"]] == ["notarial_certificate", "other"]
    for scan, body in zip(request["documents"], (CERTIFICATE, KINSHIP)):
        download = requests.get(scan["download_url"], timeout=10)
        assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == scan["document"]["sha256"]
        assert download.content == body
    assert notaries.results() == []
    assert notaries.sent("tax.assessment_requested") == []  # a notary's filing is not a one-window transfer

    # The same notarization again (another webhook-id) and the same stream record again file nothing new.
    notaries.send("sz-notary", "notarization.completed", data)
    notaries.seen.clear()
    notaries.pump()
    assert len(notaries.filed()) == 1

    notaries.send("sz-registry", "registration.booked", booked(request))
    (result,) = notaries.results()
    assert result["outcome"] == "booked" and result["reference"] == "NZ-SZ-2026-0001"
    assert result["case_id"] == case_id and result["unit_code"] == SZ_UNIT
    assert result["certificates"][0]["number"] == "粤(2026)深圳市不动产权第0200001号"
    # The booking of a notary's application is not a transfer case's: no tax loop, no utilities.
    assert notaries.sent("tax.booking_shared") == [] and notaries.sent("utility.transfer_requested") == []
    assert clocks.get(clocks.case_subject(case_id, SZ_UNIT), "registration", instance="1")["state"] == "stopped"

    for reader in ("sz-notary", "sz-registry"):
        status, body = notaries.read_case(reader, case_id)
        assert status == 200, body
        (case,) = body["cases"]
        assert case["flow"] == "notary" and case["stage"] == "booked" and case["matter"] == "inheritance"
        assert case["filings"][0]["registry_case_id"] == "SZ2026-JC-0001"
        assert case["filings"][0]["certificate_numbers"] == ["粤(2026)深圳市不动产权第0200001号"]
        assert {"notarization.completed", "application.requested", "registration.booked",
                "registration.result"} <= {t["type"] for t in case["timeline"]}
        assert answer["event_id"] in {t["ref"] for t in case["timeline"]}
        text = json.dumps(body, ensure_ascii=False)
        for person in (HEIR, DECEDENT):
            for value in (person["name"], person["id_number"], *([person["phone"]] if "phone" in person else [])):
                assert value not in text
    assert notaries.read_case("sz-water", case_id)[0] == 404


def test_a_gift_rejected_as_resubmittable_is_corrected_and_filed_again(notaries):
    certificate = notaries.upload("sz-notary", CERTIFICATE)
    first = notarization("NZ-SZ-GIFT-1", certificate, matter="gift")
    notaries.send("sz-notary", "notarization.completed", first)
    (request,) = notaries.filed()
    notaries.send("sz-registry", "application.rejected", rejected(request))
    (result,) = notaries.results()
    assert result["outcome"] == "rejected" and result["reasons"][0]["code"] == "missing_material"

    notaries.send("sz-notary", "notarization.completed", first)  # the same content again: nothing new
    assert len(notaries.filed()) == 1
    kinship = notaries.upload("sz-notary", KINSHIP)
    notaries.send("sz-notary", "notarization.completed", {**first, "documents": [
        {"kind": "other", "title": "亲属关系证明", "document": kinship}]})
    second = notaries.filed()[1]
    assert second["request_id"] == f"{_case_id('NZ-SZ-GIFT-1')}-2" and len(second["documents"]) == 2
    notaries.refused("sz-notary", "notarization.completed", {**first, "notary_name": "另一位"},
                     "notarization_in_progress")

    notaries.send("sz-registry", "application.rejected", rejected(second, resubmittable=False))
    notaries.refused("sz-notary", "notarization.completed", {**first, "notary_name": "另一位"}, "notarization_rejected")
    status, body = notaries.read_case("sz-notary", _case_id("NZ-SZ-GIFT-1"))
    assert [(f["attempt"], f["outcome"], f["resubmittable"]) for f in body["cases"][0]["filings"]] == [
        (1, "rejected", True), (2, "rejected", False)]
    assert len(notaries.results()) == 2


@pytest.mark.parametrize("case", ["missing", "declared_hash_differs", "declared_size_differs", "bytes_differ",
                                  "pending", "another_partners_upload", "scan_unverified", "other_notary_office",
                                  "no_registry_in_city", "not_a_notary"])
def test_bad_notarizations_are_refused_at_the_door_and_nothing_reaches_a_registry(notaries, monkeypatch, case):
    monkeypatch.setenv("HUB_DOCUMENT_UPLOAD_GRACE", "0")
    good = notaries.upload("sz-notary", CERTIFICATE)
    sender, status, code, detail = "sz-notary", 422, "document_not_verified", None
    certificate, scans, changes = good, [], {}
    if case == "missing":
        certificate = {**good, "document_id": "doc_" + "a" * 32}
        detail = ("data.certificate.document_id", "not_found")
    elif case == "declared_hash_differs":
        certificate = {**good, "sha256": hashlib.sha256(b"another certificate").hexdigest()}
        detail = ("data.certificate.sha256", "mismatch")
    elif case == "declared_size_differs":
        certificate = {**good, "size": good["size"] + 1}
        detail = ("data.certificate.size", "mismatch")
    elif case == "bytes_differ":  # the bytes that arrived are not the ones declared
        certificate = notaries.upload("sz-notary", CERTIFICATE, stored=CERTIFICATE.replace(b"0001", b"0009"))
        detail = ("data.certificate.document_id", "hash_mismatch")
    elif case == "pending":
        certificate = notaries.upload("sz-notary", CERTIFICATE, stored=False)
        detail = ("data.certificate.document_id", "pending")
    elif case == "another_partners_upload":
        certificate = notaries.upload("sz-registry", CERTIFICATE)
        detail = ("data.certificate.document_id", "not_found")
    elif case == "scan_unverified":
        scans = [notaries.upload("sz-notary", KINSHIP, stored=False)]
        detail = ("data.documents.0.document.document_id", "pending")
    elif case == "other_notary_office":
        changes = {"notary_office": {"name": "另一公证处", "uscc": "11440300000000001R"}}
        code = "notary_office_mismatch"
    elif case == "no_registry_in_city":
        changes = {"unit_code": HZ_UNIT}
        code = "no_route_target"
    else:
        sender, status, code = "sz-ccb", 403, "event_type_not_allowed"
    error = notaries.refused(sender, "notarization.completed",
                             notarization(f"NZ-BAD-{case}", certificate, scans, **changes), code, status=status)
    if detail:
        assert (error["details"][0]["field"], error["details"][0]["code"]) == detail
    assert notaries.filed() == [] and notaries.delivery_count() == 0
    assert notaries.read_case("sz-notary", _case_id(f"NZ-BAD-{case}"))[0] == 404


def test_registry_answers_that_do_not_fit_the_filing_are_refused(notaries):
    certificate = notaries.upload("sz-notary", CERTIFICATE)
    notaries.send("sz-notary", "notarization.completed", notarization("NZ-SZ-ANS-1", certificate))
    (request,) = notaries.filed()
    notaries.refused("bj-registry", "registration.booked", booked(request), "unknown_request")  # not filed with it
    notaries.refused("sz-registry", "registration.booked", {**booked(request), "unit_code": SZ_UNIT[:-1] + "2"},
                     "unknown_request")
    unverified = notaries.upload("sz-registry", CERTIFICATE, stored=False)
    with_ecert = booked(request)
    with_ecert["certificates"][0]["e_certificate"] = unverified
    error = notaries.refused("sz-registry", "registration.booked", with_ecert, "document_not_verified")
    assert error["details"][0]["field"] == "data.certificates.0.e_certificate.document_id"
    notaries.send("sz-registry", "registration.booked", booked(request))
    notaries.send("sz-registry", "registration.booked", booked(request))  # a resend: accepted, changes nothing
    notaries.refused("sz-registry", "application.rejected", rejected(request), "application_already_decided")
    assert [r["outcome"] for r in notaries.results()] == ["booked"]
    notaries.refused("sz-notary", "notarization.completed", notarization("NZ-SZ-ANS-1", certificate, notary_name="X"),
                     "notarization_booked")
    notaries.refused("sz-notary", "notarization.completed",
                     notarization("NZ-SZ-ANS-1", certificate, unit_code=SZ_UNIT[:-1] + "2"),
                     "notarization_unit_changed")


def test_a_certificate_replaced_after_the_door_is_never_filed_and_the_notary_is_told(notaries):
    from chalicelib import documents

    certificate = notaries.upload("sz-notary", CERTIFICATE)
    data = notarization("NZ-SZ-SWAP-1", certificate)
    status, _ = notaries.post("sz-notary", "notarization.completed", data)
    assert status == 202
    key = documents.object_key("sz-notary", certificate["document_id"])
    bucket = documents.document_settings().bucket
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=CERTIFICATE.replace(b"0001", b"6666"),
                                  ContentType="application/pdf")
    assert documents.verify_object(bucket, key) == "rejected"
    notaries.pump()
    assert notaries.filed() == []
    (result,) = notaries.results()
    assert result["outcome"] == "rejected" and result["reasons"][0]["code"] == "document_not_verified"

    fresh = notaries.upload("sz-notary", CERTIFICATE)
    notaries.send("sz-notary", "notarization.completed", {**data, "certificate": fresh})
    (request,) = notaries.filed()
    assert request["request_id"].endswith("-2")
    status, body = notaries.read_case("sz-notary", _case_id("NZ-SZ-SWAP-1"))
    assert [f["outcome"] for f in body["cases"][0]["filings"]] == ["refused", None]


def test_long_or_dotted_notarization_ids_make_valid_distinct_case_and_request_ids():
    from chalicelib.flows.notary import case_id_for, request_id_for
    from chalicelib.models.common import CaseId, Ref
    from pydantic import TypeAdapter

    ids = {case_id_for("sz-notary", n) for n in ("A.1", "A:1", "A_1", "A-1", "Z" * 64, "Z" * 63 + "Y")}
    assert len(ids) == 6
    for case_id in ids:
        TypeAdapter(CaseId).validate_python(case_id)
        TypeAdapter(Ref).validate_python(request_id_for(case_id, 12))
    assert case_id_for("sz-notary", "A_1") != case_id_for("sz-notary-a", "1")


def test_a_linked_scan_carries_its_link_and_expiry_together():
    from chalicelib.errors import HubError
    from chalicelib.models import EVENT_SPECS, validate_data

    example = json.loads(json.dumps(EVENT_SPECS["application.requested", "outbound"].example))
    validate_data("application.requested", example, direction="outbound")
    example["documents"][0].pop("url_expires_at")
    with pytest.raises(HubError) as error:
        validate_data("application.requested", example, direction="outbound")
    assert [(d["field"], d["code"]) for d in error.value.details] == [
        ("data.documents.0.url_expires_at", "link_incomplete")]
