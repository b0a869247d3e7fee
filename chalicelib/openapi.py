"""The OpenAPI 3.1 description of the hub's HTTP API, generated from the pydantic models.

    python -m chalicelib.openapi > chalicelib/data/openapi.json      (or: make openapi)

`chalicelib/data/openapi.json` is the one copy: checked in (tests/test_openapi.py proves it equals
what this module generates), packaged with chalicelib/ and served by `GET /v1/openapi.json`.

What it is made of, so that it cannot drift from the code:
- request bodies: the inbound envelope `chalicelib.ingest.Envelope`, specialised per inbound event type
  with the canonical `data` model of `chalicelib.models.EVENT_SPECS`, as a union discriminated by
  `type`; the upload-slot request `chalicelib.documents.UploadRequest`;
- outbound deliveries: OpenAPI 3.1 `webhooks`, one per outbound event type, the same envelope with the
  outbound `data` model, and the Standard Webhooks headers the hub signs them with;
- answers: the models below (`ErrorBody` is `HubError.body()`), checked against the running hub by
  tests/test_schemathesis.py (every answer must match its status's schema).

`ROUTES` is the one table of HTTP routes: a new route of app.py gets a `Route` here (the tests fail
until it has one). Nothing here is imported on the request path except by `GET /v1/openapi.json`,
which reads the checked-in file and builds nothing.
"""
from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.json_schema import models_json_schema

OPENAPI_FILE = Path(__file__).with_name("data") / "openapi.json"
API_VERSION = "1"  # CONTRACT.md (v1)
_REF_TEMPLATE = "#/components/schemas/{model}"


# --------------------------------------------------------------------------------------------------
# Answers

class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Answer):
    """One failing field. Never the value that was sent."""

    field: str = Field(description='where: "data.parties.0.id_number", "type", "webhook-id", "body"…')
    code: str = Field(description="a stable code: a pydantic error type or a business-rule code")
    message: str = Field(description="for a person")


class ErrorInfo(_Answer):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="stable snake_case code of the refusal")
    message: str = Field(description="for a person; never repeats a value that was sent")
    details: list[ErrorDetail]


class ErrorBody(_Answer):
    """Every error answer of the hub (CONTRACT.md): `{"error": {"code", "message", "details"}}`."""

    error: ErrorInfo


class Health(_Answer):
    status: Literal["ok"]


class EventAccepted(_Answer):
    """The event is durably stored and will be processed."""

    event_id: str = Field(pattern=r"^evt_[a-z2-7]+$")
    webhook_id: str = Field(description="the request's webhook-id")
    status: Literal["accepted"]


class EventDuplicate(EventAccepted):
    """This partner already sent this webhook-id: the first answer again, and nothing is processed again."""

    duplicate: Literal[True]


class UploadSlot(_Answer):
    """PUT the file to `upload_url` with its Content-Type and Content-Length before `expires_at`."""

    document_id: str = Field(pattern=r"^doc_[a-z2-7]{32}$")
    upload_url: str = Field(description="a presigned PUT bound to the declared Content-Type and length")
    expires_at: str = Field(description="ISO 8601, UTC")


class UploadSlotDuplicate(UploadSlot):
    """This partner already asked with this webhook-id: the first slot again."""

    duplicate: Literal[True]


class CatalogEntry(_Answer):
    type: str
    direction: Literal["inbound", "outbound"]
    senders: list[str] = Field(description="partner kinds that may send it (inbound)")
    receivers: list[str] = Field(description="partner kinds the hub sends it to (outbound)")
    description: str
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of the canonical data")
    example: dict[str, Any] = Field(description="valid canonical data")


class Catalog(_Answer):
    event_types: list[CatalogEntry]


class TimelineEntry(BaseModel):
    """One message in or out of a case or relay."""

    direction: Literal["in", "out"]
    type: str
    partner_id: str
    at: float = Field(description="Unix seconds")
    ref: str = Field(description="event id (in) or delivery id (out)")
    state: Optional[str] = Field(None, description="delivery state (out)")
    attempts: Optional[int] = Field(None, description="delivery attempts (out)")


class CaseView(BaseModel):
    """A case as a partner taking part in it sees it: its flow adds its stages, amounts and ids.

    Never names, ID numbers or phones."""

    model_config = ConfigDict(extra="allow")

    case_id: str
    unit_code: str
    flow: str = Field(description='the case\'s flow, e.g. "transfer"')
    participants: list[str] = Field(description="partner ids that take part in the case")
    timeline: list[TimelineEntry]


class CaseRead(_Answer):
    """Every case with this number that the reading partner takes part in (one per unit)."""

    cases: list[CaseView] = Field(min_length=1)


class RelayView(BaseModel):
    """A relay's whole history, for the collecting office and the owning city's registry."""

    model_config = ConfigDict(extra="allow")

    relay_id: str
    unit_code: str
    service: str
    state: str
    attempt: int
    resubmittable: bool
    registry_case_id: Optional[str]
    office_partner_id: str
    office_city: str
    registry_city: str
    participants: list[str]
    submissions: list[dict[str, Any]]
    timeline: list[TimelineEntry]


class RelayRead(_Answer):
    relay: RelayView


class AuditCheckpoint(_Answer):
    """The latest signed checkpoint of the audit log and the key that verifies it."""

    origin: str
    tree_size: int
    root_hash: str = Field(description="base64")
    checkpoint: str = Field(description="the signed checkpoint note")
    verifier_key: str
    integrated_at: str = Field(description="ISO 8601")


class AuditLeaf(_Answer):
    leaf_index: int
    leaf: str
    inclusion_path: list[str] = Field(description="RFC 9162 §2.1.3 path, base64 hashes, leaf side first")


class AuditInclusion(_Answer):
    """Proofs that the leaves of an event, delivery or operator action are in the tree of this size."""

    ref: str
    tree_size: int
    checkpoint: Optional[str] = Field(description="the checkpoint, when tree_size is the latest")
    leaves: list[AuditLeaf]


class AuditConsistency(_Answer):
    """That the tree of size `second` extends the tree of size `first` (RFC 9162 §2.1.4)."""

    first: int
    second: int
    proof: list[str] = Field(description="base64 hashes")
    checkpoint: Optional[str] = Field(description="the checkpoint, when second is the latest size")


class InquiryView(BaseModel):
    """A court's or bank's inquiry, for the asker and the registries asked."""

    model_config = ConfigDict(extra="allow")

    inquiry_id: str
    unit_code: Optional[str] = None
    state: str = Field(description="forwarded, answered or refused")
    asker_partner_id: str
    asker_kind: str
    registry_city: str
    participants: list[str]
    answer: Optional[dict[str, Any]]
    timeline: list[TimelineEntry]


class InquiryRead(_Answer):
    inquiry: InquiryView


class OperatorAnswer(RootModel[dict[str, Any]]):
    """What an operator's request answers: an object (a list comes as `{"items": [...]}`); see
    chalicelib/ops_api.py for each resource."""


class OperatorRequest(RootModel[dict[str, Any]]):
    """An operator action's parameters, e.g. `{"case_id", "hold_id", "reason"}`; always a `reason`."""


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document (this one)."""


# --------------------------------------------------------------------------------------------------
# Routes: the one table

Auth = Literal["public", "signed_post", "signed_read", "operator"]

# What each error status of the hub means; a route lists the ones it can answer.
ERRORS: dict[int, str] = {
    400: "Malformed: a missing or malformed signature header (or `hub-partner-id` on a read), a body "
         "that is not UTF-8 JSON or not of the expected shape, a repeated JSON key, nesting deeper than "
         "32 levels.",
    401: "Unknown partner, no signature matches, or the timestamp is outside ±300 s (one body for all "
         "three); for a read, also a nonce already used.",
    403: "An event type this partner's kind may not send.",
    404: "No such case, relay, inquiry or audit leaf that you may see (the same answer whether it exists or not); "
         "no audit checkpoint yet.",
    409: "Retry: a rare race on the deduplication record, or an audit leaf not yet sequenced.",
    413: "The body is over 256 KiB.",
    422: "The data fails the canonical schema or a business rule at the door (check digits, a unit of "
         "another city, an unknown case or order, no partner to route to…), or an audit tree size out of "
         "range; `details` lists the fields.",
    503: "The hub could not store or read; retry later with the same webhook-id.",
}


@dataclass(frozen=True)
class Route:
    """One HTTP route of app.py: its answers by status as (model, description); a model of None is a
    text body in each of `media_types` (the console's files). `responses` adds raw OpenAPI answers."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    auth: Auth
    answers: dict[int, tuple[type[BaseModel] | None, str]]
    errors: tuple[int, ...] = ()
    request: str | None = None  # a key of _request_models()
    media_types: tuple[str, ...] = ("application/json",)
    query: tuple[str, ...] = ()  # optional query parameters, each a string
    responses: dict[str, Any] = field(default_factory=dict)


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "partner_id": {"description": "your partner id", "schema": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{1,62}$"}},
    "case_id": {"description": "the case number", "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}},
    "relay_id": {"description": "the collecting office's relay reference",
                 "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"}},
    "inquiry_id": {"description": "the asker's inquiry reference",
                   "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"}},
    "ref": {"description": "an event id, delivery id, operator action id, case id or relay id",
            "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"}},
    "resource": {"description": "an operator resource: session, cases, relays, deliveries, holds, risks, overdue, "
                                "dead-letters, utilities, reconciliations, partners, audit, actions",
                 "schema": {"type": "string"}},
    "action": {"description": "an operator action on the item, e.g. replay", "schema": {"type": "string"}},
    **{name: {"description": what, "schema": {"type": "string", "pattern": r"^[0-9]{1,19}$"}}
       for name, what in (("tree_size", "a tree size you kept a checkpoint of"), ("first", "the older tree size"),
                          ("second", "the newer tree size"))},
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "operations", "Liveness",
          "`200` when the hub answers (local mode is ready when this answers).", "public",
          {200: (Health, "The hub answers.")}),
    Route("GET", "/v1/catalog", "catalog", "catalog", "The event catalog",
          "Every event type in each direction: who sends or receives it, the JSON Schema of its canonical "
          "`data` and a valid example. Generated from the same models as this document.", "public",
          {200: (Catalog, "The catalog.")}),
    Route("GET", "/v1/openapi.json", "openapi", "catalog", "This document",
          "The OpenAPI 3.1 description of the hub's API and of the deliveries it sends (`webhooks`).", "public",
          {200: (OpenApiDocument, "This document.")}),
    Route("POST", "/v1/partners/{partner_id}/events", "send_event", "events", "Send an event",
          "A partner sends one event, signed per Standard Webhooks. The body is `{type, timestamp, data}`; "
          "`data` is shown here in the canonical format: a partner with a mapping (`mappings/`) sends its "
          "own format, which the hub maps to this one before it validates. `timestamp` may not be more "
          "than 5 minutes ahead of the hub's clock. Nothing is stored or routed for any 4xx; a 2xx is sent "
          "only once the event is durable.", "signed_post",
          {202: (EventAccepted, "Accepted and durably stored."),
           200: (EventDuplicate, "The same webhook-id from this partner again (whatever the body): the first answer.")},
          errors=(400, 401, 403, 409, 413, 422, 503), request="inbound_event"),
    Route("POST", "/v1/partners/{partner_id}/documents", "request_upload", "documents", "Ask for an upload slot",
          "Scans and certificates never travel inside an event: ask for a slot (signed like an event), PUT "
          "the file to `upload_url`, then reference `{document_id, sha256, media_type, size}` in events. "
          "The hub checks what arrived before it relays anything that references it.", "signed_post",
          {201: (UploadSlot, "A fresh slot; the document is recorded as pending."),
           200: (UploadSlotDuplicate, "The same webhook-id from this partner again: the first slot.")},
          errors=(400, 401, 409, 413, 422, 503), request="upload_request"),
    Route("GET", "/v1/cases/{case_id}", "read_case", "reads", "Read a case",
          "The cases with this number that the reading partner takes part in. Signed like an event with "
          "`GET /v1/cases/{case_id}` in place of the body and a fresh `webhook-id` (a nonce, accepted once).",
          "signed_read", {200: (CaseRead, "The cases you take part in.")}, errors=(400, 401, 404, 503)),
    Route("GET", "/v1/relays/{relay_id}", "read_relay", "reads", "Read a relay",
          "A relay's history, for its collecting office and the owning city's registry. Signed like a case "
          "read, over `GET /v1/relays/{relay_id}`.",
          "signed_read", {200: (RelayRead, "The relay.")}, errors=(400, 401, 404, 503)),
    Route("GET", "/v1/inquiries/{inquiry_id}", "read_inquiry", "reads", "Read an inquiry",
          "A court's or bank's inquiry and its answer, for the asker and the registries asked. Signed like a "
          "case read, over `GET /v1/inquiries/{inquiry_id}`.",
          "signed_read", {200: (InquiryRead, "The inquiry.")}, errors=(400, 401, 404, 503)),
    Route("GET", "/v1/audit/checkpoint", "audit_checkpoint", "audit", "The audit log's checkpoint",
          "The latest signed checkpoint (tree size and root hash) and the key that verifies it. Signed like a "
          "case read; 404 until the log has its first checkpoint.",
          "signed_read", {200: (AuditCheckpoint, "The checkpoint.")}, errors=(400, 401, 404, 503)),
    Route("GET", "/v1/audit/inclusion/{ref}", "audit_inclusion", "audit", "Prove a message is in the log",
          "Inclusion proofs, in the latest tree, for the leaves of an event, delivery or operator action: to the "
          "partners it names and those taking part in its case or relay (404 for anyone else). 409: not yet "
          "sequenced, ask again in a few seconds.",
          "signed_read", {200: (AuditInclusion, "The proofs.")}, errors=(400, 401, 404, 409, 422, 503)),
    Route("GET", "/v1/audit/inclusion/{ref}/{tree_size}", "audit_inclusion_at", "audit",
          "Prove a message is in the log at a size",
          "As the inclusion proof above, in the tree of a size you kept a checkpoint of.",
          "signed_read", {200: (AuditInclusion, "The proofs.")}, errors=(400, 401, 404, 409, 422, 503)),
    Route("GET", "/v1/audit/consistency/{first}/{second}", "audit_consistency", "audit",
          "Prove the log only grew",
          "A consistency proof that the tree of size `second` extends the tree of size `first`.",
          "signed_read", {200: (AuditConsistency, "The proof.")}, errors=(400, 401, 404, 422, 503)),
    Route("GET", "/console", "console", "operators", "The operators' console",
          "A single page for operators; it signs in and calls `/v1/ops/…`.", "public",
          {200: (None, "The page.")}, media_types=("text/html",)),
    Route("GET", "/console/{name}", "console_file", "operators", "A file of the console",
          "The console's script, style sheet, or `sign-in.json` (how to sign in: token or Cognito).", "public",
          {200: (None, "The file.")}, media_types=("text/html", "text/javascript", "text/css", "application/json"),
          responses={"404": {"description": "No such file.", "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    Route("GET", "/v1/ops/{resource}", "operator_list", "operators", "Operators: read a resource",
          "`session`, `holds?state=`, `risks`, `overdue?closed_on=`, `dead-letters?partner=`, `utilities`, "
          "`reconciliations?report_key=`, `partners`, `actions`; `limit` bounds a list.", "operator",
          {200: (OperatorAnswer, "The resource.")}, errors=(400, 401, 403, 404, 409, 422, 503),
          query=("limit", "state", "closed_on", "partner", "report_key")),
    Route("GET", "/v1/ops/{resource}/{ref}", "operator_item", "operators", "Operators: read an item",
          "`cases/{case_id}`, `relays/{relay_id}`, `deliveries/{delivery_id}`, `partners/health`, "
          "`audit/checkpoint`, `audit/{ref}`.", "operator",
          {200: (OperatorAnswer, "The item.")}, errors=(400, 401, 403, 404, 409, 422, 503)),
    Route("POST", "/v1/ops/{resource}/{ref}", "operator_act", "operators", "Operators: act",
          "`holds/release` and `utilities/retry`, with a reason; every action is recorded in the audit log "
          "under the operator's name.", "operator",
          {200: (OperatorAnswer, "Done.")}, errors=(400, 401, 403, 404, 409, 422, 503), request="operator_request"),
    Route("POST", "/v1/ops/{resource}/{ref}/{action}", "operator_act_on", "operators", "Operators: act on an item",
          "`dead-letters/{delivery_id}/replay`, with a reason; recorded in the audit log.", "operator",
          {200: (OperatorAnswer, "Done.")}, errors=(400, 401, 403, 404, 409, 422, 503), request="operator_request"),
)


# --------------------------------------------------------------------------------------------------
# Headers and security

_SIGNATURE_TEXT = ("`v1,<base64 HMAC-SHA256(secret, \"{webhook-id}.{webhook-timestamp}.{payload}\")>`, a "
                   "space-separated list (any match passes; rotation). `secret` is the base64 after `whsec_`.")
HEADERS: dict[str, dict[str, Any]] = {
    "WebhookId": {"name": "webhook-id", "in": "header", "required": True,
                  "description": "Unique per message (Standard Webhooks). A repeated one gets the first answer; "
                                 "on a read it is a nonce, accepted once.",
                  "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,256}$"}},
    "WebhookTimestamp": {"name": "webhook-timestamp", "in": "header", "required": True,
                         "description": "Unix seconds; within ±300 s of the receiver's clock.",
                         "schema": {"type": "string", "pattern": r"^[0-9]{1,12}$"}},
    "WebhookSignature": {"name": "webhook-signature", "in": "header", "required": True,
                         "description": "Signed with the hub's signing secret: " + _SIGNATURE_TEXT,
                         "schema": {"type": "string", "minLength": 1}},
    "HubOperator": {"name": "hub-operator", "in": "header", "required": False,
                    "description": "Token sign-in (local mode): the operator id the action is recorded under.",
                    "schema": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._:-]{0,63}$"}},
    "HubPartnerId": {"name": "hub-partner-id", "in": "header", "required": True,
                     "description": "The reading partner's id (a read has no partner id in its path).",
                     "schema": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{1,62}$"}},
}
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "partnerSignature": {
        "type": "apiKey", "in": "header", "name": "webhook-signature",
        "description": "Standard Webhooks `v1` signature with one of the partner's secrets: " + _SIGNATURE_TEXT
                       + " `payload` is the raw request body for a POST, and `GET <path>` for a read "
                         "(e.g. `GET /v1/cases/SZ-2026-000123`).",
    },
    "operatorToken": {
        "type": "apiKey", "in": "header", "name": "hub-operator-token",
        "description": "Local mode: the operator token local mode prints at start (HUB_OPERATOR_TOKEN).",
    },
    "operatorCognito": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "AWS: a Cognito ID token of a user in the operators' group, checked by API Gateway.",
    },
}
_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "public": [], "signed_post": [{"partnerSignature": []}], "signed_read": [{"partnerSignature": []}],
    "operator": [{"operatorToken": []}, {"operatorCognito": []}],
}
_HEADER_PARAMETERS: dict[Auth, tuple[str, ...]] = {
    "public": (), "signed_post": ("WebhookId", "WebhookTimestamp"),
    "signed_read": ("HubPartnerId", "WebhookId", "WebhookTimestamp"), "operator": ("HubOperator",),
}


# --------------------------------------------------------------------------------------------------
# Event envelopes from the models

def _envelope_name(direction: str, event_type: str) -> str:
    """`assist.requested` inbound → InboundAssistRequested (two-way names differ by direction)."""
    return direction.capitalize() + "".join(part.capitalize() for part in re.split(r"[._]", event_type))


@functools.lru_cache(maxsize=1)
def _envelopes() -> dict[tuple[str, str], type[BaseModel]]:
    """One model per (type, direction): the ingest envelope with `type` fixed and `data` the event's model."""
    from chalicelib.ingest import Envelope
    from chalicelib.models import EVENT_SPECS

    models: dict[tuple[str, str], type[BaseModel]] = {}
    for (event_type, direction), spec in sorted(EVENT_SPECS.items()):
        models[event_type, direction] = create_model(
            _envelope_name(direction, event_type), __base__=Envelope, __doc__=spec.description,
            type=(Literal[event_type], ...), data=(spec.model, ...))
    return models


def _union(direction: str) -> type[BaseModel]:
    members = tuple(model for (_, d), model in _envelopes().items() if d == direction)
    name = f"{direction.capitalize()}Event"
    return create_model(name, __base__=RootModel[Annotated[Union[members], Field(discriminator="type")]],
                        __doc__=f"Any {direction} event: the envelope, discriminated by `type`.")


def _request_models() -> dict[str, type[BaseModel]]:
    from chalicelib.documents import UploadRequest

    return {"inbound_event": _union("inbound"), "upload_request": UploadRequest, "operator_request": OperatorRequest}


# --------------------------------------------------------------------------------------------------
# The document

def _schemas(models: list[tuple[type[BaseModel], str]]) -> tuple[dict[Any, dict[str, str]], dict[str, Any]]:
    refs, defs = models_json_schema(models, ref_template=_REF_TEMPLATE)
    return refs, defs.get("$defs", {})


def _json_body(ref: dict[str, str]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": ref}}}


def _answer(model: type[BaseModel] | None, text: str, route: Route, refs: dict[Any, dict[str, str]]) -> dict[str, Any]:
    if model is None:
        return {"description": text, "content": {m: {"schema": {"type": "object" if m.endswith("json") else "string"}}
                                                 for m in route.media_types}}
    return {"description": text, **_json_body(refs[model, "serialization"])}


def _path_parameter(route: Route, name: str) -> dict[str, Any]:
    """The path parameter's schema; the console's files and the operators' resources are listed from the
    tables of the module that serves them (chalicelib/ops_api.py)."""
    from chalicelib import ops_api

    if name == "name":
        return {"description": "a console file, or sign-in.json (how to sign in: token or Cognito)",
                "schema": {"type": "string", "enum": sorted([*ops_api.ASSETS, "sign-in.json"])}}
    if route.auth == "operator":
        has_ref = "{ref}" in route.path
        if route.method == "GET":
            values = {"resource": [r for r, with_ref in ops_api._GETS if with_ref == has_ref]}
        else:
            keys = [key for key in ops_api._POSTS if (key[2] is not None) == ("{action}" in route.path)]
            values = {"resource": [k[0] for k in keys], "action": [k[2] for k in keys if k[2]],
                      "ref": [k[1] for k in keys if k[1] != "*" and not k[2]]}
        if values.get(name):
            what = "the action" if name == "ref" else PATH_PARAMETERS[name]["description"]
            return {"description": what, "schema": {"type": "string", "enum": sorted(set(values[name]))}}
    return PATH_PARAMETERS[name]


def _operation(route: Route, refs: dict[Any, dict[str, str]], requests: dict[str, type[BaseModel]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, **_path_parameter(route, name)}
        for name in re.findall(r"{(\w+)}", route.path)]
    parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                   for name in route.query]
    parameters += [{"$ref": f"#/components/parameters/{name}"} for name in _HEADER_PARAMETERS[route.auth]]
    responses: dict[str, Any] = {str(status): _answer(model, text, route, refs)
                                 for status, (model, text) in route.answers.items()}
    responses.update({str(status): {"$ref": f"#/components/responses/Error{status}"} for status in route.errors})
    responses.update(route.responses)
    operation: dict[str, Any] = {
        "operationId": route.operation_id, "tags": [route.tag], "summary": route.summary,
        "description": route.description, "security": _SECURITY[route.auth],
        **({"parameters": parameters} if parameters else {}),
    }
    if route.request:
        operation["requestBody"] = {"required": True, **_json_body(refs[requests[route.request], "validation"])}
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _webhook(event_type: str, spec: Any, ref: dict[str, str]) -> dict[str, Any]:
    receivers = ", ".join(spec.receivers)
    return {"post": {
        "operationId": f"deliver_{_envelope_name('outbound', event_type)}",
        "tags": ["deliveries"],
        "summary": f"{event_type} (to: {receivers})",
        "description": f"{spec.description}\n\nThe hub POSTs this to the partner's `endpoint`, signed with the "
                       "hub's signing secret. A partner with a mapping receives `data` in its own format. "
                       "Deduplicate on `webhook-id`: it stays the same across the retries of one delivery.",
        "parameters": [{"$ref": f"#/components/parameters/{name}"}
                       for name in ("WebhookId", "WebhookTimestamp", "WebhookSignature")],
        "requestBody": {"required": True, **_json_body(ref)},
        "responses": {
            "2XX": {"description": "Acknowledged: the delivery is done."},
            "default": {"description": "Anything else, or no answer within 15 s: retried on the hub's retry "
                                       "schedule, then dead-lettered for operators to replay."},
        },
    }}


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a new dict each call)."""
    from chalicelib.documents import retention_rules
    from chalicelib.models import EVENT_SPECS

    requests = _request_models()
    envelopes = _envelopes()
    wanted: list[tuple[type[BaseModel], str]] = [(m, "validation") for m in requests.values()]
    wanted += [(envelopes[key], "validation") for key in sorted(envelopes) if key[1] == "outbound"]
    wanted += [(ErrorBody, "serialization")]
    wanted += [(model, "serialization") for route in ROUTES for model, _ in route.answers.values() if model]
    refs, schemas = _schemas(list(dict.fromkeys(wanted)))
    # The route checks the media type against chalicelib/data/retention.json: say which ones.
    upload = schemas[requests["upload_request"].__name__]
    upload["properties"]["media_type"]["enum"] = sorted(retention_rules().media_types)

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, requests)
    webhooks = {event_type: _webhook(event_type, EVENT_SPECS[event_type, "outbound"],
                                     refs[envelopes[event_type, "outbound"], "validation"])
                for (event_type, direction) in sorted(envelopes) if direction == "outbound"}
    error_ref = refs[ErrorBody, "serialization"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Registration hub: partner API",
            "version": API_VERSION,
            "description": "The partner contract of the real-estate registration hub (CONTRACT.md): events in "
                           "(`POST /v1/partners/{partner_id}/events`), documents, signed reads, and the events the "
                           "hub delivers (`webhooks`). Generated from the hub's models by "
                           "`python -m chalicelib.openapi`; event data is described in the canonical format.",
        },
        "servers": [{"url": "http://127.0.0.1:8000", "description": "local mode (`make run`, HUB_PORT)"}],
        "tags": [{"name": name} for name in dict.fromkeys([r.tag for r in ROUTES] + ["deliveries"])],
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": HEADERS,
            "responses": {f"Error{status}": {"description": text, **_json_body(error_ref)}
                          for status, text in sorted(ERRORS.items())},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def render() -> str:
    """The document as checked in: stable key order, UTF-8, a final newline."""
    return json.dumps(build_document(), ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def served() -> dict[str, Any]:
    """`GET /v1/openapi.json`: the checked-in file, read once per process."""
    return _served()


@functools.lru_cache(maxsize=1)
def _served() -> dict[str, Any]:
    return json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))


if __name__ == "__main__":  # pragma: no cover - `make openapi`
    sys.stdout.write(render())
