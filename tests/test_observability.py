"""Log context per thread: local mode serves requests and drives handlers in threads of one process, so a
key one request sets (its partner, webhook id, correlation id) must not appear on another's lines."""
from __future__ import annotations

import io
import json
import threading

from tests.support import envelope, lambda_context, secret_of, sign_request


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_each_thread_logs_its_own_keys():
    from chalicelib.observability import log_keys, logger

    handler, stream = logger.registered_handler, io.StringIO()
    kept = handler.setStream(stream)
    both_set = threading.Barrier(2, timeout=10)

    def request(webhook_id: str) -> None:
        log_keys(webhook_id=webhook_id, correlation_id=f"evt-{webhook_id}")
        both_set.wait()  # the other thread has set its keys too before either logs
        logger.info("event accepted")

    try:
        threads = [threading.Thread(target=request, args=(f"msg_{n}",)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        handler.setStream(kept)
    lines = [line for line in _lines(stream) if line["message"] == "event accepted"]
    assert sorted((line["webhook_id"], line["correlation_id"]) for line in lines) == [
        ("msg_1", "evt-msg_1"), ("msg_2", "evt-msg_2")]
    assert "webhook_id" not in logger.get_current_keys()  # nothing left on the shared formatter


def test_an_invocation_starts_without_the_keys_of_the_one_before(hub, partners):
    """The middleware clears the keys per invocation: the sweeper's lines do not carry the webhook id of
    the event the same thread accepted just before."""
    import app
    from chalicelib.observability import logger

    handler, stream = logger.registered_handler, io.StringIO()
    kept = handler.setStream(stream)
    try:
        body = envelope("assist.requested", {"unit_code": "440305001002GB00001F00010001"})
        headers = sign_request(secret_of(partners, "sz-registry"), body, msg_id="msg_keys_1")
        hub.http.post("/v1/partners/sz-registry/events", body=body.encode(), headers=headers)
        app.sweep({"version": "0", "id": "sweep-keys", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "cn-north-1",
                   "resources": [], "detail": {}}, lambda_context("sweep"))
        logger.info("after the sweep")
    finally:
        handler.setStream(kept)
    lines = _lines(stream)
    assert any(line.get("webhook_id") == "msg_keys_1" for line in lines)  # the request's own lines had it
    assert "webhook_id" not in [line for line in lines if line["message"] == "after the sweep"][0]
