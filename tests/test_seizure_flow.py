"""Flow 5, courts, through the app's own handlers (Chalice test client + moto): seizure orders to the
registry that owns the unit, receipts back to the ordering court only, the restriction index that flags
open applications and holds a transfer's case.ready_to_book while a seizure binds, releases, renewals,
expiry, the waiting list (轮候) of a second court, and the bad input of the issue: a release without a
seizure, another court's release, a reused order number, a court that is not the sender, a unit without
a registry, papers that are not the court's verified uploads, a registry's record of an unknown seizure
or of another city's unit, stream records handled twice."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import boto3
import pytest

from tests.test_relay_flow import Relays, _keys
from tests.test_transfer_flow import NOW, Flow, application, assessment, bill_for, clearance, pay

BJ_UNIT = "110105001001GB00001F00010001"
BJ_UNIT_2 = "110105001001GB00002F00010001"
HZ_UNIT = "330106002005GB00008F00011203"  # Hangzhou: no registry partner
BJ_COURT_USCC = "111101050000000017"
RULING = b"%PDF-1.7\n" + "执行裁定书 (test)\n".encode() * 20 + b"%%EOF\n"
NOTICE = b"%PDF-1.7\n" + "协助执行通知书 (test)\n".encode() * 10 + b"%%EOF\n"
SUBJECT = {"name": "王五", "id_type": "resident_id", "id_number": "11010519491231002X"}
OFFICERS = [{"name": "刘某", "badge_number": "1101050001", "phone": "010-65000001"}]


class Courts(Relays):
    """Partners posting signed events, uploading papers and reading cases; the stream run by hand."""

    def sent(self, event_type: str, partner_id: str | None = None, **match) -> list[dict]:  # type: ignore[override]
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        items.sort(key=lambda i: float(i["created_at"]["N"]))
        found = [json.loads(i["body"]["S"])["data"] for i in items if i["type"]["S"] == event_type
                 and i["body"]["S"] and (partner_id is None or i["partner_id"]["S"] == partner_id)]
        return [d for d in found if all(d.get(k) == v for k, v in match.items())]

    def to(self, partner_id: str) -> list[tuple[str, dict]]:
        """Every delivery scheduled for a partner: (type, data), oldest first."""
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        items.sort(key=lambda i: float(i["created_at"]["N"]))
        return [(i["type"]["S"], json.loads(i["body"]["S"])["data"]) for i in items
                if i["partner_id"]["S"] == partner_id and i["body"]["S"]]

    read_case = Flow.read  # the signed GET /v1/cases/{case_id}

    def papers(self, court: str) -> dict:
        return {"legal_document": self.upload(court, RULING), "assistance_notice": self.upload(court, NOTICE)}


@pytest.fixture
def courts(hub, partners):
    return Courts(hub, partners)


def seize(order_number: str, unit_code: str = BJ_UNIT, papers: dict | None = None, kind: str = "seize",
          valid_until: str = "2028-09-02", court_uscc: str = BJ_COURT_USCC) -> dict:
    return {"order_number": order_number, "action": "seize", "seizure_kind": kind,
            "court": {"name": "北京市朝阳区人民法院", "uscc": court_uscc}, "unit_code": unit_code, "subject": SUBJECT,
            **(papers or {}), "valid_from": "2025-09-03", "valid_until": valid_until, "amount_fen": 100_000_000,
            "officers": OFFICERS, "ordered_at": NOW()}


def release(order_number: str, original: str, unit_code: str = BJ_UNIT, papers: dict | None = None) -> dict:
    data = seize(order_number, unit_code, papers)
    for key in ("seizure_kind", "valid_from", "valid_until", "amount_fen"):
        data.pop(key)
    return {**data, "action": "release", "original_order_number": original}


def renew(order_number: str, original: str, valid_until: str, unit_code: str = BJ_UNIT,
          papers: dict | None = None) -> dict:
    data = seize(order_number, unit_code, papers, valid_until=valid_until)
    data.pop("seizure_kind")
    return {**data, "action": "renew", "original_order_number": original, "valid_from": "2026-01-01"}


def recorded(order_number: str | None, restriction_id: str, unit_code: str = BJ_UNIT, action: str = "recorded",
             kind: str | None = "seize", rank: int | None = 1, valid_until: str | None = "2028-09-02") -> dict:
    data = {"unit_code": unit_code, "restriction_type": "seizure", "action": action, "restriction_id": restriction_id,
            "seizure_order_number": order_number, "seizure_kind": kind, "rank": rank,
            "holder_name": "北京市朝阳区人民法院", "valid_until": valid_until, "recorded_at": NOW()}
    return {k: v for k, v in data.items() if v is not None}


def seizure_case_id(order_number: str, unit_code: str = BJ_UNIT) -> str:
    from chalicelib import restrictions

    return restrictions.seizure_id(order_number, unit_code)


def seized(courts: Courts, order_number: str, restriction_id: str, unit_code: str = BJ_UNIT,
           court: str = "bj-court") -> None:
    """A court's seize order, forwarded and recorded by the registry as binding."""
    courts.send(court, "seizure.ordered", seize(order_number, unit_code, courts.papers(court)))
    courts.send("bj-registry", "restriction.recorded", recorded(order_number, restriction_id, unit_code))


def transfer_to_cleared(courts: Courts, case_id: str, unit_code: str = BJ_UNIT) -> None:
    """A one-window transfer on the unit, paid in full and cleared (flows/transfer.py), as its partners answer."""
    def on_unit(data: dict) -> dict:
        return {**data, "unit_code": unit_code}

    courts.send("bj-registry", "application.submitted", on_unit(application(case_id, "obligee_pays_all")))
    for request in courts.sent("nontax.bill_requested", "bj-fiscal", case_id=case_id):
        courts.send("bj-fiscal", "nontax.bill_issued", bill_for(request))
    courts.send("bj-tax", "tax.assessed", on_unit(assessment(case_id)))
    for order in courts.sent("payment.order_requested", "bj-pay", case_id=case_id):
        courts.send("bj-pay", "payment.succeeded", pay(order))
    courts.send("bj-tax", "tax.cleared", on_unit(clearance(case_id)))


# --------------------------------------------------------------------------------------------------
# the round trip


def test_a_seizure_goes_to_the_owning_registry_and_its_receipts_to_the_court_only(courts):
    order = "(2026)京0105执保101号"
    papers = courts.papers("bj-court")
    courts.send("bj-court", "seizure.ordered", seize(order, papers=papers))
    sid = seizure_case_id(order)

    forwarded = courts.sent("seizure.forwarded", "bj-registry")
    assert len(forwarded) == 1 and forwarded[0]["order_number"] == order
    assert forwarded[0]["court_partner_id"] == "bj-court" and forwarded[0]["waiting_list_expected"] is False
    assert forwarded[0]["subject"] == SUBJECT  # the registry needs whose right is seized
    assert [link["document_id"] for link in forwarded[0]["document_links"]] == [
        papers["legal_document"]["document_id"], papers["assistance_notice"]["document_id"]]
    assert all(link["download_url"].startswith("http") for link in forwarded[0]["document_links"])
    receipts = courts.sent("seizure.receipt", "bj-court")
    assert [(r["status"], r["action"], r["case_id"]) for r in receipts] == [("forwarded", "seize", sid)]

    courts.send("bj-registry", "restriction.recorded", recorded(order, "CF-110105-2026-0101", rank=1))
    receipts = courts.sent("seizure.receipt", "bj-court")
    assert [(r["status"], r.get("restriction_id"), r.get("rank")) for r in receipts] == [
        ("forwarded", None, None), ("recorded", "CF-110105-2026-0101", 1)]
    # Nothing reached anyone else: no other court, no other city's registry, no tax bureau.
    for other in ("sz-court", "sz-registry", "gz-registry", "bj-tax", "sz-ccb"):
        assert courts.to(other) == []

    # The court reads its seizure: recorded, binding, its orders and timeline; no person's data.
    status, body = courts.read_case("bj-court", sid)
    assert status == 200, body
    case = body["cases"][0]
    assert (case["flow"], case["stage"], case["binding"]) == ("seizure", "recorded", True)
    assert case["seizure"]["restriction_id"] == "CF-110105-2026-0101" and case["seizure"]["valid_until"] == "2028-09-02"
    assert [o["action"] for o in case["orders"]] == ["seize"]
    assert {"seizure.ordered", "seizure.forwarded", "seizure.receipt", "restriction.recorded"} <= \
        {t["type"] for t in case["timeline"]}
    text = json.dumps(body, ensure_ascii=False)
    for value in (SUBJECT["name"], SUBJECT["id_number"], OFFICERS[0]["name"], OFFICERS[0]["phone"]):
        assert value not in text
    assert courts.read_case("bj-registry", sid)[0] == 200
    assert courts.read_case("sz-court", sid) == courts.read_case("sz-court", "CF-NO-SUCH-SEIZURE")  # the same 404
    assert courts.read_case("sz-court", sid)[0] == 404


def test_a_seizure_blocks_a_transfer_and_its_release_unblocks_it(courts):
    order, rid = "(2026)京0105执保201号", "CF-110105-2026-0201"
    seized(courts, order, rid)

    # The application arrives on a seized unit: its registry is told at once.
    transfer_to_cleared(courts, "BJ-SEIZED-1")
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-SEIZED-1")
    assert [(f["change"], f["restriction"]["restriction_id"], f["restriction"]["binding"], f["blocked"])
            for f in flags] == [("raised", rid, True, True)]
    assert flags[0]["active_flags"] == [{"restriction_type": "seizure", "restriction_id": rid,
                                         "seizure_order_number": order}]
    # Paid and cleared, but the seizure binds: the registry is not told it may book.
    assert courts.sent("case.ready_to_book", "bj-registry") == []
    status, body = courts.read_case("bj-registry", "BJ-SEIZED-1")
    assert body["cases"][0]["stage"] == "paid" and body["cases"][0]["clearance"]  # paid and cleared, held

    # The court releases; the registry records the release: receipt to the court, flag lifted, ready.
    courts.send("bj-court", "seizure.ordered", release("(2026)京0105执保201号之一", order, papers=courts.papers("bj-court")))
    assert [r["action"] for r in courts.sent("seizure.forwarded", "bj-registry")] == ["seize", "release"]
    assert courts.sent("case.ready_to_book") == []  # forwarded is not released
    courts.send("bj-registry", "restriction.recorded", recorded("(2026)京0105执保201号之一", rid, action="released",
                                                               kind=None, rank=None, valid_until=None))
    receipts = courts.sent("seizure.receipt", "bj-court")
    assert [(r["status"], r["action"]) for r in receipts][-1] == ("released", "release")
    assert receipts[-1]["order_number"] == "(2026)京0105执保201号之一"
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-SEIZED-1")
    assert [(f["change"], f.get("lift_reason"), f["blocked"]) for f in flags] == [
        ("raised", None, True), ("lifted", "released", False)]
    ready = courts.sent("case.ready_to_book", "bj-registry")
    assert len(ready) == 1 and ready[0]["case_id"] == "BJ-SEIZED-1" and ready[0]["restriction_flags"] == []
    status, body = courts.read_case("bj-court", seizure_case_id(order))
    assert body["cases"][0]["stage"] == "released"
    assert "BJ-SEIZED-1" not in json.dumps(body)  # the court learns nothing of the applications on the unit


def test_a_seizure_recorded_after_the_application_is_flagged_at_once_and_a_booking_ends_the_watch(courts):
    from chalicelib import restrictions

    courts.send("bj-registry", "application.submitted", {**application("BJ-LATE-1", "obligee_pays_all")})
    assert courts.sent("restriction.flagged") == []  # nothing on the unit yet
    assert set(restrictions.load(BJ_UNIT).watches) == {f"BJ-LATE-1#{BJ_UNIT}"}
    seized(courts, "(2026)京0105执保301号", "CF-110105-2026-0301")
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-LATE-1")
    assert [(f["change"], f["blocked"]) for f in flags] == [("raised", True)]

    courts.send("bj-registry", "application.rejected", {"case_id": "BJ-LATE-1", "unit_code": BJ_UNIT,
                                                        "reasons": [{"code": "seized", "message": "查封中"}],
                                                        "rejected_at": NOW()})
    assert restrictions.load(BJ_UNIT).watches == {}  # closed: no more flags for it
    courts.send("bj-court", "seizure.ordered", release("(2026)京0105解301号", "(2026)京0105执保301号",
                                                       papers=courts.papers("bj-court")))
    courts.send("bj-registry", "restriction.recorded", recorded("(2026)京0105解301号", "CF-110105-2026-0301",
                                                               action="released", kind=None, rank=None))
    assert len(courts.sent("restriction.flagged", "bj-registry", case_id="BJ-LATE-1")) == 1


def test_a_second_courts_seizure_waits_behind_the_first_and_is_promoted_when_it_is_released(courts):
    from chalicelib import restrictions

    first, second = "(2026)京0105执保401号", "(2026)京0105执保402号"
    seized(courts, first, "CF-110105-2026-0401")
    transfer_to_cleared(courts, "BJ-QUEUE-1")  # paid and cleared: only the seizures hold it back
    # Another court (here Shenzhen's) seizes the same Beijing unit: accepted, forwarded, expected to wait.
    courts.send("sz-court", "seizure.ordered",
                seize(second, papers=courts.papers("sz-court"), court_uscc="11440300000000001R"))
    forwarded = courts.sent("seizure.forwarded", "bj-registry", order_number=second)
    assert len(forwarded) == 1 and forwarded[0]["waiting_list_expected"] is True
    courts.send("bj-registry", "restriction.recorded",
                recorded(second, "CF-110105-2026-0402", kind="waiting_list", rank=1))
    assert [(r["status"], r.get("rank")) for r in courts.sent("seizure.receipt", "sz-court")] == [
        ("forwarded", None), ("waiting_list", 1)]
    assert [r["status"] for r in courts.sent("seizure.receipt", "bj-court")] == ["forwarded", "recorded"]
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-QUEUE-1")
    assert [(f["change"], f["restriction"]["seizure_order_number"], f["restriction"]["binding"]) for f in flags] == [
        ("raised", first, True), ("raised", second, False)]
    assert [f["seizure_order_number"] for f in restrictions.active_flags(BJ_UNIT)] == [first, second]

    # The first court releases; the registry records the release, then the waiting seizure takes effect.
    courts.send("bj-court", "seizure.ordered", release("(2026)京0105解401号", first, papers=courts.papers("bj-court")))
    courts.send("bj-registry", "restriction.recorded", recorded("(2026)京0105解401号", "CF-110105-2026-0401",
                                                               action="released", kind=None, rank=None))
    # The waiting seizure takes effect by law when the one ahead is lifted: the unit stays blocked, and the
    # transfer is not told it may book in the gap before the registry records the promotion.
    assert restrictions.is_blocked(BJ_UNIT) is True
    assert courts.sent("case.ready_to_book", case_id="BJ-QUEUE-1") == []
    courts.send("bj-registry", "restriction.recorded", recorded(second, "CF-110105-2026-0402", rank=1))
    assert restrictions.is_blocked(BJ_UNIT) is True
    assert [r["status"] for r in courts.sent("seizure.receipt", "sz-court")] == ["forwarded", "waiting_list", "recorded"]
    assert [r["status"] for r in courts.sent("seizure.receipt", "bj-court")] == [
        "forwarded", "recorded", "forwarded", "released"]
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-QUEUE-1")
    assert [(f["change"], f["restriction"]["seizure_order_number"], f["restriction"]["binding"]) for f in flags][2:] == [
        ("lifted", first, False), ("raised", second, True)]
    # The first court cannot touch the second's seizure; the second can.
    courts.refused("bj-court", "seizure.ordered", release("(2026)京0105解402号", second,
                                                          papers=courts.papers("bj-court")), "unknown_seizure")


def test_a_renewal_extends_the_term_and_an_unrenewed_seizure_expires(courts):
    from chalicelib import restrictions
    from chalicelib.flows import seizure

    order, rid = "(2026)京0105执保501号", "CF-110105-2026-0501"
    courts.send("bj-court", "seizure.ordered", seize(order, papers=courts.papers("bj-court"), valid_until="2026-12-31"))
    courts.send("bj-registry", "restriction.recorded", recorded(order, rid, valid_until="2026-12-31"))
    transfer_to_cleared(courts, "BJ-TERM-1")
    assert courts.sent("case.ready_to_book") == []

    courts.send("bj-court", "seizure.ordered", renew("(2026)京0105执保501号之二", order, "2029-12-31",
                                                     papers=courts.papers("bj-court")))
    courts.send("bj-registry", "restriction.recorded", recorded("(2026)京0105执保501号之二", rid, action="renewed",
                                                               kind=None, rank=None, valid_until="2029-12-31"))
    receipt = courts.sent("seizure.receipt", "bj-court")[-1]
    assert (receipt["status"], receipt["action"], receipt["valid_until"]) == ("renewed", "renew", "2029-12-31")

    def at(day: str) -> float:  # midnight after `day`, China time, plus a minute
        d = date.fromisoformat(day) + timedelta(days=1)
        return datetime(d.year, d.month, d.day, 0, 1, tzinfo=timezone(timedelta(hours=8))).timestamp()

    assert seizure.sweep_expired(at("2027-01-01")) == 0  # the old term passed, but it was renewed
    assert restrictions.is_blocked(BJ_UNIT) and courts.sent("case.ready_to_book") == []
    assert seizure.sweep_expired(at("2029-12-30")) == 0  # the last day is still in the term
    assert seizure.sweep_expired(at("2029-12-31")) == 1
    assert seizure.sweep_expired(at("2029-12-31")) == 0  # once
    assert not restrictions.is_blocked(BJ_UNIT)
    flags = courts.sent("restriction.flagged", "bj-registry", case_id="BJ-TERM-1")
    assert [(f["change"], f.get("lift_reason")) for f in flags] == [("raised", None), ("lifted", "expired")]
    assert len(courts.sent("case.ready_to_book", "bj-registry", case_id="BJ-TERM-1")) == 1
    assert courts.read_case("bj-court", seizure_case_id(order))[1]["cases"][0]["stage"] == "expired"
    # A renewal after expiry is refused; so is a renewal that does not extend the term.
    courts.refused("bj-court", "seizure.ordered", renew("(2026)京0105执保501号之三", order, "2031-12-31",
                                                         papers=courts.papers("bj-court")), "seizure_not_active")


def test_a_renewal_must_extend_the_term(courts):
    order = "(2026)京0105执保502号"
    seized(courts, order, "CF-110105-2026-0502")
    courts.refused("bj-court", "seizure.ordered", renew("(2026)京0105续502号", order, "2028-09-02",
                                                         papers=courts.papers("bj-court")), "renewal_not_later")


def test_the_registrys_own_seizure_enters_the_index_without_a_receipt(courts):
    from chalicelib import restrictions

    courts.send("bj-registry", "restriction.recorded", recorded("(2019)京0105执88号", "CF-110105-2019-0088"))
    assert restrictions.is_blocked(BJ_UNIT)
    assert courts.sent("seizure.receipt") == []
    transfer_to_cleared(courts, "BJ-OLD-1")
    assert [f["change"] for f in courts.sent("restriction.flagged", "bj-registry", case_id="BJ-OLD-1")] == ["raised"]
    assert courts.sent("case.ready_to_book") == []
    # A court may release it through the hub (it names the order); the receipt then goes to that court.
    courts.send("bj-court", "seizure.ordered", release("(2026)京0105解88号", "(2019)京0105执88号",
                                                       papers=courts.papers("bj-court")))
    courts.send("bj-registry", "restriction.recorded", recorded("(2026)京0105解88号", "CF-110105-2019-0088",
                                                               action="released", kind=None, rank=None))
    assert [r["status"] for r in courts.sent("seizure.receipt", "bj-court")] == ["forwarded", "released"]
    assert len(courts.sent("case.ready_to_book", "bj-registry", case_id="BJ-OLD-1")) == 1


# --------------------------------------------------------------------------------------------------
# bad input: refused at the door, nothing stored, nothing sent


def test_a_release_without_a_seizure_is_refused(courts):
    courts.refused("bj-court", "seizure.ordered", release("(2026)京0105解601号", "(2026)京0105执保601号",
                                                          papers=courts.papers("bj-court")), "unknown_seizure")
    seized(courts, "(2026)京0105执保601号", "CF-110105-2026-0601", unit_code=BJ_UNIT)
    # The same order number, another unit: not that seizure.
    courts.refused("bj-court", "seizure.ordered", release("(2026)京0105解601号", "(2026)京0105执保601号",
                                                          unit_code=BJ_UNIT_2, papers=courts.papers("bj-court")),
                   "unknown_seizure")
    assert courts.sent("seizure.forwarded", "bj-registry", action="release") == []


def test_a_seize_order_sent_twice_is_forwarded_once_and_a_reused_number_is_refused(courts):
    data = seize("(2026)京0105执保701号", papers=courts.papers("bj-court"))
    courts.send("bj-court", "seizure.ordered", data)
    courts.send("bj-court", "seizure.ordered", data)  # a new webhook-id, the same order: accepted, no-op
    assert len(courts.sent("seizure.forwarded")) == 1 and len(courts.sent("seizure.receipt")) == 1
    courts.refused("bj-court", "seizure.ordered", {**data, "amount_fen": 1}, "order_number_in_use")
    courts.refused("sz-court", "seizure.ordered", {**data, "court": {"name": "深圳市中级人民法院"},
                                                   **courts.papers("sz-court")}, "order_number_in_use")
    # One ruling may seize several units: the same number on another unit is another seizure.
    courts.send("bj-court", "seizure.ordered", {**data, "unit_code": BJ_UNIT_2})
    assert len(courts.sent("seizure.forwarded")) == 2


@pytest.mark.parametrize("case", ["court_mismatch", "no_route_target", "not_uploaded", "another_partners_paper",
                                  "malformed_unit", "release_without_original"])
def test_bad_orders_are_refused_at_the_door(courts, case):
    data = seize("(2026)京0105执保801号", papers=courts.papers("bj-court"))
    sender, code = "bj-court", {"court_mismatch": "court_mismatch", "no_route_target": "no_route_target",
                                "not_uploaded": "document_not_verified",
                                "another_partners_paper": "document_not_verified"}.get(case, "invalid_data")
    if case == "court_mismatch":
        sender, data = "sz-court", {**data, **courts.papers("sz-court")}  # names Beijing's court
    elif case == "no_route_target":
        data["unit_code"] = HZ_UNIT
    elif case == "not_uploaded":
        data["legal_document"] = {**data["legal_document"], "document_id": "doc_NotUploaded1"}
    elif case == "another_partners_paper":
        data["legal_document"] = courts.upload("sz-court", RULING)
    elif case == "malformed_unit":
        data["unit_code"] = "110105001001GB00001F0001000X"
    else:
        data = release("(2026)京0105解801号", "x", papers=courts.papers("bj-court"))
        data.pop("original_order_number")
    error = courts.refused(sender, "seizure.ordered", data, code)
    assert SUBJECT["id_number"] not in json.dumps(error, ensure_ascii=False)
    assert courts.to("bj-registry") == [] and courts.to("bj-court") == [] and courts.to("sz-court") == []


def test_registry_records_that_cannot_apply_are_refused(courts):
    # A release or renewal of a seizure the index does not know: nothing to lift.
    courts.refused("bj-registry", "restriction.recorded",
                   recorded("(2026)京0105执保901号", "CF-X-1", action="released", kind=None), "unknown_seizure")
    courts.refused("bj-registry", "restriction.recorded",
                   recorded("(2026)京0105执保901号", "CF-X-1", action="renewed", kind=None), "unknown_seizure")
    # Another city's registry records on a Beijing unit.
    courts.refused("sz-registry", "restriction.recorded", recorded("(2026)京0105执保901号", "CF-X-1"),
                   "unit_outside_partner_city")
    seized(courts, "(2026)京0105执保901号", "CF-110105-2026-0901")
    courts.refused("bj-registry", "restriction.recorded",
                   recorded("(2026)京0105执保901号", "CF-110105-2026-0901", action="renewed", valid_until=None),
                   "validity_required")
    courts.refused("bj-registry", "restriction.recorded",
                   recorded("(2026)京0105执保901号", "CF-110105-2026-0901", kind="waiting_list"), "seizure_state_conflict")
    courts.send("bj-registry", "restriction.recorded",
                recorded("(2026)京0105执保901号", "CF-110105-2026-0901", action="released", kind=None))
    courts.refused("bj-registry", "restriction.recorded",
                   recorded("(2026)京0105执保901号", "CF-110105-2026-0901"), "seizure_not_active")
    # A mortgage record is not the courts' business: no seizure rule applies to it.
    courts.send("bj-registry", "restriction.recorded", {
        "unit_code": BJ_UNIT, "restriction_type": "mortgage", "action": "recorded", "restriction_id": "DY-1",
        "recorded_at": NOW()})


def test_a_recorded_fact_sent_again_or_a_stream_record_handled_twice_changes_nothing(courts):
    from chalicelib.settings import get_settings

    order, rid = "(2026)京0105执保951号", "CF-110105-2026-0951"
    courts.send("bj-registry", "application.submitted", application("BJ-TWICE-1", "obligee_pays_all"))
    courts.send("bj-court", "seizure.ordered", seize(order, papers=courts.papers("bj-court")))
    record = recorded(order, rid)
    courts.send("bj-registry", "restriction.recorded", record)
    before = courts.delivery_count()
    courts.send("bj-registry", "restriction.recorded", record)  # the same fact under a new webhook-id
    for item in boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]:
        courts.route(item)  # every stream record handed over again
    assert courts.delivery_count() == before
    assert [r["status"] for r in courts.sent("seizure.receipt", "bj-court")] == ["forwarded", "recorded"]
    assert len(courts.sent("restriction.flagged", "bj-registry", case_id="BJ-TWICE-1")) == 1


def test_nothing_personal_in_the_index_or_the_logs(courts, capsys):
    from chalicelib import restrictions

    seized(courts, "(2026)京0105执保961号", "CF-110105-2026-0961")
    stored = json.dumps(restrictions.load(BJ_UNIT).doc, ensure_ascii=False)
    captured = capsys.readouterr()
    for value in (SUBJECT["name"], SUBJECT["id_number"], OFFICERS[0]["name"], OFFICERS[0]["phone"]):
        assert value not in stored and value not in captured.out and value not in captured.err
    assert not _keys(restrictions.load(BJ_UNIT).doc) & {"subject", "officers", "name", "id_number"}
