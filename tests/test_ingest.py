"""The inbound endpoint, row by row of CONTRACT.md's table, through Chalice's test client with moto.

Every refusal is checked to store nothing and route nothing.
"""
from __future__ import annotations

import copy
import json
import time

import boto3
import pytest

from tests.support import envelope, new_secret, secret_of, sign_request

SZ_UNIT = "440305001001GB00001F00010001"
BJ_UNIT = "110105001001GB00001F00010001"
GZ_UNIT = "440106001001GB00001F00010001"


def application(unit_code: str = SZ_UNIT, **changes) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = copy.deepcopy(EVENT_TYPES["application.submitted"].example)
    data["unit_code"] = unit_code
    data.update(changes)
    return data


def post(hub, partner_id, body, headers):
    response = hub.http.post(f"/v1/partners/{partner_id}/events", headers=headers,
                             body=body if isinstance(body, bytes) else body.encode())
    return response.status_code, json.loads(response.body or b"{}")


def send(hub, partners, partner_id="sz-registry", event_type="application.submitted", data=None, secret=None,
         msg_id=None, timestamp=None, path_partner=None):
    body = envelope(event_type, application() if data is None else data)
    headers = sign_request(secret or secret_of(partners, partner_id), body, msg_id=msg_id, timestamp=timestamp)
    return post(hub, path_partner or partner_id, body, headers)


def stored_events() -> list[dict]:
    from chalicelib.settings import get_settings

    return boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]


def assert_error(status_body, status, code):
    got_status, body = status_body
    assert got_status == status, body
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["details"], list)
    assert stored_events() == []


def test_accepted_event_is_stored_and_answered_202(hub, partners):
    status, body = send(hub, partners, msg_id="msg_first")
    assert status == 202
    assert body["status"] == "accepted" and body["webhook_id"] == "msg_first" and body["event_id"].startswith("evt_")
    items = stored_events()
    assert len(items) == 1 and items[0]["event_id"]["S"] == body["event_id"]


def test_same_webhook_id_returns_first_answer_and_is_not_processed_again(hub, partners):
    first = send(hub, partners, msg_id="msg_dup")
    again = send(hub, partners, msg_id="msg_dup")
    assert first[0] == 202 and again[0] == 200
    assert again[1] == {**first[1], "duplicate": True}
    assert len(stored_events()) == 1


def test_same_webhook_id_with_a_different_body_returns_first_answer(hub, partners):
    first = send(hub, partners, msg_id="msg_x")
    changed = send(hub, partners, msg_id="msg_x", data=application(price_fen=1))
    assert changed == (200, {**first[1], "duplicate": True})
    assert json.loads(stored_events()[0]["data"]["S"])["price_fen"] == application()["price_fen"]


def test_same_webhook_id_with_an_invalid_body_still_returns_first_answer(hub, partners):
    first = send(hub, partners, msg_id="msg_y")
    broken = send(hub, partners, msg_id="msg_y", data={"nonsense": True})
    assert broken == (200, {**first[1], "duplicate": True})


def test_same_webhook_id_from_another_partner_is_a_different_event(hub, partners):
    send(hub, partners, msg_id="msg_shared")
    other = send(hub, partners, partner_id="bj-registry", msg_id="msg_shared", data=application(BJ_UNIT))
    assert other[0] == 202
    assert len(stored_events()) == 2


def test_not_json_is_400(hub, partners):
    body = "this is not json"
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)), 400, "invalid_json")


def test_not_utf8_is_400(hub, partners):
    headers = sign_request(secret_of(partners, "sz-registry"), "x")
    assert_error(post(hub, "sz-registry", b"\xff\xfe{", headers), 400, "invalid_json")


@pytest.mark.parametrize("body", [
    "[1, 2]", '"text"', "{}", '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00"}',
    '{"type": "application.submitted", "timestamp": "yesterday", "data": {}}',
    '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00", "data": {}}',
    '{"type": "Application Submitted", "timestamp": "2026-01-01T00:00:00+08:00", "data": {}}',
    '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00", "data": []}',
    '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00", "data": {}, "extra": 1}',
])
def test_not_the_envelope_shape_is_400(hub, partners, body):
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)),
                 400, "invalid_envelope")


def test_duplicate_json_keys_are_400(hub, partners):
    body = '{"type": "application.submitted", "type": "tax.assessed", "timestamp": "2026-01-01T00:00:00+08:00", "data": {}}'
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)),
                 400, "duplicate_json_key")


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_400(hub, partners, drop):
    body = envelope("application.submitted", application())
    headers = sign_request(secret_of(partners, "sz-registry"), body)
    del headers[drop]
    assert_error(post(hub, "sz-registry", body, headers), 400, "missing_signature_headers")


def test_unknown_partner_bad_signature_and_stale_timestamp_share_one_401_body(hub, partners):
    unknown = send(hub, partners, partner_id="sz-registry", path_partner="nobody-here")
    bad_sig = send(hub, partners, secret=new_secret())
    stale = send(hub, partners, timestamp=int(time.time()) - 301)
    future = send(hub, partners, timestamp=int(time.time()) + 301)
    for got in (unknown, bad_sig, stale, future):
        assert_error(got, 401, "unauthenticated")
    assert unknown[1] == bad_sig[1] == stale[1] == future[1]


def test_a_partner_posting_on_another_partners_path_is_401(hub, partners):
    assert_error(send(hub, partners, partner_id="sz-registry", path_partner="bj-registry"), 401, "unauthenticated")


def test_replayed_request_after_the_tolerance_is_401_and_within_it_a_duplicate(hub, partners):
    body = envelope("application.submitted", application())
    headers = sign_request(secret_of(partners, "sz-registry"), body, msg_id="msg_replay")
    assert post(hub, "sz-registry", body, headers)[0] == 202
    assert post(hub, "sz-registry", body, headers)[0] == 200
    old = sign_request(secret_of(partners, "sz-registry"), body, msg_id="msg_replay_old", timestamp=int(time.time()) - 3600)
    status, answer = post(hub, "sz-registry", body, old)
    assert (status, answer["error"]["code"]) == (401, "unauthenticated")


def test_several_signatures_in_the_header_any_match_passes(hub, partners):
    body = envelope("application.submitted", application())
    good = sign_request(secret_of(partners, "sz-registry"), body)
    decoy = sign_request(new_secret(), body, msg_id=good["webhook-id"], timestamp=int(good["webhook-timestamp"]))
    good["webhook-signature"] = f"{decoy['webhook-signature']} v1a,abc {good['webhook-signature']}"
    assert post(hub, "sz-registry", body, good)[0] == 202


def test_rotation_old_and_new_secrets_both_verify(hub, partners, tmp_path, monkeypatch):
    from chalicelib.settings import reset_settings

    old = secret_of(partners, "sz-registry")
    new = new_secret()
    for p in partners["partners"]:
        if p["id"] == "sz-registry":
            p["secrets"] = [new, old]
    path = tmp_path / "rotated.json"
    path.write_text(json.dumps(partners))
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    reset_settings()
    assert send(hub, partners, secret=old)[0] == 202
    assert send(hub, partners, secret=new)[0] == 202


def test_type_not_allowed_for_the_kind_is_403(hub, partners):
    from chalicelib.models import EVENT_TYPES

    assert_error(send(hub, partners, event_type="tax.assessed", data=EVENT_TYPES["tax.assessed"].example),
                 403, "event_type_not_allowed")


def test_unknown_type_is_403(hub, partners):
    assert_error(send(hub, partners, event_type="application.teleported", data={}), 403, "event_type_not_allowed")


def test_outbound_type_sent_inbound_is_403(hub, partners):
    assert_error(send(hub, partners, event_type="tax.assessment_requested", data={}), 403, "event_type_not_allowed")


def test_body_over_256_kib_is_413(hub, partners):
    data = application()
    data["padding"] = "x" * (256 * 1024)
    assert_error(send(hub, partners, data=data), 413, "payload_too_large")


def test_body_of_exactly_256_kib_is_not_413(hub, partners):
    body = envelope("application.submitted", application())
    body = body[:-1] + " " * (256 * 1024 - len(body.encode())) + "}"
    assert len(body.encode()) == 256 * 1024
    status, _ = post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body))
    assert status == 202


def test_bad_unit_code_is_422_with_the_failing_field(hub, partners):
    status, body = send(hub, partners, data=application("440305001001GB00001F0001000X"))
    assert status == 422 and body["error"]["code"] == "invalid_data"
    assert any(d["field"] == "data.unit_code" for d in body["error"]["details"])
    assert stored_events() == []


def test_bad_id_number_is_422_and_the_number_is_not_echoed(hub, partners):
    data = application()
    bad_id = "110105194912310021"
    data["parties"][0]["id_type"] = "resident_id"
    data["parties"][0]["id_number"] = bad_id
    status, body = send(hub, partners, data=data)
    assert status == 422 and body["error"]["code"] == "invalid_data"
    assert any(d["field"].startswith("data.parties.0") for d in body["error"]["details"])
    assert bad_id not in json.dumps(body)
    assert stored_events() == []


def test_float_money_is_422(hub, partners):
    status, body = send(hub, partners, data=application(price_fen=1000.5))
    assert status == 422 and any(d["field"] == "data.price_fen" for d in body["error"]["details"])


def test_unit_of_another_city_is_422(hub, partners):
    assert_error(send(hub, partners, data=application(BJ_UNIT)), 422, "unit_outside_partner_city")


def test_city_with_no_tax_partner_is_422_no_route_target(hub, partners):
    assert_error(send(hub, partners, partner_id="gz-registry", data=application(GZ_UNIT)), 422, "no_route_target")


def test_json_bomb_is_400(hub, partners):
    body = '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00", "data": {"a": ' \
           + "[" * 5000 + "]" * 5000 + "}}"
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)),
                 400, "json_too_deep")


def test_moderately_deep_json_is_400(hub, partners):
    body = '{"type": "application.submitted", "timestamp": "2026-01-01T00:00:00+08:00", "data": {"a": ' \
           + "[" * 40 + "]" * 40 + "}}"
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)),
                 400, "json_too_deep")


def test_huge_strings_inside_the_limit_are_422(hub, partners):
    data = application(case_id="C" * 200_000)
    status, body = send(hub, partners, data=data)
    assert status == 422 and any(d["field"] == "data.case_id" for d in body["error"]["details"])
    assert "C" * 100 not in json.dumps(body)
    assert stored_events() == []


def test_huge_integer_is_refused_not_crashing(hub, partners):
    body = envelope("application.submitted", application()).replace(
        str(application()["price_fen"]), "9" * 5000, 1)
    status, answer = post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body))
    assert 400 <= status < 500
    assert stored_events() == []


def test_a_mapping_that_raises_is_422(hub, partners):
    native = {"ywbh": "C1", "bdcdyh": SZ_UNIT, "hdbh": "H1", "swxx": [{"ynse": "not-money"}], "hjse": "x"}
    status, body = send(hub, partners, partner_id="sz-tax", event_type="tax.assessed", data=native)
    assert status == 422 and body["error"]["code"] in {"mapping_failed", "invalid_data"}
    assert "not-money" not in json.dumps(body)
    assert stored_events() == []


def test_envelope_from_the_future_is_422(hub, partners):
    from tests.support import envelope as env

    body = env("application.submitted", application(), timestamp="2099-01-01T00:00:00+08:00")
    assert_error(post(hub, "sz-registry", body, sign_request(secret_of(partners, "sz-registry"), body)),
                 422, "timestamp_in_future")


def test_out_of_order_events_are_each_accepted(hub, partners):
    from tests.support import envelope as env

    later = env("application.submitted", application(case_id="C-2"), timestamp="2026-11-20T10:00:00+08:00")
    earlier = env("application.submitted", application(case_id="C-1"), timestamp="2026-11-20T09:00:00+08:00")
    secret = secret_of(partners, "sz-registry")
    assert post(hub, "sz-registry", later, sign_request(secret, later))[0] == 202
    assert post(hub, "sz-registry", earlier, sign_request(secret, earlier))[0] == 202
    assert len(stored_events()) == 2


def test_storage_failure_is_503_and_retryable(hub, partners, monkeypatch):
    from chalicelib import event_store

    def broken(event):
        raise RuntimeError("dynamodb unavailable")

    monkeypatch.setattr(event_store, "put_new", broken)
    status, body = send(hub, partners, msg_id="msg_503")
    assert (status, body["error"]["code"]) == (503, "temporarily_unavailable")


def test_health_and_catalog_are_public(hub):
    assert hub.http.get("/health").status_code == 200
    catalog = json.loads(hub.http.get("/v1/catalog").body)
    assert {"application.submitted", "tax.assessment_requested"} <= {e["type"] for e in catalog["event_types"]}


def test_a_content_type_other_than_json_is_a_contract_400(hub, partners):
    body = envelope("application.submitted", application())
    headers = {**sign_request(secret_of(partners, "sz-registry"), body), "content-type": "image/png"}
    assert_error(post(hub, "sz-registry", body, headers), 400, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_accepted(hub, partners):
    body = envelope("application.submitted", application())
    headers = {**sign_request(secret_of(partners, "sz-registry"), body), "content-type": "application/json; charset=utf-8"}
    assert post(hub, "sz-registry", body, headers)[0] == 202
