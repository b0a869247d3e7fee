"""Documents (CONTRACT.md "Documents"): a claim check. Scans and certificates never travel in an event.

1. `request_upload`: a partner asks for an upload slot, signed exactly like an event (the same
   signature, size and 401 rules). The answer (201) is a `document_id`, a presigned S3 PUT bound to the
   declared Content-Type and Content-Length, and its expiry. One conditional PutItem stores the
   document record (state `pending`) and the first answer, so a 2xx means durable and the same
   webhook-id from the same partner gets the first answer again (200, `"duplicate": true`), as events do.
2. `verify_object` / `handle_s3_event`: when the object arrives (S3 ObjectCreated, or the local
   driver of `localmode/s3_events.py`) the hub reads what was actually stored, streaming it
   (sha256 over chunks, bytes counted), and moves the record once, conditionally, to `verified` or to
   `rejected` with a reason. The storage policy is not trusted: size, type, expiry and hash are
   checked here even though S3 also refuses a PUT whose signed Content-Length / Content-Type differ or
   whose link has expired (moto checks none of those).
3. `get`, `require_verified` (what a relay calls before it forwards a reference), `require_verified_upload`
   (the same, for the partner's own upload: a rejection says why), `download_url`.

Storage: one item per document in the documents table (key `document_id`). The document id is
derived from (partner, webhook-id), so the record is also the dedup key: no second item, no
transaction. The object lives at `documents/<partner_id>/<document_id>` in the documents bucket.
The events table is deliberately not used: its stream feeds every INSERT to routing, which would
fail on a document record and hold the shard.

Authorisation of reads (which partners may fetch which document: the participants of the case or
relay that references it) comes with the case record; `get` and `download_url` do not check it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from chalicelib import aws
from chalicelib.errors import HubError
from chalicelib.observability import log_keys, logger, metrics
from chalicelib.partners import PARTNER_ID_PATTERN
from chalicelib.settings import get_settings

RETENTION_FILE = Path(__file__).with_name("data") / "retention.json"
KEY_PREFIX = "documents/"
CHUNK_BYTES = 256 * 1024
MAX_PRESIGN_S = 7 * 86400  # SigV4 presigned URLs live at most 7 days

PENDING, VERIFIED, REJECTED = "pending", "verified", "rejected"
# Why a document was rejected.
MISSING = "missing"
TOO_LARGE = "too_large"
SIZE_MISMATCH = "size_mismatch"
HASH_MISMATCH = "hash_mismatch"
CONTENT_TYPE_MISMATCH = "content_type_mismatch"
UPLOAD_EXPIRED = "upload_expired"
REPLACED = "replaced"  # the object changed after it was verified (only possible without versioning)

_DOCUMENT_ID = re.compile(r"^doc_[a-z2-7]{32}$")
_OBJECT_KEY = re.compile(r"^documents/(?P<partner>[a-z0-9][a-z0-9-]{1,62})/(?P<document>doc_[a-z2-7]{32})$")
assert PARTNER_ID_PATTERN == r"^[a-z0-9][a-z0-9-]{1,62}$", "keep _OBJECT_KEY in step with partner ids"


# --------------------------------------------------------------------------------------------------
# settings and data


@dataclass(frozen=True)
class DocumentSettings:
    """Read from the environment on each use (cheap), so tests and local mode can change them."""

    table: str
    bucket: str
    max_bytes: int
    upload_ttl_s: int
    upload_grace_s: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DocumentSettings":
        e = os.environ if env is None else env
        return cls(
            table=e.get("HUB_DOCUMENTS_TABLE") or get_settings().documents_table,
            bucket=get_settings().documents_bucket,
            max_bytes=int(e.get("HUB_DOCUMENT_MAX_BYTES", str(200 * 1024 * 1024))),
            upload_ttl_s=int(e.get("HUB_DOCUMENT_UPLOAD_TTL", "900")),
            # S3 refuses a PUT on an expired link; the verifier's own check (stores that do not, like
            # moto) allows this much after the expiry for a large upload still in flight.
            upload_grace_s=int(e.get("HUB_DOCUMENT_UPLOAD_GRACE", "3600")),
        )


def document_settings() -> DocumentSettings:
    return DocumentSettings.from_env()


class MediaTypeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    retention_days: int = Field(ge=1, le=36500)
    magic: tuple[str, ...] = ()

    @field_validator("magic")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not re.fullmatch(r"(?:[0-9a-f]{2}){1,16}", prefix):
                raise ValueError("magic prefixes are 1-16 bytes of lowercase hex")
        return value

    def starts_right(self, head: bytes) -> bool:
        return not self.magic or any(head.startswith(bytes.fromhex(p)) for p in self.magic)


class RetentionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    media_types: dict[str, MediaTypeRule] = Field(min_length=1)

    @field_validator("media_types")
    @classmethod
    def _names(cls, value: dict[str, MediaTypeRule]) -> dict[str, MediaTypeRule]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", name):
                raise ValueError(f"{name!r} is not a lowercase media type without parameters")
        return value


@functools.lru_cache(maxsize=1)
def retention_rules() -> RetentionFile:
    return RetentionFile.model_validate_json(RETENTION_FILE.read_bytes())


# --------------------------------------------------------------------------------------------------
# the record


def document_id(partner_id: str, webhook_id: str) -> str:
    """The same (partner, webhook-id) always names the same document: the record is its own dedup key."""
    digest = hashlib.sha256(f"document\x1f{partner_id}\x1f{webhook_id}".encode()).digest()[:20]
    return "doc_" + base64.b32encode(digest).decode().rstrip("=").lower()


def object_key(partner_id: str, doc_id: str) -> str:
    return f"{KEY_PREFIX}{partner_id}/{doc_id}"


@dataclass(frozen=True)
class Document:
    document_id: str
    partner_id: str
    webhook_id: str
    key: str
    sha256: str
    size: int
    media_type: str
    state: str
    created_at: float
    upload_expires_at: int
    expires_at: int  # when the record (and, by lifecycle, the object) may go
    answer: dict[str, Any]
    request_sha256: str
    reason: str | None = None
    checked_at: float | None = None
    object_etag: str | None = None
    object_version: str | None = None  # set when the bucket is versioned: downloads pin it

    def reference(self) -> dict[str, Any]:
        """What an event carries to point at this document."""
        return {"document_id": self.document_id, "sha256": self.sha256, "media_type": self.media_type,
                "size": self.size}

    @property
    def pinned(self) -> bool:
        return self.object_version not in (None, "", "null")

    def to_item(self) -> dict[str, Any]:
        item = {
            "document_id": {"S": self.document_id},
            "partner_id": {"S": self.partner_id},
            "webhook_id": {"S": self.webhook_id},
            "object_key": {"S": self.key},
            "sha256": {"S": self.sha256},
            "size": {"N": str(self.size)},
            "media_type": {"S": self.media_type},
            "state": {"S": self.state},
            "created_at": {"N": repr(self.created_at)},
            "upload_expires_at": {"N": str(self.upload_expires_at)},
            "expires_at": {"N": str(self.expires_at)},
            "answer": {"S": json.dumps(self.answer, separators=(",", ":"))},
            "request_sha256": {"S": self.request_sha256},
        }
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Document":
        def opt(name: str, kind: str = "S") -> Any:
            return item[name][kind] if name in item else None

        checked = opt("checked_at", "N")
        return cls(
            document_id=item["document_id"]["S"], partner_id=item["partner_id"]["S"],
            webhook_id=item["webhook_id"]["S"], key=item["object_key"]["S"], sha256=item["sha256"]["S"],
            size=int(item["size"]["N"]), media_type=item["media_type"]["S"], state=item["state"]["S"],
            created_at=float(item["created_at"]["N"]), upload_expires_at=int(item["upload_expires_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]), answer=json.loads(item["answer"]["S"]),
            request_sha256=item["request_sha256"]["S"], reason=opt("reason"),
            checked_at=float(checked) if checked is not None else None,
            object_etag=opt("object_etag"), object_version=opt("object_version"),
        )


def get(doc_id: str) -> Document | None:
    """The document record, whatever its state (None if unknown). No authorisation check (see module)."""
    if not isinstance(doc_id, str) or not _DOCUMENT_ID.match(doc_id):
        return None
    found = aws.client("dynamodb").get_item(
        TableName=document_settings().table, Key={"document_id": {"S": doc_id}}, ConsistentRead=True,
    ).get("Item")
    return Document.from_item(found) if found else None


# --------------------------------------------------------------------------------------------------
# 1. the upload slot


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", strict=True)
    size: int = Field(strict=True, ge=1)
    media_type: str = Field(strict=True, max_length=100)

    @field_validator("size")
    @classmethod
    def _not_too_large(cls, value: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_bytes")
        if limit is not None and value > limit:
            raise PydanticCustomError("too_large", "at most {limit} bytes", {"limit": limit})
        return value

    @field_validator("media_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in retention_rules().media_types:
            raise PydanticCustomError("unsupported_media_type", "one of: {allowed}",
                                      {"allowed": ", ".join(sorted(retention_rules().media_types))})
        return value


def parse_upload_request(text: str, max_bytes: int) -> UploadRequest:
    """400 if the body is not JSON; 422 with the failing fields if it is not a valid slot request."""
    from chalicelib.ingest import parse_json

    parsed = parse_json(text)
    try:
        return UploadRequest.model_validate(parsed, context={"max_bytes": max_bytes})
    except ValidationError as exc:
        details = []
        for err in exc.errors(include_input=False, include_url=False):
            if err["type"] == "extra_forbidden":  # the unknown key is not echoed: it could be an ID number
                details.append({"field": "body", "code": "extra_forbidden", "message": "unknown field"})
            else:
                details.append({"field": ".".join(str(p) for p in err["loc"]) or "body", "code": err["type"],
                                "message": err["msg"]})
        raise HubError(422, "invalid_document_request",
                       "The body must be {sha256: 64 lowercase hex, size: bytes, media_type}.", details) from None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duplicate(doc: Document) -> tuple[int, dict[str, Any]]:
    return 200, {**doc.answer, "duplicate": True}


def request_upload(partner_id: str, headers: Mapping[str, str], raw_body: bytes,
                   now: float | None = None) -> tuple[int, dict[str, Any]]:
    """`POST /v1/partners/{partner_id}/documents`: 201 with a fresh slot, 200 with the first answer for a
    repeated webhook-id; otherwise HubError (413, 400, 401, 422) and nothing stored."""
    from chalicelib.ingest import verified_request

    settings = get_settings()
    config = document_settings()
    now = time.time() if now is None else now
    partner, msg_id, text = verified_request(partner_id, headers, raw_body, now)

    doc_id = document_id(partner.id, msg_id)
    try:
        request = parse_upload_request(text, config.max_bytes)
    except HubError:
        # A signed retry of a webhook-id that already got a slot gets its first answer, whatever it says now.
        stored = get(doc_id)
        if stored is not None:
            return _duplicate(stored)
        raise

    key = object_key(partner.id, doc_id)
    upload_expires_at = int(now) + config.upload_ttl_s
    upload_url = aws.client("s3").generate_presigned_url(
        "put_object",
        # SigV4 signs both headers: S3 refuses a PUT of another type or length. The verifier checks anyway.
        Params={"Bucket": config.bucket, "Key": key, "ContentType": request.media_type,
                "ContentLength": request.size},
        ExpiresIn=config.upload_ttl_s,
    )
    answer = {"document_id": doc_id, "upload_url": upload_url, "expires_at": _iso(upload_expires_at)}
    doc = Document(
        document_id=doc_id, partner_id=partner.id, webhook_id=msg_id, key=key, sha256=request.sha256,
        size=request.size, media_type=request.media_type, state=PENDING, created_at=now,
        upload_expires_at=upload_expires_at,
        # Until verified, the record lives as long as a webhook-id is remembered.
        expires_at=int(now) + max(settings.dedup_retention_s, config.upload_ttl_s + config.upload_grace_s),
        answer=answer, request_sha256=hashlib.sha256(raw_body).hexdigest(),
    )
    try:
        aws.client("dynamodb").put_item(TableName=config.table, Item=doc.to_item(),
                                        ConditionExpression="attribute_not_exists(document_id)")
    except Exception as exc:
        if not aws.is_conditional_check_failure(exc):
            raise
        stored = get(doc_id)
        if stored is None:  # only if the record expired between the two calls
            raise HubError(409, "conflict", "Retry the request.") from None
        if stored.request_sha256 != doc.request_sha256:
            logger.warning("webhook-id reused with a different body", extra={"document_id": doc_id})
        metrics.add_metric(name="DuplicateDocumentRequests", unit="Count", value=1)
        return _duplicate(stored)
    logger.info("document slot issued", extra={"document_id": doc_id, "media_type": doc.media_type,
                                                "size": doc.size})
    metrics.add_metric(name="DocumentSlots", unit="Count", value=1)
    return 201, answer


def answer_upload_request(partner_id: str, headers: Mapping[str, str], raw_body: bytes) -> tuple[int, dict[str, Any]]:
    """The route's (status, body), as `chalicelib.http.receive_event` does for events."""
    try:
        return request_upload(partner_id, headers, raw_body)
    except HubError as exc:
        logger.info("document request refused", extra={"status": exc.status, "code": exc.code})
        metrics.add_metric(name=f"DocumentRefused{exc.status}", unit="Count", value=1)
        return exc.status, exc.body()
    except Exception:
        logger.exception("document request failed")
        metrics.add_metric(name="DocumentIntakeErrors", unit="Count", value=1)
        return 503, HubError(503, "temporarily_unavailable",
                             "The hub could not issue an upload slot; retry later.").body()


# --------------------------------------------------------------------------------------------------
# 2. verification of what arrived


def _error_code(exc: Exception) -> str:
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")


def _not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("NoSuchKey", "NoSuchVersion", "404", "NotFound")


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _finish(doc: Document, state: str, reason: str | None, now: float, *, etag: str | None = None,
            version: str | None = None, observed_size: int | None = None,
            expect_state: str = PENDING, expect_etag: str | None = None) -> str:
    """Move the record once (conditional on the state read); return the state it ends in."""
    settings = get_settings()
    if state == VERIFIED:
        days = retention_rules().media_types[doc.media_type].retention_days
        keep_until = int(doc.created_at) + max(days * 86400, settings.dedup_retention_s)
    else:
        keep_until = int(now) + settings.dedup_retention_s
    names = {"#state": "state"}
    values: dict[str, Any] = {":new": {"S": state}, ":expect": {"S": expect_state}, ":at": {"N": repr(now)},
                              ":keep": {"N": str(keep_until)}}
    sets = ["#state = :new", "checked_at = :at", "expires_at = :keep"]
    if reason:
        sets.append("reason = :reason")
        values[":reason"] = {"S": reason}
    if etag:
        sets.append("object_etag = :etag")
        values[":etag"] = {"S": etag}
    if version:
        sets.append("object_version = :version")
        values[":version"] = {"S": version}
    if observed_size is not None:
        sets.append("observed_size = :observed")
        values[":observed"] = {"N": str(observed_size)}
    condition = "#state = :expect"
    if expect_etag is not None:
        condition += " AND object_etag = :old_etag"
        values[":old_etag"] = {"S": expect_etag}
    try:
        aws.client("dynamodb").update_item(
            TableName=document_settings().table, Key={"document_id": {"S": doc.document_id}},
            UpdateExpression="SET " + ", ".join(sets), ConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )
    except Exception as exc:
        if not aws.is_conditional_check_failure(exc):
            raise
        current = get(doc.document_id)  # someone else decided first: theirs stands
        return current.state if current else state
    extra = {"document_id": doc.document_id, "state": state, "reason": reason}
    if state == VERIFIED:
        logger.info("document verified", extra=extra)
        metrics.add_metric(name="DocumentsVerified", unit="Count", value=1)
    else:
        logger.warning("document rejected", extra=extra)
        metrics.add_metric(name="DocumentsRejected", unit="Count", value=1)
    return state


def _discard(bucket: str, key: str, version: str | None) -> None:
    """A rejected upload is not kept (it may be someone's ID card scan). Best effort."""
    args = {"Bucket": bucket, "Key": key}
    if version not in (None, "", "null"):
        args["VersionId"] = version
    try:
        aws.client("s3").delete_object(**args)
    except Exception:
        logger.exception("could not delete a rejected upload", extra={"key": key})


def _head(bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return aws.client("s3").head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise


def _recheck_final(doc: Document, bucket: str, key: str, now: float) -> str:
    """A decided document does not change, except that verified bytes replaced in an unversioned
    bucket (a second PUT with the still-valid link) must not be served: that becomes `replaced`."""
    if doc.state != VERIFIED or doc.pinned or not doc.object_etag:
        return doc.state
    head = _head(bucket, key)
    if head is None or head["ETag"] == doc.object_etag:
        return doc.state
    state = _finish(doc, REJECTED, REPLACED, now, expect_state=VERIFIED, expect_etag=doc.object_etag)
    if state == REJECTED:
        _discard(bucket, key, None)
    return state


def verify_object(bucket: str, key: str, version_id: str | None = None, now: float | None = None) -> str | None:
    """Check the stored object against its declaration; return the document's state.

    None when the key is not a document's or no record names it (logged, nothing changed). A
    document already verified or rejected is not judged again.
    """
    now = time.time() if now is None else now
    config = document_settings()
    found = _OBJECT_KEY.match(key)
    if bucket != config.bucket or not found:
        logger.warning("object outside the documents layout ignored", extra={"bucket": bucket, "key": key})
        return None
    doc = get(found.group("document"))
    if doc is None or doc.partner_id != found.group("partner") or doc.key != key:
        logger.warning("object with no document record ignored", extra={"key": key})
        return None
    log_keys(document_id=doc.document_id)
    if doc.state != PENDING:
        return _recheck_final(doc, bucket, key, now)

    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id not in (None, "", "null"):
        args["VersionId"] = version_id
    try:
        obj = aws.client("s3").get_object(**args)
    except Exception as exc:
        if _not_found(exc):
            return _finish(doc, REJECTED, MISSING, now)
        raise
    etag, version = obj.get("ETag"), obj.get("VersionId")
    stored_size = int(obj["ContentLength"])
    body = obj["Body"]
    reason: str | None = None
    try:
        last_modified = obj.get("LastModified")
        if stored_size > config.max_bytes:
            reason = TOO_LARGE
        elif stored_size != doc.size:
            reason = SIZE_MISMATCH
        elif last_modified is not None and last_modified.timestamp() > doc.upload_expires_at + config.upload_grace_s:
            reason = UPLOAD_EXPIRED
        elif _base_type(obj.get("ContentType")) != doc.media_type:
            reason = CONTENT_TYPE_MISMATCH
        else:
            reason = _stream_check(body, doc)
    finally:
        body.close()
    if reason is None:
        return _finish(doc, VERIFIED, None, now, etag=etag, version=version, observed_size=stored_size)
    state = _finish(doc, REJECTED, reason, now, etag=etag, version=version, observed_size=stored_size)
    if state == REJECTED:
        _discard(bucket, key, version)
    return state


def _stream_check(body: Any, doc: Document) -> str | None:
    """Hash and count the bytes as they come, never holding more than a chunk."""
    digest = hashlib.sha256()
    count = 0
    head = b""
    for chunk in body.iter_chunks(CHUNK_BYTES):
        count += len(chunk)
        if count > doc.size:
            return SIZE_MISMATCH
        if len(head) < 16:
            head += chunk[:16 - len(head)]
        digest.update(chunk)
    if count != doc.size:
        return SIZE_MISMATCH
    if not retention_rules().media_types[doc.media_type].starts_right(head):
        return CONTENT_TYPE_MISMATCH
    if digest.hexdigest() != doc.sha256:
        return HASH_MISMATCH
    return None


def _objects_in(event: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version) of each created object, from an S3 notification or an EventBridge event."""
    if event.get("source") == "aws.s3" and "detail" in event:  # EventBridge "Object Created"
        if event.get("detail-type") != "Object Created":
            return []
        detail = event["detail"]
        return [(detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("version-id"))]
    found = []
    for record in event.get("Records") or []:  # S3 event notification (a test event has no Records)
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        found.append((s3["bucket"]["name"], unquote_plus(s3["object"]["key"]), s3["object"].get("versionId")))
    return found


def handle_s3_event(event: dict[str, Any]) -> dict[str, Any]:
    """The Lambda handler's work. Every object is judged; if any raised (S3 or DynamoDB trouble), the
    first error is raised afterwards so the invocation is retried (judging is idempotent)."""
    results, failure = [], None
    for bucket, key, version in _objects_in(event):
        try:
            results.append({"key": key, "state": verify_object(bucket, key, version)})
        except Exception as exc:
            logger.exception("document verification failed", extra={"key": key})
            results.append({"key": key, "state": None, "error": type(exc).__name__})
            failure = failure or exc
    if failure is not None:
        raise failure
    return {"documents": results}


# --------------------------------------------------------------------------------------------------
# 3. using a document


def _refuse(field: str, code: str, message: str) -> HubError:
    return HubError(422, "document_not_verified", "The referenced document is missing, not verified, "
                    "or not the one described.", [{"field": field, "code": code, "message": message}])


def require_verified(document_ref: Mapping[str, Any], *, field: str = "document", partner_id: str | None = None,
                     now: float | None = None) -> Document:
    """The verified document a reference {document_id, sha256, media_type, size} points at, or 422.

    `partner_id`, when given, must be the partner that uploaded it.
    """
    now = time.time() if now is None else now
    if not isinstance(document_ref, Mapping):
        raise _refuse(field, "invalid", "a document reference is an object")
    doc = get(document_ref.get("document_id"))  # type: ignore[arg-type]
    if doc is None or doc.expires_at < now or (partner_id is not None and doc.partner_id != partner_id):
        raise _refuse(f"{field}.document_id", "not_found", "no such document")
    if doc.state != VERIFIED:
        raise _refuse(f"{field}.document_id", doc.state, f"the document is {doc.state}")
    for name in ("sha256", "size", "media_type"):
        offered = document_ref.get(name)
        if type(offered) is not type(getattr(doc, name)) or offered != getattr(doc, name):
            raise _refuse(f"{field}.{name}", "mismatch", f"differs from the verified document's {name}")
    return doc


def require_verified_upload(document_ref: Mapping[str, Any], *, field: str, partner_id: str) -> Document:
    """`require_verified` of a document the partner says it uploaded itself. When the verifier rejected
    that upload, the detail says why (hash_mismatch, size_mismatch, upload_expired…): a reason code,
    never a value, and only to the partner that uploaded it."""
    try:
        return require_verified(document_ref, field=field, partner_id=partner_id)
    except HubError as exc:
        found = get(document_ref.get("document_id")) if isinstance(document_ref, Mapping) else None
        if found is not None and found.partner_id == partner_id and found.state == REJECTED and found.reason:
            exc.details = [{"field": f"{field}.document_id", "code": found.reason,
                            "message": f"the uploaded document was rejected: {found.reason}"}]
        raise


def download_url(doc_id: str, expires_s: int = 900) -> str:
    """A presigned GET of a verified document (of the verified version when the bucket is versioned)."""
    if not isinstance(expires_s, int) or not 1 <= expires_s <= MAX_PRESIGN_S:
        raise ValueError(f"expires_s must be 1..{MAX_PRESIGN_S} seconds")
    doc = get(doc_id)
    if doc is None or doc.expires_at < time.time():
        raise HubError(404, "document_not_found", "No such document.")
    if doc.state != VERIFIED:
        raise _refuse("document_id", doc.state, f"the document is {doc.state}")
    params: dict[str, Any] = {"Bucket": document_settings().bucket, "Key": doc.key}
    if doc.pinned:
        params["VersionId"] = doc.object_version
    return aws.client("s3").generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
