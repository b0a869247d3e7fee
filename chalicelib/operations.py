"""What operators see and do: the one module behind the console's API (`/v1/ops/…`, chalicelib/ops_api.py)
and `hubctl`, so that a click and a command run the same code.

Queries read: a case with its lanes (every message in and out, the stages' clocks, holds), the
operator lists (open holds, risks, overdue stages, dead letters, failed utilities, reconciliation
reports), the partners and their health, the audit log's checkpoint and inclusion proofs.

Actions change something, and each is recorded in the audit log *before* it is carried out, after the
cheap checks that it can be (so a refused action leaves no record, and no action goes unrecorded): who
(the operator id), what (the action name), on which reference (a delivery id, a case's hold, a partner
id) and the SHA-256 of its details. The details themselves (action, reference, reason code, …) are
kept on the operator-actions record (`actions()`), so the hash can be checked against them. A reason is
a snake_case code, never free text: no name, ID number or phone can enter a record or the log.

Releasing a hold closes it as reviewed: it leaves the open list (`hold:open` → `hold:released`) and the
hold on the case records who released it, why and when (the case read shows it). It moves no money by
itself: a held payment result stays unbooked; money moves when the platform sends a corrected result or
a refund, which the transfer flow books as any other.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib import aws, cases
from chalicelib.errors import HubError
from chalicelib.observability import logger
from chalicelib.settings import get_settings

OPERATOR_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")  # an audit leaf's operator id
REASON_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a snake_case code (models.common.SnakeCode)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_REPORT_KEY = re.compile(r"^reports/settlement/[a-z0-9-]{2,63}/\d{4}-\d{2}-\d{2}/evt_[a-z2-7]+\.json$")
_TARGET_PART = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOLD_STATES = {"open": "hold:open", "released": "hold:released"}
ACTIONS_CASE = "operator-actions"  # the cases-table partition of the operator-actions records
MAX_LIMIT = 1000
HEALTH_SAMPLE = 2000  # delivered items read (at most) for the latency figures
AGENCY_ORDER = ("registry", "city_office", "tax", "fiscal", "payment", "bank", "notary", "court", "utility")
CHINA = timezone(timedelta(hours=8))


# --------------------------------------------------------------------------------------------------
# checks shared by the API and hubctl


def check_operator(operator: str) -> str:
    if not isinstance(operator, str) or not OPERATOR_PATTERN.fullmatch(operator):
        raise HubError(400, "invalid_operator", "An operator id is 1-64 lower-case letters, digits or ._:- .",
                       [{"field": "operator", "code": "invalid_format", "message": OPERATOR_PATTERN.pattern}])
    return operator


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not REASON_PATTERN.fullmatch(reason):
        raise HubError(422, "invalid_reason", "A reason is a snake_case code, e.g. receiver_recovered.",
                       [{"field": "reason", "code": "invalid_format", "message": REASON_PATTERN.pattern}])
    return reason


def _check_ref(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _REF.fullmatch(value):
        raise HubError(422, f"invalid_{field}", f"The {field.replace('_', ' ')} is not a reference the hub "
                       "makes.", [{"field": field, "code": "invalid_format", "message": _REF.pattern}])
    return value


def check_limit(value: Any, default: int = 100) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise HubError(422, "invalid_limit", f"A limit is a whole number from 1 to {MAX_LIMIT}.",
                       [{"field": "limit", "code": "out_of_range", "message": f"1..{MAX_LIMIT}"}])
    return limit


# --------------------------------------------------------------------------------------------------
# the record of an action


def _record(operator: str, action: str, target_ref: str, details: dict[str, Any]) -> str:
    """Audit leaf first, then the details the leaf's hash is of; returns the action id."""
    from chalicelib import audit
    from chalicelib.audit.leaves import canonical

    at = time.time()
    body = {"action": action, "target_ref": target_ref, "operator_id": operator, **details}
    digest = hashlib.sha256(canonical(body)).hexdigest()
    action_id = audit.record_operator_action(operator, action, target_ref, digest, at)
    day = datetime.fromtimestamp(at, CHINA).date().isoformat()
    cases.put_once(ACTIONS_CASE, day, "action", action_id,
                   {"action_id": action_id, "at": at, "details": body, "details_sha256": digest})
    logger.info("operator action", extra={"action": action, "action_id": action_id})
    return action_id


def _target(*parts: str) -> str:
    """An audit leaf's target reference from the parts naming it; a part a partner chose (a bill number
    in a hold id) that is not of the leaf's alphabet stands there as its hash."""
    return "#".join(part if _TARGET_PART.fullmatch(part) else
                    "sha256:" + hashlib.sha256(part.encode()).hexdigest()[:32] for part in parts)


def actions(limit: int = 100) -> list[dict[str, Any]]:
    """The latest operator actions, newest first: each with its details and their SHA-256 (the audit leaf's)."""
    found: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("query").paginate(
            TableName=get_settings().cases_table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"case#{ACTIONS_CASE}"}}, ScanIndexForward=False,
            PaginationConfig={"PageSize": min(limit, 100)}):
        found.extend(json.loads(item["entry"]["S"]) for item in page["Items"])
        if len(found) >= limit:
            break
    # Ids are ordered by the millisecond only: two actions of one millisecond are ordered by their time.
    return sorted(found, key=lambda a: a["at"], reverse=True)[:limit]


# --------------------------------------------------------------------------------------------------
# cases and relays


def _directory() -> Any:
    from chalicelib.partners import get_directory

    return get_directory()


def _one_case(case_id: str, unit_code: str | None) -> cases.Case:
    _check_ref(case_id, "case_id")
    found = [c for c in cases.find(case_id) if unit_code is None or c.unit_code == unit_code]
    if not found:
        raise HubError(404, "case_not_found", "No case with this number (and unit).")
    if len(found) > 1:
        raise HubError(409, "ambiguous_case", "Several cases have this number: name the unit.",
                       [{"field": "unit_code", "code": "required", "message": "name the unit code"}])
    return found[0]


def _clocks(case: cases.Case, now: float) -> list[dict[str, Any]]:
    """The stages' clocks of a case: started, due, stopped, and whether the stage went past its limit."""
    from chalicelib import clocks

    subject = clocks.case_subject(case.case_id, case.unit_code)
    shown = []
    for entry in cases.items(case.case_id, case.unit_code, "clock"):
        if "started_at" not in entry:
            continue  # a stop that came before its start: nothing ran
        clock = clocks.get(subject, entry["stage"], instance=entry.get("instance")) or {}
        stopped = clock.get("stopped_ts")
        due = clock.get("due_ts", 0.0)
        shown.append({
            "stage": entry["stage"], "instance": entry.get("instance"), "state": clock.get("state", "running"),
            "responsible_kind": entry["responsible_kind"], "responsible_partner_id": entry["responsible_partner_id"],
            "limit": entry["limit"], "started_ts": clock.get("started_ts"), "due_ts": due, "stopped_ts": stopped,
            "overdue": "detected_ts" in clock or (stopped if stopped is not None else now) > due,
        })
    return sorted(shown, key=lambda c: (c["started_ts"] or 0, c["stage"]))


def _agencies(partner_ids: set[str]) -> list[dict[str, Any]]:
    """One lane per agency: the partners of the case, in the order a case crosses them."""
    directory = _directory()
    lanes = []
    for partner_id in partner_ids - {"-"}:
        partner = directory.get(partner_id)
        lanes.append({"partner_id": partner_id, "kind": partner.kind if partner else "unknown",
                      "city": partner.city if partner else None})
    order = {kind: n for n, kind in enumerate(AGENCY_ORDER)}
    return sorted(lanes, key=lambda a: (order.get(a["kind"], len(order)), a["partner_id"]))


def _case_detail(case: cases.Case, now: float) -> dict[str, Any]:
    from chalicelib import flows

    view = flows.view(case)
    timeline = view.pop("timeline", None)
    if timeline is None:
        timeline = cases.timeline(case.case_id, case.unit_code)
    holds = view.pop("holds", None)
    if holds is None:
        holds = cases.items(case.case_id, case.unit_code, "hold")
    clocks = _clocks(case, now)
    partner_ids = set(case.doc.get("participants", [])) | {t["partner_id"] for t in timeline} | {
        c["responsible_partner_id"] for c in clocks if c["responsible_partner_id"]}
    return {"case": view, "timeline": timeline, "holds": holds, "clocks": clocks,
            "agencies": _agencies(partner_ids), "now": now}


def case_detail(case_id: str) -> dict[str, Any]:
    """Every case with this number (one per unit) as the console's lanes draw it. No personal data:
    the flow's own view (what its partners may read), the timeline, the clocks and the holds."""
    _check_ref(case_id, "case_id")
    found = cases.find(case_id)
    if not found:
        raise HubError(404, "case_not_found", "No case with this number.")
    now = time.time()
    return {"cases": [_case_detail(case, now) for case in found]}


def relay_detail(relay_id: str) -> dict[str, Any]:
    """A relay (five cities) with the lanes of its two offices: what its participants may read."""
    from chalicelib.flows import relay

    _check_ref(relay_id, "relay_id")
    record = relay.load(relay.RELAY, relay_id)
    if record is None:
        raise HubError(404, "relay_not_found", "No relay with this id.")
    # Operators see what the relay's participants see: read it as its collecting office.
    view = relay.relay_view(relay_id, _Participant(record.doc["office_partner_id"]))["relay"]
    timeline = view.pop("timeline")
    partner_ids = set(view["participants"]) | {t["partner_id"] for t in timeline}
    return {"relay": view, "timeline": timeline, "agencies": _agencies(partner_ids), "now": time.time()}


class _Participant:
    def __init__(self, partner_id: str):
        self.id = partner_id


# --------------------------------------------------------------------------------------------------
# lists


def holds(state: str = "open", limit: int = 100) -> list[dict[str, Any]]:
    if state not in _HOLD_STATES:
        raise HubError(422, "invalid_state", "A hold is open or released.",
                       [{"field": "state", "code": "invalid_choice", "message": "open | released"}])
    if state == "open":
        return cases.listed(_HOLD_STATES[state], limit=limit)  # the work queue: oldest first
    found: list[dict[str, Any]] = []  # what was done: newest first
    for page in aws.client("dynamodb").get_paginator("query").paginate(
            TableName=get_settings().cases_table, IndexName="list-index", KeyConditionExpression="list_key = :k",
            ExpressionAttributeValues={":k": {"S": _HOLD_STATES[state]}}, ScanIndexForward=False,
            PaginationConfig={"PageSize": min(limit, 100)}):
        found.extend({**json.loads(item["entry"]["S"]), "case_id": item["pk"]["S"][len("case#"):]}
                     for item in page["Items"])
        if len(found) >= limit:
            break
    return found[:limit]


def risks(limit: int = 100) -> list[dict[str, Any]]:
    return cases.listed("risk:open", limit=limit)


def overdue(limit: int = 100, closed_on: str | None = None) -> list[dict[str, Any]]:
    from chalicelib import clocks

    if closed_on is not None and not _DAY.fullmatch(closed_on):
        raise HubError(422, "invalid_day", "A day is yyyy-mm-dd (China time).",
                       [{"field": "closed_on", "code": "invalid_format", "message": "yyyy-mm-dd"}])
    return clocks.overdue_list(limit=limit, closed_on=closed_on)


def dead_letters(limit: int = 100, partner_id: str | None = None) -> list[dict[str, Any]]:
    from chalicelib import delivery

    items = delivery.list_dead(limit=MAX_LIMIT if partner_id else limit)
    return [i for i in items if partner_id is None or i["partner_id"] == partner_id][:limit]


def delivery_detail(delivery_id: str) -> dict[str, Any]:
    """A delivery's state, without its body (the body may name the parties)."""
    from chalicelib import delivery

    item = delivery.get(_check_ref(delivery_id, "delivery_id"))
    if item is None:
        raise HubError(404, "delivery_not_found", "No delivery with this id.")
    item.pop("body", None)
    return item


def utility_failures(limit: int = 100) -> list[dict[str, Any]]:
    from chalicelib.flows import utility

    return utility.open_failures(limit=limit)


def reconciliations(limit: int = 100) -> list[dict[str, Any]]:
    from chalicelib.flows import settlement

    return settlement.reports(limit=limit)


def reconciliation(report_key: str) -> dict[str, Any]:
    from chalicelib.flows import settlement

    if not isinstance(report_key, str) or not _REPORT_KEY.fullmatch(report_key):
        raise HubError(422, "invalid_report_key", "A report key is one that `reconciliations` lists.",
                       [{"field": "report_key", "code": "invalid_format", "message": _REPORT_KEY.pattern}])
    try:
        return settlement.report(report_key)
    except Exception as exc:
        if (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise HubError(404, "report_not_found", "No reconciliation report with this key.") from None
        raise


# --------------------------------------------------------------------------------------------------
# partners and their health


def partners() -> list[dict[str, Any]]:
    """The partner registry's records, without secrets."""
    from chalicelib import partner_admin

    return partner_admin.list_partners()


def _backlog(state: str) -> list[dict[str, Any]]:
    """Pending or dead deliveries from the state-index (sparse: delivered items leave it), bounded."""
    found: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("query").paginate(
            TableName=get_settings().deliveries_table, IndexName="state-index",
            KeyConditionExpression="state_key = :s", ExpressionAttributeValues={":s": {"S": state}},
            ProjectionExpression="partner_id, attempts, created_at, last_error"):
        found.extend(page["Items"])
        if len(found) >= 10 * MAX_LIMIT:
            break
    return found


def _delivered_sample(sample: int) -> tuple[list[dict[str, Any]], bool]:
    """Delivered items for the latency figures: a bounded scan (DynamoDB hands items in hash order, so
    this is a sample of the retained deliveries, whole when `complete`)."""
    found: list[dict[str, Any]] = []
    pages = aws.client("dynamodb").get_paginator("scan").paginate(
        TableName=get_settings().deliveries_table, FilterExpression="#s = :delivered",
        ProjectionExpression="partner_id, attempts, created_at, delivered_at",
        ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":delivered": {"S": "delivered"}},
        PaginationConfig={"PageSize": 1000})
    complete = True
    for page in pages:
        found.extend(page["Items"])
        if len(found) >= sample:
            complete = "LastEvaluatedKey" not in page
            break
    return found[:sample], complete


def _percentile(sorted_values: list[int], share: float) -> int | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, int(share * len(sorted_values) + 0.999999) - 1))]


def partner_health(sample: int = HEALTH_SAMPLE) -> dict[str, Any]:
    """Per partner: deliveries waiting (and how many of them already failed an attempt), dead letters,
    and, from a bounded sample of delivered ones, how many needed retries and the latency from the
    delivery's creation to its acknowledgement (ms, p50 / p95 / max)."""
    now = time.time()
    with ThreadPoolExecutor(max_workers=3) as pool:
        pending_f, dead_f = pool.submit(_backlog, "pending"), pool.submit(_backlog, "dead")
        sample_f = pool.submit(_delivered_sample, sample)
        pending, dead, (delivered, complete) = pending_f.result(), dead_f.result(), sample_f.result()
    rows: dict[str, dict[str, Any]] = {}

    def row(partner_id: str) -> dict[str, Any]:
        return rows.setdefault(partner_id, {"partner_id": partner_id, "pending": 0, "retrying": 0,
                                            "oldest_pending_s": None, "dead": 0, "delivered": 0,
                                            "delivered_after_retry": 0, "last_error": None, "_latency": []})

    for record in partners():
        row(record["id"]).update(kind=record["kind"], city=record["city"])
    for item in pending:
        r = row(item["partner_id"]["S"])
        r["pending"] += 1
        age = round(now - float(item["created_at"]["N"]), 1)
        r["oldest_pending_s"] = max(r["oldest_pending_s"] or 0, age)
        if int(item["attempts"]["N"]) > 0:
            r["retrying"] += 1
            r["last_error"] = item.get("last_error", {}).get("S") or r["last_error"]
    for item in dead:
        r = row(item["partner_id"]["S"])
        r["dead"] += 1
        r["last_error"] = r["last_error"] or item.get("last_error", {}).get("S")
    for item in delivered:
        r = row(item["partner_id"]["S"])
        r["delivered"] += 1
        r["delivered_after_retry"] += int(item["attempts"]["N"]) > 1
        r["_latency"].append(int(round((float(item["delivered_at"]["N"]) - float(item["created_at"]["N"])) * 1000)))
    for r in rows.values():
        latency = sorted(r.pop("_latency"))
        r["latency_ms"] = {"p50": _percentile(latency, 0.5), "p95": _percentile(latency, 0.95),
                           "max": latency[-1] if latency else None}
        r.setdefault("kind", "unknown")
        r.setdefault("city", None)
    return {"partners": sorted(rows.values(), key=lambda r: r["partner_id"]),
            "delivered_sample": {"read": len(delivered), "complete": complete}, "at": now}


# --------------------------------------------------------------------------------------------------
# the audit log


def audit_checkpoint() -> dict[str, Any]:
    """The latest signed checkpoint, as partners read it (GET /v1/audit/checkpoint)."""
    from chalicelib.audit import api

    return api.checkpoint_of(api.latest_head())


def audit_proof(ref: str) -> dict[str, Any]:
    """Inclusion proofs of every leaf of a reference (event id, delivery id, operator action id) in the
    tree of the latest checkpoint, in the shape of GET /v1/audit/inclusion (tools/verify_audit.py reads it)."""
    from chalicelib.audit import api, log

    _check_ref(ref, "ref")
    head = api.latest_head()
    items = log.leaves_of(ref)
    if not items:
        raise HubError(404, "leaf_not_found", "No audit leaf with this reference.")
    proven = api.proven_leaves(items, head.size, head)
    if not proven:
        raise HubError(409, "not_yet_sequenced", "Leaves are sequenced within seconds; ask again.")
    return {"ref": ref, "tree_size": head.size, "checkpoint": head.checkpoint, "verifier_key": head.verifier_key,
            "leaves": proven}


# --------------------------------------------------------------------------------------------------
# actions


def replay_dead_letter(operator: str, delivery_id: str, reason: str) -> dict[str, Any]:
    """Deliver a dead letter again: the same webhook-id, a fresh retry schedule."""
    from chalicelib import delivery

    check_operator(operator)
    check_reason(reason)
    item = delivery.get(_check_ref(delivery_id, "delivery_id"))
    if item is None:
        raise HubError(404, "delivery_not_found", "No delivery with this id.")
    if item["state"] != "dead":
        raise HubError(409, "not_dead", f"The delivery is {item['state']}; only a dead letter is replayed.")
    if item.get("replayable") is False:
        raise HubError(409, "not_replayable", "This dead letter had no partner to go to: there is nothing to "
                       "deliver again (add the partner, then let the flow send anew).")
    action_id = _record(operator, "dead_letter.replay", delivery_id,
                        {"reason": reason, "partner_id": item["partner_id"], "type": item["type"]})
    if not delivery.replay(delivery_id):
        raise HubError(409, "not_dead", "Someone replayed it first.")
    return {"delivery_id": delivery_id, "replayed": True, "action_id": action_id}


def replay_dead_letters(operator: str, reason: str, partner_id: str | None = None,
                        limit: int = MAX_LIMIT) -> dict[str, Any]:
    """Every replayable dead letter (of one partner), each recorded as its own action."""
    check_operator(operator)
    check_reason(reason)
    replayed = []
    for item in dead_letters(limit=limit, partner_id=partner_id):
        if item.get("replayable") is False:
            continue
        try:
            replayed.append(replay_dead_letter(operator, item["delivery_id"], reason)["delivery_id"])
        except HubError as exc:
            if exc.status != 409:
                raise
    return {"replayed": len(replayed), "delivery_ids": replayed}


def release_hold(operator: str, case_id: str, hold_id: str, reason: str,
                 unit_code: str | None = None) -> dict[str, Any]:
    """Close a hold as reviewed (see the module's docstring: it books nothing by itself)."""
    check_operator(operator)
    check_reason(reason)
    if not isinstance(hold_id, str) or not 0 < len(hold_id) <= 256 or not hold_id.isprintable():
        raise HubError(422, "invalid_hold_id", "A hold id is one that the holds list shows.",
                       [{"field": "hold_id", "code": "invalid_format", "message": "1-256 printable characters"}])
    case = _one_case(case_id, unit_code)
    found = cases.item(case.case_id, case.unit_code, "hold", hold_id)
    if found is None:
        raise HubError(404, "hold_not_found", "No hold with this id on the case.")
    held, list_key = found
    if list_key != _HOLD_STATES["open"]:
        raise HubError(409, "hold_not_open", "The hold was released already.")
    action_id = _record(operator, "hold.release", _target(case.case_id, case.unit_code, "hold", hold_id),
                        {"reason": reason, "hold_id": hold_id, "hold_reason": held.get("reason")})
    entry = {**held, "released": {"by": operator, "reason": reason, "at": time.time(), "action_id": action_id}}
    if not cases.unlist(case.case_id, case.unit_code, "hold", hold_id, listed=_HOLD_STATES["open"],
                        moved_to=_HOLD_STATES["released"], entry=entry):
        raise HubError(409, "hold_not_open", "Someone released it first.")
    logger.info("hold released", extra={"case_hold": hold_id, "reason": reason, "action_id": action_id})
    return {"case_id": case.case_id, "unit_code": case.unit_code, "hold": entry, "action_id": action_id}


def retry_utility(operator: str, case_id: str, utility_type: str, reason: str,
                  unit_code: str | None = None) -> dict[str, Any]:
    """Ask a failed utility again (the utility flow's `retry`: the next attempt, a new request)."""
    from chalicelib.flows import utility

    check_operator(operator)
    check_reason(reason)
    case = _one_case(case_id, unit_code)
    entry = (case.doc.get("utilities") or {}).get(utility_type)
    if entry is None:
        raise HubError(404, "utility_not_requested", "This case never asked this utility.")
    if utility.utility_state(entry) != "failed":
        raise HubError(409, "utility_not_failed", f"The utility is {utility.utility_state(entry)}; only a failed "
                       "one can be retried.")
    action_id = _record(operator, "utility.retry", _target(case.case_id, case.unit_code, "utility", utility_type),
                        {"reason": reason, "attempt": len(entry["attempts"]) + 1})
    return {**utility.retry(case.case_id, utility_type, operator, reason, unit_code=case.unit_code),
            "action_id": action_id}


def add_partner(operator: str, fields: dict[str, Any], replace: bool = False) -> dict[str, Any]:
    """Add (or with `replace`, overwrite) a partner from its public fields (`PartnerRecord` less the
    secrets); its new secret is in the answer, once."""
    from pydantic import ValidationError

    from chalicelib import partner_admin
    from chalicelib.partners import PartnerRecord

    check_operator(operator)
    secret = partner_admin.generate_secret()
    try:
        record = PartnerRecord(**{k: v for k, v in fields.items() if v is not None}, secrets=(secret,))
    except ValidationError as exc:
        raise HubError(422, "invalid_partner", "The partner record is not valid.",
                       [{"field": ".".join(str(p) for p in e["loc"]), "code": e["type"], "message": e["msg"]}
                        for e in exc.errors(include_input=False)]) from None
    if partner_admin.get_partner(record.id) is not None and not replace:
        raise HubError(409, "partner_exists", "A partner with this id exists (replace it explicitly).")
    public = record.model_dump(mode="json", exclude={"secrets"}, exclude_none=True)
    action_id = _record(operator, "partner.replace" if replace else "partner.add", record.id, {"partner": public})
    partner_admin.put_partner(record)
    return {"partner": public, "secret": secret, "action_id": action_id}


def rotate_partner_secret(operator: str, partner_id: str) -> dict[str, Any]:
    """A new secret in front of the old ones: both verify until `finish_partner_rotation`."""
    from chalicelib import partner_admin

    check_operator(operator)
    if partner_admin.get_partner(partner_id) is None:
        raise HubError(404, "partner_not_found", "No partner with this id.")
    action_id = _record(operator, "partner.rotate_secret", partner_id, {})
    return {"partner_id": partner_id, "new_secret": partner_admin.rotate_secret(partner_id), "action_id": action_id}


def finish_partner_rotation(operator: str, partner_id: str) -> dict[str, Any]:
    from chalicelib import partner_admin

    check_operator(operator)
    if partner_admin.get_partner(partner_id) is None:
        raise HubError(404, "partner_not_found", "No partner with this id.")
    action_id = _record(operator, "partner.finish_rotation", partner_id, {})
    return {"partner_id": partner_id, "secrets_dropped": partner_admin.finish_rotation(partner_id),
            "action_id": action_id}


def rotate_hub_secret(operator: str) -> dict[str, Any]:
    """A new signing secret for the hub's deliveries (every receiving partner must be given it)."""
    from chalicelib import partner_admin

    check_operator(operator)
    action_id = _record(operator, "hub.rotate_signing_secret", "hub-signing-secret", {})
    secret = partner_admin.generate_secret()
    partner_admin.set_hub_secret(secret)
    return {"hub_signing_secret": secret, "action_id": action_id}
