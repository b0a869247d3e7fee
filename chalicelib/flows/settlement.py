"""Daily reconciliation (对账): `settlement.ready` → the platform's file, streamed from S3, against
the ledger entries the hub booked for that platform on that day → a stored report operators read.

The file arrives as a document (claim check): the door refuses a notice whose document is not
verified (hash and size checked against what was uploaded), so nothing unverified is reconciled.
"""
from __future__ import annotations

import json
import time
from typing import Any

from chalicelib import aws, cases
from chalicelib.flows import checks, handles
from chalicelib.observability import logger, metrics
from chalicelib.settings import get_settings

REPORTS_LIST = "report:settlement"


def ledger_list_key(platform_partner_id: str, day: str) -> str:
    """The operator-list key under which every ledger entry of a platform's settlement day is listed."""
    return f"ledger:{platform_partner_id}:{day}"


def settlement_day(iso_time: str) -> str:
    """The platform's settlement day of a payment or refund: its date in China time, as yyyy-mm-dd."""
    from datetime import datetime, timedelta, timezone

    moment = datetime.fromisoformat(iso_time).astimezone(timezone(timedelta(hours=8)))
    return moment.date().isoformat()


@checks("settlement.ready")
def _check_document(partner: Any, data: dict[str, Any]) -> None:
    from chalicelib import documents

    documents.require_verified(data["file"], field="data.file", partner_id=partner.id)
    return None


@handles("settlement.ready")
def on_settlement_ready(stored: Any) -> None:
    from chalicelib import documents, reconcile

    data = stored.data
    document = documents.get(data["file"]["document_id"])
    entries = cases.listed(ledger_list_key(stored.partner_id, data["settlement_date"]), limit=10_000_000)
    lines = reconcile.stream_lines(get_settings().documents_bucket, document.key,
                                   version_id=document.object_version)
    report = reconcile.reconcile(reconcile.parse(data["format"], lines), entries,
                                 declared_totals=data.get("totals"),
                                 settlement_date=data["settlement_date"])
    key = f"reports/settlement/{stored.partner_id}/{data['settlement_date']}/{stored.event_id}.json"
    aws.client("s3").put_object(Bucket=get_settings().documents_bucket, Key=key, ContentType="application/json",
                                Body=json.dumps(report, ensure_ascii=False).encode())
    summary = {"report_key": key, "partner_id": stored.partner_id, "settlement_date": data["settlement_date"],
               "event_id": stored.event_id, "ok": report["ok"], "summary": report["summary"], "at": time.time()}
    cases.put_once(f"settlement-{stored.partner_id}", data["settlement_date"], "report", stored.event_id, summary,
                   listed=REPORTS_LIST)
    logger.info("settlement reconciled", extra={"settlement_date": data["settlement_date"], "ok": report["ok"],
                                                "summary": report["summary"]})
    metrics.add_metric(name="ReconciliationProblems", unit="Count",
                       value=sum(v for k, v in report["summary"].items() if k not in ("records", "ledger_entries",
                                                                                    "matched")))


def reports(limit: int = 100) -> list[dict[str, Any]]:
    return cases.listed(REPORTS_LIST, limit=limit)


def report(key: str) -> dict[str, Any]:
    body = aws.client("s3").get_object(Bucket=get_settings().documents_bucket, Key=key)["Body"]
    return json.loads(body.read())
