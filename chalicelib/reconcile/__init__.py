"""Daily reconciliation (对账): the payment platform's settlement file against the hub's ledger.

- `parsers`: streaming parsers of the two file formats (`bank_govpay`, `csv`; layouts in its docstring),
  and writers of the same formats (the platform's side: tests, benchmark, a local fake platform).
- `report`: `reconcile(items, ledger_entries, ...) -> dict`, every record and entry in exactly one category.
- `reader`: `stream_lines(bucket, key)`, the file from S3 as a stream of text lines.

Pure functions except `stream_lines`; nothing here holds the file in memory.
"""
from __future__ import annotations

from chalicelib.reconcile.parsers import (CSV_COLUMNS, FORMATS, PROBLEM_CODES, REASONS, Header, Malformed, Problem,
                                          Record, bank_govpay_detail, csv_row, fen_to_yuan, parse, parse_bank_govpay,
                                          parse_csv, render_bank_govpay, render_csv, row_of_entry, totals_of)
from chalicelib.reconcile.reader import stream_lines
from chalicelib.reconcile.report import CATEGORIES, reconcile

__all__ = ["CATEGORIES", "CSV_COLUMNS", "FORMATS", "PROBLEM_CODES", "REASONS", "Header", "Malformed", "Problem",
           "Record", "bank_govpay_detail", "csv_row", "fen_to_yuan", "parse", "parse_bank_govpay", "parse_csv",
           "reconcile", "render_bank_govpay", "render_csv", "row_of_entry", "stream_lines", "totals_of"]
