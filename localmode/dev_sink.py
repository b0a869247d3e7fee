"""A receiver for the built-in development partners, so that `make run` alone delivers somewhere.

It checks the hub's signature on every delivery, answers 204, and keeps the last deliveries'
ids and types (never their data) for `GET /`.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chalicelib import signatures
from chalicelib.errors import HubError
from chalicelib.observability import logger


def make_server(port: int, hub_secret: str) -> ThreadingHTTPServer:
    seen: collections.deque = collections.deque(maxlen=200)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the hub logs deliveries itself
            pass

        def do_GET(self):
            with lock:
                body = json.dumps({"deliveries": list(seen)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
            try:
                msg_id, stamp, sig = signatures.read_headers(dict(self.headers))
                signatures.verify([hub_secret], msg_id, stamp, sig, raw, time.time(), 300)
                status, verified = 204, True
            except HubError:
                status, verified, msg_id = 401, False, self.headers.get("webhook-id", "")
            try:
                event_type = json.loads(raw).get("type")
            except ValueError:
                event_type = None
            with lock:
                seen.append({"partner_id": self.path.strip("/"), "webhook_id": msg_id, "type": event_type,
                             "verified": verified, "received_at": time.time()})
            logger.info("dev partner received a delivery", extra={"sink_partner": self.path.strip("/"),
                                                                     "event_type": event_type, "verified": verified})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server
