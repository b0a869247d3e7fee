"""Properties of the inbound door, over generated input (hypothesis): whatever a signed partner sends,
the answer is a contract status (never 5xx), and an event is stored exactly when the answer is 202."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import envelope, secret_of, sign_request

CONTRACT_STATUSES = {200, 202, 400, 401, 403, 413, 422}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def _stored_count() -> int:
    from chalicelib.settings import get_settings

    return boto3.client("dynamodb").scan(TableName=get_settings().events_table, Select="COUNT")["Count"]


def _types() -> list[str]:
    from chalicelib.models import EVENT_TYPES

    return sorted(EVENT_TYPES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_signed_body_gets_a_contract_status_and_is_stored_only_on_202(hub, partners, data):
    from chalicelib import ingest

    partner_id = data.draw(st.sampled_from(["sz-registry", "sz-tax", "sz-ccb-govpay", "sz-water"]))
    shape = data.draw(st.sampled_from(["envelope", "raw"]))
    if shape == "envelope":
        event_type = data.draw(st.sampled_from(_types()) | st.text(max_size=20))
        payload = data.draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
        body = envelope(event_type, payload)
    else:
        body = data.draw(st.text(max_size=300) | json_values.map(json.dumps))
    before = _stored_count()
    try:
        status, answer = ingest.accept(partner_id, sign_request(secret_of(partners, partner_id), body), body.encode())
    except Exception as exc:  # HubError: a refusal with a contract status
        status, answer = getattr(exc, "status", 500), exc.body() if hasattr(exc, "body") else {}
    assert status in CONTRACT_STATUSES, answer
    assert _stored_count() - before == (1 if status == 202 else 0)


def test_importing_app_needs_no_network_no_credentials_and_no_boto3():
    code = ("import sys, socket\n"
            "def refuse(*a, **k): raise AssertionError('network used at import')\n"
            "socket.socket.connect = refuse\n"
            "import app\n"
            "assert 'boto3' not in sys.modules and 'botocore.client' not in sys.modules, 'AWS SDK loaded at import time'\n"
            "assert 'pydantic' not in sys.modules, 'models built at import time'\n")
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "cn-north-1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
