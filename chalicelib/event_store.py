"""Accepted inbound events. One conditional PutItem both deduplicates and persists an event;
the table's stream hands it to routing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib import aws
from chalicelib.settings import get_settings


def dedup_key(partner_id: str, webhook_id: str) -> str:
    return f"{partner_id}#{webhook_id}"


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    partner_id: str
    webhook_id: str
    type: str
    timestamp: str
    data: dict[str, Any]
    payload_sha256: str
    received_at: float
    answer: dict[str, Any]
    # "<case_id>#<unit_code>" when the event is about a known case: the case's timeline is read
    # through the table's case-index instead of being written a second time.
    case_key: str | None = None

    def to_item(self, expires_at: int) -> dict[str, Any]:
        return {
            "dedup_key": {"S": dedup_key(self.partner_id, self.webhook_id)},
            "event_id": {"S": self.event_id},
            "partner_id": {"S": self.partner_id},
            "webhook_id": {"S": self.webhook_id},
            "type": {"S": self.type},
            "timestamp": {"S": self.timestamp},
            "data": {"S": json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))},
            "payload_sha256": {"S": self.payload_sha256},
            "received_at": {"N": repr(self.received_at)},
            "answer": {"S": json.dumps(self.answer, separators=(",", ":"))},
            "expires_at": {"N": str(expires_at)},
            **({"case_key": {"S": self.case_key}} if self.case_key else {}),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "StoredEvent":
        return cls(
            event_id=item["event_id"]["S"],
            partner_id=item["partner_id"]["S"],
            webhook_id=item["webhook_id"]["S"],
            type=item["type"]["S"],
            timestamp=item["timestamp"]["S"],
            data=json.loads(item["data"]["S"]),
            payload_sha256=item["payload_sha256"]["S"],
            received_at=float(item["received_at"]["N"]),
            answer=json.loads(item["answer"]["S"]),
            case_key=item.get("case_key", {}).get("S"),
        )


def put_new(event: StoredEvent) -> bool:
    """Store the event unless this (partner, webhook-id) was stored before. True if stored."""
    s = get_settings()
    try:
        aws.client("dynamodb").put_item(
            TableName=s.events_table,
            Item=event.to_item(int(event.received_at) + s.dedup_retention_s),
            ConditionExpression="attribute_not_exists(dedup_key)",
        )
        return True
    except Exception as exc:  # botocore's ClientError; only the condition failure is expected
        if aws.is_conditional_check_failure(exc):
            return False
        raise


def get(partner_id: str, webhook_id: str) -> StoredEvent | None:
    s = get_settings()
    found = aws.client("dynamodb").get_item(
        TableName=s.events_table, Key={"dedup_key": {"S": dedup_key(partner_id, webhook_id)}}, ConsistentRead=True
    ).get("Item")
    return StoredEvent.from_item(found) if found else None
