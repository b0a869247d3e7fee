"""The day's settlement file against the hub's ledger: every file record and every ledger entry lands in
exactly one category, nothing is dropped.

    report = reconcile(parse("bank_govpay", stream_lines(bucket, key)), ledger_entries,
                       declared_totals=notice["totals"], settlement_date=notice["settlement_date"])

Memory: the ledger is indexed once (a dict keyed for lookup, plus 13 bytes per entry of state); the file
is streamed, one item at a time. Beyond that index the report keeps at most `max_items` items per
category (counts and amounts are always complete) and the keys of at most `max_tracked_unknown` records
the ledger does not know (to tell their duplicates apart).

## Keys
A record's key is (platform_order_id, platform_sub_order_id, kind); (order_id, sub_order_id, kind) is the
fallback. A ledger entry with both platform ids is found by its platform key; one without them (the
platform did not echo its sub-order number) by our ids. A record with platform ids that no entry has is
looked up by our ids among the entries lacking a platform id; a record without platform ids (csv) by our
ids among all entries. An entry whose platform ids differ from the record's is not matched through our
ids: that discrepancy shows as missing on both sides.
Several entries under one key (partial refunds of one sub-order) are taken in ledger order, an entry
with the record's amount first.

## Categories
File records (each detail line exactly once):
- matched: key found, an entry not yet taken, same amount;
- amount_mismatch: key found, an entry not yet taken, another amount (the entry is taken: the pair is
  reported together, with `file_amount_fen` and `ledger_amount_fen`);
- duplicate: the key's entries are all taken already, or the same unknown key came earlier
  (`first_line`); the first of a wrong-amount and a right-amount line of one key is the mismatch, the
  second the duplicate (a stream cannot know which one the platform meant);
- missing_in_hub: no ledger entry has the key;
- malformed: not a well-formed line (with `reason` and `field`; no amount).
Ledger entries (each exactly once): matched, amount_mismatch, missing_in_file (never taken).
File-level `problems`: the parser's (missing header or trailer, totals against the header, ...) and,
with `declared_totals` / `settlement_date` (the settlement.ready notice), the file against the notice.

## Report (a dict; json.dumps works as is)
    {"format", "settlement_date", "ok",            # ok: everything matched, no problem at all
     "summary": {"records", "ledger_entries", "matched", "amount_mismatch", "missing_in_hub",
                 "missing_in_file", "duplicate", "malformed", "problems"},
     "file": {"header": {"line", "batch", "declared_totals"} | None, "totals": TOTALS},   # well-formed records
     "ledger": {"entries", "totals": TOTALS},
     "problems": [{"code", "line", "field", "declared", "found", "source"}],
     "matched" | "amount_mismatch" | "missing_in_hub" | "missing_in_file" | "duplicate" | "malformed":
        {"count", "amount_fen", "by_kind": {"payment": {"count", "amount_fen"}, "refund": {...}},
         "items": [...], "truncated": bool},        # amount_mismatch also "ledger_amount_fen"
     "limits": {"max_items", "max_tracked_unknown", "unknown_keys_overflow": bool}}
    TOTALS = {"payment_count", "payment_fen", "refund_count", "refund_fen"}
Items: records {"line", "kind", "platform_order_id", "platform_sub_order_id", "order_id", "sub_order_id",
"amount_fen"} (+ "entry_id" where an entry is concerned, + "first_line" for duplicates); ledger entries
{"entry_id", "kind", "order_id", "sub_order_id", "platform_order_id", "platform_sub_order_id",
"amount_fen"}; matched {"line", "entry_id"} (listed only with list_matched=True); malformed {"line",
"reason", "field"}. Items are in file order, missing_in_file in ledger order.
"""
from __future__ import annotations

import datetime as _dt
from array import array
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Iterable, Mapping, Optional, Union

from chalicelib.reconcile.parsers import (MAX_FEN, PAYMENT, REFUND, Header, Malformed, Problem, Record,
                                          _total_problems)

CATEGORIES = ("matched", "amount_mismatch", "missing_in_hub", "missing_in_file", "duplicate", "malformed")
# Keys are ids joined by "\x1f", which no id has (Ref pattern), so joined keys cannot collide.
_ENTRY_FIELDS = ("kind", "amount_fen", "order_id", "sub_order_id", "platform_order_id", "platform_sub_order_id")
_OPEN, _MATCHED, _MISMATCHED = 0, 1, 2


class _Bucket:
    __slots__ = ("count", "amount", "pay_count", "pay_fen", "ref_count", "ref_fen", "items", "limit", "ledger_amount")

    def __init__(self, limit: Optional[int]):
        self.count = self.amount = self.pay_count = self.pay_fen = self.ref_count = self.ref_fen = 0
        self.ledger_amount = 0
        self.items: list = []
        self.limit = limit

    def add(self, kind: Optional[str], amount: int, item: Any) -> None:
        """`item`: the item, or a callable making it (only called while there is room)."""
        self.count += 1
        self.amount += amount
        if kind == PAYMENT:
            self.pay_count += 1
            self.pay_fen += amount
        elif kind == REFUND:
            self.ref_count += 1
            self.ref_fen += amount
        if self.limit is None or len(self.items) < self.limit:
            self.items.append(item() if callable(item) else item)

    def room(self) -> bool:
        return self.limit is None or len(self.items) < self.limit

    def to_dict(self, with_ledger_amount: bool = False) -> dict:
        out = {"count": self.count, "amount_fen": self.amount,
               "by_kind": {"payment": {"count": self.pay_count, "amount_fen": self.pay_fen},
                           "refund": {"count": self.ref_count, "amount_fen": self.ref_fen}},
               "items": self.items, "truncated": self.count > len(self.items)}
        if with_ledger_amount:
            out["ledger_amount_fen"] = self.ledger_amount
        return out


def _getter(entry: Any):
    if isinstance(entry, Mapping):
        return entry.get
    return lambda name, default=None: getattr(entry, name, default)


def _entry_item(entry: Any) -> dict:
    get = _getter(entry)
    return {"entry_id": get("entry_id"), "kind": get("kind"), "order_id": get("order_id"),
            "sub_order_id": get("sub_order_id"), "platform_order_id": get("platform_order_id") or None,
            "platform_sub_order_id": get("platform_sub_order_id") or None, "amount_fen": get("amount_fen")}


def _record_item(rec: Record, **more: Any) -> dict:
    item = {"line": rec.line, "kind": rec.kind, "platform_order_id": rec.platform_order_id,
            "platform_sub_order_id": rec.platform_sub_order_id, "order_id": rec.order_id,
            "sub_order_id": rec.sub_order_id, "amount_fen": rec.amount_fen}
    item.update(more)
    return item


class _Ledger:
    """The day's ledger keyed for lookup: key -> entry ordinal (or a list of ordinals), plus per entry its
    amount, state and the line that took it. Entries themselves are only read again to report them."""

    def __init__(self, entries: Iterable[Any]):
        self.entries: Sequence = entries if isinstance(entries, Sequence) else list(entries)
        self.by_platform: dict[str, Union[int, list]] = {}
        self.by_ours: dict[str, Union[int, list]] = {}
        self._ours_of_platformed: Optional[dict] = None
        n = len(self.entries)
        self.amounts = array("q", bytes(8 * n))
        self.state = bytearray(n)
        self.taken_by = array("I", bytes(4 * n))
        by_platform, by_ours, amounts = self.by_platform, self.by_ours, self.amounts
        fields = itemgetter("kind", "amount_fen", "order_id", "sub_order_id", "platform_order_id",
                            "platform_sub_order_id")
        pay_n = pay_fen = ref_n = ref_fen = 0
        for i, entry in enumerate(self.entries):
            try:
                kind, amount, o, s, po, ps = fields(entry)
            except (KeyError, TypeError):  # an Entry object, or a dict without some optional key
                get = _getter(entry)
                kind, amount, o, s, po, ps = (get(name) for name in _ENTRY_FIELDS)
            if type(amount) is not int or not 0 <= amount <= MAX_FEN:
                raise ValueError(f"ledger entry #{i}: amount_fen must be an int of fen, 0..MAX_FEN")
            if kind == PAYMENT:
                pay_n += 1
                pay_fen += amount
            elif kind == REFUND:
                ref_n += 1
                ref_fen += amount
            else:
                raise ValueError(f"ledger entry #{i}: kind must be payment or refund")
            if not (o and s and type(o) is str and type(s) is str):
                raise ValueError(f"ledger entry #{i}: order_id and sub_order_id are required")
            amounts[i] = amount
            if po and ps:
                index, key = by_platform, f"{po}\x1f{ps}\x1f{kind}"
            else:
                index, key = by_ours, f"{o}\x1f{s}\x1f{kind}"
            found = index.setdefault(key, i)
            if found is not i:
                _add_to(index, key, found, i)
        self.totals = {"payment_count": pay_n, "payment_fen": pay_fen, "refund_count": ref_n, "refund_fen": ref_fen}

    def ours_of_platformed(self) -> dict:
        """Our-id keys of the entries indexed by platform key; built the first time a record without
        platform ids needs it (csv), never otherwise."""
        if self._ours_of_platformed is None:
            found: dict = {}
            for i, entry in enumerate(self.entries):
                get = _getter(entry)
                if get("platform_order_id") and get("platform_sub_order_id"):
                    key = f"{get('order_id')}\x1f{get('sub_order_id')}\x1f{get('kind')}"
                    old = found.setdefault(key, i)
                    if old is not i:
                        _add_to(found, key, old, i)
            self._ours_of_platformed = found
        return self._ours_of_platformed


def _add_to(index: dict, key: str, found: Union[int, list], i: int) -> None:
    """A second (third, ...) entry under one key: the slot becomes a list of ordinals, in ledger order."""
    if type(found) is int:
        index[key] = [found, i]
    else:
        found.append(i)


def _take_among(ledger: _Ledger, ordinals: list, amount: int) -> tuple[int, int]:
    """An open entry among several under one key: one with the amount first. (ordinal, new state), or
    (first ordinal, _OPEN) when all are taken."""
    state, amounts = ledger.state, ledger.amounts
    first_open = -1
    for i in ordinals:
        if state[i] == _OPEN:
            if amounts[i] == amount:
                return i, _MATCHED
            if first_open < 0:
                first_open = i
    if first_open >= 0:
        return first_open, _MISMATCHED
    return ordinals[0], _OPEN


def _as_iso(day: Union[None, str, _dt.date]) -> Optional[str]:
    if day is None:
        return None
    return day.isoformat() if isinstance(day, _dt.date) else str(day)


def reconcile(settlement_records: Iterable[Any], ledger_entries: Iterable[Any], *,
              declared_totals: Optional[Mapping[str, int]] = None,
              settlement_date: Union[None, str, _dt.date] = None,
              max_items: Optional[int] = 1000, list_matched: bool = False,
              max_tracked_unknown: int = 100_000) -> dict:
    """Reconcile a stream of parser items (`parse`, `parse_bank_govpay`, `parse_csv`) against the day's
    ledger entries (dicts shaped like chalicelib.money.ledger.Entry, or Entry objects). See the module
    docstring for the categories and the report. `max_items=None`: no limit on listed items.

    Raises ValueError only for a ledger entry the hub could not have made (no kind, amount or ids)."""
    ledger = _Ledger(ledger_entries)
    state, amounts, taken_by, entries = ledger.state, ledger.amounts, ledger.taken_by, ledger.entries
    get_platform, get_ours = ledger.by_platform.get, ledger.by_ours.get
    matched = _Bucket(max_items if list_matched else 0)
    mismatch, unknown, duplicate = _Bucket(max_items), _Bucket(max_items), _Bucket(max_items)
    malformed, missing = _Bucket(max_items), _Bucket(max_items)
    problems: list[dict] = []
    header: Optional[Header] = None
    file_format: Optional[str] = None
    seen_unknown: dict[str, int] = {}
    unknown_overflow = False
    m_pay = m_pay_fen = m_ref = m_ref_fen = 0  # matched, counted inline (the hot path)
    records = 0
    list_m = matched.room()

    for item in settlement_records:
        if item.__class__ is not Record:
            if isinstance(item, Malformed):
                records += 1
                malformed.add(None, 0, {"line": item.line, "reason": item.reason, "field": item.field})
            elif isinstance(item, Header):
                header = item
                file_format = item.format
            elif isinstance(item, Problem):
                problems.append(item._asdict())
            elif isinstance(item, Record):  # a subclass
                item = Record(*item)
            else:
                raise TypeError(f"not a settlement item: {type(item).__name__}")
            if item.__class__ is not Record:
                continue
        records += 1
        line, kind, po, ps, o, s, amount = item
        if po and ps:
            slot = get_platform(f"{po}\x1f{ps}\x1f{kind}")
            # the hot path: the key's one entry, open, same amount
            if slot.__class__ is int and not state[slot] and amounts[slot] == amount:
                state[slot] = _MATCHED
                taken_by[slot] = line
                if kind == PAYMENT:
                    m_pay += 1
                    m_pay_fen += amount
                else:
                    m_ref += 1
                    m_ref_fen += amount
                if list_m:
                    matched.items.append({"line": line, "entry_id": _getter(entries[slot])("entry_id")})
                    list_m = matched.room()
                continue
        elif not (o and s):  # only a hand-made record can lack both keys; the parsers make it Malformed
            malformed.add(None, 0, {"line": line, "reason": "no_key", "field": None})
            continue
        else:
            slot = None
        if slot is None and o and s:
            okey = f"{o}\x1f{s}\x1f{kind}"
            slot = get_ours(okey)
            if slot is None and not (po and ps):
                slot = ledger.ours_of_platformed().get(okey)
        if slot is not None:
            if slot.__class__ is int:
                i = slot
                outcome = _OPEN if state[i] else (_MATCHED if amounts[i] == amount else _MISMATCHED)
            else:
                i, outcome = _take_among(ledger, slot, amount)
            if outcome == _MATCHED:
                state[i] = _MATCHED
                taken_by[i] = line
                if kind == PAYMENT:
                    m_pay += 1
                    m_pay_fen += amount
                else:
                    m_ref += 1
                    m_ref_fen += amount
                if list_m:
                    matched.items.append({"line": line, "entry_id": _getter(entries[i])("entry_id")})
                    list_m = matched.room()
            elif outcome == _MISMATCHED:
                state[i] = _MISMATCHED
                taken_by[i] = line
                mismatch.ledger_amount += amounts[i]
                mismatch.add(kind, amount, lambda: _record_item(
                    item, entry_id=_getter(entries[i])("entry_id"), file_amount_fen=amount,
                    ledger_amount_fen=amounts[i]))
            else:
                duplicate.add(kind, amount, lambda: _record_item(
                    item, entry_id=_getter(entries[i])("entry_id"), first_line=taken_by[i]))
            continue
        ukey = f"{po}\x1f{ps}\x1f{kind}" if po and ps else f"{o}\x1f{s}\x1f{kind}"
        first = seen_unknown.get(ukey)
        if first is not None:
            duplicate.add(kind, amount, lambda: _record_item(item, entry_id=None, first_line=first))
            continue
        if len(seen_unknown) < max_tracked_unknown:
            seen_unknown[ukey] = line
        else:
            unknown_overflow = True
        unknown.add(kind, amount, lambda: _record_item(item))

    matched.count, matched.amount = m_pay + m_ref, m_pay_fen + m_ref_fen
    matched.pay_count, matched.pay_fen, matched.ref_count, matched.ref_fen = m_pay, m_pay_fen, m_ref, m_ref_fen
    # every well-formed record is in exactly one of these four, with its file amount
    file_totals = {"payment_count": sum(b.pay_count for b in (matched, mismatch, duplicate, unknown)),
                   "payment_fen": sum(b.pay_fen for b in (matched, mismatch, duplicate, unknown)),
                   "refund_count": sum(b.ref_count for b in (matched, mismatch, duplicate, unknown)),
                   "refund_fen": sum(b.ref_fen for b in (matched, mismatch, duplicate, unknown))}
    i = state.find(_OPEN)
    while i >= 0:
        entry = entries[i]
        missing.add(_getter(entry)("kind"), amounts[i], lambda: _entry_item(entry))
        i = state.find(_OPEN, i + 1)

    day = header.settlement_date if header is not None else None
    if settlement_date is not None and _as_iso(settlement_date) != day:
        problems.append(Problem("settlement_date_mismatch", header.line if header else None, "settlement_date",
                                _as_iso(settlement_date), day, "notice")._asdict())
    if declared_totals is not None:
        problems.extend(p._asdict() for p in _total_problems(declared_totals, file_totals, None, "notice"))
    if unknown_overflow:
        problems.append(Problem("unknown_keys_overflow", None, None, max_tracked_unknown, None, "hub")._asdict())

    buckets = {"matched": matched, "amount_mismatch": mismatch, "missing_in_hub": unknown,
               "missing_in_file": missing, "duplicate": duplicate, "malformed": malformed}
    counts = {name: b.count for name, b in buckets.items()}
    report: dict[str, Any] = {
        "format": file_format,
        "settlement_date": day,
        "ok": not problems and all(counts[name] == 0 for name in CATEGORIES if name != "matched"),
        "summary": {"records": records, "ledger_entries": len(entries), **counts, "problems": len(problems)},
        "file": {"header": None if header is None else {"line": header.line, "batch": header.batch,
                                                         "declared_totals": header.totals},
                 "totals": file_totals},
        "ledger": {"entries": len(entries), "totals": ledger.totals},
        "problems": problems,
    }
    for name, bucket in buckets.items():
        report[name] = bucket.to_dict(with_ledger_amount=name == "amount_mismatch")
    report["limits"] = {"max_items": max_items, "max_tracked_unknown": max_tracked_unknown,
                        "unknown_keys_overflow": unknown_overflow}
    return report
