"""Settlement (对账) files of the payment platform, parsed as streams: one line in, at most one item out,
O(1) memory whatever the file's size (a line is never joined to the next one).

Input: any iterable of text lines (`reader.stream_lines` for S3, an open text file, a list in tests).
A trailing "\\r\\n"/"\\n" is dropped, a UTF-8 byte-order mark on the first line too; blank lines are skipped.

Output items, in file order (`parse` picks the parser by the `format` of `settlement.ready`):
- `Header`: what the file says about itself (date, batch, declared totals); at most one.
- `Record`: one well-formed detail line (a payment or a refund of one sub-order).
- `Malformed`: a line that is not a well-formed record, header or trailer, with a stable reason code and
  the field at fault (never the value: the report names lines, the file is in S3 for whoever may read it).
- `Problem`: something wrong with the file as a whole (missing header/trailer, a wrong total, ...).
A parser never raises on content; only the line source can (S3 read errors).

## bank_govpay: the bank's government payment platform (CCB 政融-like), pipe-separated, UTF-8

Field names after reference/domain_cn.md §4.2 (`SftjDzdResponseDTO`, the detail file of `File_Type` 2).
The reference documents the header totals, not the detail layout: the layout below is the hub's, to be
confirmed with the bank. No quoting: no field may contain "|".

    H|Rcncl_Dt|BtNo_cd|Tran_Pay_Tol_No|Tran_Pay_Tol_Amt|Tran_Refund_Tol_No|Tran_Refund_Tol_Amt
    D|Txn_TpCd|Txn_Tm|Py_Ordr_No|Py_Sub_Ordr_No|Cmdty_Ordr_No|Cmdty_Sub_Ordr_No|Fee_Itm_Cd|RvPyUnt_Cd|Txn_Amt
    ... one D line per paid or refunded sub-order ...
    T|Dtl_Rcrd_Num

    H|20240315|01|2|305.00|1|40.00
    D|1|20240315093012|ZR2024031500000001|ZR202403150000000101|C1-E-1|C1-E-1-01|SZ-DJF-ZZ|440300-BDC|80.00
    D|1|20240315093012|ZR2024031500000001|ZR202403150000000102|C1-E-1|C1-E-1-02|10119|440300-SW|225.00
    D|2|20240315161500|ZR2024031500000001|ZR202403150000000101|C1-E-1|C1-E-1-01|SZ-DJF-ZZ|440300-BDC|40.00
    T|3

- H: `Rcncl_Dt` the settlement day yyyyMMdd; `BtNo_cd` batch, two digits (default 01); the count and amount
  of payments (`Tran_Pay_Tol_No`, `Tran_Pay_Tol_Amt`) and of refunds (`Tran_Refund_Tol_No/Amt`).
- D: `Txn_TpCd` 1 payment (支付), 2 refund (退款); `Txn_Tm` yyyyMMddHHmmss, China time; `Py_Ordr_No` and
  `Py_Sub_Ordr_No` the platform's order and sub-order numbers (required: the record's key); `Cmdty_Ordr_No`
  and `Cmdty_Sub_Ordr_No` ours (may be empty; the fallback key); `Fee_Itm_Cd` fee item code and `RvPyUnt_Cd`
  receiving unit (may be empty, not reconciled); `Txn_Amt` the sub-order's amount of this transaction, yuan
  with exactly two decimals, never negative (a refund is Txn_TpCd 2, not a negative amount).
- T: `Dtl_Rcrd_Num` the number of lines between header and trailer.
- Ids follow the hub's Ref pattern ([A-Za-z0-9][A-Za-z0-9_.:-]{0,63}), codes its Code pattern.
Problems: `empty_file`, `missing_header` (no valid H before the first detail line), `missing_trailer` (the
file ended without a valid T: truncated), `trailer_count_mismatch` (T's count is not the number of lines
between H and T), `total_mismatch` (per `field`: payment_count, payment_fen, refund_count, refund_fen;
the header's figure against the sum of the well-formed D lines; a malformed D line therefore also shows
here). A second H, lines after T and a second T are `Malformed`.

## csv: plain comma-separated values, UTF-8, one header row, no trailer

    settlement_date,platform_order_id,platform_sub_order_id,order_id,sub_order_id,kind,amount_fen
    2024-03-15,ZR2024031500000001,ZR202403150000000101,C1-E-1,C1-E-1-01,payment,8000

- `settlement_date` ISO date, the same on every row; `kind` payment | refund; `amount_fen` integer fen.
- Either id pair may be empty, not both: (platform_order_id, platform_sub_order_id) is the key,
  (order_id, sub_order_id) the fallback. Quoted fields are accepted on a single line.
- It carries no totals: check them against the `settlement.ready` notice (`reconcile(declared_totals=...)`).
Problems: `empty_file`, `missing_header` (the first line is not the header row above; the lines are read
as data all the same).
"""
from __future__ import annotations

import csv
import datetime as _dt
import re
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Optional, Union

PAYMENT = "payment"
REFUND = "refund"
KINDS = (PAYMENT, REFUND)
FORMATS = ("bank_govpay", "csv")
MAX_FEN = 9_007_199_254_740_991  # chalicelib.models.common.MAX_FEN (2**53 - 1), not imported: no pydantic here
TOTAL_FIELDS = ("payment_count", "payment_fen", "refund_count", "refund_fen")
CSV_COLUMNS = ("settlement_date", "platform_order_id", "platform_sub_order_id", "order_id", "sub_order_id", "kind",
               "amount_fen")
CSV_HEADER = ",".join(CSV_COLUMNS)


class Record(NamedTuple):
    """One detail line: a payment or refund of one sub-order. Ids are None when the file leaves them empty."""

    line: int
    kind: str  # "payment" | "refund"
    platform_order_id: Optional[str]
    platform_sub_order_id: Optional[str]
    order_id: Optional[str]
    sub_order_id: Optional[str]
    amount_fen: int


class Malformed(NamedTuple):
    line: int
    reason: str  # stable code, one of REASONS
    field: Optional[str] = None


class Header(NamedTuple):
    line: int
    format: str
    settlement_date: Optional[str]  # ISO yyyy-mm-dd
    batch: Optional[str] = None
    totals: Optional[dict] = None  # TOTAL_FIELDS -> int, as declared by the file


class Problem(NamedTuple):
    code: str  # one of PROBLEM_CODES
    line: Optional[int] = None
    field: Optional[str] = None
    declared: Any = None
    found: Any = None
    source: str = "file"  # "file": the file contradicts itself; "notice": the file contradicts settlement.ready


Item = Union[Record, Malformed, Header, Problem]

# Malformed reasons and problem codes (stable).
REASONS = ("not_utf8", "unknown_record_type", "field_count", "bad_kind", "bad_time", "bad_id", "bad_code",
           "bad_amount", "amount_too_large", "no_key", "bad_date", "settlement_date_differs", "bad_count",
           "bad_batch", "bad_quoting", "unexpected_header", "duplicate_trailer", "after_trailer")

PROBLEM_CODES = ("empty_file", "missing_header", "missing_trailer", "trailer_count_mismatch", "total_mismatch",
                 "settlement_date_mismatch", "unknown_keys_overflow")

_REF = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
_CODE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
_REF_RE = re.compile(_REF, re.ASCII)
_CODE_RE = re.compile(_CODE, re.ASCII)
_YUAN_RE = re.compile(r"(\d{1,14})\.(\d\d)", re.ASCII)
_COUNT_RE = re.compile(r"\d{1,12}", re.ASCII)
_FEN_RE = re.compile(r"\d{1,16}", re.ASCII)
_TIME_RE = re.compile(r"\d{14}", re.ASCII)
_DAY8_RE = re.compile(r"\d{8}", re.ASCII)
_ISO_DAY_RE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)
_BATCH_RE = re.compile(r"\d\d", re.ASCII)

# ASCII digits only (\d would take any Unicode digit, and int() would read it).
# The fast paths: one C-level match validates a whole ordinary line; anything else takes the slow path,
# which finds the reason. Both accept exactly the same lines (the slow path also tolerates spaces
# around fields, which the fast path leaves to it).
_BANK_D = re.compile(
    rf"D\|([12])\|\d{{14}}\|({_REF})\|({_REF})\|({_REF})?\|({_REF})?\|(?:{_CODE})?\|(?:{_CODE})?\|"
    rf"(\d{{1,14}})\.(\d\d)", re.ASCII)
_CSV_ROW = re.compile(
    rf"(\d{{4}}-\d\d-\d\d),({_REF})?,({_REF})?,({_REF})?,({_REF})?,(payment|refund),(\d{{1,16}})", re.ASCII)
_BANK_KIND = {"1": PAYMENT, "2": REFUND}
_BOM = "\ufeff"


def parse(fmt: str, lines: Iterable[str]) -> Iterator[Item]:
    """The parser of a `settlement.ready` format ("bank_govpay" | "csv")."""
    if fmt == "bank_govpay":
        return parse_bank_govpay(lines)
    if fmt == "csv":
        return parse_csv(lines)
    raise ValueError(f"unknown settlement file format {fmt!r}; known: {', '.join(FORMATS)}")


# --------------------------------------------------------------------------------------------------
# small helpers


def _iso_of_yyyymmdd(text: str) -> Optional[str]:
    if not _DAY8_RE.fullmatch(text):
        return None
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        return None


def _valid_iso_day(text: str) -> bool:
    if not _ISO_DAY_RE.fullmatch(text):
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _yuan_to_fen(text: str) -> Optional[int]:
    found = _YUAN_RE.fullmatch(text)
    return int(found[1] + found[2]) if found else None


def fen_to_yuan(fen: int) -> str:
    """8000 -> "80.00" (exact, integer arithmetic)."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError("amount must be a non-negative integer of fen")
    return f"{fen // 100}.{fen % 100:02d}"


def _empty_totals() -> dict:
    return dict.fromkeys(TOTAL_FIELDS, 0)


def _total_problems(declared: Mapping[str, Any], found: Mapping[str, int], line: Optional[int],
                    source: str) -> Iterator[Problem]:
    for name in TOTAL_FIELDS:
        if declared.get(name) != found[name]:
            yield Problem("total_mismatch", line, name, declared.get(name), found[name], source)


# --------------------------------------------------------------------------------------------------
# bank_govpay

_BEFORE, _BODY, _AFTER = 0, 1, 2


def parse_bank_govpay(lines: Iterable[str]) -> Iterator[Item]:
    """Stream a bank_govpay file (layout in the module docstring) into items."""
    state = _BEFORE
    header: Optional[Header] = None
    missing_header_told = False
    body_lines = 0  # non-blank lines between the header (or the start) and the trailer
    seen_any = False
    pay_n = pay_fen = ref_n = ref_fen = 0
    match_d = _BANK_D.fullmatch
    new = tuple.__new__  # Record(...) without the Python-level __new__ of a NamedTuple: a third faster
    n = 0
    for raw in lines:
        n += 1
        line = raw.rstrip("\r\n")
        if n == 1 and line.startswith(_BOM):
            line = line[1:]
        found = match_d(line)
        if found is not None and state == _BODY:  # the common case, kept short; the rest takes the slow path
            tp, po, ps, o, s, yuan, cents = found.groups()
            fen = int(yuan + cents)
            if fen <= MAX_FEN:
                body_lines += 1
                if tp == "1":
                    pay_n += 1
                    pay_fen += fen
                    yield new(Record, (n, PAYMENT, po, ps, o, s, fen))
                else:
                    ref_n += 1
                    ref_fen += fen
                    yield new(Record, (n, REFUND, po, ps, o, s, fen))
                continue
        if not line.strip():
            continue
        seen_any = True
        rtype = line.split("|", 1)[0].strip()
        if state == _AFTER:
            yield Malformed(n, "duplicate_trailer" if rtype == "T" else "after_trailer")
            continue
        if rtype == "H":
            if state != _BEFORE:
                body_lines += 1
                yield Malformed(n, "unexpected_header")
                continue
            got = _bank_header(n, line)
            if isinstance(got, Malformed):
                body_lines += 1
                yield got
                continue
            header = got
            state = _BODY
            yield header
            continue
        if rtype == "T":
            got = _bank_trailer(n, line)
            if isinstance(got, Malformed):
                body_lines += 1
                yield got
                continue
            if state == _BEFORE and not missing_header_told:
                missing_header_told = True
                yield Problem("missing_header", n)
            state = _AFTER
            if got != body_lines:
                yield Problem("trailer_count_mismatch", n, "Dtl_Rcrd_Num", got, body_lines)
            continue
        # a detail line (or garbage) in the body, or before any header
        if state == _BEFORE:
            state = _BODY
            if not missing_header_told:
                missing_header_told = True
                yield Problem("missing_header", n)
        body_lines += 1
        got = _bank_detail_slow(n, line)
        if isinstance(got, Record):
            if got.kind == PAYMENT:
                pay_n += 1
                pay_fen += got.amount_fen
            else:
                ref_n += 1
                ref_fen += got.amount_fen
        yield got
    if not seen_any:
        yield Problem("empty_file")
        return
    if state != _AFTER:
        yield Problem("missing_trailer", n)
    if header is not None:
        found_totals = {"payment_count": pay_n, "payment_fen": pay_fen, "refund_count": ref_n, "refund_fen": ref_fen}
        yield from _total_problems(header.totals or {}, found_totals, header.line, "file")


def _bank_header(n: int, line: str) -> Union[Header, Malformed]:
    if "\ufffd" in line:
        return Malformed(n, "not_utf8")
    fields = [f.strip() for f in line.split("|")]
    if len(fields) != 7:
        return Malformed(n, "field_count")
    _, day, batch, pay_n, pay_amt, ref_n, ref_amt = fields
    iso = _iso_of_yyyymmdd(day)
    if iso is None:
        return Malformed(n, "bad_date", "Rcncl_Dt")
    if not _BATCH_RE.fullmatch(batch):
        return Malformed(n, "bad_batch", "BtNo_cd")
    totals = {}
    for name, value, is_count, field in (("payment_count", pay_n, True, "Tran_Pay_Tol_No"),
                                         ("payment_fen", pay_amt, False, "Tran_Pay_Tol_Amt"),
                                         ("refund_count", ref_n, True, "Tran_Refund_Tol_No"),
                                         ("refund_fen", ref_amt, False, "Tran_Refund_Tol_Amt")):
        if is_count:
            if not _COUNT_RE.fullmatch(value):
                return Malformed(n, "bad_count", field)
            totals[name] = int(value)
        else:
            fen = _yuan_to_fen(value)
            if fen is None:
                return Malformed(n, "bad_amount", field)
            totals[name] = fen
    return Header(n, "bank_govpay", iso, batch, totals)


def _bank_trailer(n: int, line: str) -> Union[int, Malformed]:
    if "\ufffd" in line:
        return Malformed(n, "not_utf8")
    fields = [f.strip() for f in line.split("|")]
    if len(fields) != 2:
        return Malformed(n, "field_count")
    if not _COUNT_RE.fullmatch(fields[1]):
        return Malformed(n, "bad_count", "Dtl_Rcrd_Num")
    return int(fields[1])


def _bank_detail_slow(n: int, line: str) -> Union[Record, Malformed]:
    if "\ufffd" in line:
        return Malformed(n, "not_utf8")
    fields = [f.strip() for f in line.split("|")]
    if fields[0] != "D":
        return Malformed(n, "unknown_record_type")
    if len(fields) != 10:
        return Malformed(n, "field_count")
    _, tp, tm, po, ps, o, s, fee, unit, amt = fields
    if tp not in _BANK_KIND:
        return Malformed(n, "bad_kind", "Txn_TpCd")
    if not _TIME_RE.fullmatch(tm):
        return Malformed(n, "bad_time", "Txn_Tm")
    for value, name, required in ((po, "Py_Ordr_No", True), (ps, "Py_Sub_Ordr_No", True),
                                  (o, "Cmdty_Ordr_No", False), (s, "Cmdty_Sub_Ordr_No", False)):
        if value or required:
            if not _REF_RE.fullmatch(value):
                return Malformed(n, "bad_id", name)
    for value, name in ((fee, "Fee_Itm_Cd"), (unit, "RvPyUnt_Cd")):
        if value and not _CODE_RE.fullmatch(value):
            return Malformed(n, "bad_code", name)
    fen = _yuan_to_fen(amt)
    if fen is None:
        return Malformed(n, "bad_amount", "Txn_Amt")
    if fen > MAX_FEN:
        return Malformed(n, "amount_too_large", "Txn_Amt")
    return Record(n, _BANK_KIND[tp], po, ps, o or None, s or None, fen)


# --------------------------------------------------------------------------------------------------
# csv


def parse_csv(lines: Iterable[str]) -> Iterator[Item]:
    """Stream a csv settlement file (layout in the module docstring) into items."""
    day: Optional[str] = None
    header_line: Optional[int] = None
    started = False
    match_row = _CSV_ROW.fullmatch
    new = tuple.__new__
    n = 0
    for raw in lines:
        n += 1
        line = raw.rstrip("\r\n")
        if n == 1 and line.startswith(_BOM):
            line = line[1:]
        found = match_row(line)
        if found is not None and day is not None:  # the common case, kept short; the rest takes the slow path
            d, po, ps, o, s, kind, amt = found.groups()
            fen = int(amt)
            if d == day and fen <= MAX_FEN and ((po and ps) or (o and s)):
                yield new(Record, (n, PAYMENT if kind == PAYMENT else REFUND, po, ps, o, s, fen))
                continue
        if not line.strip():
            continue
        if not started:
            started = True
            if [c.strip() for c in line.split(",")] == list(CSV_COLUMNS):
                header_line = n
                continue
            yield Problem("missing_header", n)
        elif [c.strip() for c in line.split(",")] == list(CSV_COLUMNS):
            yield Malformed(n, "unexpected_header")
            continue
        got = _csv_row_slow(n, line)
        if isinstance(got, Malformed):
            yield got
            continue
        d, record = got
        if day is None:
            day = d
            yield Header(header_line if header_line is not None else n, "csv", d)
        if d != day:
            yield Malformed(n, "settlement_date_differs", "settlement_date")
        else:
            yield record
    if not started:
        yield Problem("empty_file")


def _csv_row_slow(n: int, line: str) -> Union[tuple[str, Record], Malformed]:
    if "\ufffd" in line:
        return Malformed(n, "not_utf8")
    if '"' in line:
        try:
            rows = list(csv.reader([line], strict=True))
        except csv.Error:
            return Malformed(n, "bad_quoting")
        fields = [f.strip() for f in rows[0]] if rows else []
    else:
        fields = [f.strip() for f in line.split(",")]
    if len(fields) != len(CSV_COLUMNS):
        return Malformed(n, "field_count")
    d, po, ps, o, s, kind, amt = fields
    if not _valid_iso_day(d):
        return Malformed(n, "bad_date", "settlement_date")
    for value, name in ((po, "platform_order_id"), (ps, "platform_sub_order_id"), (o, "order_id"),
                        (s, "sub_order_id")):
        if value and not _REF_RE.fullmatch(value):
            return Malformed(n, "bad_id", name)
    if kind not in KINDS:
        return Malformed(n, "bad_kind", "kind")
    if not _FEN_RE.fullmatch(amt):
        return Malformed(n, "bad_amount", "amount_fen")
    fen = int(amt)
    if fen > MAX_FEN:
        return Malformed(n, "amount_too_large", "amount_fen")
    if not ((po and ps) or (o and s)):
        return Malformed(n, "no_key")
    return d, Record(n, PAYMENT if kind == PAYMENT else REFUND, po or None, ps or None, o or None, s or None, fen)


# --------------------------------------------------------------------------------------------------
# writing: the platform's side, for tests, the benchmark and a local fake platform


def row_of_entry(entry: Any) -> dict:
    """The settlement row the platform would write for one ledger entry (an Entry or its dict)."""
    get = entry.get if isinstance(entry, Mapping) else (lambda name: getattr(entry, name, None))
    return {"kind": get("kind"), "platform_order_id": get("platform_order_id"),
            "platform_sub_order_id": get("platform_sub_order_id"), "order_id": get("order_id"),
            "sub_order_id": get("sub_order_id"), "amount_fen": get("amount_fen")}


def totals_of(rows: Iterable[Mapping[str, Any]]) -> dict:
    totals = _empty_totals()
    for row in rows:
        prefix = "payment" if row["kind"] == PAYMENT else "refund"
        totals[prefix + "_count"] += 1
        totals[prefix + "_fen"] += row["amount_fen"]
    return totals


def _day(settlement_date: Union[str, _dt.date]) -> _dt.date:
    return settlement_date if isinstance(settlement_date, _dt.date) else _dt.date.fromisoformat(settlement_date)


def bank_govpay_detail(row: Mapping[str, Any], settlement_date: Union[str, _dt.date]) -> str:
    """One D line (without newline); `txn_time` defaults to noon of the settlement day."""
    if not row.get("platform_order_id") or not row.get("platform_sub_order_id"):
        raise ValueError("a bank_govpay detail line needs the platform's order and sub-order numbers")
    code = "1" if row["kind"] == PAYMENT else "2"
    txn_time = row.get("txn_time") or _day(settlement_date).strftime("%Y%m%d") + "120000"
    return (f"D|{code}|{txn_time}|{row['platform_order_id']}|{row['platform_sub_order_id']}|"
            f"{row.get('order_id') or ''}|{row.get('sub_order_id') or ''}|{row.get('fee_item_code') or ''}|"
            f"{row.get('receiving_unit') or ''}|{fen_to_yuan(row['amount_fen'])}")


def csv_row(row: Mapping[str, Any], settlement_date: Union[str, _dt.date]) -> str:
    """One csv row (without newline)."""
    amount = row["amount_fen"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("amount_fen must be a non-negative integer")
    day = settlement_date if isinstance(settlement_date, str) else settlement_date.isoformat()
    return (f"{day},{row.get('platform_order_id') or ''},{row.get('platform_sub_order_id') or ''},"
            f"{row.get('order_id') or ''},{row.get('sub_order_id') or ''},{row['kind']},{amount}")


def render_bank_govpay(settlement_date: Union[str, _dt.date], rows: Iterable[Mapping[str, Any]], *,
                       batch: str = "01", totals: Optional[Mapping[str, int]] = None) -> Iterator[str]:
    """The lines (without newline) of a bank_govpay file. `rows` (see `row_of_entry`; optional `txn_time`
    yyyyMMddHHmmss, `fee_item_code`, `receiving_unit`) is read once if `totals` is given, else listed first."""
    day = _day(settlement_date)
    if totals is None:
        rows = list(rows)
        totals = totals_of(rows)
    yield (f"H|{day.strftime('%Y%m%d')}|{batch}|{totals['payment_count']}|{fen_to_yuan(totals['payment_fen'])}|"
           f"{totals['refund_count']}|{fen_to_yuan(totals['refund_fen'])}")
    count = 0
    for row in rows:
        yield bank_govpay_detail(row, day)
        count += 1
    yield f"T|{count}"


def render_csv(settlement_date: Union[str, _dt.date], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The lines (without newline) of a csv settlement file."""
    day = _day(settlement_date).isoformat()
    yield CSV_HEADER
    for row in rows:
        yield csv_row(row, day)
