"""Flow 5, inquiries, through the app's own handlers (Chalice test client + moto): a court's or a bank's
inquiry goes to the registry of the unit's city (or, for a person, of the asker's city) with the legal
basis recorded; the answer goes back to the asker and to no one else. Bad input: a basis the asker's kind
may not hold, a city without a registry, an inquiry id of another partner, answers for an unknown inquiry,
from a registry that was not asked, a second different answer, records of another unit."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from tests.support import secret_of
from tests.test_seizure_flow import BJ_UNIT, BJ_UNIT_2, HZ_UNIT, Courts
from tests.test_transfer_flow import NOW

ORDER = b"%PDF-1.7\n" + "调查令 (test)\n".encode() * 10 + b"%%EOF\n"
RESULT = b"%PDF-1.7\n" + "查询结果证明 (test)\n".encode() * 10 + b"%%EOF\n"
SUBJECT = {"name": "赵六", "id_type": "resident_id", "id_number": "110105195001010039"}
OWNER = {"name": "李四", "id_type": "resident_id", "id_number": "110108198805123373", "share": "100%"}


@pytest.fixture
def asks(hub, partners):
    return Courts(hub, partners)


def inquiry(inquiry_id: str, basis: str = "investigation_order", unit_code: str | None = BJ_UNIT,
            document: dict | None = None, **extra) -> dict:
    data = {"inquiry_id": inquiry_id, "scope": ["ownership", "seizure"],
            "legal_basis": {"kind": basis, "number": "(2026)京0105执调字第17号", **({"document": document} if document else {})},
            "officer": {"name": "刘某", "badge_number": "1101050001"}, "requested_at": NOW(), **extra}
    if unit_code:
        data["unit_code"] = unit_code
    return data


def answer(inquiry_id: str, unit_code: str = BJ_UNIT, outcome: str = "found", document: dict | None = None) -> dict:
    data = {"inquiry_id": inquiry_id, "outcome": outcome, "answered_at": NOW()}
    if outcome == "found":
        data["records"] = [{"unit_code": unit_code, "property_use": "residential", "owners": [OWNER],
                            "restrictions": []}]
    if outcome == "refused":
        data["refusal_reason"] = "查询依据不足"
    if document:
        data["document"] = document
    return data


def read(asks: Courts, partner_id: str, inquiry_id: str) -> tuple[int, dict]:
    """The signed read of GET /v1/inquiries/{inquiry_id} (flows/inquiry.read_inquiry)."""
    from chalicelib.flows import inquiry as flow

    nonce, stamp = f"read_{uuid.uuid4().hex}", int(time.time())
    signature = Webhook(secret_of(asks.partners, partner_id)).sign(
        nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET /v1/inquiries/{inquiry_id}")
    return flow.read_inquiry(inquiry_id, {"hub-partner-id": partner_id, "webhook-id": nonce,
                                          "webhook-timestamp": str(stamp), "webhook-signature": signature})


def test_a_courts_inquiry_is_answered_to_the_court_and_no_one_else(asks):
    from chalicelib import clocks

    document = asks.upload("bj-court", ORDER)
    asks.send("bj-court", "inquiry.requested", inquiry("INQ-BJ-1", document=document))
    forwarded = asks.sent("inquiry.forwarded")
    assert [(f["inquiry_id"], f["requester_kind"], f["requester_partner_id"], f["requester_uscc"]) for f in forwarded] \
        == [("INQ-BJ-1", "court", "bj-court", "111101050000000017")]
    assert asks.sent("inquiry.forwarded", "bj-registry") == forwarded  # to the unit's registry only
    assert [link["document_id"] for link in forwarded[0]["document_links"]] == [document["document_id"]]
    assert clocks.get("inquiry:INQ-BJ-1", "inquiry_answer")["state"] == "running"

    result = asks.upload("bj-registry", RESULT)
    asks.send("bj-registry", "inquiry.answered", answer("INQ-BJ-1", document=result))
    answered = asks.sent("inquiry.answered")
    assert len(answered) == 1 and asks.sent("inquiry.answered", "bj-court") == answered
    assert answered[0]["city"] == "110000" and answered[0]["records"][0]["owners"] == [OWNER]
    assert [link["document_id"] for link in answered[0]["document_links"]] == [result["document_id"]]
    assert clocks.get("inquiry:INQ-BJ-1", "inquiry_answer")["state"] == "stopped"
    for other in ("sz-court", "sz-registry", "bj-icbc", "bj-tax", "sz-ccb"):
        assert asks.to(other) == []

    # The legal basis is on the record; the subject, the owners and the officer are not.
    status, body = read(asks, "bj-court", "INQ-BJ-1")
    assert status == 200, body
    view = body["inquiry"]
    assert view["legal_basis"] == {"kind": "investigation_order", "number": "(2026)京0105执调字第17号",
                                   "document_id": document["document_id"]}
    assert (view["state"], view["answer"]["outcome"], view["answer"]["records"]) == ("answered", "found", 1)
    assert {"inquiry.requested", "inquiry.forwarded", "inquiry.answered"} <= {t["type"] for t in view["timeline"]}
    text = json.dumps(body, ensure_ascii=False)
    assert OWNER["name"] not in text and OWNER["id_number"] not in text and "刘某" not in text
    assert read(asks, "bj-registry", "INQ-BJ-1")[0] == 200
    assert read(asks, "sz-court", "INQ-BJ-1") == read(asks, "sz-court", "INQ-NONE")  # the same 404
    assert read(asks, "bj-icbc", "INQ-BJ-1")[0] == 404


def test_a_banks_inquiry_about_a_person_goes_to_its_own_citys_registry(asks):
    asks.send("sz-ccb", "inquiry.requested", inquiry("INQ-SZ-1", basis="owner_consent", unit_code=None,
                                                     subject=SUBJECT))
    forwarded = asks.sent("inquiry.forwarded")
    assert [(f["inquiry_id"], f["requester_kind"], f["subject"]["id_number"]) for f in forwarded] == [
        ("INQ-SZ-1", "bank", SUBJECT["id_number"])]
    assert asks.sent("inquiry.forwarded", "sz-registry") == forwarded
    asks.send("sz-registry", "inquiry.answered", answer("INQ-SZ-1", unit_code="440305001002GB00001F00010001"))
    assert [a["city"] for a in asks.sent("inquiry.answered", "sz-ccb")] == ["440300"]
    status, body = read(asks, "sz-ccb", "INQ-SZ-1")
    assert body["inquiry"]["target"] == "subject" and SUBJECT["name"] not in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("sender,basis,code", [
    ("sz-ccb", "court_ruling", "legal_basis_not_allowed"), ("bj-icbc", "assistance_notice", "legal_basis_not_allowed"),
    ("bj-court", "owner_consent", "legal_basis_not_allowed"), ("bj-court", "loan_application", "legal_basis_not_allowed"),
])
def test_a_legal_basis_the_askers_kind_may_not_hold_is_refused(asks, sender, basis, code):
    asks.refused(sender, "inquiry.requested", inquiry("INQ-BASIS", basis=basis), code)
    assert asks.sent("inquiry.forwarded") == []


def test_both_kinds_may_ask_on_an_investigation_order_and_a_bank_on_a_loan_application(asks):
    asks.send("bj-icbc", "inquiry.requested", inquiry("INQ-BANK-IO", basis="investigation_order"))
    asks.send("bj-icbc", "inquiry.requested", inquiry("INQ-BANK-LA", basis="loan_application"))
    asks.send("bj-court", "inquiry.requested", inquiry("INQ-COURT-AN", basis="assistance_notice"))
    assert sorted(f["inquiry_id"] for f in asks.sent("inquiry.forwarded", "bj-registry")) == [
        "INQ-BANK-IO", "INQ-BANK-LA", "INQ-COURT-AN"]


def test_inquiries_that_cannot_be_forwarded_are_refused(asks):
    asks.refused("bj-court", "inquiry.requested", inquiry("INQ-HZ", unit_code=HZ_UNIT), "no_route_target")
    asks.refused("bj-court", "inquiry.requested", inquiry("INQ-NOTARGET", unit_code=None), "invalid_data")
    not_uploaded = {"document_id": "doc_NotUploaded1", "sha256": "0" * 64, "media_type": "application/pdf", "size": 10}
    asks.refused("bj-court", "inquiry.requested", inquiry("INQ-DOC", document=not_uploaded), "document_not_verified")
    asks.refused("bj-court", "inquiry.requested", inquiry("INQ-DOC", document=asks.upload("bj-icbc", ORDER)),
                 "document_not_verified")  # another partner's upload
    assert asks.sent("inquiry.forwarded") == []


def test_an_inquiry_id_is_the_askers_own(asks):
    data = inquiry("INQ-SAME")
    asks.send("bj-court", "inquiry.requested", data)
    asks.send("bj-court", "inquiry.requested", data)  # the same request under a new webhook-id: no-op
    assert len(asks.sent("inquiry.forwarded")) == 1
    asks.refused("bj-court", "inquiry.requested", {**data, "scope": ["all"]}, "inquiry_already_requested")
    asks.refused("bj-icbc", "inquiry.requested", data, "inquiry_id_in_use")


def test_answers_only_from_the_registry_asked_once(asks):
    asks.refused("bj-registry", "inquiry.answered", answer("INQ-UNKNOWN"), "unknown_inquiry")
    asks.send("bj-court", "inquiry.requested", inquiry("INQ-ANS"))
    unasked = asks.refused("sz-registry", "inquiry.answered", answer("INQ-ANS"), "unknown_inquiry")
    assert unasked == asks.refused("sz-registry", "inquiry.answered", answer("INQ-UNKNOWN"), "unknown_inquiry")
    asks.refused("bj-registry", "inquiry.answered", answer("INQ-ANS", unit_code=BJ_UNIT_2), "answer_unit_mismatch")
    asks.refused("bj-registry", "inquiry.answered", answer("INQ-ANS", document={
        "document_id": "doc_NotUploaded1", "sha256": "0" * 64, "media_type": "application/pdf", "size": 10}),
        "document_not_verified")
    first = answer("INQ-ANS", outcome="not_found")
    asks.send("bj-registry", "inquiry.answered", first)
    asks.send("bj-registry", "inquiry.answered", first)  # repeated: accepted, nothing sent again
    assert [a["outcome"] for a in asks.sent("inquiry.answered", "bj-court")] == ["not_found"]
    asks.refused("bj-registry", "inquiry.answered", answer("INQ-ANS"), "inquiry_already_answered")
    assert asks.to("sz-registry") == [] and asks.to("bj-icbc") == []


def test_a_stream_record_handled_twice_sends_nothing_new(asks):
    import boto3

    from chalicelib.settings import get_settings

    asks.send("bj-court", "inquiry.requested", inquiry("INQ-TWICE"))
    asks.send("bj-registry", "inquiry.answered", answer("INQ-TWICE"))
    before = asks.delivery_count()
    for item in boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]:
        asks.route(item)
    assert asks.delivery_count() == before


def test_an_unanswered_inquiry_is_overdue_to_its_registry_once(asks):
    from chalicelib import flows

    asks.send("bj-court", "inquiry.requested", inquiry("INQ-LATE"))
    far = time.time() + 30 * 86400
    assert flows.sweep(far)["overdue_alerted"] >= 1
    flows.sweep(far)
    overdue = [d for d in asks.sent("case.overdue", "bj-registry") if d["subject"] == "inquiry"]
    assert [(d["subject_id"], d["stage"]) for d in overdue] == [("INQ-LATE", "inquiry_answer")]
