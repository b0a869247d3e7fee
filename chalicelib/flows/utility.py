"""Flow 3, utilities (水电气过户): after a transfer is booked, each utility the applicants consented to
is asked to move the unit's account to the new holder (seed 002: Tangshan's 水电交易一次过, Linyi's
水电气暖协同过户, Shanghai's 1+N, Zaozhuang's 水电气热过户 一次办).

    registration.booked (a transfer case) ─→ utility.transfer_requested, one per consented utility type,
                                             to the utility partner(s) of that type in the unit's city
    utility ── utility.transfer_completed | utility.transfer_failed ─→ the utility's state on the case
    operator ── hubctl utilities retry ─→ utility.transfer_requested, the next attempt (a failed one only)

State, on the transfer case document (`utilities[<type>]`, one entry per consented type):

    {"attempts": [{"attempt": 1, "request_id": "UT-<county>-<case>-<type>-1", "partner_ids": [...],
                   "source_event": <booking event>, "requested_at": …, "dispatched": true,
                   "answers": {<partner_id>: {"outcome": "completed"|"failed", "reason_code", "event_id", …}},
                   "superseded": [a failure a later completion replaced],
                   "retry": null | {"by": <operator id>, "reason": <snake_case code>, "at": …}}, …],
     "late_answers": [answers recorded but not applied: a failure after completion, a stale attempt]}

An attempt is `completed` once any partner it went to completed it, `failed` when every one failed (or
it went to no one: a consented type with no partner in the city is recorded as a dead letter operators
see, and as a failure `no_utility_partner`), else `requested`. A utility is `completed` if any of its
attempts is (an older attempt completing late still moved the account), else its latest attempt's
state. Answers change the state idempotently: a repeat changes nothing; completed after failed wins
(the account was moved after all); failed after completed, or for an attempt a retry replaced, is
recorded in `late_answers` and changes nothing.

Request ids: `UT-<county>-<case_id>-<type>-<attempt>` (a hash stands in for a too-long middle), each
indexed (`utility_request`) before it is sent, so the door refuses (422 `unknown_utility_request`) an
answer for a request the hub never sent, from a partner it was not sent to, for another utility type or
another case; an answer cannot arrive before its request is known. A retry is a new request (the next
attempt, its own request id and delivery purpose `utility-<type>-<n>`, so a new webhook-id); a stale
answer to the old request is told apart by its request id. The retry records the operator's id and a
reason code, never free text. A retry written but not sent (a crash between the two) is sent by the
next `retry` call for that utility.

What a utility learns (issue 4, part 5): the unit code, address (坐落) and its own account number when
the registry gave them, the ownership certificate number and booking time, the old holder's name and
masked ID number (to match the account holder), and the new holder in full, because the account is
opened in their name. No price, no tax, no other party; utilities are not participants of the case
(the case read shows amounts). With several obligors or obligees, the first listed of each is named.

Time limits: stage `utility_transfer`, one clock per utility and attempt (instance `<type>-<attempt>`),
the utility responsible when one partner received the request.
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from chalicelib import cases
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import checks, handles, send
from chalicelib.flows.transfer import start_case_clock, stop_case_clock
from chalicelib.models.common import mask_id_number
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

REQUEST_REF = "utility_request"  # cases.index_ref kind: request id → the transfer case
FAILED_LIST = "utility:failed"  # operator list of failures (cross-checked against the case when read)
STAGE = "utility_transfer"
NO_PARTNER = "no_utility_partner"
MAX_ATTEMPTS = 10
MAX_LATE_ANSWERS = 20
MAX_REF = 64  # models.common.Ref
_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # models.common.Ref
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # models.common.SnakeCode


def bounded_ref(text: str, limit: int = MAX_REF) -> str:
    """`text` when it fits; else its head and a hash of the whole (still unique, still a Ref)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 13]}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def request_id_for(case_id: str, unit_code: str, utility: str, attempt: int) -> str:
    """`UT-<county>-<case_id>-<utility>-<attempt>`: the county keeps two cities' case numbers apart."""
    tail = f"-{utility}-{attempt}"
    return bounded_ref(f"UT-{unit_code[:6]}-{case_id}", MAX_REF - len(tail)) + tail


def _partners(city: str, utility: str) -> list:
    return get_directory().find("utility", city=city, utility=utility)


def _refuse_unknown() -> HubError:
    # One answer for every mismatch: a utility learns nothing about requests sent to others.
    return HubError(422, "unknown_utility_request", "No such utility transfer request was sent to you.",
                    [{"field": "data.request_id", "code": "unknown_request",
                      "message": "not a request the hub sent to this partner for this case and utility"}])


# ---------------------------------------------------------------- state, derived from the recorded facts

def attempt_state(attempt: dict[str, Any]) -> str:
    outcomes = [answer["outcome"] for answer in attempt["answers"].values()]
    if "completed" in outcomes:
        return "completed"
    if not attempt["partner_ids"] or len(outcomes) == len(attempt["partner_ids"]):
        return "failed"
    return "requested"


def utility_state(entry: dict[str, Any]) -> str:
    if any(attempt_state(a) == "completed" for a in entry["attempts"]):
        return "completed"
    return attempt_state(entry["attempts"][-1])


def _failure_code(attempt: dict[str, Any]) -> str | None:
    if not attempt["partner_ids"]:
        return NO_PARTNER
    codes = [a["reason_code"] for a in attempt["answers"].values() if a["outcome"] == "failed"]
    return codes[0] if codes else None


def _attempt_of(doc: dict[str, Any], utility: str, request_id: str) -> dict[str, Any] | None:
    entry = (doc.get("utilities") or {}).get(utility)
    return next((a for a in entry["attempts"] if a["request_id"] == request_id), None) if entry else None


def _new_attempt(case: Case, utility: str, number: int, source_event: str, at: float,
                 retry: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"attempt": number, "request_id": request_id_for(case.case_id, case.unit_code, utility, number),
            "partner_ids": [p.id for p in _partners(case.doc["city"], utility)], "source_event": source_event,
            "requested_at": at, "dispatched": False, "answers": {}, "retry": retry}


# ---------------------------------------------------------------- sending

def _holder(parties: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return next(p for p in parties if p["role"] == role)


def _request_data(case: Case, utility: str, attempt: dict[str, Any]) -> dict[str, Any]:
    """What the utility needs to move the account, and nothing else (see the module docstring)."""
    doc = case.doc
    old, new = _holder(doc["parties"], "obligor"), _holder(doc["parties"], "obligee")
    accounts = {a["utility"]: a["account_number"] for a in doc.get("utility_accounts") or []}
    booking = doc["booking"]
    return {
        "request_id": attempt["request_id"], "case_id": case.case_id, "utility": utility,
        "unit_code": case.unit_code, "address": doc.get("location"), "account_number": accounts.get(utility),
        "old_holder": {"name": old["name"], "id_number_masked": mask_id_number(old["id_number"])},
        "new_holder": {k: new[k] for k in ("name", "id_type", "id_number", "phone") if new.get(k)},
        "certificate_number": (booking.get("certificate_numbers") or [None])[0],
        "booked_at": booking["booked_at"], "attempt": attempt["attempt"],
    }


def _dispatch(case: Case, utility: str, number: int) -> None:
    """Send one attempt (idempotent: the index, delivery ids, clock and failure listing are all once-only)."""
    attempt = case.doc["utilities"][utility]["attempts"][number - 1]
    cases.index_ref(REQUEST_REF, attempt["request_id"], case.case_id, case.unit_code)  # before anyone can answer
    directory = get_directory()
    targets = [p for p in (directory.get(pid) for pid in attempt["partner_ids"]) if p is not None]
    send(attempt["source_event"], f"utility-{utility}-{number}", "utility.transfer_requested",
         _request_data(case, utility, attempt), targets, case.ref)  # no target: a dead letter operators see
    if not attempt["partner_ids"]:
        _list_failure(case, utility, attempt)
    else:
        start_case_clock(case, STAGE, attempt["requested_at"], targets[0].id if len(targets) == 1 else None,
                         instance=f"{utility}-{number}")

    def mark(c: Case) -> Any:
        sent = c.doc["utilities"][utility]["attempts"][number - 1]
        if sent["dispatched"]:
            return UNCHANGED
        sent["dispatched"] = True
        return None

    cases.update(case.case_id, case.unit_code, mark)
    logger.info("utility transfer requested", extra={"case_key": case.key_text, "utility": utility,
                                                     "attempt": number, "partners": len(targets)})
    metrics.add_metric(name="UtilityRequests", unit="Count", value=1)


def _list_failure(case: Case, utility: str, attempt: dict[str, Any]) -> None:
    cases.put_once(case.case_id, case.unit_code, "utility", f"{utility}-{attempt['attempt']}-failed",
                   {"unit_code": case.unit_code, "utility": utility, "attempt": attempt["attempt"],
                    "request_id": attempt["request_id"], "reason_code": _failure_code(attempt), "at": time.time()},
                   listed=FAILED_LIST)


# ---------------------------------------------------------------- the booking starts it

@handles("registration.booked")
def on_registration_booked(stored: Any) -> None:
    """Runs after flows/transfer.py recorded the booking: this module imports transfer, so transfer's
    handler is registered (and runs) first, whatever order the flows are loaded in."""
    data = stored.data
    case = cases.load(data["case_id"], data["unit_code"])
    if case is None or case.doc.get("flow") != "transfer" or case.doc.get("service") != "transfer":
        return
    booking = case.doc.get("booking")
    consented = case.doc.get("utilities_consented") or []
    if not booking or booking["event_id"] != stored.event_id or not consented:
        return  # not booked by this event (a repeat): the first booking event asked the utilities

    def record(c: Case) -> Any:
        utilities = c.doc.setdefault("utilities", {})
        missing = [u for u in consented if u not in utilities]
        for utility in missing:
            utilities[utility] = {"attempts": [_new_attempt(c, utility, 1, stored.event_id, stored.received_at)],
                                  "late_answers": []}
        return None if missing else UNCHANGED

    case, _ = cases.update(case.case_id, case.unit_code, record)
    for utility in consented:
        if case.doc["utilities"][utility]["attempts"][0]["source_event"] == stored.event_id:
            _dispatch(case, utility, 1)


# ---------------------------------------------------------------- answers

@checks("utility.transfer_completed", "utility.transfer_failed")
def _check_known_request(partner: Any, data: dict[str, Any]) -> str:
    ref = cases.case_of_ref(REQUEST_REF, data["request_id"])
    case = cases.load(*ref) if ref else None
    attempt = _attempt_of(case.doc, data["utility"], data["request_id"]) if case else None
    if (attempt is None or partner.id not in attempt["partner_ids"] or data["case_id"] != case.case_id
            or data["unit_code"] != case.unit_code):
        raise _refuse_unknown()
    return case.key_text


def _answer_fact(stored: Any, outcome: str) -> dict[str, Any]:
    data = stored.data
    fact = {"outcome": outcome, "event_id": stored.event_id, "received_at": stored.received_at}
    if outcome == "completed":
        fact.update(completed_at=data["completed_at"], new_account_opened=bool(data.get("new_account_number")))
    else:
        fact.update(reason_code=data["reason_code"], retryable=data.get("retryable", False),
                    failed_at=data["failed_at"])
    return fact


def _on_answer(stored: Any, outcome: str) -> None:
    data = stored.data
    ref = cases.case_of_ref(REQUEST_REF, data["request_id"])
    if ref is None:
        return
    utility, partner_id, fact = data["utility"], stored.partner_id, _answer_fact(stored, outcome)

    def record(c: Case) -> Any:
        entry = (c.doc.get("utilities") or {}).get(utility)
        attempt = _attempt_of(c.doc, utility, data["request_id"])
        if entry is None or attempt is None or partner_id not in attempt["partner_ids"]:
            return UNCHANGED  # the door refuses these; nothing to apply
        previous = attempt["answers"].get(partner_id)
        handled = [*attempt["answers"].values(), *attempt.get("superseded", []), *entry["late_answers"]]
        if (previous and previous["outcome"] == outcome) or any(a["event_id"] == stored.event_id for a in handled):
            return UNCHANGED  # the same fact again (a repeat under another webhook-id, or a re-run)
        late_because = None
        if outcome == "failed" and utility_state(entry) == "completed":
            late_because = "after_completed"
        elif outcome == "failed" and attempt is not entry["attempts"][-1]:
            late_because = "attempt_replaced"
        if late_because:
            entry["late_answers"] = (entry["late_answers"] + [{
                "request_id": data["request_id"], "partner_id": partner_id, "outcome": outcome,
                "reason_code": fact.get("reason_code"), "ignored": late_because, "event_id": stored.event_id,
            }])[-MAX_LATE_ANSWERS:]
            return late_because
        if previous:  # a failure the utility took back by completing: kept, so a re-run knows it
            attempt.setdefault("superseded", []).append(previous)
        attempt["answers"][partner_id] = fact
        return None

    case, result = cases.update(ref[0], ref[1], record)
    if result is UNCHANGED:
        return
    if isinstance(result, str):
        logger.warning("utility answer recorded, not applied", extra={"case_key": case.key_text, "utility": utility,
                                                                      "ignored": result})
        return
    attempt = _attempt_of(case.doc, utility, data["request_id"])
    state = attempt_state(attempt)
    if state != "requested":
        stop_case_clock(case, STAGE, stored.received_at, instance=f"{utility}-{attempt['attempt']}")
    if state == "failed":
        _list_failure(case, utility, attempt)
    logger.info("utility answered", extra={"case_key": case.key_text, "utility": utility, "outcome": outcome,
                                           "attempt": attempt["attempt"], "state": state})


@handles("utility.transfer_completed")
def on_transfer_completed(stored: Any) -> None:
    _on_answer(stored, "completed")


@handles("utility.transfer_failed")
def on_transfer_failed(stored: Any) -> None:
    _on_answer(stored, "failed")


# ---------------------------------------------------------------- operators

def _transfer_case(case_id: str, unit_code: str | None) -> Case:
    found = [c for c in cases.find(case_id) if c.doc.get("flow") == "transfer"
             and (unit_code is None or c.unit_code == unit_code)]
    if not found:
        raise HubError(404, "case_not_found", "No transfer case with this number (and unit).")
    if len(found) > 1:
        raise HubError(409, "ambiguous_case", "Several cases have this number: name the unit.",
                       [{"field": "unit_code", "code": "required", "message": "name the unit code"}])
    return found[0]


def retry(case_id: str, utility: str, operator: str, reason: str, unit_code: str | None = None,
          now: float | None = None) -> dict[str, Any]:
    """An operator asks a failed utility again: the next attempt, a new request id and delivery.

    `operator` is the operator's id and `reason` a snake_case code (no free text: no personal data
    can slip into the case). Only a utility whose state is failed can be retried.
    """
    if not _OPERATOR.fullmatch(operator or ""):
        raise HubError(422, "invalid_operator", "The operator id is 1-64 letters, digits or _.:- .")
    if not _REASON.fullmatch(reason or ""):
        raise HubError(422, "invalid_reason", "The reason is a snake_case code, e.g. arrears_settled.")
    now = time.time() if now is None else now
    found = _transfer_case(case_id, unit_code)

    def change(c: Case) -> Any:
        entry = (c.doc.get("utilities") or {}).get(utility)
        if entry is None:
            raise HubError(404, "utility_not_requested", "This case never asked this utility.")
        latest = entry["attempts"][-1]
        if latest["retry"] and not latest["dispatched"]:
            return UNCHANGED  # recorded by a retry that did not get to send it: send it now
        if utility_state(entry) != "failed":
            raise HubError(409, "utility_not_failed", f"The utility is {utility_state(entry)}; only a failed one "
                           "can be retried.")
        if len(entry["attempts"]) >= MAX_ATTEMPTS:
            raise HubError(409, "too_many_attempts", f"{MAX_ATTEMPTS} attempts made; ask the utility directly.")
        entry["attempts"].append(_new_attempt(c, utility, len(entry["attempts"]) + 1, latest["source_event"], now,
                                              retry={"by": operator, "reason": reason, "at": now}))
        return None

    case, _ = cases.update(found.case_id, found.unit_code, change)
    number = len(case.doc["utilities"][utility]["attempts"])
    _dispatch(case, utility, number)
    attempt = case.doc["utilities"][utility]["attempts"][-1]
    logger.info("utility transfer retried", extra={"case_key": case.key_text, "utility": utility, "attempt": number,
                                                   "reason": reason})
    return {"case_id": case.case_id, "unit_code": case.unit_code, "utility": utility, "attempt": number,
            "request_id": attempt["request_id"], "partner_ids": attempt["partner_ids"],
            "state": attempt_state(attempt)}


def open_failures(limit: int = 1000) -> list[dict[str, Any]]:
    """Failed utilities still failed (not completed, not retried since), for `hubctl utilities list`."""
    found = []
    for listed in cases.listed(FAILED_LIST, limit=limit):
        case = cases.load(listed["case_id"], listed["unit_code"])
        entry = ((case.doc.get("utilities") or {}).get(listed["utility"]) if case else None)
        if entry and utility_state(entry) == "failed" and len(entry["attempts"]) == listed["attempt"]:
            found.append({k: listed[k] for k in ("case_id", "unit_code", "utility", "attempt", "request_id",
                                                 "reason_code", "at")})
    return found


def utilities_view(doc: dict[str, Any]) -> dict[str, Any]:
    """Each consented utility's state, for the case read and `hubctl cases show`: no names, no numbers."""
    shown = {}
    for utility, entry in sorted((doc.get("utilities") or {}).items()):
        latest = entry["attempts"][-1]
        shown[utility] = {
            "state": utility_state(entry), "attempt": latest["attempt"], "request_id": latest["request_id"],
            "partner_ids": latest["partner_ids"], "reason_code": _failure_code(latest),
            "attempts": [{"attempt": a["attempt"], "request_id": a["request_id"], "state": attempt_state(a),
                          "reason_code": _failure_code(a), "retry": a["retry"]} for a in entry["attempts"]],
            "late_answers": [{k: late[k] for k in ("request_id", "outcome", "reason_code", "ignored")}
                             for late in entry["late_answers"]],
        }
    return shown
