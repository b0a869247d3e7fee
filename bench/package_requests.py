"""AWS requests per 带押过户 package case (flow 2), counted AT THE AWS ENDPOINT by moto's recorder.

moto server (own process, recorder) → local mode (`python -m localmode`) with the partners of the tests
(tests/support.py: sz-registry, the banks sz-ccb and sz-cmb, …) → this process plays the Shenzhen
registry and both banks. Per mode (combined, staged, same_bank_change): one warm-up package (not
counted), then N packages in lock-step phases, each settled (deliveries received, delivery queue
empty, hub quiet) before the next:

    record     restriction.recorded (sz-registry): the old mortgage, for the index        → nothing delivered
    upload     per package: each bank's consent(s) and contract, the registry's e-certificate, each a signed
               slot request + PUT to the presigned URL, until the upload driver verified them
    consent_1  mortgage.requested (sz-ccb: new_mortgagee; same_bank_change: both)         → nothing (same bank:
                                                                                             application.requested)
    consent_2  mortgage.requested (sz-cmb: old_mortgagee; same_bank_change: none)         → application.requested
    book       registration.booked (sz-registry)                 → mortgage.registered (+ registration.result to sz-cmb)

Requests are classified as in bench/transfer_requests.py (bench/write_count.classify): writes/reads,
hub code vs event-source emulation (localmode drivers), event-driven vs time-based reads. The presigned
PUTs are the partners' and are counted apart; observer look-ups carry another key id and are left out.

    .venv/bin/python -m bench.package_requests [--packages 5] [--modes combined,staged,same_bank_change]
"""
from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import OBSERVER_KEY, Signer, aws_client, event_body, http, wait_until, write_result
from bench.documents_memory import RelayStack
from bench.transfer_requests import TransferStack, _figures
from bench.write_count import (EMULATION_OPS, Observer, Recording, emulation_ops_in_hub_code, label, settle,
                               time_based)
from tests.test_mortgage_flow import (CCB, CMB, CONSENT, CONSENTS_OF, E_CERT, SZ_UNIT, booking, package_request,
                                      recorded_mortgage)
from tests.test_relay_flow import PDF2

NAME = "package_requests"
REGISTRY = "sz-registry"
PHASES = ("record", "upload", "consent_1", "consent_2", "book")
MODES = ("combined", "staged", "same_bank_change")


class PackageStack(TransferStack):
    """moto (recorder) + the partners' inbox + local mode with the tests' partners (the transfer
    benchmark's stack), with the relay stack's document helpers (slot, PUT, wait for the verdict)."""

    request_slot, document_state, wait_judged, upload, secret = (
        RelayStack.request_slot, RelayStack.document_state, RelayStack.wait_judged, RelayStack.upload,
        RelayStack.secret)

    def __init__(self) -> None:
        super().__init__()
        self.ddb = aws_client("dynamodb", self.moto.url, OBSERVER_KEY)

    def delivered(self, event_type: str, partner: str, key: str) -> list[dict[str, Any]]:
        """Deliveries of a case: by its case id (answers to banks) or request id (the application)."""
        return [d for d in self.receiver.got if d["type"] == event_type and d["partner"] == partner
                and key in (d["data"].get("case_id"), d["data"].get("request_id"))]


class Packages:
    def __init__(self, stack: PackageStack, observer: Observer, recording: Recording, n: int, mode: str, tag: str):
        self.stack, self.observer, self.recording, self.mode = stack, observer, recording, mode
        self.ids = [f"PKG-{tag}-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        self.old_bank = CCB if mode == "same_bank_change" else CMB
        self.parts = [("sz-ccb", "both")] if mode == "same_bank_change" else [("sz-ccb", "new_mortgagee"),
                                                                             ("sz-cmb", "old_mortgagee")]
        self.signers = {p: Signer(stack.secret(p)) for p in (REGISTRY, "sz-ccb", "sz-cmb")}
        self.proofs = {pid: f"粤(2019)深圳市不动产证明第{uuid.uuid4().int % 10**9:09d}号" for pid in self.ids}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.e_certificates: dict[str, dict[str, Any]] = {}
        self.statuses: Counter = Counter()
        self.posted: Counter = Counter()
        self.put_requests = 0

    def settle(self, target: int) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=90)

    def post(self, pid: str, event_type: str, data: dict) -> None:
        body = event_body(event_type, data)
        status, answer = http("POST", f"{self.stack.hub.url}/v1/partners/{pid}/events", body,
                              self.signers[pid].headers(body), timeout=30)
        self.statuses[status] += 1
        self.posted[event_type] += 1
        if status != 202:
            raise RuntimeError(f"{event_type} from {pid}: HTTP {status} {answer[:400]!r}")

    def record(self) -> None:
        """Nothing is delivered for a record: wait (observer look-ups, not counted) until the index has them."""
        for pid in self.ids:
            self.post(REGISTRY, "restriction.recorded", recorded_mortgage(self.proofs[pid], self.old_bank))

        def indexed() -> bool:
            return all("Item" in self.stack.ddb.get_item(
                TableName="hub-cases", ConsistentRead=True,
                Key={"pk": {"S": f"mortgage_proof#{self.proofs[pid]}"}, "sk": {"S": "index"}}) for pid in self.ids)

        wait_until(indexed, 60, 0.1, "mortgages indexed")
        self.settle(self.stack.receiver.count)

    def upload(self) -> None:
        refs = []
        for pid in self.ids:
            self.requests[pid] = []
            for bank, role in self.parts:
                consents = {r: self.stack.upload(bank, CONSENT + f"{pid} {r}".encode()) for r in CONSENTS_OF[role]}
                scans = [{"kind": "mortgage_contract", "title": "抵押合同", "document": self.stack.upload(bank, PDF2)}]
                old = {"mortgagee": dict(self.old_bank), "proof_number": self.proofs[pid]}
                self.requests[pid].append(package_request(bank, role, consents, scans, self.mode, pid, SZ_UNIT,
                                                          self.old_bank, CCB, old_mortgage=old))
                refs += [*consents.values(), scans[0]["document"]]
            self.e_certificates[pid] = self.stack.upload(REGISTRY, E_CERT + pid.encode())
            refs.append(self.e_certificates[pid])
        self.put_requests += len(refs)
        for ref in refs:
            verdict, _ = self.stack.wait_judged(ref["document_id"], 30)
            if verdict["state"] != "verified":
                raise RuntimeError(f"document {ref['document_id']}: {verdict}")
        self.settle(self.stack.receiver.count)

    def _consent(self, index: int) -> None:
        start = self.stack.receiver.count
        sent = 0
        for pid in self.ids:
            if index < len(self.requests[pid]):
                bank = self.parts[index][0]
                self.post(bank, "mortgage.requested", self.requests[pid][index])
                sent += 1
        files = index == len(self.parts) - 1
        self.settle(start + (len(self.ids) if files and sent else 0))

    def consent_1(self) -> None:
        self._consent(0)

    def consent_2(self) -> None:
        self._consent(1)

    def book(self) -> None:
        start = self.stack.receiver.count
        for n, pid in enumerate(self.ids):
            [application] = self.stack.delivered("application.requested", REGISTRY, f"PKG_{pid}")
            data = booking(application["data"], [f"粤(2026)深圳市不动产证明第{n:07d}{pid[-4:]}号"],
                           [self.e_certificates[pid]], n, ownership=True)
            self.post(REGISTRY, "registration.booked", data)
        self.settle(start + len(self.ids) * len(self.parts))

    def outcomes(self) -> Counter:
        got: Counter = Counter()
        for pid in self.ids:
            got["mortgage.registered"] += len(self.stack.delivered("mortgage.registered", "sz-ccb", f"PKG_{pid}"))
            got["registration.result"] += len(self.stack.delivered("registration.result", "sz-cmb", f"PKG_{pid}"))
            got["application.requested"] += len(self.stack.delivered("application.requested", REGISTRY,
                                                                     f"PKG_{pid}"))
        return got


def _measure(stack: PackageStack, observer: Observer, recording: Recording, n: int, mode: str) -> dict[str, Any]:
    stack.moto.api("recorder/start-recording")
    packages = Packages(stack, observer, recording, n, mode, mode[:4].upper())
    spans: dict[str, tuple[int, int, float]] = {}
    for phase in PHASES:
        recording.poll()
        first, t0 = len(recording.entries), time.monotonic()
        getattr(packages, phase)()
        recording.poll()
        spans[phase] = (first, len(recording.entries), time.monotonic() - t0)
    stack.moto.api("recorder/stop-recording")
    time.sleep(0.3)
    recording.poll()

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        """The hub's requests of a phase, or the partners' presigned PUTs (their credential is in the
        query string, so they carry no key id; the hub's own S3 PUTs do)."""
        first, last, _ = spans[phase]
        rows = [r for r in recording.entries[first:last] if r["key_id"] != OBSERVER_KEY]
        return [r for r in rows if (r["op"] == "PUT object" and r["key_id"] == "?") == partner_puts]

    entries = [r for p in PHASES for r in span(p)]
    window_s = sum(s[2] for s in spans.values())
    outcomes = packages.outcomes()
    per_phase = {}
    for phase in PHASES:
        f = _figures(span(phase), n)
        per_phase[phase] = {k: f[k] for k in (
            "writes", "writes_by_hub_code", "writes_by_event_source_emulation", "reads_by_hub_code_event_driven",
            "reads_by_hub_code_time_based", "hub_code_writes_by_operation_table_and_item",
            "hub_code_event_driven_reads_by_operation_and_table")}
        per_phase[phase]["seconds"] = round(spans[phase][2], 2)
    expected = {"application.requested": n, "mortgage.registered": n,
                "registration.result": n if len(packages.parts) == 2 else 0}
    warnings = [f"{recording.bad_lines} recorder lines unreadable: counts may be short"] if recording.bad_lines else []
    if dict(outcomes) != expected:
        warnings.append(f"outcomes {dict(outcomes)} != expected {expected}")
    return {
        "mode": mode, "packages": n, "inbound_events_per_package": _per_n(packages.posted, n),
        "http_statuses": {str(k): v for k, v in packages.statuses.items()}, "outcomes": dict(outcomes),
        "counting_window_seconds": round(window_s, 2), "recorded_requests": spans["book"][1] - spans["record"][0],
        "partner_presigned_puts_per_package": round(len(span("upload", partner_puts=True)) / n, 3),
        "per_package": _figures(entries, n), "per_phase_per_package": per_phase,
        "time_based_reads_per_second": {k: round(v / window_s, 2) for k, v in sorted(
            Counter(label(r) for r in entries if time_based(r)).items())},
        "warnings": warnings,
    }


def _per_n(counter: Counter, n: int) -> dict[str, float]:
    return {k: round(v / n, 3) for k, v in sorted(counter.items())}


def run(n: int = 5, modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    with PackageStack() as stack:
        observer = Observer(stack)
        recording = Recording(stack.recorder_file)
        warm = Packages(stack, observer, recording, 1, "combined", "W")  # first loads, caches, connections
        for phase in PHASES:
            getattr(warm, phase)()
        time.sleep(1.0)
        results = {mode: _measure(stack, observer, recording, n, mode) for mode in modes}
    return {
        "what": "AWS requests per 带押过户 package case (record the old mortgage, upload, both banks' requests, "
                "one application, booking and the answers), counted at the moto endpoint by its recorder",
        "partners": {"source": stack.partners_source, "acting": [REGISTRY, "sz-ccb", "sz-cmb"],
                     "receiver": "answers 204 to every delivery"},
        "modes": results,
        "attribution": {"event_source_emulation_ops": sorted(EMULATION_OPS),
                        "emulation_ops_called_by_hub_code": emulation_ops_in_hub_code()},
        "warnings": [f"{m}: {w}" for m, r in results.items() for w in r["warnings"]],
    }


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for mode, r in result["modes"].items():
        pc = r["per_package"]
        lines += [
            f"package_requests [{mode}]: {r['packages']} packages, inbound per package "
            f"{r['inbound_events_per_package']}, outcomes {r['outcomes']}, {r['counting_window_seconds']} s",
            f"  per package: writes {pc['writes']} (hub code {pc['writes_by_hub_code']}, event-source emulation "
            f"{pc['writes_by_event_source_emulation']}); reads {pc['reads']} (hub code event-driven "
            f"{pc['reads_by_hub_code_event_driven']}, hub code time-based {pc['reads_by_hub_code_time_based']}, "
            f"emulation {pc['reads_by_event_source_emulation']}); + {r['partner_presigned_puts_per_package']} "
            f"presigned PUTs by the partners",
        ]
        lines += [f"    write (hub)        {k}: {v}" for k, v in pc["hub_code_writes_by_operation_table_and_item"].items()]
        lines += [f"    read  (hub, event) {k}: {v}"
                  for k, v in pc["hub_code_event_driven_reads_by_operation_and_table"].items()]
        for phase, f in r["per_phase_per_package"].items():
            lines.append(f"  phase {phase:<9} ({f['seconds']} s): hub writes {f['writes_by_hub_code']}, emulation "
                         f"writes {f['writes_by_event_source_emulation']}, event-driven reads "
                         f"{f['reads_by_hub_code_event_driven']}")
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m in MODES) or MODES
    result = run(max(1, min(args.packages, 50)), modes)
    path = write_result(NAME, result)
    print("\n".join(summary(result)))
    print(f"  → {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
