"""Routes (data in routes.json) turn an accepted event into outbound deliveries.

The stream handler calls `handle_stream_batch`; ingest calls `check_admissible` so that an event no
route could deliver is refused at the door (422) instead of being stored and stranded.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import jmespath
from pydantic import BaseModel, ConfigDict, Field

from chalicelib import ids
from chalicelib.errors import HubError
from chalicelib.event_store import StoredEvent
from chalicelib.observability import log_keys, logger, metrics
from chalicelib.partners import Partner, PartnerDirectory, get_directory


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    by: Literal["unit_city", "sender", "partner_field"]
    field: str | None = None


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    on: str
    emit: str
    to: Target
    data: str
    unit_in_sender_city: bool = False


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    expression: Any  # compiled JMESPath


class RoutesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    routes: list[Route]


@functools.lru_cache(maxsize=1)
def routes_by_type() -> dict[str, tuple[CompiledRoute, ...]]:
    from chalicelib.models import EVENT_TYPES

    path = os.path.join(os.path.dirname(__file__), "routes.json")
    with open(path, "rb") as fh:
        parsed = RoutesFile.model_validate_json(fh.read())
    table: dict[str, list[CompiledRoute]] = {}
    for route in parsed.routes:
        for name in (route.on, route.emit):
            if name not in EVENT_TYPES:
                raise ValueError(f"route {route.name} names unknown event type {name}")
        table.setdefault(route.on, []).append(CompiledRoute(route, jmespath.compile(route.data)))
    return {k: tuple(v) for k, v in table.items()}


def _field(data: dict[str, Any], name: str | None) -> Any:
    return jmespath.search(name, data) if name else None


def resolve_targets(route: Route, sender_id: str, data: dict[str, Any], directory: PartnerDirectory) -> list[Partner]:
    from chalicelib.identifiers import city_of

    if route.to.by == "unit_city":
        unit_code = _field(data, route.to.field or "unit_code")
        return directory.find(route.to.kind, city=city_of(unit_code)) if unit_code else []
    if route.to.by == "sender":
        found = directory.get(sender_id)
        return [found] if found else []
    found = directory.get(str(_field(data, route.to.field)))
    return [found] if found and found.kind == route.to.kind else []


def check_admissible(partner: Partner, event_type: str, data: dict[str, Any]) -> None:
    """Door rules that come from the routes: the unit is the sender's, and someone will receive it."""
    from chalicelib.identifiers import city_of

    directory = get_directory()
    for compiled in routes_by_type().get(event_type, ()):
        route = compiled.route
        if route.unit_in_sender_city:
            unit_code = _field(data, route.to.field or "unit_code")
            if unit_code and city_of(unit_code) != partner.city:
                raise HubError(422, "unit_outside_partner_city", "The unit belongs to another city's registry.",
                               [{"field": f"data.{route.to.field or 'unit_code'}", "code": "other_city",
                                 "message": "the unit code's city is not the sender's city"}])
        if not resolve_targets(route, partner.id, data, directory):
            raise HubError(422, "no_route_target", f"No {route.to.kind} partner can receive {route.emit}.",
                           [{"field": f"data.{route.to.field}" if route.to.field else "data", "code": "no_target",
                             "message": f"no {route.to.kind} partner serves this"}])


def emit(source_event_id: str, purpose: str, event_type: str, canonical: dict[str, Any], targets: list[Partner],
         case_ref: tuple[str, str] | None = None) -> int:
    """Send one canonical outbound event to each target, in the target's own format.

    The only way anything leaves the hub. Delivery ids come from (source event, purpose, target), so
    running this again for the same source event writes nothing new.
    """
    from chalicelib import delivery, mapping

    scheduled = 0
    for target in targets:
        delivery_id = ids.delivery_id(source_event_id, purpose, target.id)
        try:
            native = mapping.load_mapping(target.mapping).to_native(event_type, canonical)
        except HubError as exc:
            delivery.record_unroutable_id(delivery_id, source_event_id, purpose, event_type,
                                          f"mapping failed: {exc.code}", partner_id=target.id, case_ref=case_ref)
            continue
        body = json.dumps({"type": event_type, "timestamp": datetime.now(timezone.utc).isoformat(), "data": native},
                          ensure_ascii=False, separators=(",", ":"))
        delivery.schedule(delivery_id, source_event_id, purpose, target.id, event_type, body,
                          case_key=f"{case_ref[0]}#{case_ref[1]}" if case_ref else None)
        scheduled += 1
    return scheduled


def route(stored: StoredEvent, directory: PartnerDirectory | None = None) -> int:
    """Schedule every delivery the static routes make for an accepted event."""
    from chalicelib import delivery, models

    directory = directory or get_directory()
    sender = directory.get(stored.partner_id)
    context = {"data": stored.data, "event": {
        "event_id": stored.event_id, "partner_id": stored.partner_id,
        "partner_kind": sender.kind if sender else None, "partner_city": sender.city if sender else None,
        "received_at": datetime.fromtimestamp(stored.received_at, tz=timezone.utc).isoformat(),
    }}
    case_ref = (stored.data["case_id"], stored.data["unit_code"]) \
        if "case_id" in stored.data and "unit_code" in stored.data else None
    scheduled = 0
    for compiled in routes_by_type().get(stored.type, ()):
        route_ = compiled.route
        targets = resolve_targets(route_, stored.partner_id, stored.data, directory)
        if not targets:
            delivery.record_unroutable(stored, route_.name, route_.emit, f"no {route_.to.kind} partner found")
            continue
        try:
            outbound = models.validate_data(route_.emit, compiled.expression.search(context), direction="outbound")
        except HubError as exc:
            delivery.record_unroutable(stored, route_.name, route_.emit, f"outbound data invalid: {exc.code}")
            continue
        scheduled += emit(stored.event_id, route_.name, route_.emit, outbound.model_dump(mode="json", exclude_none=True),
                          targets, case_ref)
    metrics.add_metric(name="DeliveriesScheduled", unit="Count", value=scheduled)
    logger.info("event routed", extra={"event_id": stored.event_id, "event_type": stored.type, "deliveries": scheduled})
    return scheduled


def handle_stream_batch(event: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB stream of the events table → route each newly inserted event (partial batch failures)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName

    from chalicelib import flows

    def on_record(record: Any) -> None:
        if record.event_name is not DynamoDBRecordEventName.INSERT:  # TTL expiry shows up as REMOVE
            return
        image = record.raw_event["dynamodb"]["NewImage"]
        stored = StoredEvent.from_item(image)
        log_keys(correlation_id=stored.event_id)
        route(stored)
        flows.handle(stored)

    return process_partial_response(event=event, record_handler=on_record,
                                    processor=BatchProcessor(event_type=EventType.DynamoDBStreams))
