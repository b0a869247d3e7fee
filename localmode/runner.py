"""`make run`: moto server (unless HUB_AWS_ENDPOINT), resources from infra/, partners seeded from the
partners file, the Chalice app over HTTP, and the drivers for its queue, stream and schedule handlers.
SIGINT or SIGTERM stops everything it started.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILTIN_PARTNERS = REPO / "localmode" / "dev-partners.json"
STATE_FILE = Path(os.environ.get("HUB_STATE_FILE") or REPO / ".hub" / "local.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(message: str) -> None:
    print(f"[hub] {message}", file=sys.stderr, flush=True)


def _no_delay_handler(base: type) -> type:
    """Chalice's handler writes headers and body separately; with Nagle's algorithm on, a kept-alive
    connection then waits ~40 ms for the client's delayed ACK on every answer."""
    return type("NoDelayChaliceRequestHandler", (base,), {"disable_nagle_algorithm": True})


UNAUTHENTICATED_BODY = json.dumps({"error": {"code": "unauthenticated", "message": "The request could not be "
                                             "authenticated.", "details": []}}, separators=(",", ":")).encode()


def _refuse_malformed_bearer_tokens() -> None:
    """API Gateway answers 401 to an Authorization header that is not a JWT on a route with a user
    pool authorizer; chalice local's stand-in fails to decode it and drops the connection instead.
    (Local mode signs operators in with its own token headers; this only keeps a stray header a 401.)"""
    from chalice import local

    decode = local.LocalGatewayAuthorizer._decode_jwt_payload
    if getattr(decode, "refuses_malformed", False):
        return

    def decode_or_refuse(self, jwt: str) -> dict:
        try:
            claims = decode(self, jwt)
        except Exception:
            claims = None
        if not isinstance(claims, dict):
            # The body the template's UNAUTHORIZED gateway response gives (infra/resources.json).
            raise local.NotAuthorizedError({"x-amzn-ErrorType": "UnauthorizedException",
                                            "Content-Type": "application/json"}, UNAUTHENTICATED_BODY)
        return claims

    decode_or_refuse.refuses_malformed = True  # type: ignore[attr-defined]
    local.LocalGatewayAuthorizer._decode_jwt_payload = decode_or_refuse


def _decode_path_parameters() -> None:
    """API Gateway hands a Lambda its path parameters percent-decoded; chalice local hands them as they
    came, so an id a partner had to encode (and signed decoded) would not be the id the hub reads."""
    from urllib.parse import unquote

    from chalice import local

    match = local.RouteMatcher.match_route
    if getattr(match, "decodes", False):
        return

    def match_and_decode(self, url: str) -> local.MatchResult:
        found = match(self, url)
        return found._replace(captured={k: unquote(v) for k, v in found.captured.items()})

    match_and_decode.decodes = True  # type: ignore[attr-defined]
    local.RouteMatcher.match_route = match_and_decode


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "cn-north-1")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    region = os.environ["AWS_DEFAULT_REGION"]
    port = int(os.environ.get("HUB_PORT", "8000"))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    # The embedded moto server logs every AWS call through werkzeug; the hub's own log is what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_server = None
    endpoint = os.environ.get("HUB_AWS_ENDPOINT")
    if not endpoint:
        # Credentials are only needed to sign requests to the embedded emulator.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        from moto.server import ThreadedMotoServer

        moto_port = int(os.environ.get("HUB_MOTO_PORT") or _free_port())
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto_server.start()
        endpoint = f"http://127.0.0.1:{moto_port}"
        os.environ["HUB_AWS_ENDPOINT"] = endpoint
        _log(f"embedded AWS (moto) at {endpoint}")

    from infra.local_resources import ensure_resources

    os.environ.update(ensure_resources(endpoint, region))
    os.environ["HUB_PARTNER_SOURCE"] = "aws"
    os.environ.setdefault("HUB_PARTNER_CACHE_TTL", "2")
    # One audit batch per call of the schedule handler, which this process calls every ~2 s.
    os.environ.setdefault("HUB_AUDIT_RUN_SECONDS", "0")

    # The operators' console signs in with a token: the environment's, or one made for this run.
    if not os.environ.get("HUB_OPERATOR_TOKEN"):
        import secrets

        os.environ["HUB_OPERATOR_TOKEN"] = secrets.token_urlsafe(24)

    from chalicelib import partner_admin
    from chalicelib.partners import PartnersFile
    from chalicelib.settings import get_settings, reset_settings

    reset_settings()
    builtin = not os.environ.get("HUB_PARTNERS")
    partners_path = os.environ.get("HUB_PARTNERS") or str(BUILTIN_PARTNERS)
    partners_file = PartnersFile.load(partners_path)
    sink_port = int(os.environ.get("HUB_SINK_PORT", "8001"))
    if builtin:
        # The built-in partners all deliver to the development receiver, wherever it listens.
        partners_file = partners_file.model_copy(update={"partners": [
            p.model_copy(update={"endpoint": f"http://127.0.0.1:{sink_port}/{p.id}"}) for p in partners_file.partners]})
    partner_admin.seed_from_file(partners_file)
    _log(f"{len(partners_file.partners)} partners from {partners_path}")

    import app as app_module
    from chalice.config import Config
    from chalice.local import create_local_server

    from localmode import drivers

    settings = get_settings()
    threads = []
    sink = None
    if builtin:
        from localmode.dev_sink import make_server

        try:
            sink = make_server(sink_port, partners_file.hub.signing_secret)
            threads.append(drivers.start(sink.serve_forever))
            _log(f"development partners receive deliveries at http://127.0.0.1:{sink_port}/<partner_id>")
        except OSError as exc:
            _log(f"development receiver not started ({exc}); deliveries to dev partners will be retried")

    from chalicelib import aws

    queue_url = settings.delivery_queue_url
    queue_arn = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    threads.append(drivers.start(drivers.drive_stream, stop, app_module.route_accepted,
                                 os.environ["HUB_EVENTS_STREAM_ARN"], region))
    for _ in range(drivers.queue_workers()):
        threads.append(drivers.start(drivers.drive_queue, stop, app_module.deliver, queue_url, queue_arn, region))
    from localmode import s3_events

    threads.append(drivers.start(functools.partial(s3_events.drive_uploads, shape="eventbridge"), stop,
                                 app_module.verify_document, settings.documents_bucket, region))
    threads.append(drivers.start(drivers.drive_schedule, stop, app_module.sweep,
                                 float(os.environ.get("HUB_SWEEP_INTERVAL", "60")), region))
    threads.append(drivers.start(drivers.drive_schedule, stop, app_module.audit_sequence,
                                 float(os.environ.get("HUB_AUDIT_INTERVAL", "2")), region, "audit_sequence"))

    _refuse_malformed_bearer_tokens()
    _decode_path_parameters()
    server = create_local_server(app_module.app, Config(chalice_stage="dev"), "127.0.0.1", port)
    handler = server.server.RequestHandlerClass  # functools.partial(ChaliceRequestHandler, app_object=…, config=…)
    server.server.RequestHandlerClass = functools.partial(_no_delay_handler(handler.func), *handler.args,
                                                          **handler.keywords)
    http_thread = drivers.start(server.server.serve_forever)
    STATE_FILE.parent.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps({"api": f"http://127.0.0.1:{port}", "aws_endpoint": endpoint,
                                      "region": region, "pid": os.getpid()}))
    _log(f"serving on http://127.0.0.1:{port} (GET /health, GET /v1/catalog, POST /v1/partners/<id>/events)")
    _log(f"operators' console: http://127.0.0.1:{port}/console (sign in with any operator id and the token "
         f"{os.environ['HUB_OPERATOR_TOKEN']})")

    stop.wait()
    _log("stopping")
    server.server.shutdown()
    server.server.server_close()
    if sink is not None:
        sink.shutdown()
        sink.server_close()
    deadline = time.monotonic() + 10  # one bound for all: the drivers are daemon threads, checking `stop`
    for thread in [*threads, http_thread]:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if moto_server is not None:
        moto_server.stop()
    try:
        STATE_FILE.unlink()
    except FileNotFoundError:
        pass
    _log("stopped")
    return 0
