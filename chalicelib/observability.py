"""Powertools Logger and Metrics for the whole hub.

The logger's service name differs from the Chalice app name on purpose: a Logger named like the
app attaches to the same stdlib logger Chalice configures and prints every line twice.
Log lines carry ids, types, partner ids, counts and hashes, never event data.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="hub-core", utc=True)
metrics = Metrics(namespace="RegistrationHub", service="hub-core")
