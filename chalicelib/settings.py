"""Settings read from the environment, once, on first use (never at import time)."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable

DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


def _parse_schedule(text: str) -> tuple[int, ...]:
    waits = tuple(int(part) for part in text.split(",") if part.strip())
    if any(w < 0 for w in waits):
        raise ValueError("HUB_RETRY_SCHEDULE takes non-negative whole seconds")
    return waits


@dataclass(frozen=True)
class Settings:
    region: str
    aws_endpoint: str | None
    events_table: str
    deliveries_table: str
    partners_table: str
    cases_table: str
    documents_table: str
    delivery_queue: str
    delivery_queue_url: str | None
    documents_bucket: str
    partner_source: str  # "file" (local mode, tests) or "aws" (DynamoDB + Secrets Manager)
    partners_file: str | None
    hub_secret_id: str
    partner_secret_prefix: str
    retry_schedule: tuple[int, ...]
    delivery_timeout_s: float
    timestamp_tolerance_s: int
    max_body_bytes: int
    dedup_retention_s: int
    sweep_grace_s: int
    partner_cache_ttl_s: float
    # the audit log (chalicelib/audit)
    audit_table: str
    audit_bucket: str
    audit_key_secret_id: str
    audit_origin: str  # checkpoint origin and signing key name
    events_stream_arn: str | None
    deliveries_stream_arn: str | None
    audit_cadence_s: float  # seconds between batches
    audit_run_s: float  # how long one scheduled invocation keeps sequencing
    # the operators' console and API (chalicelib/ops_api.py): "token" (local mode: HUB_OPERATOR_TOKEN) or
    # "cognito" (AWS: an API Gateway Cognito user pool authorizer checks the operator's ID token first)
    operator_auth: str
    operator_token: str | None
    operator_group: str  # the Cognito group an operator must belong to
    operator_cognito_domain: str | None  # the user pool's hosted sign-in domain, for the console
    operator_cognito_client_id: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        e = os.environ if env is None else env
        return cls(
            region=e.get("AWS_DEFAULT_REGION") or e.get("AWS_REGION") or "cn-north-1",
            aws_endpoint=e.get("HUB_AWS_ENDPOINT") or None,
            events_table=e.get("HUB_EVENTS_TABLE", "hub-events"),
            deliveries_table=e.get("HUB_DELIVERIES_TABLE", "hub-deliveries"),
            partners_table=e.get("HUB_PARTNERS_TABLE", "hub-partners"),
            cases_table=e.get("HUB_CASES_TABLE", "hub-cases"),
            documents_table=e.get("HUB_DOCUMENTS_TABLE", "hub-documents"),
            delivery_queue=e.get("HUB_DELIVERY_QUEUE", "hub-deliveries"),
            delivery_queue_url=e.get("HUB_DELIVERY_QUEUE_URL") or None,
            documents_bucket=e.get("HUB_DOCUMENTS_BUCKET", "hub-documents"),
            partner_source=e.get("HUB_PARTNER_SOURCE", "file"),
            partners_file=e.get("HUB_PARTNERS") or None,
            hub_secret_id=e.get("HUB_SIGNING_SECRET_ID", "hub/signing-secret"),
            partner_secret_prefix=e.get("HUB_PARTNER_SECRET_PREFIX", "hub/partners/"),
            retry_schedule=_parse_schedule(e.get("HUB_RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE)),
            delivery_timeout_s=float(e.get("HUB_DELIVERY_TIMEOUT", "15")),
            timestamp_tolerance_s=int(e.get("HUB_TIMESTAMP_TOLERANCE", "300")),
            max_body_bytes=int(e.get("HUB_MAX_BODY_BYTES", str(256 * 1024))),
            # Longer than any sender's retry horizon (Standard Webhooks' example: ~76 h).
            dedup_retention_s=int(e.get("HUB_DEDUP_RETENTION", str(30 * 86400))),
            # A pending delivery this long past due with no worker on it is re-enqueued.
            sweep_grace_s=int(e.get("HUB_SWEEP_GRACE", "120")),
            # How long a Lambda container trusts its copy of the partner registry.
            partner_cache_ttl_s=float(e.get("HUB_PARTNER_CACHE_TTL", "60")),
            audit_table=e.get("HUB_AUDIT_TABLE", "hub-audit"),
            audit_bucket=e.get("HUB_AUDIT_BUCKET", "hub-audit"),
            audit_key_secret_id=e.get("HUB_AUDIT_KEY_SECRET_ID", "hub/audit-signing-key"),
            audit_origin=e.get("HUB_AUDIT_ORIGIN", "registration-hub.example/audit"),
            events_stream_arn=e.get("HUB_EVENTS_STREAM_ARN") or None,
            deliveries_stream_arn=e.get("HUB_DELIVERIES_STREAM_ARN") or None,
            audit_cadence_s=float(e.get("HUB_AUDIT_CADENCE", "3")),
            audit_run_s=float(e.get("HUB_AUDIT_RUN_SECONDS", "50")),
            operator_auth=e.get("HUB_OPERATOR_AUTH", "token"),
            operator_token=e.get("HUB_OPERATOR_TOKEN") or None,
            operator_group=e.get("HUB_OPERATOR_GROUP", "hub-operators"),
            operator_cognito_domain=e.get("HUB_OPERATOR_COGNITO_DOMAIN") or None,
            operator_cognito_client_id=e.get("HUB_OPERATOR_COGNITO_CLIENT_ID") or None,
        )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


_forgetters: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> Callable[[], None]:
    """Register what a module caches from the AWS the settings name, to be forgotten with them
    (a resource of the same name in a new account or a fresh moto holds other data)."""
    _forgetters.append(forget)
    return forget


def forget_resources() -> None:
    """Forget the settings and what was cached from the resources they name, keeping the clients
    (the same endpoint, new resources: a test's fresh moto)."""
    get_settings.cache_clear()
    for forget in _forgetters:
        forget()


def reset_settings() -> None:
    """Forget cached settings and clients (tests and local mode change the environment)."""
    forget_resources()
    from chalicelib import aws, partners

    aws.reset_clients()
    partners.set_directory(None)
