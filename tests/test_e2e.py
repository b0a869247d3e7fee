"""Local mode as a user runs it: a subprocess serving HTTP, partners signing with the official
standardwebhooks library, deliveries received by a real HTTP server, operators using hubctl."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support import Receiver, envelope, free_port, partners_doc, secret_of, sign_request

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent
SZ_UNIT = "440305001001GB00001F00010001"
BJ_UNIT = "110105001001GB00001F00010001"


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class LocalHub:
    def __init__(self, tmp_path: Path, env: dict[str, str], drop: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "hub.log"
        self.env = {**os.environ, "HUB_PORT": str(self.port), "HUB_STATE_FILE": str(tmp_path / "state.json"),
                    "PYTHONUNBUFFERED": "1", **env}
        for name in ("HUB_PARTNER_SOURCE", "HUB_DELIVERY_QUEUE_URL", *drop):
            self.env.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "localmode"], cwd=REPO, env=self.env,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if http("GET", self.url + "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("local mode did not become ready:\n" + self.log.read_text()[-3000:])

    def post_event(self, partner_id: str, secret: str, event_type: str, data: dict, msg_id: str | None = None):
        body = envelope(event_type, data)
        return http("POST", f"{self.url}/v1/partners/{partner_id}/events", body.encode(),
                    sign_request(secret, body, msg_id=msg_id))

    def hubctl(self, *args: str) -> tuple[int, object]:
        done = subprocess.run([sys.executable, "hubctl.py", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=60)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@contextlib.contextmanager
def hub_with_partners(tmp: Path, make_partners):
    """moto (in this process), a partner Receiver, and local mode with the partners `make_partners`
    builds for the receiver's URL; yields (hub, partners doc, receiver) and stops all three after."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    receiver = Receiver()
    hub = None
    try:
        doc = make_partners(f"http://127.0.0.1:{receiver.port}")
        (tmp / "partners.json").write_text(json.dumps(doc))
        hub = LocalHub(tmp, {"HUB_PARTNERS": str(tmp / "partners.json"), "HUB_AWS_ENDPOINT": endpoint,
                             "AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e"})
        yield hub, doc, receiver
    finally:
        if hub is not None:
            assert hub.stop() == 0
        receiver.close()
        # moto's state lives in this process and outlives the server: clear it for the tests after us.
        urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=10).close()
        moto.stop()


def take(receiver: Receiver, path: str, timeout: float = 30) -> dict:
    """The next delivery to `path`; deliveries to other partners (the fee bills of the same
    application go to the fiscal system) are set aside."""
    deadline = time.monotonic() + timeout
    while True:
        got = receiver.take(timeout=max(0.1, deadline - time.monotonic()))
        if got["path"] == path:
            return got
        receiver.others.append(got)


def drain(receiver: Receiver) -> list[dict]:
    found = []
    while not receiver.requests.empty():
        found.append(receiver.requests.get_nowait())
    return found


def application(unit_code: str, case_id: str) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = json.loads(json.dumps(EVENT_TYPES["application.submitted"].example))
    data.update(unit_code=unit_code, case_id=case_id)
    return data


@pytest.fixture
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    # moto's state lives in this process and outlives the server: clear it for the tests after us.
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=10).close()
    server.stop()


def test_transfer_application_reaches_the_tax_bureau_with_retries_dead_letters_and_replay(tmp_path, moto_endpoint):
    receiver = Receiver()
    doc = partners_doc(f"http://127.0.0.1:{receiver.port}")
    (tmp_path / "partners.json").write_text(json.dumps(doc))
    hub = LocalHub(tmp_path, {"HUB_PARTNERS": str(tmp_path / "partners.json"), "HUB_AWS_ENDPOINT": moto_endpoint,
                              "AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e",
                              "HUB_RETRY_SCHEDULE": "1,1", "HUB_SWEEP_INTERVAL": "1", "HUB_SWEEP_GRACE": "5"})
    try:
        catalog = http("GET", hub.url + "/v1/catalog")[1]
        assert "application.submitted" in {e["type"] for e in catalog["event_types"]}

        # Shenzhen: accepted, routed through the stream, delivered in the tax bureau's own format.
        status, answer = hub.post_event("sz-registry", secret_of(doc, "sz-registry"), "application.submitted",
                                        application(SZ_UNIT, "SZ-2026-0001"), msg_id="msg_sz_1")
        assert status == 202, answer
        got = take(receiver, "/sz-tax")
        delivered = Webhook(doc["hub"]["signing_secret"]).verify(got["body"], got["headers"])
        assert delivered["type"] == "tax.assessment_requested" and delivered["data"]["bdcdyh"] == SZ_UNIT

        # The same webhook-id again: the first answer, nothing delivered twice.
        again = hub.post_event("sz-registry", secret_of(doc, "sz-registry"), "application.submitted",
                               application(SZ_UNIT, "SZ-2026-0001"), msg_id="msg_sz_1")
        assert again == (200, {**answer, "duplicate": True})

        # Beijing's tax bureau is down: 1 + 2 retries, then a dead letter operators can see.
        receiver.path_status["/bj-tax"] = 503
        status, _ = hub.post_event("bj-registry", secret_of(doc, "bj-registry"), "application.submitted",
                                   application(BJ_UNIT, "BJ-2026-0001"))
        assert status == 202
        attempts = [take(receiver, "/bj-tax") for _ in range(3)]
        webhook_ids = {a["headers"]["webhook-id"] for a in attempts}
        assert len(webhook_ids) == 1
        dead = []
        for _ in range(60):
            code, dead = hub.hubctl("dead-letters", "list")
            if dead:
                break
            time.sleep(0.5)
        assert code == 0 and [d["delivery_id"] for d in dead] == list(webhook_ids)

        # The bureau is back; the operator replays; the same webhook-id arrives and is acknowledged.
        receiver.path_status.clear()
        code, result = hub.hubctl("dead-letters", "replay", "--all")
        assert code == 0 and result == {"replayed": 1}
        replayed = take(receiver, "/bj-tax")
        assert replayed["headers"]["webhook-id"] in webhook_ids and replayed["status"] == 200
        for _ in range(60):
            code, shown = hub.hubctl("deliveries", "show", replayed["headers"]["webhook-id"])
            if shown and shown["state"] == "delivered":
                break
            time.sleep(0.5)
        assert shown["state"] == "delivered"
        time.sleep(1)
        assert [r for r in drain(receiver) if r["path"] == "/bj-tax"] == []  # nothing delivered twice
        log = hub.log.read_text()
        assert "SZ-2026-0001" not in log and "11010519491231002X" not in log
    finally:
        assert hub.stop(signal.SIGTERM) == 0
        receiver.close()


def test_make_run_alone_gives_a_working_hub_and_stops_on_ctrl_c(tmp_path):
    """No partners file, no endpoint: embedded moto, built-in partners, deliveries to the dev receiver."""
    sink_port = free_port()
    hub = LocalHub(tmp_path, {"HUB_SINK_PORT": str(sink_port)},
                   drop=("HUB_PARTNERS", "HUB_AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    try:
        dev = json.loads((REPO / "localmode" / "dev-partners.json").read_text())
        secret = next(p for p in dev["partners"] if p["id"] == "sz-registry")["secrets"][0]
        status, _ = hub.post_event("sz-registry", secret, "application.submitted", application(SZ_UNIT, "SZ-DEV-1"))
        assert status == 202
        # The assessment request and the fee bill go out in parallel: wait for the tax bureau's.
        deadline = time.monotonic() + 60  # generous: the whole suite shares two cores
        while True:
            seen = [d for d in http("GET", f"http://127.0.0.1:{sink_port}/")[1]["deliveries"]
                    if d["partner_id"] == "sz-tax"]
            if seen or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen and seen[0]["verified"] is True and seen[0]["type"] == "tax.assessment_requested"

        # The README's paste-able signed request works as written.
        readme = (REPO / "README.md").read_text()
        block = readme.split("<!-- readme-example:start -->")[1].split("<!-- readme-example:end -->")[0]
        script = block.split("```sh", 1)[1].rsplit("```", 1)[0]
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, capture_output=True, text=True,
                              timeout=60, env={**hub.env, "HUB_PORT": str(hub.port)})
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["status"] == "accepted" and answer["event_id"].startswith("evt_"), answer

        # And the README's signed read finds that case once the stream has made it.
        block = readme.split("<!-- readme-read-example:start -->")[1].split("<!-- readme-read-example:end -->")[0]
        script = block.split("```sh", 1)[1].rsplit("```", 1)[0]
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, capture_output=True,
                                  text=True, timeout=60, env={**hub.env, "HUB_PORT": str(hub.port)})
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.returncode == 0, done.stderr[-2000:]
        [case] = json.loads(done.stdout)["cases"]
        assert case["case_id"] == "SZ-2026-000123" and case["stage"] == "awaiting_assessment_and_bills"
    finally:
        assert hub.stop(signal.SIGINT) == 0
    assert "stopped" in hub.log.read_text()
