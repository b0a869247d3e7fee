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
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import Partners, counted_phases, hub_entries, publish_result
from bench.documents_memory import RelayStack
from bench.write_count import (Observer, Recording, attribution, breakdown_lines, figures, phase_figures, phase_line, rates_line,
                               settle, time_based_rates, totals_line)
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
        self.partners = Partners(stack.hub.url, stack.doc, (OFFICE, REGISTRY))
        self.post = self.partners.post
        self.put_requests = 0

    def settle(self, target: int, what: str) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=60)

    def wait_status(self, count: int) -> None:
        for rid in self.ids:
            deadline = time.monotonic() + 30
            while len(self.stack.receiver.find("relay.status", OFFICE, relay_id=rid)) < count:
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
            found = self.stack.receiver.find("relay.requested", REGISTRY, relay_id=rid)
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
        return Counter(self.stack.receiver.find("relay.status", OFFICE, relay_id=rid)[-1]["data"].get("status")
                       for rid in self.ids)


def run(n: int) -> dict[str, Any]:
    with RelayStack(recorder=True) as stack:
        observer = Observer(stack)
        recording = Recording(stack.recorder_file)
        warm = Relays(stack, observer, recording, 1, "W")
        for phase in PHASES:
            getattr(warm, phase)()
        time.sleep(1.0)

        relays = Relays(stack, observer, recording, n, "N")
        spans, _ = counted_phases(stack.moto, recording, lambda phase: getattr(relays, phase)(), PHASES)
        final = relays.final_statuses()
        deliveries = Counter((d["partner"], d["type"])
                             for d in stack.receiver.find(where=lambda data: data.get("relay_id") in set(relays.ids)))

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        rows = hub_entries(recording, spans[phase])
        return [r for r in rows if (r["op"] == "PUT object") == partner_puts] if phase == "upload" else \
            ([] if partner_puts else rows)

    # The presigned PUTs (op "PUT object"; their credential is in the query, so no key id) are the partner's.
    all_entries = [r for p in PHASES for r in span(p)]
    puts = span("upload", partner_puts=True)
    window_s = sum(s[2] for s in spans.values())
    per_relay = figures(all_entries, n)
    per_phase = {phase: phase_figures(span(phase), n, spans[phase][2]) for phase in PHASES}
    warnings = []
    if recording.bad_lines:
        warnings.append(f"{recording.bad_lines} recorder lines unreadable: counts may be short")
    if dict(final) != {"completed": n}:
        warnings.append(f"final statuses {dict(final)}")
    return {
        "what": "AWS requests per complete relay (2 scans; collected → requested → accepted → originals_received "
                "→ completed), counted at the moto endpoint by its recorder",
        "relays": n, "inbound_events_per_relay": 4, "http_statuses": {str(k): v for k, v in relays.partners.statuses.items()},
        "deliveries_per_relay": {f"{p} {t}": round(v / n, 3) for (p, t), v in sorted(deliveries.items())},
        "final_statuses": dict(final),
        "counting_window_seconds": round(window_s, 2),
        "recorded_requests": len(recording.entries),
        "partner_presigned_puts_per_relay": round(len(puts) / n, 3),
        "per_relay": per_relay,
        "per_phase_per_relay": per_phase,
        "time_based_reads_per_second": time_based_rates(all_entries, window_s),
        "attribution": attribution(),
        "recorder": {"recovered_joined_entries": recording.joined_entries, "unreadable_lines": recording.bad_lines},
        "warnings": warnings,
    }


def summary(result: dict[str, Any]) -> list[str]:
    pc = result["per_relay"]
    lines = [
        f"relay_requests: {result['relays']} complete relays (2 scans each), final statuses {result['final_statuses']}, "
        f"{result['recorded_requests']} requests recorded in {result['counting_window_seconds']} s; "
        f"deliveries per relay {result['deliveries_per_relay']}",
        totals_line("relay", pc) + f"; + {result['partner_presigned_puts_per_relay']} presigned PUTs by the partner",
    ]
    lines += breakdown_lines(pc, every_kind=True)
    for phase, f in result["per_phase_per_relay"].items():
        lines.append(phase_line(phase, f, with_reads=True))
    lines.append(rates_line(result["time_based_reads_per_second"]))
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(max(1, min(args.relays, 50)))
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
