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
from typing import Any, Callable, Mapping

from chalicelib import aws, cases, signatures
from chalicelib.errors import HubError, unauthenticated
from chalicelib.observability import logger
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


def answer(method: str, path: str, headers: Mapping[str, str], build: Callable[[Partner], dict[str, Any]]
           ) -> tuple[int, dict[str, Any]]:
    """A signed read's (status, body): the partner authenticated for this request line, then `build(partner)`.

    A refusal (`HubError`, from the signature or from `build`) is answered as it is; anything else is
    storage or configuration trouble, not the partner's fault: a 503 so that it retries.
    """
    try:
        return 200, build(authenticate(headers, method, path))
    except HubError as exc:
        return exc.status, exc.body()
    except Exception:
        # The resource's name only (cases, relays, audit…): the rest of the path is the partner's text.
        logger.exception("signed read failed", extra={"read": path.split("/")[2] if path.count("/") > 1 else path})
        return 503, HubError(503, "temporarily_unavailable", "The hub could not answer; retry later.").body()


def case_view(case_id: str, partner: Partner) -> dict[str, Any]:
    from chalicelib import flows

    visible = [c for c in cases.find(case_id) if partner.id in c.doc.get("participants", [])]
    if not visible:
        raise HubError(404, "case_not_found", "No case with this number that you take part in.")
    return {"cases": [flows.view(c) for c in visible]}
