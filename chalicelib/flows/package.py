"""Flow 2, banks (part 2): transfer with the mortgage still on (带押过户), its three packages (seed 002:
Jinan, Chengdu's 套餐式, Jiangyin's 三合一; domain_cn.md §5.2). What a package shares with a single
mortgage request (the case, the filing, the registry's answers, the mortgage index) is in
`chalicelib/flows/mortgage.py`.

    old bank ── mortgage.requested (transfer_with_mortgage, sender_role old_mortgagee, seller's consent) ─┐
    new bank ── mortgage.requested (transfer_with_mortgage, sender_role new_mortgagee, buyer's consent) ──┤
                 (or one bank, sender_role both, both consents: same_bank_change)                         │
        every consent in, terms agreeing ─→ ONE application.requested ─→ the registry of the unit's city
    registry ── registration.booked ─→ mortgage.registered (new proof) ─→ the new mortgagee
                                     └─ registration.result booked (the old proof number) ─→ the old mortgagee
    registry ── application.rejected ─→ registration.result rejected ─→ every bank of the package
    consent window over ─→ registration.result rejected (consent_timeout) ─→ every bank that sent; nothing
                           reaches the registry

The package is one case, `PKG_<package_id>` (`PKG__<hash>` when that is not a valid case id) and the unit:
the banks agree on the package id. Each bank sends its own request with the same `package` (the
sale, the old and the new mortgage, the escrow) and its `sender_role`; "the terms agree" means the
package is the same, its `sender_role` and `consents` aside (a digest of the rest and the unit code).
Consent: the banks' requests are the banks' consents; the buyer's and the seller's arrive inside them,
each bank carrying its own borrower's signed consent as a verified document (`package.consents`: the
new mortgagee the obligee's, the old mortgagee the obligor's, a bank in the role `both` both), so a
borrower's consent is as good as the upload it points at and is checked again when the application
is filed. Registrations, in order, by mode:

    combined          transfer, mortgage_release (old), mortgage_first (new)
    staged            transfer, mortgage_first (new, rank ≥ 2, escrow reference); the old mortgage is
                      released later, after payoff, by the old bank's own `mortgage.requested` kind
                      release, which carries the package and its escrow reference to the registry
    same_bank_change  transfer, mortgage_change (the existing mortgage, new terms)

Door checks (422, nothing stored), after those of every request (mortgage.py): a missing consent
(`consent_missing`); a package id in use for another unit (`package_mismatch`); a role whose consent
is in already, with other content (`package_conflict`), or terms that differ from the package's
(`package_conflict`); a package already filed, answered or timed out (`package_closed`); a combined
or same-bank package whose old mortgage the index does not know as a live mortgage of the old bank on
this unit (`unknown_mortgage`, `mortgage_released`, `mortgage_superseded`, `mortgage_pending`; a
staged package may name one the index has not heard of, it only ranks behind it: the booking teaches
the index); the other bank of the package is not a hub partner, so its consent could never arrive
(`counterparty_not_partner`). The same bank's same request again (same role, same content, any
request id or webhook-id) is accepted and changes nothing, even after the package closed. A request
that raced past the door and lost is refused on the stream: its bank gets registration.result
rejected (`package_closed` / `package_conflict`).

Timing (data/time_limits.json): the first request opens the consent window (`package_window`, 3
working days) and a `package_consent` clock per awaited role (1 working day, responsible: the awaited
bank's partner, which gets case.overdue). The sweeper `packages_timed_out` closes a package still
missing a consent at the window's end: it is timed out, every bank that sent gets registration.result
rejected `consent_timeout`, the registry gets nothing. Filing starts `package_registration` (3
working days, the registry's). Open packages are listed under `await:package_consent` (their window
end in the entry) and taken off the list when filed or closed, so the sweep reads open packages only.

Booking: combined → old released, new registered; staged → new registered (rank 2), the old one known
to the index and linked to the package (its later release carries the package; the package case shows
`old_mortgage_released` when it is booked); same_bank_change → the old proof superseded by the
changed one. The new mortgagee (or the bank in the role `both`) gets mortgage.registered with the new
proof; the old mortgagee, which holds none of the new certificates, gets registration.result booked
naming only its own mortgage's proof number (combined: released; staged: still on, awaiting payoff).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from chalicelib import cases
from chalicelib.cases import UNCHANGED, Case
from chalicelib.flows import checks, digest, handles, send, sweeps
from chalicelib.flows.mortgage import (MORTGAGE_PROBLEMS, PACKAGE, RELEASED, SUPERSEDED, banks_with, booking_of,
                                       claim_mortgage, decide, decided_case, file_application, hub_case_id,
                                       link_staged, new_proof, numbers_only, record_mortgage, refuse, refuse_case,
                                       registries_of, request_digest, request_entry, require_mortgage,
                                       send_registered, start_clock, stop_clock, tell_banks, unclaim_mortgage)
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory

OLD, NEW, BOTH = "old_mortgagee", "new_mortgagee", "both"
COVERS = {OLD: (OLD,), NEW: (NEW,), BOTH: (OLD, NEW)}
CONSENTS_NEEDED = {OLD: {"obligor"}, NEW: {"obligee"}, BOTH: {"obligee", "obligor"}}
REGISTRATIONS = {"combined": ["transfer", "mortgage_release", "mortgage_first"],
                 "staged": ["transfer", "mortgage_first"],
                 "same_bank_change": ["transfer", "mortgage_change"]}
ACTS_ON_OLD = ("combined", "same_bank_change")  # their filing releases or changes the old mortgage
WINDOW_LIST = "await:package_consent"


def package_case_id(package_id: str) -> str:
    return hub_case_id("PKG", package_id, package_id)


def terms_digest(data: dict[str, Any]) -> str:
    """What both banks must agree on: the unit and the package, its sender role and consents aside."""
    package = {k: v for k, v in data["package"].items() if k not in ("sender_role", "consents")}
    return digest({"unit_code": data["unit_code"], "package": package})


def _covered(requests: dict[str, Any]) -> set[str]:
    return {role for sent in requests for role in COVERS[sent]}


def awaiting(doc: dict[str, Any]) -> list[str]:
    return [role for role in (OLD, NEW) if role not in _covered(doc["requests"])]


def is_open(doc: dict[str, Any]) -> bool:
    """Still collecting consents: not filed, not timed out."""
    return not doc.get("filed") and not doc.get("closed")


def _uscc_of(doc: dict[str, Any], role: str) -> str:
    return doc["old_mortgage" if role == OLD else "new_mortgage"]["mortgagee_uscc"]


def _joining(doc: dict[str, Any], partner_id: str, role: str, content: str, terms: str) -> str | None:
    """None when a bank's request may join the package; "repeat" for the same request again; else the
    refusal code. The same rule at the door and on the stream (where a loser of a race is told)."""
    current = doc["requests"].get(role)
    if current and current["partner_id"] == partner_id and current["digest"] == content:
        return "repeat"
    if not is_open(doc):
        return "package_closed"
    if current or set(COVERS[role]) & _covered(doc["requests"]) or doc["terms_digest"] != terms:
        return "package_conflict"
    return None


_REFUSALS = {
    "package_closed": "The package was filed, answered or timed out; it takes no more consents.",
    "package_conflict": "The package has this role's consent already, or other terms; they must agree.",
}


# ---------------------------------------------------------------- the door

@checks("mortgage.requested")
def _check_package(partner: Any, data: dict[str, Any]) -> str | None:
    if data["kind"] != PACKAGE:
        return None
    package, unit_code = data["package"], data["unit_code"]
    missing = CONSENTS_NEEDED[package["sender_role"]] - {c["party_role"] for c in package.get("consents", [])}
    if missing:
        raise refuse("consent_missing", "A bank's request carries its own borrower's signed consent.",
                     "data.package.consents", f"the {' and the '.join(sorted(missing))}'s consent is required")
    case_id = package_case_id(package["package_id"])
    found = cases.find(case_id)
    if any(c.unit_code != unit_code for c in found):
        raise refuse("package_mismatch", "This package id is in use for another unit.", "data.package.package_id",
                     "bound to another unit's package")
    if found:
        problem = _joining(found[0].doc, partner.id, package["sender_role"], request_digest(data), terms_digest(data))
        if problem in _REFUSALS:
            raise refuse(problem, _REFUSALS[problem], "data.package", problem.replace("_", " "))
        return found[0].key_text
    old = package["old_mortgage"]
    require_mortgage(old["proof_number"], unit_code, old["mortgagee"]["uscc"], "data.package.old_mortgage.proof_number",
                     must_be_known=package["mode"] in ACTS_ON_OLD)
    for field in ("old_mortgage", "new_mortgage"):
        uscc = package[field]["mortgagee"]["uscc"]
        if uscc != partner.uscc and not banks_with(uscc):
            raise refuse("counterparty_not_partner", "The other bank of the package is not a partner of the hub: "
                         "its consent could never arrive.", f"data.package.{field}.mortgagee.uscc",
                         "no bank partner with this unified social credit code")
    return f"{case_id}#{unit_code}"


# ---------------------------------------------------------------- collecting consents

@handles("mortgage.requested")
def on_package_requested(stored: Any) -> None:
    from chalicelib import clocks

    data = stored.data
    if data["kind"] != PACKAGE:
        return
    package, unit_code = data["package"], data["unit_code"]
    role, city = package["sender_role"], city_of(unit_code)
    case_id = package_case_id(package["package_id"])
    registries = [p.id for p in registries_of(unit_code)]
    content, terms = request_digest(data), terms_digest(data)
    old, new = package["old_mortgage"], package["new_mortgage"]
    window_due = clocks.due(stored.received_at, clocks.limit_for("package_window", "transfer", city)).timestamp()
    create = {
        "case_id": case_id, "unit_code": unit_code, "city": city, "flow": "mortgage", "kind": PACKAGE,
        "service": "transfer", "hub_request_id": case_id, "package_id": package["package_id"], "mode": package["mode"],
        "terms_digest": terms, "escrow_reference": (package.get("escrow") or {}).get("escrow_reference"),
        "old_mortgage": {"proof_number": old["proof_number"], "mortgagee_uscc": old["mortgagee"]["uscc"]},
        "new_mortgage": {"mortgagee_uscc": new["mortgagee"]["uscc"], "mortgagee_name": new["mortgagee"]["name"],
                         "rank": new["terms"].get("rank"), "secured_amount_fen": new["terms"]["secured_amount_fen"],
                         "mortgage_type": new["terms"]["mortgage_type"]},
        "requests": {}, "registry_partner_ids": registries, "participants": registries,
        "opened_event": stored.event_id, "opened_at": stored.received_at, "window_due": window_due,
        "filed": None, "closed": None, "decision": None, "refusal": None,
    }

    def join(c: Case) -> Any:
        problem = _joining(c.doc, stored.partner_id, role, content, terms)
        if problem:
            return UNCHANGED if problem == "repeat" else problem
        c.doc["requests"][role] = request_entry(stored)
        c.doc["participants"] = sorted({*c.doc["participants"], stored.partner_id})
        if not awaiting(c.doc):
            c.doc["filed"] = {"event_id": stored.event_id, "at": stored.received_at}
        return None

    case, result = cases.update(case_id, unit_code, join, create=create)
    if result in _REFUSALS:  # passed the door, then another request changed the package
        bank = get_directory().get(stored.partner_id)
        send(stored.event_id, "refused", "registration.result", {
            "case_id": case.case_id, "reference": data["request_id"], "unit_code": unit_code, "service": "transfer",
            "outcome": "rejected", "reasons": [{"code": result, "message": _REFUSALS[result]}],
            "decided_at": datetime.now(timezone.utc).isoformat()}, [bank] if bank else [], case.ref)
        logger.warning("package request refused on the stream", extra={"case_key": case.key_text, "code": result})
        return
    if case.doc["requests"].get(role, {}).get("event_id") != stored.event_id:
        return  # the same request again: the event that recorded it acted on it
    opener = case.doc["opened_event"] == stored.event_id
    if case.doc.get("filed") and case.doc["filed"]["event_id"] == stored.event_id:
        if not opener:  # (a package one bank completes alone was never listed, its clocks never started)
            # Filed: off the open list (idempotent), so the sweep need not read it again.
            cases.unlist(case.case_id, case.unit_code, "await", "package_consent")
            for covered in COVERS[role]:
                stop_clock(case, "package_consent", stored.received_at, instance=covered)
        _file_package(case, stored)
        return
    if opener:
        cases.put_once(case_id, unit_code, "await", "package_consent",
                       {"unit_code": unit_code, "due": case.doc["window_due"]}, listed=WINDOW_LIST)
    else:  # a clock the opener has not started yet is stopped before its start: the start does nothing
        for covered in COVERS[role]:
            stop_clock(case, "package_consent", stored.received_at, instance=covered)
    for waited in awaiting(case.doc):
        bank = (banks_with(_uscc_of(case.doc, waited)) or [None])[0]  # first by id: never "every bank of the city"
        if bank is not None:
            start_clock(case, "package_consent", stored.received_at, bank.id, instance=waited)
    logger.info("package consent recorded", extra={"case_key": case.key_text, "role": role,
                                                   "awaiting": awaiting(case.doc)})


def _file_package(case: Case, stored: Any) -> None:
    """Every consent in: claim the old mortgage (combined, same_bank_change) and file ONE application."""
    doc = case.doc
    if doc.get("decision"):
        return
    old = doc["old_mortgage"]["proof_number"]
    problem = claim_mortgage(old, case.key_text) if doc["mode"] in ACTS_ON_OLD and not doc.get("refusal") else None
    if problem:
        refuse_case(case, stored.event_id, [{"code": problem, "message": MORTGAGE_PROBLEMS[problem]}])
        return
    package = stored.data["package"]
    old_bank, new_bank, terms = package["old_mortgage"]["mortgagee"], package["new_mortgage"]["mortgagee"], \
        package["new_mortgage"]["terms"]
    mortgages = {
        "combined": [{"mortgagee": old_bank, "existing_proof_number": old},
                     {"mortgagee": new_bank, "terms": terms}],
        "staged": [{"mortgagee": new_bank, "terms": terms}],
        "same_bank_change": [{"mortgagee": new_bank, "terms": terms, "existing_proof_number": old}],
    }[doc["mode"]]
    marker = {"mode": doc["mode"], "package_id": doc["package_id"], "escrow_reference": doc["escrow_reference"]}
    file_application(case, stored.event_id, {
        "source_reference": doc["package_id"], "service": "transfer", "registrations": REGISTRATIONS[doc["mode"]],
        "parties": package["transfer"]["parties"], "price_fen": package["transfer"]["price_fen"],
        "mortgages": mortgages, "package": {k: v for k, v in marker.items() if v is not None}})


# ---------------------------------------------------------------- the registry's booking

@handles("registration.booked")
def on_package_booked(stored: Any) -> None:
    case = decided_case(stored, package=True)
    if case is None:
        return
    data = stored.data
    case = decide(case, "booked", booking_of(stored))
    stop_clock(case, "package_registration", stored.received_at)
    if case.doc["decision"]["event_id"] != stored.event_id:
        return
    doc, unit_code, event_id = case.doc, case.unit_code, stored.event_id
    old, new, mode = doc["old_mortgage"], doc["new_mortgage"], doc["mode"]
    proof = new_proof(data["certificates"], old["proof_number"], new["mortgagee_name"])
    if mode == "combined":
        record_mortgage(old["proof_number"], unit_code, event_id, state=RELEASED)
    elif mode == "staged":  # the registry booked a mortgage behind it: it is on the register
        record_mortgage(old["proof_number"], unit_code, event_id, mortgagee_uscc=old["mortgagee_uscc"])
        link_staged(old["proof_number"], {"case_id": case.case_id, "unit_code": unit_code,
                                          "package_id": doc["package_id"], "escrow_reference": doc["escrow_reference"]})
    if proof is not None and proof["number"] != old["proof_number"]:
        if mode == "same_bank_change":
            record_mortgage(old["proof_number"], unit_code, event_id, state=SUPERSEDED)
        record_mortgage(proof["number"], unit_code, event_id, mortgagee_uscc=new["mortgagee_uscc"], rank=new["rank"])
    elif mode == "same_bank_change":
        unclaim_mortgage(old["proof_number"], case.key_text)  # the registry kept the proof number
    for role, entry in sorted(doc["requests"].items()):
        if NEW in COVERS[role] and proof is not None:
            send_registered(case, stored, entry, proof, new["rank"], f"registered-{role}")
        elif NEW in COVERS[role]:
            tell_banks(case, event_id, "result", "booked", roles=(role,), decided_at=data["booked_at"],
                       certificates=numbers_only(data["certificates"]))
        else:
            tell_banks(case, event_id, "result", "booked", roles=(role,), decided_at=data["booked_at"],
                       certificates=[{"kind": "registration_proof", "number": old["proof_number"]}])
    metrics.add_metric(name="PackagesBooked", unit="Count", value=1)


# ---------------------------------------------------------------- the consent window

@sweeps("packages_timed_out")
def sweep_packages_timed_out(now: float | None = None) -> int:
    """Packages whose consent window ran out: timed out, every bank that sent told, nothing filed."""
    now = time.time() if now is None else now
    closed = 0
    for waiting in cases.listed(WINDOW_LIST):
        if waiting["due"] <= now:
            closed += _time_out(waiting["case_id"], waiting["unit_code"], now)
    return closed


def _time_out(case_id: str, unit_code: str, now: float) -> int:
    def close(c: Case) -> Any:
        if not is_open(c.doc):
            return UNCHANGED
        c.doc["closed"] = {"reason": "consent_timeout", "at": now, "awaiting": awaiting(c.doc)}
        return None

    case, result = cases.update(case_id, unit_code, close)
    if case.doc.get("closed"):  # (again after a crash between closing and telling: the same deliveries)
        tell_banks(case, case.doc["opened_event"], "timeout", "rejected", reasons=[{
            "code": "consent_timeout", "message": "not every bank's consent arrived within the package's window"}])
        for role in case.doc["closed"]["awaiting"]:
            stop_clock(case, "package_consent", now, instance=role)
        logger.info("package timed out", extra={"case_key": case.key_text, "awaiting": case.doc["closed"]["awaiting"]})
    cases.unlist(case.case_id, case.unit_code, "await", "package_consent")  # closed: the sweep need not read it
    return 1 if result is None else 0


def package_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The package part of a case read (flows/mortgage.py `view`): references and amounts only."""
    return {
        "package_id": doc["package_id"], "mode": doc["mode"], "escrow_reference": doc["escrow_reference"],
        "registrations": REGISTRATIONS[doc["mode"]], "consented": sorted(_covered(doc["requests"])),
        "awaiting": awaiting(doc) if is_open(doc) else [],
        "window_ends_at": datetime.fromtimestamp(doc["window_due"], timezone.utc).isoformat(),
        "old_mortgage": {"proof_number": doc["old_mortgage"]["proof_number"]},
        "new_mortgage": {k: doc["new_mortgage"][k] for k in ("rank", "secured_amount_fen", "mortgage_type")},
        "closed": doc.get("closed"), "old_mortgage_released": doc.get("old_mortgage_released"),
    }
