"""Outbound deliveries: the deliveries table is the durable outbox, the queue only a trigger.

States: pending → delivered, or pending → dead after the retry schedule is used up; a dead delivery
is replayed back to pending with the same webhook-id. A pending item past due with nothing working
on it (a crash between the write and the enqueue, a lost message) is re-enqueued by `sweep`.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from chalicelib import aws, signatures
from chalicelib.observability import log_keys, logger, metrics
from chalicelib.partners import get_directory
from chalicelib.settings import get_settings

MAX_SQS_DELAY_S = 900
RETENTION_AFTER_DONE_S = 30 * 86400
_http_lock = threading.Lock()
_http_pool: Any = None


def _http() -> Any:
    global _http_pool
    if _http_pool is None:
        with _http_lock:
            if _http_pool is None:
                import urllib3

                _http_pool = urllib3.PoolManager(num_pools=64, maxsize=8, retries=False)
    return _http_pool


def _table() -> str:
    return get_settings().deliveries_table


def _queue_url() -> str:
    s = get_settings()
    if s.delivery_queue_url:
        return s.delivery_queue_url
    return _resolve_queue_url(s.delivery_queue)


_queue_urls: dict[str, str] = {}


def _resolve_queue_url(name: str) -> str:
    if name not in _queue_urls:
        _queue_urls[name] = aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    return _queue_urls[name]


def enqueue(delivery_id: str, delay_s: float = 0) -> bool:
    """Send the trigger; a failure is logged, not raised: the sweeper re-enqueues past-due items."""
    try:
        aws.client("sqs").send_message(QueueUrl=_queue_url(), MessageBody=json.dumps({"delivery_id": delivery_id}),
                                       DelaySeconds=int(min(max(delay_s, 0), MAX_SQS_DELAY_S)))
        return True
    except Exception:
        logger.exception("enqueue failed; the sweeper will pick the delivery up", extra={"delivery_id": delivery_id})
        metrics.add_metric(name="EnqueueFailures", unit="Count", value=1)
        return False


def _new_item(delivery_id: str, event_id: str, route: str, partner_id: str, event_type: str, body: str,
              now: float) -> dict[str, Any]:
    return {
        "delivery_id": {"S": delivery_id}, "event_id": {"S": event_id}, "route": {"S": route},
        "partner_id": {"S": partner_id}, "type": {"S": event_type}, "body": {"S": body},
        "attempts": {"N": "0"}, "state": {"S": "pending"}, "state_key": {"S": "pending"},
        "due_at": {"N": repr(now)}, "created_at": {"N": repr(now)},
    }


def schedule(delivery_id: str, event_id: str, route: str, partner_id: str, event_type: str, body: str,
             case_key: str | None = None) -> bool:
    """Write the delivery (once: the id is deterministic) and trigger it. True if newly written."""
    now = time.time()
    item = _new_item(delivery_id, event_id, route, partner_id, event_type, body, now)
    if case_key:
        item["case_key"] = {"S": case_key}
    try:
        aws.client("dynamodb").put_item(
            TableName=_table(), Item=item,
            ConditionExpression="attribute_not_exists(delivery_id)")
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise
    enqueue(delivery_id)
    return True


def record_unroutable(stored: Any, route: str, event_type: str, reason: str) -> None:
    """An event that routing could not turn into a delivery becomes a dead letter operators can see."""
    from chalicelib import ids

    record_unroutable_id(ids.delivery_id(stored.event_id, route, "unroutable"), stored.event_id, route, event_type,
                         reason)


def record_unroutable_id(delivery_id: str, event_id: str, route: str, event_type: str, reason: str,
                         partner_id: str = "-", case_ref: tuple[str, str] | None = None) -> None:
    """A dead letter with nothing to send; with the case it belongs to (`case_ref`), so that it stands on
    the case's timeline (the console's lanes) and its audit proof is the case's participants' to read."""
    now = time.time()
    item = _new_item(delivery_id, event_id, route, partner_id, event_type, "", now)
    if case_ref:
        item["case_key"] = {"S": f"{case_ref[0]}#{case_ref[1]}"}
    item.update({"state": {"S": "dead"}, "state_key": {"S": "dead"}, "last_error": {"S": reason[:500]},
                 "dead_at": {"N": repr(now)}, "replayable": {"BOOL": False}})
    try:
        aws.client("dynamodb").put_item(TableName=_table(), Item=item,
                                        ConditionExpression="attribute_not_exists(delivery_id)")
    except Exception as exc:
        if not aws.is_conditional_check_failure(exc):
            raise
    logger.error("event could not be routed", extra={"event_id": event_id, "route": route, "reason": reason})
    metrics.add_metric(name="Unroutable", unit="Count", value=1)


def get(delivery_id: str) -> dict[str, Any] | None:
    item = aws.client("dynamodb").get_item(TableName=_table(), Key={"delivery_id": {"S": delivery_id}},
                                           ConsistentRead=True).get("Item")
    return _plain(item) if item else None


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, typed in item.items():
        (kind, value), = typed.items()
        out[key] = float(value) if kind == "N" else value
    out["attempts"] = int(out.get("attempts", 0))
    return out


def _post(endpoint: str, headers: dict[str, str], body: str, timeout_s: float) -> tuple[int | None, str]:
    import urllib3

    try:
        response = _http().request("POST", endpoint, body=body.encode("utf-8"), headers=headers,
                                   timeout=urllib3.Timeout(total=timeout_s), redirect=False, preload_content=False)
        try:
            response.read(4096, decode_content=False)  # drain a little; the answer's body is not kept
        finally:
            response.release_conn()
        return response.status, f"HTTP {response.status}"
    except Exception as exc:  # timeouts, refused connections, bad URLs: all mean "not acknowledged"
        return None, type(exc).__name__


def attempt(delivery_id: str, now: float | None = None) -> str:
    """One delivery attempt if the delivery is due. Returns what happened (for logs and tests)."""
    now = time.time() if now is None else now
    item = get(delivery_id)
    if item is None or item["state"] != "pending":
        return "not_pending"
    if item["due_at"] > now + 1:
        enqueue(delivery_id, item["due_at"] - now)  # SQS delays 15 min at most: chain the wait
        return "not_due"
    settings = get_settings()
    directory = get_directory()
    partner = directory.get(item["partner_id"])
    seen = item["attempts"]
    if partner is None:
        status, outcome = None, "unknown_partner"
    else:
        stamp = int(now)
        headers = {"content-type": "application/json", "user-agent": "registration-hub/1",
                   **signatures.signed_headers(directory.hub_secret(), delivery_id, stamp, item["body"])}
        status, outcome = _post(partner.endpoint, headers, item["body"], settings.delivery_timeout_s)
    log_keys(delivery_id=delivery_id, partner_id=item["partner_id"], correlation_id=item["event_id"])
    if status is not None and 200 <= status < 300:
        _finish(delivery_id, seen, now, status)
        logger.info("delivered", extra={"event_type": item["type"], "attempt": seen + 1, "status": status})
        metrics.add_metric(name="Delivered", unit="Count", value=1)
        return "delivered"
    schedule_ = settings.retry_schedule
    if seen >= len(schedule_):
        _die(delivery_id, seen, now, status, outcome)
        logger.warning("dead-lettered", extra={"event_type": item["type"], "attempts": seen + 1, "outcome": outcome})
        metrics.add_metric(name="DeadLettered", unit="Count", value=1)
        return "dead"
    wait = schedule_[seen]
    _retry_later(delivery_id, seen, now, now + wait, status, outcome)
    enqueue(delivery_id, wait)
    logger.info("delivery failed, retry scheduled", extra={"attempt": seen + 1, "wait_s": wait, "outcome": outcome})
    metrics.add_metric(name="DeliveryRetries", unit="Count", value=1)
    return "retry"


def _update(delivery_id: str, seen: int, expression: str, values: dict[str, Any], names: dict[str, str]) -> bool:
    """Advance a delivery only from the attempt count we read: two workers cannot both advance it."""
    try:
        aws.client("dynamodb").update_item(
            TableName=_table(), Key={"delivery_id": {"S": delivery_id}}, UpdateExpression=expression,
            ConditionExpression="#state = :pending AND attempts = :seen",
            ExpressionAttributeNames={"#state": "state", **names},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":seen": {"N": str(seen)}, **values})
        return True
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise


def _outcome_values(seen: int, now: float, status: int | None, outcome: str) -> dict[str, Any]:
    return {":attempts": {"N": str(seen + 1)}, ":now": {"N": repr(now)},
            ":status": {"N": str(status or 0)}, ":outcome": {"S": outcome[:200]}}


def _finish(delivery_id: str, seen: int, now: float, status: int) -> bool:
    return _update(delivery_id, seen,
                   "SET #state = :delivered, attempts = :attempts, last_attempt_at = :now, last_status = :status, "
                   "last_error = :outcome, delivered_at = :now, expires_at = :expires REMOVE state_key",
                   {**_outcome_values(seen, now, status, f"HTTP {status}"), ":delivered": {"S": "delivered"},
                    ":expires": {"N": str(int(now) + RETENTION_AFTER_DONE_S)}}, {})


def _die(delivery_id: str, seen: int, now: float, status: int | None, outcome: str) -> bool:
    return _update(delivery_id, seen,
                   "SET #state = :dead, state_key = :dead, attempts = :attempts, last_attempt_at = :now, "
                   "last_status = :status, last_error = :outcome, dead_at = :now, due_at = :now",
                   {**_outcome_values(seen, now, status, outcome), ":dead": {"S": "dead"}}, {})


def _retry_later(delivery_id: str, seen: int, now: float, due: float, status: int | None, outcome: str) -> bool:
    return _update(delivery_id, seen,
                   "SET attempts = :attempts, last_attempt_at = :now, last_status = :status, "
                   "last_error = :outcome, due_at = :due",
                   {**_outcome_values(seen, now, status, outcome), ":due": {"N": repr(due)}}, {})


def handle_queue_batch(event: dict[str, Any]) -> dict[str, Any]:
    """Delivery queue → one attempt per message; an exception reports that message as failed."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def on_record(record: Any) -> str:
        return attempt(json.loads(record.body)["delivery_id"])

    return process_partial_response(event=event, record_handler=on_record,
                                    processor=BatchProcessor(event_type=EventType.SQS))


def _query_state(state: str, before: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    condition = "state_key = :state" + (" AND due_at <= :before" if before is not None else "")
    values: dict[str, Any] = {":state": {"S": state}}
    if before is not None:
        values[":before"] = {"N": repr(before)}
    found: list[dict[str, Any]] = []
    paginator = aws.client("dynamodb").get_paginator("query")
    for page in paginator.paginate(TableName=_table(), IndexName="state-index", KeyConditionExpression=condition,
                                   ExpressionAttributeValues=values):
        found.extend(_plain(item) for item in page["Items"])
        if len(found) >= limit:
            break
    return found[:limit]


def sweep(now: float | None = None) -> dict[str, int]:
    """Re-enqueue pending deliveries that are past due by more than the grace period."""
    now = time.time() if now is None else now
    stale = _query_state("pending", before=now - get_settings().sweep_grace_s)
    for item in stale:
        enqueue(item["delivery_id"])
    if stale:
        logger.info("sweeper re-enqueued deliveries", extra={"count": len(stale)})
        metrics.add_metric(name="SweptDeliveries", unit="Count", value=len(stale))
    return {"reenqueued": len(stale)}


def list_dead(limit: int = 1000) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "body"} for item in _query_state("dead", limit=limit)]


def replay(delivery_id: str) -> bool:
    """Put a dead delivery back to pending with a fresh schedule and the same webhook-id."""
    now = time.time()
    try:
        aws.client("dynamodb").update_item(
            TableName=_table(), Key={"delivery_id": {"S": delivery_id}},
            UpdateExpression="SET #state = :pending, state_key = :pending, attempts = :zero, due_at = :now, "
                             "replayed_at = :now ADD replays :one REMOVE dead_at",
            ConditionExpression="#state = :dead AND (attribute_not_exists(replayable) OR replayable = :true)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":dead": {"S": "dead"}, ":zero": {"N": "0"},
                                       ":now": {"N": repr(now)}, ":one": {"N": "1"}, ":true": {"BOOL": True}})
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise
    enqueue(delivery_id)
    logger.info("dead letter replayed", extra={"delivery_id": delivery_id})
    return True


def replay_all() -> int:
    return sum(1 for item in list_dead() if replay(item["delivery_id"]))
