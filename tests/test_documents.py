"""Documents (CONTRACT.md "Documents"): upload slots, verification of what arrived, references.

Two AWS backends:
* `docs_env`: moto in-process (the `aws_env` fixture) for the slot rules, the verifier fed by direct
  PutObject calls, references and downloads; every test starts empty, so "nothing stored" is checked.
* `live`: a moto server in a subprocess, for what a partner really does (HTTP PUT to the presigned
  URL) and for memory: the server's copies of a file are in another process, so tracemalloc here
  measures the verifier alone.

What moto does with presigned PUTs (checked below, so a moto upgrade that changes it shows up):
it checks neither the signature (so not the signed Content-Type / Content-Length) nor the expiry,
and a PUT without Content-Type sent by urllib (which then sends application/x-www-form-urlencoded)
stores an empty body. AWS refuses the first three with 403; the verifier rejects all four.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.conftest import REGION
from tests.support import secret_of, sign_request

REPO = Path(__file__).resolve().parent.parent
PDF = b"%PDF-1.7\n" + b"scan of a contract, page 1\n" * 40 + b"%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00\x00\x00\rIHDR" + b"\x00" * 64

# The table the lead adds to infra/resources.json (same text): until then the fixtures create it.
DOCUMENTS_FRAGMENT = {
    "Metadata": {
        "HubLocalNames": {"DocumentsTable": "hub-documents"},
        "HubEnvironment": {"HUB_DOCUMENTS_TABLE": {"Ref": "DocumentsTable"}},
    },
    "Resources": {
        "DocumentsTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "TableName": "hub-documents",
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "document_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "document_id", "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        }
    },
}


def _create_documents_table(endpoint: str | None, monkeypatch) -> None:
    from chalicelib.settings import reset_settings
    from infra.local_resources import ensure_resources

    for key, value in ensure_resources(endpoint, REGION, fragment=json.loads(json.dumps(DOCUMENTS_FRAGMENT))).items():
        monkeypatch.setenv(key, value)
    for name in ("HUB_DOCUMENT_MAX_BYTES", "HUB_DOCUMENT_UPLOAD_TTL", "HUB_DOCUMENT_UPLOAD_GRACE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()


@pytest.fixture
def docs_env(aws_env, partners, monkeypatch):
    _create_documents_table(None, monkeypatch)
    return partners


@pytest.fixture(scope="module")
def moto_process():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "moto server exited"
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def live(moto_process, partners, monkeypatch):
    """The hub's AWS is a moto server at a real HTTP endpoint (as in local mode)."""
    from chalicelib.settings import reset_settings
    from infra.local_resources import ensure_resources

    for name in ("HUB_PARTNERS_TABLE", "HUB_DELIVERY_QUEUE_URL", "HUB_RETRY_SCHEDULE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("HUB_AWS_ENDPOINT", moto_process)
    for key, value in ensure_resources(moto_process, REGION).items():
        monkeypatch.setenv(key, value)
    _create_documents_table(moto_process, monkeypatch)
    yield partners
    reset_settings()


# --------------------------------------------------------------------------------------------------
# helpers


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slot_body(data: bytes = PDF, media_type: str = "application/pdf", **override) -> dict:
    return {"sha256": sha(data), "size": len(data), "media_type": media_type, **override}


def ask(partners: dict, body, partner_id: str = "sz-registry", msg_id: str | None = None, now: float | None = None):
    from chalicelib import documents

    text = body if isinstance(body, str) else json.dumps(body)
    headers = sign_request(secret_of(partners, partner_id), text, msg_id=msg_id,
                           timestamp=int(now) if now is not None else None)
    return documents.request_upload(partner_id, headers, text.encode(), now=now)


def stored_items() -> list[dict]:
    from chalicelib import aws, documents

    return aws.client("dynamodb").scan(TableName=documents.document_settings().table)["Items"]


def stored_keys() -> list[str]:
    from chalicelib import aws, documents

    listing = aws.client("s3").list_objects_v2(Bucket=documents.document_settings().bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


def arrive(doc_id: str, data: bytes, content_type: str = "application/pdf", partner_id: str = "sz-registry"):
    """What a PUT to the slot leaves in the bucket (in-process: written directly)."""
    from chalicelib import aws, documents

    return aws.client("s3").put_object(Bucket=documents.document_settings().bucket,
                                       Key=documents.object_key(partner_id, doc_id), Body=data,
                                       ContentType=content_type)


def verify(doc_id: str, partner_id: str = "sz-registry", **kw) -> str | None:
    from chalicelib import documents

    return documents.verify_object(documents.document_settings().bucket, documents.object_key(partner_id, doc_id), **kw)


def new_document(partners, data: bytes = PDF, media_type: str = "application/pdf", **kw) -> str:
    status, answer = ask(partners, slot_body(data, media_type), **kw)
    assert status == 201, answer
    return answer["document_id"]


def verified_document(partners, data: bytes = PDF, media_type: str = "application/pdf") -> str:
    doc_id = new_document(partners, data, media_type)
    arrive(doc_id, data, media_type)
    assert verify(doc_id) == "verified"
    return doc_id


def put(url: str, data, content_type: str | None = "application/pdf") -> int:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.put(url, data=data, headers=headers, timeout=60).status_code


# --------------------------------------------------------------------------------------------------
# 1. the upload slot


def test_slot_is_201_with_a_put_url_bound_to_type_and_length_and_a_pending_record(docs_env):
    from chalicelib import documents

    now = time.time()
    status, answer = ask(docs_env, slot_body(), now=now)
    assert status == 201
    assert set(answer) == {"document_id", "upload_url", "expires_at"}
    doc_id = answer["document_id"]
    assert doc_id.startswith("doc_") and len(doc_id) == 36
    url = urlsplit(answer["upload_url"])
    assert url.path.endswith(f"/documents/sz-registry/{doc_id}")
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert answer["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now) + 900))

    doc = documents.get(doc_id)
    assert (doc.state, doc.partner_id, doc.sha256, doc.size, doc.media_type) == (
        "pending", "sz-registry", sha(PDF), len(PDF), "application/pdf")
    assert doc.created_at == now and doc.upload_expires_at == int(now) + 900
    assert doc.expires_at >= int(now) + 30 * 86400  # kept at least as long as the webhook-id dedup
    assert doc.answer == answer
    assert stored_keys() == []  # nothing in the bucket until the partner PUTs


def test_same_webhook_id_gets_the_first_answer_whatever_the_body_now_says(docs_env):
    status, first = ask(docs_env, slot_body(), msg_id="msg_doc_1")
    assert status == 201
    for body in (slot_body(), slot_body(PNG, "image/png"), {"not": "valid"}, "not json"):
        again = ask(docs_env, body, msg_id="msg_doc_1")
        assert again == (200, {**first, "duplicate": True})
    assert len(stored_items()) == 1


def test_same_webhook_id_from_another_partner_is_another_document(docs_env):
    _, first = ask(docs_env, slot_body(), msg_id="msg_shared")
    status, other = ask(docs_env, slot_body(), partner_id="bj-registry", msg_id="msg_shared")
    assert status == 201 and other["document_id"] != first["document_id"]
    assert "/documents/bj-registry/" in other["upload_url"]


def _refusal(docs_env, body, **kw):
    from chalicelib.errors import HubError

    with pytest.raises(HubError) as caught:
        ask(docs_env, body, **kw)
    assert stored_items() == [] and stored_keys() == []
    return caught.value


@pytest.mark.parametrize("body, field, code", [
    ({"size": len(PDF), "media_type": "application/pdf"}, "sha256", "missing"),
    ({**slot_body(), "purpose": "scan"}, "body", "extra_forbidden"),
    (slot_body(sha256=sha(PDF).upper()), "sha256", "string_pattern_mismatch"),
    (slot_body(sha256=sha(PDF)[:63]), "sha256", "string_pattern_mismatch"),
    (slot_body(size=0), "size", "greater_than_equal"),
    (slot_body(size=-5), "size", "greater_than_equal"),
    (slot_body(size="1024"), "size", "int_type"),
    (slot_body(size=10.0), "size", "int_type"),
    (slot_body(size=True), "size", "int_type"),
    (slot_body(size=200 * 1024 * 1024 + 1), "size", "too_large"),
    (slot_body(size=10 ** 30), "size", "too_large"),
    (slot_body(media_type="application/x-msdownload"), "media_type", "unsupported_media_type"),
    (slot_body(media_type="application/pdf; charset=binary"), "media_type", "unsupported_media_type"),
    (slot_body(media_type="APPLICATION/PDF"), "media_type", "unsupported_media_type"),
    ([slot_body()], "body", "model_type"),
])
def test_invalid_slot_request_is_422_with_the_failing_field_and_nothing_stored(docs_env, body, field, code):
    error = _refusal(docs_env, body)
    assert (error.status, error.code) == (422, "invalid_document_request")
    assert {"field": field, "code": code} in [{"field": d["field"], "code": d["code"]} for d in error.details]
    assert set(error.body()["error"]) == {"code", "message", "details"}


def test_oversized_declaration_does_not_echo_the_value(docs_env):
    error = _refusal(docs_env, slot_body(size=987654321987))
    assert "987654321987" not in json.dumps(error.body())
    assert "209715200" in error.details[0]["message"]  # the limit is told, 200 MiB


def test_an_unknown_key_is_not_echoed(docs_env):
    error = _refusal(docs_env, {**slot_body(), "11010519491231002X": "x"})
    assert error.status == 422 and "11010519491231002X" not in json.dumps(error.body())


def test_the_size_limit_is_a_setting(docs_env, monkeypatch):
    monkeypatch.setenv("HUB_DOCUMENT_MAX_BYTES", str(len(PDF)))
    assert ask(docs_env, slot_body())[0] == 201
    error = _refusal_after(docs_env, slot_body(size=len(PDF) + 1))
    assert error.status == 422 and error.details[0]["code"] == "too_large"


def _refusal_after(docs_env, body):
    from chalicelib.errors import HubError

    before = len(stored_items())
    with pytest.raises(HubError) as caught:
        ask(docs_env, body)
    assert len(stored_items()) == before
    return caught.value


@pytest.mark.parametrize("body, code", [
    ("not json", "invalid_json"),
    ('{"sha256": "a", "sha256": "b"}', "duplicate_json_key"),
    ("[" * 100000 + "]" * 100000, "json_too_deep"),
])
def test_a_body_that_is_not_json_is_400_and_nothing_stored(docs_env, body, code):
    error = _refusal(docs_env, body)
    assert (error.status, error.code) == (400, code)


def test_not_utf8_is_400(docs_env):
    from chalicelib import documents
    from chalicelib.errors import HubError

    raw = b'{"sha256": "\xff"}'
    headers = sign_request(secret_of(docs_env, "sz-registry"), raw.decode("latin-1"))
    with pytest.raises(HubError) as caught:
        documents.request_upload("sz-registry", headers, raw)
    assert caught.value.status == 400 and stored_items() == []


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_unsigned_is_400_and_nothing_stored(docs_env, drop):
    from chalicelib import documents
    from chalicelib.errors import HubError

    text = json.dumps(slot_body())
    headers = sign_request(secret_of(docs_env, "sz-registry"), text)
    del headers[drop]
    with pytest.raises(HubError) as caught:
        documents.request_upload("sz-registry", headers, text.encode())
    assert (caught.value.status, caught.value.code) == (400, "missing_signature_headers")
    assert stored_items() == [] and stored_keys() == []


def test_bad_signature_unknown_partner_and_stale_timestamp_are_one_401_and_nothing_stored(docs_env):
    from chalicelib import documents
    from chalicelib.errors import HubError

    text = json.dumps(slot_body())
    bodies = []
    cases = [
        ("sz-registry", sign_request(secret_of(docs_env, "bj-registry"), text)),  # someone else's secret
        ("sz-registry", {**sign_request(secret_of(docs_env, "sz-registry"), text), "webhook-signature": "v1,AAAA"}),
        ("no-such-partner", sign_request(secret_of(docs_env, "sz-registry"), text)),
        ("sz-registry", sign_request(secret_of(docs_env, "sz-registry"), text, timestamp=int(time.time()) - 301)),
    ]
    for partner_id, headers in cases:
        with pytest.raises(HubError) as caught:
            documents.request_upload(partner_id, headers, text.encode())
        bodies.append((caught.value.status, caught.value.body()))
    assert all(b == (401, bodies[0][1]) for b in bodies)
    # a body signed for one partner and posted on another's path
    with pytest.raises(HubError) as caught:
        documents.request_upload("bj-registry", sign_request(secret_of(docs_env, "sz-registry"), text), text.encode())
    assert caught.value.status == 401
    assert stored_items() == [] and stored_keys() == []


def test_body_over_the_limit_is_413(docs_env):
    error = _refusal(docs_env, json.dumps({**slot_body(), "pad": "x" * (256 * 1024)}))
    assert error.status == 413


def test_the_route_function_answers_contract_error_bodies_and_503_on_storage_trouble(docs_env, monkeypatch):
    from chalicelib import documents

    text = json.dumps(slot_body())
    status, body = documents.answer_upload_request("sz-registry", {}, text.encode())
    assert status == 400 and body["error"]["code"] == "missing_signature_headers"
    headers = sign_request(secret_of(docs_env, "sz-registry"), text)
    monkeypatch.setenv("HUB_DOCUMENTS_TABLE", "no-such-table")
    status, body = documents.answer_upload_request("sz-registry", headers, text.encode())
    assert status == 503 and body["error"]["code"] == "temporarily_unavailable"
    monkeypatch.delenv("HUB_DOCUMENTS_TABLE")
    monkeypatch.setenv("HUB_DOCUMENTS_TABLE", "hub-documents")
    assert documents.answer_upload_request("sz-registry", headers, text.encode())[0] == 201


# --------------------------------------------------------------------------------------------------
# 2. verification (in-process: the object is written as a PUT would leave it)


def test_matching_object_is_verified_and_kept_for_its_media_types_retention(docs_env):
    from chalicelib import documents

    doc_id = new_document(docs_env)
    stored = arrive(doc_id, PDF)
    assert verify(doc_id) == "verified"
    doc = documents.get(doc_id)
    assert doc.state == "verified" and doc.reason is None and doc.object_etag == stored["ETag"]
    days = documents.retention_rules().media_types["application/pdf"].retention_days
    assert doc.expires_at == int(doc.created_at) + days * 86400


@pytest.mark.parametrize("data, content_type, reason", [
    (PDF[:-1] + b"!", "application/pdf", "hash_mismatch"),
    (PDF + b"x", "application/pdf", "size_mismatch"),
    (PDF[:-1], "application/pdf", "size_mismatch"),
    (b"", "application/pdf", "size_mismatch"),
    (PDF, "image/png", "content_type_mismatch"),
    (PDF, "binary/octet-stream", "content_type_mismatch"),
])
def test_what_differs_from_the_declaration_is_rejected_and_not_kept(docs_env, data, content_type, reason):
    from chalicelib import documents

    doc_id = new_document(docs_env)
    arrive(doc_id, data, content_type)
    assert verify(doc_id) == "rejected"
    assert documents.get(doc_id).reason == reason
    assert stored_keys() == []  # a rejected upload (maybe an ID card scan) is deleted


def test_content_type_parameters_are_allowed(docs_env):
    doc_id = new_document(docs_env, b"a,b\n1,2\n", "text/csv")
    arrive(doc_id, b"a,b\n1,2\n", "text/csv; charset=utf-8")
    assert verify(doc_id) == "verified"


def test_bytes_that_are_not_the_declared_type_are_rejected_even_with_the_right_hash(docs_env):
    from chalicelib import documents

    doc_id = new_document(docs_env, PNG, "application/pdf")  # a PNG declared as a PDF, hash and size right
    arrive(doc_id, PNG, "application/pdf")
    assert verify(doc_id) == "rejected" and documents.get(doc_id).reason == "content_type_mismatch"


def test_a_stored_object_over_the_limit_is_too_large_without_being_read(docs_env, monkeypatch):
    from chalicelib import documents

    doc_id = new_document(docs_env)
    monkeypatch.setenv("HUB_DOCUMENT_MAX_BYTES", "100")  # the limit went down after the slot was issued
    arrive(doc_id, PDF)
    assert verify(doc_id) == "rejected" and documents.get(doc_id).reason == "too_large"


def test_an_event_for_a_vanished_object_rejects_it_as_missing(docs_env):
    from chalicelib import documents

    doc_id = new_document(docs_env)
    assert verify(doc_id) == "rejected" and documents.get(doc_id).reason == "missing"


def test_an_upload_after_the_link_expired_is_rejected(docs_env, monkeypatch):
    from chalicelib import documents

    monkeypatch.setenv("HUB_DOCUMENT_UPLOAD_GRACE", "0")
    doc_id = new_document(docs_env, now=time.time() - 3600)  # the slot was issued an hour ago
    arrive(doc_id, PDF)  # moto keeps no expiry: the bytes arrive now
    assert verify(doc_id) == "rejected" and documents.get(doc_id).reason == "upload_expired"


def test_a_rerun_changes_nothing(docs_env):
    from chalicelib import documents

    good, bad = new_document(docs_env), new_document(docs_env, PNG, "image/png")
    arrive(good, PDF)
    arrive(bad, PDF, "image/png")
    assert (verify(good), verify(bad)) == ("verified", "rejected")
    before = {d: documents.get(d) for d in (good, bad)}
    for _ in range(3):
        assert (verify(good), verify(bad)) == ("verified", "rejected")
    assert {d: documents.get(d) for d in (good, bad)} == before


def test_a_second_put_that_replaces_verified_bytes_unversioned_is_caught(docs_env):
    from chalicelib import documents
    from chalicelib.errors import HubError

    doc_id = verified_document(docs_env)
    arrive(doc_id, PDF[:-1] + b"!")  # the link is still valid for a while: a second PUT
    assert verify(doc_id) == "rejected"
    assert documents.get(doc_id).reason == "replaced" and stored_keys() == []
    with pytest.raises(HubError):
        documents.require_verified({"document_id": doc_id, "sha256": sha(PDF), "media_type": "application/pdf",
                                    "size": len(PDF)})


def test_with_versioning_the_verified_version_is_pinned(docs_env):
    from chalicelib import aws, documents

    bucket = documents.document_settings().bucket
    aws.client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    doc_id = new_document(docs_env)
    first = arrive(doc_id, PDF)
    assert verify(doc_id, version_id=first["VersionId"]) == "verified"
    arrive(doc_id, PDF[:-1] + b"!")  # a second PUT makes a new version; the verified one stays
    assert verify(doc_id) == "verified"
    doc = documents.get(doc_id)
    assert doc.object_version == first["VersionId"]
    url = documents.download_url(doc_id)
    assert parse_qs(urlsplit(url).query)["versionId"] == [first["VersionId"]]
    assert requests.get(url, timeout=10).content == PDF  # moto in-process answers `requests` too


def test_keys_outside_the_layout_or_without_a_record_are_ignored(docs_env):
    from chalicelib import documents

    bucket = documents.document_settings().bucket
    assert documents.verify_object(bucket, "elsewhere/file.pdf") is None
    assert documents.verify_object(bucket, "documents/sz-registry/doc_" + "a" * 32) is None
    assert documents.verify_object("another-bucket", documents.object_key("sz-registry", "doc_" + "a" * 32)) is None
    doc_id = new_document(docs_env)
    arrive(doc_id, PDF, partner_id="bj-registry")  # the right id under another partner's prefix
    assert verify(doc_id, partner_id="bj-registry") is None
    assert documents.get(doc_id).state == "pending"


def test_s3_and_eventbridge_events_run_the_verifier(docs_env):
    from chalicelib import documents
    from localmode.s3_events import eventbridge_object_created, s3_notification

    bucket = documents.document_settings().bucket
    one, two = new_document(docs_env), new_document(docs_env)
    for doc_id in (one, two):
        arrive(doc_id, PDF)
    key_one, key_two = documents.object_key("sz-registry", one), documents.object_key("sz-registry", two)
    event = s3_notification(bucket, key_one, len(PDF), '"etag"', REGION)
    assert documents.handle_s3_event(event) == {"documents": [{"key": key_one, "state": "verified"}]}
    assert documents.handle_s3_event(eventbridge_object_created(bucket, key_two, len(PDF), "e", REGION)) == {
        "documents": [{"key": key_two, "state": "verified"}]}
    assert documents.handle_s3_event({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == {"documents": []}
    removed = {"Records": [{**event["Records"][0], "eventName": "ObjectRemoved:Delete"}]}
    assert documents.handle_s3_event(removed) == {"documents": []}


def test_s3_event_keys_are_url_decoded(docs_env):
    from chalicelib import documents

    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": "b"}, "object": {"key": "documents/a+b/c%2Bd"}}}
    assert documents._objects_in({"Records": [record]}) == [("b", "documents/a b/c+d", None)]


def test_a_failing_record_does_not_stop_the_others_and_the_invocation_fails(docs_env, monkeypatch):
    from chalicelib import documents
    from localmode.s3_events import s3_notification

    bucket = documents.document_settings().bucket
    good = new_document(docs_env)
    arrive(good, PDF)
    real = documents.verify_object

    def flaky(b, key, version=None, now=None):
        if key.endswith("doc_" + "b" * 32):
            raise RuntimeError("throttled")
        return real(b, key, version, now)

    monkeypatch.setattr(documents, "verify_object", flaky)
    records = [s3_notification(bucket, documents.object_key("sz-registry", "doc_" + "b" * 32), 1, "e", REGION),
               s3_notification(bucket, documents.object_key("sz-registry", good), len(PDF), "e", REGION)]
    with pytest.raises(RuntimeError):
        documents.handle_s3_event({"Records": [r["Records"][0] for r in records]})
    assert documents.get(good).state == "verified"


# --------------------------------------------------------------------------------------------------
# 3. references and downloads


def _ref(doc_id: str, data: bytes = PDF, media_type: str = "application/pdf", **override) -> dict:
    return {"document_id": doc_id, "sha256": sha(data), "media_type": media_type, "size": len(data), **override}


def _refused(ref, **kw) -> dict:
    from chalicelib import documents
    from chalicelib.errors import HubError

    with pytest.raises(HubError) as caught:
        documents.require_verified(ref, **kw)
    assert (caught.value.status, caught.value.code) == (422, "document_not_verified")
    [detail] = caught.value.details
    return detail


def test_require_verified_accepts_the_exact_reference(docs_env):
    from chalicelib import documents

    doc_id = verified_document(docs_env)
    doc = documents.require_verified(_ref(doc_id))
    assert doc.reference() == _ref(doc_id)
    assert documents.require_verified(_ref(doc_id), partner_id="sz-registry").document_id == doc_id


def test_require_verified_refuses_pending_rejected_missing_and_mismatched(docs_env):
    pending = new_document(docs_env)
    rejected = new_document(docs_env)
    arrive(rejected, PDF + b"x")
    assert verify(rejected) == "rejected"
    verified = verified_document(docs_env)

    assert _refused(_ref(pending)) == {"field": "document.document_id", "code": "pending",
                                       "message": "the document is pending"}
    assert _refused(_ref(rejected))["code"] == "rejected"
    assert _refused(_ref("doc_" + "a" * 32))["code"] == "not_found"
    assert _refused(_ref("../../etc/passwd"))["code"] == "not_found"
    assert _refused({"sha256": sha(PDF)})["code"] == "not_found"
    assert _refused("doc_x")["code"] == "invalid"
    assert _refused(_ref(verified), partner_id="bj-registry")["code"] == "not_found"
    for field, value in (("sha256", sha(b"other")), ("size", len(PDF) + 1), ("size", str(len(PDF))),
                         ("size", float(len(PDF))), ("media_type", "image/png")):
        detail = _refused(_ref(verified, **{field: value}), field="data.scans[0]")
        assert detail["field"] == f"data.scans[0].{field}" and detail["code"] == "mismatch"
    for field in ("sha256", "size", "media_type"):
        ref = _ref(verified)
        del ref[field]
        assert _refused(ref)["code"] == "mismatch"


def test_require_verified_refuses_a_document_past_its_retention(docs_env):
    doc_id = verified_document(docs_env)
    assert _refused(_ref(doc_id), now=time.time() + 401 * 86400)["code"] == "not_found"


def test_download_url_only_for_verified_documents(docs_env):
    from chalicelib import documents
    from chalicelib.errors import HubError

    doc_id = verified_document(docs_env)
    url = documents.download_url(doc_id)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["900"] and "versionId" not in query
    assert urlsplit(url).path.endswith(f"/documents/sz-registry/{doc_id}")
    assert parse_qs(urlsplit(documents.download_url(doc_id, expires_s=60)).query)["X-Amz-Expires"] == ["60"]
    with pytest.raises(ValueError):
        documents.download_url(doc_id, expires_s=8 * 86400)
    with pytest.raises(HubError) as caught:
        documents.download_url(new_document(docs_env))
    assert caught.value.status == 422
    with pytest.raises(HubError) as caught:
        documents.download_url("doc_" + "a" * 32)
    assert caught.value.status == 404


def test_retention_rules_cover_the_media_types_and_fit_the_bucket_lifecycle():
    from chalicelib import documents
    from infra.fragment import load_fragment

    rules = documents.retention_rules().media_types
    assert {"application/pdf", "image/jpeg", "image/png", "image/tiff", "application/ofd", "text/csv",
            "application/zip"} <= set(rules)
    [lifecycle] = load_fragment()["Resources"]["DocumentsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    # the record must not outlive the object it points at
    assert max(rule.retention_days for rule in rules.values()) <= lifecycle["ExpirationInDays"]
    assert rules["image/png"].starts_right(PNG) and not rules["application/pdf"].starts_right(PNG)


# --------------------------------------------------------------------------------------------------
# against a moto server: the partner's real PUT


def test_put_to_the_link_with_the_matching_bytes_is_verified_and_downloadable(live):
    from chalicelib import documents

    status, answer = ask(live, slot_body())
    assert status == 201 and answer["upload_url"].startswith(os.environ["HUB_AWS_ENDPOINT"])
    assert put(answer["upload_url"], PDF) == 200
    assert verify(answer["document_id"]) == "verified"
    download = requests.get(documents.download_url(answer["document_id"]), timeout=10)
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["Content-Type"] == "application/pdf"


@pytest.mark.parametrize("data, reason", [
    (PDF.replace(b"page 1", b"page 2"), "hash_mismatch"),
    (PDF + b"trailing", "size_mismatch"),
    (PDF[:100], "size_mismatch"),
])
def test_put_of_other_bytes_is_accepted_by_moto_and_rejected_by_the_verifier(live, data, reason):
    from chalicelib import documents

    _, answer = ask(live, slot_body())
    # AWS refuses a length other than the signed Content-Length (403); moto stores it.
    assert put(answer["upload_url"], data) == 200
    assert verify(answer["document_id"]) == "rejected"
    assert documents.get(answer["document_id"]).reason == reason


def test_empty_body_is_rejected(live):
    """urllib without a Content-Type sends application/x-www-form-urlencoded: moto stores an empty body."""
    from chalicelib import aws, documents

    _, first = ask(live, slot_body())
    request = urllib.request.Request(first["upload_url"], data=PDF, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    stored = aws.client("s3").head_object(Bucket=documents.document_settings().bucket,
                                          Key=documents.object_key("sz-registry", first["document_id"]))
    assert stored["ContentLength"] == 0  # what moto does (AWS: 403, the signed Content-Type differs)
    assert verify(first["document_id"]) == "rejected"
    assert documents.get(first["document_id"]).reason == "size_mismatch"

    _, second = ask(live, slot_body())
    assert put(second["upload_url"], b"") == 200
    assert verify(second["document_id"]) == "rejected"
    assert documents.get(second["document_id"]).reason == "size_mismatch"


def test_put_with_another_content_type_is_rejected(live):
    from chalicelib import documents

    _, answer = ask(live, slot_body())
    assert put(answer["upload_url"], PDF, "image/png") == 200  # AWS: 403, the type is signed
    assert verify(answer["document_id"]) == "rejected"
    assert documents.get(answer["document_id"]).reason == "content_type_mismatch"


def test_expired_link_moto_stores_the_put_and_the_verifier_rejects_it(live, monkeypatch):
    from chalicelib import documents

    monkeypatch.setenv("HUB_DOCUMENT_UPLOAD_TTL", "1")
    monkeypatch.setenv("HUB_DOCUMENT_UPLOAD_GRACE", "0")
    _, answer = ask(live, slot_body())
    assert parse_qs(urlsplit(answer["upload_url"]).query)["X-Amz-Expires"] == ["1"]
    time.sleep(2.5)
    assert put(answer["upload_url"], PDF) == 200  # moto does not check X-Amz-Expires (AWS: 403)
    assert verify(answer["document_id"]) == "rejected"
    assert documents.get(answer["document_id"]).reason == "upload_expired"


def _big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(64 * 1024)
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.7\n")
        digest.update(b"%PDF-1.7\n")
        left = size - 9
        while left:
            piece = block[:min(left, len(block))]
            fh.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


@pytest.mark.parametrize("size", [1_000_000, 20_000_000])
def test_large_uploads_are_verified_in_flat_memory(live, tmp_path, size):
    path = tmp_path / "scan.pdf"
    digest = _big_file(path, size)
    status, answer = ask(live, {"sha256": digest, "size": size, "media_type": "application/pdf"})
    assert status == 201
    with path.open("rb") as fh:  # streamed from the file, with its Content-Length
        assert put(answer["upload_url"], fh) == 200
    # warm up: clients, service models and the first connections are not the verifier's memory
    _, warm = ask(live, slot_body())
    assert put(warm["upload_url"], PDF) == 200
    assert verify(warm["document_id"]) == "verified"
    tracemalloc.start()
    try:
        state = verify(answer["document_id"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state == "verified"
    # measured ~0.55 MB for both sizes: chunks of 256 KiB, never the whole file
    assert peak < 1024 * 1024, f"peak {peak} bytes while verifying {size} bytes"


def test_local_driver_verifies_uploads_and_stops(live):
    from chalicelib import documents
    from localmode.s3_events import drive_uploads

    seen: list[dict] = []

    def handler(event, context):
        seen.append(event)
        assert context.function_name == "verify_document"
        return documents.handle_s3_event(event)

    _, answer = ask(live, slot_body())
    stop = threading.Event()
    thread = threading.Thread(target=drive_uploads, args=(stop, handler, documents.document_settings().bucket,
                                                          REGION), kwargs={"interval_s": 0.05}, daemon=True)
    thread.start()
    try:
        assert put(answer["upload_url"], PDF) == 200
        deadline = time.monotonic() + 15
        while documents.get(answer["document_id"]).state == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert documents.get(answer["document_id"]).state == "verified"
        time.sleep(0.3)  # more polls: an object already handled is not handed over again
        key = documents.object_key("sz-registry", answer["document_id"])
        mine = [e for e in seen if e["Records"][0]["s3"]["object"]["key"] == key]
        assert len(mine) == 1
        record = mine[0]["Records"][0]
        assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
        assert record["awsRegion"] == REGION and record["s3"]["bucket"]["arn"].startswith("arn:aws-cn:s3:::")
        assert record["s3"]["object"]["size"] == len(PDF)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_local_driver_retries_a_failing_handler_then_gives_up(live):
    from chalicelib import documents
    from localmode.s3_events import drive_uploads

    calls: list[str] = []
    _, answer = ask(live, slot_body())
    assert put(answer["upload_url"], PDF) == 200
    key = documents.object_key("sz-registry", answer["document_id"])

    def handler(event, context):
        if event["detail"]["object"]["key"] == key:
            calls.append(key)
            raise RuntimeError("transient")

    stop = threading.Event()
    thread = threading.Thread(target=drive_uploads, args=(stop, handler, documents.document_settings().bucket, REGION),
                              kwargs={"interval_s": 0.05, "shape": "eventbridge", "max_attempts": 3}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(calls) == 3
