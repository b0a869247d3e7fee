from __future__ import annotations

import json

import pytest

from tests.support import Receiver, partners_doc

REGION = "cn-north-1"


@pytest.fixture
def aws_env(monkeypatch):
    """moto in-process, with every resource of infra/resources.json created in it."""
    from moto import mock_aws

    for name in ("HUB_AWS_ENDPOINT", "HUB_PARTNERS", "HUB_DELIVERY_QUEUE_URL", "HUB_RETRY_SCHEDULE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    from chalicelib.settings import reset_settings

    with mock_aws():
        from infra.local_resources import ensure_resources

        for key, value in ensure_resources(None, REGION).items():
            monkeypatch.setenv(key, value)
        reset_settings()
        yield
    reset_settings()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def partners(tmp_path, monkeypatch, receiver):
    """A partners file whose endpoints are the test receiver; the hub reads it (file source)."""
    from chalicelib.settings import reset_settings

    doc = partners_doc(f"http://127.0.0.1:{receiver.port}")
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("HUB_PARTNER_SOURCE", "file")
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    reset_settings()
    return doc


@pytest.fixture
def hub(aws_env, partners):
    """Chalice's test client over the real app, with moto behind it."""
    from chalice.test import Client

    import app

    with Client(app.app) as client:
        yield client
