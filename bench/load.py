"""Load, measured: the highest rate of mixed partner events local mode holds with no error and no loss.

Loopback only. A moto server in its own process; local mode (`python -m localmode`) against it with a
partners file of its own: in each of the five cities (Beijing, Shanghai, Guangzhou, Shenzhen,
Hangzhou) a registry, a tax bureau, a fiscal system and a payment platform, all in the canonical
format, whose endpoints are a receiver in this process (answers 204, keeps the bodies). Partners sign
with the official `standardwebhooks` library, right before sending.

Open loop: request i of a step is due at start + i / rate, whatever happened to the ones before, and
its latency counts from that due time (waiting for a free connection is part of it). 16 threads, each
with a keep-alive connection, take the due requests in order. What each request is:

* a callback, when one is ready and callbacks are below half of what was sent: the partners answering
  what the hub delivered to them, as tests/test_e2e_transfer.py does (the answers are that test's):
  `payment.succeeded` for a `payment.order_requested` first, else the oldest of `tax.assessed` for a
  `tax.assessment_requested` and `nontax.bill_issued` for a `nontax.bill_requested`;
* otherwise a new `application.submitted` (flow 1, the one window) from the next city's registry, on a
  unit of its own, payer modes in turn.

Ramp: steps at rising rates until one is not clean, then once halfway back. Clean: every request
answered 202 (no other status, no timeout), achieved rate >= 95 % of the target, and the hub's
deliveries caught up with what the accepted events must make within max(2 s, 10 % of the step) of the
step's last answer. Hold: the highest clean rate for 60 s on a fresh hub (moto's Query reads every item
of a table, so a hub holding the ramp's state routes more slowly); if that is not clean, or the loss
check finds anything, halfway to the clean rate below, then that rate (three holds at most).

Loss check, after a bounded drain, over every event a hub accepted: each 202'd event id is in the
events table and has a sequenced audit leaf; each case has exactly the deliveries flow 1 must make,
each `delivered`, received by the partner's endpoint, and with a sequenced audit leaf.

Floors, in the same run: GET /health over the same 16 keep-alive connections (the hub's HTTP path
alone) and bare conditional PutItems on the same moto server, closed loop, before the ramp and after
the last hold; the held rate is given as a ratio to each.

    .venv/bin/python -m bench.load            # 3-6 minutes [--rates 4,6,9] [--step-seconds 10] [--hold-seconds 60]
    .venv/bin/python -m bench.load --quick    # about 45 s: 3 steps of 3 s, one hold of 10 s (load_quick.json)
"""
from __future__ import annotations

import argparse
import http.client as http_client
import json
import os
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from bench.common import Receiver, Signer, StackBase, event_body, log, new_secret, percentile, publish_result
from bench.ingest_ratio import Phase, _cpu_seconds, make_floor

NAME = "load"
# (id prefix, city code, county + zone of the units there: chalicelib/models/examples.py)
CITIES = (("bj", "110000", "110105001001"), ("sh", "310000", "310115004003"), ("gz", "440100", "440106003001"),
          ("sz", "440300", "440305001002"), ("hz", "330100", "330106002005"))
KINDS = {"registry": "registry", "tax": "tax", "fiscal": "fiscal", "pay": "payment"}
# Payer mode, land revenue, then what flow 1 must send for it (tests/test_e2e_transfer.py): bill
# requests to the fiscal system, and payment orders once the assessment and every bill are in.
PAYER_MODES = (("obligee_pays_all", None, 1, 1), ("obligor_pays_all", 500_000, 1, 1),
               ("each_pays_own", 500_000, 2, 2))
ANSWERS = {"tax.assessment_requested": "tax.assessed", "nontax.bill_requested": "nontax.bill_issued",
           "payment.order_requested": "payment.succeeded"}
CALLBACK_SHARE = 0.5
WORKERS = 16
REQUEST_TIMEOUT_S = 10.0
ACHIEVED_MIN = 0.95
RAMP = (4, 6, 9, 13, 20, 30, 45, 68, 100, 150)
QUICK_RAMP = (4, 8, 16)


def catch_up_limit(seconds: float) -> float:
    return max(2.0, 0.1 * seconds)


def load_partners(endpoint_base: str) -> dict[str, Any]:
    return {"hub": {"signing_secret": new_secret()}, "partners": [
        {"id": f"{prefix}-{suffix}", "kind": kind, "city": city, "secrets": [new_secret()], "mapping": "canonical",
         "endpoint": f"{endpoint_base}/{prefix}-{suffix}"}
        for prefix, city, _ in CITIES for suffix, kind in KINDS.items()]}


class LoadStack(StackBase):
    """moto (own process) + a receiver keeping bodies + local mode with the five cities' partners."""

    def __init__(self) -> None:
        self._start("hub-bench-load-", Receiver(keep_bodies=True),
                    lambda base: (load_partners(base), "bench/load.py load_partners"))
        self.pids = {"hub": self.hub.proc.pid, "moto": self.moto.proc.pid, "bench": os.getpid()}


# --------------------------------------------------------------------------------------------------
# what the partners send


@dataclass
class Case:
    case_id: str
    unit_code: str
    city: str
    bills: int
    orders: int
    answered: int = 0  # tax.assessed and nontax.bill_issued accepted

    @property
    def key(self) -> str:
        return f"{self.case_id}#{self.unit_code}"

    def expected(self) -> Counter:
        """The deliveries flow 1 must make for what the case has been sent so far."""
        out = Counter({"tax.assessment_requested": 1, "nontax.bill_requested": self.bills})
        if self.answered == 1 + self.bills:
            out["payment.order_requested"] = self.orders
        return out


@dataclass
class Request:
    partner_id: str
    event_type: str
    body: bytes
    case: Case


class Traffic:
    """What the partners send, request by request (see the module's docstring), and what the hub must
    deliver for what it accepted. Deliveries are read from the receiver, once per webhook-id."""

    def __init__(self, doc: dict[str, Any], receiver: Receiver, callback_share: float = CALLBACK_SHARE):
        from tests.test_transfer_flow import application, assessment, bill_for, pay

        self._builders = {"application.submitted": application, "tax.assessed": assessment,
                          "nontax.bill_issued": bill_for, "payment.succeeded": pay}
        self.signers = {p["id"]: Signer(p["secrets"][0]) for p in doc["partners"]}
        self.receiver = receiver
        self.callback_share = callback_share
        self.tag = uuid.uuid4().hex[:6].upper()
        self.lock = threading.Lock()
        self.cases: dict[str, Case] = {}  # accepted applications, by case key
        self.by_case_id: dict[str, Case] = {}  # the same (a case id is unique in a run): orders name no unit
        self.accepted: dict[str, tuple[str, str]] = {}  # event id -> (type, case key)
        self.sent = 0
        self.callbacks_sent = 0
        self.expected_deliveries = 0
        self.deliveries: dict[str, str] = {}  # webhook-id -> type, as received
        self.ready_payments: deque = deque()
        self.ready_answers: deque = deque()
        self._cursor = 0
        self._applications = 0

    # what the hub delivered
    def pull(self) -> None:
        with self.receiver.lock:
            fresh = self.receiver.got[self._cursor:]
            self._cursor += len(fresh)
        with self.lock:
            for got in fresh:
                if got["webhook_id"] in self.deliveries:
                    continue  # delivered again (at least once): answered already
                self.deliveries[got["webhook_id"]] = got["type"]
                answer = ANSWERS.get(got["type"])
                if answer:
                    queue = self.ready_payments if answer == "payment.succeeded" else self.ready_answers
                    queue.append((answer, got["partner"], got["data"]))

    def backlog(self) -> int:
        self.pull()
        with self.lock:
            return self.expected_deliveries - len(self.deliveries)

    # what the partners send next
    def next_request(self) -> Request:
        self.pull()
        with self.lock:
            ready = self.ready_payments or self.ready_answers
            # (a delivery can outrun the 202 of its application to the thread that sent it: wait for that)
            take_callback = (ready and ready[0][2]["case_id"] in self.by_case_id
                             and self.callbacks_sent < self.callback_share * (self.sent + 1))
            self.sent += 1
            if take_callback:
                self.callbacks_sent += 1
                event_type, partner_id, delivered = ready.popleft()
                case = self.by_case_id[delivered["case_id"]]
            else:
                number = self._applications
                self._applications += 1
        if take_callback:
            return Request(partner_id, event_type, event_body(event_type, self._answer(event_type, delivered, case)),
                           case)
        return self._application(number)

    def _answer(self, event_type: str, delivered: dict[str, Any], case: Case) -> dict[str, Any]:
        if event_type == "tax.assessed":
            return {**self._builders[event_type](case.case_id), "unit_code": case.unit_code}
        return self._builders[event_type](delivered)

    def _application(self, number: int) -> Request:
        prefix, _, county_zone = CITIES[number % len(CITIES)]
        mode, land_revenue, bills, orders = PAYER_MODES[number % len(PAYER_MODES)]  # 3 and 5: every pair in 15
        # A unit of its own per case: the restriction index of a unit is one item (chalicelib/restrictions.py).
        case = Case(f"LD-{prefix.upper()}-{self.tag}-{number:06d}", f"{county_zone}GB{number % 100_000:05d}F00010001",
                    prefix, bills, orders)
        data = {**self._builders["application.submitted"](case.case_id, mode, land_revenue), "unit_code": case.unit_code}
        return Request(f"{prefix}-registry", "application.submitted", event_body("application.submitted", data), case)

    def answered(self, request: Request, status: int | None, answer: bytes) -> str | None:
        """Count what the hub accepted and what it must therefore deliver; the event id it gave."""
        if status != 202:
            return None
        event_id = json.loads(answer)["event_id"]
        with self.lock:
            case = request.case
            self.accepted[event_id] = (request.event_type, case.key)
            if request.event_type == "application.submitted":
                self.cases[case.key] = self.by_case_id[case.case_id] = case
                self.expected_deliveries += 1 + case.bills
            elif request.event_type in ("tax.assessed", "nontax.bill_issued"):
                case.answered += 1
                if case.answered == 1 + case.bills:
                    self.expected_deliveries += case.orders
        return event_id

    def mix(self) -> dict[str, int]:
        with self.lock:
            return dict(Counter(t for t, _ in self.accepted.values()))


# --------------------------------------------------------------------------------------------------
# requests over keep-alive connections


class Connection:
    """One keep-alive HTTP/1.1 connection to the hub, reopened after an error or a `Connection: close`."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http_client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            answer = response.read()
        except Exception:
            self.close()
            raise
        if response.getheader("connection", "").lower() == "close":
            self.close()
        return response.status, answer

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Shot:
    event_type: str
    due: float
    sent: float
    done: float
    outcome: str  # "202", "HTTP <status>", "timeout" or "exception <name>"
    event_id: str | None


def _send(conn: Connection, traffic: Traffic, request: Request) -> tuple[str, int | None, bytes]:
    path = f"/v1/partners/{request.partner_id}/events"
    try:
        status, answer = conn.request("POST", path, request.body, traffic.signers[request.partner_id].headers(request.body))
    except TimeoutError:
        return "timeout", None, b""
    except Exception as exc:  # counted, never raised: an error is a figure
        return f"exception {type(exc).__name__}", None, b""
    return ("202" if status == 202 else f"HTTP {status}"), status, answer


@dataclass
class Step:
    """One open-loop step: target × seconds requests, request i due at start + i / target."""

    target: float
    seconds: float
    shots: list[Shot] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    backlog: list[int] = field(default_factory=list)

    def run(self, port: int, traffic: Traffic, workers: int = WORKERS, pids: dict[str, int] | None = None) -> "Step":
        count = max(1, round(self.target * self.seconds))
        cpu_before = {name: _cpu_seconds(pid) for name, pid in (pids or {}).items()}
        lock = threading.Lock()
        slots = iter(range(count))
        self.start = time.monotonic() + 0.05

        def work() -> None:
            conn = Connection(port)
            mine: list[Shot] = []
            while True:
                with lock:
                    i = next(slots, None)
                if i is None:
                    break
                due = self.start + i / self.target
                time.sleep(max(0.0, due - time.monotonic()))
                request = traffic.next_request()
                sent = time.monotonic()
                outcome, status, answer = _send(conn, traffic, request)
                done = time.monotonic()
                event_id = traffic.answered(request, status, answer)
                mine.append(Shot(request.event_type, due, sent, done, outcome, event_id))
                if status is not None and status != 202:
                    with lock:  # the error code only: error bodies carry no personal data (contract)
                        self.samples.setdefault(outcome, answer[:300].decode("utf-8", "replace"))
            conn.close()
            with lock:
                self.shots.extend(mine)

        finished = threading.Event()

        def watch() -> None:  # deliveries still owed for what was accepted, once a second
            while not finished.wait(1.0):
                self.backlog.append(traffic.backlog())

        threads = [threading.Thread(target=work, daemon=True, name=f"load-{n}") for n in range(workers)]
        watcher = threading.Thread(target=watch, daemon=True, name="load-backlog")
        for t in [*threads, watcher]:
            t.start()
        for t in threads:
            t.join(timeout=self.seconds + REQUEST_TIMEOUT_S * (count / workers + 1) + 30)
        finished.set()
        watcher.join(timeout=5)
        self.ended = max((s.done for s in self.shots), default=time.monotonic())
        elapsed = max(time.monotonic() - self.start, 1e-6)
        self.cpu = {name: round((_cpu_seconds(pid) - cpu_before[name]) / elapsed, 2) for name, pid in (pids or {}).items()}
        return self

    @property
    def event_ids(self) -> set[str]:
        return {s.event_id for s in self.shots if s.event_id}

    def figures(self) -> dict[str, Any]:
        ok = [s for s in self.shots if s.outcome == "202"]
        errors = Counter(s.outcome for s in self.shots if s.outcome != "202")
        latency = [s.done - s.due for s in ok]
        service = [s.done - s.sent for s in ok]
        elapsed = max(self.ended - self.start, 1e-6)
        return {"target_per_s": self.target, "seconds": self.seconds, "requests": len(self.shots),
                "accepted": len(ok), "achieved_per_s": round(len(ok) / elapsed, 2), "elapsed_s": round(elapsed, 2),
                "errors": dict(errors), "error_samples": self.samples,
                "latency_ms": _ms_figures(latency), "service_ms": _ms_figures(service),
                "started_late_over_100ms": sum(1 for s in self.shots if s.sent - s.due > 0.1),
                "mix": dict(Counter(s.event_type for s in ok)), "cpu_cores": self.cpu,
                "deliveries_owed_each_second": self.backlog}


def _ms_figures(values: list[float]) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {"p50": ms(percentile(values, 50)), "p99": ms(percentile(values, 99)), "max": ms(max(values, default=None))}


def catch_up(traffic: Traffic, wait_s: float) -> float | None:
    """Seconds until the receiver has every delivery the accepted events must make (None: not within wait_s)."""
    began = time.monotonic()
    while time.monotonic() - began <= wait_s:
        if traffic.backlog() <= 0:
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def load_step(stack: LoadStack, traffic: Traffic, rate: float, seconds: float,
              workers: int = WORKERS) -> tuple[dict[str, Any], set[str]]:
    """An open-loop step and the pipeline's catch-up after it: its figures (`clean`: the rate was held)
    and the ids of the events it got accepted."""
    step = Step(rate, seconds).run(stack.hub.port, traffic, workers, stack.pids)
    caught = catch_up(traffic, max(30.0, 3 * catch_up_limit(seconds)))
    out = step.figures()
    out["catch_up_s"] = None if caught is None else round(caught, 2)
    out["catch_up_limit_s"] = catch_up_limit(seconds)
    out["backlog_after"] = traffic.backlog()
    why = []
    if out["errors"]:
        why.append(f"errors {out['errors']}")
    if out["achieved_per_s"] < ACHIEVED_MIN * rate:
        why.append(f"achieved {out['achieved_per_s']}/s < {ACHIEVED_MIN:.0%} of {rate}/s")
    if caught is None or caught > catch_up_limit(seconds):
        why.append(f"deliveries caught up in {out['catch_up_s']} s > {catch_up_limit(seconds)} s" if caught
                   else f"deliveries not caught up within {max(30.0, 3 * catch_up_limit(seconds))} s")
    out["clean"] = not why
    out["not_clean_because"] = why
    return out, step.event_ids


def floors(stack: LoadStack, seconds: float, workers: int = WORKERS) -> dict[str, Any]:
    """Closed loop, `workers` threads: GET /health over keep-alive connections (the hub's HTTP path
    alone), and bare conditional PutItems on the same moto server (bench/ingest_ratio.py's floor)."""
    local = threading.local()

    def health() -> tuple[bool, str]:
        if not hasattr(local, "conn"):
            local.conn = Connection(stack.hub.port)
        status, _ = local.conn.request("GET", "/health")
        return status == 200, f"HTTP {status}"

    put, _ = make_floor(stack.moto.url, workers)
    out = {}
    for name, work in (("health_get", health), ("conditional_putitem", put)):
        phase = Phase(f"floor_{name}", workers, seconds, work, stack.pids).run()
        out[name] = {"per_s": round(phase["rate_per_s"], 1), "errors": phase["error_count"],
                     "cpu_cores": {k: round(v / phase["seconds"], 2) for k, v in phase["cpu_seconds"].items()}}
    return out


# --------------------------------------------------------------------------------------------------
# the loss check


def _scan(ddb: Any, table: str, attributes: tuple[str, ...], prefix: tuple[str, str] | None = None) -> list[dict]:
    names = {f"#a{i}": a for i, a in enumerate(attributes)}
    args: dict[str, Any] = {"TableName": table, "ProjectionExpression": ", ".join(names),
                            "ExpressionAttributeNames": names, "ConsistentRead": True}
    if prefix:
        args["FilterExpression"] = "begins_with(#p, :p)"
        args["ExpressionAttributeNames"]["#p"] = prefix[0]
        args["ExpressionAttributeValues"] = {":p": {"S": prefix[1]}}
    items = []
    for page in ddb.get_paginator("scan").paginate(**args):
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]]
    return items


def _first(ids: Any, n: int = 10) -> list[str]:
    return sorted(ids)[:n]


def verify(stack: LoadStack, traffic: Traffic, drain_s: float = 120.0,
           windows: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """Every event the run accepted is stored, routed (each case has exactly the deliveries flow 1 must
    make, all delivered and received) and sequenced in the audit log. Waits are bounded by `drain_s`.
    For the events of each of `windows`, how long their deliveries took, by the hub's own clock."""
    began = time.monotonic()
    left = lambda: max(0.0, drain_s - (time.monotonic() - began))  # noqa: E731
    drained = catch_up(traffic, left())
    with traffic.lock:
        accepted = dict(traffic.accepted)
        cases = dict(traffic.cases)
        expected = {key: case.expected() for key, case in cases.items()}

    while True:  # a delivery's item says `delivered` just after the receiver answered
        deliveries = _scan(stack.ddb, "hub-deliveries", ("delivery_id", "event_id", "state", "type", "partner_id",
                                                           "case_key", "created_at", "delivered_at"))
        unfinished = [d for d in deliveries if d["state"] != "delivered"]
        if not unfinished or left() <= 0:
            break
        time.sleep(1.0)
    traffic.pull()
    with traffic.lock:
        received = set(traffic.deliveries)
    stored = {i["event_id"]: float(i["received_at"]) for i in _scan(stack.ddb, "hub-events", ("event_id", "received_at"))}
    delivered = {d["delivery_id"] for d in deliveries if d["state"] == "delivered"}
    while True:  # the sequencer runs every ~2 s in local mode, a batch per run
        leaves = _scan(stack.ddb, "hub-audit", ("pk", "sk", "index"), ("pk", "leaf#"))
        sequenced = {i["pk"].removeprefix("leaf#") for i in leaves if "index" in i}
        unsequenced = (set(accepted) | delivered) - sequenced
        if not unsequenced or left() <= 0:
            break
        time.sleep(2.0)

    made: dict[str, Counter] = {}
    for d in deliveries:
        made.setdefault(d.get("case_key", ""), Counter())[d["type"]] += 1
    city_of_case = {key: case.city for key, case in cases.items()}
    problems = {
        "events_not_stored": _first(set(accepted) - set(stored)),
        "events_not_sequenced": _first(set(accepted) - sequenced),
        "cases_with_other_deliveries": _first(key for key in set(expected) | set(made)
                                              if expected.get(key, Counter()) != made.get(key, Counter())),
        "deliveries_of_unknown_events": _first(d["delivery_id"] for d in deliveries if d["event_id"] not in accepted),
        "deliveries_to_another_city": _first(d["delivery_id"] for d in deliveries
                                             if not d["partner_id"].startswith(f"{city_of_case.get(d.get('case_key'))}-")),
        "deliveries_not_delivered": _first(f"{d['delivery_id']}:{d['state']}" for d in unfinished),
        "deliveries_not_received": _first(delivered - received),
        "deliveries_not_sequenced": _first(delivered - sequenced),
    }
    with stack.receiver.lock:
        received_total = len(stack.receiver.got)
    hub_log = stack.hub_log_tail(10**9)
    diagnosis = _diagnose(stack, unsequenced, hub_log) if unsequenced else None
    return {"no_loss": not any(problems.values()), "accepted_events": len(accepted), "cases": len(expected),
            "deliveries_expected": sum(sum(c.values()) for c in expected.values()),
            "deliveries_in_table": len(deliveries), "deliveries_received": len(received),
            "received_more_than_once": received_total - len(received),
            "audit_leaves_sequenced": len(sequenced), "wait_s": round(time.monotonic() - began, 1),
            "case_table_items": sum(page["Count"] for page in stack.ddb.get_paginator("scan").paginate(
                TableName="hub-cases", Select="COUNT")),
            "receiver_caught_up_s": None if drained is None else round(drained, 1), "problems": problems,
            # the parties of tests/test_transfer_flow.py's application: their ID numbers and names
            "personal_data_in_hub_log": any(x in hub_log for x in ("11010519491231002X", "110105195001010039",
                                                                   "张三", "李四")),
            "delivery_lag_ms": {name: _lags(ids, stored, deliveries) for name, ids in (windows or {}).items()},
            "unsequenced_diagnosis": diagnosis}


def _diagnose(stack: LoadStack, unsequenced: set[str], hub_log: str) -> dict[str, Any]:
    """What the audit table holds for a few leaves that were not sequenced (collected and pending, or
    never collected), the tree's size, and the hub's error lines (ids and codes only: no personal data
    reaches the hub's log, which the result checks)."""
    def items(ref: str) -> list[dict[str, Any]]:
        found = stack.ddb.query(TableName="hub-audit", KeyConditionExpression="pk = :pk",
                                ExpressionAttributeValues={":pk": {"S": f"leaf#{ref}"}}, ConsistentRead=True)["Items"]
        return [{"sk": i["sk"]["S"], "index": "index" in i, "pending": "pending_shard" in i} for i in found]

    head = stack.ddb.get_item(TableName="hub-audit", Key={"pk": {"S": "head"}, "sk": {"S": "head"}},
                              ConsistentRead=True).get("Item", {})
    errors = [line[:300] for line in hub_log.splitlines() if '"level":"ERROR"' in line or "Traceback" in line]
    return {"leaves": {ref: items(ref) for ref in _first(unsequenced, 5)},
            "tree_size": int(head["size"]["N"]) if head else None, "hub_error_lines": errors[:10],
            "hub_error_line_count": len(errors)}


def _lags(event_ids: set[str], received_at: dict[str, float], deliveries: list[dict]) -> dict[str, Any]:
    """Event accepted -> delivery scheduled by the stream handler (routing) -> delivered (the queue),
    for the deliveries of `event_ids`."""
    mine = [d for d in deliveries if d["event_id"] in event_ids and d["event_id"] in received_at and "delivered_at" in d]
    routing = [float(d["created_at"]) - received_at[d["event_id"]] for d in mine]
    queue = [float(d["delivered_at"]) - float(d["created_at"]) for d in mine]
    total = [float(d["delivered_at"]) - received_at[d["event_id"]] for d in mine]
    return {"deliveries": len(mine), "accepted_to_scheduled": _ms_figures(routing),
            "scheduled_to_delivered": _ms_figures(queue), "accepted_to_delivered": _ms_figures(total)}


# --------------------------------------------------------------------------------------------------


def _ramp(stack: LoadStack, traffic: Traffic, rates: tuple[float, ...], step_s: float, workers: int,
          halfway: bool = True) -> tuple[list[dict[str, Any]], list[float]]:
    """Steps at rising rates until one is not clean, then (`halfway`) once halfway between the last
    clean rate and that one. Returns the steps and the clean rates."""
    steps: list[dict[str, Any]] = []
    clean: list[float] = []

    def step(rate: float) -> bool:
        result, _ = load_step(stack, traffic, rate, step_s, workers)
        steps.append(result)
        log(f"step {rate}/s: achieved {result['achieved_per_s']}/s, p99 {result['latency_ms']['p99']} ms, "
            f"catch-up {result['catch_up_s']} s, {'clean' if result['clean'] else result['not_clean_because']}")
        if result["clean"]:
            clean.append(rate)
        return result["clean"]

    for rate in rates:
        if step(rate):
            continue
        if clean and halfway:
            catch_up(traffic, 90.0)  # the backlog of the step that was not clean drains first
            step(round((clean[-1] + rate) / 2, 1))
        break
    return steps, clean


def _hold(rate: float, hold_s: float, workers: int, floor_s: float) -> dict[str, Any]:
    """`rate` for `hold_s` on a hub of its own (moto's Query reads every item of a table, so a hub that
    has taken the ramp's events routes more slowly than a fresh one), then its loss check."""
    with LoadStack() as stack:
        traffic = Traffic(stack.doc, stack.receiver)
        result, event_ids = load_step(stack, traffic, rate, hold_s, workers)
        log(f"hold {rate}/s for {hold_s} s: achieved {result['achieved_per_s']}/s, p50 "
            f"{result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"{'clean' if result['clean'] else result['not_clean_because']}; loss check …")
        result["loss_check"] = verify(stack, traffic, windows={"hold": event_ids})
        result["mix"] = traffic.mix()
        log(f"loss check: {'no loss' if result['loss_check']['no_loss'] else 'LOSS'} over "
            f"{result['loss_check']['accepted_events']} events")
        result["floors_after"] = floors(stack, floor_s, workers)
    return result


def run(quick: bool = False, rates: tuple[float, ...] | None = None, step_s: float | None = None,
        hold_s: float | None = None, workers: int = WORKERS) -> dict[str, Any]:
    rates = rates or (QUICK_RAMP if quick else RAMP)
    step_s = step_s or (3.0 if quick else 10.0)
    hold_s = hold_s or (10.0 if quick else 60.0)
    floor_s = 1.0 if quick else 3.0
    began = time.monotonic()
    with LoadStack() as stack:
        traffic = Traffic(stack.doc, stack.receiver)
        floor_before = floors(stack, floor_s, workers)
        log(f"floors: {floor_before}")
        steps, clean = _ramp(stack, traffic, rates, step_s, workers, halfway=not quick)
        ramp_loss = verify(stack, traffic)
        log(f"ramp's loss check: {'no loss' if ramp_loss['no_loss'] else 'LOSS'} over "
            f"{ramp_loss['accepted_events']} events")
    # The ramp's steps are short: a backlog that grows slowly shows only in a hold. Held from the
    # highest clean rate down: halfway to the clean rate below it, then that one (--quick: once).
    below = (clean[-2:-1] or [round(clean[-1] / 1.5, 1)]) if clean else []
    candidates = [clean[-1], round((clean[-1] + below[0]) / 2, 1), below[0]] if clean else [rates[0]]
    holds: list[dict[str, Any]] = []
    for rate in candidates[:1] if quick else candidates:
        holds.append(_hold(rate, hold_s, workers, floor_s))
        if holds[-1]["clean"] and holds[-1]["loss_check"]["no_loss"]:
            break
    held = holds[-1] if holds[-1]["clean"] and holds[-1]["loss_check"]["no_loss"] else None
    floor_after = holds[-1]["floors_after"]
    floor_rates = {name: (floor_before[name]["per_s"] + floor_after[name]["per_s"]) / 2 for name in floor_before}
    return {
        "what": "highest rate of mixed partner events held in local mode with no error and no loss, and its latency",
        "quick": quick, "workers": workers, "step_seconds": step_s, "hold_seconds": hold_s,
        "callback_share": CALLBACK_SHARE, "cities": [c[1] for c in CITIES],
        "clean_criteria": {"errors": 0, "achieved_min_of_target": ACHIEVED_MIN,
                           "catch_up_limit_s": "max(2, 0.1 × step seconds)", "loss_check": "no_loss"},
        "floors": {"before_ramp": floor_before, "after_last_hold": floor_after, "mean_per_s": floor_rates},
        "ramp": steps, "ramp_loss_check": ramp_loss, "holds": holds,
        "held_per_s": held["target_per_s"] if held else None,
        "held_ratio_to_floors": {name: round(held["achieved_per_s"] / rate, 5) for name, rate in floor_rates.items()
                                 if rate} if held else None,
        "command": ".venv/bin/python -m bench.load" + (" --quick" if quick else ""),
        "run_seconds": round(time.monotonic() - began, 1),
    }


def _loss_line(loss: dict[str, Any]) -> str:
    return (f"{loss['accepted_events']} events, {loss['cases']} cases, {loss['deliveries_in_table']}/"
            f"{loss['deliveries_expected']} deliveries, {loss['audit_leaves_sequenced']} audit leaves sequenced: "
            + ("no loss" if loss["no_loss"] else "LOSS " + json.dumps({k: v for k, v in loss["problems"].items() if v})))


def summary(result: dict[str, Any]) -> list[str]:
    f = result["floors"]
    lines = [f"{NAME}{' (quick)' if result['quick'] else ''}: floors (closed loop, {result['workers']} threads), "
             f"before the ramp / after the last hold: GET /health {f['before_ramp']['health_get']['per_s']} / "
             f"{f['after_last_hold']['health_get']['per_s']}/s, conditional PutItem "
             f"{f['before_ramp']['conditional_putitem']['per_s']} / "
             f"{f['after_last_hold']['conditional_putitem']['per_s']}/s"]
    lines.append("  ramp: " + ", ".join(f"{s['target_per_s']}/s {'ok' if s['clean'] else 'NOT CLEAN'}"
                                        for s in result["ramp"]) + f"; loss check: {_loss_line(result['ramp_loss_check'])}")
    for s in result["ramp"]:
        if not s["clean"]:
            lines.append(f"    {s['target_per_s']}/s: {'; '.join(s['not_clean_because'])}")
    for h in result["holds"]:
        lat, lag = h["latency_ms"], h["loss_check"]["delivery_lag_ms"]["hold"]
        lines.append(f"  hold {h['target_per_s']}/s × {h['seconds']:.0f} s (fresh hub): achieved {h['achieved_per_s']}/s, "
                     f"{h['accepted']}/{h['requests']} accepted, latency of the 202s p50 {lat['p50']} ms, "
                     f"p99 {lat['p99']} ms, max {lat['max']} ms; mix {h['mix']}"
                     + ("" if h["clean"] else f"; NOT CLEAN: {'; '.join(h['not_clean_because'])}"))
        owed = h["deliveries_owed_each_second"] or [0]
        lines.append(f"    deliveries owed during the hold: first {owed[0]}, max {max(owed)}, last {owed[-1]}; caught up "
                     f"{h['catch_up_s']} s after the last 202; accepted → scheduled (stream) "
                     f"p50/p99 {lag['accepted_to_scheduled']['p50']}/{lag['accepted_to_scheduled']['p99']} ms, "
                     f"→ delivered (queue) {lag['scheduled_to_delivered']['p50']}/"
                     f"{lag['scheduled_to_delivered']['p99']} ms; CPU cores {h['cpu_cores']}")
        lines.append(f"    loss check: {_loss_line(h['loss_check'])}")
    held = result["held_per_s"]
    lines.append(f"  held: {held}/s; achieved ÷ floor: {result['held_ratio_to_floors']}" if held
                 else "  held: no rate was held clean with no loss")
    lines.append(f"  ({result['run_seconds']} s in all)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 steps of 3 s, one hold of 10 s: about 45 s")
    parser.add_argument("--rates", help="ramp rates, events/s, comma-separated")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--hold-seconds", type=float)
    args = parser.parse_args(argv)
    rates = tuple(min(max(float(r), 0.5), 500.0) for r in args.rates.split(",")) if args.rates else None
    result = run(args.quick, rates[:20] if rates else None,
                 min(max(args.step_seconds, 1.0), 60.0) if args.step_seconds else None,
                 min(max(args.hold_seconds, 1.0), 300.0) if args.hold_seconds else None)
    return publish_result(f"{NAME}_quick" if args.quick else NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
