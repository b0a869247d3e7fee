"""Routing and delivery with moto and a real HTTP server as the partner's endpoint."""
from __future__ import annotations

import json
import time

import boto3
import pytest
from standardwebhooks import Webhook

from tests.support import secret_of
from tests.test_ingest import BJ_UNIT, application, send


def _route_all() -> None:
    """What the stream handler does for each INSERT: route every stored event."""
    from chalicelib import event_store, routing
    from chalicelib.settings import get_settings

    for item in boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]:
        routing.route(event_store.StoredEvent.from_item(item))


def _queued() -> list[dict]:
    from chalicelib.settings import get_settings

    sqs = boto3.client("sqs")
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=get_settings().delivery_queue_url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return found
        found.extend(got)
        sqs.delete_message_batch(QueueUrl=get_settings().delivery_queue_url,
                                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


ASSESSMENT_ROUTE = "assessment-for-submitted-application"


def _deliveries(route: str = ASSESSMENT_ROUTE) -> list[dict]:
    """Deliveries of the static route under test (the transfer flow adds its own: fee bills)."""
    from chalicelib.settings import get_settings

    items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
    return [item for item in items if item["route"]["S"] == route]


@pytest.fixture
def routed(hub, partners):
    """A Beijing application accepted and routed: one pending delivery to bj-tax (canonical format)."""
    assert send(hub, partners, partner_id="bj-registry", data=application(BJ_UNIT))[0] == 202
    _route_all()
    items = _deliveries()
    assert len(items) == 1
    return items[0]["delivery_id"]["S"]


def test_application_is_routed_to_the_tax_bureau_of_the_units_city(routed, receiver, partners):
    from chalicelib import delivery

    assert [json.loads(m["Body"])["delivery_id"] for m in _queued()] == [routed]
    assert delivery.attempt(routed) == "delivered"
    got = receiver.take()
    assert got["path"] == "/bj-tax"
    body = Webhook(partners["hub"]["signing_secret"]).verify(got["body"], got["headers"])
    assert got["headers"]["webhook-id"] == routed
    assert body["type"] == "tax.assessment_requested"
    assert body["data"]["unit_code"] == BJ_UNIT and body["data"]["case_id"] == application()["case_id"]
    assert delivery.get(routed)["state"] == "delivered"


def test_partner_format_is_applied_outbound(hub, partners, receiver):
    """sz-tax speaks tax_gt3: the delivery body carries its own field names."""
    from chalicelib import delivery

    assert send(hub, partners)[0] == 202
    _route_all()
    delivery_id = _deliveries()[0]["delivery_id"]["S"]
    assert delivery.attempt(delivery_id) == "delivered"
    data = json.loads(receiver.take()["body"])["data"]
    assert data["bdcdyh"] == application()["unit_code"] and "unit_code" not in data


def test_routing_twice_writes_and_enqueues_nothing_new(routed):
    _queued()
    _route_all()
    assert len(_deliveries()) == 1 and _queued() == []


def test_retries_keep_the_webhook_id_and_follow_the_schedule(routed, receiver, monkeypatch):
    from chalicelib import delivery
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_RETRY_SCHEDULE", "5,300")
    reset_settings()
    receiver.statuses = [500, 503]
    now = time.time()
    assert delivery.attempt(routed, now=now) == "retry"
    assert delivery.get(routed)["due_at"] == pytest.approx(now + 5)
    assert delivery.attempt(routed, now=now + 1) == "not_due"
    assert delivery.attempt(routed, now=now + 5) == "retry"
    assert delivery.get(routed)["due_at"] == pytest.approx(now + 5 + 300)
    assert delivery.attempt(routed, now=now + 305) == "delivered"
    seen = [receiver.take() for _ in range(3)]
    assert {r["headers"]["webhook-id"] for r in seen} == {routed}
    assert [r["status"] for r in seen] == [500, 503, 200]


def test_a_wait_longer_than_sqs_allows_is_chained(routed, receiver, monkeypatch):
    from chalicelib import delivery
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_RETRY_SCHEDULE", "7200")
    reset_settings()
    receiver.statuses = [500]
    _queued()
    sent = []
    real = delivery.enqueue
    monkeypatch.setattr(delivery, "enqueue", lambda did, delay_s=0: sent.append(delay_s) or real(did, delay_s))
    now = time.time()
    assert delivery.attempt(routed, now=now) == "retry"
    assert delivery.attempt(routed, now=now + 900) == "not_due"
    assert sent == [7200, pytest.approx(6300)]  # each capped at 900 s by enqueue itself


def test_schedule_used_up_dead_letters_then_replay_delivers_with_same_id(routed, receiver, monkeypatch):
    from chalicelib import delivery
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_RETRY_SCHEDULE", "1,1")
    reset_settings()
    receiver.default_status = 500
    now = time.time()
    assert [delivery.attempt(routed, now=now + i) for i in range(3)] == ["retry", "retry", "dead"]
    dead = delivery.list_dead()
    assert [d["delivery_id"] for d in dead] == [routed] and dead[0]["attempts"] == 3
    assert delivery.attempt(routed) == "not_pending"
    receiver.default_status = 204
    assert delivery.replay(routed) is True
    assert delivery.replay(routed) is False  # no longer dead
    assert delivery.attempt(routed) == "delivered"
    assert {receiver.take()["headers"]["webhook-id"] for _ in range(4)} == {routed}
    assert delivery.list_dead() == []


def test_no_answer_within_the_timeout_is_a_failure(routed, receiver, monkeypatch):
    from chalicelib import delivery
    from chalicelib.settings import get_settings, reset_settings

    assert get_settings().delivery_timeout_s == 15
    monkeypatch.setenv("HUB_DELIVERY_TIMEOUT", "0.3")
    reset_settings()
    receiver.delay_s = 1.5
    assert delivery.attempt(routed) == "retry"
    assert "Timeout" in delivery.get(routed)["last_error"] or "Error" in delivery.get(routed)["last_error"]


def test_unreachable_endpoint_is_a_failure(routed, partners, tmp_path, monkeypatch):
    from chalicelib import delivery
    from chalicelib.settings import reset_settings
    from tests.support import free_port

    for p in partners["partners"]:
        p["endpoint"] = f"http://127.0.0.1:{free_port()}/gone"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(partners))
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    reset_settings()
    assert delivery.attempt(routed) == "retry"


def test_sweeper_recovers_a_delivery_whose_enqueue_was_lost(hub, partners, monkeypatch):
    from chalicelib import delivery

    with monkeypatch.context() as patched:
        patched.setattr(delivery, "enqueue", lambda *a, **k: False)  # the process died after the write
        assert send(hub, partners, partner_id="bj-registry", data=application(BJ_UNIT))[0] == 202
        _route_all()
    assert _queued() == []
    assert delivery.sweep(now=time.time())["reenqueued"] == 0  # within the grace period
    assert delivery.sweep(now=time.time() + 3600)["reenqueued"] == 1
    assert len(_queued()) == 1


def test_queue_handler_reports_partial_batch_failures(routed, receiver):
    """Built by hand: Chalice's test client gives every generated record the same messageId."""
    import app

    event = {"Records": [
        {"messageId": "m-good", "receiptHandle": "r1", "body": json.dumps({"delivery_id": routed}),
         "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:cn-north-1:000000000000:hub-deliveries", "awsRegion": "cn-north-1"},
        {"messageId": "m-bad", "receiptHandle": "r2", "body": "not json", "attributes": {}, "messageAttributes": {},
         "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:cn-north-1:000000000000:hub-deliveries", "awsRegion": "cn-north-1"},
    ]}
    from tests.support import lambda_context

    result = app.deliver(event, lambda_context("deliver"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert receiver.take()["headers"]["webhook-id"] == routed


def test_stream_handler_routes_inserts_and_ignores_other_records(hub, partners):
    import app
    from chalicelib.settings import get_settings

    assert send(hub, partners, partner_id="bj-registry", data=application(BJ_UNIT))[0] == 202
    item = boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"][0]
    from tests.support import lambda_context

    def record(name, seq):
        return {"eventID": seq, "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "cn-north-1", "eventSourceARN": "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/x",
                "dynamodb": {"Keys": {"dedup_key": item["dedup_key"]}, "NewImage": item, "SequenceNumber": seq,
                             "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}}

    broken = record("INSERT", "300")
    broken["dynamodb"]["NewImage"] = {"dedup_key": item["dedup_key"]}
    result = app.route_accepted({"Records": [record("INSERT", "100"), record("REMOVE", "200"), broken]},
                                lambda_context("route_accepted"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "300"}]}
    assert len(_deliveries()) == 1
