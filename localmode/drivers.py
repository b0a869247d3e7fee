"""Event-source drivers: what Lambda does in AWS, done here by threads calling the app's handlers.

Each driver stops when `stop` is set. Failures reported by a handler are retried the way the
matching Lambda event source would: a failed SQS message becomes visible again after its
visibility timeout; a failed stream record is read again from its sequence number.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from chalicelib import aws
from chalicelib.observability import logger


class LocalContext:
    """The parts of a Lambda context Powertools reads."""

    def __init__(self, function_name: str):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/local/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)


def _invoke(handler: Callable[[dict, Any], Any], name: str, event: dict) -> Any:
    return handler(event, LocalContext(name))


def drive_stream(stop: threading.Event, handler: Callable, stream_arn: str, region: str, batch_size: int = 100) -> None:
    streams = aws.client("dynamodbstreams")
    iterators: dict[str, str | None] = {}
    last_shard_scan = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() - last_shard_scan > 5:
                for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
                    if shard["ShardId"] not in iterators:
                        iterators[shard["ShardId"]] = streams.get_shard_iterator(
                            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON",
                        )["ShardIterator"]
                last_shard_scan = time.monotonic()
            busy = False
            for shard_id, iterator in list(iterators.items()):
                if iterator is None:
                    continue
                page = streams.get_records(ShardIterator=iterator, Limit=batch_size)
                records = page.get("Records", [])
                next_iterator = page.get("NextShardIterator")
                if records:
                    busy = True
                    event = {"Records": [{**r, "eventSourceARN": stream_arn, "awsRegion": region} for r in records]}
                    result = _invoke(handler, "route_accepted", event) or {}
                    failures = result.get("batchItemFailures") or []
                    if failures:
                        # Read again from the first failed record, after a pause, as Lambda would.
                        next_iterator = streams.get_shard_iterator(
                            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER",
                            SequenceNumber=failures[0]["itemIdentifier"])["ShardIterator"]
                        stop.wait(1.0)
                iterators[shard_id] = next_iterator
            if not busy:
                stop.wait(0.05)
        except Exception:
            logger.exception("stream driver error; retrying")
            stop.wait(1.0)


def drive_queue(stop: threading.Event, handler: Callable, queue_url: str, queue_arn: str, region: str) -> None:
    sqs = aws.client("sqs")
    while not stop.is_set():
        try:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           AttributeNames=["All"]).get("Messages", [])
            if not messages:
                continue
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
            } for m in messages]}
            result = _invoke(handler, "deliver", event) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures") or []}
            done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages) if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
        except Exception:
            logger.exception("queue driver error; retrying")
            stop.wait(1.0)


def drive_schedule(stop: threading.Event, handler: Callable, interval_s: float, region: str,
                   name: str = "sweep") -> None:
    while not stop.wait(interval_s):
        try:
            _invoke(handler, name, {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "000000000000", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": region, "resources": [], "detail": {}})
        except Exception:
            logger.exception("schedule driver error")


def start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True, name=getattr(target, "__name__", "driver"))
    thread.start()
    return thread


def queue_workers() -> int:
    """How many deliveries run at once (Lambda's concurrency for the queue)."""
    return int(os.environ.get("HUB_LOCAL_DELIVERY_WORKERS", "4"))
