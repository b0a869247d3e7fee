"""Routes and event-source handlers only; the work is in chalicelib.

Importing this module needs no network and no settings beyond the region: everything behind the
handlers is imported and created on first use.
"""
from chalice import Chalice, CognitoUserPoolAuthorizer, ConvertToMiddleware, Response

from chalicelib.observability import logger, metrics

app = Chalice(app_name="registration-hub")
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics(raise_on_empty_metrics=False)))

# Chalice takes a literal stream ARN; `infra/template.py` replaces this one with the events
# table's real stream ARN in the deployable template.
EVENTS_STREAM_ARN = "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/from-template"
DELIVERY_QUEUE = "hub-deliveries"
# Likewise a literal bucket name; `infra/template.py` points the rule at the template's bucket.
DOCUMENTS_BUCKET = "hub-documents"
# And a literal user pool ARN: `infra/template.py` points the operators' authorizer at the user pool of
# infra/resources.json. Chalice's local server and test client never verify it: local mode signs in
# with the token in its own headers (chalicelib/ops_api.py), never in Authorization.
OPERATOR_POOL_ARN = "arn:aws:cognito-idp:cn-north-1:000000000000:userpool/hub-operators/from-template"
OPERATORS = CognitoUserPoolAuthorizer("HubOperators", provider_arns=[OPERATOR_POOL_ARN])

# API Gateway answers 415 for a content type a route does not list; the contract wants a body that
# is not JSON to be judged by the hub (400), so the inbound route lists the usual ones.
_INBOUND_CONTENT_TYPES = ["application/json", "text/plain", "application/octet-stream",
                          "application/x-www-form-urlencoded", "application/xml", "text/xml"]


@app.middleware("http")
def contract_errors(event, get_response):
    """Chalice refuses an unlisted content type with its own 415 body; partners get the contract's."""
    response = get_response(event)
    if response.status_code == 415:
        from chalicelib.errors import HubError

        refused = HubError(400, "unsupported_media_type", "The body must be JSON (content-type application/json).")
        return _json(refused.status, refused.body())
    return response


def _json(status: int, body: dict) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@app.route("/health", methods=["GET"])
def health():
    from chalicelib import http

    return _json(*http.health())


@app.route("/v1/catalog", methods=["GET"])
def catalog():
    from chalicelib import http

    return _json(*http.catalog())


@app.route("/v1/openapi.json", methods=["GET"])
def openapi():
    from chalicelib import http

    return _json(*http.openapi())


@app.route("/v1/partners/{partner_id}/events", methods=["POST"], content_types=_INBOUND_CONTENT_TYPES)
def receive_event(partner_id):
    from chalicelib import http

    request = app.current_request
    return _json(*http.receive_event(partner_id, request.headers, request.raw_body or b""))


@app.route("/v1/partners/{partner_id}/documents", methods=["POST"], content_types=_INBOUND_CONTENT_TYPES)
def request_document_upload(partner_id):
    from chalicelib import documents

    request = app.current_request
    return _json(*documents.answer_upload_request(partner_id, request.headers, request.raw_body or b""))


@app.route("/v1/cases/{case_id}", methods=["GET"])
def read_case(case_id):
    from chalicelib import http

    return _json(*http.read_case(case_id, app.current_request.headers))


@app.route("/v1/relays/{relay_id}", methods=["GET"])
def read_relay(relay_id):
    from chalicelib.flows import relay

    return _json(*relay.read_relay(relay_id, app.current_request.headers))


@app.route("/v1/inquiries/{inquiry_id}", methods=["GET"])
def read_inquiry(inquiry_id):
    from chalicelib.flows import inquiry

    return _json(*inquiry.read_inquiry(inquiry_id, app.current_request.headers))


@app.route("/v1/audit/checkpoint", methods=["GET"])
def audit_checkpoint():
    from chalicelib.audit import api

    return _json(*api.read_checkpoint(app.current_request.headers))


@app.route("/v1/audit/inclusion/{ref}", methods=["GET"])
def audit_inclusion(ref):
    from chalicelib.audit import api

    return _json(*api.read_inclusion(ref, None, app.current_request.headers))


@app.route("/v1/audit/inclusion/{ref}/{tree_size}", methods=["GET"])
def audit_inclusion_at(ref, tree_size):
    from chalicelib.audit import api

    return _json(*api.read_inclusion(ref, tree_size, app.current_request.headers))


@app.route("/v1/audit/consistency/{first}/{second}", methods=["GET"])
def audit_consistency(first, second):
    from chalicelib.audit import api

    return _json(*api.read_consistency(first, second, app.current_request.headers))


# The operators' console (chalicelib/ops_api.py): its files and its API. Sign-in: a token in local
# mode; in AWS a Cognito user pool authorizer in front of /v1/ops (README, "Operators").
@app.route("/console", methods=["GET"])
def console():
    from chalicelib import ops_api

    status, text, headers = ops_api.asset("index.html")
    return Response(body=text, status_code=status, headers=headers)


@app.route("/console/{name}", methods=["GET"])
def console_file(name):
    from chalicelib import ops_api

    status, text, headers = ops_api.asset(name)
    return Response(body=text, status_code=status, headers=headers)


def _operator_request(resource, ref=None, action=None):
    from chalicelib import ops_api

    request = app.current_request
    return _json(*ops_api.answer(request.method, resource, ref, action, request.headers, request.query_params,
                                 request.raw_body, request.context))


@app.route("/v1/ops/{resource}", methods=["GET"], authorizer=OPERATORS)
def operator_resource(resource):
    return _operator_request(resource)


@app.route("/v1/ops/{resource}/{ref}", methods=["GET", "POST"], authorizer=OPERATORS)
def operator_item(resource, ref):
    return _operator_request(resource, ref)


@app.route("/v1/ops/{resource}/{ref}/{action}", methods=["POST"], authorizer=OPERATORS)
def operator_action(resource, ref, action):
    return _operator_request(resource, ref, action)


@app.on_dynamodb_record(stream_arn=EVENTS_STREAM_ARN, batch_size=100, starting_position="TRIM_HORIZON")
def route_accepted(event):
    from chalicelib import routing

    return routing.handle_stream_batch(event.to_dict())


@app.on_sqs_message(queue=DELIVERY_QUEUE, batch_size=10)
def deliver(event):
    from chalicelib import delivery

    return delivery.handle_queue_batch(event.to_dict())


# `chalice package` cannot package @app.on_s3_event; S3 → EventBridge → this rule does the same.
@app.on_cw_event({"source": ["aws.s3"], "detail-type": ["Object Created"],
                  "detail": {"bucket": {"name": [DOCUMENTS_BUCKET]}, "object": {"key": [{"prefix": "documents/"}]}}},
                 name="verify_document")
def verify_document(event):
    from chalicelib import documents

    return documents.handle_s3_event(event.to_dict())


@app.schedule("rate(1 minute)")
def sweep(event):
    from chalicelib import delivery, flows

    return {**delivery.sweep(), **flows.sweep()}


# Every minute, sequencing every few seconds inside it (chalicelib/audit).
@app.schedule("rate(1 minute)")
def audit_sequence(event):
    from chalicelib import audit

    return audit.run_sequencer(event.context.get_remaining_time_in_millis)
