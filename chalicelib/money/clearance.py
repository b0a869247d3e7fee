"""The two-way check of tax clearance (完税) against the assessment and the payment (Ningbo).

Why: DOMAIN.md flow 1 — the hub "receives clearance from tax (完税, with certificate number and ticket
type: the two-way check of Ningbo)" before telling the registry the case may be booked. Both ways:

- every cleared ticket was assessed, with the same amount, and was paid through the hub's order
  (cleared_not_assessed, cleared_amount_mismatch, cleared_not_paid, paid_amount_mismatch);
- every assessed line with an amount was cleared (assessed_not_cleared); a 0-fen line (e.g. 印花税 of
  an individual's home sale, domain_cn.md §3.2) is never collected and need not be cleared;
- a ticket is cleared by one certificate only (cleared_twice); the same certificate received twice is
  a duplicate callback and counts once;
- money the hub collected for a ticket the bureau never assessed is also reported (paid_not_assessed).

The key is the electronic tax ticket number (电子税票号码, dzsphm; domain_cn.md §3.2): the assessment's
line, the order's tax sub-order and the clearance line all carry it. One ticket may cover several tax
items, so amounts are summed per ticket on every side before comparing.

Problems are strings "code:tax_ticket_no", sorted; an empty list means the check passes. Ticket numbers
are not personal data.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from chalicelib.money import fen
from chalicelib.money.payments import order_lines

__all__ = ["check", "paid_tax_lines", "CLEARANCE_PROBLEMS"]

CLEARANCE_PROBLEMS = ("cleared_not_assessed", "cleared_amount_mismatch", "cleared_not_paid", "paid_amount_mismatch",
                      "cleared_twice", "assessed_not_cleared", "paid_not_assessed")


def _per_ticket(lines: Iterable[Mapping[str, Any]], field: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        ticket = line["tax_ticket_no"]
        out[ticket] = out.get(ticket, 0) + fen(line["amount_fen"], f"{field}.amount_fen")
    return out


def check(assessed_lines: Iterable[Mapping[str, Any]], paid_tax_lines: Iterable[Mapping[str, Any]],
          cleared: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[str]:
    """Problems of the two-way check; [] when it passes.

    - `assessed_lines`: the TaxLine dicts of the assessment (`tax.assessed` data's `lines`);
    - `paid_tax_lines`: what the hub collected per tax sub-order: dicts with `tax_ticket_no` and
      `amount_fen` (OrderTaxLine shape; `paid_tax_lines(orders, entries)` builds them from the ledger);
    - `cleared`: one `tax.cleared` data dict, or a list of them (each payer's taxes may be cleared
      separately when each pays their own).
    """
    assessed = _per_ticket(assessed_lines, "assessed_lines")
    paid = _per_ticket(paid_tax_lines, "paid_tax_lines")
    events = [cleared] if isinstance(cleared, Mapping) else list(cleared)
    by_certificate: dict[Any, Mapping[str, Any]] = {}
    for event in events:  # a duplicated callback (same certificate) counts once
        by_certificate.setdefault(event.get("certificate_no"), event)
    cleared_fen: dict[str, int] = {}
    cleared_by: dict[str, set[Any]] = {}
    for certificate, event in by_certificate.items():
        for ticket, amount in _per_ticket(event["lines"], "cleared.lines").items():
            cleared_fen[ticket] = cleared_fen.get(ticket, 0) + amount
            cleared_by.setdefault(ticket, set()).add(certificate)

    problems: set[str] = set()
    for ticket, amount in cleared_fen.items():
        if len(cleared_by[ticket]) > 1:
            problems.add(f"cleared_twice:{ticket}")
        if ticket not in assessed:
            problems.add(f"cleared_not_assessed:{ticket}")
            continue
        if amount != assessed[ticket]:
            problems.add(f"cleared_amount_mismatch:{ticket}")
        got = paid.get(ticket, 0)
        if got != assessed[ticket]:
            problems.add(f"cleared_not_paid:{ticket}" if got == 0 else f"paid_amount_mismatch:{ticket}")
    for ticket, amount in assessed.items():
        if amount > 0 and ticket not in cleared_fen:
            problems.add(f"assessed_not_cleared:{ticket}")
    for ticket, amount in paid.items():
        if amount > 0 and ticket not in assessed:
            problems.add(f"paid_not_assessed:{ticket}")
    return sorted(problems)


def paid_tax_lines(orders: Iterable[Mapping[str, Any]], entries: Iterable[Any]) -> list[dict[str, Any]]:
    """The tax sub-orders of `orders` with the amount the ledger holds as paid (payments minus refunds).

    Lines with nothing booked are left out. The result is what `check` expects as `paid_tax_lines`.
    """
    from chalicelib.money.ledger import net_booked

    net = net_booked(entries)
    out: list[dict[str, Any]] = []
    for order in orders:
        for sub, (group, line) in order_lines(order).items():
            amount = net.get((order["order_id"], sub), 0)
            if group == "tax" and amount > 0:
                out.append({**line, "amount_fen": amount})
    return out
