"""Does a payment result match its order? Exactly, or it is held for review and never booked.

Why: DOMAIN.md "Money" — "a payment result must match the order exactly (amount, lines) or it is held
for review, never booked". The platform answers per sub-order (domain_cn.md §4.1 A: LIST1[] with
Cmdty_Sub_Ordr_No, Sub_Ordr_StCd, RvPyUnt_Cd, Fee_Itm_Cd, Fee_Itm_Prj_Amt; TAmt is the order total),
so the check is per sub-order:

- the result names the same order (order_mismatch) and the order's total (total_mismatch);
- it lists each sub-order of the order exactly once: none unknown (unknown_sub_order), none missing
  (missing_sub_order), none twice (duplicate_sub_order);
- each line's amount is the order line's amount (amount_mismatch), and where the platform echoes the
  receiving unit and item code, they are the order line's (receiving_unit_mismatch,
  fee_item_mismatch): a tax sub-order's receiving unit is its treasury (RvPyUnt_Cd = skgkDm, as the
  bank_govpay mapping sends it) and its item code the tax item; a fee sub-order's are the bill's
  receiving unit and fee item code;
- a line is "paid" or "failed" (invalid_status); a failed line is a partial success (部分缴费, §4.1
  "Operating model" 5): it is not booked and the order stays open for it, while the paid lines are
  booked. A "succeeded" result with no paid line is contradictory and held (nothing_paid).
- a result that cannot be read at all (missing fields, non-integer amounts) is held (malformed_result)
  rather than raising: a partner's callback must never crash the flow.

The result is a `Match`. `hold_reason` is the first problem in a fixed priority order (so the same
result always gives the same reason); `problems` lists all of them as "code" or "code:sub_order_id".
Matching is a pure function of (order, result): a duplicated callback gives the same Match, and the
ledger's deterministic entry ids make booking it again a no-op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Match", "match", "HOLD_REASONS", "order_lines"]

# Priority order of hold reasons (the first one found is `hold_reason`).
HOLD_REASONS = ("malformed_result", "order_mismatch", "duplicate_sub_order", "unknown_sub_order",
                "missing_sub_order", "invalid_status", "amount_mismatch", "receiving_unit_mismatch",
                "fee_item_mismatch", "total_mismatch", "nothing_paid")


@dataclass(frozen=True)
class Match:
    """The verdict on one payment result.

    ok: True when every check passed (the paid lines may be booked);
    hold_reason: None when ok, else a stable code of HOLD_REASONS;
    paid_lines / failed_lines: when ok, one dict per sub-order of the result, in the order's line order:
        {sub_order_id, platform_order_id, platform_sub_order_id, amount_fen, status}
        (empty when held: nothing of a held result is booked);
    problems: every problem found, "code" or "code:sub_order_id", sorted by priority then id.
    """

    ok: bool
    hold_reason: str | None
    paid_lines: tuple[dict[str, Any], ...] = ()
    failed_lines: tuple[dict[str, Any], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def paid_fen(self) -> int:
        return sum(line["amount_fen"] for line in self.paid_lines)

    @property
    def complete(self) -> bool:
        """Every line of the order was paid by this result."""
        return self.ok and not self.failed_lines


def order_lines(order: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """sub_order_id → ("tax" | "nontax", line) for every line of a payment.order_requested dict."""
    lines: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for group, key in (("tax", "tax_lines"), ("nontax", "nontax_lines")):
        for line in order.get(key) or ():
            lines[line["sub_order_id"]] = (group, line)
    return lines


def _is_fen(value: Any) -> bool:
    return type(value) is int and value >= 0


def _held(problems: list[tuple[str, str | None]]) -> Match:
    rank = {code: i for i, code in enumerate(HOLD_REASONS)}
    problems.sort(key=lambda p: (rank[p[0]], p[1] or ""))
    text = tuple(dict.fromkeys(code if sub is None else f"{code}:{sub}" for code, sub in problems))
    return Match(False, problems[0][0], (), (), text)


def match(order: Mapping[str, Any], result: Mapping[str, Any]) -> Match:
    """Match a `payment.succeeded` data dict against the `payment.order_requested` dict it answers."""
    try:
        result_lines = list(result["lines"])
        platform_order_id = result["platform_order_id"]
        total = result["total_fen"]
        for line in result_lines:
            line["sub_order_id"], line["status"], line["amount_fen"]  # noqa: B018 (presence check)
    except (KeyError, TypeError):
        return _held([("malformed_result", None)])
    if not _is_fen(total) or not all(_is_fen(line["amount_fen"]) and isinstance(line["sub_order_id"], str)
                                     for line in result_lines):
        return _held([("malformed_result", None)])

    problems: list[tuple[str, str | None]] = []
    if result.get("order_id") != order["order_id"]:
        problems.append(("order_mismatch", None))
    if total != order["total_fen"]:
        problems.append(("total_mismatch", None))
    expected = order_lines(order)
    seen: dict[str, Mapping[str, Any]] = {}
    for line in result_lines:
        sub = line["sub_order_id"]
        if sub in seen:
            problems.append(("duplicate_sub_order", sub))
            continue
        seen[sub] = line
        if sub not in expected:
            problems.append(("unknown_sub_order", sub))
            continue
        group, want = expected[sub]
        if line["status"] not in ("paid", "failed"):
            problems.append(("invalid_status", sub))
        if line["amount_fen"] != want["amount_fen"]:
            problems.append(("amount_mismatch", sub))
        unit = line.get("receiving_unit")
        if unit is not None and unit != (want["treasury_code"] if group == "tax" else want["receiving_unit"]):
            problems.append(("receiving_unit_mismatch", sub))
        item = line.get("fee_item_code")
        if item is not None and item != (want["tax_item_code"] if group == "tax" else want["fee_item_code"]):
            problems.append(("fee_item_mismatch", sub))
    for sub in expected:
        if sub not in seen:
            problems.append(("missing_sub_order", sub))
    if not problems and not any(line["status"] == "paid" for line in result_lines):
        problems.append(("nothing_paid", None))
    if problems:
        return _held(problems)

    paid: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for sub in expected:  # the order's line order, whatever order the platform listed them in
        line = seen[sub]
        out = {"sub_order_id": sub, "platform_order_id": platform_order_id,
               "platform_sub_order_id": line.get("platform_sub_order_id"), "amount_fen": line["amount_fen"],
               "status": line["status"]}
        (paid if line["status"] == "paid" else failed).append(out)
    return Match(True, None, tuple(paid), tuple(failed), ())
