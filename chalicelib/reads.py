"""Authenticated reads by partners: `GET /v1/cases/{case_id}`.

A read is signed like an event, with the request line in place of the body:

    hub-partner-id:    <partner id>
    webhook-id:        <a fresh nonce for every read>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.GET /v1/cases/<case_id>")>

So the signature binds the method, the path and the time (±300 s); the nonce is stored once for
ten minutes, so the same signed read cannot be replayed. Any partner's Standard Webhooks library
makes it: `Webhook(secret).sign(nonce, now, "GET /v1/cases/C1")`. A partner sees only cases it takes
part in; for any other case the answer is the same 404 as for a case that does not exist.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from chalicelib import aws, cases, signatures
from chalicelib.errors import HubError, unauthenticated
from chalicelib.partners import Partner, get_directory
from chalicelib.settings import get_settings

NONCE_RETENTION_S = 600


def authenticate(headers: Mapping[str, str], method: str, path: str, now: float | None = None) -> Partner:
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    partner_id = lowered.get("hub-partner-id")
    if not partner_id:
        raise HubError(400, "missing_partner_id", "A read names its partner in the hub-partner-id header.",
                       [{"field": "hub-partner-id", "code": "missing", "message": "header is required"}])
    nonce, stamp, signature = signatures.read_headers(headers)
    partner = get_directory().get(partner_id)
    signatures.verify(partner.secrets if partner else None, nonce, stamp, signature, f"{method} {path}", now,
                      get_settings().timestamp_tolerance_s)
    assert partner is not None
    try:
        aws.client("dynamodb").put_item(
            TableName=get_settings().cases_table,
            Item={"pk": {"S": f"nonce#{partner.id}#{nonce}"}, "sk": {"S": "read"},
                  "expires_at": {"N": str(int(now) + NONCE_RETENTION_S)}},
            ConditionExpression="attribute_not_exists(pk)")
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            raise unauthenticated() from None  # a replayed read
        raise
    return partner


def case_view(case_id: str, partner: Partner) -> dict[str, Any]:
    from chalicelib.flows import transfer

    visible = [c for c in cases.find(case_id) if partner.id in c.doc.get("participants", [])]
    if not visible:
        raise HubError(404, "case_not_found", "No case with this number that you take part in.")
    return {"cases": [_view(c, transfer.stage(c.doc)) for c in visible]}


def _view(case: cases.Case, stage: str) -> dict[str, Any]:
    """What a party may see: stages, amounts, ids and the timeline. No names, ID numbers or phones."""
    doc = case.doc
    orders = [{"order_id": oid, "payer_role": st["order"]["payer_role"], "total_fen": st["order"]["total_fen"],
               "state": st["state"], "paid_fen": sum(st["paid"].values()),
               "refunded_fen": sum(st["refunded"].values())} for oid, st in sorted(doc["orders"].items())]
    assessment = doc.get("assessment")
    return {
        "case_id": case.case_id, "unit_code": case.unit_code, "city": doc["city"], "flow": doc["flow"],
        "stage": stage, "service": doc["service"], "property_use": doc["property_use"],
        "payer_mode": doc["payer_mode"], "participants": doc["participants"],
        "fee": {"schedule_version": doc["fee"]["schedule_version"], "total_fen": doc["fee"]["total_fen"]},
        "assessment": {"assessment_id": assessment["assessment_id"], "total_fen": assessment["total_fen"],
                       "lines": len(assessment["lines"])} if assessment else None,
        "bills": {role: {"bill_no": b["bill_no"], "total_fen": b["total_fen"]} for role, b in doc["bills"].items()},
        "orders": orders,
        "clearance": doc.get("clearance"),
        "booking": doc.get("booking"),
        "receipts": sorted(doc["receipts"].values(), key=lambda r: r["bill_no"]),
        "holds": cases.items(case.case_id, case.unit_code, "hold"),
        "risks": cases.items(case.case_id, case.unit_code, "risk"),
        "timeline": cases.timeline(case.case_id, case.unit_code),
    }
