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
import json
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import (LocalHub, MotoServer, OBSERVER_KEY, Signer, aws_client, event_body, http, log,
                          write_result)
from bench.documents_memory import RelayStack, Sink
from bench.transfer_requests import _figures
from bench.write_count import EMULATION_OPS, Observer, Recording, emulation_ops_in_hub_code, label, settle, time_based

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


class SeizureStack(RelayStack):
    """RelayStack's moto (recorder), sink and upload helpers, with the partners of tests/support.py."""

    def __init__(self) -> None:  # not RelayStack's: its partners are the relay tests', these the courts'
        from tests.support import partners_doc

        self._tmp = tempfile.TemporaryDirectory(prefix="hub-bench-seizure-")
        self.workdir = Path(self._tmp.name)
        self.recorder_file = self.workdir / "moto_recording.jsonl"
        self.moto = self.receiver = self.hub = None
        try:
            self.moto = MotoServer(self.workdir, self.recorder_file)
            self.receiver = Sink()
            self.doc = partners_doc(f"http://127.0.0.1:{self.receiver.port}")
            partners_file = self.workdir / "partners.json"
            partners_file.write_text(json.dumps(self.doc))
            self.hub = LocalHub(self.workdir, self.moto.url, partners_file)
            log(f"moto {self.moto.url}, local mode {self.hub.url} ready in {self.hub.ready_s:.1f} s")
            self.ddb = aws_client("dynamodb", self.moto.url, OBSERVER_KEY)
        except BaseException:
            self.close()
            raise

    def delivered(self, event_type: str, partner: str, **match: Any) -> list[dict[str, Any]]:
        with self.receiver.lock:
            return [d for d in self.receiver.got if d["type"] == event_type and d["partner"] == partner
                    and all(d["data"].get(k) == v for k, v in match.items())]


class Seizures:
    """N seizures, each on its own Beijing unit, driven by the court and the registry phase by phase."""

    def __init__(self, stack: SeizureStack, observer: Observer, recording: Recording, n: int, tag: str, first: int):
        self.stack, self.observer, self.recording = stack, observer, recording
        run = uuid.uuid4().int % 10**5
        self.items = [{"unit": f"110105001001GB{first + i:05d}F00010001",
                       "order": f"(2026)京0105执保{tag}{run}-{i}号", "release": f"(2026)京0105解{tag}{run}-{i}号",
                       "restriction_id": f"CF-110105-{tag}{run}-{i}"} for i in range(n)]
        self.signers = {p: Signer(stack.secret(p)) for p in (COURT, REGISTRY)}
        self.statuses: Counter = Counter()
        self.put_requests = 0

    def post(self, pid: str, event_type: str, data: dict) -> None:
        body = event_body(event_type, data)
        status, answer = http("POST", f"{self.stack.hub.url}/v1/partners/{pid}/events", body,
                              self.signers[pid].headers(body), timeout=30)
        self.statuses[status] += 1
        if status != 202:
            raise RuntimeError(f"{event_type} from {pid}: HTTP {status} {answer[:400]!r}")

    def settle(self, target: int) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=60)

    def receipts(self, status: str, order: str) -> None:
        """Wait for the court's receipt of `status` for each seizure's `order` ("order" or "release")."""
        for item in self.items:
            deadline = time.monotonic() + 30
            while not self.stack.delivered("seizure.receipt", COURT, order_number=item[order], status=status):
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

        stack.moto.api("recorder/start-recording")
        seizures = Seizures(stack, observer, recording, n, "N", first=10000)
        spans: dict[str, tuple[int, int, float]] = {}
        for phase in PHASES:
            recording.poll()
            first, t0 = len(recording.entries), time.monotonic()
            getattr(seizures, phase)()
            recording.poll()
            spans[phase] = (first, len(recording.entries), time.monotonic() - t0)
        stack.moto.api("recorder/stop-recording")
        time.sleep(0.3)
        recording.poll()
        units = {item["unit"] for item in seizures.items}
        with stack.receiver.lock:
            deliveries = Counter((d["partner"], d["type"], d["data"].get("status") or d["data"].get("action"))
                                 for d in stack.receiver.got if d["data"].get("unit_code") in units)
        hub_log = stack.hub.log_path.read_text(errors="replace")

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        first, last, _ = spans[phase]
        rows = [r for r in recording.entries[first:last] if r["key_id"] != OBSERVER_KEY]
        return [r for r in rows if presigned_put(r) == partner_puts] if phase == "upload" else \
            ([] if partner_puts else rows)

    # The presigned PUTs to the documents bucket are the court's (their credential is in the query, so no
    # key id); the hub's own S3 writes (e.g. to the audit bucket) stay with the hub.
    puts = span("upload", partner_puts=True)
    all_entries = [r for p in PHASES for r in span(p)]
    window_s = sum(s[2] for s in spans.values())
    per_phase = {}
    for phase in PHASES:
        f = _figures(span(phase), n)
        per_phase[phase] = {k: f[k] for k in (
            "writes", "writes_by_hub_code", "writes_by_event_source_emulation", "reads_by_hub_code_event_driven",
            "hub_code_writes_by_operation_table_and_item", "hub_code_event_driven_reads_by_operation_and_table")}
        per_phase[phase]["seconds"] = round(spans[phase][2], 2)
    per_round_trip = {name: _figures([r for p in phases for r in span(p)], n) for name, phases in ROUND_TRIPS.items()}
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
        "http_statuses": {str(k): v for k, v in seizures.statuses.items()},
        "deliveries_per_seizure": {f"{p} {t} {s}": round(v / n, 3) for (p, t, s), v in sorted(deliveries.items())},
        "counting_window_seconds": round(window_s, 2),
        "recorded_requests": len(recording.entries),
        "partner_presigned_puts_per_seizure": round(len(puts) / n, 3),
        "per_round_trip": per_round_trip,
        "per_phase_per_seizure": per_phase,
        "all_phases_per_seizure": _figures(all_entries, n),
        "time_based_reads_per_second": {k: round(v / window_s, 2) for k, v in sorted(
            Counter(label(r) for r in all_entries if time_based(r)).items())},
        "attribution": {"event_source_emulation_ops": sorted(EMULATION_OPS),
                        "emulation_ops_called_by_hub_code": emulation_ops_in_hub_code()},
        "recorder": {"recovered_joined_entries": recording.joined_entries, "unreadable_lines": recording.bad_lines},
        "personal_data_in_hub_log": any(x in hub_log for x in ("11010519491231002X", "王五", "刘某")),
        "warnings": warnings,
    }


def summary(result: dict[str, Any]) -> list[str]:
    lines = [f"seizure_requests: {result['seizures']} seizures (each on its own unit), "
             f"{result['recorded_requests']} requests recorded in {result['counting_window_seconds']} s; "
             f"deliveries per seizure {result['deliveries_per_seizure']}"]
    for name, f in result["per_round_trip"].items():
        lines.append(f"  per {name} round trip: writes {f['writes']} (hub code {f['writes_by_hub_code']}, "
                     f"event-source emulation {f['writes_by_event_source_emulation']}); reads {f['reads']} "
                     f"(hub code event-driven {f['reads_by_hub_code_event_driven']}, time-based "
                     f"{f['reads_by_hub_code_time_based'] + f['reads_by_event_source_emulation']:.3f})")
        lines += [f"    write (hub)        {k}: {v}" for k, v in f["hub_code_writes_by_operation_table_and_item"].items()]
        lines += [f"    read  (hub, event) {k}: {v}"
                  for k, v in f["hub_code_event_driven_reads_by_operation_and_table"].items()]
    for phase, f in result["per_phase_per_seizure"].items():
        lines.append(f"  phase {phase:<8} ({f['seconds']} s): hub writes {f['writes_by_hub_code']} "
                     f"{f['hub_code_writes_by_operation_table_and_item']}, emulation writes "
                     f"{f['writes_by_event_source_emulation']}, event-driven reads {f['reads_by_hub_code_event_driven']}")
    lines.append(f"  + {result['partner_presigned_puts_per_seizure']} presigned PUTs by the court per seizure")
    lines.append("  time-based reads per second: " + ", ".join(
        f"{k} {v}" for k, v in result["time_based_reads_per_second"].items()))
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seizures", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(max(1, min(args.seizures, 50)))
    path = write_result(NAME, result)
    print("\n".join(summary(result)))
    print(f"  → {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
