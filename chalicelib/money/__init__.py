"""The money domain of the one-window flow (DOMAIN.md "Money", flow 1; domain_cn.md §3-§4).

Pure functions, no AWS and no I/O except reading this package's own data file (`fee_schedule.json`):

    fees.quote(...)                   the registration fee of a case, from the versioned schedule (data)
    orders.build_orders(...)          the combined order(s) 税费同缴、合一支付: one per payer
    payments.match(order, result)     does a payment result match its order exactly? else hold it
    ledger.entries_for_payment(...)   the double entries of the automatic split (自动清分)
    ledger.entries_for_refund(...)    the exact reversal of what was booked
    clearance.check(...)              the two-way check of 完税 against assessment and payment (Ningbo)

Why these rules are where they are:
- The hub never computes a tax (DOMAIN.md "Money"): it carries the tax bureau's lines. The only money
  it computes is the registration fee, and that from data (the schedule is "data, versioned, not
  code").
- Every amount is an `int` of fen (分). A float, a bool or a string where a fen amount is expected
  is a programming error and raises `MoneyError(code="invalid_amount")`.
- Ids are deterministic, so that replaying a step (a stream record handed again, a callback received
  twice) produces the same ids and the event store's conditional writes make it a no-op
  (ARCHITECTURE.md "Crash safety").

Importing this package is cheap: it imports neither pydantic nor its submodules; pydantic is imported
only inside `orders.build_orders`, which validates what it builds.
"""
from __future__ import annotations

from typing import Any

from chalicelib.errors import HubError

__all__ = ["MoneyError", "fen"]


class MoneyError(HubError):
    """Input the money functions cannot work with: a stable `code`, never the offending value.

    A HubError (422 by default) so that a flow may answer it or record it like any other refusal.
    """

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 422):
        details = [{"field": field, "code": code, "message": message}] if field else []
        super().__init__(status, code, message, details)


def fen(value: Any, field: str = "amount_fen") -> int:
    """`value` if it is an int amount of fen >= 0; else MoneyError("invalid_amount").

    bool is an int subclass in Python and would silently count as 0 or 1 fen: refused, like floats
    ("No floats anywhere money flows", DOMAIN.md).
    """
    if type(value) is not int or value < 0:
        raise MoneyError("invalid_amount", f"{field} must be a non-negative integer amount of fen", field)
    return value
