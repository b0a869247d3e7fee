"""AWS requests per seizure round trip (flow 5, courts), counted AT THE AWS ENDPOINT by moto's recorder.

moto server (own process, recorder) → local mode (`python -m localmode`) with the partners of
tests/support.py → this process plays the Beijing court (`bj-court`) and the Beijing registry
(`bj-registry`). One warm-up seizure (not counted), then N seizures, each on its own unit, in lock-step
phases, each settled (deliveries received, delivery queue empty, hub quiet) before the next:

    upload    3 × (signed slot request + PUT to the presigned URL), until the upload driver verified them:
              the ruling and the assistance notice of the seize order, the ruling of the release
    order     seizure.ordered (seize)          → seizure.forwarded (registry) + seizure.receipt forwarded (court)
    record    restriction.recorded (recorded)  → seizure.receipt recorded (court)
    release   seizure.ordered (release)        → seizure.forwarded + seizure.receipt forwarded
    released  restriction.recorded (released)  → seizure.receipt released

The seizure round trip of the issue is `order` + `record` (seizure.ordered → seizure.forwarded →
restriction.recorded → seizure.receipt); `release` + `released` is the release's round trip; the
uploads are the court's, counted apart. No application watches these units, so no restriction.flagged
is sent (one more delivery per watching application and per change). Requests are classified as in
bench/transfer_requests.py (bench/write_count.classify); the presigned PUTs are the partner's.

    .venv/bin/python -m bench.seizure_requests [--seizures 5]
"""
from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from bench.common import (Partners, Receiver, StackBase, counted_phases, hub_entries, publish_result,
                          tests_partners)
from bench.documents_memory import Uploads
from bench.write_count import (Observer, Recording, attribution, breakdown_lines, figures, phase_figures, phase_line, rates_line,
                               settle, time_based_rates, totals_line)

NAME = "seizure_requests"
COURT, REGISTRY = "bj-court", "bj-registry"
PHASES = ("upload", "order", "record", "release", "released")
ROUND_TRIPS = {"seizure": ("order", "record"), "release": ("release", "released")}
RULING = b"%PDF-1.7\n" + "执行裁定书 (bench)\n".encode() * 40 + b"%%EOF\n"
NOTICE = b"%PDF-1.7\n" + "协助执行通知书 (bench)\n".encode() * 20 + b"%%EOF\n"
RELEASE_RULING = b"%PDF-1.7\n" + "解除查封裁定书 (bench)\n".encode() * 30 + b"%%EOF\n"


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def presigned_put(r: dict[str, Any]) -> bool:
    return r["op"] == "PUT object" and r["resource"] == "hub-documents"


class SeizureStack(Uploads, StackBase):
    """moto (recorder) + a receiver keeping bodies + local mode with the partners of tests/support.py."""

    def __init__(self) -> None:
        self._start("hub-bench-seizure-", Receiver(keep_bodies=True), tests_partners, recorder=True)


class Seizures:
    """N seizures, each on its own Beijing unit, driven by the court and the registry phase by phase."""

    def __init__(self, stack: SeizureStack, observer: Observer, recording: Recording, n: int, tag: str, first: int):
        self.stack, self.observer, self.recording = stack, observer, recording
        run = uuid.uuid4().int % 10**5
        self.items = [{"unit": f"110105001001GB{first + i:05d}F00010001",
                       "order": f"(2026)京0105执保{tag}{run}-{i}号", "release": f"(2026)京0105解{tag}{run}-{i}号",
                       "restriction_id": f"CF-110105-{tag}{run}-{i}"} for i in range(n)]
        self.partners = Partners(stack.hub.url, stack.doc, (COURT, REGISTRY))
        self.post = self.partners.post
        self.put_requests = 0

    def settle(self, target: int) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=60)

    def receipts(self, status: str, order: str) -> None:
        """Wait for the court's receipt of `status` for each seizure's `order` ("order" or "release")."""
        for item in self.items:
            deadline = time.monotonic() + 30
            while not self.stack.receiver.find("seizure.receipt", COURT, order_number=item[order], status=status):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no {status} receipt for {item[order]}\n{self.stack.hub_log_tail()}")
                time.sleep(0.05)

    def upload(self) -> None:
        for item in self.items:
            item["papers"] = [self.stack.upload(COURT, RULING), self.stack.upload(COURT, NOTICE),
                              self.stack.upload(COURT, RELEASE_RULING)]
            self.put_requests += 3
        for item in self.items:
            for paper in item["papers"]:
                verdict, _ = self.stack.wait_judged(paper["document_id"], 30)
                if verdict["state"] != "verified":
                    raise RuntimeError(f"paper {paper['document_id']}: {verdict}")
        self.settle(self.stack.receiver.count)

    def _order(self, item: dict, action: str) -> dict:
        data = {"order_number": item["order"], "action": action,
                "court": {"name": "北京市朝阳区人民法院", "uscc": "111101050000000017"}, "unit_code": item["unit"],
                "subject": {"name": "王五", "id_type": "resident_id", "id_number": "11010519491231002X"},
                "legal_document": item["papers"][0], "assistance_notice": item["papers"][1],
                "officers": [{"name": "刘某", "badge_number": "1101050001"}], "ordered_at": now()}
        if action == "seize":
            return {**data, "seizure_kind": "seize", "valid_from": "2026-01-01", "valid_until": "2028-12-31"}
        return {**data, "order_number": item["release"], "original_order_number": item["order"],
                "legal_document": item["papers"][2]}

    def _registry_record(self, item: dict, action: str) -> dict:
        data = {"unit_code": item["unit"], "restriction_type": "seizure", "action": action,
                "restriction_id": item["restriction_id"], "recorded_at": now()}
        if action == "recorded":
            return {**data, "seizure_order_number": item["order"], "seizure_kind": "seize", "rank": 1,
                    "valid_until": "2028-12-31"}
        return {**data, "seizure_order_number": item["release"]}

    def _phase(self, sender: str, event_type: str, build, deliveries_each: int, receipt: str, order: str) -> None:
        """Each seizure's event from `sender`, settled, then each seizure's `receipt` for its `order`."""
        start = self.stack.receiver.count
        for item in self.items:
            self.post(sender, event_type, build(item))
        self.settle(start + deliveries_each * len(self.items))
        self.receipts(receipt, order)

    def order(self) -> None:  # → seizure.forwarded + receipt forwarded
        self._phase(COURT, "seizure.ordered", lambda i: self._order(i, "seize"), 2, "forwarded", "order")

    def record(self) -> None:  # → receipt recorded
        self._phase(REGISTRY, "restriction.recorded", lambda i: self._registry_record(i, "recorded"), 1,
                    "recorded", "order")

    def release(self) -> None:  # → seizure.forwarded + receipt forwarded
        self._phase(COURT, "seizure.ordered", lambda i: self._order(i, "release"), 2, "forwarded", "release")

    def released(self) -> None:  # → receipt released
        self._phase(REGISTRY, "restriction.recorded", lambda i: self._registry_record(i, "released"), 1,
                    "released", "release")


def run(n: int = 5) -> dict[str, Any]:
    with SeizureStack() as stack:
        observer = Observer(stack)
        recording = Recording(stack.recorder_file)
        warm = Seizures(stack, observer, recording, 1, "W", first=90000)
        for phase in PHASES:
            getattr(warm, phase)()
        time.sleep(1.0)

        seizures = Seizures(stack, observer, recording, n, "N", first=10000)
        spans, _ = counted_phases(stack.moto, recording, lambda phase: getattr(seizures, phase)(), PHASES)
        units = {item["unit"] for item in seizures.items}
        deliveries = Counter((d["partner"], d["type"], d["data"].get("status") or d["data"].get("action"))
                             for d in stack.receiver.find(where=lambda data: data.get("unit_code") in units))
        hub_log = stack.hub.log_path.read_text(errors="replace")

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        rows = hub_entries(recording, spans[phase])
        return [r for r in rows if presigned_put(r) == partner_puts] if phase == "upload" else \
            ([] if partner_puts else rows)

    # The presigned PUTs to the documents bucket are the court's (their credential is in the query, so no
    # key id); the hub's own S3 writes (e.g. to the audit bucket) stay with the hub.
    puts = span("upload", partner_puts=True)
    all_entries = [r for p in PHASES for r in span(p)]
    window_s = sum(s[2] for s in spans.values())
    per_phase = {phase: phase_figures(span(phase), n, spans[phase][2]) for phase in PHASES}
    per_round_trip = {name: figures([r for p in phases for r in span(p)], n) for name, phases in ROUND_TRIPS.items()}
    warnings = []
    if recording.bad_lines:
        warnings.append(f"{recording.bad_lines} recorder lines unreadable: counts may be short")
    expected = {(COURT, "seizure.receipt", s): n * c for s, c in (("forwarded", 2), ("recorded", 1), ("released", 1))}
    expected.update({(REGISTRY, "seizure.forwarded", "seize"): n, (REGISTRY, "seizure.forwarded", "release"): n})
    if dict(deliveries) != expected:
        warnings.append(f"deliveries {dict(deliveries)} differ from the expected {expected}")
    return {
        "what": "AWS requests per seizure round trip (seizure.ordered → seizure.forwarded → restriction.recorded → "
                "seizure.receipt) and per release round trip, counted at the moto endpoint by its recorder",
        "seizures": n, "units": "one per seizure (no application watching, so no restriction.flagged)",
        "inbound_events_per_seizure": {"seizure.ordered": 2, "restriction.recorded": 2},
        "http_statuses": {str(k): v for k, v in seizures.partners.statuses.items()},
        "deliveries_per_seizure": {f"{p} {t} {s}": round(v / n, 3) for (p, t, s), v in sorted(deliveries.items())},
        "counting_window_seconds": round(window_s, 2),
        "recorded_requests": len(recording.entries),
        "partner_presigned_puts_per_seizure": round(len(puts) / n, 3),
        "per_round_trip": per_round_trip,
        "per_phase_per_seizure": per_phase,
        "all_phases_per_seizure": figures(all_entries, n),
        "time_based_reads_per_second": time_based_rates(all_entries, window_s),
        "attribution": attribution(),
        "recorder": {"recovered_joined_entries": recording.joined_entries, "unreadable_lines": recording.bad_lines},
        "personal_data_in_hub_log": any(x in hub_log for x in ("11010519491231002X", "王五", "刘某")),
        "warnings": warnings,
    }


def summary(result: dict[str, Any]) -> list[str]:
    lines = [f"seizure_requests: {result['seizures']} seizures (each on its own unit), "
             f"{result['recorded_requests']} requests recorded in {result['counting_window_seconds']} s; "
             f"deliveries per seizure {result['deliveries_per_seizure']}"]
    for name, f in result["per_round_trip"].items():
        lines.append(totals_line(f"{name} round trip", f))
        lines += breakdown_lines(f)
    for phase, f in result["per_phase_per_seizure"].items():
        lines.append(phase_line(phase, f))
    lines.append(f"  + {result['partner_presigned_puts_per_seizure']} presigned PUTs by the court per seizure")
    lines.append(rates_line(result["time_based_reads_per_second"]))
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seizures", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(max(1, min(args.seizures, 50)))
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
