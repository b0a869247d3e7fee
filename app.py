"""Routes and event-source handlers only; the work is in chalicelib.

Importing this module needs no network and no settings beyond the region: everything behind the
handlers is imported and created on first use.
"""
from chalice import Chalice, ConvertToMiddleware, Response

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
