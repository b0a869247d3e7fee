"""Flow 2 (banks) through the app's own handlers: Chalice's test client + moto in-process, the events
stream pumped by hand, documents uploaded through the documents endpoint and judged by the verifier.

Single mortgage requests (first, change, transfer, release) and the mortgage index behind them; the
registry's answers; pre-registration results shared with the buyer's bank and tax; the three 带押过户
packages (combined, staged with its release after payoff, same-bank change), their consent window and
timeout; and the bad input of the issue: a unit of a city with no registry, a release of a mortgage
never registered, a bank naming another mortgagee, a package consent twice, late, or for another case.
Every refusal checks that nothing was stored and nothing reached a registry.
"""
from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import datetime, timezone

import boto3
import pytest

from tests.support import secret_of
from tests.test_relay_flow import PDF, PDF2, Relays
from tests.test_transfer_flow import Flow

SZ_UNIT = "440305001002GB00001F00010001"
SZ_UNIT_2 = "440305001001GB00001F00010001"
BJ_UNIT = "110105001001GB00001F00010001"
HZ_UNIT = "330106002005GB00008F00011203"  # Hangzhou: no registry partner
CCB = {"name": "中国建设银行股份有限公司深圳市分行", "uscc": "91440300MA5F00001A"}  # sz-ccb
CMB = {"name": "招商银行股份有限公司深圳分行", "uscc": "91440101MA9W000042"}  # sz-cmb
ICBC = {"name": "中国工商银行股份有限公司北京分行", "uscc": "91110000100000001W"}  # bj-icbc
NOT_A_PARTNER = {"name": "某农村商业银行", "uscc": "91350100M000100Y43"}
BANK_OF = {CCB["uscc"]: "sz-ccb", CMB["uscc"]: "sz-cmb", ICBC["uscc"]: "bj-icbc"}
BUYER = {"role": "obligee", "name": "王五", "id_type": "resident_id", "id_number": "440305198507150013",
         "phone": "13600136000", "share": "100%"}
SELLER = {"role": "obligor", "name": "赵六", "id_type": "resident_id", "id_number": "440106197811204523",
          "phone": "13700137000"}
PERSONAL = ("王五", "赵六", "440305198507150013", "440106197811204523", "13600136000", "13700137000")
OLD_PROOF = "粤(2019)深圳市不动产证明第0123456号"
CONSENT = b"%PDF-1.7\n" + "带押过户同意书, signed\n".encode() * 20 + b"%%EOF\n"
E_CERT = b"%PDF-1.7\n" + b"electronic registration proof\n" * 20 + b"%%EOF\n"
NOW = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731


def terms(rank: int | None = None, contract: str = "DY-2026-0001") -> dict:
    data = {"mortgage_type": "general", "secured_amount_fen": 250_000_000, "debt_start": "2026-01-10",
            "debt_end": "2056-01-09", "contract_number": contract, "loan_contract_number": "JK-" + contract}
    if rank is not None:
        data["rank"] = rank
    return data


CONSENTS_OF = {"old_mortgagee": ("obligor",), "new_mortgagee": ("obligee",), "both": ("obligee", "obligor")}


def mortgage_request(bank: str, kind: str, unit: str, documents: list[dict], **fields) -> dict:
    """A bank's single request (first, change, transfer, release) with its uploaded scans."""
    mortgagee = next(i for i in (CCB, CMB, ICBC) if BANK_OF[i["uscc"]] == bank)
    data = {"request_id": f"{bank.upper()}-{uuid.uuid4().hex[:10]}", "kind": kind, "unit_code": unit,
            "mortgagee": dict(mortgagee), "documents": documents, "requested_at": NOW()}
    if kind in ("first", "change", "transfer"):
        data.update(mortgagors=[{**BUYER, "role": "obligor"}], terms=terms())
    data.update(fields)
    return data


def package_request(bank: str, role: str, consents: dict[str, dict], documents: list[dict], mode: str = "combined",
                    package_id: str = "PKG-2026-0001", unit: str = SZ_UNIT, old_bank: dict = CMB,
                    new_bank: dict = CCB, **changes) -> dict:
    """A bank's part of a 带押过户 package (the catalog example, made this package's), with its
    borrower's consent documents ({party_role: document reference}) and scans."""
    from chalicelib.models import EVENT_TYPES

    data = copy.deepcopy(EVENT_TYPES["mortgage.requested"].example)
    sender = {"old_mortgagee": old_bank, "new_mortgagee": new_bank, "both": new_bank}[role]
    package = data["package"]
    package.update(package_id=package_id, mode=mode, sender_role=role)
    package["transfer"]["parties"] = [BUYER, SELLER]
    package["old_mortgage"].update(mortgagee=dict(old_bank), proof_number=OLD_PROOF)
    package["new_mortgage"].update(mortgagee=dict(new_bank), mortgagors=[{**BUYER, "role": "obligor"}],
                                   terms=terms(2 if mode == "staged" else None, "PKG-DY-0001"))
    if mode == "staged":
        package["escrow"] = {"escrow_reference": "ZJJG-2026-0001", "bank": dict(new_bank), "amount_fen": 170_000_000}
    else:
        package.pop("escrow")
    package["consents"] = [{"party_role": r, "document": ref, "signed_at": NOW()} for r, ref in consents.items()]
    data.update(request_id=f"{bank.upper()}-{uuid.uuid4().hex[:10]}", unit_code=unit, mortgagee=dict(sender),
                documents=documents, requested_at=NOW())
    for key, value in changes.items():
        (package if key in package else data)[key] = value
    return data


def booking(application: dict, proofs: list[str], e_certificates: list[dict], n: int, holder: str | None = None,
            ownership: bool = False) -> dict:
    """The registry's registration.booked for an application the hub filed: one proof per number."""
    certificates = [{"kind": "registration_proof", "number": p, "e_certificate_id": f"ECERT-{n}-{i}",
                     "e_certificate": e_certificate, **({"holder_name": holder} if holder else {})}
                    for i, (p, e_certificate) in enumerate(zip(proofs, e_certificates))]
    if ownership:
        certificates.insert(0, {"kind": "ownership_certificate", "holder_name": BUYER["name"],
                                "number": f"粤(2026)深圳市不动产权第{n:07d}号"})
    return {"case_id": f"REG-2026-{n:04d}", "request_id": application["request_id"],
            "unit_code": application["unit_code"], "service": application["service"],
            "registrations": application["registrations"], "certificates": certificates, "booked_at": NOW()}


def recorded_mortgage(proof: str, holder: dict, unit: str = SZ_UNIT, action: str = "recorded") -> dict:
    """A registry's restriction.recorded of a mortgage (what feeds the hub's mortgage index)."""
    return {"unit_code": unit, "restriction_type": "mortgage", "action": action,
            "restriction_id": f"DY-{hashlib.sha256(proof.encode()).hexdigest()[:10]}", "rank": 1,
            "holder_name": holder["name"], "holder_uscc": holder["uscc"], "proof_number": proof, "recorded_at": NOW()}


class Banks(Relays):
    """Banks and registries posting signed events and uploading documents; the stream run by hand."""

    read = Flow.read  # the signed case read (GET /v1/cases/{case_id})

    def __init__(self, hub, partners):
        super().__init__(hub, partners)
        self.booked = 0

    def sent(self, event_type: str, partner_id: str | None = None, **match) -> list[dict]:  # type: ignore[override]
        """Bodies the hub scheduled for delivery, oldest first, whose data has the `match` values."""
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        items.sort(key=lambda i: float(i["created_at"]["N"]))
        found = [json.loads(i["body"]["S"])["data"] for i in items
                 if i["type"]["S"] == event_type and i["body"]["S"]
                 and (partner_id is None or i["partner_id"]["S"] == partner_id)]
        return [d for d in found if all(d.get(k) == v for k, v in match.items())]

    def registry_sent(self) -> list[dict]:
        """Everything any registry was sent (to check that a refusal let nothing through)."""
        return [d for r in ("sz-registry", "bj-registry", "gz-registry") for d in self.sent("application.requested", r)]

    def scan(self, bank: str, data: bytes = PDF) -> list[dict]:
        return [{"kind": "mortgage_contract", "title": "抵押合同", "document": self.upload(bank, data)}]

    def request(self, bank: str, kind: str, unit: str = SZ_UNIT, **fields) -> dict:
        return mortgage_request(bank, kind, unit, self.scan(bank), **fields)

    def filed(self, request: dict, bank: str, registry: str = "sz-registry") -> dict:
        """The one application.requested the hub filed for a bank's single request."""
        found = self.sent("application.requested", registry, request_id=f"MTG_{bank}_{request['request_id']}")
        assert len(found) == 1, found
        return found[0]

    def booking(self, application: dict, proofs: list[str], registry: str = "sz-registry",
                holder: str | None = None, ownership: bool = False) -> dict:
        self.booked += 1
        e_certificates = [self.upload(registry, E_CERT + p.encode()) for p in proofs]
        return booking(application, proofs, e_certificates, self.booked, holder, ownership)

    def register_first(self, bank: str, proof: str, unit: str = SZ_UNIT, **fields) -> dict:
        """A first mortgage filed and booked through the hub; returns mortgage.registered."""
        request = self.request(bank, "first", unit, **fields)
        self.send(bank, "mortgage.requested", request)
        registry = "bj-registry" if unit.startswith("11") else "sz-registry"
        self.send(registry, "registration.booked", self.booking(self.filed(request, bank, registry), [proof], registry))
        return self.sent("mortgage.registered", bank, request_id=request["request_id"])[-1]

    def record_mortgage(self, proof: str, holder: dict, unit: str = SZ_UNIT, action: str = "recorded") -> None:
        self.send("sz-registry", "restriction.recorded", recorded_mortgage(proof, holder, unit, action))

    @staticmethod
    def reject(application: dict) -> dict:
        return {"request_id": application["request_id"], "unit_code": application["unit_code"],
                "reasons": [{"code": "missing_material", "message": "缺少抵押合同原件"}], "resubmittable": True,
                "rejected_at": NOW()}

    def case(self, partner_id: str, case_id: str) -> dict:
        status, body = self.read(partner_id, case_id)
        assert status == 200, body
        [case] = body["cases"]
        return case

    # -- packages
    def package(self, bank: str, role: str, mode: str = "combined", package_id: str = "PKG-2026-0001",
                unit: str = SZ_UNIT, old_bank: dict = CMB, new_bank: dict = CCB, **changes) -> dict:
        consents = {r: self.upload(bank, CONSENT + r.encode()) for r in CONSENTS_OF[role]}
        return package_request(bank, role, consents, self.scan(bank, PDF2), mode, package_id, unit, old_bank,
                               new_bank, **changes)

    def package_filed(self, package_id: str = "PKG-2026-0001") -> list[dict]:
        return self.sent("application.requested", "sz-registry", request_id=f"PKG_{package_id}")


@pytest.fixture
def banks(hub, partners):
    return Banks(hub, partners)


def no_personal_data(value) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert not [p for p in PERSONAL if p in text], text[:500]


# ---------------------------------------------------------------------------------------------------
# a single mortgage request


def test_a_first_mortgage_is_filed_booked_and_returned_with_its_e_certificate(banks):
    request = banks.request("sz-ccb", "first")
    assert banks.registry_sent() == []
    banks.send("sz-ccb", "mortgage.requested", request)
    application = banks.filed(request, "sz-ccb")
    assert application["source_kind"] == "bank" and application["source_reference"] == request["request_id"]
    assert application["service"] == "mortgage" and application["registrations"] == ["mortgage_first"]
    assert {(p["role"], p["id_number"]) for p in application["parties"]} == {
        ("obligee", CCB["uscc"]), ("obligor", BUYER["id_number"])}
    assert application["mortgages"] == [{"mortgagee": CCB, "terms": request["terms"]}]
    [scan] = application["documents"]  # the contract, with a short-lived link the registry can fetch
    assert scan["document"] == request["documents"][0]["document"] and scan["download_url"].startswith("http")
    assert banks.sent("mortgage.registered") == []

    booking = banks.booking(application, ["粤(2026)深圳市不动产证明第0000001号"], holder=CCB["name"])
    banks.send("sz-registry", "registration.booked", booking)
    [registered] = banks.sent("mortgage.registered", "sz-ccb")
    case_id = f"MTG_sz-ccb_{request['request_id']}"
    assert datetime.fromisoformat(registered.pop("booked_at")) == datetime.fromisoformat(booking["booked_at"])
    assert registered == {
        "request_id": request["request_id"], "case_id": case_id, "registry_case_id": booking["case_id"],
        "unit_code": SZ_UNIT, "kind": "first", "proof": booking["certificates"][0]}
    assert registered["proof"]["e_certificate"]["document_id"].startswith("doc_")

    case = banks.case("sz-ccb", case_id)
    assert case["stage"] == "booked" and case["kind"] == "first"
    assert case["participants"] == ["sz-ccb", "sz-registry"]
    assert {"mortgage.requested", "application.requested", "registration.booked", "mortgage.registered"} <= \
        {t["type"] for t in case["timeline"]}
    no_personal_data(case)
    assert banks.read("sz-registry", case_id)[0] == 200
    for outsider in ("sz-cmb", "bj-icbc", "bj-registry", "sz-tax"):  # a bank sees its own cases only
        assert banks.read(outsider, case_id)[0] == 404


def test_the_same_request_again_changes_nothing_and_other_content_under_its_id_is_refused(banks):
    request = banks.request("sz-ccb", "first")
    banks.send("sz-ccb", "mortgage.requested", request)
    again = {**request, "requested_at": NOW()}  # a resend restamps it: still the same request
    banks.send("sz-ccb", "mortgage.requested", again)
    assert len(banks.registry_sent()) == 1
    other = {**request, "terms": terms(contract="DY-OTHER")}
    banks.refused("sz-ccb", "mortgage.requested", other, "request_conflict")
    assert len(banks.registry_sent()) == 1


def test_change_transfer_and_release_act_on_the_mortgages_the_index_knows(banks):
    first = banks.register_first("sz-ccb", "粤(2026)深圳市不动产证明第0000001号")
    old = first["proof"]["number"]

    change = banks.request("sz-ccb", "change", existing_proof_number=old, terms=terms(contract="DY-CHANGED"))
    banks.send("sz-ccb", "mortgage.requested", change)
    application = banks.filed(change, "sz-ccb")
    assert application["registrations"] == ["mortgage_change"]
    assert application["mortgages"][0]["existing_proof_number"] == old
    changed = "粤(2026)深圳市不动产证明第0000002号"
    banks.send("sz-registry", "registration.booked", banks.booking(application, [changed]))
    assert banks.sent("mortgage.registered", "sz-ccb", request_id=change["request_id"])[0]["proof"]["number"] == changed

    # The old proof number is history now; the changed one is CCB's, so only CCB may act on it.
    stale = banks.request("sz-ccb", "release", existing_proof_number=old)
    banks.refused("sz-ccb", "mortgage.requested", stale, "mortgage_superseded")
    banks.refused("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=changed),
                  "unknown_mortgage")

    # CCB assigns the mortgage to CMB (抵押权转移): CMB files it, naming CCB as the previous mortgagee.
    assign = banks.request("sz-cmb", "transfer", existing_proof_number=changed, previous_mortgagee=dict(CCB))
    banks.send("sz-cmb", "mortgage.requested", assign)
    application = banks.filed(assign, "sz-cmb")
    assert application["registrations"] == ["mortgage_transfer"]
    assert {("obligee", CMB["uscc"]), ("obligor", CCB["uscc"])} <= {(p["role"], p["id_number"])
                                                                   for p in application["parties"]}
    assigned = "粤(2026)深圳市不动产证明第0000003号"
    banks.send("sz-registry", "registration.booked", banks.booking(application, [assigned]))

    release = banks.request("sz-cmb", "release", existing_proof_number=assigned)
    banks.send("sz-cmb", "mortgage.requested", release)
    application = banks.filed(release, "sz-cmb")
    assert application["registrations"] == ["mortgage_release"] and "package" not in application
    banks.send("sz-registry", "registration.booked", banks.booking(application, ["粤(2026)深圳市不动产证明第0000004号"]))
    done = banks.sent("mortgage.registered", "sz-cmb", request_id=release["request_id"])
    assert [d["kind"] for d in done] == ["release"]
    banks.refused("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=assigned),
                  "mortgage_released")


def test_a_release_for_a_mortgage_never_registered_is_refused(banks):
    banks.refused("sz-ccb", "mortgage.requested", banks.request("sz-ccb", "release", existing_proof_number=OLD_PROOF),
                  "unknown_mortgage")
    # Known, but on another unit, or another bank's: the same answer.
    banks.record_mortgage(OLD_PROOF, CMB)
    banks.refused("sz-cmb", "mortgage.requested",
                  banks.request("sz-cmb", "release", SZ_UNIT_2, existing_proof_number=OLD_PROOF), "unknown_mortgage")
    banks.refused("sz-ccb", "mortgage.requested", banks.request("sz-ccb", "release", existing_proof_number=OLD_PROOF),
                  "unknown_mortgage")
    assert banks.registry_sent() == []


def test_the_registrys_records_feed_the_index_whatever_their_order(banks):
    banks.record_mortgage(OLD_PROOF, CMB, action="released")  # the release arrives first
    banks.record_mortgage(OLD_PROOF, CMB)  # …and a late "recorded" does not bring it back
    banks.refused("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF),
                  "mortgage_released")
    other = "粤(2018)深圳市不动产证明第0999999号"
    banks.record_mortgage(other, CMB)
    banks.send("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=other))
    assert [a["registrations"] for a in banks.registry_sent()] == [["mortgage_release"]]


@pytest.mark.parametrize("case", ["no_registry", "not_the_sender", "another_banks_name", "unverified_document",
                                  "foreign_document", "malformed_unit"])
def test_bad_requests_are_refused_and_nothing_is_stored_or_sent(banks, case):
    request = banks.request("sz-ccb", "first")
    expected = {"no_registry": "no_route_target", "not_the_sender": "mortgagee_not_sender",
                "another_banks_name": "mortgagee_not_sender", "unverified_document": "document_not_verified",
                "foreign_document": "document_not_verified", "malformed_unit": "invalid_data"}[case]
    if case == "no_registry":
        request["unit_code"] = HZ_UNIT
    elif case == "not_the_sender":  # CCB's own request, sent by CMB
        banks.refused("sz-cmb", "mortgage.requested", request, expected)
        return
    elif case == "another_banks_name":
        request["mortgagee"] = dict(CMB)
    elif case == "unverified_document":
        request["documents"][0]["document"] = banks.upload("sz-ccb", PDF, stored=PDF2)  # bytes ≠ the declared hash
    elif case == "foreign_document":
        request["documents"][0]["document"] = banks.upload("sz-cmb", PDF)
    else:
        request["unit_code"] = "440305001002GB00001H00010001"
    error = banks.refused("sz-ccb", "mortgage.requested", request, expected)
    assert not [p for p in PERSONAL if p in json.dumps(error, ensure_ascii=False)]
    assert banks.registry_sent() == [] and banks.delivery_count() == 0


def test_a_request_id_that_is_no_case_id_gets_a_hashed_one(banks):
    request = banks.request("sz-ccb", "first", request_id="CCB.2026:0001")  # '.' and ':' are no case id's
    banks.send("sz-ccb", "mortgage.requested", request)
    [application] = banks.registry_sent()
    case_id = application["request_id"]
    assert case_id.startswith("MTG__") and len(case_id) == 37
    banks.send("sz-registry", "registration.booked", banks.booking(application, ["粤(2026)深圳市不动产证明第0000005号"]))
    assert banks.sent("mortgage.registered", "sz-ccb")[0]["case_id"] == case_id
    assert banks.case("sz-ccb", case_id)["stage"] == "booked"


def test_two_releases_racing_past_the_door_reach_the_registry_once(banks):
    banks.record_mortgage(OLD_PROOF, CMB)
    one, two = (banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF) for _ in range(2))
    for request in (one, two):  # both pass the door before the stream handles either
        status, answer = banks.post("sz-cmb", "mortgage.requested", request)
        assert status == 202, answer
    banks.pump()
    [filed] = banks.registry_sent()
    one, two = (one, two) if filed["source_reference"] == one["request_id"] else (two, one)  # as the stream ordered
    [refused] = banks.sent("registration.result", "sz-cmb")
    assert refused["outcome"] == "rejected" and [r["code"] for r in refused["reasons"]] == ["mortgage_pending"]
    assert refused["reference"] == two["request_id"]
    assert banks.case("sz-cmb", f"MTG_sz-cmb_{two['request_id']}")["stage"] == "refused"

    # The registry rejects the first: the mortgage is free again and a new release goes through.
    banks.send("sz-registry", "application.rejected", banks.reject(banks.filed(one, "sz-cmb")))
    rejected = banks.sent("registration.result", "sz-cmb", reference=one["request_id"])
    assert [r["outcome"] for r in rejected] == ["rejected"] and rejected[0]["reasons"][0]["code"] == "missing_material"
    banks.send("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF))
    assert len(banks.registry_sent()) == 2


def test_the_registrys_answers_are_checked_and_repeats_change_nothing(banks):
    request = banks.request("sz-ccb", "first")
    banks.send("sz-ccb", "mortgage.requested", request)
    application = banks.filed(request, "sz-ccb")
    booking = banks.booking(application, ["粤(2026)深圳市不动产证明第0000009号"])
    # Another city's registry, another unit, a request id the hub never filed.
    banks.refused("bj-registry", "registration.booked", {**booking, "unit_code": BJ_UNIT}, "unknown_request")
    banks.refused("sz-registry", "registration.booked", {**booking, "unit_code": SZ_UNIT_2}, "unknown_request")
    e_cert = booking["certificates"][0]["e_certificate"]
    forged = copy.deepcopy(booking)
    forged["certificates"][0]["e_certificate"] = {**e_cert, "sha256": "0" * 64}
    banks.refused("sz-registry", "registration.booked", forged, "document_not_verified")

    banks.send("sz-registry", "registration.booked", booking)
    banks.send("sz-registry", "registration.booked", {**booking, "booked_at": NOW()})  # a resend: nothing new
    assert len(banks.sent("mortgage.registered", "sz-ccb")) == 1
    banks.refused("sz-registry", "application.rejected", banks.reject(application), "application_already_decided")


def test_a_stream_record_handled_twice_sends_nothing_twice(banks):
    request = banks.request("sz-ccb", "first")
    banks.send("sz-ccb", "mortgage.requested", request)
    before = banks.delivery_count()
    from chalicelib.settings import get_settings

    for item in boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]:
        banks.route(item)  # the stream hands every record again
    assert banks.delivery_count() == before and len(banks.registry_sent()) == 1


# ---------------------------------------------------------------------------------------------------
# pre-registration (预告登记)


def _preregistration(unit: str, case_id: str, buyer_bank: dict | None) -> dict:
    facts = {"kind": "other_purchase", "contract_number": "BJ-HT-2026-0001", "price_fen": 560_000_000}
    if buyer_bank:
        facts["buyer_bank"] = buyer_bank
    return {"case_id": case_id, "unit_code": unit, "service": "preregistration", "registrations": ["preregistration"],
            "certificates": [{"kind": "registration_proof", "number": "京(2026)朝阳区不动产证明第0000777号"}],
            "obligees": [{**BUYER, "id_number": "110108198805123373"}], "preregistration": facts, "booked_at": NOW()}


def test_a_preregistration_result_reaches_the_buyers_bank_and_tax_once(banks):
    booking = _preregistration(BJ_UNIT, "BJ-YG-2026-0001", ICBC)
    banks.send("bj-registry", "registration.booked", booking)
    banks.send("bj-registry", "registration.booked", {**booking, "booked_at": NOW()})  # a resend: shared once
    [to_bank] = banks.sent("preregistration.shared", "bj-icbc")
    [to_tax] = banks.sent("preregistration.shared", "bj-tax")
    assert to_bank == to_tax
    assert to_bank["kind"] == "other_purchase" and to_bank["mortgagee"] == ICBC
    assert to_bank["contract_number"] == "BJ-HT-2026-0001" and to_bank["price_fen"] == 560_000_000
    assert to_bank["proof"]["number"] == booking["certificates"][0]["number"]
    assert banks.sent("preregistration.shared", "sz-ccb") == [] and banks.sent("preregistration.shared", "sz-cmb") == []


def test_a_preregistration_for_a_bank_that_is_no_partner_reaches_tax_and_shows_as_a_dead_letter(banks):
    banks.send("bj-registry", "registration.booked", _preregistration(BJ_UNIT, "BJ-YG-2026-0002", NOT_A_PARTNER))
    assert len(banks.sent("preregistration.shared", "bj-tax")) == 1
    from chalicelib.settings import get_settings

    dead = [i for i in boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
            if i["state"]["S"] == "dead"]
    assert [d["type"]["S"] for d in dead] == ["preregistration.shared"]


def test_a_preregistration_without_its_facts_or_of_another_city_is_refused(banks):
    booking = _preregistration(BJ_UNIT, "BJ-YG-2026-0003", ICBC)
    banks.refused("sz-registry", "registration.booked", booking, "unit_outside_partner_city")
    booking.pop("preregistration")
    banks.refused("bj-registry", "registration.booked", booking, "invalid_data")
    assert banks.delivery_count() == 0


# ---------------------------------------------------------------------------------------------------
# 带押过户 packages


def test_combined_package_waits_for_both_banks_then_files_once_and_answers_each(banks):
    banks.record_mortgage(OLD_PROOF, CMB)  # the seller's loan at CMB
    new = banks.package("sz-ccb", "new_mortgagee")
    banks.send("sz-ccb", "mortgage.requested", new)
    assert banks.registry_sent() == []
    waiting = banks.case("sz-ccb", "PKG_PKG-2026-0001")
    assert waiting["stage"] == "awaiting_consent" and waiting["package"]["awaiting"] == ["old_mortgagee"]
    assert banks.read("sz-cmb", "PKG_PKG-2026-0001")[0] == 404  # not its case until it sends

    old = banks.package("sz-cmb", "old_mortgagee")
    banks.send("sz-cmb", "mortgage.requested", old)
    [application] = banks.package_filed()
    assert application["registrations"] == ["transfer", "mortgage_release", "mortgage_first"]
    assert application["service"] == "transfer" and application["price_fen"] == new["package"]["transfer"]["price_fen"]
    assert application["package"] == {"mode": "combined", "package_id": "PKG-2026-0001"}
    assert application["mortgages"] == [{"mortgagee": CMB, "existing_proof_number": OLD_PROOF},
                                        {"mortgagee": CCB, "terms": new["package"]["new_mortgage"]["terms"]}]
    consents = {d["document"]["document_id"] for p in (new, old) for d in p["package"]["consents"]}
    assert consents <= {d["document"]["document_id"] for d in application["documents"]}
    assert all(d["download_url"] for d in application["documents"]) and len(application["documents"]) == 4
    # The old mortgage is taken by the package: the old bank cannot release it on its own meanwhile.
    banks.refused("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF),
                  "mortgage_pending")

    new_proof = "粤(2026)深圳市不动产证明第0000100号"
    banks.send("sz-registry", "registration.booked", banks.booking(application, [new_proof], ownership=True))
    [registered] = banks.sent("mortgage.registered", "sz-ccb")
    assert registered["kind"] == "transfer_with_mortgage" and registered["package_id"] == "PKG-2026-0001"
    assert registered["request_id"] == new["request_id"] and registered["proof"]["number"] == new_proof
    [told] = banks.sent("registration.result", "sz-cmb")
    assert told["outcome"] == "booked" and told["reference"] == old["request_id"]
    assert told["certificates"] == [{"kind": "registration_proof", "number": OLD_PROOF}]  # its own, nothing else
    assert banks.sent("mortgage.registered", "sz-cmb") == []

    case = banks.case("sz-cmb", "PKG_PKG-2026-0001")
    assert case["stage"] == "booked" and case["participants"] == ["sz-ccb", "sz-cmb", "sz-registry"]
    no_personal_data(case)
    banks.refused("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF),
                  "mortgage_released")
    banks.send("sz-ccb", "mortgage.requested", banks.request("sz-ccb", "release", existing_proof_number=new_proof))
    assert len(banks.registry_sent()) == 2


def test_staged_package_then_the_old_mortgage_is_released_after_payoff_with_the_escrow(banks):
    # Staged: the old mortgage need not be known yet (the new one only ranks behind it).
    new = banks.package("sz-ccb", "new_mortgagee", mode="staged", package_id="PKG-STAGED-1")
    old = banks.package("sz-cmb", "old_mortgagee", mode="staged", package_id="PKG-STAGED-1")
    banks.send("sz-cmb", "mortgage.requested", old)  # either bank may come first
    banks.send("sz-ccb", "mortgage.requested", new)
    [application] = banks.package_filed("PKG-STAGED-1")
    assert application["registrations"] == ["transfer", "mortgage_first"]
    assert application["package"] == {"mode": "staged", "package_id": "PKG-STAGED-1",
                                       "escrow_reference": "ZJJG-2026-0001"}
    assert application["mortgages"] == [{"mortgagee": CCB, "terms": new["package"]["new_mortgage"]["terms"]}]
    assert application["mortgages"][0]["terms"]["rank"] == 2

    banks.send("sz-registry", "registration.booked",
               banks.booking(application, ["粤(2026)深圳市不动产证明第0000200号"], ownership=True))
    assert banks.sent("mortgage.registered", "sz-ccb")[0]["rank"] == 2
    assert banks.sent("registration.result", "sz-cmb")[0]["outcome"] == "booked"
    assert banks.case("sz-cmb", "PKG_PKG-STAGED-1")["package"]["old_mortgage_released"] is None

    # Escrow pays the old loan off; the old bank releases its mortgage, which the booking taught the index.
    release = banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF)
    banks.send("sz-cmb", "mortgage.requested", release)
    filed = banks.filed(release, "sz-cmb")
    assert filed["package"] == {"mode": "staged", "package_id": "PKG-STAGED-1", "escrow_reference": "ZJJG-2026-0001"}
    banks.send("sz-registry", "registration.booked", banks.booking(filed, ["粤(2026)深圳市不动产证明第0000201号"]))
    assert banks.sent("mortgage.registered", "sz-cmb", request_id=release["request_id"])[0]["kind"] == "release"
    package = banks.case("sz-ccb", "PKG_PKG-STAGED-1")["package"]
    assert package["old_mortgage_released"]["case_id"] == f"MTG_sz-cmb_{release['request_id']}"


def test_same_bank_change_one_bank_in_both_roles(banks):
    banks.record_mortgage(OLD_PROOF, CCB)
    both = banks.package("sz-ccb", "both", mode="same_bank_change", package_id="PKG-SAME-1", old_bank=CCB)
    banks.send("sz-ccb", "mortgage.requested", both)
    [application] = banks.package_filed("PKG-SAME-1")
    assert application["registrations"] == ["transfer", "mortgage_change"]
    assert application["mortgages"] == [{"mortgagee": CCB, "terms": both["package"]["new_mortgage"]["terms"],
                                         "existing_proof_number": OLD_PROOF}]
    changed = "粤(2026)深圳市不动产证明第0000300号"
    banks.send("sz-registry", "registration.booked", banks.booking(application, [changed], ownership=True))
    [registered] = banks.sent("mortgage.registered", "sz-ccb")
    assert registered["proof"]["number"] == changed and banks.sent("registration.result", "sz-ccb") == []
    banks.refused("sz-ccb", "mortgage.requested", banks.request("sz-ccb", "release", existing_proof_number=OLD_PROOF),
                  "mortgage_superseded")


def test_a_consent_twice_late_or_for_another_case(banks):
    banks.record_mortgage(OLD_PROOF, CMB)
    new = banks.package("sz-ccb", "new_mortgagee")
    banks.send("sz-ccb", "mortgage.requested", new)
    # Twice: the same consent again (even under a new request id) changes nothing …
    banks.send("sz-ccb", "mortgage.requested", {**new, "request_id": "CCB-RETRY-1", "requested_at": NOW()})
    # … other terms from the same bank, or the same role again from it, are a conflict.
    banks.refused("sz-ccb", "mortgage.requested",
                  banks.package("sz-ccb", "new_mortgagee", transfer={**new["package"]["transfer"], "price_fen": 1}),
                  "package_conflict")
    # For another case: the package id of another unit; the other bank naming other terms.
    banks.refused("sz-ccb", "mortgage.requested", banks.package("sz-ccb", "new_mortgagee", unit=SZ_UNIT_2),
                  "package_mismatch")
    differing = banks.package("sz-cmb", "old_mortgagee")
    differing["package"]["new_mortgage"]["terms"]["secured_amount_fen"] += 100
    banks.refused("sz-cmb", "mortgage.requested", differing, "package_conflict")
    assert banks.registry_sent() == []
    assert [r["role"] for r in banks.case("sz-ccb", "PKG_PKG-2026-0001")["requests"]] == ["new_mortgagee"]

    banks.send("sz-cmb", "mortgage.requested", banks.package("sz-cmb", "old_mortgagee"))
    assert len(banks.package_filed()) == 1
    # Late: after filing, another consent is refused; the same one again is still a no-op.
    banks.refused("sz-cmb", "mortgage.requested", banks.package("sz-cmb", "old_mortgagee"), "package_closed")
    banks.send("sz-ccb", "mortgage.requested", new)
    assert len(banks.package_filed()) == 1


@pytest.mark.parametrize("case", ["consent_missing", "counterparty_not_partner", "unknown_mortgage",
                                  "mortgagee_role_mismatch"])
def test_package_requests_the_door_refuses(banks, case):
    if case == "consent_missing":
        request = banks.package("sz-ccb", "new_mortgagee")
        request["package"]["consents"] = [{**request["package"]["consents"][0], "party_role": "obligor"}]
        code = "consent_missing"
    elif case == "counterparty_not_partner":
        banks.record_mortgage(OLD_PROOF, NOT_A_PARTNER)
        request, code = banks.package("sz-ccb", "new_mortgagee", old_bank=NOT_A_PARTNER), case
    elif case == "unknown_mortgage":  # combined releases the old mortgage: the index must know it
        request, code = banks.package("sz-ccb", "new_mortgagee"), case
    else:
        request, code = banks.package("sz-ccb", "new_mortgagee"), "invalid_data"
        request["package"]["sender_role"] = "old_mortgagee"
    banks.refused("sz-ccb", "mortgage.requested", request, code)
    assert banks.registry_sent() == []


def test_a_package_whose_consent_never_comes_times_out_cleanly(banks):
    from chalicelib import clocks, flows

    banks.record_mortgage(OLD_PROOF, CMB)
    new = banks.package("sz-ccb", "new_mortgagee")
    banks.send("sz-ccb", "mortgage.requested", new)
    consent_clock = clocks.get(clocks.subject_key("package", "PKG-2026-0001"), "package_consent",
                               instance="old_mortgagee")
    assert consent_clock["state"] == "running" and consent_clock["responsible_partner_id"] == "sz-cmb"

    # The awaited bank is late: case.overdue to it (and no other bank), the package still open.
    flows.sweep(now=consent_clock["due_ts"] + 60)
    [overdue] = banks.sent("case.overdue")
    assert overdue["stage"] == "package_consent" and overdue["subject_id"] == "PKG-2026-0001"
    assert banks.sent("case.overdue", "sz-cmb") == [overdue]
    assert banks.case("sz-ccb", "PKG_PKG-2026-0001")["stage"] == "awaiting_consent"

    window = banks.case("sz-ccb", "PKG_PKG-2026-0001")["package"]["window_ends_at"]
    later = datetime.fromisoformat(window).timestamp() + 60
    assert flows.sweep(now=later)["packages_timed_out"] == 1
    assert flows.sweep(now=later + 60)["packages_timed_out"] == 0  # closed once, off the open list
    [told] = banks.sent("registration.result", "sz-ccb")
    assert told["outcome"] == "rejected" and told["reasons"][0]["code"] == "consent_timeout"
    assert told["reference"] == new["request_id"] and banks.sent("registration.result", "sz-cmb") == []
    assert banks.registry_sent() == []
    case = banks.case("sz-ccb", "PKG_PKG-2026-0001")
    assert case["stage"] == "timed_out" and case["package"]["closed"]["awaiting"] == ["old_mortgagee"]
    banks.refused("sz-cmb", "mortgage.requested", banks.package("sz-cmb", "old_mortgagee"), "package_closed")
    # The old mortgage was never taken: CMB may still release it on its own.
    banks.send("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF))
    assert len(banks.registry_sent()) == 1


def test_a_consent_replaced_while_the_package_waited_is_never_filed(banks):
    """The first bank's consent was verified at its door; its bytes are replaced before the other bank
    completes the package: the filing checks again, refuses, and tells both banks; the old mortgage stays free."""
    from chalicelib import documents

    banks.record_mortgage(OLD_PROOF, CMB)
    new = banks.package("sz-ccb", "new_mortgagee")
    banks.send("sz-ccb", "mortgage.requested", new)
    consent = new["package"]["consents"][0]["document"]
    key, bucket = documents.object_key("sz-ccb", consent["document_id"]), documents.document_settings().bucket
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=CONSENT.replace(b"signed", b"forged"),
                                  ContentType="application/pdf")
    assert documents.verify_object(bucket, key) == "rejected"
    banks.send("sz-cmb", "mortgage.requested", banks.package("sz-cmb", "old_mortgagee"))
    assert banks.registry_sent() == []
    for bank in ("sz-ccb", "sz-cmb"):
        [told] = banks.sent("registration.result", bank)
        assert told["outcome"] == "rejected" and told["reasons"][0]["code"] == "document_not_verified"
    assert banks.case("sz-cmb", "PKG_PKG-2026-0001")["stage"] == "refused"
    banks.send("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF))
    assert len(banks.registry_sent()) == 1


def test_a_rejected_package_tells_both_banks_and_frees_the_old_mortgage(banks):
    banks.record_mortgage(OLD_PROOF, CMB)
    new, old = banks.package("sz-ccb", "new_mortgagee"), banks.package("sz-cmb", "old_mortgagee")
    banks.send("sz-ccb", "mortgage.requested", new)
    banks.send("sz-cmb", "mortgage.requested", old)
    [application] = banks.package_filed()
    banks.send("sz-registry", "application.rejected", banks.reject(application))
    for bank, request in (("sz-ccb", new), ("sz-cmb", old)):
        [told] = banks.sent("registration.result", bank)
        assert told["outcome"] == "rejected" and told["reference"] == request["request_id"]
    assert banks.case("sz-ccb", "PKG_PKG-2026-0001")["stage"] == "rejected"
    banks.refused("sz-registry", "registration.booked", banks.booking(application, ["粤(2026)深圳市不动产证明第1号"]),
                  "application_already_decided")
    banks.send("sz-cmb", "mortgage.requested", banks.request("sz-cmb", "release", existing_proof_number=OLD_PROOF))
    assert len(banks.registry_sent()) == 2


def test_two_banks_racing_with_different_terms_the_loser_is_told_on_the_stream(banks):
    banks.record_mortgage(OLD_PROOF, CMB)
    new = banks.package("sz-ccb", "new_mortgagee")
    old = banks.package("sz-cmb", "old_mortgagee")
    old["package"]["transfer"]["price_fen"] += 1
    for bank, request in (("sz-ccb", new), ("sz-cmb", old)):  # both pass the door: no package yet
        status, answer = banks.post(bank, "mortgage.requested", request)
        assert status == 202, answer
    banks.pump()
    assert banks.registry_sent() == []
    [refused] = banks.sent("registration.result")  # to whichever the stream handled second
    assert refused["outcome"] == "rejected" and refused["reasons"][0]["code"] == "package_conflict"
    winner = new if refused["reference"] == old["request_id"] else old
    assert refused["reference"] in (new["request_id"], old["request_id"]) and refused["reference"] != winner["request_id"]
    [kept] = banks.case("sz-registry", "PKG_PKG-2026-0001")["requests"]
    assert kept["request_id"] == winner["request_id"]


def test_consents_handled_in_reverse_stream_order_file_once(banks):
    banks.record_mortgage(OLD_PROOF, CMB)
    for bank, role in (("sz-ccb", "new_mortgagee"), ("sz-cmb", "old_mortgagee")):
        status, answer = banks.post(bank, "mortgage.requested", banks.package(bank, role))
        assert status == 202, answer
    banks.pump(reverse=True)
    assert len(banks.package_filed()) == 1
    assert banks.case("sz-registry", "PKG_PKG-2026-0001")["stage"] == "filed"
    no_personal_data(banks.case("sz-ccb", "PKG_PKG-2026-0001"))
    # Nothing personal in the case record itself either (only the events and the application carry it).
    from chalicelib import cases

    no_personal_data(cases.find("PKG_PKG-2026-0001")[0].doc)
    assert secret_of(banks.partners, "sz-ccb") not in json.dumps(cases.find("PKG_PKG-2026-0001")[0].doc)


def test_a_mortgage_on_a_seized_unit_is_flagged_to_its_registry_and_the_release_lifts_the_flag(banks):
    """Flow 5: while a seizure is recorded, a mortgage application on the unit is flagged to its registry
    at once; the court's release lifts the flag; the booking ends the watch."""
    from chalicelib import restrictions
    from tests.test_seizure_flow import NOTICE, RULING, recorded, release, seize

    court_uscc = "11440300000000001R"  # sz-court

    def papers() -> dict:
        return {"legal_document": banks.upload("sz-court", RULING), "assistance_notice": banks.upload("sz-court", NOTICE)}

    order, rid = "(2026)粤0305执保7号", "CF-440305-2026-0007"
    banks.send("sz-court", "seizure.ordered", seize(order, SZ_UNIT, papers(), court_uscc=court_uscc))
    banks.send("sz-registry", "restriction.recorded", recorded(order, rid, SZ_UNIT))
    request = banks.request("sz-ccb", "first")
    banks.send("sz-ccb", "mortgage.requested", request)
    application = banks.filed(request, "sz-ccb")
    flags = banks.sent("restriction.flagged", "sz-registry", request_id=application["request_id"])
    assert [(f["change"], f["restriction"]["restriction_id"], f["blocked"]) for f in flags] == [("raised", rid, True)]

    banks.send("sz-court", "seizure.ordered", release(order + "之一", order, SZ_UNIT, papers()) | {
        "court": {"name": "深圳市南山区人民法院", "uscc": court_uscc}})
    banks.send("sz-registry", "restriction.recorded", recorded(order, rid, SZ_UNIT, action="released"))
    flags = banks.sent("restriction.flagged", "sz-registry", request_id=application["request_id"])
    assert [(f["change"], f["blocked"]) for f in flags] == [("raised", True), ("lifted", False)]

    banks.send("sz-registry", "registration.booked", banks.booking(application, ["粤(2026)深圳市不动产证明第0000077号"]))
    assert restrictions.load(SZ_UNIT).watches == {}  # booked: no longer an open application
