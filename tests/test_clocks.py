"""Time limits (效能监管): working-time arithmetic in China time, limits as data, and stage clocks that
alert the responsible partner exactly once per breach, under repeated and concurrent sweeps, with a
compressed clock (the sweep's `now` is injected)."""
from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clocks

BJ_UNIT = "110105001001GB00001F00010001"
CHINA = timezone(timedelta(hours=8))
WD1 = {"value": 1, "unit": "working_days"}


def cn(text: str) -> datetime:
    """A China-time moment from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=CHINA)


def due(start: str, value: int, unit: str) -> datetime:
    return clocks.due(cn(start), {"value": value, "unit": unit})


# ------------------------------------------------------------------------------------- working time

def test_catalog_example_one_working_day_keeps_the_time_of_day():
    assert clocks.due("2025-09-01T09:30:05+08:00", WD1).isoformat() == "2025-09-02T09:30:05+08:00"


def test_utc_and_epoch_inputs_are_read_in_china_time():
    expected = cn("2025-09-02 09:30:05")
    assert clocks.due("2025-09-01T01:30:05Z", WD1) == expected
    assert clocks.due(cn("2025-09-01 09:30:05").timestamp(), WD1) == expected
    with pytest.raises(ValueError):
        clocks.due("2025-09-01T09:30:05", WD1)  # no offset: refused, never guessed


def test_weekend_is_skipped():
    assert due("2025-09-05 10:00", 1, "working_days") == cn("2025-09-08 10:00")  # Fri → Mon
    assert due("2025-09-05 10:00", 5, "working_days") == cn("2025-09-12 10:00")  # Fri → next Fri


def test_holidays_are_skipped():
    # National Day and Mid-Autumn 2025: 1–8 October off.
    assert due("2025-09-30 10:00", 1, "working_days") == cn("2025-10-09 10:00")
    # Spring Festival 2026: 15–23 February off; Saturday 14 February is worked.
    assert due("2026-02-13 10:00", 2, "working_days") == cn("2026-02-24 10:00")
    # New Year's Day 2025 (a Wednesday).
    assert due("2024-12-31 10:00", 1, "working_days") == cn("2025-01-02 10:00")


def test_make_up_working_days_count():
    assert due("2025-09-26 10:00", 1, "working_days") == cn("2025-09-28 10:00")  # Fri → Sun (worked)
    assert due("2025-02-07 10:00", 1, "working_days") == cn("2025-02-08 10:00")  # Fri → Sat (worked)
    assert due("2026-02-13 10:00", 1, "working_days") == cn("2026-02-14 10:00")
    assert due("2025-09-26 16:00", 2, "hours") == cn("2025-09-28 10:00")


def test_a_stage_started_off_hours_counts_from_the_next_opening():
    # Saturday, or Friday evening: the whole of Monday is the one working day.
    assert due("2025-09-06 10:00", 1, "working_days") == cn("2025-09-08 17:00")
    assert due("2025-09-05 18:00", 1, "working_days") == cn("2025-09-08 17:00")
    assert due("2025-09-08 07:00", 2, "hours") == cn("2025-09-08 11:00")
    assert due("2025-09-08 07:00", 1, "working_days") == cn("2025-09-08 17:00")
    assert due("2025-09-08 09:00", 3, "working_days") == cn("2025-09-10 17:00")  # from the opening: 3 whole days


def test_working_hours_skip_lunch_evenings_and_weekends():
    assert due("2025-09-08 11:00", 2, "hours") == cn("2025-09-08 14:00")
    assert due("2025-09-08 12:30", 1, "hours") == cn("2025-09-08 14:00")  # lunch counts from 13:00
    assert due("2025-09-05 16:00", 2, "hours") == cn("2025-09-08 10:00")  # Fri → Mon
    assert due("2025-09-08 16:50", 15, "minutes") == cn("2025-09-09 09:05")
    assert due("2025-09-08 09:00", 7, "hours") == cn("2025-09-08 17:00")  # a working day is 7 h here


def test_calendar_days_are_elapsed_time():
    assert due("2025-09-30 10:00", 7, "calendar_days") == cn("2025-10-07 10:00")


def test_outside_the_calendar_years_only_weekends_are_skipped():
    # 2027's holidays are not in the data yet: 1 January 2027 (a Friday) counts as a working day.
    assert due("2026-12-31 10:00", 1, "working_days") == cn("2027-01-01 10:00")


# ------------------------------------------------------------------------------------- limits as data

def test_limits_per_stage_service_and_city_with_a_default():
    limit = clocks.limit_for
    assert limit("registration", "transfer", "110000") == {"value": 5, "unit": "working_days"}  # national
    assert limit("registration", "mortgage", "110000") == {"value": 1, "unit": "working_days"}
    assert limit("registration", "transfer", "440100") == {"value": 3, "unit": "working_days"}  # Guangzhou
    assert limit("registration", "mortgage", "440100") == {"value": 1, "unit": "working_days"}
    assert limit("registration", "transfer", "310000") == {"value": 2, "unit": "working_days"}  # Shanghai
    assert limit("registration", "mortgage", "310000") == {"value": 1, "unit": "working_days"}  # service > city
    assert limit("tax_assessment", "transfer", "440100") == {"value": 1, "unit": "working_days"}
    assert limit("payment", "transfer", "110000") == {"value": 7, "unit": "calendar_days"}
    assert limit("relay_completion", "inquiry", "330100") == {"value": 1, "unit": "working_days"}


def test_the_default_applies_where_no_rule_is_more_specific():
    doc = json.loads(clocks.LIMITS_FILE.read_text(encoding="utf-8"))
    doc["limits"] = [{"stage": "*", "service": "*", "city": "*", "limit": {"value": 4, "unit": "working_days"}},
                     {"stage": "*", "service": "*", "city": "440300", "limit": {"value": 2, "unit": "working_days"}},
                     {"stage": "booking", "service": "*", "city": "*", "limit": {"value": 3, "unit": "hours"}}]
    limits = clocks.parse_limits(doc)
    assert limits.limit_for("tax_assessment", "transfer", "110000") == {"value": 4, "unit": "working_days"}
    assert limits.limit_for("tax_assessment", "transfer", "440300") == {"value": 2, "unit": "working_days"}
    assert limits.limit_for("booking", "transfer", "440300") == {"value": 3, "unit": "hours"}  # stage > city


def test_the_data_file_is_versioned_and_its_calendar_checked():
    limits = clocks.time_limits()
    assert limits.version
    assert limits.calendar.years >= {2025, 2026}
    assert all(day.weekday() >= 5 for day in limits.calendar.makeup)
    assert not limits.calendar.is_working_day(cn("2025-10-08 10:00").date())
    assert limits.calendar.is_working_day(cn("2025-10-11 10:00").date())  # Saturday, worked
    for stage in limits.stages:
        assert clocks.limit_for(stage, "transfer", "110000")["value"] >= 1


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["limits"].pop(0), "default"),
    (lambda d: d["limits"].append(copy.deepcopy(d["limits"][1])), "two limits"),
    (lambda d: d["limits"].append({"stage": "no_such_stage", "limit": WD1}), "unknown stage"),
    (lambda d: d["limits"].append({"stage": "booking", "service": "lease", "limit": WD1}), "unknown service"),
    (lambda d: d["limits"].append({"stage": "booking", "city": "999999", "limit": WD1}), "unknown city"),
    (lambda d: d["limits"].append({"stage": "booking", "city": "110000", "limit": {"value": 0, "unit": "hours"}}),
     "greater than or equal"),
    (lambda d: d["calendar"]["holidays"][0]["work"].append("2025-01-02"), "not a weekend day"),
    (lambda d: d["calendar"]["holidays"][1]["work"].append("2025-02-01"), "both a holiday"),
    (lambda d: d["calendar"].update(working_hours=[["09:00", "12:00"], ["11:00", "17:00"]]), "non-overlapping"),
    (lambda d: d["calendar"]["holidays"].append({"name": "x", "off": ["2030-01-01", "2030-01-01"]}), "outside"),
    (lambda d: d["stages"]["booking"].update(responsible_kind="mayor"), "unknown partner kind"),
])
def test_a_broken_limits_file_is_refused(breakage, message):
    doc = json.loads(clocks.LIMITS_FILE.read_text(encoding="utf-8"))
    breakage(doc)
    with pytest.raises(ValueError, match=message):
        clocks.parse_limits(doc)


# ------------------------------------------------------------------------------------- stage clocks

class Outbox:
    """The lead's wiring stand-in: records each breach, and checks its data is a valid case.overdue."""

    def __init__(self, fail: int = 0):
        self.breaches: list[dict] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, breach: dict) -> None:
        from chalicelib.models import validate_data

        validate_data("case.overdue", breach["data"], direction="outbound")
        with self.lock:
            if self.fail:
                self.fail -= 1
                raise ConnectionError("partner outbox unavailable")
            self.breaches.append(breach)


def start_case(case_id: str, stage: str = "tax_assessment", started: str = "2025-09-01 09:30:05", **kwargs) -> str:
    key = clocks.case_subject(case_id, BJ_UNIT)
    kwargs.setdefault("responsible_partner_id", "bj-tax")
    assert clocks.start(key, stage, service="transfer", city="110000", started_at=cn(started), **kwargs)
    return key


def test_an_overdue_stage_alerts_exactly_once_with_a_compressed_clock(aws_env):
    from chalicelib.models.examples import build_examples

    key = start_case("BJ2025-000123")
    clock = clocks.get(key, "tax_assessment")
    assert clock["state"] == "running" and clock["due_at"] == "2025-09-02T09:30:05+08:00"
    outbox = Outbox()

    assert clocks.sweep_overdue(cn("2025-09-02 09:30:04"), outbox) == {"overdue_alerted": 0, "overdue_failed": 0}
    assert outbox.breaches == [] and clocks.overdue_list() == []

    detected = cn("2025-09-02 09:31:00")
    assert clocks.sweep_overdue(detected, outbox)["overdue_alerted"] == 1
    for later in (detected, detected + timedelta(minutes=1), detected + timedelta(days=1),
                  detected + timedelta(days=400)):
        assert clocks.sweep_overdue(later, outbox)["overdue_alerted"] == 0
    assert len(outbox.breaches) == 1

    breach = outbox.breaches[0]
    assert breach["data"] == build_examples()["case.overdue", "outbound"]  # the catalog's own example
    assert breach["responsible_partner_id"] == "bj-tax" and breach["responsible_kind"] == "tax"
    assert breach["case_ref"] == ("BJ2025-000123", BJ_UNIT)
    assert breach["type"] == "case.overdue" and breach["purpose"] == "overdue-tax_assessment"

    [row] = clocks.overdue_list()
    assert row["state"] == "open" and row["stage"] == "tax_assessment" and row["breach_id"] == breach["breach_id"]
    assert row["responsible_partner_id"] == "bj-tax" and "alerted_ts" in row
    after = clocks.get(key, "tax_assessment")
    assert after["state"] == "running" and not after["running_listed"]  # off the sweep's list


@pytest.fixture
def atomic_writes(monkeypatch):
    """moto checks a write's condition and applies it without a lock, so two threads can both pass
    it; DynamoDB applies each single-item write atomically. Serialize moto's item operations."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "get_item", "delete_item", "query", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, __original=original, **kwargs):
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


def test_concurrent_sweeps_alert_each_breach_once(aws_env, atomic_writes):
    for n in range(6):
        start_case(f"BJ-2025-01{n:02d}")
    start_case("BJ-2025-0199", started="2025-09-03 09:00")  # not due yet
    outbox = Outbox()
    now = cn("2025-09-03 08:00")
    barrier = threading.Barrier(8)
    results = []

    def sweep():
        barrier.wait()
        results.append(clocks.sweep_overdue(now, outbox))

    threads = [threading.Thread(target=sweep) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(b["subject_key"] for b in outbox.breaches)
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert sum(r["overdue_alerted"] for r in results) == 6
    assert len(clocks.overdue_list()) == 6


def test_stops_racing_sweeps_never_leave_an_open_entry_behind_a_stopped_clock(aws_env, atomic_writes):
    keys = [start_case(f"BJ-2025-02{n:02d}") for n in range(10)]
    outbox = Outbox()
    now = cn("2025-09-03 08:00")
    barrier = threading.Barrier(6)

    def sweep():
        barrier.wait()
        clocks.sweep_overdue(now, outbox)

    def stop(part):
        barrier.wait()
        for key in keys[part::2]:
            clocks.stop(key, "tax_assessment", now)

    threads = [threading.Thread(target=sweep) for _ in range(4)] + [threading.Thread(target=stop, args=(p,))
                                                                      for p in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clocks.overdue_list() == []
    assert all(clocks.get(key, "tax_assessment")["state"] == "stopped" for key in keys)
    counts = Counter(b["subject_key"] for b in outbox.breaches)
    assert set(counts.values()) <= {1}
    closed = clocks.overdue_list(closed_on=datetime.now(CHINA).date())
    assert {row["subject_key"] for row in closed} >= set(counts)


def test_a_stage_stopped_before_its_due_time_never_alerts(aws_env):
    key = start_case("BJ-2025-0002")
    assert clocks.stop(key, "tax_assessment", cn("2025-09-01 15:00")) == "stopped"
    assert clocks.stop(key, "tax_assessment", cn("2025-09-01 15:05")) == "already_stopped"
    outbox = Outbox()
    assert clocks.sweep_overdue(cn("2025-09-30 10:00"), outbox)["overdue_alerted"] == 0
    assert outbox.breaches == [] and clocks.overdue_list() == []
    clock = clocks.get(key, "tax_assessment")
    assert clock["state"] == "stopped" and clock["stopped_ts"] == cn("2025-09-01 15:00").timestamp()
    assert not clocks.start(key, "tax_assessment", service="transfer", city="110000", responsible_partner_id="bj-tax",
                            started_at=cn("2025-09-01 16:00"))  # a replay does not restart it


def test_a_stage_stopped_after_its_alert_closes_the_overdue_entry(aws_env):
    key = start_case("BJ-2025-0003")
    outbox = Outbox()
    clocks.sweep_overdue(cn("2025-09-02 10:00"), outbox)
    assert len(clocks.overdue_list()) == 1
    assert clocks.stop(key, "tax_assessment", cn("2025-09-02 11:00")) == "stopped"
    assert clocks.overdue_list() == []
    closed = clocks.overdue_list(closed_on=datetime.now(CHINA).date())
    assert [row["state"] for row in closed] == ["closed"]
    assert closed[0]["stopped_ts"] == cn("2025-09-02 11:00").timestamp()
    assert clocks.stop(key, "tax_assessment", cn("2025-09-02 12:00")) == "already_stopped"
    assert len(clocks.overdue_list(closed_on=datetime.now(CHINA).date())) == 1
    clocks.sweep_overdue(cn("2025-09-10 10:00"), outbox)
    assert len(outbox.breaches) == 1


def test_a_stop_that_arrives_before_the_start_leaves_nothing_to_alert(aws_env):
    key = clocks.case_subject("BJ-2025-0004", BJ_UNIT)
    assert clocks.stop(key, "tax_clearance", cn("2025-09-01 10:00")) == "stopped_before_start"
    assert not clocks.start(key, "tax_clearance", service="transfer", city="110000", responsible_partner_id="bj-tax",
                            started_at=cn("2025-09-01 11:00"))
    outbox = Outbox()
    clocks.sweep_overdue(cn("2025-09-30 10:00"), outbox)
    assert outbox.breaches == []


def test_start_is_idempotent_and_keeps_its_first_due_time(aws_env):
    key = start_case("BJ-2025-0005")
    assert not clocks.start(key, "tax_assessment", service="transfer", city="110000", responsible_partner_id="bj-tax",
                            started_at=cn("2025-09-05 09:00"))
    assert clocks.get(key, "tax_assessment")["due_at"] == "2025-09-02T09:30:05+08:00"


def test_limits_by_service_and_city_decide_the_due_time(aws_env):
    gz_unit = "440106003001GB00021F00030102"
    for service, days in (("transfer", "2025-09-04T10:00:00+08:00"), ("mortgage", "2025-09-02T10:00:00+08:00")):
        key = clocks.case_subject(f"GZ-{service}", gz_unit)
        clocks.start(key, "registration", service=service, city="440100", responsible_partner_id="gz-registry",
                     started_at=cn("2025-09-01 10:00"))
        assert clocks.get(key, "registration")["due_at"] == days
        assert clocks.get(key, "registration")["limits_version"] == clocks.time_limits().version


def test_a_failed_send_is_retried_by_the_next_sweep_with_the_same_breach(aws_env):
    start_case("BJ-2025-0006")
    outbox = Outbox(fail=1)
    now = cn("2025-09-02 10:00")
    assert clocks.sweep_overdue(now, outbox) == {"overdue_alerted": 0, "overdue_failed": 1}
    [row] = clocks.overdue_list()
    assert "alerted_ts" not in row  # on the operators' list, the partner not told yet
    assert clocks.sweep_overdue(now + timedelta(minutes=1), outbox)["overdue_alerted"] == 1
    assert clocks.sweep_overdue(now + timedelta(minutes=2), outbox)["overdue_alerted"] == 0
    assert len(outbox.breaches) == 1 and outbox.breaches[0]["breach_id"] == row["breach_id"]
    assert outbox.breaches[0]["data"]["detected_at"] == "2025-09-02T10:00:00+08:00"


def test_a_sweep_that_dies_while_sending_is_taken_over_after_its_lease(aws_env):
    start_case("BJ-2025-0007")
    now = cn("2025-09-02 10:00")

    def dies(breach):
        raise SystemExit("the Lambda was killed")

    with pytest.raises(SystemExit):
        clocks.sweep_overdue(now, dies)
    outbox = Outbox()
    assert clocks.sweep_overdue(now + timedelta(seconds=60), outbox)["overdue_alerted"] == 0  # lease held
    later = now + timedelta(seconds=clocks.LEASE_SECONDS + 1)
    assert clocks.sweep_overdue(later, outbox)["overdue_alerted"] == 1
    assert clocks.sweep_overdue(later + timedelta(minutes=1), outbox)["overdue_alerted"] == 0
    [breach] = outbox.breaches
    assert breach["data"]["detected_at"] == "2025-09-02T10:00:00+08:00"  # the first detection, same breach
    assert len(clocks.overdue_list()) == 1


def test_a_stop_while_the_alert_is_being_sent_closes_the_entry(aws_env):
    key = start_case("BJ-2025-0008")
    outbox = Outbox()

    def stop_meanwhile(breach):
        clocks.stop(key, "tax_assessment", cn("2025-09-02 10:00:30"))
        outbox(breach)

    clocks.sweep_overdue(cn("2025-09-02 10:00"), stop_meanwhile)
    assert len(outbox.breaches) == 1
    assert clocks.overdue_list() == []
    assert [r["state"] for r in clocks.overdue_list(closed_on=datetime.now(CHINA).date())] == ["closed"]


def test_relays_and_packages_use_the_same_clocks(aws_env):
    relay = clocks.subject_key("relay", "SZ-REL-2025-0001")
    assert clocks.start(relay, "relay_acceptance", service="transfer", city="110000", instance="1",
                        responsible_partner_id="bj-registry", started_at=cn("2025-09-01 10:00"),
                        detail={"unit_code": BJ_UNIT, "office_partner_id": "sz-office"})
    package = clocks.subject_key("package", "PKG-2025-0001")
    for bank in ("bank-icbc", "bank-ccb"):
        assert clocks.start(package, "package_consent", service="transfer", city="110000", instance=bank,
                            responsible_partner_id=bank, started_at=cn("2025-09-01 10:00"))
    clocks.stop(package, "package_consent", cn("2025-09-01 11:00"), instance="bank-ccb")
    outbox = Outbox()
    assert clocks.sweep_overdue(cn("2025-09-02 10:00"), outbox)["overdue_alerted"] == 2
    by_stage = {b["data"]["stage"]: b for b in outbox.breaches}
    relay_breach, bank_breach = by_stage["relay_acceptance"], by_stage["package_consent"]
    assert relay_breach["data"]["subject"] == "relay" and relay_breach["data"]["subject_id"] == "SZ-REL-2025-0001"
    assert relay_breach["data"]["unit_code"] == BJ_UNIT and "case_id" not in relay_breach["data"]
    assert relay_breach["responsible_kind"] == "registry" and relay_breach["case_ref"] == ("relay", "SZ-REL-2025-0001")
    assert relay_breach["detail"]["office_partner_id"] == "sz-office"
    assert bank_breach["responsible_partner_id"] == "bank-icbc" and bank_breach["responsible_kind"] == "bank"
    assert bank_breach["data"]["subject"] == "package" and bank_breach["purpose"] == "overdue-package_consent-bank-icbc"
    assert len({b["breach_id"] for b in outbox.breaches}) == 2


def test_an_assisted_application_is_clocked_as_a_relay_in_working_hours(aws_env):
    assist = clocks.subject_key("assist", "AS-SZ-2025-0001")
    assert clocks.start(assist, "assist_session", service="transfer", city="110000", responsible_partner_id=None,
                        started_at=cn("2025-09-05 15:00"), detail={"unit_code": BJ_UNIT})
    assert clocks.get(assist, "assist_session")["due_at"] == "2025-09-08T11:00:00+08:00"  # 4 working hours
    outbox = Outbox()
    assert clocks.sweep_overdue(cn("2025-09-08 10:59"), outbox)["overdue_alerted"] == 0
    assert clocks.sweep_overdue(cn("2025-09-08 11:01"), outbox)["overdue_alerted"] == 1
    [breach] = outbox.breaches
    assert breach["data"]["subject"] == "relay" and breach["data"]["limit"] == {"value": 4, "unit": "hours"}
    assert breach["responsible_partner_id"] is None and "responsible_partner_id" not in breach["data"]
    assert breach["responsible_kind"] == "registry" and breach["city"] == "110000"  # the wiring finds them
    assert breach["case_ref"] == ("assist", "AS-SZ-2025-0001")


def test_case_clocks_sit_with_the_case(aws_env):
    from chalicelib import cases

    start_case("BJ-2025-0009")
    start_case("BJ-2025-0009", stage="nontax_bill", responsible_partner_id="bj-fiscal")
    entries = cases.items("BJ-2025-0009", BJ_UNIT, "clock")
    assert sorted(e["stage"] for e in entries) == ["nontax_bill", "tax_assessment"]
    # A case's key_text is accepted as its subject key.
    assert clocks.get("BJ-2025-0009#" + BJ_UNIT, "nontax_bill")["responsible_kind"] == "fiscal"


def test_a_clock_that_could_not_raise_a_valid_alert_is_refused_at_start(aws_env):
    key = clocks.case_subject("BJ-2025-0010", BJ_UNIT)
    common = dict(service="transfer", responsible_partner_id="bj-tax", started_at=cn("2025-09-01 10:00"))
    with pytest.raises(ValueError, match="unknown stage"):
        clocks.start(key, "coffee_break", city="110000", **common)
    with pytest.raises(ValueError, match="case.overdue"):
        clocks.start(key, "tax_assessment", city="999999", **common)
    with pytest.raises(ValueError, match="subject key"):
        clocks.start("contract:X1", "tax_assessment", city="110000", **common)
    with pytest.raises(ValueError, match="stage of a relay"):
        clocks.start(key, "relay_acceptance", city="110000", **common)
    with pytest.raises(ValueError):
        clocks.start(key, "tax_assessment", city="110000", **{**common, "started_at": "2025-09-01 10:00"})
    assert clocks.get(key, "tax_assessment") is None


def emit_overdue(breach: dict) -> int:
    """The wiring suggested to the lead (flows.sweep): the breach as it is, through routing.emit."""
    from chalicelib import delivery, routing
    from chalicelib.partners import get_directory

    directory = get_directory()
    pid = breach["responsible_partner_id"]
    targets = [directory.get(pid)] if pid and directory.get(pid) else \
        directory.find(breach["responsible_kind"], city=breach["city"])
    if not targets:  # permanent: a dead letter for operators, not a retry every minute
        delivery.record_unroutable_id(f"unroutable-{breach['breach_id']}", breach["breach_id"], breach["purpose"],
                                      "case.overdue", "no partner to receive it")
        return 0
    return routing.emit(breach["breach_id"], breach["purpose"], "case.overdue", breach["data"], targets,
                        breach["case_ref"])


def test_a_breach_sent_twice_through_routing_is_delivered_once(aws_env, partners):
    import boto3

    from chalicelib.settings import get_settings

    start_case("BJ-2025-0300")
    assist = clocks.subject_key("assist", "AS-BJ-2025-0300")
    clocks.start(assist, "assist_session", service="transfer", city="110000", responsible_partner_id=None,
                 started_at=cn("2025-09-01 10:00"), detail={"unit_code": BJ_UNIT})
    sent = []

    def send_then_die(breach):
        sent.append(emit_overdue(breach))
        raise SystemExit("killed after scheduling the delivery")

    now = cn("2025-09-03 10:00")
    with pytest.raises(SystemExit):
        clocks.sweep_overdue(now, send_then_die)
    later = now + timedelta(seconds=clocks.LEASE_SECONDS + 1)
    assert clocks.sweep_overdue(later, emit_overdue)["overdue_alerted"] == 2
    items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
    overdue = sorted((i for i in items if i["type"]["S"] == "case.overdue"), key=lambda i: i["partner_id"]["S"])
    assert [(i["partner_id"]["S"], i["case_key"]["S"]) for i in overdue] == [
        ("bj-registry", "assist#AS-BJ-2025-0300"), ("bj-tax", f"BJ-2025-0300#{BJ_UNIT}")]
    for item in overdue:
        body = json.loads(item["body"]["S"])
        assert body["type"] == "case.overdue"
