"""Combined payment orders (税费同缴、合一支付): every tax and fee line of a case in one order per payer.

Why the rules are what they are:
- One order, one payment, every line in it (DOMAIN.md "Money": Liu'an, Zaozhuang). A real platform's
  order has a tax group and a non-tax group of sub-orders, each naming where its money goes, and
  answers per sub-order (domain_cn.md §4.1 A: TAXGRP/FEEGRP, Cmdty_Sub_Ordr_No). So every line becomes
  one sub-order that carries its destination: taxes the treasury code, budget subject, collecting
  authority and electronic tax ticket (skgkDm, yskmDm, zsswjgDm, dzsphm; §3.2-3.3); fees the
  receiving unit and the bill's payment code (执收单位, 缴款码; §3.3). The platform clears each line
  straight to its destination (自动清分), never through an intermediate account.
- Payer modes (DOMAIN.md): the obligee pays all, the obligor pays all (one order, whose payer_role is
  that party's role and whose payer is the first party of that role), or each pays their own: one order
  per role that owes something; a tax line goes to its `payer_role` (the tax bureau names the payer of
  each line: zrfcsfbz, §3.2), a fee line to the role its bill was issued to. Obligee first, then obligor.
- A zero-amount line is not collected (the payloads carry 印花税 lines of 0 fen for residential
  transfers, §3.2: individuals are exempt): it is left out, and an order with nothing to pay is not
  made. The invariant "the lines of an order sum to its total" (DOMAIN.md) holds by construction and is
  checked again by validating every order against the canonical PaymentOrderRequested model.
- An order cannot outlive a bill it collects: its `expires_at` is the earliest of the one asked for and
  the `expires_at` of every bill with a line in it (the payment code of an expired bill is refused by
  the fiscal system; domain_cn.md §4.1 B `expDate`).
- Ids are deterministic (same inputs, same ids) so that building the orders again after a crash
  produces the same orders, and short: `{case}-{E|R}-{n}` and `{order_id}-T{i}` / `{order_id}-N{i}`, at
  most 32 characters of [A-Za-z0-9_-] (a merchant order number field, e.g. CCB's Cmdty_Ordr_No; the
  UnionPay file's orderId is 32 wide, §4.2). E is the obligEe, R the obligoR; n numbers a re-issue of
  the same payer's order (after an expiry or a failure). A case id too long for that budget, or one
  starting with '-' or '_' (an order id is a canonical Ref, which starts with a letter or digit), is
  replaced by its head plus a hash of the whole.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
from typing import Any, Iterable, Mapping, Sequence

from chalicelib.money import MoneyError, fen

__all__ = ["build_orders", "order_id_for", "sub_order_id_for", "ROLE_LETTER", "ROLES", "PAYER_MODES", "MAX_ID_LEN"]

ROLES = ("obligee", "obligor")
ROLE_LETTER = {"obligee": "E", "obligor": "R"}
PAYER_MODES = ("obligee_pays_all", "obligor_pays_all", "each_pays_own")
MAX_ID_LEN = 32
MAX_N = 999
MAX_LINES = 100  # PaymentOrderRequested allows 100 tax and 100 non-tax lines
_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# "-E-999" (6) + "-T100" (5) leave 21 characters for the case part.
_BASE_MAX = MAX_ID_LEN - 6 - 5
_PAYER_KEYS = ("name", "id_type", "id_number", "phone")


def _base(case_id: str, unit_code: str | None) -> str:
    if not isinstance(case_id, str) or not _ID.match(case_id):
        raise MoneyError("invalid_case_id", "case_id must be letters, digits, '_' or '-'", "case_id")
    scope = case_id if unit_code is None else f"{str(unit_code)[:6]}-{case_id}"
    if len(scope) <= _BASE_MAX and scope[0].isalnum():
        return scope
    # Too long, or starting with '-'/'_' (a case id may; an order id, a canonical Ref, may not):
    # the head of the case plus a hash of the whole, starting with a letter or digit.
    digest = hashlib.sha256(scope.encode()).hexdigest()[:10]
    head = scope if scope[0].isalnum() else f"c{scope}"
    return f"{head[:_BASE_MAX - 11]}_{digest}"


def order_id_for(case_id: str, role: str, n: int = 1, unit_code: str | None = None) -> str:
    """`{case}-{E|R}-{n}`, at most 32 characters of [A-Za-z0-9_-].

    `unit_code`, when given, puts the unit's county code (its first six digits) in front of the case id:
    two cities may use the same case number (a case is the pair case number + unit code), and an order
    id must name one case (payment callbacks name only the order).
    """
    if role not in ROLE_LETTER:
        raise MoneyError("invalid_payer_role", "role must be obligee or obligor", "payer_role")
    if type(n) is not int or not 1 <= n <= MAX_N:
        raise MoneyError("invalid_order_number", f"n must be an integer from 1 to {MAX_N}", "n")
    return f"{_base(case_id, unit_code)}-{ROLE_LETTER[role]}-{n}"


def sub_order_id_for(order_id: str, group: str, index: int) -> str:
    """`{order_id}-T{i}` for the i-th tax line, `{order_id}-N{i}` for the i-th non-tax line (from 1)."""
    return f"{order_id}-{group}{index}"


def _payer(parties: Sequence[Mapping[str, Any]], role: str) -> dict[str, Any]:
    for party in parties:
        if isinstance(party, Mapping) and party.get("role") == role:
            return {k: party[k] for k in _PAYER_KEYS if party.get(k) is not None}
    raise MoneyError("no_payer", f"no party of role {role} to pay the order", "parties")


def _when(value: Any, field: str) -> tuple[_dt.datetime, str]:
    if isinstance(value, _dt.datetime):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise MoneyError("invalid_time", f"{field} must be an ISO 8601 time with an offset", field)
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise MoneyError("invalid_time", f"{field} must be an ISO 8601 time with an offset", field)
    return moment, text


def _tax_line(line: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {"tax_item_code": line["tax_item_code"], "amount_fen": fen(line["amount_fen"], "tax_lines.amount_fen"),
                "treasury_code": line["treasury_code"], "budget_subject": line["budget_subject"],
                "collecting_authority": line["collecting_authority"], "tax_ticket_no": line["tax_ticket_no"]}
    except (KeyError, TypeError):
        raise MoneyError("invalid_tax_line", "a tax line lacks a field of the TaxLine shape", "tax_lines") from None


def _check_inputs(payer_mode: str, tax_lines: Sequence[Mapping[str, Any]],
                  bills: Sequence[Mapping[str, Any]]) -> list[tuple[str | None, Mapping[str, Any]]]:
    if payer_mode not in PAYER_MODES:
        raise MoneyError("invalid_payer_mode", f"payer_mode must be one of {PAYER_MODES}", "payer_mode")
    line_ids: set[Any] = set()
    for line in tax_lines:
        if not isinstance(line, Mapping):
            raise MoneyError("invalid_tax_line", "every tax line must be an object", "tax_lines")
        if line.get("payer_role") not in ROLES:
            raise MoneyError("invalid_payer_role", "a tax line's payer_role must be obligee or obligor",
                             "tax_lines.payer_role")
        if line.get("line_id") in line_ids:
            raise MoneyError("duplicate_line", "every tax line_id must be unique", "tax_lines.line_id")
        line_ids.add(line.get("line_id"))
    checked: list[tuple[str | None, Mapping[str, Any]]] = []
    bill_keys: set[Any] = set()
    for entry in bills:
        bill = entry.get("bill") if isinstance(entry, Mapping) else None
        if not isinstance(bill, Mapping) or not isinstance(bill.get("lines"), list):
            raise MoneyError("invalid_bill", "every bills item must be {payer_role, bill: NontaxBillIssued}", "bills")
        role = entry.get("payer_role")
        if role is not None and role not in ROLES or payer_mode == "each_pays_own" and role is None:
            raise MoneyError("invalid_payer_role", "a bill's payer_role must be obligee or obligor",
                             "bills.payer_role")
        for key in ("bill_no", "payment_code"):
            if (key, bill.get(key)) in bill_keys:
                raise MoneyError("duplicate_bill", f"two bills have the same {key}", f"bills.bill.{key}")
            bill_keys.add((key, bill.get(key)))
        amounts = [fen(x.get("amount_fen") if isinstance(x, Mapping) else None, "bills.bill.lines.amount_fen")
                   for x in bill["lines"]]
        if fen(bill.get("total_fen"), "bills.bill.total_fen") != sum(amounts):
            raise MoneyError("total_mismatch", "a bill's total_fen must equal the sum of its lines",
                             "bills.bill.total_fen")
        checked.append((role, bill))
    return checked


def build_orders(case_id: str, payer_mode: str, parties: Sequence[Mapping[str, Any]],
                 tax_lines: Iterable[Mapping[str, Any]], bills: Iterable[Mapping[str, Any]], expires_at: Any,
                 *, n: int = 1, unit_code: str | None = None, validate: bool = True) -> list[dict[str, Any]]:
    """The `payment.order_requested` data of a case: one dict per order, none if nothing is owed.

    - `parties`: the application's Party dicts (role, name, id_type, id_number, phone…);
    - `tax_lines`: TaxLine dicts (the assessment's lines);
    - `bills`: `{"payer_role": "obligee" | "obligor", "bill": <nontax.bill_issued data>}`; the role is
      required only with each_pays_own;
    - `expires_at`: an ISO 8601 time with an offset (or an aware datetime);
    - `n`: the re-issue number in the order ids; `unit_code`: see `order_id_for`.

    Every dict is validated as outbound `payment.order_requested` data (HubError 422 otherwise;
    `validate=False` skips it where a caller validates later). Bad input: MoneyError with a stable code
    (invalid_payer_mode, invalid_payer_role, duplicate_line, duplicate_bill, total_mismatch, no_payer,
    too_many_lines, invalid_amount, invalid_time…).
    """
    tax_lines = list(tax_lines)
    checked_bills = _check_inputs(payer_mode, tax_lines, list(bills))
    wanted_end, wanted_text = _when(expires_at, "expires_at")
    if payer_mode == "each_pays_own":
        payers = ROLES
    else:
        payers = ("obligee",) if payer_mode == "obligee_pays_all" else ("obligor",)
    orders: list[dict[str, Any]] = []
    for role in payers:
        def mine(line_role: str | None) -> bool:
            return payer_mode != "each_pays_own" or line_role == role

        taxes = [_tax_line(t) for t in tax_lines if mine(t["payer_role"])]
        taxes = [t for t in taxes if t["amount_fen"] > 0]
        fees: list[dict[str, Any]] = []
        end, end_text = wanted_end, wanted_text
        for bill_role, bill in checked_bills:
            if not mine(bill_role):
                continue
            lines = [x for x in bill["lines"] if x["amount_fen"] > 0]
            if not lines:
                continue
            for x in lines:
                try:
                    fees.append({"fee_item_code": x["fee_item_code"], "amount_fen": x["amount_fen"],
                                 "receiving_unit": bill["receiving_unit"], "payment_code": bill["payment_code"]})
                except KeyError:
                    raise MoneyError("invalid_bill", "a bill lacks a field of the NontaxBillIssued shape",
                                     "bills") from None
            if bill.get("expires_at") is not None:
                bill_end, bill_text = _when(bill["expires_at"], "bills.bill.expires_at")
                if bill_end < end:
                    end, end_text = bill_end, bill_text
        if not taxes and not fees:
            continue
        if len(taxes) > MAX_LINES or len(fees) > MAX_LINES:
            raise MoneyError("too_many_lines", f"an order holds at most {MAX_LINES} tax and {MAX_LINES} non-tax lines",
                             "tax_lines")
        order_id = order_id_for(case_id, role, n, unit_code)
        tax_out = [{"sub_order_id": sub_order_id_for(order_id, "T", i), **t} for i, t in enumerate(taxes, 1)]
        fee_out = [{"sub_order_id": sub_order_id_for(order_id, "N", i), **f} for i, f in enumerate(fees, 1)]
        orders.append({
            "order_id": order_id, "case_id": case_id, "payer_role": role, "payer": _payer(parties, role),
            "total_fen": sum(x["amount_fen"] for x in tax_out) + sum(x["amount_fen"] for x in fee_out),
            "currency": "CNY", "tax_lines": tax_out, "nontax_lines": fee_out, "expires_at": end_text,
        })
    if validate:
        from chalicelib.models import validate_data

        for order in orders:
            validate_data("payment.order_requested", order, direction="outbound")
    return orders
