"""The registration fee of a case, quoted from the versioned fee schedule (`fee_schedule.json`).

Why a schedule file and not code: DOMAIN.md "Money" asks to "keep this schedule as data, versioned,
not as code". The fee is fixed by national notice (发改价格规〔2016〕2559号, exemptions 财税〔2016〕79号;
domain_cn.md §3.1), changes by a new notice on a given date, and a case is charged by the schedule in
force on the day it was applied for. So the file is a list of versions, each with `effective_from`,
and `quote(..., on=day)` picks the latest version in force on that day.

Schedule format (one object per version; the list may be in any order):

    {"version": "2016-2559",               # name of the version, echoed in every quote
     "effective_from": "2017-04-01",        # ISO date the version applies from (inclusive)
     "basis": "...", "notes": ["..."],      # where the numbers come from (free text)
     "items": {<item key>: {"fee_item_code": "103040100101",   # 执收项目编码 (the fiscal system's code)
                            "fee_item_name": "不动产登记费（住宅）",
                            "unit_price_fen": 8000}},
     "use_classes": {<property_use>: "residential" | "non_residential"},
     "services": {<service>: "standard" | "half" | "none"},
     "rates": {"standard": {<use class>: <item key>}, "half": {<use class>: <item key>}},
     "extra_certificate_item": <item key>,
     "exempt_pays_extra_certificates": true,
     "land_revenue_item": {"fee_item_code": "103014801", "fee_item_name": "..."}}   # no price: see below

The rules applied to it (each from domain_cn.md §3.1):
- the fee is per case (按件), house and land together; one line of quantity 1;
- `services` says which rate a service pays: standard (transfer, first registration, change, mortgage),
  half (更正 correction, 异议 objection) or none (查封 seizure, 注销 cancellation, 预告 pre-registration;
  an inquiry is no registration). `half_rate=True` asks for the half rate on a charged service: a change
  of the right-holder's name or ID, a split or merge by the same holder (the registry knows the ground,
  the hub does not);
- the standard fee includes the first certificate; every extra certificate is one more line at the
  `extra_certificate_item` price (10 yuan), also at the half rate;
- a small or micro business (小微企业, incl. 个体工商户) pays no registration fee, first certificate
  included; further certificates are still charged (`exempt_pays_extra_certificates`);
- a service without a fee issues no certificate, so it has no lines at all.

A quote with no lines (total 0) means: request no non-tax bill (NontaxBillRequested needs a line).

Land revenue of allocated land (土地出让金/土地收益) is non-tax revenue too (DOMAIN.md "Money"; domain_cn.md
§3.1, §3.3), but its amount is not a schedule price: the application carries it (`land_revenue_fen`).
The schedule only names its fee item (`land_revenue_item`); `land_revenue_line(amount)` makes the line.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from chalicelib.money import MoneyError, fen

__all__ = ["FeeQuote", "FeeScheduleError", "quote", "quote_application", "land_revenue_line", "load_schedules",
           "parse_schedules", "schedule_for", "SCHEDULE_PATH", "LAND_REVENUE_LINE_ID"]

SCHEDULE_PATH = Path(__file__).with_name("fee_schedule.json")
RATE_CLASSES = ("standard", "half", "none")
USE_CLASSES = ("residential", "non_residential")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")  # the canonical `Code` (FeeLine.fee_item_code)
CHINA = _dt.timezone(_dt.timedelta(hours=8))
LAND_REVENUE_LINE_ID = "LR1"  # distinct from the quote's F1, F2 when both go on one bill


class FeeScheduleError(Exception):
    """The schedule file is broken: found when it is loaded (first quote or a test), never mid-case."""


@dataclass(frozen=True)
class FeeQuote:
    """A quote: the schedule version used, FeeLine-shaped lines, and their total in fen.

    `lines` are dicts of the canonical FeeLine shape (line_id, fee_item_code, fee_item_name, quantity,
    unit_price_fen, amount_fen), ready for NontaxBillRequested.lines; `total_fen` = sum of amount_fen.
    """

    schedule_version: str
    lines: tuple[dict[str, Any], ...]
    total_fen: int

    def bill_lines(self) -> list[dict[str, Any]]:
        """Fresh copies of the lines (the dicts inside a frozen quote should not be mutated)."""
        return [dict(line) for line in self.lines]


# --------------------------------------------------------------------------------------------
# Loading

def _check_version(v: Any, index: int) -> dict[str, Any]:
    where = f"fee schedule [{index}]"
    if not isinstance(v, dict):
        raise FeeScheduleError(f"{where}: a version must be an object")
    for key in ("version", "effective_from", "items", "use_classes", "services", "rates", "extra_certificate_item"):
        if key not in v:
            raise FeeScheduleError(f"{where}: missing {key!r}")
    if not isinstance(v["version"], str) or not v["version"]:
        raise FeeScheduleError(f"{where}: version must be a non-empty string")
    try:
        start = _dt.date.fromisoformat(v["effective_from"])
    except (TypeError, ValueError):
        raise FeeScheduleError(f"{where}: effective_from must be an ISO date") from None
    items = v["items"]
    if not isinstance(items, dict) or not items:
        raise FeeScheduleError(f"{where}: items must be a non-empty object")
    for key, item in items.items():
        if not isinstance(item, dict):
            raise FeeScheduleError(f"{where}: item {key!r} must be an object")
        if not isinstance(item.get("fee_item_code"), str) or not _CODE.match(item["fee_item_code"]):
            raise FeeScheduleError(f"{where}: item {key!r}: fee_item_code must be a code (letters, digits, _.-)")
        name = item.get("fee_item_name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise FeeScheduleError(f"{where}: item {key!r}: fee_item_name must be 1-100 characters")
        price = item.get("unit_price_fen")
        if type(price) is not int or price < 0:
            raise FeeScheduleError(f"{where}: item {key!r}: unit_price_fen must be an integer >= 0 (fen)")
    if not isinstance(v["use_classes"], dict) or any(c not in USE_CLASSES for c in v["use_classes"].values()):
        raise FeeScheduleError(f"{where}: use_classes values must be one of {USE_CLASSES}")
    if not isinstance(v["services"], dict) or any(c not in RATE_CLASSES for c in v["services"].values()):
        raise FeeScheduleError(f"{where}: services values must be one of {RATE_CLASSES}")
    rates = v["rates"]
    for rate in ("standard", "half"):
        table = rates.get(rate) if isinstance(rates, dict) else None
        if not isinstance(table, dict):
            raise FeeScheduleError(f"{where}: rates.{rate} must be an object")
        for use_class in USE_CLASSES:
            if table.get(use_class) not in items:
                raise FeeScheduleError(f"{where}: rates.{rate}.{use_class} must name an item")
    if v["extra_certificate_item"] not in items:
        raise FeeScheduleError(f"{where}: extra_certificate_item must name an item")
    land = v.get("land_revenue_item")
    if land is not None and (not isinstance(land, dict) or not isinstance(land.get("fee_item_code"), str)
                             or not _CODE.match(land["fee_item_code"])
                             or not isinstance(land.get("fee_item_name"), str)
                             or not 1 <= len(land["fee_item_name"]) <= 100):
        raise FeeScheduleError(f"{where}: land_revenue_item must be {{fee_item_code, fee_item_name}}")
    if not isinstance(v.get("exempt_pays_extra_certificates", True), bool):
        raise FeeScheduleError(f"{where}: exempt_pays_extra_certificates must be true or false")
    return {**v, "_from": start}


def parse_schedules(doc: Any) -> tuple[dict[str, Any], ...]:
    """Checked versions, oldest first. FeeScheduleError on any defect (names the defect, not a guess)."""
    if not isinstance(doc, list) or not doc:
        raise FeeScheduleError("the fee schedule must be a non-empty list of versions")
    versions = [_check_version(v, i) for i, v in enumerate(doc)]
    seen_names: set[str] = set()
    seen_dates: set[_dt.date] = set()
    for v in versions:
        if v["version"] in seen_names:
            raise FeeScheduleError(f"fee schedule: version {v['version']!r} appears twice")
        if v["_from"] in seen_dates:
            raise FeeScheduleError(f"fee schedule: two versions take effect on {v['_from'].isoformat()}")
        seen_names.add(v["version"])
        seen_dates.add(v["_from"])
    return tuple(sorted(versions, key=lambda v: v["_from"]))


@lru_cache(maxsize=1)
def load_schedules() -> tuple[dict[str, Any], ...]:
    """The package's schedule file, read and checked once per process."""
    try:
        doc = json.loads(SCHEDULE_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeeScheduleError(f"{SCHEDULE_PATH.name}: {exc}") from None
    return parse_schedules(doc)


def _as_day(on: Any) -> _dt.date:
    if on is None:
        return _dt.datetime.now(CHINA).date()
    if isinstance(on, _dt.datetime):  # a datetime is a date subclass but does not compare with one
        return on.date()
    if isinstance(on, _dt.date):
        return on
    if isinstance(on, str):
        try:
            return _dt.datetime.fromisoformat(on).date() if "T" in on else _dt.date.fromisoformat(on)
        except ValueError:
            pass
    raise MoneyError("invalid_date", "on must be a date, a datetime or an ISO date string", "on")


def schedule_for(on: Any = None, schedules: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The version in force on `on` (default: today in China time): the latest effective_from <= on."""
    day = _as_day(on)
    versions = load_schedules() if schedules is None else parse_schedules(list(schedules))
    chosen = None
    for v in versions:
        if v["_from"] <= day:
            chosen = v
    if chosen is None:
        raise MoneyError("no_fee_schedule", "no fee schedule was in force on that day", "on")
    return chosen


# --------------------------------------------------------------------------------------------
# Quoting

def _line(n: int, item: Mapping[str, Any], quantity: int) -> dict[str, Any]:
    return {"line_id": f"F{n}", "fee_item_code": item["fee_item_code"], "fee_item_name": item["fee_item_name"],
            "quantity": quantity, "unit_price_fen": item["unit_price_fen"],
            "amount_fen": item["unit_price_fen"] * quantity}


def quote(service: str, property_use: str, extra_certificates: int = 0, small_business_exempt: bool = False,
          half_rate: bool = False, on: Any = None, *,
          schedules: Iterable[dict[str, Any]] | None = None) -> FeeQuote:
    """The registration fee of one case.

    `service` and `property_use` are the canonical `Service` and `PropertyUse` values; an unknown one
    is MoneyError("unknown_service" / "unknown_property_use"): a new service is a new schedule version,
    never a silent zero. `on` is the day the case was applied for (a date, datetime or ISO string;
    default today in China time). `schedules` replaces the package file (tests, what-if quotes).

    Lines, in this order: F1 the registration fee (quantity 1, per case), F2 the extra certificates
    (quantity = extra_certificates) — each only when it applies (see the module docstring).
    """
    if type(extra_certificates) is not int or not 0 <= extra_certificates <= 10_000:
        raise MoneyError("invalid_quantity", "extra_certificates must be an integer from 0 to 10000",
                         "extra_certificates")
    if not isinstance(small_business_exempt, bool) or not isinstance(half_rate, bool):
        raise MoneyError("invalid_flag", "small_business_exempt and half_rate must be booleans")
    schedule = schedule_for(on, schedules)
    rate = schedule["services"].get(service)
    if rate is None:
        raise MoneyError("unknown_service", "the fee schedule does not know this service", "service")
    use_class = schedule["use_classes"].get(property_use)
    if use_class is None:
        raise MoneyError("unknown_property_use", "the fee schedule does not know this property use",
                         "property_use")
    items = schedule["items"]
    if rate == "none":
        return FeeQuote(schedule["version"], (), 0)
    if half_rate:
        rate = "half"
    lines: list[dict[str, Any]] = []
    if not small_business_exempt:
        lines.append(_line(1, items[schedule["rates"][rate][use_class]], 1))
    if extra_certificates and (not small_business_exempt or schedule.get("exempt_pays_extra_certificates", True)):
        lines.append(_line(len(lines) + 1, items[schedule["extra_certificate_item"]], extra_certificates))
    return FeeQuote(schedule["version"], tuple(lines), sum(line["amount_fen"] for line in lines))


def quote_application(application: Mapping[str, Any], half_rate: bool = False, *,
                      schedules: Iterable[dict[str, Any]] | None = None) -> FeeQuote:
    """The quote for an `application.submitted` data dict, by the schedule in force on submitted_at.

    The day is the application's own (its submitted_at, in the offset it carries), not today's: the
    fee is the one in force when the case was applied for, and replaying the event gives the same
    quote. `half_rate` is not in ApplicationSubmitted (the ground for 减半 on a change is the
    registry's); the caller passes it when it knows.
    """
    return quote(application["service"], application["property_use"],
                 extra_certificates=application.get("extra_certificates", 0),
                 small_business_exempt=application.get("small_business_exempt", False),
                 half_rate=half_rate, on=application["submitted_at"], schedules=schedules)


def land_revenue_line(amount_fen: int, on: Any = None, *,
                      schedules: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A FeeLine-shaped dict for the land revenue of allocated land, `amount_fen` as the application states.

    line_id is "LR1" (it may share a bill with the quote's F1/F2); quantity 1, unit price = amount.
    MoneyError("invalid_amount") for a non-int or negative amount, ("no_land_revenue_item") when the
    schedule in force names no land revenue item.
    """
    amount = fen(amount_fen, "land_revenue_fen")
    item = schedule_for(on, schedules).get("land_revenue_item")
    if item is None:
        raise MoneyError("no_land_revenue_item", "the fee schedule names no land revenue item", "land_revenue_fen")
    return {"line_id": LAND_REVENUE_LINE_ID, "fee_item_code": item["fee_item_code"],
            "fee_item_name": item["fee_item_name"], "quantity": 1, "unit_price_fen": amount, "amount_fen": amount}
