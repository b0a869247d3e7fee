"""Test helpers: a partner's signing client (the official standardwebhooks library), a real HTTP
receiver playing the partner's endpoint, and partners files."""
from __future__ import annotations

import base64
import json
import os
import queue
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_request(secret: str, body: str | bytes, msg_id: str | None = None, timestamp: int | None = None) -> dict:
    """Headers a partner sends, made with the official Standard Webhooks library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    text = body.decode() if isinstance(body, bytes) else body
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), text)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature,
            "content-type": "application/json"}


def envelope(event_type: str, data: dict, timestamp: str | None = None) -> str:
    return json.dumps({"type": event_type, "timestamp": timestamp or datetime.now(timezone.utc).isoformat(),
                       "data": data}, ensure_ascii=False)


class Receiver:
    """A partner's endpoint: a real HTTP server on loopback that records every delivery.

    `statuses` is consumed one per request (then `default_status`); `delay_s` stalls an answer.
    """

    def __init__(self, default_status: int = 200):
        self.requests: "queue.Queue[dict]" = queue.Queue()
        self.others: list[dict] = []  # requests a test set aside while waiting for another
        self.statuses: list[int] = []
        self.default_status = default_status
        self.path_status: dict[str, int] = {}
        self.delay_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = (receiver.path_status.get(self.path) or
                          (receiver.statuses.pop(0) if receiver.statuses else receiver.default_status))
                receiver.requests.put({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body.decode(), "status": status, "at": time.time()})
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def take(self, timeout: float = 10.0) -> dict:
        return self.requests.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Partners every functional and end-to-end test uses. Cities: Shenzhen 440300, Beijing 110000.
def partners_doc(endpoint_base: str) -> dict:
    def p(pid, kind, city, mapping="canonical", **extra):
        return {"id": pid, "kind": kind, "city": city, "secrets": [new_secret()], "mapping": mapping,
                "endpoint": f"{endpoint_base}/{pid}", **extra}

    return {"hub": {"signing_secret": new_secret()}, "partners": [
        p("sz-registry", "registry", "440300"),
        p("sz-tax", "tax", "440300", mapping="tax_gt3"),
        p("sz-fiscal", "fiscal", "440300"),
        p("bj-registry", "registry", "110000"),
        p("bj-tax", "tax", "110000"),
        p("bj-fiscal", "fiscal", "110000"),
        p("bj-pay", "payment", "110000"),
        p("sz-ccb-govpay", "payment", "440300", mapping="bank_govpay"),
        p("sz-water", "utility", "440300", utility="water"),
        p("sz-power", "utility", "440300", utility="electricity"),
        p("sz-gas", "utility", "440300", utility="gas"),
        p("sz-ccb", "bank", "440300", uscc="91440300MA5F00001A"),
        p("sz-cmb", "bank", "440300", uscc="91440101MA9W000042"),
        p("bj-icbc", "bank", "110000", uscc="91110000100000001W"),
        p("sz-notary", "notary", "440300", uscc="124403004000000014"),
        p("sz-court", "court", "440300", uscc="11440300000000001R"),
        p("bj-court", "court", "110000", uscc="111101050000000017"),
        p("gz-registry", "registry", "440100"),
    ]}


def secret_of(doc: dict, partner_id: str) -> str:
    return next(p for p in doc["partners"] if p["id"] == partner_id)["secrets"][0]


def lambda_context(name: str):
    """The Lambda context local mode gives handlers (what Powertools reads)."""
    from localmode.drivers import LocalContext

    return LocalContext(name)
