"""The hub's ledger of the automatic split (自动清分): one double entry per paid or refunded line.

Why the entries are what they are (DOMAIN.md "Money"; domain_cn.md §3.3, §4.1):
- The payer pays the platform once; the platform clears every line straight to its destination. The
  hub books what the platform owes each destination: per paid line, debit the platform's clearing
  account `clearing:<payment partner id>` and credit the destination:
      tax line      `treasury:<treasury_code>:<budget_subject>`   (国库 via TIPS: skgkDm, yskmDm)
      non-tax line  `nontax:<receiving_unit>:<payment_code>`      (非税: 执收单位, 缴款码)
  Every entry is itself balanced (one debit, one credit, one amount), so any set of entries balances:
  `sum(balances(entries).values()) == 0` ("every booked split is a double entry").
- A refund reverses exactly what was booked for its lines: the same two accounts swapped, for the
  refunded amount, never more than is still booked for the line (refund_exceeds_booked) and never for
  a line not booked (refund_before_payment). Refunds may be partial, per line (§4.2 "Refunds may be
  partial (per line)").
- Entry ids are deterministic: `{order_id}:{sub_order_id}:pay` and
  `{order_id}:{sub_order_id}:refund:{refund_id}`. One payment entry per line ever; a duplicated or
  out-of-order callback produces the same ids, and the case store's conditional put (or `unbooked`
  here) makes it a no-op ("duplicate and out-of-order callbacks change nothing").
- Zero amounts are not booked (a 0-fen line is never collected; see orders.py).

Entries are frozen dataclasses; `Entry.to_dict()` / `Entry.from_dict()` give the stored / JSON form
(the reconciliation reads these dicts).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

from chalicelib.money import MoneyError, fen
from chalicelib.money.payments import order_lines

__all__ = ["Entry", "clearing_account_of", "credit_account", "payment_entry_id", "refund_entry_id",
           "entries_for_payment", "entries_for_refund",
           "balances", "net_booked", "outstanding", "paid_in_full", "unbooked", "REFUND_HOLD_REASONS"]

REFUND_HOLD_REASONS = ("malformed_refund", "order_mismatch", "duplicate_sub_order", "unknown_sub_order",
                       "total_mismatch", "refund_before_payment", "refund_conflict", "refund_exceeds_booked",
                       "whole_refund_incomplete")


@dataclass(frozen=True)
class Entry:
    """One balanced double entry: `amount_fen` debited to `debit` and credited to `credit`."""

    entry_id: str
    order_id: str
    sub_order_id: str
    kind: str  # "payment" | "refund"
    debit: str
    credit: str
    amount_fen: int
    platform_order_id: str | None
    platform_sub_order_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Entry":
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


def _entry(value: Entry | Mapping[str, Any]) -> Entry:
    return value if isinstance(value, Entry) else Entry.from_dict(value)


def clearing_account_of(payment_partner_id: str) -> str:
    """`clearing:<payment partner id>`; a value that already starts with `clearing:` is kept."""
    text = payment_partner_id if isinstance(payment_partner_id, str) else ""
    partner = text[len("clearing:"):] if text.startswith("clearing:") else text
    if not partner or ":" in partner:
        raise MoneyError("invalid_account", "a clearing account is clearing:<payment partner id>", "clearing_account")
    return f"clearing:{partner}"


def credit_account(group: str, line: Mapping[str, Any]) -> str:
    """The destination account of an order line: its treasury and budget subject, or its non-tax account."""
    if group == "tax":
        return f"treasury:{line['treasury_code']}:{line['budget_subject']}"
    return f"nontax:{line['receiving_unit']}:{line['payment_code']}"


def payment_entry_id(order_id: str, sub_order_id: str) -> str:
    return f"{order_id}:{sub_order_id}:pay"


def refund_entry_id(order_id: str, sub_order_id: str, refund_id: str) -> str:
    return f"{order_id}:{sub_order_id}:refund:{refund_id}"


def entries_for_payment(order: Mapping[str, Any], paid_lines: Iterable[Mapping[str, Any]],
                        clearing_account: str) -> list[Entry]:
    """The payment entries of the paid lines of a *matched* result (`payments.match(...).paid_lines`).

    Only a matched line may be booked: a line that is not the order's, not of the order line's amount,
    or not "paid" is MoneyError("unmatched_line") — a programming error, since `match` holds such a
    result. The same line listed twice identically gives one entry; differently, MoneyError.
    `clearing_account` is the payment partner's id or its full `clearing:<id>` account.
    """
    debit = clearing_account_of(clearing_account)
    lines = order_lines(order)
    out: dict[str, Entry] = {}
    for paid in paid_lines:
        sub = paid.get("sub_order_id")
        if sub not in lines:
            raise MoneyError("unmatched_line", "a paid line is not a line of the order", "paid_lines.sub_order_id")
        group, line = lines[sub]
        amount = fen(paid.get("amount_fen"), "paid_lines.amount_fen")
        if amount != line["amount_fen"] or paid.get("status", "paid") != "paid":
            raise MoneyError("unmatched_line", "only a matched, paid line is booked", "paid_lines")
        if amount == 0:
            continue
        entry = Entry(payment_entry_id(order["order_id"], sub), order["order_id"], sub, "payment", debit,
                      credit_account(group, line), amount, paid.get("platform_order_id"),
                      paid.get("platform_sub_order_id"))
        if sub in out and out[sub] != entry:
            raise MoneyError("unmatched_line", "a sub-order is listed twice with different data", "paid_lines")
        out[sub] = entry
    return list(out.values())


def entries_for_refund(order: Mapping[str, Any], booked_entries: Iterable[Entry | Mapping[str, Any]],
                       refund: Mapping[str, Any]) -> list[Entry] | str:
    """The reversal entries of a `payment.refunded` data dict, or a hold reason (REFUND_HOLD_REASONS).

    `booked_entries` is what the ledger holds (Entry objects or their dicts; other orders' entries are
    ignored). For each refunded line: the line's payment entry must be booked (refund_before_payment),
    and the amount must not exceed what is still booked for it after the *other* refunds
    (refund_exceeds_booked). The same refund received again gives the same entries (its own entries
    are not counted against it); the same refund id with other amounts is refund_conflict. A `whole`
    refund (全部退费) must leave nothing booked on the order (whole_refund_incomplete). Nothing is
    returned unless every line passes: a refund is never booked in part.
    """
    try:
        order_id = order["order_id"]
        refund_id = refund["refund_id"]
        refund_lines = list(refund["lines"])
        total = refund["total_fen"]
        whole = refund.get("whole", False)
        for line in refund_lines:
            if not isinstance(line.get("sub_order_id"), str) or type(line.get("amount_fen")) is not int \
                    or line["amount_fen"] < 0:
                return "malformed_refund"
    except (KeyError, TypeError, AttributeError):
        return "malformed_refund"
    if not isinstance(refund_id, str) or type(total) is not int:
        return "malformed_refund"
    if refund.get("order_id") != order_id:
        return "order_mismatch"
    subs = [line["sub_order_id"] for line in refund_lines]
    if len(set(subs)) != len(subs):
        return "duplicate_sub_order"
    lines = order_lines(order)
    if any(sub not in lines for sub in subs):
        return "unknown_sub_order"
    if total != sum(line["amount_fen"] for line in refund_lines):
        return "total_mismatch"

    payments: dict[str, Entry] = {}
    refunded_by_others: dict[str, int] = {}
    own: dict[str, Entry] = {}
    for raw in booked_entries:
        e = _entry(raw)
        if e.order_id != order_id:
            continue
        if e.kind == "payment":
            payments[e.sub_order_id] = e
        elif e.entry_id == refund_entry_id(order_id, e.sub_order_id, refund_id):
            own[e.sub_order_id] = e
        else:
            refunded_by_others[e.sub_order_id] = refunded_by_others.get(e.sub_order_id, 0) + e.amount_fen

    out: list[Entry] = []
    problems: list[str] = []
    for line in refund_lines:
        sub, amount = line["sub_order_id"], line["amount_fen"]
        pay = payments.get(sub)
        if pay is None:
            if amount > 0 or sub in own:
                problems.append("refund_before_payment")
            continue
        if sub in own and own[sub].amount_fen != amount:
            problems.append("refund_conflict")
            continue
        if amount > pay.amount_fen - refunded_by_others.get(sub, 0):
            problems.append("refund_exceeds_booked")
            continue
        if amount == 0:
            continue
        out.append(Entry(refund_entry_id(order_id, sub, refund_id), order_id, sub, "refund", pay.credit, pay.debit,
                         amount, pay.platform_order_id, pay.platform_sub_order_id))
    if any(sub not in subs for sub in own):  # booked earlier under this refund id, missing from it now
        problems.append("refund_conflict")
    if problems:
        return min(problems, key=REFUND_HOLD_REASONS.index)
    if whole:
        after = {sub: pay.amount_fen - refunded_by_others.get(sub, 0) for sub, pay in payments.items()}
        for e in out:
            after[e.sub_order_id] -= e.amount_fen
        if any(after.values()):
            return "whole_refund_incomplete"
    return out


# --------------------------------------------------------------------------------------------
# Reading the ledger

def balances(entries: Iterable[Entry | Mapping[str, Any]]) -> dict[str, int]:
    """Account → debits minus credits. For any entries the values sum to 0 (double entry)."""
    out: dict[str, int] = {}
    for raw in entries:
        e = _entry(raw)
        out[e.debit] = out.get(e.debit, 0) + e.amount_fen
        out[e.credit] = out.get(e.credit, 0) - e.amount_fen
    return out


def net_booked(entries: Iterable[Entry | Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(order_id, sub_order_id) → paid minus refunded, as booked."""
    out: dict[tuple[str, str], int] = {}
    for raw in entries:
        e = _entry(raw)
        key = (e.order_id, e.sub_order_id)
        out[key] = out.get(key, 0) + (e.amount_fen if e.kind == "payment" else -e.amount_fen)
    return out


def outstanding(order: Mapping[str, Any], entries: Iterable[Entry | Mapping[str, Any]]) -> dict[str, int]:
    """sub_order_id → amount of the order line not (or no longer) booked as paid; 0-amount lines omitted.

    The order "stays open" for these lines (a failed line of a partial success, or a refunded one).
    """
    net = net_booked(entries)
    return {sub: line["amount_fen"] - net.get((order["order_id"], sub), 0)
            for sub, (_group, line) in order_lines(order).items()
            if line["amount_fen"] - net.get((order["order_id"], sub), 0) > 0}


def paid_in_full(order: Mapping[str, Any], entries: Iterable[Entry | Mapping[str, Any]]) -> bool:
    """Every line of the order is booked as paid and not refunded (domain_cn.md §4.1: booking (登簿) is
    unlocked only when all lines are paid)."""
    return not outstanding(order, entries)


def unbooked(booked: Iterable[Entry | Mapping[str, Any]], entries: Sequence[Entry]) -> list[Entry]:
    """The entries not booked yet, in order. The same id with other content is MoneyError("ledger_conflict"):
    the ledger is never overwritten, and a difference there means a result changed after booking."""
    have = {e.entry_id: e for e in map(_entry, booked)}
    out: list[Entry] = []
    for e in entries:
        old = have.get(e.entry_id)
        if old is None:
            have[e.entry_id] = e
            out.append(e)
        elif old != e:
            raise MoneyError("ledger_conflict", "an entry with this id is booked with other content", "entry_id")
    return out
