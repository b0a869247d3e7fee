"""Case flows: what an accepted event does to its case, and what the hub sends because of it.

Static routes (routes.json) forward; flows decide. A flow handler runs from the events stream after
the static routes, must be idempotent (the stream may hand it the same event again, and a partner may
send the same fact under a new webhook-id), and sends only through `routing.emit`.

`door_check` runs at ingest, before anything is stored: a fact about a case or order the hub does not
know is refused with a 422 there, rather than accepted and stranded. A check that finds the case
returns its key, which is stored with the event (the case timeline is read through it).

Several flows may take an interest in one event type (`registration.booked` closes a transfer, a
bank's mortgage and a notary's filing): every handler registered for a type runs, in module order,
and each ignores what is not its own (the case's `flow`). For door checks the first that returns a
case key wins; any that raises refuses the event. `views` registers how a flow's case is shown to a
partner that takes part in it. Every module of this package is a flow and is imported on first use.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Callable

HANDLERS: dict[str, list[Callable[[Any], None]]] = {}
DOOR_CHECKS: dict[str, list[Callable[[Any, dict[str, Any]], str | None]]] = {}
VIEWS: dict[str, Callable[[Any], dict[str, Any]]] = {}
SWEEPERS: dict[str, Callable[[float | None], int]] = {}
_loaded = False


def _register(table: dict[str, list[Callable]], event_types: tuple[str, ...]) -> Callable:
    def register(func: Callable) -> Callable:
        for name in event_types:
            if func not in table.setdefault(name, []):
                table[name].append(func)
        return func
    return register


def handles(*event_types: str) -> Callable:
    return _register(HANDLERS, event_types)


def checks(*event_types: str) -> Callable:
    return _register(DOOR_CHECKS, event_types)


def views(flow: str) -> Callable:
    """`@views("transfer")`: the function that turns a case of this flow into what a partner may see."""
    def register(func: Callable) -> Callable:
        VIEWS[flow] = func
        return func
    return register


def sweeps(name: str) -> Callable:
    """`@sweeps("risks_flagged")`: a scheduled part of a flow, `func(now) -> count`, run every minute."""
    def register(func: Callable) -> Callable:
        SWEEPERS[name] = func
        return func
    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        import importlib
        import pkgutil

        for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
            importlib.import_module(f"{__name__}.{module}")  # each module registers its handlers
        _loaded = True


def handle(stored: Any) -> None:
    _load()
    for handler in HANDLERS.get(stored.type, ()):
        handler(stored)


def door_check(partner: Any, event_type: str, data: dict[str, Any]) -> str | None:
    """Raise the 422 of a fact about an unknown case or order; else the case key, when a check found it."""
    _load()
    found = None
    for check in DOOR_CHECKS.get(event_type, ()):
        key = check(partner, data)
        found = found or key
    return found


def view(case: Any) -> dict[str, Any]:
    """A case as a partner taking part in it may see it (no names, ID numbers or phones)."""
    _load()
    return VIEWS[case.doc["flow"]](case)


def sweep(now: float | None = None) -> dict[str, int]:
    """The scheduled part of the flows: time limits that no event will trigger."""
    _load()
    from chalicelib import clocks

    counts = {name: sweeper(now) for name, sweeper in sorted(SWEEPERS.items())}
    return {**counts, **clocks.sweep_overdue(now, send_overdue)}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def digest(value: Any) -> str:
    """What tells a repeat from new content: SHA-256 of the canonical JSON of a fact."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
                          ).hexdigest()


def send(source_event_id: str, purpose: str, event_type: str, data: dict[str, Any], targets: list,
         case_ref: tuple[str, str] | None) -> int:
    """How a flow sends: the outbound model validates `data`, then `routing.emit` (the only way anything
    leaves) delivers it to each target under the case key `case_ref` (`case.ref`). With no target it is a
    dead letter operators see: permanent, not retried. Purposes are deterministic, so a re-run of the
    same source event writes nothing new."""
    from chalicelib import delivery, routing
    from chalicelib.models import validate_data

    canonical = validate_data(event_type, data, direction="outbound").model_dump(mode="json", exclude_none=True)
    if not targets:
        delivery.record_unroutable_id(f"unroutable-{source_event_id}-{purpose}", source_event_id, purpose,
                                      event_type, "no partner to receive it", case_ref=case_ref)
        return 0
    return routing.emit(source_event_id, purpose, event_type, canonical, targets, case_ref)


def send_overdue(breach: dict[str, Any]) -> int:
    """A stage past its time limit (效能监管): `case.overdue` to the partner responsible for it."""
    from chalicelib import delivery, routing
    from chalicelib.partners import get_directory

    directory = get_directory()
    responsible = breach["responsible_partner_id"] and directory.get(breach["responsible_partner_id"])
    targets = [responsible] if responsible else directory.find(breach["responsible_kind"], city=breach["city"])
    if not targets:  # permanent: a dead letter for operators, not a retry every minute
        delivery.record_unroutable_id(f"unroutable-{breach['breach_id']}", breach["breach_id"], breach["purpose"],
                                      "case.overdue", "no partner to receive it", case_ref=breach["case_ref"])
        return 0
    return routing.emit(breach["breach_id"], breach["purpose"], "case.overdue", breach["data"], targets,
                        breach["case_ref"])
