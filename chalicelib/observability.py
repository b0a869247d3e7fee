"""Powertools Logger and Metrics for the whole hub.

The logger's service name differs from the Chalice app name on purpose: a Logger named like the
app attaches to the same stdlib logger Chalice configures and prints every line twice.
Log lines carry ids, types, partner ids, counts and hashes, never event data.
"""
from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

# Invocations that add no metric (a health check) are normal here, not worth a warning each.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service="hub-core", utc=True)
metrics = Metrics(namespace="RegistrationHub", service="hub-core")


def log_keys(**keys: object) -> None:
    """Keys for the log lines of the rest of this invocation (a partner id, a webhook id, the correlation
    id…). Kept per thread, not on the shared formatter: local mode serves requests and drives handlers
    in threads of one process, where process-wide keys would end up on another request's lines. The
    Chalice middleware's `inject_lambda_context(clear_state=True)` clears them at each invocation."""
    logger.thread_safe_append_keys(**keys)
