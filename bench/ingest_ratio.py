"""Accepted webhooks per second in local mode ÷ bare conditional PutItems per second, same endpoint, one run.

moto server in its own process; local mode against it; a 204 receiver in this process.
Floor: C threads here doing conditional PutItem (attribute_not_exists on the key, unique keys, an item
shaped and sized like a stored event) on a table made for the purpose (same key and NEW_IMAGE stream
as the events table). Hub: C threads here POSTing pre-built bodies, signed right before sending, to
`/v1/partners/<id>/events`; only 202 counts, anything else is an error. Phases are interleaved in
every round (floor, routed, unrouted, unrouted over keep-alive connections); medians are reported.

    .venv/bin/python -m bench.ingest_ratio [--seconds 6] [--rounds 3] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import http.client as http_client
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable

from bench.common import (BJ_UNIT, FLOOR_KEY, SZ_UNIT, Signer, Stack, aws_client, event_body, example_data, http,
                          log, median, percentile, publish_result, secret_of, wait_until)

NAME = "ingest_ratio"
GOAL_RATIO = 0.5
FLOOR_TABLE = "bench-floor"
MAX_REQUESTS_PER_PHASE = 50_000
# A routed window stops after this many accepted events (or at its duration): routing and delivery
# run behind ingest, and the backlog must drain before the next phase.
ROUTED_CAP = 300
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return float("nan")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Phase:
    """`work()` from `threads` threads until `seconds` pass or `cap` calls have started; count outcomes."""

    def __init__(self, name: str, threads: int, seconds: float, work: Callable[[], tuple[bool, str]],
                 pids: dict[str, int], cap: int = MAX_REQUESTS_PER_PHASE):
        self.name = name
        self.threads = threads
        self.seconds = seconds
        self.work = work
        self.pids = pids
        self.cap = cap
        self.started = 0
        self.ok = 0
        self.errors: Counter = Counter()
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def _loop(self, deadline: float) -> None:
        ok = 0
        errors: Counter = Counter()
        latencies = []
        while time.monotonic() < deadline:
            with self._lock:
                if self.started >= self.cap:
                    break
                self.started += 1
            began = time.perf_counter()
            try:
                good, what = self.work()
            except StopIteration:
                break
            except Exception as exc:  # counted, never raised: an error is a figure
                good, what = False, f"exception {type(exc).__name__}: {str(exc)[:160]}"
            latencies.append(time.perf_counter() - began)
            if good:
                ok += 1
            else:
                errors[what] += 1
        with self._lock:
            self.ok += ok
            self.errors.update(errors)
            self.latencies.extend(latencies)

    def run(self) -> dict[str, Any]:
        cpu_before = {k: _cpu_seconds(p) for k, p in self.pids.items()}
        began = time.monotonic()
        deadline = began + self.seconds
        workers = [threading.Thread(target=self._loop, args=(deadline,), daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=self.seconds + 90)
        elapsed = time.monotonic() - began
        cpu = {k: round(_cpu_seconds(p) - cpu_before[k], 2) for k, p in self.pids.items()}
        return {"phase": self.name, "seconds": round(elapsed, 3), "ok": self.ok, "rate_per_s": self.ok / elapsed,
                "errors": dict(self.errors), "error_count": sum(self.errors.values()),
                "latency_p50_ms": _ms(percentile(self.latencies, 50)),
                "latency_p99_ms": _ms(percentile(self.latencies, 99)),
                "cpu_seconds": cpu, "_latencies": self.latencies}


# --------------------------------------------------------------------------------------------------
# the floor: bare conditional PutItem


def _event_like_item() -> dict[str, Any]:
    """An item shaped like a stored application.submitted (chalicelib.event_store.StoredEvent.to_item)."""
    from chalicelib.event_store import StoredEvent

    data = example_data("application.submitted", unit_code=SZ_UNIT, case_id="SZ-FLOOR-0000")
    stored = StoredEvent(event_id="evt_" + "x" * 26, partner_id="sz-registry", webhook_id="msg_" + uuid.uuid4().hex,
                         type="application.submitted", timestamp="2026-01-01T00:00:00+00:00", data=data,
                         payload_sha256="0" * 64, received_at=time.time(),
                         answer={"event_id": "evt_" + "x" * 26, "webhook_id": "msg_" + uuid.uuid4().hex,
                                 "status": "accepted"})
    return stored.to_item(int(time.time()) + 30 * 86400)


def _item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8), near enough for S and N."""
    return sum(len(k.encode()) + len(str(next(iter(v.values()))).encode()) for k, v in item.items())


def make_floor(endpoint: str, concurrency: int) -> tuple[Callable[[], tuple[bool, str]], int]:
    ddb = aws_client("dynamodb", endpoint, FLOOR_KEY, max_pool=concurrency * 2)
    if FLOOR_TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(TableName=FLOOR_TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "dedup_key", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "dedup_key", "KeyType": "HASH"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    template = _event_like_item()

    def put() -> tuple[bool, str]:
        item = dict(template)
        item["dedup_key"] = {"S": f"floor#{uuid.uuid4().hex}"}
        try:
            ddb.put_item(TableName=FLOOR_TABLE, Item=item, ConditionExpression="attribute_not_exists(dedup_key)")
            return True, "ok"
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            return False, f"PutItem {code}"

    return put, _item_bytes(template)


# --------------------------------------------------------------------------------------------------
# the hub: signed POSTs over HTTP


class HubClient:
    """Bodies pre-built, signed right before sending. `keepalive`: one persistent connection per thread
    (what pooled HTTP clients do); otherwise a new connection per request with `Connection: close`
    (what curl or urllib do, and what boto3 ends up doing against moto, whose server closes every
    connection)."""

    def __init__(self, port: int, requests: list[tuple[str, bytes]], signers: dict[str, Signer], keepalive: bool):
        self.port = port
        self.keepalive = keepalive
        self.signers = signers
        self._requests = iter(requests)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.samples: dict[str, str] = {}
        self.sent = 0

    def _connection(self) -> http_client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return conn

    def post(self) -> tuple[bool, str]:
        with self._lock:
            partner_id, body = next(self._requests)  # StopIteration ends the phase
            self.sent += 1
        headers = self.signers[partner_id].headers(body)
        if not self.keepalive:
            headers["Connection"] = "close"
        conn = self._connection()
        try:
            conn.request("POST", f"/v1/partners/{partner_id}/events", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if not self.keepalive or response.getheader("connection", "").lower() == "close":
                conn.close()
                self._local.conn = None
        except Exception:
            conn.close()
            self._local.conn = None
            raise
        if response.status == 202:
            return True, "202"
        what = f"HTTP {response.status}"
        self.samples.setdefault(what, answer[:300].decode("utf-8", "replace"))
        return False, what


class Traffic:
    """What each hub variant sends: routed = application.submitted from the Shenzhen and Beijing
    registries; unrouted = an inbound type without a route, the least handled there is (choose_unrouted)."""

    def __init__(self, doc: dict, unrouted_type: str, unrouted_sender: str):
        ids = {"sz-registry", "bj-registry", unrouted_sender}
        self.signers = {pid: Signer(secret_of(doc, pid)) for pid in ids}
        self.unrouted_type = unrouted_type
        self.unrouted_sender = unrouted_sender

    def build(self, kind: str, count: int) -> list[tuple[str, bytes]]:
        """`count` distinct bodies (unique case_id where the type has one), built before the clock starts."""
        tag = uuid.uuid4().hex[:6]
        out = []
        if kind == "routed":
            base = example_data("application.submitted")
            for i in range(count):
                pid, unit, city = (("sz-registry", SZ_UNIT, "SZ"), ("bj-registry", BJ_UNIT, "BJ"))[i % 2]
                out.append((pid, event_body("application.submitted",
                                            {**base, "unit_code": unit, "case_id": f"{city}-IR-{tag}-{i:06d}"})))
        else:
            for i in range(count):
                out.append((self.unrouted_sender, event_body(self.unrouted_type,
                                                             unrouted_data(self.unrouted_type, f"GZ-IR-{tag}-{i:06d}"))))
        return out


def unrouted_data(event_type: str, case_id: str) -> dict[str, Any]:
    """The catalog example from a Guangzhou sender: a unit of Guangzhou, the case id given (where the
    type has these fields)."""
    from chalicelib.models.examples import GZ_UNIT

    base = example_data(event_type)
    return {**base, **({"case_id": case_id} if "case_id" in base else {}),
            **({"unit_code": GZ_UNIT} if "unit_code" in base else {})}


def choose_unrouted(stack: Stack) -> tuple[str, str, dict[str, str], str]:
    """The first inbound type (tax.assessed preferred) with no route, no flow handler and no door check
    that a Guangzhou partner of its sending kind gets a 202 for: the ingest path alone. Every inbound
    type may now have a flow: then the first with no route and no door check (its handlers run on the
    stream, behind ingest), then the first with no route at all (its door checks run on the ingest
    path). Returns (type, sender, skipped, what it lacks: say so with the figure)."""
    from chalicelib.models import EVENT_TYPES
    from chalicelib.routing import routes_by_type

    handlers: set[str] = set()
    checks: set[str] = set()
    try:
        from chalicelib import flows

        getattr(flows, "_load", lambda: None)()
        handlers, checks = set(getattr(flows, "HANDLERS", {})), set(getattr(flows, "DOOR_CHECKS", {}))
    except ImportError:
        pass
    routed = set(routes_by_type())
    partner_ids = {p["id"] for p in stack.doc["partners"]}
    inbound = sorted(t for t, spec in EVENT_TYPES.items() if spec.direction == "inbound")
    skipped: dict[str, str] = {}
    tiers = (("no route, no flow handler, no door check", handlers | checks),
             ("no route, no door check", checks), ("no route; its door checks and flow handlers run", set()))
    for lacks, excluded in tiers:
        for event_type in ["tax.assessed"] + [t for t in inbound if t != "tax.assessed"]:
            why = ("has a route" if event_type in routed else
                   "has a flow handler" if event_type in excluded - checks else
                   "has a door check" if event_type in excluded else None)
            if why:
                skipped[event_type] = why
                continue
            senders = [f"gz-{kind.replace('_', '-')}" for kind in EVENT_TYPES[event_type].senders]
            sender = next((s for s in senders if s in partner_ids), None)
            if sender is None:
                skipped[event_type] = "no sender of its kind in the partners file"
                continue
            body = event_body(event_type, unrouted_data(event_type, f"GZ-PROBE-{uuid.uuid4().hex[:8]}"))
            status, answer = http("POST", f"{stack.hub.url}/v1/partners/{sender}/events", body,
                                  Signer(secret_of(stack.doc, sender)).headers(body), timeout=30)
            if status == 202:
                return event_type, sender, skipped, lacks
            skipped[event_type] = f"HTTP {status}: {answer[:120].decode('utf-8', 'replace')}"
    raise RuntimeError(f"no inbound type without a route was accepted: {skipped}")


# --------------------------------------------------------------------------------------------------


HUB_VARIANTS = ("routed", "unrouted", "unrouted_keepalive")


def run(seconds: float = 6.0, rounds: int = 3, concurrency: int = 8, warmup_s: float = 2.0,
        idle_s: float = 3.0) -> dict[str, Any]:
    with Stack(every_kind_in_guangzhou=True) as stack:
        pids = {"moto": stack.moto.proc.pid, "hub": stack.hub.proc.pid, "bench": os.getpid()}
        floor_work, item_size = make_floor(stack.moto.url, concurrency)
        unrouted_type, unrouted_sender, skipped, unrouted_lacks = choose_unrouted(stack)
        traffic = Traffic(stack.doc, unrouted_type, unrouted_sender)
        log(f"unrouted variant: {unrouted_type} from {unrouted_sender} ({unrouted_lacks})")
        routed_total = 0
        expected_rate = {v: 200.0 for v in HUB_VARIANTS}  # refined as phases run

        def hub_phase(variant: str, secs: float, cap: int) -> dict[str, Any]:
            nonlocal routed_total
            kind = variant.split("_")[0]
            # Bodies for 4× the last rate seen; running out would end the phase early (reported).
            count = int(min(cap, MAX_REQUESTS_PER_PHASE, max(500, expected_rate[variant] * secs * 4)))
            client = HubClient(stack.hub.port, traffic.build(kind, count), traffic.signers,
                               keepalive=variant.endswith("keepalive"))
            result = Phase(f"hub_{variant}", concurrency, secs, client.post, pids, cap=cap).run()
            result["error_samples"] = client.samples
            result["bodies_prepared"] = count
            result["ran_out_of_bodies"] = client.sent >= count and count < cap
            expected_rate[variant] = max(result["rate_per_s"], 25.0)
            if kind == "routed":
                # Routing and delivery run behind ingest: wait for them so that the next phase starts quiet.
                routed_total += result["ok"]
                began = time.monotonic()
                cpu_before = {k: _cpu_seconds(p) for k, p in pids.items()}
                try:
                    # Every routed event makes at least one delivery, possibly more: wait for the count,
                    # then for a second with no delivery at all.
                    wait_until(lambda: stack.receiver.count >= routed_total
                               and time.monotonic() - stack.receiver.last_at >= 1.0, 90, 0.1, "routed backlog delivered")
                    drain = time.monotonic() - began
                    result["drain_seconds"] = round(drain, 2)
                    result["drain_cpu_cores"] = {k: round((_cpu_seconds(p) - cpu_before[k]) / max(drain, 0.1), 2)
                                                 for k, p in pids.items()}
                    result["end_to_end_routed_per_s"] = round(result["ok"] / (result["seconds"] + drain), 2)
                except TimeoutError:
                    result["drain_seconds"] = None
                    log(f"backlog not drained: {stack.receiver.count}/{routed_total} delivered")
            time.sleep(0.5)
            return result

        # What the hub's drivers cost while nothing happens (polling), before any load.
        cpu_before = {k: _cpu_seconds(p) for k, p in pids.items()}
        time.sleep(idle_s)
        idle_cpu = {k: round((_cpu_seconds(p) - cpu_before[k]) / idle_s, 3) for k, p in pids.items()}

        log(f"warm-up ({warmup_s} s per phase)")
        Phase("floor_warmup", concurrency, warmup_s, floor_work, pids).run()
        for variant in HUB_VARIANTS:
            hub_phase(variant, warmup_s, 50 if variant == "routed" else MAX_REQUESTS_PER_PHASE)

        phases: list[dict[str, Any]] = []
        for r in range(rounds):
            for name in ("floor", *HUB_VARIANTS):
                if name == "floor":
                    result = Phase("floor", concurrency, seconds, floor_work, pids).run()
                else:
                    result = hub_phase(name, seconds, ROUTED_CAP if name == "routed" else MAX_REQUESTS_PER_PHASE)
                result["round"] = r + 1
                phases.append(result)
                log(f"round {r + 1} {result['phase']}: {result['rate_per_s']:.1f}/s over {result['seconds']:.1f} s, "
                    f"{result['error_count']} errors, p50 {result['latency_p50_ms']} ms")
        received = stack.receiver.count
        partners_source = stack.partners_source

    def of(name: str) -> list[dict[str, Any]]:
        return [p for p in phases if p["phase"] == name]

    floor_rates = [p["rate_per_s"] for p in of("floor")]
    floor_lat = [x for p in of("floor") for x in p["_latencies"]]
    out: dict[str, Any] = {
        "what": "accepted webhooks/s in local mode ÷ bare conditional PutItems/s against the same moto server",
        "concurrency": concurrency, "seconds_per_phase": seconds, "routed_cap_per_phase": ROUTED_CAP,
        "rounds": rounds, "warmup_seconds_per_phase": warmup_s,
        "partners": partners_source, "deliveries_per_routed_event": round(received / max(routed_total, 1), 2),
        "unrouted_type": unrouted_type, "unrouted_sender": unrouted_sender, "unrouted_types_skipped": skipped,
        "unrouted_type_lacks": unrouted_lacks,
        "floor_item_bytes": item_size, "floor_median_per_s": round(median(floor_rates), 2),
        "floor_rates": [round(x, 2) for x in floor_rates],
        "floor_latency_p50_ms": _ms(percentile(floor_lat, 50)), "floor_latency_p99_ms": _ms(percentile(floor_lat, 99)),
        "floor_errors": sum(p["error_count"] for p in of("floor")),
        "idle_cpu_cores": idle_cpu,
        "idle_note": "CPU (in cores) each process used while the hub was idle: the drivers' polling",
        "deliveries_received_total": received, "variants": {}, "goal": {"ratio_min": GOAL_RATIO},
    }
    labels = {
        "hub_routed": "application.submitted (routed), new connection per request",
        "hub_unrouted": f"{unrouted_type} ({unrouted_lacks}), new connection per request",
        "hub_unrouted_keepalive": f"{unrouted_type} ({unrouted_lacks}), keep-alive connections (pooled client)",
    }
    for name, label in labels.items():
        rows = of(name)
        rates = [p["rate_per_s"] for p in rows]
        latencies = [x for p in rows for x in p["_latencies"]]
        per_round = [h["rate_per_s"] / f["rate_per_s"] for h, f in zip(rows, of("floor")) if f["rate_per_s"]]
        variant = {
            "label": label, "median_per_s": round(median(rates), 2), "rates": [round(x, 2) for x in rates],
            "ratio_of_medians": round(median(rates) / median(floor_rates), 3),
            "per_round_ratios": [round(x, 3) for x in per_round],
            "latency_p50_ms": _ms(percentile(latencies, 50)), "latency_p99_ms": _ms(percentile(latencies, 99)),
            "errors": sum(p["error_count"] for p in rows),
            "error_kinds": dict(sum((Counter(p["errors"]) for p in rows), Counter())),
            "error_samples": {k: v for p in rows for k, v in p.get("error_samples", {}).items()},
        }
        if name == "hub_routed":
            variant["window_seconds"] = [p["seconds"] for p in rows]
            variant["drain_seconds_after_window"] = [p.get("drain_seconds") for p in rows]
            variant["end_to_end_routed_per_s"] = [p.get("end_to_end_routed_per_s") for p in rows]
            variant["drain_cpu_cores"] = [p.get("drain_cpu_cores") for p in rows]
        variant["goal_met"] = variant["ratio_of_medians"] >= GOAL_RATIO
        out["variants"][name] = variant
    out["phases"] = [{k: v for k, v in p.items() if not k.startswith("_")} for p in phases]
    for p in out["phases"]:
        p["rate_per_s"] = round(p["rate_per_s"], 2)
        if p["ok"]:
            p["cpu_ms_per_ok"] = {k: round(v * 1000 / p["ok"], 2) for k, v in p["cpu_seconds"].items()}
    return out


def summary(result: dict[str, Any]) -> list[str]:
    lines = [f"ingest_ratio: concurrency {result['concurrency']}, {result['rounds']} rounds × "
             f"{result['seconds_per_phase']} s; floor (conditional PutItem, {result['floor_item_bytes']} B item) "
             f"median {result['floor_median_per_s']}/s {result['floor_rates']}, "
             f"p50 {result['floor_latency_p50_ms']} ms, errors {result['floor_errors']}",
             f"  idle hub (drivers polling) uses CPU cores: {result['idle_cpu_cores']}"]
    for name, v in result["variants"].items():
        lines.append(f"  {v['label']}: median {v['median_per_s']}/s {v['rates']}, ratio {v['ratio_of_medians']} "
                     f"(per round {v['per_round_ratios']}; goal >= {GOAL_RATIO}: {'MET' if v['goal_met'] else 'NOT MET'}), "
                     f"p50 {v['latency_p50_ms']} ms, p99 {v['latency_p99_ms']} ms, errors {v['errors']}")
        if "drain_seconds_after_window" in v:
            lines.append(f"    windows {v['window_seconds']} s (stop at {result['routed_cap_per_phase']} accepted); "
                         f"backlog drain after each: {v['drain_seconds_after_window']} s; "
                         f"accepted ÷ (window + drain): {v['end_to_end_routed_per_s']}/s")
        if v["errors"]:
            lines.append(f"    error kinds: {v['error_kinds']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    result = run(min(max(args.seconds, 1.0), 120.0), min(max(args.rounds, 1), 10), min(max(args.concurrency, 1), 64))
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
