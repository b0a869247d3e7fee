"""AWS requests per complete relay (flow 6), counted AT THE AWS ENDPOINT by moto's recorder.

moto server (own process, recorder) → local mode (`python -m localmode`) with the relay partners of
the tests (tests/test_relay_flow.relay_partners) → this process plays a Shenzhen office (`sz-office`)
relaying a Beijing transfer and the Beijing registry (`bj-registry`). One warm-up relay (not counted),
then N relays in lock-step phases, each settled (deliveries received, delivery queue empty, hub quiet)
before the next:

    upload     2 × (signed slot request + PUT to the presigned URL), until the upload driver verified them
    collect    relay.collected (sz-office)            → relay.requested (bj-registry) + relay.status forwarded
    accept     relay.accepted (bj-registry)           → relay.status accepted
    originals  relay.originals_received (bj-registry) → relay.status originals_received
    complete   relay.completed (bj-registry)          → relay.status completed

Requests are classified as in bench/transfer_requests.py (bench/write_count.classify): writes/reads,
hub code vs event-source emulation (localmode drivers: ReceiveMessage, DeleteMessageBatch,
GetRecords, …), event-driven vs time-based reads. The presigned PUTs are made by this process (the
partner) and are counted apart; observer look-ups carry another key id and are left out.

    .venv/bin/python -m bench.relay_requests [--relays 5]
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import Signer, event_body, http, log, write_result
from bench.documents_memory import RelayStack
from bench.transfer_requests import _figures, _per
from bench.write_count import (EMULATION_OPS, OBSERVER_KEY, Observer, Recording, emulation_ops_in_hub_code, label,
                               settle, time_based)
from tests.test_relay_flow import PDF, PDF2, accepted, collected, completed, originals, unit_of

NAME = "relay_requests"
OFFICE, REGISTRY = "sz-office", "bj-registry"
PHASES = ("upload", "collect", "accept", "originals", "complete")


class Relays:
    def __init__(self, stack: RelayStack, observer: Observer, recording: Recording, n: int, tag: str):
        self.stack, self.observer, self.recording = stack, observer, recording
        self.ids = [f"RC-{tag}-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        self.scans: dict[str, list[dict]] = {}
        self.requests: dict[str, dict] = {}
        self.signers = {p: Signer(stack.secret(p)) for p in (OFFICE, REGISTRY)}
        self.statuses: Counter = Counter()
        self.put_requests = 0

    def settle(self, target: int, what: str) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=60)

    def post(self, pid: str, event_type: str, data: dict, msg_id: str | None = None) -> None:
        body = event_body(event_type, data)
        status, answer = http("POST", f"{self.stack.hub.url}/v1/partners/{pid}/events", body,
                              self.signers[pid].headers(body, msg_id), timeout=30)
        self.statuses[status] += 1
        if status != 202:
            raise RuntimeError(f"{event_type} from {pid}: HTTP {status} {answer[:400]!r}")

    def wait_status(self, count: int) -> None:
        for rid in self.ids:
            deadline = time.monotonic() + 30
            while len(self.stack.receiver.find(rid, "relay.status", OFFICE)) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"relay.status #{count} for {rid} not received\n{self.stack.hub_log_tail()}")
                time.sleep(0.05)

    def upload(self) -> None:
        for rid in self.ids:
            self.scans[rid] = [self.stack.upload(OFFICE, PDF), self.stack.upload(OFFICE, PDF2)]
            self.put_requests += 2
        for rid in self.ids:
            for scan in self.scans[rid]:
                verdict, _ = self.stack.wait_judged(scan["document_id"], 30)
                if verdict["state"] != "verified":
                    raise RuntimeError(f"scan {scan['document_id']}: {verdict}")
        self.settle(self.stack.receiver.count, "upload")

    def collect(self) -> None:
        start = self.stack.receiver.count
        for rid in self.ids:
            self.post(OFFICE, "relay.collected", collected("440300", unit_of("110000"), rid, self.scans[rid]))
        self.settle(start + 2 * len(self.ids), "collect")
        for rid in self.ids:
            found = self.stack.receiver.find(rid, "relay.requested", REGISTRY)
            if len(found) != 1:
                raise RuntimeError(f"{rid}: {len(found)} relay.requested")
            self.requests[rid] = found[0]
        self.wait_status(1)

    def accept(self) -> None:
        start = self.stack.receiver.count
        for i, rid in enumerate(self.ids):
            request = self.requests[rid]
            self.post(REGISTRY, "relay.accepted", accepted(rid, f"BJ-YD-{i:04d}"),
                      msg_id=f"ans_{request['webhook_id']}_relay.accepted")
        self.settle(start + len(self.ids), "accept")
        self.wait_status(2)

    def originals(self) -> None:
        start = self.stack.receiver.count
        for i, rid in enumerate(self.ids):
            self.post(REGISTRY, "relay.originals_received", originals(rid, f"BJ-YD-{i:04d}"))
        self.settle(start + len(self.ids), "originals")
        self.wait_status(3)

    def complete(self) -> None:
        start = self.stack.receiver.count
        for i, rid in enumerate(self.ids):
            self.post(REGISTRY, "relay.completed", completed(rid, f"BJ-YD-{i:04d}"))
        self.settle(start + len(self.ids), "complete")
        self.wait_status(4)

    def final_statuses(self) -> Counter:
        return Counter(self.stack.receiver.find(rid, "relay.status", OFFICE)[-1]["data"].get("status")
                       for rid in self.ids)


def run(n: int) -> dict[str, Any]:
    with RelayStack(recorder=True) as stack:
        observer = Observer(stack)
        recording = Recording(stack.recorder_file)
        warm = Relays(stack, observer, recording, 1, "W")
        for phase in PHASES:
            getattr(warm, phase)()
        time.sleep(1.0)

        stack.moto.api("recorder/start-recording")
        relays = Relays(stack, observer, recording, n, "N")
        spans: dict[str, tuple[int, int, float]] = {}
        for phase in PHASES:
            recording.poll()
            first, t0 = len(recording.entries), time.monotonic()
            getattr(relays, phase)()
            recording.poll()
            spans[phase] = (first, len(recording.entries), time.monotonic() - t0)
        stack.moto.api("recorder/stop-recording")
        time.sleep(0.3)
        recording.poll()
        final = relays.final_statuses()
        deliveries = Counter((d["partner"], d["type"]) for d in stack.receiver.got if d["data"].get("relay_id") in
                             set(relays.ids))

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        first, last, _ = spans[phase]
        rows = [r for r in recording.entries[first:last] if r["key_id"] != OBSERVER_KEY]
        return [r for r in rows if (r["op"] == "PUT object") == partner_puts] if phase == "upload" else \
            ([] if partner_puts else rows)

    # The presigned PUTs (op "PUT object"; their credential is in the query, so no key id) are the partner's.
    all_entries = [r for p in PHASES for r in span(p)]
    puts = span("upload", partner_puts=True)
    window_s = sum(s[2] for s in spans.values())
    per_relay = _figures(all_entries, n)
    per_phase = {}
    for phase in PHASES:
        f = _figures(span(phase), n)
        per_phase[phase] = {k: f[k] for k in (
            "writes", "writes_by_hub_code", "writes_by_event_source_emulation", "reads_by_hub_code_event_driven",
            "reads_by_hub_code_time_based", "reads_by_event_source_emulation",
            "hub_code_writes_by_operation_table_and_item", "hub_code_event_driven_reads_by_operation_and_table")}
        per_phase[phase]["seconds"] = round(spans[phase][2], 2)
    warnings = []
    if recording.bad_lines:
        warnings.append(f"{recording.bad_lines} recorder lines unreadable: counts may be short")
    if dict(final) != {"completed": n}:
        warnings.append(f"final statuses {dict(final)}")
    return {
        "what": "AWS requests per complete relay (2 scans; collected → requested → accepted → originals_received "
                "→ completed), counted at the moto endpoint by its recorder",
        "relays": n, "inbound_events_per_relay": 4, "http_statuses": {str(k): v for k, v in relays.statuses.items()},
        "deliveries_per_relay": {f"{p} {t}": round(v / n, 3) for (p, t), v in sorted(deliveries.items())},
        "final_statuses": dict(final),
        "counting_window_seconds": round(window_s, 2),
        "recorded_requests": len(recording.entries),
        "partner_presigned_puts_per_relay": round(len(puts) / n, 3),
        "per_relay": per_relay,
        "per_phase_per_relay": per_phase,
        "time_based_reads_per_second": {k: round(v / window_s, 2) for k, v in sorted(
            Counter(label(r) for r in all_entries if time_based(r)).items())},
        "attribution": {"event_source_emulation_ops": sorted(EMULATION_OPS),
                        "emulation_ops_called_by_hub_code": emulation_ops_in_hub_code()},
        "recorder": {"recovered_joined_entries": recording.joined_entries, "unreadable_lines": recording.bad_lines},
        "warnings": warnings,
    }


def summary(result: dict[str, Any]) -> list[str]:
    pc = result["per_relay"]
    lines = [
        f"relay_requests: {result['relays']} complete relays (2 scans each), final statuses {result['final_statuses']}, "
        f"{result['recorded_requests']} requests recorded in {result['counting_window_seconds']} s; "
        f"deliveries per relay {result['deliveries_per_relay']}",
        f"  per relay: writes {pc['writes']} (hub code {pc['writes_by_hub_code']}, event-source emulation "
        f"{pc['writes_by_event_source_emulation']}); reads {pc['reads']} (hub code event-driven "
        f"{pc['reads_by_hub_code_event_driven']}, hub code time-based {pc['reads_by_hub_code_time_based']}, "
        f"emulation {pc['reads_by_event_source_emulation']}); + {result['partner_presigned_puts_per_relay']} "
        f"presigned PUTs by the partner",
    ]
    lines += [f"    write (hub)        {k}: {v}" for k, v in pc["hub_code_writes_by_operation_table_and_item"].items()]
    lines += [f"    write (emulation)  {k}: {v}" for k, v in pc["emulation_writes_by_operation_and_table"].items()]
    lines += [f"    read  (hub, event) {k}: {v}" for k, v in pc["hub_code_event_driven_reads_by_operation_and_table"].items()]
    lines += [f"    read  (time)       {k}: {v}" for k, v in pc["time_based_reads_by_operation_and_table"].items()]
    for phase, f in result["per_phase_per_relay"].items():
        lines.append(f"  phase {phase:<9} ({f['seconds']} s): hub writes {f['writes_by_hub_code']} "
                     f"{f['hub_code_writes_by_operation_table_and_item']}, emulation writes "
                     f"{f['writes_by_event_source_emulation']}, event-driven reads {f['reads_by_hub_code_event_driven']} "
                     f"{f['hub_code_event_driven_reads_by_operation_and_table']}")
    lines.append("  time-based reads per second: " + ", ".join(
        f"{k} {v}" for k, v in result["time_based_reads_per_second"].items()))
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(max(1, min(args.relays, 50)))
    path = write_result(NAME, result)
    print("\n".join(summary(result)))
    print(f"  → {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
