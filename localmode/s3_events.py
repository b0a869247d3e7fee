"""The S3 event source in local mode: `chalice local` runs no S3 handlers and moto sends no
notifications to a function, so this driver polls the documents bucket and calls the same handler
Lambda would, with an event shaped like AWS's (one object per invocation, as S3 sends them).

* Every object under `documents/` whose ETag it has not handled yet is handed over: uploads made
  while local mode was down are judged when it starts again (judging is idempotent).
* A handler that raises is called again on later polls, at most `max_attempts` times for that
  object version (Lambda's asynchronous invocation: one call and two retries), then left, logged.
* Bounded: at most `max_per_poll` calls per poll, `stop` checked between calls; the memory held is
  one ETag per object currently in the prefix.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote_plus

from chalicelib import aws
from chalicelib.observability import logger

FUNCTION_NAME = "verify_document"


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def s3_notification(bucket: str, key: str, size: int, etag: str, region: str,
                    version_id: str | None = None) -> dict[str, Any]:
    """An `s3:ObjectCreated:Put` event notification (event version 2.1), as S3 invokes Lambda with."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"'),
                           "sequencer": f"{time.time_ns():X}"}
    if version_id and version_id != "null":
        obj["versionId"] = version_id
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": _now_iso(),
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "local"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "local-documents",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "local"},
                          "arn": f"arn:{_partition(region)}:s3:::{bucket}"},
               "object": obj},
    }]}


def eventbridge_object_created(bucket: str, key: str, size: int, etag: str, region: str,
                               version_id: str | None = None) -> dict[str, Any]:
    """The same upload as an EventBridge "Object Created" event (bucket with EventBridge notifications)."""
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"'), "sequencer": f"{time.time_ns():X}"}
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": "000000000000", "time": _now_iso()[:19] + "Z", "region": region,
            "resources": [f"arn:{_partition(region)}:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                       "request-id": uuid.uuid4().hex[:16].upper(), "requester": "000000000000",
                       "source-ip-address": "127.0.0.1", "reason": "PutObject"}}


SHAPES = {"s3": s3_notification, "eventbridge": eventbridge_object_created}


def drive_uploads(stop: threading.Event, handler: Callable[[dict, Any], Any], bucket: str, region: str, *,
                  prefix: str = "documents/", interval_s: float = 0.5, shape: str = "s3",
                  max_per_poll: int = 100, max_attempts: int = 3) -> None:
    from localmode.drivers import LocalContext

    make_event = SHAPES[shape]
    s3 = aws.client("s3")
    handled: dict[str, str] = {}  # key -> ETag handed to the handler (or given up on)
    attempts: dict[tuple[str, str], int] = {}
    while not stop.is_set():
        try:
            present: dict[str, tuple[str, int]] = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    present[obj["Key"]] = (obj["ETag"], int(obj["Size"]))
            calls = 0
            for key, (etag, size) in present.items():
                if stop.is_set() or calls >= max_per_poll:
                    break
                if handled.get(key) == etag:
                    continue
                calls += 1
                try:
                    handler(make_event(bucket, key, size, etag, region), LocalContext(FUNCTION_NAME))
                except Exception:
                    tries = attempts.get((key, etag), 0) + 1
                    attempts[(key, etag)] = tries
                    if tries < max_attempts:
                        logger.exception("upload handler failed; retrying", extra={"key": key, "attempt": tries})
                        continue
                    logger.exception("upload handler failed; giving up", extra={"key": key, "attempt": tries})
                handled[key] = etag
                attempts.pop((key, etag), None)
            for key in [k for k in handled if k not in present]:
                del handled[key]
            for pair in [p for p in attempts if p[0] not in present]:
                del attempts[pair]
        except Exception:
            logger.exception("upload driver error; retrying")
            stop.wait(1.0)
        stop.wait(interval_s)
