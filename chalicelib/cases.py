"""The case of one application: its record, timeline, ledger entries, holds and risks.

One partition per registry case number (`pk = case#<case_id>`); a case is the pair (case number, unit
code), so two cities reusing a case number never meet. Items of a case, by sort key:

    <unit>#record                     the case document (JSON) and its version (optimistic concurrency)
    <unit>#ledger#<entry_id>          a booked double entry (conditional put: never booked twice)
    <unit>#hold#<hold_id>             a payment or clearance held for review (listed while open)
    <unit>#risk#<risk_id>             a case that did not close its loop (listed while open)
and outside the case partition, `<kind>#<ref>` → (case_id, unit_code) (`index_ref`): payment callbacks
name only the order, a registry's answer names only the request the hub filed. The timeline (every message in and out) is not stored here: see `timeline`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib import aws
from chalicelib.errors import HubError
from chalicelib.settings import get_settings

MAX_UPDATE_ATTEMPTS = 8


def _table() -> str:
    return get_settings().cases_table


def _pk(case_id: str) -> str:
    return f"case#{case_id}"


@dataclass
class Case:
    case_id: str
    unit_code: str
    doc: dict[str, Any]
    version: int = 0
    is_new: bool = False

    @property
    def key_text(self) -> str:
        """The case key events and deliveries carry: "<case_id>#<unit_code>"."""
        return f"{self.case_id}#{self.unit_code}"

    @property
    def ref(self) -> tuple[str, str]:
        """What `routing.emit` makes the case key of a delivery from: (case_id, unit_code)."""
        return self.case_id, self.unit_code

    @property
    def key(self) -> dict[str, Any]:
        return {"pk": {"S": _pk(self.case_id)}, "sk": {"S": f"{self.unit_code}#record"}}


def _dynamo() -> Any:
    return aws.client("dynamodb")


def load(case_id: str, unit_code: str) -> Case | None:
    item = _dynamo().get_item(TableName=_table(), Key={"pk": {"S": _pk(case_id)}, "sk": {"S": f"{unit_code}#record"}},
                              ConsistentRead=True).get("Item")
    if not item:
        return None
    return Case(case_id, unit_code, json.loads(item["doc"]["S"]), int(item["version"]["N"]))


def find(case_id: str, city: str | None = None) -> list[Case]:
    """Every case with this number (normally one), or only the one whose unit is in `city`."""
    found = []
    query = _dynamo().get_paginator("query").paginate(
        TableName=_table(), KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": _pk(case_id)}},
        ConsistentRead=True)
    for page in query:
        for item in page["Items"]:
            if item["sk"]["S"].endswith("#record"):
                doc = json.loads(item["doc"]["S"])
                if city is None or doc.get("city") == city:
                    found.append(Case(case_id, doc["unit_code"], doc, int(item["version"]["N"])))
    return found


def save(case: Case) -> bool:
    """Write the document if nobody else wrote it since we read it. False on a lost race."""
    item = {**case.key, "doc": {"S": json.dumps(case.doc, ensure_ascii=False, separators=(",", ":"))},
            "version": {"N": str(case.version + 1)}}
    condition = "attribute_not_exists(pk)" if case.is_new else "version = :seen"
    values = {} if case.is_new else {"ExpressionAttributeValues": {":seen": {"N": str(case.version)}}}
    try:
        _dynamo().put_item(TableName=_table(), Item=item, ConditionExpression=condition, **values)
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise
    case.version += 1
    case.is_new = False
    return True


def update(case_id: str, unit_code: str, change: Callable[[Case], Any], create: dict[str, Any] | None = None) -> tuple[Case, Any]:
    """Read, change, write with optimistic concurrency; retried when another worker wrote first.

    `change` must be a pure function of the case it is given (it may run more than once).
    Returns the case as written and what `change` returned.
    """
    for _ in range(MAX_UPDATE_ATTEMPTS):
        case = load(case_id, unit_code)
        if case is None:
            if create is None:
                raise HubError(422, "unknown_case", "No such case.")
            case = Case(case_id, unit_code, json.loads(json.dumps(create)), 0, is_new=True)
        result = change(case)
        if result is UNCHANGED:
            return case, result
        if save(case):
            return case, result
    raise RuntimeError("case update kept losing races")  # the stream retries the record


UNCHANGED = object()


def timeline(case_id: str, unit_code: str) -> list[dict[str, Any]]:
    """Every message in and out of a case, oldest first: read from the events and deliveries tables'
    case-index (their items carry the case key), so nothing is written twice to keep it."""
    settings = get_settings()
    key = {":k": {"S": f"{case_id}#{unit_code}"}}
    entries: list[dict[str, Any]] = []
    for table, direction, at in ((settings.events_table, "in", "received_at"),
                                 (settings.deliveries_table, "out", "created_at")):
        for page in _dynamo().get_paginator("query").paginate(
                TableName=table, IndexName="case-index", KeyConditionExpression="case_key = :k",
                ExpressionAttributeValues=key):
            for item in page["Items"]:
                entry = {"direction": direction, "type": item["type"]["S"], "partner_id": item["partner_id"]["S"],
                         "at": float(item[at]["N"]),
                         "ref": item["event_id"]["S"] if direction == "in" else item["delivery_id"]["S"]}
                if direction == "out":
                    entry.update(state=item["state"]["S"], attempts=int(item["attempts"]["N"]))
                entries.append(entry)
    return sorted(entries, key=lambda e: e["at"])


def items(case_id: str, unit_code: str, kind: str) -> list[dict[str, Any]]:
    """Ledger entries, holds or risks of one case."""
    prefix = f"{unit_code}#{kind}#"
    found: list[dict[str, Any]] = []
    for page in _dynamo().get_paginator("query").paginate(
            TableName=_table(), KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": _pk(case_id)}, ":prefix": {"S": prefix}}, ConsistentRead=True):
        found.extend(json.loads(item["entry"]["S"]) for item in page["Items"])
    return found


def _item_key(case_id: str, unit_code: str, kind: str, item_id: str) -> dict[str, Any]:
    return {"pk": {"S": _pk(case_id)}, "sk": {"S": f"{unit_code}#{kind}#{item_id}"}}


def item(case_id: str, unit_code: str, kind: str, item_id: str) -> tuple[dict[str, Any], str | None] | None:
    """One ledger entry, hold or risk and the operator list it is on (None when on none), or None."""
    found = _dynamo().get_item(TableName=_table(), Key=_item_key(case_id, unit_code, kind, item_id),
                               ConsistentRead=True).get("Item")
    if found is None:
        return None
    return json.loads(found["entry"]["S"]), found.get("list_key", {}).get("S")


def put_once(case_id: str, unit_code: str, kind: str, item_id: str, entry: dict[str, Any],
             listed: str | None = None) -> bool:
    """Write a ledger entry, hold or risk exactly once. `listed` puts it on an operator list."""
    item = {**_item_key(case_id, unit_code, kind, item_id),
            "entry": {"S": json.dumps(entry, ensure_ascii=False, separators=(",", ":"))}}
    if listed:
        item.update({"list_key": {"S": listed}, "listed_at": {"N": repr(time.time())}})
    try:
        _dynamo().put_item(TableName=_table(), Item=item, ConditionExpression="attribute_not_exists(sk)")
        return True
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise


def unlist(case_id: str, unit_code: str, kind: str, item_id: str, *, listed: str | None = None,
           moved_to: str | None = None, entry: dict[str, Any] | None = None) -> bool:
    """Take an item that `put_once` listed off its operator list: conditionally on its being on `listed`
    (when given), else on its existing. `moved_to` lists it on another list instead, from now (an open
    hold becomes a released one); `entry` replaces its entry. False when it is not there (or not on `listed`)."""
    names, values, sets = {}, {}, []
    if entry is not None:
        names["#entry"] = "entry"
        values[":entry"] = {"S": json.dumps(entry, ensure_ascii=False, separators=(",", ":"))}
        sets.append("#entry = :entry")
    if moved_to:
        values.update({":moved": {"S": moved_to}, ":now": {"N": repr(time.time())}})
        sets.append("list_key = :moved, listed_at = :now")
    expression = " ".join(([f"SET {', '.join(sets)}"] if sets else [])
                          + ([] if moved_to else ["REMOVE list_key, listed_at"]))
    condition = "attribute_exists(sk)"
    if listed:
        condition = "list_key = :listed"
        values[":listed"] = {"S": listed}
    extra = {**({"ExpressionAttributeNames": names} if names else {}),
             **({"ExpressionAttributeValues": values} if values else {})}
    try:
        _dynamo().update_item(TableName=_table(), Key=_item_key(case_id, unit_code, kind, item_id),
                              UpdateExpression=expression, ConditionExpression=condition, **extra)
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise
    return True


def listed(list_key: str, limit: int = 1000) -> list[dict[str, Any]]:
    """An operator list (open holds, open risks), newest last."""
    found: list[dict[str, Any]] = []
    for page in _dynamo().get_paginator("query").paginate(
            TableName=_table(), IndexName="list-index", KeyConditionExpression="list_key = :k",
            ExpressionAttributeValues={":k": {"S": list_key}}):
        for item in page["Items"]:
            found.append({**json.loads(item["entry"]["S"]), "case_id": item["pk"]["S"][len("case#"):]})
        if len(found) >= limit:
            break
    return found[:limit]


def index_ref(kind: str, ref: str, case_id: str, unit_code: str) -> None:
    """Make a case findable by another party's reference: `order` (payment callbacks name only the
    order), `request` (an application the hub filed), `package`, `notarization`… Idempotent."""
    _dynamo().put_item(TableName=_table(), Item={"pk": {"S": f"{kind}#{ref}"}, "sk": {"S": "index"},
                                                 "case_id": {"S": case_id}, "unit_code": {"S": unit_code}})


def case_of_ref(kind: str, ref: str) -> tuple[str, str] | None:
    """(case_id, unit_code) of the case indexed under this reference, or None."""
    item = _dynamo().get_item(TableName=_table(), Key={"pk": {"S": f"{kind}#{ref}"}, "sk": {"S": "index"}},
                              ConsistentRead=True).get("Item")
    return (item["case_id"]["S"], item["unit_code"]["S"]) if item else None


def ledger_entries(case_id: str, unit_code: str) -> list[dict[str, Any]]:
    return items(case_id, unit_code, "ledger")
