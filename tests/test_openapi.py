"""The OpenAPI 3.1 document (chalicelib/data/openapi.json): checked in as generated, valid OpenAPI 3.1,
complete (every route of app.py, every event type in each direction), true to the models (the catalog's
examples validate against it, broken ones do not), and served by GET /v1/openapi.json as checked in."""
from __future__ import annotations

import copy
import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from chalicelib import openapi
from chalicelib.models import EVENT_SPECS

DOCUMENT_URI = "urn:hub:openapi"


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(openapi.OPENAPI_FILE.read_text(encoding="utf-8"))


def test_checked_in_document_is_the_generated_one():
    assert openapi.OPENAPI_FILE.read_text(encoding="utf-8") == openapi.render(), (
        "chalicelib/data/openapi.json is stale: run `make openapi` (python -m chalicelib.openapi)")


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_a_broken_document_is_refused(document):
    broken = copy.deepcopy(document)
    broken["paths"]["/health"]["get"]["responses"] = {"200": {"content": {}}}  # no description
    assert list(OpenAPIV31SpecValidator(broken).iter_errors())


def _app_routes() -> set[tuple[str, str]]:
    import app

    return {(method, path) for path, entries in app.app.routes.items() for method in entries}


def test_every_route_of_app_is_in_the_table_and_the_document(document):
    table = {(route.method, route.path) for route in openapi.ROUTES}
    assert table == _app_routes()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == _app_routes()


def test_every_operation_has_an_id_a_success_answer_and_the_contract_error_bodies(document):
    ids = []
    for route in openapi.ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        ids.append(operation["operationId"])
        statuses = set(operation["responses"])
        assert any(s.startswith("2") for s in statuses), route
        for status in route.errors:
            assert operation["responses"][str(status)] == {"$ref": f"#/components/responses/Error{status}"}
        assert statuses == {str(s) for s in [*route.answers, *route.errors]} | set(route.responses)
        assert set(re.findall(r"{(\w+)}", route.path)) == {p["name"] for p in operation.get("parameters", [])
                                                            if p.get("in") == "path"}
    assert len(ids) == len(set(ids))


def test_each_route_declares_how_it_is_signed_and_its_headers(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["partnerSignature"]["name"] == "webhook-signature"
    assert schemes["operatorToken"]["name"] == "hub-operator-token"
    for route in openapi.ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        headers = {p["$ref"].rsplit("/", 1)[1] for p in operation.get("parameters", []) if "$ref" in p}
        if route.auth == "public":
            assert operation["security"] == [] and not headers
        elif route.auth == "operator":
            assert operation["security"] == [{"operatorToken": []}, {"operatorCognito": []}]
            assert headers == {"HubOperator"}
        else:
            assert operation["security"] == [{"partnerSignature": []}]
            assert {"WebhookId", "WebhookTimestamp"} <= headers
            assert ("HubPartnerId" in headers) == (route.auth == "signed_read")
        for scheme in operation["security"]:
            assert set(scheme) <= set(schemes)


def test_every_inbound_type_is_in_the_event_union_and_every_outbound_type_is_a_webhook(document):
    inbound = {t for t, d in EVENT_SPECS if d == "inbound"}
    outbound = {t for t, d in EVENT_SPECS if d == "outbound"}
    union = document["components"]["schemas"]["InboundEvent"]
    assert set(union["discriminator"]["mapping"]) == inbound
    assert len(union["oneOf"]) == len(inbound)
    assert set(document["webhooks"]) == outbound
    for event_type, item in document["webhooks"].items():
        names = {p["$ref"].rsplit("/", 1)[1] for p in item["post"]["parameters"]}
        assert names == {"WebhookId", "WebhookTimestamp", "WebhookSignature"}, event_type
    events = document["paths"]["/v1/partners/{partner_id}/events"]["post"]
    assert events["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InboundEvent"}


def _validator(document: dict, pointer: str) -> Draft202012Validator:
    registry = Registry().with_resource(DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry)


def _envelope(event_type: str, data: dict) -> dict:
    return {"type": event_type, "timestamp": "2026-03-01T10:00:00+08:00", "data": data}


def test_every_inbound_example_is_a_valid_request_body_and_a_broken_one_is_not(document):
    body = _validator(document, "/components/schemas/InboundEvent")
    for (event_type, direction), spec in EVENT_SPECS.items():
        if direction != "inbound":
            continue
        assert not list(body.iter_errors(_envelope(event_type, spec.example))), event_type
        assert list(body.iter_errors(_envelope(event_type, {**spec.example, "unexpected": 1}))), event_type
        assert list(body.iter_errors({**_envelope(event_type, spec.example), "type": "no.such_type"})), event_type


def test_every_outbound_example_is_a_valid_delivery_body(document):
    for (event_type, direction), spec in EVENT_SPECS.items():
        if direction != "outbound":
            continue
        schema = document["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
        delivery = _validator(document, schema["$ref"].removeprefix("#"))
        assert not list(delivery.iter_errors(_envelope(event_type, spec.example))), event_type
        assert list(delivery.iter_errors({**_envelope(event_type, spec.example), "type": "other.type"})), event_type


def test_error_bodies_match_the_hubs_errors(document):
    from chalicelib.errors import HubError, unauthenticated

    error = _validator(document, "/components/schemas/ErrorBody")
    refused = HubError(422, "invalid_data", "data does not match.", [{"field": "data.x", "code": "missing",
                                                                       "message": "Field required"}])
    for body in (refused.body(), unauthenticated().body()):
        assert not list(error.iter_errors(body))
    assert list(error.iter_errors({"error": {"code": "Not-Snake", "message": "m", "details": []}}))


def test_the_upload_request_lists_the_accepted_media_types(document):
    from chalicelib.documents import retention_rules

    schema = document["components"]["schemas"]["UploadRequest"]
    assert schema["properties"]["media_type"]["enum"] == sorted(retention_rules().media_types)


def test_get_openapi_serves_the_checked_in_document(document):
    from chalice.test import Client

    import app

    with Client(app.app) as client:
        response = client.http.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == document
