"""Standard Webhooks verification: the published vectors and the negative cases of the spec's libraries."""
from __future__ import annotations

import pytest

from chalicelib import signatures
from chalicelib.errors import HubError

# reference/anchors_hubs.md §2.2, copied from the standard-webhooks repository.
VECTORS = [
    {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "ts": 1614265330,
     "payload": '{"test": 2432232314}', "sig": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "id": "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "ts": 1649367553,
     "payload": '{"email":"test@example.com","username":"test_user"}',
     "sig": "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
]
SW1 = VECTORS[0]


@pytest.mark.parametrize("v", VECTORS, ids=["sw1", "sw2"])
def test_published_vectors_sign(v):
    assert signatures.sign(v["secret"], v["id"], v["ts"], v["payload"]) == v["sig"]


@pytest.mark.parametrize("v", VECTORS, ids=["sw1", "sw2"])
def test_published_vectors_verify_with_injected_now(v):
    signatures.verify([v["secret"]], v["id"], v["ts"], v["sig"], v["payload"], now=v["ts"] + 10, tolerance_s=300)


def _verify(header, secrets=(SW1["secret"],), ts=SW1["ts"], now=None, payload=SW1["payload"]):
    signatures.verify(list(secrets) if secrets is not None else None, SW1["id"], ts, header, payload,
                      now=SW1["ts"] if now is None else now, tolerance_s=300)


def test_wrong_last_character_fails():
    with pytest.raises(HubError) as err:
        _verify("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")
    assert err.value.status == 401


def test_decoys_then_valid_signature_passes():
    _verify("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
            + SW1["sig"])


@pytest.mark.parametrize("header", [
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v1,", "v1,g0hM9SsE", "garbage-without-comma", "v1,!!!not-base64!!!", "v2," + SW1["sig"][3:],
])
def test_only_decoys_or_malformed_entries_fail_with_401(header):
    with pytest.raises(HubError) as err:
        _verify(header)
    assert err.value.status == 401 and err.value.code == "unauthenticated"


def test_malformed_entries_are_skipped_not_fatal():
    _verify("nocomma v1,!!! " + SW1["sig"])


@pytest.mark.parametrize("delta", [-301, 301])
def test_timestamp_outside_tolerance_fails(delta):
    with pytest.raises(HubError) as err:
        _verify(SW1["sig"], now=SW1["ts"] - delta)
    assert err.value.status == 401


@pytest.mark.parametrize("delta", [-300, 300])
def test_timestamp_at_tolerance_edge_passes(delta):
    _verify(SW1["sig"], now=SW1["ts"] - delta)


def test_any_of_several_secrets_verifies():
    _verify(SW1["sig"], secrets=("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", SW1["secret"]))


def test_unknown_partner_fails_like_a_bad_signature():
    with pytest.raises(HubError) as unknown:
        _verify(SW1["sig"], secrets=None)
    with pytest.raises(HubError) as bad:
        _verify("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")
    assert unknown.value.body() == bad.value.body()


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"])
def test_unpadded_secrets_are_accepted(secret):
    signatures.sign(secret, "msg", 1, "{}")


@pytest.mark.parametrize("headers,code", [
    ({}, "missing_signature_headers"),
    ({"webhook-id": "a", "webhook-timestamp": "1"}, "missing_signature_headers"),
    ({"webhook-id": "a", "webhook-timestamp": "hello", "webhook-signature": "v1,x"}, "invalid_webhook_timestamp"),
    ({"webhook-id": "a", "webhook-timestamp": "161426533.0", "webhook-signature": "v1,x"}, "invalid_webhook_timestamp"),
    ({"webhook-id": "a", "webhook-timestamp": "-161426533", "webhook-signature": "v1,x"}, "invalid_webhook_timestamp"),
    ({"webhook-id": "has space", "webhook-timestamp": "1", "webhook-signature": "v1,x"}, "invalid_webhook_id"),
    ({"webhook-id": "x" * 257, "webhook-timestamp": "1", "webhook-signature": "v1,x"}, "invalid_webhook_id"),
])
def test_missing_or_malformed_headers_are_400(headers, code):
    with pytest.raises(HubError) as err:
        signatures.read_headers(headers)
    assert (err.value.status, err.value.code) == (400, code)


def test_headers_are_case_insensitive():
    assert signatures.read_headers({"Webhook-Id": "a", "WEBHOOK-TIMESTAMP": "5", "webhook-signature": "v1,x"}) == ("a", 5, "v1,x")


@pytest.mark.parametrize("secret", ["", "whsec_", "nope", "whsec_" + "QUFB" * 4])
def test_bad_secrets_are_refused_in_configuration(secret):
    with pytest.raises(ValueError):
        signatures.check_secret(secret)
