"""Time limits (效能监管, DOMAIN.md flow 7): stage clocks for cases, relays, inquiries and packages.

A flow starts a clock when a stage begins (`start`) and stops it when the stage's answer arrives
(`stop`). The limit comes from data (`data/time_limits.json`: per stage, service and city, with a
default) and is turned into a due time at start, in working time (China time, weekends, holidays and
make-up working days of the data's calendar). A scheduled job (`sweep_overdue`) finds running clocks
past due and, once per breach, records an overdue entry operators can list (`overdue_list`) and
calls `send(breach)`; `breach["data"]` is the canonical outbound `case.overdue` and
`breach["responsible_partner_id"]` its target.

Units (those of case.overdue's `limit`): `working_days`, `hours` and `minutes` count working time
only, the calendar's working hours on working days; a working day is one day's working hours, so N
working days keep the time of day (Mon 09:30 + 1 → Tue 09:30), a stage started after hours or on a
day off counts from the next opening (Sat + 1 → Mon 17:00), and a due time that falls at an opening
is given as the previous closing (the same working time). `calendar_days` are elapsed 24 h days.

Items live in the cases table, beside their subject:

    case    pk case#<case_id>      sk <unit_code>#clock#<stage>[#<instance>]   (and …#overdue#…)
    other   pk <kind>#<id>         sk clock#<stage>[#<instance>]   (relay, assist, inquiry, package:
                                   the partition of flows/relay.py's record `<kind>#<id>` / `record`)

A subject key is "case:<case_id>#<unit_code>" (or a case's `key_text`, "<case_id>#<unit_code>"),
"relay:<relay_id>", "assist:<assist_id>", "inquiry:<inquiry_id>" or "package:<package_id>".
`instance` tells apart two clocks of the same stage (a relay's attempt, a package's bank).

A clock item: `entry` (JSON, its facts as started: what `cases.items(..., "clock")` shows) and its
state: `clock_state` running | stopped, `due_ts`, `stopped_ts`, `detected_ts`, `alerted_ts`,
`claimed_until`. A running clock is listed under "clock:running" with `listed_at` = its due time, so
the sweep reads only the clocks that are due. An overdue item: `entry` (the breach), `overdue_state`
open | closed, listed under "overdue:open" and, once its clock stops, "overdue:closed:<China day>".

Exactly once, crash-safe:
1. The sweep claims a due clock with one conditional update (running, due, not alerted, no live
   claim): of concurrent sweeps one wins; a stopped clock can never be claimed.
2. It writes the overdue item (conditional put; present already after a crash: kept as is),
3. calls `send(breach)`, 4. marks the overdue item alerted and takes the clock off the running list.
A crash between 1 and 4 leaves a claim that expires (`LEASE_SECONDS`) and the next sweep sends again,
with the same `breach_id`: the lead's `routing.emit(breach["breach_id"], breach["purpose"], …)`
derives the same delivery id, so the partner receives it once. A failed `send` releases the claim.
A stop before the start (events reordered) leaves a stopped tombstone, so the late start is a no-op.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from chalicelib import aws
from chalicelib.errors import HubError
from chalicelib.settings import get_settings

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # UTC+8 all year (no DST since 1991)
LIMITS_FILE = Path(__file__).with_name("data") / "time_limits.json"

RUNNING_LIST = "clock:running"
OVERDUE_OPEN = "overdue:open"
OVERDUE_CLOSED = "overdue:closed:"  # + China day of the close, e.g. overdue:closed:2025-09-02
LEASE_SECONDS = 300.0
SWEEP_MAX = 500  # clocks handled per sweep, oldest due first; the next minute takes the rest

Unit = Literal["minutes", "hours", "calendar_days", "working_days"]
Subject = Literal["case", "relay", "inquiry", "package"]
# subject-key kinds → the case.overdue `subject` (an assisted online application is a kind of relay)
_SUBJECTS = {"case": "case", "relay": "relay", "assist": "relay", "inquiry": "inquiry", "package": "package"}
_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_CASE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


# ------------------------------------------------------------------------------------- the data

class _Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Annotated[StrictInt, Field(ge=1, le=100_000)]
    unit: Unit


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    service: str = "*"
    city: str = "*"
    limit: _Limit
    source: Optional[str] = None
    to_confirm: bool = False


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Subject
    responsible_kind: str
    description: str = ""


class _Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    off: tuple[date, date]
    work: list[date] = []


class _Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: Literal["Asia/Shanghai"]
    working_hours: list[tuple[str, str]] = Field(min_length=1)
    working_hours_to_confirm: bool = False
    years: list[int]
    source: Optional[str] = None
    to_confirm: bool = False
    holidays: list[_Holiday] = []


class _LimitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    version: str = Field(min_length=1, max_length=64)
    calendar: _Calendar
    stages: dict[str, _Stage]
    limits: list[_Rule]

    @model_validator(mode="after")
    def _consistent(self) -> "_LimitsFile":
        from typing import get_args

        from chalicelib.identifiers import is_city_code
        from chalicelib.models.common import PartnerKind, Service

        services, kinds = set(get_args(Service)), set(get_args(PartnerKind))
        for name, stage in self.stages.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"stage name {name!r} is not snake_case")
            if stage.responsible_kind not in kinds:
                raise ValueError(f"stage {name}: unknown partner kind {stage.responsible_kind!r}")
        seen: set[tuple[str, str, str]] = set()
        for rule in self.limits:
            if rule.stage != "*" and rule.stage not in self.stages:
                raise ValueError(f"limit names unknown stage {rule.stage!r}")
            if rule.service != "*" and rule.service not in services:
                raise ValueError(f"limit names unknown service {rule.service!r}")
            if rule.city != "*" and not is_city_code(rule.city):
                raise ValueError(f"limit names unknown city {rule.city!r}")
            key = (rule.stage, rule.service, rule.city)
            if key in seen:
                raise ValueError(f"two limits for {key}")
            seen.add(key)
        if ("*", "*", "*") not in seen:
            raise ValueError("no default limit ('*', '*', '*')")
        previous_end = -1
        for start, end in self.calendar.working_hours:
            if not (_HHMM.match(start) and _HHMM.match(end)):
                raise ValueError(f"working hours {start}-{end} are not HH:MM")
            s, e = _minutes(start), _minutes(end)
            if not previous_end <= s < e:
                raise ValueError("working hours must be increasing, non-overlapping intervals")
            previous_end = e
        off_days: set[date] = set()
        work_days: set[date] = set()
        for holiday in self.calendar.holidays:
            first, last = holiday.off
            if last < first or (last - first).days > 31:
                raise ValueError(f"{holiday.name}: bad range")
            for day in [first, last, *holiday.work]:
                if day.year not in self.calendar.years:
                    raise ValueError(f"{holiday.name}: {day} is outside the calendar's years")
            for day in holiday.work:
                if day.weekday() < 5:
                    raise ValueError(f"{holiday.name}: make-up working day {day} is not a weekend day")
            off_days.update(first + timedelta(days=n) for n in range((last - first).days + 1))
            work_days.update(holiday.work)
        if off_days & work_days:
            raise ValueError("a day is both a holiday and a make-up working day")
        return self


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Calendar:
    """Working time in China: working hours on working days (weekdays that are not holidays, and
    make-up working days). All arithmetic is in working seconds, so a limit started after hours or
    on a day off counts from the next opening, and N working days keep the time of day."""

    holidays: frozenset[date]
    makeup: frozenset[date]
    hours: tuple[tuple[timedelta, timedelta], ...]
    years: frozenset[int]

    @property
    def day_length(self) -> timedelta:
        return sum((end - start for start, end in self.hours), timedelta())

    def is_working_day(self, day: date) -> bool:
        return day in self.makeup or (day.weekday() < 5 and day not in self.holidays)

    def next_working_day(self, day: date) -> date:
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def _worked_before(self, since_midnight: timedelta) -> timedelta:
        worked = timedelta()
        for start, end in self.hours:
            if since_midnight > start:
                worked += min(since_midnight, end) - start
        return worked

    def _instant(self, day: date, offset: timedelta) -> datetime:
        """The earliest moment of `day` with `offset` of working time behind it (0 < offset <= day)."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=CHINA)
        done = timedelta()
        for start, end in self.hours:
            if offset <= done + (end - start):
                return midnight + start + (offset - done)
            done += end - start
        return midnight + self.hours[-1][1]

    def add(self, started_at: datetime, limit: dict[str, Any]) -> datetime:
        """The due time of a limit ({"value", "unit"}) started at `started_at`, in China time."""
        local = started_at.astimezone(CHINA)
        value, unit = int(limit["value"]), limit["unit"]
        if unit == "calendar_days":
            return local + timedelta(days=value)
        length = self.day_length
        amount = {"working_days": length * value, "hours": timedelta(hours=value),
                  "minutes": timedelta(minutes=value)}[unit]
        day = local.date()
        if self.is_working_day(day):
            offset = self._worked_before(local - datetime(day.year, day.month, day.day, tzinfo=CHINA))
        else:
            day, offset = self.next_working_day(day), timedelta()
        if amount <= length - offset:
            return self._instant(day, offset + amount)
        amount -= length - offset
        while True:
            day = self.next_working_day(day)
            if amount <= length:
                return self._instant(day, amount)
            amount -= length


@dataclass(frozen=True)
class TimeLimits:
    version: str
    calendar: Calendar
    stages: dict[str, _Stage]
    rules: dict[tuple[str, str, str], dict[str, Any]]

    def limit_for(self, stage: str, service: str | None, city: str | None) -> dict[str, Any]:
        """The most specific rule: stage, then service, then city; ('*', '*', '*') at last."""
        best, best_score = None, -1
        for (r_stage, r_service, r_city), limit in self.rules.items():
            if r_stage not in ("*", stage) or r_service not in ("*", service) or r_city not in ("*", city):
                continue
            score = 4 * (r_stage != "*") + 2 * (r_service != "*") + (r_city != "*")
            if score > best_score:
                best, best_score = limit, score
        assert best is not None  # the default rule is required by the file's validation
        return dict(best)

    def due(self, started_at: Any, limit: dict[str, Any]) -> datetime:
        return self.calendar.add(_as_datetime(started_at), limit)


def parse_limits(doc: dict[str, Any]) -> TimeLimits:
    """Validate a limits document (the shape of data/time_limits.json); ValueError when it is wrong."""
    from pydantic import ValidationError

    try:
        parsed = _LimitsFile.model_validate(doc)
    except ValidationError as exc:
        raise ValueError(f"time limits invalid: {exc}") from None
    holidays: set[date] = set()
    makeup: set[date] = set()
    for holiday in parsed.calendar.holidays:
        first, last = holiday.off
        holidays.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        makeup.update(holiday.work)
    hours = tuple((timedelta(minutes=_minutes(s)), timedelta(minutes=_minutes(e)))
                  for s, e in parsed.calendar.working_hours)
    calendar = Calendar(frozenset(holidays), frozenset(makeup), hours, frozenset(parsed.calendar.years))
    rules = {(r.stage, r.service, r.city): r.limit.model_dump() for r in parsed.limits}
    return TimeLimits(parsed.version, calendar, dict(parsed.stages), rules)


@functools.lru_cache(maxsize=1)
def time_limits() -> TimeLimits:
    """The limits of data/time_limits.json (read once per process)."""
    return parse_limits(json.loads(LIMITS_FILE.read_text(encoding="utf-8")))


def due(started_at: Any, limit: dict[str, Any], limits: TimeLimits | None = None) -> datetime:
    """Deadline of `limit` ({"value": 1, "unit": "working_days"}) started at `started_at` (aware
    datetime, ISO 8601 text with an offset, or epoch seconds), as an aware datetime in China time."""
    return (limits or time_limits()).due(started_at, limit)


def limit_for(stage: str, service: str | None = None, city: str | None = None,
              limits: TimeLimits | None = None) -> dict[str, Any]:
    return (limits or time_limits()).limit_for(stage, service, city)


# ------------------------------------------------------------------------------------- subjects

def case_subject(case_id: str, unit_code: str) -> str:
    return f"case:{case_id}#{unit_code}"


def subject_key(kind: str, subject_id: str) -> str:
    """"relay:<relay_id>", "assist:<id>", "inquiry:<id>", "package:<id>" (a case: `case_subject`)."""
    return f"{kind}:{subject_id}"


@dataclass(frozen=True)
class _Subject:
    key: str
    kind: str  # case, relay, assist, inquiry, package
    subject_id: str
    case_id: str | None
    unit_code: str | None

    @property
    def subject(self) -> str:
        """The case.overdue `subject`."""
        return _SUBJECTS[self.kind]

    def keys(self, kind: str, stage: str, instance: str | None) -> dict[str, Any]:
        tail = f"{kind}#{stage}" + (f"#{instance}" if instance else "")
        if self.kind == "case":
            return {"pk": {"S": f"case#{self.case_id}"}, "sk": {"S": f"{self.unit_code}#{tail}"}}
        return {"pk": {"S": f"{self.kind}#{self.subject_id}"}, "sk": {"S": tail}}

    @property
    def case_ref(self) -> tuple[str, str]:
        """What `routing.emit` takes as `case_ref`: the delivery then shows on the subject's timeline
        (case key "<case_id>#<unit_code>", or "<kind>#<id>" as flows/relay.py keys its records)."""
        return (self.case_id, self.unit_code) if self.kind == "case" else (self.kind, self.subject_id)


def _parse_subject(key: str) -> _Subject:
    kind, sep, rest = key.partition(":")
    if not sep:  # a case's key_text: "<case_id>#<unit_code>" (case ids have no ':')
        kind, rest = "case", key
    if kind not in _SUBJECTS or not rest:
        raise ValueError(f"unknown subject key {key!r}")
    if kind == "case":
        case_id, _, unit_code = rest.partition("#")
        if not _CASE_ID.match(case_id) or not unit_code or "#" in unit_code:
            raise ValueError("a case subject key is case:<case_id>#<unit_code>")
        return _Subject(f"case:{case_id}#{unit_code}", "case", case_id, case_id, unit_code)
    if not _INSTANCE.match(rest):
        raise ValueError(f"bad {kind} id in subject key")
    return _Subject(key, kind, rest, None, None)


# ------------------------------------------------------------------------------------- times

def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no time zone")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("a timestamp needs an offset")
        return parsed
    raise ValueError("a time is an aware datetime, ISO 8601 text with an offset, or epoch seconds")


def _iso(moment: datetime) -> str:
    return moment.astimezone(CHINA).isoformat()


def _epoch(value: Any) -> float:
    return _as_datetime(value).timestamp()


def _china_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=CHINA).date().isoformat()


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


# ------------------------------------------------------------------------------------- store

def _table() -> str:
    return get_settings().cases_table


def _dynamo() -> Any:
    return aws.client("dynamodb")


def _conditional(call: Callable[[], Any]) -> Any:
    """Run a conditional write; None when its condition failed."""
    try:
        return call() or True
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return None
        raise


def _json(value: Any) -> dict[str, str]:
    return {"S": json.dumps(value, ensure_ascii=False, separators=(",", ":"))}


def _check_instance(instance: str | None) -> str | None:
    if instance is None or instance == "":
        return None
    instance = str(instance)
    if not _INSTANCE.match(instance):
        raise ValueError("a clock instance is 1-64 of A-Z a-z 0-9 _ . : - (starting alphanumeric)")
    return instance


def _overdue_data(entry: dict[str, Any], detected_at: str) -> dict[str, Any]:
    data = {k: entry.get(k) for k in ("subject", "subject_id", "case_id", "unit_code", "city", "service", "stage",
                                      "limit", "started_at", "due_at", "responsible_kind", "responsible_partner_id")}
    data["detected_at"] = detected_at
    return {k: v for k, v in data.items() if v is not None}


def _canonical(data: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.models import validate_data

    return validate_data("case.overdue", data, direction="outbound").model_dump(mode="json", exclude_none=True)


def start(subject_key: str, stage: str, *, service: str | None, city: str, responsible_partner_id: str | None,
          started_at: Any, detail: dict[str, Any] | None = None, instance: str | None = None,
          responsible_kind: str | None = None, limit: dict[str, Any] | None = None,
          limits: TimeLimits | None = None) -> bool:
    """Start the clock of a stage (once: True when this call started it; False when it was started,
    or stopped, before). The limit is looked up by (stage, service, city) unless given, and the due
    time is fixed now. `detail` (references only, no personal data) is kept on the clock and in the
    breach; its `case_id` and `unit_code` (a relay's registry case, a package's unit) go into the
    case.overdue data of non-case subjects.
    Raises ValueError when the clock could never produce a valid case.overdue (bad city, stage…)."""
    limits = limits or time_limits()
    subject = _parse_subject(subject_key)
    spec = limits.stages.get(stage)
    if spec is None:
        raise ValueError(f"unknown stage {stage!r} (add it to data/time_limits.json)")
    if spec.subject != subject.subject:
        raise ValueError(f"stage {stage!r} is a stage of a {spec.subject}, not of a {subject.subject}")
    instance = _check_instance(instance)
    detail = dict(detail or {})
    limit = dict(limit) if limit is not None else limits.limit_for(stage, service, city)
    began = _as_datetime(started_at)
    due_at = limits.due(began, limit)
    entry = {
        "subject_key": subject.key, "subject": subject.subject, "subject_id": subject.subject_id,
        "case_id": subject.case_id or detail.get("case_id"), "unit_code": subject.unit_code or detail.get("unit_code"),
        "stage": stage, "instance": instance, "service": service, "city": city,
        "responsible_kind": responsible_kind or spec.responsible_kind, "responsible_partner_id": responsible_partner_id,
        "limit": limit, "limits_version": limits.version, "started_at": _iso(began), "due_at": _iso(due_at),
        "detail": detail,
    }
    try:  # the breach this clock may raise must be a valid case.overdue: found now, not at 3 a.m.
        _canonical(_overdue_data(entry, entry["due_at"]))
    except HubError as exc:
        raise ValueError(f"this clock could not raise a valid case.overdue: {exc.details}") from None
    if limit["unit"] != "calendar_days" and not {began.astimezone(CHINA).year, due_at.year} <= limits.calendar.years:
        from chalicelib.observability import logger

        logger.warning("time limit counted past the holiday calendar's years: add the next year's holidays",
                       extra={"stage": stage, "due_at": entry["due_at"], "limits_version": limits.version})
    due_ts = due_at.timestamp()
    item = {**subject.keys("clock", stage, instance), "entry": _json(entry), "clock_state": {"S": "running"},
            "started_ts": _n(began.timestamp()), "due_ts": _n(due_ts),
            "list_key": {"S": RUNNING_LIST}, "listed_at": _n(due_ts)}
    return bool(_conditional(lambda: _dynamo().put_item(TableName=_table(), Item=item,
                                                        ConditionExpression="attribute_not_exists(sk)")))


def stop(subject_key: str, stage: str, stopped_at: Any, *, instance: str | None = None) -> str:
    """End a stage's clock (idempotent). Returns "stopped", "already_stopped" or "stopped_before_start"
    (a tombstone: a later `start` of this clock does nothing). A clock that had alerted closes its
    overdue entry (it moves from "overdue:open" to the closed list of the day)."""
    subject = _parse_subject(subject_key)
    instance = _check_instance(instance)
    key = subject.keys("clock", stage, instance)
    at = _epoch(stopped_at)
    for _ in range(3):
        old = _conditional(lambda: _dynamo().update_item(
            TableName=_table(), Key=key,
            UpdateExpression="SET clock_state = :stopped, stopped_ts = :at REMOVE list_key, listed_at, claimed_until",
            ConditionExpression="clock_state = :running",
            ExpressionAttributeValues={":stopped": {"S": "stopped"}, ":running": {"S": "running"}, ":at": _n(at)},
            ReturnValues="ALL_OLD"))
        if old is not None:
            attrs = old.get("Attributes", {})
            if "detected_ts" in attrs:
                _close_overdue(subject, stage, instance, at, json.loads(attrs["entry"]["S"]),
                               float(attrs["detected_ts"]["N"]))
            return "stopped"
        current = _dynamo().get_item(TableName=_table(), Key=key, ConsistentRead=True).get("Item")
        if current is not None:
            if current["clock_state"]["S"] != "stopped":
                continue  # raced with a start: try again
            if "detected_ts" in current:  # re-run after a crash between the two writes: close again
                _close_overdue(subject, stage, instance, float(current["stopped_ts"]["N"]),
                               json.loads(current["entry"]["S"]), float(current["detected_ts"]["N"]))
            return "already_stopped"
        tombstone = {**key, "entry": _json({"subject_key": subject.key, "stage": stage, "instance": instance,
                                           "stopped_before_start": True}),
                     "clock_state": {"S": "stopped"}, "stopped_ts": _n(at)}
        if _conditional(lambda: _dynamo().put_item(TableName=_table(), Item=tombstone,
                                                   ConditionExpression="attribute_not_exists(sk)")):
            return "stopped_before_start"
    raise RuntimeError("clock stop kept losing races")


def _close_overdue(subject: _Subject, stage: str, instance: str | None, stopped_ts: float,
                   entry: dict[str, Any], detected_ts: float) -> None:
    """Move an overdue entry off the open list (idempotent). Written closed if the sweep that claimed
    the clock has not written it yet, so an entry can never stay open behind a stopped clock."""
    key = subject.keys("overdue", stage, instance)
    now = time.time()
    values = {":closed": {"S": "closed"}, ":open": {"S": "open"}, ":now": _n(now), ":stopped": _n(stopped_ts),
              ":list": {"S": OVERDUE_CLOSED + _china_day(now)}}
    for _ in range(3):
        if _conditional(lambda: _dynamo().update_item(
                TableName=_table(), Key=key,
                UpdateExpression="SET overdue_state = :closed, closed_ts = :now, stopped_ts = :stopped, "
                                 "list_key = :list, listed_at = :now",
                ConditionExpression="overdue_state = :open", ExpressionAttributeValues=values)):
            return
        if _dynamo().get_item(TableName=_table(), Key=key, ConsistentRead=True).get("Item") is not None:
            return  # closed already
        clock_key = subject.keys("clock", stage, instance)
        breach = _breach(entry, detected_ts, clock_key["pk"]["S"], clock_key["sk"]["S"])
        item = {**key, "entry": _json(breach), "overdue_state": {"S": "closed"},
                "closed_ts": _n(now), "stopped_ts": _n(stopped_ts), "detected_ts": _n(detected_ts),
                "list_key": values[":list"], "listed_at": _n(now)}
        if _conditional(lambda: _dynamo().put_item(TableName=_table(), Item=item,
                                                   ConditionExpression="attribute_not_exists(sk)")):
            return


# ------------------------------------------------------------------------------------- the sweep

def _breach(entry: dict[str, Any], detected_ts: float, pk: str, sk: str) -> dict[str, Any]:
    subject = _parse_subject(entry["subject_key"])
    digest = hashlib.sha256(f"{pk}\x1f{sk}".encode()).digest()[:20]
    purpose = f"overdue-{entry['stage']}" + (f"-{entry['instance']}" if entry.get("instance") else "")
    return {
        "breach_id": "ovd_" + base64.b32encode(digest).decode().rstrip("=").lower(),
        "purpose": purpose,
        "type": "case.overdue",
        "data": _canonical(_overdue_data(entry, _iso(datetime.fromtimestamp(detected_ts, tz=CHINA)))),
        "responsible_partner_id": entry.get("responsible_partner_id"),
        "responsible_kind": entry["responsible_kind"],
        "city": entry["city"],
        "case_ref": subject.case_ref,
        "subject_key": subject.key,
        "stage": entry["stage"],
        "instance": entry.get("instance"),
        "detail": entry.get("detail") or {},
    }


def _due_clocks(now_ts: float, max_items: int) -> Iterable[dict[str, Any]]:
    pages = _dynamo().get_paginator("query").paginate(
        TableName=_table(), IndexName="list-index",
        KeyConditionExpression="list_key = :k AND listed_at <= :now",
        ExpressionAttributeValues={":k": {"S": RUNNING_LIST}, ":now": _n(now_ts)}, ScanIndexForward=True)
    count = 0
    for page in pages:
        for item in page["Items"]:
            yield item
            count += 1
            if count >= max_items:
                return


def sweep_overdue(now: Any, send: Callable[[dict[str, Any]], Any], *, max_items: int = SWEEP_MAX) -> dict[str, int]:
    """Alert every running clock past due, once per breach: `send(breach)` for each new breach.

    `now` (None for the real time) is what a test compresses. Returns counts for the sweep's answer.
    """
    from chalicelib.observability import logger, metrics

    now_ts = time.time() if now is None else _epoch(now)
    alerted = failed = 0
    for item in _due_clocks(now_ts, max_items):
        key = {"pk": item["pk"], "sk": item["sk"]}
        try:
            if _alert(key, now_ts, send):
                alerted += 1
        except Exception:  # one partner's failure does not stop the others; the claim was released
            failed += 1
            logger.exception("overdue alert failed", extra={"clock": key["sk"]["S"]})
    if alerted:
        metrics.add_metric(name="StagesOverdue", unit="Count", value=alerted)
    return {"overdue_alerted": alerted, "overdue_failed": failed}


def _alert(key: dict[str, Any], now_ts: float, send: Callable[[dict[str, Any]], Any]) -> bool:
    lease = now_ts + LEASE_SECONDS
    claimed = _conditional(lambda: _dynamo().update_item(
        TableName=_table(), Key=key,
        UpdateExpression="SET claimed_until = :lease, detected_ts = if_not_exists(detected_ts, :now)",
        ConditionExpression="clock_state = :running AND due_ts <= :now AND attribute_not_exists(alerted_ts) "
                            "AND (attribute_not_exists(claimed_until) OR claimed_until < :now)",
        ExpressionAttributeValues={":running": {"S": "running"}, ":now": _n(now_ts), ":lease": _n(lease)},
        ReturnValues="ALL_NEW"))
    if claimed is None:
        return False  # stopped, alerted, or another sweep holds it
    clock = claimed["Attributes"]
    entry = json.loads(clock["entry"]["S"])
    detected_ts = float(clock["detected_ts"]["N"])
    subject = _parse_subject(entry["subject_key"])
    overdue_key = subject.keys("overdue", entry["stage"], entry.get("instance"))
    breach = _breach(entry, detected_ts, key["pk"]["S"], key["sk"]["S"])
    overdue = {**overdue_key, "entry": _json(breach), "overdue_state": {"S": "open"}, "detected_ts": _n(detected_ts),
               "due_ts": clock["due_ts"], "list_key": {"S": OVERDUE_OPEN}, "listed_at": _n(detected_ts)}
    if not _conditional(lambda: _dynamo().put_item(TableName=_table(), Item=overdue,
                                                   ConditionExpression="attribute_not_exists(sk)")):
        found = _dynamo().get_item(TableName=_table(), Key=overdue_key, ConsistentRead=True).get("Item") or {}
        if found.get("overdue_state", {}).get("S") == "closed":
            return False  # the stage ended while we were claiming: a stopped clock does not alert
    try:
        send(breach)
    except Exception:
        _conditional(lambda: _dynamo().update_item(
            TableName=_table(), Key=key, UpdateExpression="REMOVE claimed_until",
            ConditionExpression="claimed_until = :lease", ExpressionAttributeValues={":lease": _n(lease)}))
        raise
    sent_ts = time.time()
    _conditional(lambda: _dynamo().update_item(
        TableName=_table(), Key=overdue_key, UpdateExpression="SET alerted_ts = :t",
        ConditionExpression="attribute_exists(sk)", ExpressionAttributeValues={":t": _n(sent_ts)}))
    done = _conditional(lambda: _dynamo().update_item(
        TableName=_table(), Key=key, UpdateExpression="SET alerted_ts = :t REMOVE list_key, listed_at, claimed_until",
        ConditionExpression="clock_state = :running",
        ExpressionAttributeValues={":t": _n(sent_ts), ":running": {"S": "running"}}))
    if done is None:  # stopped while we were sending: the entry must not stay open
        stopped = _dynamo().get_item(TableName=_table(), Key=key, ConsistentRead=True).get("Item") or {}
        _close_overdue(subject, entry["stage"], entry.get("instance"),
                       float(stopped.get("stopped_ts", {}).get("N", sent_ts)), entry, detected_ts)
    return True


# ------------------------------------------------------------------------------------- reads

def _overdue_view(item: dict[str, Any]) -> dict[str, Any]:
    breach = json.loads(item["entry"]["S"])
    view = {**breach.get("data", {}), "subject_key": breach.get("subject_key"), "instance": breach.get("instance"),
            "breach_id": breach.get("breach_id"), "state": item["overdue_state"]["S"],
            "detected_ts": float(item["detected_ts"]["N"])}
    for name in ("alerted_ts", "closed_ts", "stopped_ts"):
        if name in item:
            view[name] = float(item[name]["N"])
    return view


def overdue_list(limit: int = 1000, *, closed_on: str | date | None = None) -> list[dict[str, Any]]:
    """For operators: the open overdue stages, oldest detection first (or those closed on a China day).
    Each row is the case.overdue data plus subject_key, instance, breach_id, state and the times
    detected_ts, alerted_ts (absent while the partner has not been told), closed_ts, stopped_ts."""
    list_key = OVERDUE_OPEN if closed_on is None else OVERDUE_CLOSED + str(closed_on)
    found: list[dict[str, Any]] = []
    for page in _dynamo().get_paginator("query").paginate(
            TableName=_table(), IndexName="list-index", KeyConditionExpression="list_key = :k",
            ExpressionAttributeValues={":k": {"S": list_key}}, ScanIndexForward=True):
        found.extend(_overdue_view(item) for item in page["Items"])
        if len(found) >= limit:
            break
    return found[:limit]


def get(subject_key: str, stage: str, *, instance: str | None = None) -> dict[str, Any] | None:
    """One clock as stored: its facts and its state (None if never started nor stopped)."""
    subject = _parse_subject(subject_key)
    item = _dynamo().get_item(TableName=_table(), Key=subject.keys("clock", stage, _check_instance(instance)),
                              ConsistentRead=True).get("Item")
    if item is None:
        return None
    view = {**json.loads(item["entry"]["S"]), "state": item["clock_state"]["S"]}
    for name in ("due_ts", "started_ts", "stopped_ts", "detected_ts", "alerted_ts"):
        if name in item:
            view[name] = float(item[name]["N"])
    view["running_listed"] = "list_key" in item
    return view
