"""No raw name, ID number or phone number in any log line, error body or stored answer.

Events carrying distinctive personal data go through the hub (Chalice's test client, moto): accepted,
duplicated, and refused in every way the contract knows (400, 401, 403, 413, 422). Accepted events are
then routed and delivered, through the functions and through the Lambda handlers, to a real HTTP
receiver, including failed attempts, a dead letter and an unroutable event.

Everything is captured: stdout and stderr (capsys; the Powertools logger's JSON lines are sent there),
and every log record of every logger at DEBUG (caplog), with its extra fields. The stored event data
and the delivered body may hold the values (they are the payload); nothing else may.

Third-party libraries' own DEBUG wire traces (botocore printing request parameters, urllib3) are the
one exclusion: they are off unless someone turns DEBUG on for the root logger, and they are not the
hub's log lines. Their INFO and above are checked like everything else.
"""
from __future__ import annotations

import copy
import json
import logging
import sys
import time

import boto3
import pytest

from tests.support import envelope, lambda_context, new_secret, secret_of, sign_request

SZ_UNIT = "440305001001GB00001F00010001"
BJ_UNIT = "110105001001GB00001F00010001"

NAME = "王小明测试"
OTHER_NAME = "陈大文测试"
ID_A = "11010519491231002X"
ID_B = "110105195001010039"
PHONE = "13912345678"
BAD_ID = "110105195001010038"  # ID_B with a wrong check digit: still somebody's ID number
BAD_PHONE = "1391234567"  # ten digits
HUGE_NAME = NAME * 40  # 200 characters: over the 100 a name may have
PERSONAL = (NAME, OTHER_NAME, ID_A, ID_A.lower(), ID_B, PHONE, BAD_ID, BAD_PHONE)

THIRD_PARTY = ("botocore", "boto3", "urllib3", "s3transfer", "moto", "werkzeug", "responses")


# ------------------------------------------------------------------------------------------------
# capture


class Capture:
    def __init__(self, capsys, caplog):
        self.capsys = capsys
        self.caplog = caplog
        self.streams: list[str] = []
        self.bodies: list[tuple[str, int, dict]] = []

    def drain(self) -> None:
        out, err = self.capsys.readouterr()
        self.streams.extend([out, err])

    def log_text(self) -> str:
        """Every captured line and every log record (message, exception, extra fields)."""
        self.drain()
        parts = list(self.streams)
        for record in self.caplog.records:
            if record.levelno < logging.INFO and record.name.split(".")[0] in THIRD_PARTY:
                continue
            parts.append(record.getMessage())
            parts.append(record.exc_text or "")
            if record.exc_info:
                parts.append(logging.Formatter().formatException(record.exc_info))
            parts.extend(f"{k}={v!r}" for k, v in vars(record).items() if k not in ("args", "msg", "exc_info"))
            parts.extend(repr(a) for a in (record.args or ()) if not isinstance(record.args, dict))
        return "\n".join(parts)

    def hub_json_lines(self) -> list[dict]:
        self.drain()
        found = []
        for text in self.streams:
            for line in text.splitlines():
                if line.startswith("{"):
                    try:
                        found.append(json.loads(line))
                    except ValueError:
                        pass
        return found

    def assert_clean(self) -> None:
        text = self.log_text()
        leaks = sorted({value for value in PERSONAL if value in text})
        if leaks:
            lines = [line for line in text.splitlines() if any(v in line for v in leaks)]
            pytest.fail(f"personal data {leaks} in log output:\n" + "\n".join(line[:400] for line in lines[:10]))
        for label, status, body in self.bodies:
            dumped = json.dumps(body, ensure_ascii=False)
            leaked = [value for value in PERSONAL if value in dumped]
            assert not leaked, f"{label}: {status} body carries {leaked}: {dumped[:500]}"


class CurrentStdout:
    """Writes to whatever sys.stdout is at the time (pytest swaps capsys's buffer between phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def captured(capsys, caplog):
    """Route the Powertools logger to the captured stdout, at DEBUG, and every logger to caplog at DEBUG."""
    from chalicelib.observability import logger

    handler = logger.registered_handler
    stream, level = handler.stream, logger.log_level
    handler.setStream(CurrentStdout())  # capsys's stdout (the handler kept the one of import time)
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield Capture(capsys, caplog)
    handler.stream = stream
    logger.setLevel(level)


# ------------------------------------------------------------------------------------------------
# requests


def personal_application(unit_code: str = SZ_UNIT, **changes) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = copy.deepcopy(EVENT_TYPES["application.submitted"].example)
    data["unit_code"] = unit_code
    data["parties"] = [
        {"role": "obligee", "name": NAME, "id_type": "resident_id", "id_number": ID_A, "phone": PHONE, "share": "100%"},
        {"role": "obligor", "name": OTHER_NAME, "id_type": "resident_id", "id_number": ID_B, "phone": PHONE},
    ]
    data.update(changes)
    return data


def with_party(**changes) -> dict:
    data = personal_application()
    data["parties"][0].update(changes)
    return data


def post(hub, capture: Capture, label: str, partner_id: str, body: str | bytes, headers: dict) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else body.encode()
    response = hub.http.post(f"/v1/partners/{partner_id}/events", headers=headers, body=raw)
    answer = json.loads(response.body or b"{}")
    capture.bodies.append((label, response.status_code, answer))
    return response.status_code, answer


def send(hub, capture, partners, label, data, partner_id="sz-registry", event_type="application.submitted",
         secret=None, msg_id=None, timestamp=None, path_partner=None, envelope_timestamp=None) -> tuple[int, dict]:
    body = envelope(event_type, data, timestamp=envelope_timestamp)
    headers = sign_request(secret or secret_of(partners, partner_id), body, msg_id=msg_id, timestamp=timestamp)
    return post(hub, capture, label, path_partner or partner_id, body, headers)


def send_raw(hub, capture, partners, label, body: str, partner_id="sz-registry") -> tuple[int, dict]:
    return post(hub, capture, label, partner_id, body, sign_request(secret_of(partners, partner_id), body))


def raw_envelope(event_type, data, timestamp="2026-01-01T00:00:00+08:00", **extra) -> str:
    return json.dumps({"type": event_type, "timestamp": timestamp, "data": data, **extra}, ensure_ascii=False)


def items(table_attr: str) -> list[dict]:
    from chalicelib.settings import get_settings

    return boto3.client("dynamodb").scan(TableName=getattr(get_settings(), table_attr))["Items"]


def expect(got: tuple[int, dict], status: int, code: str | None = None) -> None:
    assert got[0] == status, got
    if code is not None:
        assert got[1]["error"]["code"] == code, got


# ------------------------------------------------------------------------------------------------
# the inbound endpoint


def test_accepted_duplicate_and_refused_events_leak_no_personal_data(hub, partners, captured):
    c = captured
    # Accepted, then the same webhook-id again: same body, another body, an invalid body.
    expect(send(hub, c, partners, "accepted", personal_application(), msg_id="msg_pd_1"), 202)
    expect(send(hub, c, partners, "accepted-bj", personal_application(BJ_UNIT), partner_id="bj-registry",
                msg_id="msg_pd_bj"), 202)
    expect(send(hub, c, partners, "duplicate", personal_application(), msg_id="msg_pd_1"), 200)
    expect(send(hub, c, partners, "duplicate-other-body", with_party(name=OTHER_NAME + NAME), msg_id="msg_pd_1"), 200)
    expect(send(hub, c, partners, "duplicate-invalid-body", with_party(id_number=BAD_ID), msg_id="msg_pd_1"), 200)

    # 400: not JSON, not the envelope, duplicate keys, headers missing, a malformed webhook-id.
    expect(send_raw(hub, c, partners, "not-json", f"name={NAME}&id={ID_A}&phone={PHONE}"), 400, "invalid_json")
    expect(send_raw(hub, c, partners, "truncated-json", raw_envelope("application.submitted",
                                                                      personal_application())[:-7]), 400)
    expect(send_raw(hub, c, partners, "timestamp-not-a-time",
                    raw_envelope("application.submitted", personal_application(), timestamp=ID_A)),
           400, "invalid_envelope")
    expect(send_raw(hub, c, partners, "type-not-a-name", raw_envelope(NAME, personal_application())),
           400, "invalid_envelope")
    expect(send_raw(hub, c, partners, "data-a-list", raw_envelope("application.submitted",
                                                                   [NAME, ID_A, PHONE])), 400, "invalid_envelope")
    expect(send_raw(hub, c, partners, "data-a-string",
                    raw_envelope("application.submitted", f"{NAME} {ID_A} {PHONE}")), 400, "invalid_envelope")
    expect(send_raw(hub, c, partners, "envelope-extra-field",
                    raw_envelope("application.submitted", personal_application(), note=f"{NAME} {PHONE}")),
           400, "invalid_envelope")
    duplicate_keys = ('{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00", '
                      f'"data": {{"name": "{NAME}", "name": "{ID_A}"}}}}')
    expect(send_raw(hub, c, partners, "duplicate-keys", duplicate_keys), 400, "duplicate_json_key")
    body = envelope("application.submitted", personal_application())
    headers = sign_request(secret_of(partners, "sz-registry"), body)
    del headers["webhook-signature"]
    expect(post(hub, c, "missing-signature", "sz-registry", body, headers), 400, "missing_signature_headers")
    headers = sign_request(secret_of(partners, "sz-registry"), body, msg_id=f"msg_{PHONE}_{ID_A}")
    headers["webhook-id"] = f"{NAME}{ID_A}"
    expect(post(hub, c, "webhook-id-personal", "sz-registry", body, headers), 400)

    # 401: unknown partner, wrong secret, stale timestamp.
    expect(send(hub, c, partners, "unknown-partner", personal_application(), path_partner="nobody-here"), 401)
    expect(send(hub, c, partners, "bad-signature", personal_application(), secret=new_secret()), 401)
    expect(send(hub, c, partners, "stale", personal_application(), timestamp=int(time.time()) - 3600), 401)

    # 403: a type the registry may not send, and an unknown one.
    expect(send(hub, c, partners, "wrong-kind", personal_application(), event_type="tax.assessed"),
           403, "event_type_not_allowed")
    expect(send(hub, c, partners, "outbound-type", personal_application(), event_type="tax.assessment_requested"),
           403, "event_type_not_allowed")

    # 413.
    expect(send(hub, c, partners, "too-large", personal_application(padding=(NAME + ID_A + PHONE) * 12000)),
           413, "payload_too_large")

    # 422: bad ID number, bad phone, huge name, and personal data in other wrong places.
    expect(send(hub, c, partners, "bad-id", with_party(id_number=BAD_ID)), 422, "invalid_data")
    expect(send(hub, c, partners, "bad-id-lowercase-x", with_party(id_number=ID_A[:-1] + "y")), 422, "invalid_data")
    expect(send(hub, c, partners, "id-as-passport", with_party(id_type="passport", id_number=f"{NAME}{ID_B}")),
           422, "invalid_data")
    expect(send(hub, c, partners, "id-too-long", with_party(id_number=ID_A * 3)), 422, "invalid_data")
    expect(send(hub, c, partners, "bad-phone", with_party(phone=BAD_PHONE)), 422, "invalid_data")
    expect(send(hub, c, partners, "phone-with-name", with_party(phone=f"{PHONE}{NAME}")), 422, "invalid_data")
    expect(send(hub, c, partners, "phone-as-number", with_party(phone=int(PHONE))), 422, "invalid_data")
    expect(send(hub, c, partners, "huge-name", with_party(name=HUGE_NAME)), 422, "invalid_data")
    expect(send(hub, c, partners, "name-not-a-string", with_party(name=[NAME, ID_A])), 422, "invalid_data")
    expect(send(hub, c, partners, "role-personal", with_party(role=NAME)), 422, "invalid_data")
    expect(send(hub, c, partners, "id-type-personal", with_party(id_type=ID_B)), 422, "invalid_data")
    expect(send(hub, c, partners, "case-id-personal", personal_application(case_id=f"{NAME}-{ID_A}")),
           422, "invalid_data")
    expect(send(hub, c, partners, "price-is-a-phone", personal_application(price_fen=PHONE)), 422, "invalid_data")
    expect(send(hub, c, partners, "unit-code-personal", personal_application(unit_code=ID_A + "0000000000")),
           422, "invalid_data")
    expect(send(hub, c, partners, "unknown-field-value", personal_application(note=f"{NAME} {PHONE}")),
           422, "invalid_data")
    expect(send(hub, c, partners, "unit-of-another-city", personal_application(BJ_UNIT)), 422,
           "unit_outside_partner_city")
    expect(send(hub, c, partners, "future", personal_application(),
                envelope_timestamp="2099-01-01T00:00:00+08:00"), 422, "timestamp_in_future")
    native = {"ywbh": "C1", "bdcdyh": SZ_UNIT, "hdbh": "H1", "hjse": ID_A, "hdsj": PHONE,
              "swxx": [{"dzsphm": ID_B, "xh": 1, "zsxmDm": "10119", "zsxmMc": NAME, "zrfcsfbz": "1",
                        "jsje": ID_A, "sl": NAME, "ynse": NAME, "jkqx": PHONE}]}
    status, answer = send(hub, c, partners, "mapping-fails", native, partner_id="sz-tax", event_type="tax.assessed")
    assert status == 422 and answer["error"]["code"] in {"mapping_failed", "invalid_data"}, answer

    # The stored answers hold ids, not data; the stored data is the payload and does hold it.
    stored = items("events_table")
    assert len(stored) == 2
    for item in stored:
        assert not [v for v in PERSONAL if v in item["answer"]["S"]]
        assert not [v for v in PERSONAL if v in item["dedup_key"]["S"] + item["webhook_id"]["S"]]
    assert any(ID_A in item["data"]["S"] and NAME in item["data"]["S"] for item in stored)

    lines = captured.hub_json_lines()
    messages = {line.get("message") for line in lines}
    assert {"event accepted", "event refused", "webhook-id reused with a different body"} <= messages, messages
    captured.assert_clean()


def test_storage_failure_logs_no_personal_data(hub, partners, captured, monkeypatch):
    """A 503 logs the exception with its traceback: the event's data must not be in it."""
    from botocore.exceptions import ClientError

    from chalicelib import event_store

    def failing(event):
        # What botocore raises when DynamoDB refuses the item.
        raise ClientError({"Error": {"Code": "ValidationException",
                                     "Message": "Item size has exceeded the maximum allowed size"}}, "PutItem")

    monkeypatch.setattr(event_store, "put_new", failing)
    expect(send(hub, captured, partners, "storage-down", personal_application()), 503, "temporarily_unavailable")
    assert "event intake failed" in {line.get("message") for line in captured.hub_json_lines()}
    captured.assert_clean()


@pytest.mark.parametrize("where", ["envelope", "data", "party"])
def test_a_key_named_by_personal_data_is_not_echoed(hub, partners, captured, where):
    """Unknown keys are refused by name: a key that *is* an ID number or a name must not come back."""
    if where == "envelope":
        got = send_raw(hub, captured, partners, "envelope-key",
                       raw_envelope("application.submitted", personal_application(), **{ID_A: NAME}))
    elif where == "data":
        got = send(hub, captured, partners, "data-key", personal_application(**{ID_B: PHONE, NAME: 1}))
    else:
        data = personal_application()
        data["parties"][0][PHONE] = "x"
        got = send(hub, captured, partners, "party-key", data)
    assert got[0] in (400, 422), got
    captured.assert_clean()


# ------------------------------------------------------------------------------------------------
# routing and delivery


def _stream_record(item: dict, seq: str) -> dict:
    return {"eventID": seq, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "cn-north-1",
            "eventSourceARN": "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/x",
            "dynamodb": {"Keys": {"dedup_key": item["dedup_key"]}, "NewImage": item, "SequenceNumber": seq,
                         "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}}


def _sqs_record(delivery_id: str, message_id: str) -> dict:
    return {"messageId": message_id, "receiptHandle": "rh-" + message_id,
            "body": json.dumps({"delivery_id": delivery_id}),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x",
                           "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:cn-north-1:000000000000:hub-deliveries", "awsRegion": "cn-north-1"}


def test_routing_and_delivery_log_no_personal_data(hub, partners, captured, receiver, monkeypatch):
    import app
    from chalicelib import delivery, event_store, routing
    from chalicelib.partners import FilePartnerDirectory, PartnersFile
    from chalicelib.settings import reset_settings

    c = captured
    expect(send(hub, c, partners, "sz", personal_application(), msg_id="msg_route_sz"), 202)
    expect(send(hub, c, partners, "bj", personal_application(BJ_UNIT), partner_id="bj-registry",
                msg_id="msg_route_bj"), 202)
    expect(send(hub, c, partners, "sz-2", with_party(name=OTHER_NAME), msg_id="msg_route_sz_2"), 202)
    stored = {item["webhook_id"]["S"]: item for item in items("events_table")}

    # Routing: the stream handler (Lambda entry, Powertools batch) for one, the function for the others,
    # and once more with no tax partner at all (unroutable → a dead letter).
    result = app.route_accepted({"Records": [_stream_record(stored["msg_route_sz"], "100")]},
                                lambda_context("route_accepted"))
    assert result == {"batchItemFailures": []}
    assert routing.route(event_store.StoredEvent.from_item(stored["msg_route_bj"])) == 1
    no_tax = copy.deepcopy(partners)
    no_tax["partners"] = [p for p in no_tax["partners"] if p["kind"] != "tax"]
    assert routing.route(event_store.StoredEvent.from_item(stored["msg_route_sz_2"]),
                         directory=FilePartnerDirectory(PartnersFile.model_validate(no_tax))) == 0
    # A broken stream record fails alone (partial batch failure; Powertools logs the exception), and a
    # replayed record schedules nothing new.
    broken = _stream_record(stored["msg_route_bj"], "300")
    broken["dynamodb"]["NewImage"] = {k: v for k, v in stored["msg_route_bj"].items() if k != "event_id"}
    replayed = _stream_record(stored["msg_route_bj"], "200")
    assert app.route_accepted({"Records": [replayed, broken]}, lambda_context("route_accepted")) == \
        {"batchItemFailures": [{"itemIdentifier": "300"}]}

    pending = {i["partner_id"]["S"]: i["delivery_id"]["S"] for i in items("deliveries_table")
               if i["state"]["S"] == "pending"}
    assert {"sz-tax", "bj-tax"} <= set(pending)  # (case flows may schedule more; they are delivered below)

    # Delivery: Shenzhen through the queue handler (delivered), Beijing's bureau down (retry, then dead).
    result = app.deliver({"Records": [_sqs_record(pending["sz-tax"], "m-1")]}, lambda_context("deliver"))
    assert result == {"batchItemFailures": []}
    got = receiver.take()
    assert got["path"] == "/sz-tax" and ID_A in got["body"]  # the payload does carry it

    receiver.path_status["/bj-tax"] = 503
    now = time.time()
    assert delivery.attempt(pending["bj-tax"], now=now) == "retry"
    monkeypatch.setenv("HUB_RETRY_SCHEDULE", "1")
    reset_settings()
    assert delivery.attempt(pending["bj-tax"], now=now + 10) == "dead"
    assert receiver.take()["path"] == "/bj-tax" and receiver.take()["path"] == "/bj-tax"

    for partner_id, delivery_id in pending.items():
        if partner_id not in ("sz-tax", "bj-tax"):
            delivery.attempt(delivery_id)

    # What operators see of dead letters (`hubctl dead-letters list`) is free of it too.
    dead = delivery.list_dead()
    dead_ids = {d["delivery_id"] for d in dead}
    assert pending["bj-tax"] in dead_ids
    assert any(d["partner_id"] == "-" for d in dead)  # the unroutable one
    dumped = json.dumps(dead, ensure_ascii=False)
    assert not [v for v in PERSONAL if v in dumped], dumped
    # Nor does any delivery item outside its frozen body (errors, states, ids).
    for item in items("deliveries_table"):
        outside_body = json.dumps({k: v for k, v in item.items() if k != "body"}, ensure_ascii=False)
        assert not [v for v in PERSONAL if v in outside_body], outside_body
    messages = {line.get("message") for line in captured.hub_json_lines()}
    assert {"event routed", "delivered", "dead-lettered", "event could not be routed"} <= messages, messages
    captured.assert_clean()


def test_the_capture_would_see_a_leak(hub, partners, captured):
    """The harness itself: a hub log line carrying a name is caught (so the tests above mean something)."""
    from chalicelib.observability import logger

    logger.debug("probe", extra={"who": NAME})
    with pytest.raises(pytest.fail.Exception):
        captured.assert_clean()


# ------------------------------------------------------------------------------------------------
# every flow


def _people(value, found: set[str]) -> set[str]:
    """The personal values in an example: ID numbers, phones and the names of people (a record with an
    ID, a phone or an officer's badge is a person; a bank's or court's name is not personal data)."""
    if isinstance(value, dict):
        person = any(k in value for k in ("id_number", "id_type", "phone", "badge_number", "id_number_masked"))
        for key, item in value.items():
            if key in ("id_number", "phone") and isinstance(item, str):
                found.add(item)
            elif key == "name" and person and isinstance(item, str):
                found.add(item)
            else:
                _people(item, found)
    elif isinstance(value, list):
        for item in value:
            _people(item, found)
    return found


def test_every_flow_of_the_catalog_logs_no_personal_data(captured, aws_env, tmp_path, monkeypatch):
    """Every inbound example of the catalog, in the order of a case's life (transfer, payment, banks,
    notary, court, inquiry, relay, utilities…), sent, routed and answered: the people in them (names,
    ID numbers, phones) appear in no log line and no answer body."""
    from chalice.test import Client

    import app
    from chalicelib.settings import reset_settings
    from tests.test_catalog_examples import INBOUND_CASES, LIFECYCLE, Sender, partners_for

    with Client(app.app) as client:
        catalog = json.loads(client.http.get("/v1/catalog").body)
        doc = partners_for(catalog)
        path = tmp_path / "catalog-partners.json"
        path.write_text(json.dumps(doc))
        monkeypatch.setenv("HUB_PARTNER_SOURCE", "file")
        monkeypatch.setenv("HUB_PARTNERS", str(path))
        reset_settings()
        personal = set()
        for entry in catalog["event_types"]:
            _people(entry["example"], personal)
        personal = {value for value in personal if len(value) >= 2}
        assert len(personal) > 20  # the examples really carry people
        sender = Sender(client, catalog, doc)
        kinds = dict(INBOUND_CASES)
        accepted = 0
        for event_type in LIFECYCLE:
            status, answer, _partner = sender.send(event_type, kinds[event_type])
            captured.bodies.append((event_type, status, answer))
            accepted += status == 202
        assert accepted >= len(LIFECYCLE) - 3  # nearly every fact was accepted and went through its flow
    text = captured.log_text()
    leaks = sorted(value for value in personal if value in text)
    assert not leaks, [line[:300] for line in text.splitlines() if any(v in line for v in leaks)][:5]
    for label, status, body in captured.bodies:
        dumped = json.dumps(body, ensure_ascii=False)
        assert not [v for v in personal if v in dumped], f"{label}: {status} body carries personal data"
