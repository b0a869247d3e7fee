"""Shared pieces of the benchmarks: a moto server in its own process, local mode as a subprocess, a
partner endpoint that answers 204, Standard Webhooks signing (the official library), statistics and
result files. Loopback only; every wait is bounded.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
REGION = "cn-north-1"
SZ_UNIT = "440305001001GB00001F00010001"
BJ_UNIT = "110105001001GB00001F00010001"
# Access key ids only label who made a request at the endpoint (moto accepts any).
HUB_KEY = "BENCHHUBKEY"
OBSERVER_KEY = "BENCHOBSERVER"
FLOOR_KEY = "BENCHFLOOR"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> float:
    """Poll `predicate` until true; returns the seconds waited. Raises TimeoutError after `timeout_s`."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s")
        time.sleep(interval_s)


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without AWS_* / HUB_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HUB_", "MOTO_"))}
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------
# moto server, its own process


class MotoServer:
    """`python -m moto.server` on loopback, in its own process (its own GIL)."""

    def __init__(self, workdir: Path, recorder_file: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "moto.log"
        env = clean_env(PYTHONUNBUFFERED="1")
        if recorder_file is not None:
            # Recording stays off until start_recording(); this only says where it goes.
            env["MOTO_RECORDER_FILEPATH"] = str(recorder_file)
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     cwd=workdir, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, 60, 0.2, "moto server ready")
        except Exception:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("moto server exited:\n" + self.log_path.read_text()[-2000:])
        try:
            return http("GET", self.url + "/moto-api/data.json", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path: str) -> bytes:
        status, body = http("POST", f"{self.url}/moto-api/{path}", b"", timeout=30)
        if status != 200:
            raise RuntimeError(f"moto-api/{path}: HTTP {status}")
        return body

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def aws_client(service: str, endpoint: str, key_id: str, max_pool: int = 16) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id=key_id,
        aws_secret_access_key="bench", config=Config(retries={"mode": "standard", "max_attempts": 4},
                                                     max_pool_connections=max_pool))


# --------------------------------------------------------------------------------------------------
# the partners' endpoint


class Receiver:
    """A partner endpoint on loopback: answers 204 to every POST. Counts every POST (`count`, repeats
    included) and the distinct webhook-ids; with `keep_bodies`, keeps every delivery in `got` (partner,
    type, data, webhook-id, and whether that webhook-id had come before), which `find` searches."""

    def __init__(self, keep_bodies: bool = False) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.repeats = 0
        self.by_path: dict[str, int] = {}
        self.webhook_ids: set[str] = set()
        self.got: list[dict[str, Any]] = []
        self.last_at = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                webhook_id = self.headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.count += 1
                    receiver.by_path[self.path] = receiver.by_path.get(self.path, 0) + 1
                    repeat = webhook_id in receiver.webhook_ids
                    receiver.repeats += repeat
                    receiver.webhook_ids.add(webhook_id)
                    receiver.last_at = time.monotonic()
                    if keep_bodies:
                        try:
                            payload = json.loads(body)
                            receiver.got.append({"partner": self.path.strip("/"), "type": payload.get("type"),
                                                 "data": payload.get("data") or {}, "webhook_id": webhook_id,
                                                 "repeat": repeat})
                        except ValueError:
                            pass
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="receiver")
        self.thread.start()

    def find(self, event_type: str | None = None, partner: str | None = None,
             where: Callable[[dict[str, Any]], bool] | None = None, **match: Any) -> list[dict[str, Any]]:
        """Kept deliveries, each once (repeats of a webhook-id left out), of `event_type` to `partner`
        (None: any) whose data has the fields of `match` and satisfies `where`."""
        with self.lock:
            return [d for d in self.got if not d["repeat"] and event_type in (None, d["type"])
                    and partner in (None, d["partner"]) and all(d["data"].get(k) == v for k, v in match.items())
                    and (where is None or where(d["data"]))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


GZ_CITY = "440100"
REQUIRED_PARTNERS = ("sz-registry", "bj-registry", "sz-tax", "bj-tax")


def _own_partners(endpoint_base: str) -> list[dict]:
    def p(pid: str, kind: str, city: str, mapping: str = "canonical", **extra: str) -> dict:
        return {"id": pid, "kind": kind, "city": city, "secrets": [new_secret()], "mapping": mapping,
                "endpoint": f"{endpoint_base}/{pid}", **extra}

    return [p("sz-registry", "registry", "440300"), p("sz-tax", "tax", "440300", mapping="tax_gt3"),
            p("sz-fiscal", "fiscal", "440300"), p("bj-registry", "registry", "110000"),
            p("bj-tax", "tax", "110000"), p("bj-fiscal", "fiscal", "110000")]


def partners_doc(endpoint_base: str, every_kind_in_guangzhou: bool = False) -> tuple[dict, str]:
    """The partners the functional and end-to-end tests use (tests/support.py: registries, tax bureaus,
    fiscal and payment partners of Shenzhen and Beijing, kept in step with the hub's door rules), or a
    minimal set of our own if that is unavailable. Optionally one canonical partner of every kind in
    Guangzhou (`gz-<kind>`): senders for types that touch no Shenzhen or Beijing case.
    Returns (document, where the partners came from)."""
    try:
        from tests.support import partners_doc as tests_partners_doc

        doc = tests_partners_doc(endpoint_base)
        source = "tests/support.py partners_doc"
        if not set(REQUIRED_PARTNERS) <= {p["id"] for p in doc["partners"]}:
            raise ImportError("required partners missing")
    except Exception:
        doc = {"hub": {"signing_secret": new_secret()}, "partners": _own_partners(endpoint_base)}
        source = "bench/common.py minimal set"
    if every_kind_in_guangzhou:
        from chalicelib.models import PARTNER_KINDS

        taken = {p["id"] for p in doc["partners"]}
        for kind in PARTNER_KINDS:
            pid = f"gz-{kind.replace('_', '-')}"
            if pid not in taken:
                doc["partners"].append({"id": pid, "kind": kind, "city": GZ_CITY, "secrets": [new_secret()],
                                        "mapping": "canonical", "endpoint": f"{endpoint_base}/{pid}",
                                        **({"utility": "water"} if kind == "utility" else {})})
    return doc, source


def secret_of(doc: dict, partner_id: str) -> str:
    return next(p for p in doc["partners"] if p["id"] == partner_id)["secrets"][0]


# --------------------------------------------------------------------------------------------------
# requests partners send


def event_body(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "timestamp": datetime.now(timezone.utc).isoformat(), "data": data},
                      ensure_ascii=False).encode("utf-8")


def example_data(event_type: str, **changes: Any) -> dict:
    from chalicelib.models import EVENT_TYPES

    data = json.loads(json.dumps(EVENT_TYPES[event_type].example))
    data.update(changes)
    return data


class Signer:
    """Standard Webhooks headers made by the official library, stamped at the moment of sending."""

    def __init__(self, secret: str):
        from standardwebhooks import Webhook

        self._webhook = Webhook(secret)

    def headers(self, body: bytes, msg_id: str | None = None) -> dict[str, str]:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        now = datetime.now(timezone.utc).replace(microsecond=0)
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self._webhook.sign(msg_id, now, body.decode("utf-8")),
                "content-type": "application/json"}


class Partners:
    """Partners posting signed events to local mode, one request at a time: anything but 202 stops the
    benchmark; answers are counted by status and events by type."""

    def __init__(self, hub_url: str, doc: dict, partner_ids: tuple[str, ...]):
        self.hub_url = hub_url
        self.signers = {pid: Signer(secret_of(doc, pid)) for pid in partner_ids}
        self.statuses: Counter = Counter()
        self.posted: Counter = Counter()

    def post(self, partner_id: str, event_type: str, data: dict, msg_id: str | None = None) -> dict[str, Any]:
        """The hub's answer (its `event_id`)."""
        body = event_body(event_type, data)
        status, answer = http("POST", f"{self.hub_url}/v1/partners/{partner_id}/events", body,
                              self.signers[partner_id].headers(body, msg_id), timeout=30)
        self.statuses[status] += 1
        self.posted[event_type] += 1
        if status != 202:
            raise RuntimeError(f"{event_type} from {partner_id}: HTTP {status} {answer[:400]!r}")
        return json.loads(answer)


# --------------------------------------------------------------------------------------------------
# local mode, a subprocess


class LocalHub:
    """`python -m localmode` against an existing AWS endpoint and a partners file."""

    def __init__(self, workdir: Path, aws_endpoint: str, partners_file: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "hub.log"
        env = clean_env(
            PYTHONUNBUFFERED="1", AWS_DEFAULT_REGION=REGION, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
            AWS_ACCESS_KEY_ID=HUB_KEY, AWS_SECRET_ACCESS_KEY="bench", HUB_PORT=str(self.port),
            HUB_STATE_FILE=str(workdir / "hub-state.json"), HUB_AWS_ENDPOINT=aws_endpoint,
            HUB_PARTNERS=str(partners_file), **(extra_env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "localmode"], cwd=REPO, env=env,
                                     stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        try:
            self.ready_s = wait_until(self._ready, 120, 0.3, "local mode /health")
        except Exception:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("local mode exited:\n" + self.log_path.read_text()[-3000:])
        try:
            return http("GET", self.url + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self) -> int | None:
        return stop_process(self.proc)


class StackBase:
    """A benchmark stack: moto server (own process, its request recorder armed if asked), a partner
    endpoint in this process, local mode against both; torn down in reverse order whatever happens."""

    hub: Any = None
    receiver: Any = None
    moto: Any = None
    _tmp: Any = None
    partners_source = ""

    def _start(self, prefix: str, receiver: Receiver, partners: Callable[[str], tuple[dict, str]],
               recorder: bool = False, extra_env: dict[str, str] | None = None) -> None:
        """Start moto, take `receiver` as the partners' endpoint, write the partners file
        `partners(endpoint_base)` returns (document, where it came from), start local mode."""
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.workdir = Path(self._tmp.name)
        self.recorder_file = self.workdir / "moto_recording.jsonl" if recorder else None
        self.receiver = receiver
        try:
            self.moto = MotoServer(self.workdir, self.recorder_file)
            self.doc, self.partners_source = partners(f"http://127.0.0.1:{self.receiver.port}")
            partners_file = self.workdir / "partners.json"
            partners_file.write_text(json.dumps(self.doc))
            self.hub = LocalHub(self.workdir, self.moto.url, partners_file, extra_env)
            log(f"moto {self.moto.url}, local mode {self.hub.url} (pid {self.hub.proc.pid}) "
                f"ready in {self.hub.ready_s:.1f} s")
        except BaseException:
            self.close()
            raise

    @functools.cached_property
    def ddb(self) -> Any:
        """A DynamoDB client of this process (the observer's key id: left out of the counts)."""
        return aws_client("dynamodb", self.moto.url, OBSERVER_KEY)

    def secret(self, partner_id: str) -> str:
        return secret_of(self.doc, partner_id)

    def hub_log_tail(self, chars: int = 3000) -> str:
        try:
            return self.hub.log_path.read_text(errors="replace")[-chars:] if self.hub else ""
        except OSError:
            return ""

    def close(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        if self.receiver is not None:
            self.receiver.close()
        if self.moto is not None:
            self.moto.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "StackBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Stack(StackBase):
    """The partners of the tests (or a minimal set, see partners_doc), a receiver that only counts."""

    def __init__(self, recorder: bool = False, extra_env: dict[str, str] | None = None,
                 every_kind_in_guangzhou: bool = False):
        self._start("hub-bench-", Receiver(), lambda base: partners_doc(base, every_kind_in_guangzhou), recorder,
                    extra_env)


def tests_partners(endpoint_base: str) -> tuple[dict, str]:
    """The partners of tests/support.py, no fallback (for flows whose partners the minimal set lacks)."""
    from tests.support import partners_doc as tests_partners_doc

    return tests_partners_doc(endpoint_base), "tests/support.py partners_doc"


# --------------------------------------------------------------------------------------------------
# moto's request recorder


def split_recorder_line(line: str) -> tuple[list[dict[str, Any]], int, int]:
    """The JSON objects on one line of moto's recorder file: (objects, joined, unreadable).

    moto's recorder appends an entry and its newline in two writes, from concurrent request threads, so
    two entries sometimes share a line (and a later line is empty). `joined` counts the entries found
    after the first on a line (recovered, not lost); `unreadable` is 1 if the line has text that is not
    JSON (whatever follows it on that line is lost)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = 0
    while at < len(line):
        while at < len(line) and line[at].isspace():
            at += 1
        if at >= len(line):
            break
        try:
            obj, at = decoder.raw_decode(line, at)
        except ValueError:
            return found, max(len(found) - 1, 0), 1
        found.append(obj)
    return found, max(len(found) - 1, 0), 0


Span = tuple[int, int, float]  # recorded entries [first, last) of a phase, and its seconds


def counted_phases(moto: MotoServer, recording: Any, run_phase: Callable[[str], Any], phases: tuple[str, ...]
                   ) -> tuple[dict[str, Span], dict[str, Any]]:
    """Run each phase with moto's recorder on, one after another: which recorded requests (positions in
    `recording.entries`; `recording` is write_count.Recording) fell in each phase, and how long it took.
    Each phase must settle before it returns, so a request lands in the phase that caused it. Returns
    (spans, what each phase returned)."""
    moto.api("recorder/start-recording")
    spans: dict[str, Span] = {}
    returned: dict[str, Any] = {}
    for phase in phases:
        recording.poll()
        first, t0 = len(recording.entries), time.monotonic()
        returned[phase] = run_phase(phase)
        recording.poll()
        spans[phase] = (first, len(recording.entries), time.monotonic() - t0)
    moto.api("recorder/stop-recording")
    time.sleep(0.3)
    recording.poll()
    return spans, returned


def hub_entries(recording: Any, span: Span) -> list[dict[str, Any]]:
    """The recorded requests of a span, the observer's own look-ups left out."""
    first, last, _ = span
    return [r for r in recording.entries[first:last] if r["key_id"] != OBSERVER_KEY]


# --------------------------------------------------------------------------------------------------
# figures and files


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    import boto3
    import moto

    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "moto": moto.__version__, "boto3": boto3.__version__}
    try:
        info["loadavg_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def code_state() -> dict[str, Any]:
    """Which code was measured: the commit, and files changed since it (outside bench/)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_files_outside_bench": len(dirty),
            "uncommitted_sample": dirty[:20]}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"benchmark": name, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "code": code_state(), **result}
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    return path


def publish_result(name: str, result: dict[str, Any], summary: Callable[[dict[str, Any]], list[str]]) -> int:
    """Write bench/results/<name>.json, print the summary and where the JSON went; the exit status."""
    path = write_result(name, result)
    print("\n".join(summary(result)))
    print(f"  → {path.relative_to(REPO)}")
    return 0
