"""Daily reconciliation: the two settlement file formats (streamed, never a crash on content), the
reconcile report (every file record and every ledger entry in exactly one category), the S3 reader
(moto), and properties over generated ledgers and files (hypothesis). No timing asserts here: the
figures are bench/reconcile.py's."""
from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.reconcile import (CATEGORIES, PROBLEM_CODES, REASONS, Header, Malformed, Problem, Record, fen_to_yuan,
                                  parse, parse_bank_govpay, parse_csv, reconcile, render_bank_govpay, render_csv,
                                  row_of_entry, stream_lines, totals_of)

DAY = "2024-03-15"
REGION = "cn-north-1"
RECORD_CATEGORIES = ("matched", "amount_mismatch", "missing_in_hub", "duplicate", "malformed")
LEDGER_CATEGORIES = ("matched", "amount_mismatch", "missing_in_file")


def entry(n: int, j: int = 1, kind: str = "payment", amount: int = 8000, *, platform: bool = True,
          platform_sub: Optional[bool] = None, refund_id: str = "R1") -> dict:
    """A ledger entry shaped like chalicelib.money.ledger.Entry.to_dict()."""
    order = f"C{n:04d}-E-1"
    sub = f"{order}-{j:02d}"
    suffix = "pay" if kind == "payment" else f"refund:{refund_id}"
    with_sub = platform if platform_sub is None else platform_sub
    return {"entry_id": f"{order}:{sub}:{suffix}", "order_id": order, "sub_order_id": sub, "kind": kind,
            "debit": "clearing:sz-ccb-govpay", "credit": "nontax:440300-BDC:103044", "amount_fen": amount,
            "platform_order_id": f"ZR{n:08d}" if platform else None,
            "platform_sub_order_id": f"ZR{n:08d}{j:02d}" if with_sub else None}


def items(fmt: str, lines: list[str]) -> list:
    return list(parse(fmt, lines))


def of(kind: type, found: list) -> list:
    return [x for x in found if isinstance(x, kind)]


def codes(found: list) -> list[str]:
    return [p.code for p in of(Problem, found)]


def bank(rows: list[dict], **kw) -> list[str]:
    return list(render_bank_govpay(DAY, rows, **kw))


def csv_lines(rows: list[dict]) -> list[str]:
    return list(render_csv(DAY, rows))


LEDGER = [entry(1, 1), entry(1, 2, amount=22500), entry(2, 1, amount=55000), entry(1, 1, "refund", 4000)]
ROWS = [row_of_entry(e) for e in LEDGER]


# --------------------------------------------------------------------------------------------------
# bank_govpay


def test_bank_round_trip_layout_and_header():
    lines = bank(ROWS)
    assert lines[0] == "H|20240315|01|3|855.00|1|40.00"
    assert lines[1] == "D|1|20240315120000|ZR00000001|ZR0000000101|C0001-E-1|C0001-E-1-01|||80.00"
    assert lines[-1] == "T|4"
    found = items("bank_govpay", lines)
    assert found[0] == Header(1, "bank_govpay", DAY, "01", {"payment_count": 3, "payment_fen": 85500,
                                                             "refund_count": 1, "refund_fen": 4000})
    records = of(Record, found)
    assert [(r.kind, r.platform_sub_order_id, r.sub_order_id, r.amount_fen) for r in records] == [
        (x["kind"], x["platform_sub_order_id"], x["sub_order_id"], x["amount_fen"]) for x in ROWS]
    assert [r.line for r in records] == [2, 3, 4, 5]
    assert not of(Problem, found) and not of(Malformed, found)


def test_the_documented_examples_parse_cleanly():
    from chalicelib.reconcile import parsers

    doc = parsers.__doc__
    for fmt, pattern in (("bank_govpay", r"^    ([HDT]\|\d.*)$"), ("csv", r"^    (settlement_date,.*|\d{4}-.*)$")):
        lines = re.findall(pattern, doc, re.M)
        found = items(fmt, lines)
        assert of(Record, found) and not of(Malformed, found) and not of(Problem, found), (fmt, lines)


def test_bank_accepts_crlf_bom_blank_lines_spaces_and_empty_optional_fields():
    lines = bank(ROWS)
    lines = ["\ufeff" + lines[0] + "\r\n"] + [x + "\r\n" for x in lines[1:3]] + ["", "   "] + lines[3:]
    lines[2] = lines[2].replace("|C0001-E-1|C0001-E-1-02|", "| C0001-E-1 |  |")  # spaces; no sub-order of ours
    found = items("bank_govpay", lines)
    assert not of(Problem, found) and not of(Malformed, found)
    second = of(Record, found)[1]
    assert (second.order_id, second.sub_order_id, second.amount_fen) == ("C0001-E-1", None, 22500)


@pytest.mark.parametrize("line, reason, field", [
    ("D|3|20240315120000|ZR1|ZR101|C1|C1-1|||80.00", "bad_kind", "Txn_TpCd"),
    ("D|1|2024031512|ZR1|ZR101|C1|C1-1|||80.00", "bad_time", "Txn_Tm"),
    ("D|1|20240315120000||ZR101|C1|C1-1|||80.00", "bad_id", "Py_Ordr_No"),
    ("D|1|20240315120000|ZR1|ZR 101|C1|C1-1|||80.00", "bad_id", "Py_Sub_Ordr_No"),
    ("D|1|20240315120000|ZR1|ZR101|C1#|C1-1|||80.00", "bad_id", "Cmdty_Ordr_No"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|fee:1||80.00", "bad_code", "Fee_Itm_Cd"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||80", "bad_amount", "Txn_Amt"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||80.0", "bad_amount", "Txn_Amt"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||-80.00", "bad_amount", "Txn_Amt"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||8e1", "bad_amount", "Txn_Amt"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||\uff18\uff10.00", "bad_amount", "Txn_Amt"),  # fullwidth digits
    ("D|1|2024031512000\u0660|ZR1|ZR101|C1|C1-1|||80.00", "bad_time", "Txn_Tm"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|||99999999999999.99", "amount_too_large", "Txn_Amt"),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1|80.00", "field_count", None),
    ("D|1|20240315120000|ZR1|ZR101|C1|C1-1||||80.00", "field_count", None),
    ("X|1|20240315120000|ZR1|ZR101|C1|C1-1|||80.00", "unknown_record_type", None),
    ("80.00", "unknown_record_type", None),
    ("D|1|20240315120000|ZR1|ZR1\ufffd01|C1|C1-1|||80.00", "not_utf8", None),
])
def test_bank_malformed_detail_lines_are_reported_and_the_rest_is_read(line, reason, field):
    lines = bank(ROWS)
    lines.insert(2, line)
    lines[-1] = "T|5"
    found = items("bank_govpay", lines)
    assert of(Malformed, found) == [Malformed(3, reason, field)]
    assert len(of(Record, found)) == 4
    assert codes(found) == []  # the header's totals are those of the 4 good lines, the trailer counts 5


def test_bank_wrong_header_totals_are_each_reported():
    lines = bank(ROWS, totals={"payment_count": 3, "payment_fen": 85501, "refund_count": 2, "refund_fen": 4000})
    found = items("bank_govpay", lines)
    problems = of(Problem, found)
    assert [(p.code, p.field, p.declared, p.found, p.line, p.source) for p in problems] == [
        ("total_mismatch", "payment_fen", 85501, 85500, 1, "file"),
        ("total_mismatch", "refund_count", 2, 1, 1, "file")]
    assert len(of(Record, found)) == 4


def test_bank_malformed_detail_line_also_shows_in_the_totals():
    lines = bank(ROWS)
    lines[2] = lines[2].replace("225.00", "225.0")
    found = items("bank_govpay", lines)
    assert of(Malformed, found) == [Malformed(3, "bad_amount", "Txn_Amt")]
    assert [(p.field, p.declared, p.found) for p in of(Problem, found)] == [
        ("payment_count", 3, 2), ("payment_fen", 85500, 63000)]


def test_bank_missing_trailer_is_a_truncated_file():
    lines = bank(ROWS)[:-2]
    found = items("bank_govpay", lines)
    assert codes(found) == ["missing_trailer", "total_mismatch", "total_mismatch"]
    assert of(Problem, found)[0].line == 4
    assert len(of(Record, found)) == 3


def test_bank_trailer_count_mismatch():
    lines = bank(ROWS)
    lines[-1] = "T|7"
    found = items("bank_govpay", lines)
    assert [(p.code, p.declared, p.found) for p in of(Problem, found)] == [("trailer_count_mismatch", 7, 4)]


@pytest.mark.parametrize("trailer, reason, field", [("T|x", "bad_count", "Dtl_Rcrd_Num"),
                                                     ("T|4|1", "field_count", None)])
def test_bank_malformed_trailer_is_malformed_and_missing(trailer, reason, field):
    lines = bank(ROWS)
    lines[-1] = trailer
    found = items("bank_govpay", lines)
    assert of(Malformed, found) == [Malformed(6, reason, field)]
    assert codes(found) == ["missing_trailer"]


def test_bank_missing_header_records_still_read():
    lines = bank(ROWS)[1:]
    found = items("bank_govpay", lines)
    assert not of(Header, found)
    assert codes(found) == ["missing_header"]
    assert len(of(Record, found)) == 4


@pytest.mark.parametrize("header, reason, field", [
    ("H|20240231|01|3|855.00|1|40.00", "bad_date", "Rcncl_Dt"),
    ("H|2024-03-15|01|3|855.00|1|40.00", "bad_date", "Rcncl_Dt"),
    ("H|20240315|1|3|855.00|1|40.00", "bad_batch", "BtNo_cd"),
    ("H|20240315|01|three|855.00|1|40.00", "bad_count", "Tran_Pay_Tol_No"),
    ("H|20240315|01|3|855|1|40.00", "bad_amount", "Tran_Pay_Tol_Amt"),
    ("H|20240315|01|3|855.00|1|40.00|x", "field_count", None),
])
def test_bank_malformed_header(header, reason, field):
    lines = bank(ROWS)
    lines[0] = header
    found = items("bank_govpay", lines)
    assert of(Malformed, found) == [Malformed(1, reason, field)]
    assert codes(found) == ["missing_header", "trailer_count_mismatch"]  # the bad header counts as a body line
    assert len(of(Record, found)) == 4


def test_bank_second_header_lines_after_trailer_and_second_trailer():
    lines = bank(ROWS)
    lines.insert(3, lines[0])
    lines[-1] = "T|5"
    lines += [lines[1], "T|5", ""]
    found = items("bank_govpay", lines)
    assert of(Malformed, found) == [Malformed(4, "unexpected_header"), Malformed(8, "after_trailer"),
                                    Malformed(9, "duplicate_trailer")]
    assert codes(found) == []
    assert len(of(Record, found)) == 4


def test_bank_empty_file():
    assert codes(items("bank_govpay", [])) == ["empty_file"]
    assert codes(items("bank_govpay", ["", "\r\n"])) == ["empty_file"]


def test_bank_writer_refuses_what_the_format_cannot_say():
    with pytest.raises(ValueError):
        bank([row_of_entry(entry(1, platform=False))])
    with pytest.raises(ValueError):
        fen_to_yuan(-1)
    assert fen_to_yuan(0) == "0.00" and fen_to_yuan(7) == "0.07" and fen_to_yuan(123456) == "1234.56"


# --------------------------------------------------------------------------------------------------
# csv


def test_csv_round_trip():
    lines = csv_lines(ROWS)
    assert lines[0] == "settlement_date,platform_order_id,platform_sub_order_id,order_id,sub_order_id,kind,amount_fen"
    assert lines[1] == "2024-03-15,ZR00000001,ZR0000000101,C0001-E-1,C0001-E-1-01,payment,8000"
    found = items("csv", lines)
    assert found[0] == Header(1, "csv", DAY)
    assert [(r.line, r.kind, r.platform_sub_order_id, r.amount_fen) for r in of(Record, found)] == [
        (i + 2, x["kind"], x["platform_sub_order_id"], x["amount_fen"]) for i, x in enumerate(ROWS)]
    assert not of(Problem, found) and not of(Malformed, found)


@pytest.mark.parametrize("line, reason, field", [
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment,80.00", "bad_amount", "amount_fen"),
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment,-1", "bad_amount", "amount_fen"),
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment,\u0668\u0660\u0660\u0660", "bad_amount", "amount_fen"),  # Arabic-Indic
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment,9007199254740992", "amount_too_large", "amount_fen"),
    ("2024-03-15,ZR1,ZR101,C1,C1-1,pay,8000", "bad_kind", "kind"),
    ("2024-03-16,ZR1,ZR101,C1,C1-1,payment,8000", "settlement_date_differs", "settlement_date"),
    ("2024-02-30,ZR1,ZR101,C1,C1-1,payment,8000", "bad_date", "settlement_date"),
    ("15/03/2024,ZR1,ZR101,C1,C1-1,payment,8000", "bad_date", "settlement_date"),
    ("2024-03-15,ZR1,,C1,,payment,8000", "no_key", None),
    ("2024-03-15,,,,,refund,8000", "no_key", None),
    ("2024-03-15,ZR1,ZR|101,C1,C1-1,payment,8000", "bad_id", "platform_sub_order_id"),
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment", "field_count", None),
    ("2024-03-15,ZR1,ZR101,C1,C1-1,payment,8000,", "field_count", None),
    ('2024-03-15,"ZR1,ZR101,C1,C1-1,payment,8000', "bad_quoting", None),
    ("2024-03-15,ZR1,ZR\ufffd101,C1,C1-1,payment,8000", "not_utf8", None),
    ("settlement_date,platform_order_id,platform_sub_order_id,order_id,sub_order_id,kind,amount_fen",
     "unexpected_header", None),
])
def test_csv_malformed_rows(line, reason, field):
    lines = csv_lines(ROWS)
    lines.insert(3, line)
    found = items("csv", lines)
    assert of(Malformed, found) == [Malformed(4, reason, field)]
    assert len(of(Record, found)) == 4 and codes(found) == []


def test_csv_fallback_ids_quoting_spaces_and_crlf():
    lines = [*csv_lines([]), '2024-03-15,,,"C1","C1-1",refund,40\r\n', "2024-03-15 , ZR1 , ZR101 ,,, payment , 8000",
             "2024-03-15,ZR2,,C2,C2-1,payment,0"]
    records = of(Record, items("csv", lines))
    assert records == [Record(2, "refund", None, None, "C1", "C1-1", 40),
                       Record(3, "payment", "ZR1", "ZR101", None, None, 8000),
                       Record(4, "payment", "ZR2", None, "C2", "C2-1", 0)]


def test_csv_missing_header_rows_still_read_and_empty_file():
    found = items("csv", csv_lines(ROWS)[1:])
    assert codes(found) == ["missing_header"]
    assert found[1] == Header(1, "csv", DAY)
    assert len(of(Record, found)) == 4
    assert codes(items("csv", [])) == ["empty_file"]
    assert codes(items("csv", csv_lines([]))) == []  # a day without payments: header row only


def test_unknown_format():
    with pytest.raises(ValueError):
        parse("xml", [])


def test_parsers_stream_one_line_at_a_time():
    pulled = []

    def source(lines):
        for line in lines:
            pulled.append(line)
            yield line

    for parser, lines in ((parse_bank_govpay, bank(ROWS)), (parse_csv, csv_lines(ROWS))):
        pulled.clear()
        stream = parser(source(lines + lines[1:2] * 1000))
        first_two = [next(stream), next(stream)]
        assert isinstance(first_two[1], Record)
        assert len(pulled) == 2  # the second line was read for the first record, no more


# --------------------------------------------------------------------------------------------------
# reconcile


def run(fmt: str, rows: list[dict], ledger: list, **kw) -> dict:
    lines = bank(rows) if fmt == "bank_govpay" else csv_lines(rows)
    report = reconcile(parse(fmt, lines), ledger, max_items=kw.pop("max_items", None),
                       list_matched=kw.pop("list_matched", True), **kw)
    json.dumps(report)
    return report


def counts(report: dict) -> dict:
    return {k: v for k, v in report["summary"].items() if v}


@pytest.mark.parametrize("fmt", ["bank_govpay", "csv"])
def test_file_from_the_ledger_is_all_matched(fmt):
    report = run(fmt, ROWS, LEDGER)
    assert report["ok"] is True
    assert counts(report) == {"records": 4, "ledger_entries": 4, "matched": 4}
    assert report["matched"]["amount_fen"] == 89500
    assert report["matched"]["by_kind"] == {"payment": {"count": 3, "amount_fen": 85500},
                                            "refund": {"count": 1, "amount_fen": 4000}}
    assert report["file"]["totals"] == report["ledger"]["totals"] == totals_of(ROWS)
    assert {x["entry_id"] for x in report["matched"]["items"]} == {e["entry_id"] for e in LEDGER}
    assert report["format"] == fmt and report["settlement_date"] == DAY


@pytest.mark.parametrize("fmt", ["bank_govpay", "csv"])
def test_every_category_at_once(fmt):
    ledger = [entry(1, 1), entry(1, 2), entry(2, 1), entry(3, 1), entry(4, 1, "refund", 500)]
    rows = [row_of_entry(e) for e in ledger]
    rows[1] = {**rows[1], "amount_fen": 7999}  # amount mismatch
    rows[2:3] = [rows[2], rows[2]]  # duplicate
    del rows[4]  # entry 3-1 missing in file
    rows.append(row_of_entry(entry(9, 1, amount=100)))  # missing in hub
    rows.append(row_of_entry(entry(9, 1, amount=100)))  # ... and its duplicate
    lines = bank(rows) if fmt == "bank_govpay" else csv_lines(rows)
    lines.insert(2, "garbage")
    if fmt == "bank_govpay":
        lines[-1] = f"T|{len(lines) - 2}"
    report = reconcile(parse(fmt, lines), ledger, max_items=None)
    json.dumps(report)
    assert report["ok"] is False and report["problems"] == []
    assert counts(report) == {"records": 8, "ledger_entries": 5, "matched": 3, "amount_mismatch": 1,
                              "missing_in_hub": 1, "missing_in_file": 1, "duplicate": 2, "malformed": 1}
    [mm] = report["amount_mismatch"]["items"]
    assert (mm["entry_id"], mm["file_amount_fen"], mm["ledger_amount_fen"], mm["line"]) == (
        ledger[1]["entry_id"], 7999, 8000, 4)
    assert report["amount_mismatch"]["amount_fen"] == 7999 and report["amount_mismatch"]["ledger_amount_fen"] == 8000
    assert [(d["line"], d["first_line"], d["entry_id"]) for d in report["duplicate"]["items"]] == [
        (6, 5, ledger[2]["entry_id"]), (9, 8, None)]
    assert [x["entry_id"] for x in report["missing_in_file"]["items"]] == [ledger[3]["entry_id"]]
    assert [(x["line"], x["platform_order_id"]) for x in report["missing_in_hub"]["items"]] == [(8, "ZR00000009")]
    assert report["malformed"]["items"] == [{"line": 3, "reason": "unknown_record_type" if fmt == "bank_govpay"
                                             else "field_count", "field": None}]
    assert report["matched"]["items"] == []  # not listed unless asked
    assert report["matched"]["truncated"] is True


def test_wrong_amount_first_then_right_amount_is_mismatch_then_duplicate():
    ledger = [entry(1)]
    rows = [{**row_of_entry(ledger[0]), "amount_fen": 1}, row_of_entry(ledger[0])]
    report = run("csv", rows, ledger)
    assert counts(report) == {"records": 2, "ledger_entries": 1, "amount_mismatch": 1, "duplicate": 1}


@pytest.mark.parametrize("fmt", ["bank_govpay", "csv"])
def test_partial_refunds_under_one_key_match_by_amount_in_any_order(fmt):
    ledger = [entry(1), entry(1, kind="refund", amount=1000, refund_id="R1"),
              entry(1, kind="refund", amount=3000, refund_id="R2")]
    rows = [row_of_entry(ledger[2]), row_of_entry(ledger[0]), row_of_entry(ledger[1])]
    report = run(fmt, rows, ledger)
    assert report["ok"] and report["summary"]["matched"] == 3
    pairs = {(x["line"], x["entry_id"]) for x in report["matched"]["items"]}
    line_of_first = 2
    assert (line_of_first, ledger[2]["entry_id"]) in pairs
    # a third refund record of that key: all its entries are taken
    report = run(fmt, rows + [row_of_entry(ledger[1])], ledger)
    assert counts(report) == {"records": 4, "ledger_entries": 3, "matched": 3, "duplicate": 1}
    # a refund amount nobody booked: paired with the open entry of the key, as a mismatch
    rows2 = [row_of_entry(ledger[0]), row_of_entry(ledger[1]), {**row_of_entry(ledger[2]), "amount_fen": 2999}]
    report = run(fmt, rows2, ledger)
    assert report["amount_mismatch"]["items"][0]["entry_id"] == ledger[2]["entry_id"]


def test_fallback_to_our_ids_when_the_ledger_lacks_the_platform_sub_order():
    ledger = [entry(1, platform_sub=False), entry(1, 2, platform=False)]
    rows = [row_of_entry(entry(1)), row_of_entry(entry(1, 2))]  # the platform's file has its ids
    for fmt in ("bank_govpay", "csv"):
        report = run(fmt, rows, ledger)
        assert report["ok"], counts(report)


def test_csv_without_platform_ids_matches_entries_that_have_them():
    ledger = [entry(1), entry(2)]
    rows = [{**row_of_entry(e), "platform_order_id": None, "platform_sub_order_id": None} for e in ledger]
    report = run("csv", rows, ledger)
    assert report["ok"], counts(report)
    # ... and a record with platform ids after one without, for the same entry, is its duplicate
    report = run("csv", rows + [row_of_entry(ledger[0])], ledger)
    assert counts(report)["duplicate"] == 1


def test_different_platform_ids_are_not_matched_through_our_ids():
    ledger = [entry(1)]
    row = {**row_of_entry(ledger[0]), "platform_sub_order_id": "ZR0000000199"}
    report = run("bank_govpay", [row], ledger)
    assert counts(report) == {"records": 1, "ledger_entries": 1, "missing_in_hub": 1, "missing_in_file": 1}


def test_kind_is_part_of_the_key():
    ledger = [entry(1)]
    row = {**row_of_entry(ledger[0]), "kind": "refund"}
    report = run("csv", [row], ledger)
    assert counts(report) == {"records": 1, "ledger_entries": 1, "missing_in_hub": 1, "missing_in_file": 1}


def test_file_problems_and_the_settlement_ready_notice_are_in_the_report():
    lines = bank(ROWS)[:-1]  # no trailer
    notice_totals = {"payment_count": 3, "payment_fen": 85500, "refund_count": 1, "refund_fen": 4001}
    report = reconcile(parse("bank_govpay", lines), LEDGER, declared_totals=notice_totals, settlement_date="2024-03-16")
    assert report["ok"] is False and report["summary"]["matched"] == 4
    assert [(p["code"], p["field"], p["declared"], p["found"], p["source"]) for p in report["problems"]] == [
        ("missing_trailer", None, None, None, "file"),
        ("settlement_date_mismatch", "settlement_date", "2024-03-16", DAY, "notice"),
        ("total_mismatch", "refund_fen", 4001, 4000, "notice")]
    report = reconcile(parse("csv", csv_lines(ROWS)), LEDGER, declared_totals=totals_of(ROWS), settlement_date=DAY)
    assert report["ok"] is True


def test_lists_are_bounded_counts_are_not():
    ledger = [entry(n) for n in range(50)]
    rows = [row_of_entry(entry(n + 100)) for n in range(30)]
    report = reconcile(parse("csv", csv_lines(rows)), ledger, max_items=5, list_matched=True)
    for name, count in (("missing_in_file", 50), ("missing_in_hub", 30)):
        assert report[name]["count"] == count and len(report[name]["items"]) == 5
        assert report[name]["truncated"] is True
    assert report["missing_in_file"]["amount_fen"] == 50 * 8000


def test_unknown_keys_beyond_the_tracking_limit_are_flagged():
    rows = [row_of_entry(entry(n)) for n in range(5)] * 2
    report = reconcile(parse("csv", csv_lines(rows)), [], max_tracked_unknown=3)
    assert report["summary"]["missing_in_hub"] == 7 and report["summary"]["duplicate"] == 3
    assert report["limits"]["unknown_keys_overflow"] is True
    assert [p["code"] for p in report["problems"]] == ["unknown_keys_overflow"]


@dataclass(frozen=True)
class EntryObject:
    """Like chalicelib.money.ledger.Entry (a frozen dataclass)."""

    entry_id: str
    order_id: str
    sub_order_id: str
    kind: str
    debit: str
    credit: str
    amount_fen: int
    platform_order_id: Optional[str]
    platform_sub_order_id: Optional[str]


def test_entry_objects_and_a_one_shot_iterator_of_entries():
    objects = [EntryObject(**e) for e in LEDGER]
    report = reconcile(parse("csv", csv_lines(ROWS)), iter(objects), list_matched=True)
    assert report["ok"]
    report = reconcile(parse("csv", csv_lines(ROWS[:1])), objects)
    assert {x["entry_id"] for x in report["missing_in_file"]["items"]} == {e["entry_id"] for e in LEDGER[1:]}
    assert report["missing_in_file"]["items"][0] == {k: v for k, v in asdict(objects[1]).items()
                                                     if k not in ("debit", "credit")}


@pytest.mark.parametrize("change", [{"kind": "pay"}, {"amount_fen": -1}, {"amount_fen": 1.5}, {"amount_fen": True},
                                    {"order_id": None}, {"sub_order_id": ""}, {"amount_fen": 2**63}])
def test_a_ledger_entry_the_hub_could_not_have_made_is_a_programming_error(change):
    with pytest.raises(ValueError):
        reconcile(iter(()), [{**entry(1), **change}])


def test_hand_made_records_without_any_key_are_malformed():
    report = reconcile(iter([Record(1, "payment", "ZR1", None, None, "S", 5)]), [])
    assert counts(report) == {"records": 1, "malformed": 1}


def test_empty_everything():
    report = reconcile(parse("csv", csv_lines([])), [])
    assert report["ok"] is True and counts(report) == {}
    report = reconcile(parse("bank_govpay", []), [])
    assert report["ok"] is False and [p["code"] for p in report["problems"]] == ["empty_file"]


# --------------------------------------------------------------------------------------------------
# S3 (moto)


@pytest.fixture
def s3_bucket(monkeypatch):
    from moto import mock_aws

    from chalicelib.settings import reset_settings

    monkeypatch.delenv("HUB_AWS_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    with mock_aws():
        reset_settings()
        from chalicelib import aws

        aws.client("s3").create_bucket(Bucket="settlements", CreateBucketConfiguration={"LocationConstraint": REGION})
        yield "settlements"
    reset_settings()


def put(bucket: str, key: str, body: bytes) -> None:
    from chalicelib import aws

    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


@pytest.mark.parametrize("chunk_size", [1, 7, 64 * 1024])
def test_stream_lines_from_s3(s3_bucket, chunk_size):
    body = "\ufeff第一行|x\r\nsecond\n\nthird\r\nlast".encode() + b"\nbad \xff\xfe bytes\n"
    put(s3_bucket, "2024-03-15.txt", body)
    lines = list(stream_lines(s3_bucket, "2024-03-15.txt", chunk_size=chunk_size))
    assert lines == ["\ufeff第一行|x", "second", "", "third", "last", "bad \ufffd\ufffd bytes"]


def test_reconcile_a_file_streamed_from_s3(s3_bucket):
    lines = bank(ROWS)
    lines.insert(3, "D|1|20240315120000|ZR1|ZR101|C1|C1-1|||\xff80.00")
    lines[-1] = "T|5"
    body = ("\r\n".join(lines) + "\r\n").encode("utf-8").replace("\xff".encode("utf-8"), b"\xff")
    put(s3_bucket, "govpay/20240315/01.txt", body)
    report = reconcile(parse("bank_govpay", stream_lines(s3_bucket, "govpay/20240315/01.txt", chunk_size=16)), LEDGER,
                       declared_totals=totals_of(ROWS), settlement_date=DAY)
    assert counts(report) == {"records": 5, "ledger_entries": 4, "matched": 4, "malformed": 1}
    assert report["malformed"]["items"] == [{"line": 4, "reason": "not_utf8", "field": None}]
    assert report["problems"] == []


def test_stream_lines_missing_object_raises_at_the_call(s3_bucket):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        stream_lines(s3_bucket, "nope.txt")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"


def test_stream_lines_closes_the_body_when_the_reader_stops(s3_bucket, monkeypatch):
    put(s3_bucket, "k", b"a\nb\nc\n")
    closed = []
    from botocore.response import StreamingBody

    original = StreamingBody.close
    monkeypatch.setattr(StreamingBody, "close", lambda self: (closed.append(True), original(self)))
    lines = stream_lines(s3_bucket, "k")
    assert next(lines) == "a"
    lines.close()
    assert closed == [True]
    assert list(stream_lines(s3_bucket, "k")) == ["a", "b", "c"] and closed == [True, True]


# --------------------------------------------------------------------------------------------------
# properties

_ORDERS = ("C1", "C2", "C3")


@st.composite
def ledgers(draw, max_size: int = 20) -> list[dict]:
    """Small id space on purpose: keys collide (several refunds of one line, same key twice)."""
    out = []
    for k in range(draw(st.integers(0, max_size))):
        order = draw(st.sampled_from(_ORDERS))
        sub = f"{order}-{draw(st.integers(1, 3))}"
        kind = draw(st.sampled_from(("payment", "refund")))
        platform = draw(st.sampled_from(("both", "order_only", "none")))
        out.append({"entry_id": f"{order}:{sub}:{kind}:{k}", "order_id": order, "sub_order_id": sub, "kind": kind,
                    "debit": "clearing:p", "credit": "nontax:u:c",
                    "amount_fen": draw(st.integers(0, 10**6) | st.sampled_from([0, 8000, 8001])),
                    "platform_order_id": "P" + order if platform != "none" else None,
                    "platform_sub_order_id": "P" + sub if platform == "both" else None})
    return out


def platform_row(e: dict) -> dict:
    """What the platform writes: its own ids always (bank), ours too."""
    row = row_of_entry(e)
    return {**row, "platform_order_id": row["platform_order_id"] or "X" + row["order_id"],
            "platform_sub_order_id": row["platform_sub_order_id"] or "X" + row["sub_order_id"]}


def render(fmt: str, rows: list[dict]) -> list[str]:
    return bank(rows) if fmt == "bank_govpay" else csv_lines(rows)


BAD_LINES = ["garbage", "D|9|x", "2024-03-15,,,,,payment,1", "H|20240315|01|0|0.00|0|0.00", "T|0",
             "D|1|20240315120000|PC1|PC1-1|C1|C1-1|||1.5", "2024-03-15,PC1,PC1-1,C1,C1-1,payment,-5", "\ufffd",
             ",,,,,,", "D|1|20240315120000|PC1|PC1-1|C1|C1-1|||80.00|extra"]


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers(), fmt=st.sampled_from(["bank_govpay", "csv"]), data=st.data())
def test_property_every_record_and_every_entry_lands_in_exactly_one_category(ledger, fmt, data):
    rows = []
    for e in ledger:
        op = data.draw(st.sampled_from(["keep", "keep", "keep", "drop", "dup", "amount", "kind"]))
        row = platform_row(e) if fmt == "bank_govpay" or data.draw(st.booleans()) else row_of_entry(e)
        if op == "drop":
            continue
        if op == "amount":
            row = {**row, "amount_fen": row["amount_fen"] + data.draw(st.integers(1, 100))}
        if op == "kind":
            row = {**row, "kind": "refund" if row["kind"] == "payment" else "payment"}
        rows += [row, row] if op == "dup" else [row]
    for _ in range(data.draw(st.integers(0, 3))):  # records nobody booked
        rows.append({"kind": data.draw(st.sampled_from(["payment", "refund"])), "platform_order_id": "PZ9",
                     "platform_sub_order_id": "PZ9-1", "order_id": "Z9", "sub_order_id": "Z9-1",
                     "amount_fen": data.draw(st.integers(0, 100))})
    rows = data.draw(st.permutations(rows))
    lines = render(fmt, rows)
    for _ in range(data.draw(st.integers(0, 3))):
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(BAD_LINES)))
    if data.draw(st.booleans()) and lines:
        del lines[data.draw(st.integers(0, len(lines) - 1))]  # header, trailer or a record gone
    found = list(parse(fmt, lines))
    report = reconcile(iter(found), ledger, max_items=None, list_matched=True)
    json.dumps(report)

    record_lines = sorted(x.line for x in found if isinstance(x, (Record, Malformed)))
    reported_lines = sorted(item["line"] for name in RECORD_CATEGORIES for item in report[name]["items"])
    assert reported_lines == record_lines  # each record line exactly once
    assert report["summary"]["records"] == len(record_lines) == sum(report[n]["count"] for n in RECORD_CATEGORIES)
    reported_entries = sorted(item["entry_id"] for name in LEDGER_CATEGORIES for item in report[name]["items"])
    assert reported_entries == sorted(e["entry_id"] for e in ledger)  # each ledger entry exactly once
    assert sum(report[n]["count"] for n in LEDGER_CATEGORIES) == len(ledger)
    # amounts add up on both sides
    ledger_fen = sum(e["amount_fen"] for e in ledger)
    assert (report["matched"]["amount_fen"] + report["amount_mismatch"]["ledger_amount_fen"]
            + report["missing_in_file"]["amount_fen"]) == ledger_fen
    file_fen = sum(r.amount_fen for r in found if isinstance(r, Record))
    assert sum(report[n]["amount_fen"] for n in RECORD_CATEGORIES) == file_fen
    totals = report["file"]["totals"]
    assert totals["payment_fen"] + totals["refund_fen"] == file_fen
    for name in CATEGORIES:
        by_kind = report[name]["by_kind"]
        if name != "malformed":
            assert by_kind["payment"]["count"] + by_kind["refund"]["count"] == report[name]["count"]
            assert by_kind["payment"]["amount_fen"] + by_kind["refund"]["amount_fen"] == report[name]["amount_fen"]
    # a matched pair really is the same line: key and amount
    entries = {e["entry_id"]: e for e in ledger}
    records = {r.line: r for r in found if isinstance(r, Record)}
    for item in report["matched"]["items"]:
        e, r = entries[item["entry_id"]], records[item["line"]]
        assert (e["kind"], e["order_id"], e["sub_order_id"], e["amount_fen"]) == (r.kind, r.order_id, r.sub_order_id,
                                                                                  r.amount_fen)


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers(max_size=30), fmt=st.sampled_from(["bank_govpay", "csv"]), data=st.data())
def test_property_a_file_made_from_the_ledger_is_all_matched(ledger, fmt, data):
    rows = [platform_row(e) if fmt == "bank_govpay" else row_of_entry(e) for e in ledger]
    lines = render(fmt, data.draw(st.permutations(rows)))
    if data.draw(st.booleans()):
        lines = [x + "\r\n" for x in lines]
    report = reconcile(parse(fmt, lines), ledger, declared_totals=totals_of(rows),
                       settlement_date=DAY if ledger or fmt == "bank_govpay" else None)
    assert report["ok"] is True, (report["summary"], report["problems"])
    assert report["summary"]["matched"] == len(ledger)
    assert report["matched"]["amount_fen"] == sum(e["amount_fen"] for e in ledger)
    assert report["file"]["totals"] == report["ledger"]["totals"]


_TEXT = st.text(alphabet=st.sampled_from(list("D|HT,.-:0123456789 aZ\ufffd\ufeff\r\"")) | st.characters(), max_size=60)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_TEXT | st.sampled_from(BAD_LINES + bank(ROWS) + csv_lines(ROWS)), max_size=15),
       fmt=st.sampled_from(["bank_govpay", "csv"]))
def test_property_any_text_is_reported_never_a_crash(lines, fmt):
    found = list(parse(fmt, lines))
    per_line = [x.line for x in found if isinstance(x, (Record, Malformed))]
    assert len(per_line) == len(set(per_line))  # at most one item per line
    assert all(1 <= n <= len(lines) for n in per_line)
    assert {x.reason for x in found if isinstance(x, Malformed)} <= set(REASONS)
    report = reconcile(iter(found), LEDGER, max_items=None)
    json.dumps(report)
    assert report["summary"]["records"] == len(per_line)
    assert {p["code"] for p in report["problems"]} <= set(PROBLEM_CODES)


def test_generated_files_survive_a_shuffle_of_their_own_lines():
    """Detail lines in any order: same report (the header and trailer stay where they are)."""
    rng = random.Random(7)
    ledger = [entry(n, j) for n in range(20) for j in (1, 2)]
    lines = bank([row_of_entry(e) for e in ledger])
    body = lines[1:-1]
    rng.shuffle(body)
    report = reconcile(parse("bank_govpay", [lines[0], *body, lines[-1]]), ledger)
    assert report["ok"] and report["summary"]["matched"] == 40
