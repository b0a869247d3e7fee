"""The restriction index (flow 5): the seizures recorded against each unit, and the open applications
that watch it, so that a seizure is flagged to the registry of every application on the unit at once.

One document per unit in the cases table, `pk = unit#<unit_code>`, `sk = restrictions`: a `cases.Case`
written with `cases.save`'s optimistic concurrency (`update`), so a watch and a seizure recorded at the
same moment cannot miss each other (whichever writes second sees the other). It holds

    seizures  {seizure_id: entry}    every seizure the hub forwarded or a registry recorded on the unit
    orders    {order key: seizure_id} release and renewal order numbers, which a registry may name instead
    watches   {case_key: watch}      open applications on the unit (transfer, mortgage, notarized filing…)

and, beside it, one expiry listing per seizure with a term (`sk = expiry#<seizure_id>`, list
"seizure:expiry", `listed_at` = the end of `valid_until`, China time) that the sweeper reads.

A seizure (`seizure_id`: "CF-" + a digest of its seize order number and the unit; one ruling may seize
several units) goes

    forwarded ──→ recorded (查封/预查封: binds) ──────────────→ released | expired
              └─→ waiting_list (轮候: listed) ─→ recorded (promoted, once the one ahead is lifted)
                                                    a renewal (续封) extends valid_until

A registry's restriction.recorded is the registry's truth: one for an order the hub never forwarded
(an older seizure, one made at the counter) enters the index too, without a court. A recorded seizure
binds when its kind is seize or pre_seizure; a waiting-list seizure is listed (flagged, not binding)
until the registry records its promotion. The unit is *blocked* while any seizure binds or waits:
applications on it are not told they may book (`is_blocked`), and `active_flags` lists every recorded
seizure. A waiting one blocks too because it takes effect by law the moment the one ahead is lifted
(the Supreme People's Court's rules on seizure in civil enforcement: 轮候查封 becomes effective
automatically on the prior one's release), before the registry gets round to recording it.

Flags: when a seizure is recorded (or promoted) every watch gets `restriction.flagged` raised, to the
watch's registry; an application that starts watching a unit with recorded seizures gets them at once.
A release or expiry sends `restriction.flagged` lifted to every watch that was raised for it, then runs
the flows' `on_lift` callbacks for every watch (a callback re-checks its case: the unit may still be
blocked by another seizure). Which event raised or lifted what is kept on the watch, so a re-run of the
same event sends the same deliveries again (deterministic ids: nothing new) and a repeat under another
webhook-id sends nothing. No personal data in the index: order numbers, restriction ids, partner ids.

API for the flows:
    watch(unit_code, case_key, flow, registry_partner_id, source_event_id, *, case_id=, request_id=)
        -> list of active flags (case.ready_to_book's restriction_flags shape)
    unwatch(unit_code, case_key)            the application was booked or rejected
    active_flags(unit_code), is_blocked(unit_code)
    @on_lift("<flow>") def f(case_key, source_event_id): ...   registered when the flow module loads
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from chalicelib import aws, cases
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.observability import logger, metrics
from chalicelib.settings import get_settings

CHINA = timezone(timedelta(hours=8))
EXPIRY_LIST = "seizure:expiry"
SWEEP_MAX = 200  # expiries handled per sweep, the oldest first; the next minute takes the rest
BINDING_KINDS = ("seize", "pre_seizure")
ACTIVE = ("recorded", "waiting_list")
FINAL = ("released", "expired")
# The transitions an event can cause, in the order `change_of` looks for them.
TRANSITIONS = ("forwarded", "recorded", "waiting_list", "promoted", "renewed", "released", "expired")

_ON_LIFT: dict[str, list[Callable[[str, str], None]]] = {}


def _digest(*parts: str, size: int = 20) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:size].upper()


def seizure_id(order_number: str, unit_code: str) -> str:
    """The hub's number of a seizure (and of the court's seizure case): its seize order on its unit."""
    return "CF-" + _digest(order_number, unit_code)


def _registry_seizure_id(restriction_id: str, unit_code: str) -> str:
    """A seizure a registry recorded without an order number: known by its record number only."""
    return "CF-R-" + _digest(restriction_id, unit_code)


def order_key(action: str, order_number: str) -> str:
    return _digest(action, order_number, size=24)


# ---------------------------------------------------------------------------------------------------
# the document


@dataclass
class UnitIndex(Case):
    """The restriction index of one unit: `case_id` holds the unit code too (Case's shape)."""

    @property
    def key(self) -> dict[str, Any]:
        return {"pk": {"S": f"unit#{self.unit_code}"}, "sk": {"S": "restrictions"}}

    @property
    def seizures(self) -> dict[str, dict[str, Any]]:
        return self.doc["seizures"]

    @property
    def watches(self) -> dict[str, dict[str, Any]]:
        return self.doc["watches"]

    def find(self, order_number: str | None = None, restriction_id: str | None = None) -> dict[str, Any] | None:
        """The seizure a court or registry names: by its seize order number, by a release or renewal order
        number the hub forwarded, or by the registry's record number."""
        if order_number:
            found = self.seizures.get(seizure_id(order_number, self.unit_code))
            if found is None:
                sid = next((self.doc["orders"][k] for k in (order_key("release", order_number),
                                                              order_key("renew", order_number))
                            if k in self.doc["orders"]), None)
                found = self.seizures.get(sid) if sid else None
            if found is not None:
                return found
        if restriction_id:
            return next((s for s in self.seizures.values() if s.get("restriction_id") == restriction_id), None)
        return None

    def active(self) -> list[dict[str, Any]]:
        return sorted((s for s in self.seizures.values() if s["state"] in ACTIVE),
                      key=lambda s: (s["state"] != "recorded", s.get("rank") or 999, s.get("recorded_at") or ""))

    def blocked(self) -> bool:
        return any(s["state"] in ACTIVE for s in self.seizures.values())

    def flags(self) -> list[dict[str, Any]]:
        """Every recorded seizure, in case.ready_to_book's `restriction_flags` shape (binding ones first)."""
        return [_flag(s) for s in self.active()]


def _flag(entry: dict[str, Any]) -> dict[str, Any]:
    flag = {"restriction_type": "seizure", "restriction_id": entry["restriction_id"]}
    if entry.get("order_number"):
        flag["seizure_order_number"] = entry["order_number"]
    return flag


def _detailed_flag(entry: dict[str, Any]) -> dict[str, Any]:
    """restriction.flagged's `restriction`: the flag with kind, rank, whether it binds, its term."""
    return {**_flag(entry), "seizure_kind": entry.get("kind"), "rank": entry.get("rank"),
            "binding": entry["state"] == "recorded", "valid_until": entry.get("valid_until")}


def _new_doc(unit_code: str) -> dict[str, Any]:
    from chalicelib.identifiers import city_of

    return {"unit_code": unit_code, "city": city_of(unit_code), "seizures": {}, "orders": {}, "watches": {}}


def load(unit_code: str) -> UnitIndex | None:
    item = aws.client("dynamodb").get_item(
        TableName=get_settings().cases_table, Key={"pk": {"S": f"unit#{unit_code}"}, "sk": {"S": "restrictions"}},
        ConsistentRead=True).get("Item")
    if not item:
        return None
    return UnitIndex(unit_code, unit_code, json.loads(item["doc"]["S"]), int(item["version"]["N"]))


def update(unit_code: str, change: Callable[[UnitIndex], Any]) -> tuple[UnitIndex, Any]:
    """Read, change, write conditionally on the version read (the `cases.update` loop); created on first
    write. `change` must be pure (it may run again); UNCHANGED or a HubError writes nothing."""
    for _ in range(cases.MAX_UPDATE_ATTEMPTS):
        index = load(unit_code) or UnitIndex(unit_code, unit_code, _new_doc(unit_code), 0, is_new=True)
        result = change(index)
        if result is UNCHANGED or isinstance(result, HubError):
            return index, result
        if cases.save(index):
            return index, result
    raise RuntimeError("restriction index update kept losing races")  # the stream retries the record


def change_of(entry: dict[str, Any], source: str) -> str | None:
    """Which transition of this seizure `source` (an event id, or an expiry's id) caused, if any."""
    facts = entry["facts"]
    for kind in TRANSITIONS:
        fact = facts.get(kind)
        if fact == source or (isinstance(fact, list) and source in fact):
            return kind
    return None


# ---------------------------------------------------------------------------------------------------
# the flows' API: watches


def on_lift(flow: str) -> Callable:
    """`@restrictions.on_lift("transfer")`: `func(case_key, source_event_id)` runs for each watch of the
    flow on a unit when a seizure on it is released or expires (idempotent: it may run again)."""
    def register(func: Callable[[str, str], None]) -> Callable[[str, str], None]:
        if func not in _ON_LIFT.setdefault(flow, []):
            _ON_LIFT[flow].append(func)
        return func
    return register


def watch(unit_code: str, case_key: str, flow: str, registry_partner_id: str, source_event_id: str, *,
          case_id: str | None = None, request_id: str | None = None) -> list[dict[str, Any]]:
    """An open application on the unit: every recorded seizure is flagged to `registry_partner_id` now,
    and later ones when they are recorded. `case_key` is what the application's deliveries carry
    ("<case_id>#<unit_code>", or "<kind>#<id>"); `case_id` (a registry case) or `request_id` (an
    application the hub filed) is what the registry is told. Returns the active flags."""
    if case_id is None and request_id is None:
        raise ValueError("a watch names the registry's case_id or the hub's request_id")

    def add(index: UnitIndex) -> Any:
        if case_key in index.watches:
            return UNCHANGED  # watched already (by this event on an earlier run, or by a repeat of it)
        index.watches[case_key] = {
            "case_key": case_key, "flow": flow, "registry_partner_id": registry_partner_id, "case_id": case_id,
            "request_id": request_id, "source_event_id": source_event_id, "at": time.time(),
            "raised": {s["seizure_id"]: source_event_id for s in index.active()}, "lifted": {}}
        return None

    index, _ = update(unit_code, add)
    entry = index.watches[case_key]
    for sid, source in sorted(entry["raised"].items()):
        seizure = index.seizures[sid]
        if source == source_event_id and seizure["state"] in ACTIVE:
            _send_flag(index, entry, seizure, "raised", source)
    return index.flags()


def unwatch(unit_code: str, case_key: str) -> None:
    """The application is closed (booked, rejected): no more flags for it."""
    update(unit_code, lambda index: UNCHANGED if index.watches.pop(case_key, None) is None else None)


def active_flags(unit_code: str) -> list[dict[str, Any]]:
    index = load(unit_code)
    return index.flags() if index else []


def is_blocked(unit_code: str) -> bool:
    """True while a seizure recorded as binding (查封, 预查封) or waiting behind one (轮候) is on the unit."""
    index = load(unit_code)
    return bool(index and index.blocked())


# ---------------------------------------------------------------------------------------------------
# the seizure flow's API: orders and the registry's records


def _refusal(code: str, message: str, field: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": message}])


def order_refusal(index: UnitIndex | None, data: dict[str, Any], court_partner_id: str, digest: str
                  ) -> HubError | str | None:
    """Why a court's order cannot be forwarded (a HubError), "repeat" for an order already forwarded with
    the same content, or None. The rules of the door, applied again on the stream:

    - a seize order's number already seizes the unit (another order, another court, the registry's own
      record): 422 order_number_in_use;
    - a release or renewal of a seizure the index does not know on this unit, or one another court's
      order made (the same answer: a court learns nothing of other courts' seizures): 422 unknown_seizure;
      a registry's own seizure (no court) may be released or renewed by any court;
    - of a seizure released or expired: 422 seizure_not_active;
    - a renewal that does not extend the term: 422 renewal_not_later.
    """
    action = data["action"]
    if action == "seize":
        entry = index.seizures.get(seizure_id(data["order_number"], index.unit_code)) if index else None
    else:
        entry = index.find(data["original_order_number"]) if index else None
        if entry is None or entry["court_partner_id"] not in (None, court_partner_id):
            return _refusal("unknown_seizure", "No seizure by this order on the unit that your court may change.",
                            "data.original_order_number")
    if entry is not None:
        same = [o for o in entry["orders"] if o["action"] == action and o["order_number"] == data["order_number"]]
        if same and same[0]["digest"] == digest and entry["court_partner_id"] == court_partner_id:
            return "repeat"
        if same or action == "seize":
            return _refusal("order_number_in_use", "An order with this number was forwarded for the unit already, "
                            "with other content (or the seizure is another's).", "data.order_number")
    if action == "seize":
        return None
    if entry["state"] in FINAL:
        return _refusal("seizure_not_active", f"The seizure is {entry['state']}.", "data.original_order_number")
    if action == "renew" and entry.get("valid_until") and data["valid_until"] <= entry["valid_until"]:
        return _refusal("renewal_not_later", "A renewal extends the seizure's term beyond its valid_until.",
                        "data.valid_until")
    return None


def restriction_refusal(entry: dict[str, Any] | None, data: dict[str, Any]) -> HubError | None:
    """Why a registry's seizure record cannot apply to the index (the door's rules, and the stream's):
    a release or renewal of a seizure the index does not know (422 unknown_seizure: nothing to lift); a
    record or renewal of one released or expired (422 seizure_not_active); a renewal without its new
    term (422 validity_required); a binding seizure recorded back onto the waiting list (422
    seizure_state_conflict). A record of a seizure the hub never forwarded is the registry's truth: no
    refusal."""
    action = data["action"]
    if entry is None:
        if action == "recorded":
            return None
        return _refusal("unknown_seizure", "No seizure with this order or record number on the unit.",
                        "data.seizure_order_number")
    if action == "released":
        return None
    if entry["state"] in FINAL:
        return _refusal("seizure_not_active", f"The seizure is {entry['state']}.", "data.restriction_id")
    if action == "renewed" and not data.get("valid_until"):
        return _refusal("validity_required", "A renewal gives the new valid_until.", "data.valid_until")
    if action == "recorded" and entry["state"] == "recorded" and (data.get("seizure_kind") or entry["kind"]) \
            not in BINDING_KINDS:
        return _refusal("seizure_state_conflict", "A binding seizure cannot go back to the waiting list.",
                        "data.seizure_kind")
    return None


def record_order(index: UnitIndex, sid: str, data: dict[str, Any], court_partner_id: str, event_id: str,
                 received_at: float, digest: str) -> Any:
    """A court's seize, release or renewal order, forwarded (a pure change for `update`).

    A seize order makes a new seizure, `forwarded`, expected on the waiting list when another seizure of
    the unit is forwarded or recorded. A release or renewal is kept on its seizure (the registry records
    what it does with it); a registry's own seizure released through the hub gets the releasing court.
    Returns UNCHANGED for an order already recorded, a HubError for one that can no longer apply.
    """
    action = data["action"]
    refusal = order_refusal(index, data, court_partner_id, digest)
    if refusal == "repeat":
        return UNCHANGED
    if refusal is not None:
        return refusal
    entry = index.seizures.get(sid)
    order = {"action": action, "order_number": data["order_number"], "event_id": event_id, "digest": digest,
             "received_at": received_at, "valid_from": data.get("valid_from"), "valid_until": data.get("valid_until")}
    if action == "seize":
        others = [s for s in index.seizures.values() if s["state"] in ACTIVE + ("forwarded",)]
        index.seizures[sid] = {
            "seizure_id": sid, "unit_code": index.unit_code, "order_number": data["order_number"],
            "court_partner_id": court_partner_id, "kind": data["seizure_kind"], "state": "forwarded",
            "expected": "waiting_list" if others else "binding", "restriction_id": None, "rank": None,
            "valid_from": data.get("valid_from"), "valid_until": data.get("valid_until"), "recorded_at": None,
            "orders": [order], "facts": {"forwarded": event_id}}
        return None
    entry["orders"].append(order)
    entry["court_partner_id"] = entry["court_partner_id"] or court_partner_id
    index.doc["orders"][order_key(action, data["order_number"])] = sid
    return None


def record_restriction(unit_code: str, data: dict[str, Any], event_id: str) -> tuple[UnitIndex, dict[str, Any] | None,
                                                                                      str | None]:
    """A registry's restriction.recorded of a seizure: applied to the index, then the flags it raises or
    lifts are sent and the on_lift callbacks run. Returns (index, the seizure, the transition this event
    made: recorded, waiting_list, promoted, renewed, released; None for a repeat or a contradiction)."""
    def apply(index: UnitIndex) -> Any:
        entry = index.find(data.get("seizure_order_number"), data["restriction_id"])
        if entry is not None and change_of(entry, event_id):
            return UNCHANGED  # applied by this event on an earlier run
        return _apply_recorded(index, entry, data, event_id)

    index, result = update(unit_code, apply)
    if isinstance(result, HubError):
        logger.warning("restriction record not applied", extra={"code": result.code})
        return index, None, None
    entry = index.find(data.get("seizure_order_number"), data["restriction_id"])
    transition = change_of(entry, event_id) if entry else None
    if transition:
        _after(index, entry, transition, event_id)
    return index, entry, transition


def _apply_recorded(index: UnitIndex, entry: dict[str, Any] | None, data: dict[str, Any], event_id: str) -> Any:
    action = data["action"]
    refusal = restriction_refusal(entry, data)
    if refusal is not None:
        return refusal
    if action == "recorded":
        kind = data.get("seizure_kind") or (entry or {}).get("kind") or "seize"
        state = "recorded" if kind in BINDING_KINDS else "waiting_list"
        if entry is None:  # the registry's own record: it enters the index without a court
            order_number = data.get("seizure_order_number")
            sid = (seizure_id(order_number, index.unit_code) if order_number
                   else _registry_seizure_id(data["restriction_id"], index.unit_code))
            entry = index.seizures[sid] = {
                "seizure_id": sid, "unit_code": index.unit_code, "order_number": order_number,
                "court_partner_id": None, "kind": kind, "state": "forwarded", "expected": None, "orders": [],
                "facts": {}}
        if entry["state"] == state:
            return UNCHANGED  # the same record again
        transition = "promoted" if entry["state"] == "waiting_list" else state
        entry.update(state=state, kind=kind, restriction_id=data["restriction_id"], rank=data.get("rank"),
                     recorded_at=data["recorded_at"], valid_from=data.get("valid_from") or entry.get("valid_from"),
                     valid_until=data.get("valid_until") or entry.get("valid_until"))
        entry["facts"][transition] = event_id
        for watch_ in index.watches.values():
            watch_["raised"][entry["seizure_id"]] = event_id
        return None
    if action == "renewed":
        if data["valid_until"] == entry.get("valid_until"):
            return UNCHANGED
        entry["valid_until"] = data["valid_until"]
        entry["restriction_id"] = entry.get("restriction_id") or data["restriction_id"]
        entry["facts"].setdefault("renewed", []).append(event_id)
        return None
    if entry["state"] in FINAL:  # released
        return UNCHANGED
    _lift(index, entry, "released", event_id)
    entry["released_at"] = data["recorded_at"]
    return None


def _lift(index: UnitIndex, entry: dict[str, Any], state: str, source: str) -> None:
    entry["state"] = state
    entry["facts"][state] = source
    for watch_ in index.watches.values():
        if entry["seizure_id"] in watch_["raised"] and entry["seizure_id"] not in watch_["lifted"]:
            watch_["lifted"][entry["seizure_id"]] = source


def _after(index: UnitIndex, entry: dict[str, Any], transition: str, source: str) -> None:
    """What a transition tells the world: flags to the watches, the expiry listing, the callbacks."""
    sid = entry["seizure_id"]
    if transition in ("recorded", "waiting_list", "promoted", "renewed"):
        _list_expiry(index.unit_code, entry)
    if transition in ("recorded", "waiting_list", "promoted"):
        for watch_ in _watches(index):
            if watch_["raised"].get(sid) == source:
                _send_flag(index, watch_, entry, "raised", source, purpose=transition)
        logger.info("seizure on the index", extra={"seizure_id": sid, "state": entry["state"]})
        metrics.add_metric(name="SeizuresRecorded", unit="Count", value=1)
    if transition in ("released", "expired"):
        _unlist_expiry(index.unit_code, entry)
        for watch_ in _watches(index):
            if watch_["lifted"].get(sid) == source:
                _send_flag(index, watch_, entry, "lifted", source, purpose=transition)
        logger.info("seizure lifted", extra={"seizure_id": sid, "state": entry["state"]})
        for watch_ in _watches(index):
            for callback in _ON_LIFT.get(watch_["flow"], ()):
                callback(watch_["case_key"], source)


def _watches(index: UnitIndex) -> Iterable[dict[str, Any]]:
    return [index.watches[k] for k in sorted(index.watches)]


def _send_flag(index: UnitIndex, watch_: dict[str, Any], entry: dict[str, Any], change: str, source: str,
               purpose: str = "watch") -> int:
    from chalicelib import flows
    from chalicelib.partners import get_directory

    data = {"change": change, "unit_code": index.unit_code, "case_id": watch_["case_id"],
            "request_id": watch_["request_id"], "restriction": _detailed_flag(entry),
            "lift_reason": entry["state"] if change == "lifted" else None, "blocked": index.blocked(),
            "active_flags": index.flags()[:20], "flagged_at": datetime.now(timezone.utc).isoformat()}
    tag = f"flag-{change}-{purpose}-{entry['seizure_id']}-{_digest(watch_['case_key'], size=16)}"
    registry = get_directory().get(watch_["registry_partner_id"])  # None: no longer a partner (a dead letter)
    first, _, rest = watch_["case_key"].partition("#")
    return flows.send(source, tag, "restriction.flagged", {k: v for k, v in data.items() if v is not None},
                      [registry] if registry else [], (first, rest))


# ---------------------------------------------------------------------------------------------------
# expiry


def _expires_at(valid_until: str) -> float:
    """A term runs to the end of its last day, China time."""
    day = date.fromisoformat(valid_until) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=CHINA).timestamp()


def _expiry_key(unit_code: str, sid: str) -> dict[str, Any]:
    return {"pk": {"S": f"unit#{unit_code}"}, "sk": {"S": f"expiry#{sid}"}}


def _list_expiry(unit_code: str, entry: dict[str, Any]) -> None:
    if not entry.get("valid_until") or entry["state"] not in ACTIVE:
        return
    aws.client("dynamodb").put_item(TableName=get_settings().cases_table, Item={
        **_expiry_key(unit_code, entry["seizure_id"]), "list_key": {"S": EXPIRY_LIST},
        "listed_at": {"N": repr(_expires_at(entry["valid_until"]))}, "valid_until": {"S": entry["valid_until"]},
        "entry": {"S": json.dumps({"unit_code": unit_code, "seizure_id": entry["seizure_id"],
                                   "valid_until": entry["valid_until"]})}})


def _unlist_expiry(unit_code: str, entry: dict[str, Any]) -> None:
    aws.client("dynamodb").delete_item(TableName=get_settings().cases_table, Key=_expiry_key(unit_code, entry["seizure_id"]))


def expire_due(now: float | None = None, max_items: int = SWEEP_MAX) -> int:
    """Seizures whose term ended (valid_until passed, China time) and were not renewed: expired, their
    flags lifted. Returns how many expired now. A renewal re-lists the seizure with its new term, so a
    listing whose term no longer matches the seizure's is only taken off the list."""
    now = time.time() if now is None else now
    dynamo = aws.client("dynamodb")
    pages = dynamo.get_paginator("query").paginate(
        TableName=get_settings().cases_table, IndexName="list-index",
        KeyConditionExpression="list_key = :k AND listed_at <= :now",
        ExpressionAttributeValues={":k": {"S": EXPIRY_LIST}, ":now": {"N": repr(now)}})
    due = []
    for page in pages:
        due.extend(json.loads(item["entry"]["S"]) for item in page["Items"])
        if len(due) >= max_items:
            break
    expired = 0
    for listing in due[:max_items]:
        unit_code, sid, until = listing["unit_code"], listing["seizure_id"], listing["valid_until"]
        source = f"expiry-{sid}-{until}"

        def expire(index: UnitIndex) -> Any:
            entry = index.seizures.get(sid)
            if entry is None or entry["state"] not in ACTIVE or entry.get("valid_until") != until:
                return UNCHANGED
            _lift(index, entry, "expired", source)
            return None

        index, _ = update(unit_code, expire)
        entry = index.seizures.get(sid)
        if entry is not None and change_of(entry, source) == "expired":
            _after(index, entry, "expired", source)
            expired += 1
        try:  # off the list unless a renewal re-listed it meanwhile
            dynamo.delete_item(TableName=get_settings().cases_table, Key=_expiry_key(unit_code, sid),
                               ConditionExpression="valid_until = :until",
                               ExpressionAttributeValues={":until": {"S": until}})
        except Exception as exc:
            if not aws.is_conditional_check_failure(exc):
                raise
    if expired:
        metrics.add_metric(name="SeizuresExpired", unit="Count", value=expired)
    return expired
