"""Case flows: what an accepted event does to its case, and what the hub sends because of it.

Static routes (routes.json) forward; flows decide. A flow handler runs from the events stream after
the static routes, must be idempotent (the stream may hand it the same event again, and a partner may
send the same fact under a new webhook-id), and sends only through `routing.emit`.

`door_check` runs at ingest, before anything is stored: a fact about a case or order the hub does not
know is refused with a 422 there, rather than accepted and stranded. A check that finds the case
returns its key, which is stored with the event (the case timeline is read through it).
"""
from __future__ import annotations

from typing import Any, Callable

HANDLERS: dict[str, Callable[[Any], None]] = {}
DOOR_CHECKS: dict[str, Callable[[Any, dict[str, Any]], str | None]] = {}
_loaded = False


def handles(*event_types: str) -> Callable:
    def register(func: Callable) -> Callable:
        for name in event_types:
            HANDLERS[name] = func
        return func
    return register


def checks(*event_types: str) -> Callable:
    def register(func: Callable) -> Callable:
        for name in event_types:
            DOOR_CHECKS[name] = func
        return func
    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        from chalicelib.flows import relay, settlement, transfer  # noqa: F401  (they register their handlers)

        _loaded = True


def handle(stored: Any) -> None:
    _load()
    handler = HANDLERS.get(stored.type)
    if handler is not None:
        handler(stored)


def door_check(partner: Any, event_type: str, data: dict[str, Any]) -> str | None:
    """Raise the 422 of a fact about an unknown case or order; else the case key, when a check found it."""
    _load()
    check = DOOR_CHECKS.get(event_type)
    return check(partner, data) if check is not None else None


def sweep(now: float | None = None) -> dict[str, int]:
    """The scheduled part of the flows: time limits that no event will trigger."""
    _load()
    from chalicelib import clocks
    from chalicelib.flows import transfer

    return {"risks_flagged": transfer.sweep_risks(now), **clocks.sweep_overdue(now, send_overdue)}


def send_overdue(breach: dict[str, Any]) -> int:
    """A stage past its time limit (效能监管): `case.overdue` to the partner responsible for it."""
    from chalicelib import delivery, routing
    from chalicelib.partners import get_directory

    directory = get_directory()
    responsible = breach["responsible_partner_id"] and directory.get(breach["responsible_partner_id"])
    targets = [responsible] if responsible else directory.find(breach["responsible_kind"], city=breach["city"])
    if not targets:  # permanent: a dead letter for operators, not a retry every minute
        delivery.record_unroutable_id(f"unroutable-{breach['breach_id']}", breach["breach_id"], breach["purpose"],
                                      "case.overdue", "no partner to receive it")
        return 0
    return routing.emit(breach["breach_id"], breach["purpose"], "case.overdue", breach["data"], targets,
                        breach["case_ref"])
