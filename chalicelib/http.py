"""What each REST route answers, as (status, body). app.py turns these into responses."""
from __future__ import annotations

from typing import Any, Mapping

from chalicelib.errors import HubError
from chalicelib.observability import logger, metrics


def health() -> tuple[int, dict[str, Any]]:
    return 200, {"status": "ok"}


def catalog() -> tuple[int, dict[str, Any]]:
    from chalicelib.catalog import build_catalog

    return 200, build_catalog()


def openapi() -> tuple[int, dict[str, Any]]:
    from chalicelib.openapi import served

    return 200, served()


def receive_event(partner_id: str, headers: Mapping[str, str], raw_body: bytes) -> tuple[int, dict[str, Any]]:
    from chalicelib import ingest

    try:
        return ingest.accept(partner_id, headers, raw_body)
    except HubError as exc:
        logger.info("event refused", extra={"status": exc.status, "code": exc.code})
        metrics.add_metric(name=f"Refused{exc.status}", unit="Count", value=1)
        return exc.status, exc.body()
    except Exception:
        # Storage or configuration trouble, not the partner's fault: 503 so that it retries.
        logger.exception("event intake failed")
        metrics.add_metric(name="IntakeErrors", unit="Count", value=1)
        return 503, HubError(503, "temporarily_unavailable", "The hub could not store the event; retry later.").body()


def read_case(case_id: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    from chalicelib import reads

    return reads.answer("GET", f"/v1/cases/{case_id}", headers, lambda partner: reads.case_view(case_id, partner))
