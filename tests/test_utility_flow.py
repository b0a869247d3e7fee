"""Flow 3 (utilities, 水电气过户) through the app's own handlers: Chalice's test client + moto in-process,
the events stream pumped by hand, partners of tests/support.py (sz-water, sz-power, sz-gas in Shenzhen;
no utility in Beijing).

A transfer case is submitted and booked by its registry (the money part of the case is flow 1's and
tested there: booking it straight away also puts it on the risk list, which these tests ignore). Then:
each consented utility is asked once, with only what it needs; answers change the states idempotently;
an operator retries a failed one; answers for requests the hub never sent (to that partner, for that
utility, for that case) are refused at the door with nothing stored; a consented utility with no
partner is visible to operators and becomes routable by adding a partner record.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.models.examples import SZ_UNIT
from tests.test_relay_flow import Relays
from tests.test_transfer_flow import Flow

BJ_UNIT = "110105001001GB00001F00010001"
SELLER = {"role": "obligor", "name": "赵六测试", "id_type": "resident_id", "id_number": "440106197811204523",
          "phone": "13700137000"}
BUYER = {"role": "obligee", "name": "王五测试", "id_type": "resident_id", "id_number": "440305198507150013",
         "phone": "13600136000", "share": "100%"}
PRICE_FEN = 420_000_000
ADDRESS = "深圳市南山区某路1号1栋101"
ACCOUNTS = {"water": "W0755000123", "gas": "G0755000456"}
PARTNER_OF = {"water": "sz-water", "electricity": "sz-power", "gas": "sz-gas"}
NOW = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731


def submitted(case_id: str, utilities=("water", "electricity", "gas"), unit_code: str = SZ_UNIT) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = json.loads(json.dumps(EVENT_TYPES["application.submitted"].example))
    data.update(case_id=case_id, unit_code=unit_code, parties=[BUYER, SELLER], price_fen=PRICE_FEN,
                utilities_consented=list(utilities), location=ADDRESS, submitted_at=NOW(),
                utility_accounts=[{"utility": u, "account_number": n} for u, n in ACCOUNTS.items() if u in utilities])
    return data


def booked(case_id: str, unit_code: str = SZ_UNIT) -> dict:
    return {"case_id": case_id, "unit_code": unit_code, "service": "transfer", "booked_at": NOW(),
            "certificates": [{"kind": "ownership_certificate", "number": "粤(2026)深圳市不动产权第0100001号"}]}


def completed(request: dict, **changes) -> dict:
    answer = {k: request[k] for k in ("request_id", "case_id", "utility", "unit_code")}
    answer.update(account_number=request.get("account_number") or "NEW0001", completed_at=NOW(), **changes)
    return answer


def failed(request: dict, reason_code: str = "arrears", **changes) -> dict:
    answer = {k: request[k] for k in ("request_id", "case_id", "utility", "unit_code")}
    answer.update(reason_code=reason_code, retryable=True, failed_at=NOW(), **changes)
    return answer


class Utilities(Relays):
    """Relays' signed posting, refusals and stream pump; case reads and delivery look-ups by case."""

    def requests(self, case_id: str, partner_id: str | None = None) -> list[dict]:
        return [r for r in self.sent("utility.transfer_requested", partner_id) if r["case_id"] == case_id]

    def raw_bodies(self, event_type: str) -> list[str]:
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        return [i["body"]["S"] for i in items if i["type"]["S"] == event_type and i["body"]["S"]]

    def read_case(self, partner_id: str, case_id: str) -> tuple[int, dict]:
        return Flow.read(self, partner_id, case_id)

    def utilities(self, case_id: str) -> dict:
        status, body = self.read_case("sz-registry", case_id)
        assert status == 200, body
        return body["cases"][0]["utilities"]

    def book(self, case_id: str, utilities=("water", "electricity", "gas")) -> dict[str, dict]:
        """Submit and book a Shenzhen transfer; the requests the utilities got, by utility."""
        self.send("sz-registry", "application.submitted", submitted(case_id, utilities))
        self.send("sz-registry", "registration.booked", booked(case_id))
        return {r["utility"]: r for r in self.requests(case_id)}


@pytest.fixture
def hub_(hub, partners):
    return Utilities(hub, partners)


def test_a_booked_transfer_asks_each_consented_utility_once_with_only_what_it_needs(hub_):
    requests_ = hub_.book("SZ-UT-1")
    assert sorted(requests_) == ["electricity", "gas", "water"]
    for utility, request in requests_.items():
        assert hub_.requests("SZ-UT-1", PARTNER_OF[utility]) == [request]  # to that utility's partner only
        assert request["request_id"] == f"UT-440305-SZ-UT-1-{utility}-1" and request["attempt"] == 1
        assert request["unit_code"] == SZ_UNIT and request["address"] == ADDRESS
        assert request.get("account_number") == ACCOUNTS.get(utility)
        assert request["old_holder"] == {"name": SELLER["name"], "id_number_masked": "440106********4523"}
        assert request["new_holder"] == {k: BUYER[k] for k in ("name", "id_type", "id_number", "phone")}
        assert request["certificate_number"] == "粤(2026)深圳市不动产权第0100001号"
    # What the utilities receive carries no price, no unmasked seller ID or phone, nothing about money.
    bodies = hub_.raw_bodies("utility.transfer_requested")
    assert len(bodies) == 3
    for body in bodies:
        for secret in (str(PRICE_FEN), "4200000", SELLER["id_number"], SELLER["phone"], "price", "fen", "tax"):
            assert secret not in body
    # The same booking again (a resend under another webhook-id) and the same stream record again ask nobody twice.
    hub_.send("sz-registry", "registration.booked", booked("SZ-UT-1"))
    hub_.seen.clear()
    hub_.pump()
    assert len(hub_.raw_bodies("utility.transfer_requested")) == 3
    states = hub_.utilities("SZ-UT-1")
    assert {u: s["state"] for u, s in states.items()} == {"electricity": "requested", "gas": "requested",
                                                          "water": "requested"}
    assert states["water"]["partner_ids"] == ["sz-water"]


def test_only_consented_utilities_and_only_booked_transfers_are_asked(hub_):
    hub_.book("SZ-UT-NONE", utilities=())
    requests_ = hub_.book("SZ-UT-GAS", utilities=("gas",))
    assert hub_.requests("SZ-UT-NONE") == [] and sorted(requests_) == ["gas"]
    assert hub_.utilities("SZ-UT-NONE") == {}
    hub_.send("sz-registry", "application.submitted", submitted("SZ-UT-UNBOOKED"))
    assert hub_.requests("SZ-UT-UNBOOKED") == []


def test_each_utility_answers_and_a_failed_one_is_retried_by_an_operator(hub_):
    from chalicelib import clocks
    from chalicelib.flows import utility

    requests_ = hub_.book("SZ-UT-2")
    hub_.send("sz-water", "utility.transfer_completed", completed(requests_["water"]))
    hub_.send("sz-gas", "utility.transfer_completed", completed(requests_["gas"], new_account_number="G0755009999"))
    hub_.send("sz-power", "utility.transfer_failed", failed(requests_["electricity"]))
    states = hub_.utilities("SZ-UT-2")
    assert {u: s["state"] for u, s in states.items()} == {"electricity": "failed", "gas": "completed",
                                                          "water": "completed"}
    assert states["electricity"]["reason_code"] == "arrears"
    subject = clocks.case_subject("SZ-UT-2", SZ_UNIT)
    assert {u: clocks.get(subject, "utility_transfer", instance=f"{u}-1")["state"] for u in requests_} == {
        "water": "stopped", "gas": "stopped", "electricity": "stopped"}
    assert [(f["case_id"], f["utility"]) for f in utility.open_failures()] == [("SZ-UT-2", "electricity")]

    # Only a failed utility can be retried.
    with pytest.raises(Exception) as refused:
        utility.retry("SZ-UT-2", "water", "ops-li", "arrears_settled")
    assert (refused.value.status, refused.value.code) == (409, "utility_not_failed")

    result = utility.retry("SZ-UT-2", "electricity", "ops-li", "arrears_settled")
    assert result["attempt"] == 2 and result["request_id"] == "UT-440305-SZ-UT-2-electricity-2"
    power = hub_.requests("SZ-UT-2", "sz-power")
    assert [r["attempt"] for r in power] == [1, 2] and power[1]["request_id"] == result["request_id"]
    assert utility.open_failures() == []
    assert clocks.get(subject, "utility_transfer", instance="electricity-2")["state"] == "running"

    # A late copy of the first failure (the first request id) changes nothing now; the second attempt completes.
    hub_.send("sz-power", "utility.transfer_failed", failed(requests_["electricity"], reason_code="holder_mismatch"))
    retried = hub_.utilities("SZ-UT-2")["electricity"]
    assert retried["state"] == "requested" and retried["attempts"][0]["reason_code"] == "arrears"
    hub_.send("sz-power", "utility.transfer_completed", completed(power[1]))
    shown = hub_.utilities("SZ-UT-2")["electricity"]
    assert shown["state"] == "completed" and shown["attempt"] == 2
    assert [(a["attempt"], a["state"], a["retry"] and a["retry"]["by"]) for a in shown["attempts"]] == [
        (1, "failed", None), (2, "completed", "ops-li")]
    assert shown["attempts"][1]["retry"]["reason"] == "arrears_settled"
    # The utility deliveries: one per attempt, each with its own webhook-id (delivery id).
    from chalicelib.settings import get_settings
    items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
    power_ids = {i["delivery_id"]["S"] for i in items if i["partner_id"]["S"] == "sz-power"}
    assert len(power_ids) == 2


def test_duplicated_and_out_of_order_answers_change_nothing(hub_):
    requests_ = hub_.book("SZ-UT-3")
    water, gas, power = requests_["water"], requests_["gas"], requests_["electricity"]
    hub_.send("sz-water", "utility.transfer_completed", completed(water))
    before = hub_.utilities("SZ-UT-3")
    hub_.send("sz-water", "utility.transfer_completed", completed(water))  # the same fact, another webhook-id
    assert hub_.utilities("SZ-UT-3") == before
    # failed after completed: recorded, not applied
    hub_.send("sz-water", "utility.transfer_failed", failed(water, reason_code="account_not_found"))
    shown = hub_.utilities("SZ-UT-3")["water"]
    assert shown["state"] == "completed"
    assert [(a["outcome"], a["ignored"]) for a in shown["late_answers"]] == [("failed", "after_completed")]
    # failed, then completed after all: completed wins (the account was moved)
    hub_.send("sz-gas", "utility.transfer_failed", failed(gas))
    hub_.send("sz-gas", "utility.transfer_completed", completed(gas))
    assert hub_.utilities("SZ-UT-3")["gas"]["state"] == "completed"
    # a stream record handled twice changes nothing
    hub_.send("sz-power", "utility.transfer_failed", failed(power))
    states = hub_.utilities("SZ-UT-3")
    hub_.seen.clear()
    hub_.pump()
    assert hub_.utilities("SZ-UT-3") == states and states["electricity"]["state"] == "failed"


@pytest.mark.parametrize("case", ["unknown_request", "other_utility_partner", "other_utility_type", "other_case",
                                  "other_unit", "before_the_request", "not_a_utility"])
def test_an_answer_for_a_request_the_hub_never_sent_there_is_refused_and_nothing_stored(hub_, case):
    from chalicelib.flows.utility import request_id_for

    requests_ = hub_.book("SZ-UT-4")
    water = requests_["water"]
    sender, answer = "sz-water", completed(water)
    if case == "unknown_request":
        answer["request_id"] = "UT-440305-SZ-UT-4-water-9"
    elif case == "other_utility_partner":  # sz-gas answering the water request
        sender = "sz-gas"
        answer["utility"] = "gas"
    elif case == "other_utility_type":  # the water company answering as if it were the gas request
        answer["utility"] = "gas"
    elif case == "other_case":
        answer["case_id"] = "SZ-UT-OTHER"
    elif case == "other_unit":
        answer["unit_code"] = "440305001002GB00001F00010002"
    elif case == "before_the_request":  # a case submitted, not booked: its request was never sent
        hub_.send("sz-registry", "application.submitted", submitted("SZ-UT-5"))
        answer = completed({**water, "case_id": "SZ-UT-5",
                            "request_id": request_id_for("SZ-UT-5", SZ_UNIT, "water", 1)})
    elif case == "not_a_utility":
        sender = "bj-registry"  # not a utility at all: the kind check refuses first
    before = hub_.utilities("SZ-UT-4")
    deliveries = hub_.delivery_count()
    if case == "not_a_utility":
        hub_.refused(sender, "utility.transfer_completed", answer, "event_type_not_allowed", status=403)
    else:
        error = hub_.refused(sender, "utility.transfer_completed", answer, "unknown_utility_request")
        assert error["details"] == [{"field": "data.request_id", "code": "unknown_request",
                                     "message": "not a request the hub sent to this partner for this case and utility"}]
        hub_.refused(sender, "utility.transfer_failed", failed({**answer}), "unknown_utility_request")
    assert hub_.utilities("SZ-UT-4") == before and hub_.delivery_count() == deliveries


def test_a_consented_utility_without_a_partner_is_visible_and_routable_once_a_partner_is_added(
        hub_, partners, tmp_path, monkeypatch):
    from chalicelib import delivery
    from chalicelib.flows import utility
    from chalicelib.settings import reset_settings
    from tests.support import new_secret

    hub_.send("bj-registry", "application.submitted", submitted("BJ-UT-1", ("water", "gas"), unit_code=BJ_UNIT))
    hub_.send("bj-registry", "registration.booked", booked("BJ-UT-1", unit_code=BJ_UNIT))
    assert hub_.requests("BJ-UT-1") == []
    dead = [d for d in delivery.list_dead() if d["type"] == "utility.transfer_requested"]
    assert sorted(d["route"] for d in dead) == ["utility-gas-1", "utility-water-1"]
    assert all(d["last_error"] == "no partner to receive it" for d in dead)
    status, body = hub_.read_case("bj-registry", "BJ-UT-1")
    shown = body["cases"][0]["utilities"]
    assert {u: (s["state"], s["reason_code"]) for u, s in shown.items()} == {
        "gas": ("failed", "no_utility_partner"), "water": ("failed", "no_utility_partner")}
    assert sorted(f["utility"] for f in utility.open_failures()) == ["gas", "water"]
    # The dead letters stand on the case's timeline (the console's lanes), under no partner.
    unsent = [e for e in body["cases"][0]["timeline"] if e["type"] == "utility.transfer_requested"]
    assert [(e["direction"], e["partner_id"], e["state"]) for e in unsent] == [("out", "-", "dead")] * 2

    # A water company of Beijing is a partner record away; the operator retries.
    partners["partners"].append({"id": "bj-water", "kind": "utility", "city": "110000", "utility": "water",
                                 "secrets": [new_secret()], "mapping": "canonical", "endpoint": "http://127.0.0.1:9/bj"})
    path = tmp_path / "partners-more.json"
    path.write_text(json.dumps(partners))
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    reset_settings()
    result = utility.retry("BJ-UT-1", "water", "ops-wang", "partner_added", unit_code=BJ_UNIT)
    assert result["partner_ids"] == ["bj-water"] and result["state"] == "requested"
    (request,) = hub_.requests("BJ-UT-1", "bj-water")
    hub_.send("bj-water", "utility.transfer_completed", completed(request))
    assert [f["utility"] for f in utility.open_failures()] == ["gas"]


def test_operator_retry_refuses_what_it_cannot_do(hub_):
    from chalicelib.errors import HubError
    from chalicelib.flows import utility

    hub_.book("SZ-UT-6", utilities=("water",))
    for args, code in [(("NO-SUCH-CASE", "water", "ops", "x"), "case_not_found"),
                       (("SZ-UT-6", "gas", "ops", "x"), "utility_not_requested"),
                       (("SZ-UT-6", "water", "ops", "x"), "utility_not_failed"),
                       (("SZ-UT-6", "water", "ops li", "x"), "invalid_operator"),
                       (("SZ-UT-6", "water", "ops", "Arrears settled, called 13700137000"), "invalid_reason")]:
        with pytest.raises(HubError) as refused:
            utility.retry(*args)
        assert refused.value.code == code


def test_the_case_read_shows_utility_states_without_personal_data_and_utilities_cannot_read_it(hub_):
    requests_ = hub_.book("SZ-UT-7")
    hub_.send("sz-power", "utility.transfer_failed", failed(requests_["electricity"]))
    status, body = hub_.read_case("sz-registry", "SZ-UT-7")
    text = json.dumps(body, ensure_ascii=False)
    for person in (BUYER, SELLER):
        for value in (person["name"], person["id_number"], person["phone"]):
            assert value not in text
    for account in ACCOUNTS.values():
        assert account not in text
    # A utility is not a participant: the read (with amounts) is not for it.
    assert hub_.read_case("sz-water", "SZ-UT-7")[0] == 404


_ID_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXYZ"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=_ID_CHARS, min_size=2, max_size=40))
def test_a_masked_id_is_a_valid_masked_id_and_hides_the_middle(value):
    from chalicelib.models.common import MaskedId, mask_id_number
    from pydantic import TypeAdapter

    masked = mask_id_number(value)
    TypeAdapter(MaskedId).validate_python(masked)
    shown = masked.replace("*", "")
    assert len(shown) <= 10 and len(shown) <= max(0, len(value) - 4)
    assert value.startswith(masked.split("*")[0]) and value.endswith(masked.rsplit("*", 1)[1])
    if len(value) >= 15:
        assert re.fullmatch(r"[0-9A-Z]{6}\*+[0-9A-Z]{4}", masked)


def test_utility_accounts_only_for_consented_utilities_once_each():
    from chalicelib.errors import HubError
    from chalicelib.models import validate_data

    def refused(data: dict) -> dict:
        with pytest.raises(HubError) as error:
            validate_data("application.submitted", data)
        return {d["field"]: d["code"] for d in error.value.details}

    assert validate_data("application.submitted", submitted("SZ-M-1")).utility_accounts[0].utility == "water"
    data = submitted("SZ-M-2", utilities=("gas",))
    data["utility_accounts"].append({"utility": "water", "account_number": "W1"})
    assert refused(data) == {"data.utility_accounts": "utility_not_consented"}
    data = submitted("SZ-M-3")
    data["utility_accounts"].append({"utility": "water", "account_number": "W2"})
    assert refused(data) == {"data.utility_accounts": "duplicate_value"}
