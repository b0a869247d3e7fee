"""The money domain (chalicelib/money): fee quotes, combined orders, payment matching, the ledger of the
split, refunds and the two-way clearance check. Properties over generated cases (hypothesis): random
tax and fee lines, payer modes, partial results, duplicated and reordered callbacks, refunds.

Expected fees are written out here from DOMAIN.md "Money" / domain_cn.md §3.1 (80 / 550 / 10 yuan,
half 40 / 275), independently of fee_schedule.json.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.errors import HubError
from chalicelib.models import validate_data
from chalicelib.models.examples import build_examples
from chalicelib.money import MoneyError, clearance, fees, ledger, orders, payments

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
EX = build_examples()
EXPIRES = "2025-09-10T23:59:59+08:00"

# Independent expectations (fen), from DOMAIN.md "Money" and domain_cn.md §3.1.
STANDARD = {"residential": 8_000, "non_residential": 55_000, "parking": 8_000, "storage": 8_000}
HALF = {"residential": 4_000, "non_residential": 27_500, "parking": 4_000, "storage": 4_000}
CERT = 1_000
FREE_SERVICES = {"seizure", "cancellation", "preregistration", "inquiry"}
HALF_SERVICES = {"correction", "objection"}


def _literal_values(name: str) -> tuple[str, ...]:
    from chalicelib.models import common

    return typing.get_args(getattr(common, name))


SERVICES = _literal_values("Service")
USES = _literal_values("PropertyUse")


# =============================================================================================
# Fees

def _expected_fee(service, use, extra, exempt, half) -> int:
    if service in FREE_SERVICES:
        return 0
    rate = HALF if (half or service in HALF_SERVICES) else STANDARD
    return (0 if exempt else rate[use]) + extra * CERT


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("service", SERVICES)
def test_fee_quote_for_every_service_and_use(service, use):
    from chalicelib.models.money_events import FeeLine

    for extra in (0, 1, 3):
        for exempt in (False, True):
            for half in (False, True):
                q = fees.quote(service, use, extra, exempt, half, on="2025-09-01")
                assert q.schedule_version == "2016-2559"
                assert q.total_fen == _expected_fee(service, use, extra, exempt, half), (extra, exempt, half)
                assert q.total_fen == sum(line["amount_fen"] for line in q.lines)
                assert [line["line_id"] for line in q.lines] == [f"F{i}" for i in range(1, len(q.lines) + 1)]
                for line in q.lines:
                    FeeLine.model_validate(line)  # canonical FeeLine shape, amount = unit price x quantity
                    assert line["amount_fen"] > 0


def test_fee_quote_lines_are_a_valid_bill():
    q = fees.quote("transfer", "non_residential", extra_certificates=2, on="2025-09-01")
    assert [(x["unit_price_fen"], x["quantity"], x["amount_fen"]) for x in q.lines] == [(55_000, 1, 55_000),
                                                                                      (1_000, 2, 2_000)]
    bill = dict(EX["nontax.bill_requested", "outbound"], lines=q.bill_lines(), total_fen=q.total_fen)
    validate_data("nontax.bill_requested", bill, direction="outbound")
    q.bill_lines()[0]["amount_fen"] = 1  # copies: the quote is unchanged
    assert q.lines[0]["amount_fen"] == 55_000


def test_fee_schedule_knows_every_service_and_use_of_the_models():
    schedule = fees.schedule_for("2025-09-01")
    assert set(schedule["services"]) == set(SERVICES)
    assert set(schedule["use_classes"]) == set(USES)


def test_small_business_pays_only_extra_certificates():
    assert fees.quote("transfer", "non_residential", 0, small_business_exempt=True, on="2025-09-01").lines == ()
    q = fees.quote("transfer", "non_residential", 2, small_business_exempt=True, on="2025-09-01")
    assert q.total_fen == 2_000 and len(q.lines) == 1 and q.lines[0]["line_id"] == "F1"


def test_quote_application_uses_the_day_of_submission():
    app = EX["application.submitted", "inbound"]
    q = fees.quote_application(app)
    assert q.total_fen == app["registration_fee_fen"] == 8_000
    assert fees.quote_application(app, half_rate=True).total_fen == 4_000


def test_land_revenue_line_is_a_fee_line_of_the_stated_amount():
    from chalicelib.models.money_events import FeeLine

    line = fees.land_revenue_line(1_234_567, on="2025-09-01")
    FeeLine.model_validate(line)
    assert (line["line_id"], line["quantity"], line["unit_price_fen"], line["amount_fen"]) == ("LR1", 1, 1_234_567,
                                                                                             1_234_567)
    q = fees.quote("transfer", "residential", 1, on="2025-09-01")
    bill = dict(EX["nontax.bill_requested", "outbound"], lines=q.bill_lines() + [line],
                total_fen=q.total_fen + line["amount_fen"])
    validate_data("nontax.bill_requested", bill, direction="outbound")  # line ids stay unique on one bill
    for bad in (-1, 1.5, True, "100"):
        with pytest.raises(MoneyError) as err:
            fees.land_revenue_line(bad, on="2025-09-01")
        assert err.value.code == "invalid_amount"
    versions = _versions()
    del versions[0]["land_revenue_item"]
    assert fees.land_revenue_line(5, on="2025-09-01", schedules=versions)["fee_item_code"] == "103014801"
    with pytest.raises(MoneyError) as err:
        fees.land_revenue_line(5, on="2031-01-01", schedules=versions)
    assert err.value.code == "no_land_revenue_item"


def _versions():
    base = json.loads(fees.SCHEDULE_PATH.read_text(encoding="utf-8"))[0]
    newer = copy.deepcopy(base)
    newer["version"], newer["effective_from"] = "2030-test", "2030-01-01"
    newer["items"]["registration_residential"]["unit_price_fen"] = 9_000
    return [newer, base]  # any order


def test_the_schedule_in_force_on_the_day_is_used():
    versions = _versions()
    assert fees.quote("transfer", "residential", on="2029-12-31", schedules=versions).total_fen == 8_000
    q = fees.quote("transfer", "residential", on="2030-01-01", schedules=versions)
    assert (q.schedule_version, q.total_fen) == ("2030-test", 9_000)
    assert fees.quote("transfer", "residential", on="2030-01-01T00:30:00+08:00", schedules=versions).total_fen == 9_000
    with pytest.raises(MoneyError) as err:
        fees.quote("transfer", "residential", on="2017-03-31")
    assert err.value.code == "no_fee_schedule"


@pytest.mark.parametrize("breakage", [
    lambda v: v[0]["items"]["extra_certificate"].update(unit_price_fen=10.0),
    lambda v: v[0]["items"]["extra_certificate"].update(unit_price_fen=True),
    lambda v: v[0]["items"]["extra_certificate"].update(fee_item_code="bad code"),
    lambda v: v[0]["services"].update(transfer="quarter"),
    lambda v: v[0]["rates"]["half"].pop("residential"),
    lambda v: v[0].update(effective_from="April 2017"),
    lambda v: v[1].update(version=v[0]["version"]),
    lambda v: v[1].update(effective_from=v[0]["effective_from"]),
    lambda v: v[0].pop("items"),
    lambda v: v[0].update(land_revenue_item={"fee_item_code": "103014801"}),
])
def test_a_broken_schedule_is_refused_when_loaded(breakage):
    versions = _versions()
    breakage(versions)
    with pytest.raises(fees.FeeScheduleError):
        fees.parse_schedules(versions)


def test_the_package_schedule_is_valid():
    fees.load_schedules.cache_clear()
    assert [v["version"] for v in fees.load_schedules()] == ["2016-2559"]


@pytest.mark.parametrize("kwargs, code", [
    ({"service": "demolition"}, "unknown_service"),
    ({"property_use": "castle"}, "unknown_property_use"),
    ({"extra_certificates": -1}, "invalid_quantity"),
    ({"extra_certificates": True}, "invalid_quantity"),
    ({"extra_certificates": 1.0}, "invalid_quantity"),
    ({"half_rate": 1}, "invalid_flag"),
    ({"on": "yesterday"}, "invalid_date"),
])
def test_quote_refuses_bad_input(kwargs, code):
    args = {"service": "transfer", "property_use": "residential", "on": "2025-09-01", **kwargs}
    with pytest.raises(MoneyError) as err:
        fees.quote(**args)
    assert err.value.code == code and err.value.status == 422


@SETTINGS
@given(service=st.sampled_from(SERVICES), use=st.sampled_from(USES), extra=st.integers(0, 10_000),
       exempt=st.booleans(), half=st.booleans())
def test_fee_quote_properties(service, use, extra, exempt, half):
    q = fees.quote(service, use, extra, exempt, half, on="2025-09-01")
    assert q.total_fen == sum(x["amount_fen"] for x in q.lines) == _expected_fee(service, use, extra, exempt, half)
    assert all(x["amount_fen"] == x["unit_price_fen"] * x["quantity"] for x in q.lines)
    assert all(type(x[k]) is int for x in q.lines for k in ("quantity", "unit_price_fen", "amount_fen"))


# =============================================================================================
# Generated cases

IDS = {"obligee": ["110108198805123373", "330106199208080611"], "obligor": ["11010519491231002X", "440305198507150013"]}
TAX_ITEMS = ["10119", "10106", "10101", "10109", "10111", "10113", "30203", "30216"]
BILL_EXPIRIES = [None, "2025-09-08T23:59:59+08:00", "2025-09-12T00:00:00+08:00", "2025-09-10T15:59:59Z"]
amounts = st.one_of(st.just(0), st.integers(1, 10**10))


def _party(role: str, i: int) -> dict:
    return {"role": role, "name": f"{role}{i}", "id_type": "resident_id", "id_number": IDS[role][i],
            "phone": f"1390013900{i}"}


@st.composite
def tax_lines_st(draw):
    n = draw(st.integers(0, 6))
    return [{"line_id": f"L{i}", "tax_item_code": draw(st.sampled_from(TAX_ITEMS)), "tax_name": "税",
             "payer_role": draw(st.sampled_from(orders.ROLES)), "taxable_base_fen": 560_000_000, "rate": "0.01",
             "amount_fen": draw(amounts), "tax_ticket_no": f"3110{draw(st.integers(0, 4)):014d}",
             "treasury_code": draw(st.sampled_from(["1101050000", "1101060000"])),
             "budget_subject": draw(st.sampled_from(["1011901", "1010607", "1010101"])),
             "collecting_authority": "11101050000"} for i in range(1, n + 1)]


@st.composite
def bills_st(draw):
    out = []
    for i in range(1, draw(st.integers(0, 3)) + 1):
        lines = []
        for j in range(1, draw(st.integers(1, 3)) + 1):
            qty, price = draw(st.integers(1, 5)), draw(st.one_of(st.just(0), st.integers(1, 100_000)))
            lines.append({"line_id": f"F{j}", "fee_item_code": f"1030401001{j:02d}", "fee_item_name": "费",
                          "quantity": qty, "unit_price_fen": price, "amount_fen": qty * price})
        bill = {"case_id": "X", "bill_no": f"BN{i}", "payment_code": f"PC{i}", "receiving_unit": f"11010500{i}",
                "lines": lines, "total_fen": sum(x["amount_fen"] for x in lines),
                "issued_at": "2025-09-01T09:31:00+08:00"}
        expiry = draw(st.sampled_from(BILL_EXPIRIES))
        if expiry:
            bill["expires_at"] = expiry
        validate_data("nontax.bill_issued", bill)
        out.append({"payer_role": draw(st.sampled_from(orders.ROLES)), "bill": bill})
    return out


@st.composite
def case_st(draw, both_parties: bool = False):
    present = {"obligee": True, "obligor": True} if both_parties else \
        {r: draw(st.sampled_from([True, True, True, False])) for r in orders.ROLES}
    parties = [_party(r, i) for r in orders.ROLES if present[r] for i in range(draw(st.integers(1, 2)))]
    return {"case_id": draw(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
            "payer_mode": draw(st.sampled_from(orders.PAYER_MODES)), "parties": parties,
            "tax_lines": draw(tax_lines_st()), "bills": draw(bills_st()), "expires_at": EXPIRES,
            "unit_code": draw(st.sampled_from([None, "110105001001GB00001F00010001"]))}


def _owing_roles(case) -> set[str]:
    mode = case["payer_mode"]
    owing: set[str] = set()
    for t in case["tax_lines"]:
        if t["amount_fen"]:
            owing.add(t["payer_role"])
    for b in case["bills"]:
        if b["bill"]["total_fen"]:
            owing.add(b["payer_role"])
    if mode != "each_pays_own" and owing:
        return {"obligee" if mode == "obligee_pays_all" else "obligor"}
    return owing


def _build(case, **kwargs):
    return orders.build_orders(case["case_id"], case["payer_mode"], case["parties"], case["tax_lines"],
                               case["bills"], case["expires_at"], unit_code=case["unit_code"], **kwargs)


def _dest(group, line):
    return (group, ledger.credit_account(group, line), line["amount_fen"])


# =============================================================================================
# Orders

@SETTINGS
@given(case=case_st())
def test_orders_are_valid_complete_and_sum_to_their_totals(case):
    owing = _owing_roles(case)
    roles_present = {p["role"] for p in case["parties"]}
    if owing - roles_present:
        with pytest.raises(MoneyError) as err:
            _build(case)
        assert err.value.code == "no_payer"
        return
    built = _build(case)
    # one order per owing role; obligee first; nothing owed, no order
    assert [o["payer_role"] for o in built] == [r for r in orders.ROLES if r in owing]
    seen_subs: set[str] = set()
    for o in built:
        validate_data("payment.order_requested", o, direction="outbound")
        lines = o["tax_lines"] + o["nontax_lines"]
        assert o["total_fen"] == sum(x["amount_fen"] for x in lines) > 0
        assert all(x["amount_fen"] > 0 for x in lines)  # zero lines are not collected
        assert ID_RE.match(o["order_id"])
        for x in lines:
            assert ID_RE.match(x["sub_order_id"]) and x["sub_order_id"].startswith(o["order_id"] + "-")
            assert x["sub_order_id"] not in seen_subs
            seen_subs.add(x["sub_order_id"])
        first = next(p for p in case["parties"] if p["role"] == o["payer_role"])
        assert o["payer"]["id_number"] == first["id_number"] and "role" not in o["payer"]
        # an order never outlives a bill it collects
        codes = {x["payment_code"] for x in o["nontax_lines"]}
        ends = [EXPIRES] + [b["bill"]["expires_at"] for b in case["bills"]
                            if b["bill"]["payment_code"] in codes and "expires_at" in b["bill"]]
        assert o["expires_at"] in ends
        assert orders._when(o["expires_at"], "x")[0] == min(orders._when(e, "x")[0] for e in ends)
    # every non-zero input line is in exactly one order, to the right payer and destination
    want: list[tuple] = []
    for t in case["tax_lines"]:
        if t["amount_fen"]:
            role = t["payer_role"] if case["payer_mode"] == "each_pays_own" else next(iter(owing))
            want.append((role, "tax", f"treasury:{t['treasury_code']}:{t['budget_subject']}", t["amount_fen"]))
    for b in case["bills"]:
        for x in b["bill"]["lines"]:
            if x["amount_fen"]:
                role = b["payer_role"] if case["payer_mode"] == "each_pays_own" else next(iter(owing))
                want.append((role, "nontax", f"nontax:{b['bill']['receiving_unit']}:{b['bill']['payment_code']}",
                             x["amount_fen"]))
    got = [(o["payer_role"], *_dest(g, x)) for o in built
           for g, key in (("tax", "tax_lines"), ("nontax", "nontax_lines")) for x in o[key]]
    assert sorted(got) == sorted(want)
    # deterministic: same inputs, same orders
    assert _build(copy.deepcopy(case)) == built


def test_orders_of_the_catalog_example():
    app = EX["application.submitted", "inbound"]
    built = orders.build_orders(app["case_id"], app["payer_mode"], app["parties"],
                                EX["tax.assessed", "inbound"]["lines"],
                                [{"payer_role": "obligee", "bill": EX["nontax.bill_issued", "inbound"]}], EXPIRES)
    assert [(o["order_id"], o["payer_role"], o["total_fen"]) for o in built] == [
        ("BJ2025-000123-E-1", "obligee", 5_608_000), ("BJ2025-000123-R-1", "obligor", 5_600_000)]
    assert built[0]["expires_at"] == "2025-09-08T23:59:59+08:00"  # the bill expires before the asked time
    assert [x["sub_order_id"] for x in built[0]["tax_lines"] + built[0]["nontax_lines"]] == [
        "BJ2025-000123-E-1-T1", "BJ2025-000123-E-1-N1"]


def test_zero_lines_are_left_out_and_an_empty_order_is_not_made():
    stamp = dict(EX["tax.assessed", "inbound"]["lines"][0], line_id="L9", tax_item_code="10111", amount_fen=0,
                 tax_ticket_no="311016250900019999")
    app = EX["application.submitted", "inbound"]
    assert orders.build_orders("C1", "each_pays_own", app["parties"], [stamp], [], EXPIRES) == []
    built = orders.build_orders("C1", "obligor_pays_all", app["parties"],
                                [stamp] + EX["tax.assessed", "inbound"]["lines"], [], EXPIRES)
    assert len(built) == 1 and [x["tax_ticket_no"] for x in built[0]["tax_lines"]] == [
        "311016250900012345", "311016250900012346"]
    assert built[0]["payer_role"] == "obligor" and built[0]["total_fen"] == 11_200_000


def test_order_ids_are_short_and_distinguish_cities():
    long_case = "X" * 64
    a = orders.order_id_for(long_case, "obligee", 999)
    b = orders.order_id_for(long_case[:-1] + "Y", "obligee", 999)
    assert a != b and len(orders.sub_order_id_for(a, "T", 100)) <= 32
    assert orders.order_id_for("BJ2025-000123", "obligor") == "BJ2025-000123-R-1"
    bj = orders.order_id_for("2025-0001", "obligee", unit_code="110105001001GB00001F00010001")
    sh = orders.order_id_for("2025-0001", "obligee", unit_code="310104001001GB00001F00010001")
    assert bj == "110105-2025-0001-E-1" and bj != sh


@pytest.mark.parametrize("mutate, code", [
    (lambda c: c.update(payer_mode="split"), "invalid_payer_mode"),
    (lambda c: c["tax_lines"][0].update(payer_role="buyer"), "invalid_payer_role"),
    (lambda c: c["tax_lines"].append(dict(c["tax_lines"][0])), "duplicate_line"),
    (lambda c: c["tax_lines"][0].update(amount_fen=5.5), "invalid_amount"),
    (lambda c: c["tax_lines"][0].update(amount_fen=True), "invalid_amount"),
    (lambda c: c["bills"].append(copy.deepcopy(c["bills"][0])), "duplicate_bill"),
    (lambda c: c["bills"][0]["bill"].update(total_fen=1), "total_mismatch"),
    (lambda c: c["bills"][0].pop("payer_role"), "invalid_payer_role"),
    (lambda c: c.update(parties=[p for p in c["parties"] if p["role"] == "obligee"]), "no_payer"),
    (lambda c: c.update(expires_at="2025-09-10T23:59:59"), "invalid_time"),
    (lambda c: c.update(case_id="BJ 2025"), "invalid_case_id"),
])
def test_build_orders_refuses_bad_input(mutate, code):
    app = EX["application.submitted", "inbound"]
    case = {"case_id": app["case_id"], "payer_mode": "each_pays_own", "parties": copy.deepcopy(app["parties"]),
            "tax_lines": copy.deepcopy(EX["tax.assessed", "inbound"]["lines"]),
            "bills": [{"payer_role": "obligee", "bill": copy.deepcopy(EX["nontax.bill_issued", "inbound"])}],
            "expires_at": EXPIRES, "unit_code": None}
    mutate(case)
    with pytest.raises(MoneyError) as err:
        _build(case)
    assert err.value.code == code


# =============================================================================================
# Payment results, the ledger of the split

def _result(order, statuses=None, platform="ZR1"):
    lines = order["tax_lines"] + order["nontax_lines"]
    statuses = statuses or ["paid"] * len(lines)
    return {"order_id": order["order_id"], "platform_order_id": platform, "total_fen": order["total_fen"],
            "paid_at": "2025-09-01T11:02:13+08:00",
            "lines": [{"sub_order_id": x["sub_order_id"], "platform_sub_order_id": f"{platform}-{i}",
                       "status": s, "amount_fen": x["amount_fen"]} for i, (x, s) in enumerate(zip(lines, statuses))]}


def _example_order():
    return copy.deepcopy(EX["payment.order_requested", "outbound"])


def test_the_catalog_example_result_matches_its_order_and_books_a_balanced_split():
    order, result = _example_order(), copy.deepcopy(EX["payment.succeeded", "inbound"])
    validate_data("payment.succeeded", result)
    m = payments.match(order, result)
    assert m.ok and m.complete and m.hold_reason is None and m.paid_fen == order["total_fen"]
    entries = ledger.entries_for_payment(order, m.paid_lines, "pay_ccb_bj")
    assert [(e.entry_id, e.debit, e.credit, e.amount_fen) for e in entries] == [
        ("110105-BJ2025-000123-E-1:110105-BJ2025-000123-E-1-T1:pay", "clearing:pay_ccb_bj", "treasury:1101050000:1011901",
         5_600_000),
        ("110105-BJ2025-000123-E-1:110105-BJ2025-000123-E-1-N1:pay", "clearing:pay_ccb_bj",
         "nontax:110105001:1101052509000123456", 8_000)]
    assert entries[0].platform_order_id == "ZR202509011000001"
    assert entries[0].platform_sub_order_id == "ZR202509011000001-1"
    assert ledger.balances(entries) == {"clearing:pay_ccb_bj": 5_608_000, "treasury:1101050000:1011901": -5_600_000,
                                        "nontax:110105001:1101052509000123456": -8_000}
    assert ledger.paid_in_full(order, entries)
    assert [ledger.Entry.from_dict(json.loads(json.dumps(e.to_dict()))) for e in entries] == entries


def _mutations(order):
    """(name, mutate(result), expected hold reason); each introduces exactly one kind of problem."""
    def first_line(r):
        return r["lines"][0]

    out = [
        ("other order", lambda r: r.update(order_id=r["order_id"] + "X"), "order_mismatch"),
        ("total", lambda r: r.update(total_fen=r["total_fen"] + 1), "total_mismatch"),
        ("line amount", lambda r: first_line(r).update(amount_fen=first_line(r)["amount_fen"] + 1), "amount_mismatch"),
        ("line amount down", lambda r: first_line(r).update(amount_fen=first_line(r)["amount_fen"] - 1),
         "amount_mismatch"),
        ("unknown line", lambda r: r["lines"].append(dict(first_line(r), sub_order_id="NOPE-1")), "unknown_sub_order"),
        ("missing line", lambda r: r["lines"].pop(), "missing_sub_order"),
        ("duplicate line", lambda r: r["lines"].append(dict(first_line(r))), "duplicate_sub_order"),
        ("status", lambda r: first_line(r).update(status="pending"), "invalid_status"),
        ("receiving unit", lambda r: first_line(r).update(receiving_unit="999999"), "receiving_unit_mismatch"),
        ("item", lambda r: first_line(r).update(fee_item_code="99999"), "fee_item_mismatch"),
        ("float amount", lambda r: first_line(r).update(amount_fen=float(first_line(r)["amount_fen"])),
         "malformed_result"),
        ("no lines key", lambda r: r.pop("lines"), "malformed_result"),
        ("nothing paid", lambda r: [x.update(status="failed") for x in r["lines"]], "nothing_paid"),
    ]
    return out


@pytest.mark.parametrize("name", [m[0] for m in _mutations(_example_order())])
def test_a_mismatched_result_is_held_and_never_booked(name):
    order = _example_order()
    _name, mutate, reason = next(m for m in _mutations(order) if m[0] == name)
    result = _result(order)
    mutate(result)
    m = payments.match(order, result)
    assert not m.ok and m.hold_reason == reason and m.paid_lines == () and m.failed_lines == ()
    assert m.problems and m.problems[0].split(":")[0] == reason
    assert ledger.entries_for_payment(order, m.paid_lines, "pay") == []


def test_partial_success_books_the_paid_lines_and_leaves_the_order_open():
    order = _example_order()
    m = payments.match(order, _result(order, ["failed", "paid"]))
    assert m.ok and not m.complete
    assert [x["sub_order_id"] for x in m.failed_lines] == ["110105-BJ2025-000123-E-1-T1"]
    entries = ledger.entries_for_payment(order, m.paid_lines, "pay")
    assert [e.sub_order_id for e in entries] == ["110105-BJ2025-000123-E-1-N1"]
    assert ledger.outstanding(order, entries) == {"110105-BJ2025-000123-E-1-T1": 5_600_000}
    assert not ledger.paid_in_full(order, entries)
    # the later complete result books only the line still open
    m2 = payments.match(order, _result(order))
    new = ledger.unbooked(entries, ledger.entries_for_payment(order, m2.paid_lines, "pay"))
    assert [e.sub_order_id for e in new] == ["110105-BJ2025-000123-E-1-T1"]
    assert ledger.paid_in_full(order, entries + new)


def test_booking_refuses_unmatched_lines_and_conflicts():
    order = _example_order()
    paid = list(payments.match(order, _result(order)).paid_lines)
    for bad in (dict(paid[0], amount_fen=1), dict(paid[0], sub_order_id="X-1"), dict(paid[0], status="failed"),
                dict(paid[0], amount_fen=True)):
        with pytest.raises(MoneyError):
            ledger.entries_for_payment(order, [bad], "pay")
    with pytest.raises(MoneyError) as err:
        ledger.entries_for_payment(order, [paid[0], dict(paid[0], platform_sub_order_id="other")], "pay")
    assert err.value.code == "unmatched_line"
    entries = ledger.entries_for_payment(order, paid, "pay")
    changed = ledger.entries_for_payment(order, [dict(paid[0], platform_sub_order_id="other")], "pay")
    with pytest.raises(MoneyError) as err:
        ledger.unbooked(entries, changed)
    assert err.value.code == "ledger_conflict"
    for account in ("", "clearing:", "a:b", None):
        with pytest.raises(MoneyError):
            ledger.entries_for_payment(order, paid, account)
    assert ledger.entries_for_payment(order, paid, "clearing:pay") == entries


@SETTINGS
@given(case=case_st(both_parties=True), data=st.data())
def test_callbacks_in_any_order_and_number_book_each_paid_line_once(case, data):
    built = _build(case)
    book: list[ledger.Entry] = []
    for order in built:
        lines = order["tax_lines"] + order["nontax_lines"]
        callbacks = []
        for _ in range(data.draw(st.integers(1, 4))):
            statuses = data.draw(st.lists(st.sampled_from(["paid", "failed"]), min_size=len(lines),
                                          max_size=len(lines)))
            result = _result(order, statuses, platform=f"P{order['order_id'][-5:]}")
            result["lines"] = data.draw(st.permutations(result["lines"]))  # any line order
            callbacks.append(result)
        callbacks += data.draw(st.lists(st.sampled_from(callbacks), max_size=3))  # duplicates
        callbacks = data.draw(st.permutations(callbacks))  # any arrival order
        ever_paid: set[str] = set()
        for result in callbacks:
            m = payments.match(order, result)
            if not any(x["status"] == "paid" for x in result["lines"]):
                assert m.hold_reason == "nothing_paid"
                continue
            assert m.ok, m.problems
            ever_paid |= {x["sub_order_id"] for x in m.paid_lines}
            assert m.paid_fen + sum(x["amount_fen"] for x in m.failed_lines) == order["total_fen"]
            book += ledger.unbooked(book, ledger.entries_for_payment(order, m.paid_lines, "pay_ccb"))
        # the ledger: exactly the lines paid in some callback, each once, for its full amount
        mine = [e for e in book if e.order_id == order["order_id"]]
        assert sorted(e.sub_order_id for e in mine) == sorted(ever_paid)
        by_sub = {x["sub_order_id"]: x for x in lines}
        for e in mine:
            assert e.kind == "payment" and e.amount_fen == by_sub[e.sub_order_id]["amount_fen"]
            group = "tax" if "tax_ticket_no" in by_sub[e.sub_order_id] else "nontax"
            assert e.credit == ledger.credit_account(group, by_sub[e.sub_order_id])
        assert set(ledger.outstanding(order, book)) == set(by_sub) - ever_paid
        # replaying every callback changes nothing
        for result in callbacks:
            m = payments.match(order, result)
            if m.ok:
                assert ledger.unbooked(book, ledger.entries_for_payment(order, m.paid_lines, "pay_ccb")) == []
    ids = [e.entry_id for e in book]
    assert len(ids) == len(set(ids))
    balance = ledger.balances(book)
    assert sum(balance.values()) == 0
    assert balance.get("clearing:pay_ccb", 0) == sum(e.amount_fen for e in book)


@SETTINGS
@given(case=case_st(both_parties=True), data=st.data())
def test_any_single_mismatch_is_held(case, data):
    built = _build(case)
    if not built:
        return
    order = data.draw(st.sampled_from(built))
    name, mutate, reason = data.draw(st.sampled_from(_mutations(order)))
    result = _result(order)
    result["lines"] = data.draw(st.permutations(result["lines"]))
    mutate(result)
    m = payments.match(order, result)
    assert (m.ok, m.hold_reason, m.paid_lines) == (False, reason, ()), name


# =============================================================================================
# Refunds

def _refund(order, lines, refund_id="RF1", whole=False):
    return {"order_id": order["order_id"], "refund_id": refund_id, "whole": whole,
            "total_fen": sum(a for _s, a in lines), "lines": [{"sub_order_id": s, "amount_fen": a} for s, a in lines],
            "refunded_at": "2025-09-05T10:00:00+08:00"}


def _paid_book(order):
    return ledger.entries_for_payment(order, payments.match(order, _result(order)).paid_lines, "pay")


def test_a_refund_reverses_exactly_what_was_booked():
    order = _example_order()
    book = _paid_book(order)
    t1, n1 = "110105-BJ2025-000123-E-1-T1", "110105-BJ2025-000123-E-1-N1"
    refund = _refund(order, [(n1, 8_000)])
    validate_data("payment.refunded", refund)
    entries = ledger.entries_for_refund(order, book, refund)
    assert [(e.entry_id, e.kind, e.debit, e.credit, e.amount_fen) for e in entries] == [
        (f"110105-BJ2025-000123-E-1:{n1}:refund:RF1", "refund", "nontax:110105001:1101052509000123456", "clearing:pay",
         8_000)]
    assert entries[0].platform_sub_order_id == book[1].platform_sub_order_id
    book += entries
    assert ledger.balances(book)["nontax:110105001:1101052509000123456"] == 0
    assert ledger.outstanding(order, book) == {n1: 8_000}
    # the same refund again: the same entries, nothing new
    assert ledger.entries_for_refund(order, book, refund) == entries
    assert ledger.unbooked(book, entries) == []
    # the same refund id with another amount is a conflict; a further refund exceeds what is booked
    assert ledger.entries_for_refund(order, book, _refund(order, [(n1, 4_000)])) == "refund_conflict"
    assert ledger.entries_for_refund(order, book, _refund(order, [(n1, 1)], "RF2")) == "refund_exceeds_booked"
    # partial refunds add up to the line, not beyond
    part = ledger.entries_for_refund(order, book, _refund(order, [(t1, 5_000_000)], "RF3"))
    book += part
    assert ledger.entries_for_refund(order, book, _refund(order, [(t1, 600_001)], "RF4")) == "refund_exceeds_booked"
    assert ledger.entries_for_refund(order, book, _refund(order, [(t1, 600_000)], "RF4", whole=True))[0].amount_fen \
        == 600_000


@pytest.mark.parametrize("refund, book_first, reason", [
    (lambda o: _refund(o, [("110105-BJ2025-000123-E-1-N1", 8_000)]), False, "refund_before_payment"),
    (lambda o: _refund(o, [("110105-BJ2025-000123-E-1-N1", 8_001)]), True, "refund_exceeds_booked"),
    (lambda o: _refund(o, [("NOPE-1", 1)]), True, "unknown_sub_order"),
    (lambda o: dict(_refund(o, [("110105-BJ2025-000123-E-1-N1", 1)]), order_id="OTHER"), True, "order_mismatch"),
    (lambda o: dict(_refund(o, [("110105-BJ2025-000123-E-1-N1", 1)]), total_fen=2), True, "total_mismatch"),
    (lambda o: _refund(o, [("110105-BJ2025-000123-E-1-N1", 1)] * 2), True, "duplicate_sub_order"),
    (lambda o: _refund(o, [("110105-BJ2025-000123-E-1-N1", 1.0)]), True, "malformed_refund"),
    (lambda o: _refund(o, [("110105-BJ2025-000123-E-1-N1", 8_000)], whole=True), True, "whole_refund_incomplete"),
])
def test_a_bad_refund_is_held(refund, book_first, reason):
    order = _example_order()
    book = _paid_book(order) if book_first else []
    assert ledger.entries_for_refund(order, book, refund(order)) == reason


def test_a_refund_of_a_line_that_failed_is_refund_before_payment():
    order = _example_order()
    book = ledger.entries_for_payment(order, payments.match(order, _result(order, ["failed", "paid"])).paid_lines, "p")
    assert ledger.entries_for_refund(order, book, _refund(order, [("110105-BJ2025-000123-E-1-T1", 1)])) \
        == "refund_before_payment"
    whole = ledger.entries_for_refund(order, book, _refund(order, [("110105-BJ2025-000123-E-1-N1", 8_000)], whole=True))
    assert [e.amount_fen for e in whole] == [8_000]  # a whole refund covers what was paid


@SETTINGS
@given(case=case_st(both_parties=True), data=st.data())
def test_refunds_never_exceed_their_line(case, data):
    built = _build(case)
    if not built:
        return
    order = data.draw(st.sampled_from(built))
    lines = order["tax_lines"] + order["nontax_lines"]
    statuses = data.draw(st.lists(st.sampled_from(["paid", "paid", "failed"]), min_size=len(lines),
                                  max_size=len(lines)))
    m = payments.match(order, _result(order, statuses))
    book = ledger.entries_for_payment(order, m.paid_lines, "pay") if m.ok else []
    paid = {e.sub_order_id: e.amount_fen for e in book}
    remaining = dict(paid)
    refunds = []
    for k in range(data.draw(st.integers(1, 6))):
        chosen = data.draw(st.lists(st.sampled_from([x["sub_order_id"] for x in lines]), min_size=1, unique=True))
        amounts = [data.draw(st.integers(0, max(1, remaining.get(s, 0) + data.draw(st.sampled_from([0, 0, 1, 1000])))))
                   for s in chosen]
        refund = _refund(order, list(zip(chosen, amounts)), refund_id=f"RF{k}")
        refunds.append(refund)
        got = ledger.entries_for_refund(order, book, refund)
        before = [s for s, a in zip(chosen, amounts) if a > 0 and s not in paid]
        over = [s for s, a in zip(chosen, amounts) if s in paid and a > remaining[s]]
        if before:
            assert got == "refund_before_payment"
        elif over:
            assert got == "refund_exceeds_booked"
        else:
            assert isinstance(got, list)
            assert sum(e.amount_fen for e in got) == refund["total_fen"]
            book += ledger.unbooked(book, got)
            for s, a in zip(chosen, amounts):
                if s in remaining:
                    remaining[s] -= a
    net = ledger.net_booked(book)
    for sub, amount in paid.items():
        assert 0 <= net[(order["order_id"], sub)] == remaining[sub] <= amount
    for e in book:
        if e.kind == "refund":
            pay = next(p for p in book if p.kind == "payment" and p.sub_order_id == e.sub_order_id)
            assert (e.debit, e.credit) == (pay.credit, pay.debit)
    ids = [e.entry_id for e in book]
    assert len(ids) == len(set(ids)) and sum(ledger.balances(book).values()) == 0
    for refund in refunds:  # replaying any refund books nothing new
        again = ledger.entries_for_refund(order, book, refund)
        if isinstance(again, list):
            assert ledger.unbooked(book, again) == []


# =============================================================================================
# Clearance (完税) two-way check

def test_the_catalog_example_clears():
    assessed = EX["tax.assessed", "inbound"]["lines"]
    paid = [{"tax_ticket_no": x["tax_ticket_no"], "amount_fen": x["amount_fen"]} for x in assessed]
    assert clearance.check(assessed, paid, EX["tax.cleared", "inbound"]) == []
    assert clearance.check(assessed, paid[:1], EX["tax.cleared", "inbound"]) == ["cleared_not_paid:311016250900012346"]


def test_paid_tax_lines_come_from_the_ledger_net_of_refunds():
    app = EX["application.submitted", "inbound"]
    assessed = EX["tax.assessed", "inbound"]["lines"]
    built = orders.build_orders(app["case_id"], "obligee_pays_all", app["parties"], assessed, [], EXPIRES)
    book = _paid_book(built[0])
    assert clearance.check(assessed, clearance.paid_tax_lines(built, book), EX["tax.cleared", "inbound"]) == []
    sub = built[0]["tax_lines"][1]["sub_order_id"]
    book += ledger.entries_for_refund(built[0], book, _refund(built[0], [(sub, 100)]))
    assert clearance.check(assessed, clearance.paid_tax_lines(built, book), EX["tax.cleared", "inbound"]) == [
        "paid_amount_mismatch:311016250900012346"]


@SETTINGS
@given(assessed=tax_lines_st(), data=st.data())
def test_clearance_check_both_ways(assessed, data):
    def per_ticket(lines):
        out: dict[str, int] = {}
        for x in lines:
            out[x["tax_ticket_no"]] = out.get(x["tax_ticket_no"], 0) + x["amount_fen"]
        return out

    due = {t: a for t, a in per_ticket(assessed).items() if a > 0}
    paid = [{"tax_ticket_no": x["tax_ticket_no"], "amount_fen": x["amount_fen"]} for x in assessed if x["amount_fen"]]
    paid = data.draw(st.permutations(paid))
    cleared_lines = [{"tax_ticket_no": t, "amount_fen": a} for t, a in due.items()]
    if not cleared_lines:
        assert clearance.check(assessed, paid, []) == []
        return
    # split the clearance between certificates (each payer's taxes may clear separately); add a duplicate
    cut = data.draw(st.integers(1, len(cleared_lines)))
    events = [{"certificate_no": f"C{i}", "assessment_id": "A1", "lines": part,
               "total_fen": sum(x["amount_fen"] for x in part)}
              for i, part in enumerate((cleared_lines[:cut], cleared_lines[cut:])) if part]
    events.append(copy.deepcopy(events[0]))
    assert clearance.check(assessed, paid, events) == []

    ticket = data.draw(st.sampled_from(sorted(due)))
    kind = data.draw(st.sampled_from(["not_cleared", "amount", "unknown", "not_paid", "twice", "paid_unknown"]))
    if kind == "not_cleared":
        events = [dict(e, lines=[x for x in e["lines"] if x["tax_ticket_no"] != ticket]) for e in events]
        expected = [f"assessed_not_cleared:{ticket}"]
    elif kind == "amount":
        events = [dict(e, lines=[dict(x, amount_fen=x["amount_fen"] + 1) if x["tax_ticket_no"] == ticket else x
                                 for x in e["lines"]]) for e in events]
        expected = [f"cleared_amount_mismatch:{ticket}"]
    elif kind == "unknown":
        events.append({"certificate_no": "CX", "lines": [{"tax_ticket_no": "NOTATICKET", "amount_fen": 5}]})
        expected = ["cleared_not_assessed:NOTATICKET"]
    elif kind == "not_paid":
        paid = [x for x in paid if x["tax_ticket_no"] != ticket]
        expected = [f"cleared_not_paid:{ticket}"]
    elif kind == "twice":
        events.append({"certificate_no": "CY", "lines": [{"tax_ticket_no": ticket, "amount_fen": 0}]})
        expected = [f"cleared_twice:{ticket}"]
    else:
        paid = paid + [{"tax_ticket_no": "NOTATICKET", "amount_fen": 7}]
        expected = ["paid_not_assessed:NOTATICKET"]
    assert clearance.check(assessed, paid, events) == expected


# =============================================================================================
# Import cost

def test_importing_the_money_package_imports_neither_pydantic_nor_the_models():
    code = ("import sys\n"
            "from chalicelib.money import fees, orders, payments, ledger, clearance\n"
            "print(sorted(m for m in ('pydantic', 'chalicelib.models', 'boto3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_money_errors_are_hub_errors_without_values():
    with pytest.raises(HubError) as err:
        orders.build_orders("C1", "each_pays_own", [], EX["tax.assessed", "inbound"]["lines"], [], EXPIRES)
    assert err.value.status == 422 and err.value.body()["error"]["code"] == "no_payer"
    assert "11010519491231002X" not in json.dumps(err.value.body())
