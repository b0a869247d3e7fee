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

from bench.common import (Partners, Receiver, StackBase, counted_phases, hub_entries, publish_result, tests_partners,
                          wait_until)
from bench.documents_memory import Uploads
from bench.write_count import (Observer, Recording, attribution, breakdown_lines, figures, per_n, phase_figures,
                               phase_line, settle, time_based_rates, totals_line)
from tests.test_mortgage_flow import (CCB, CMB, CONSENT, CONSENTS_OF, E_CERT, SZ_UNIT, booking, package_request,
                                      recorded_mortgage)
from tests.test_relay_flow import PDF2

NAME = "package_requests"
REGISTRY = "sz-registry"
PHASES = ("record", "upload", "consent_1", "consent_2", "book")
MODES = ("combined", "staged", "same_bank_change")


class PackageStack(Uploads, StackBase):
    """moto (recorder) + a receiver keeping bodies + local mode with the partners of tests/support.py,
    and document uploads (slot, PUT, wait for the verdict)."""

    def __init__(self) -> None:
        self._start("hub-bench-package-", Receiver(keep_bodies=True), tests_partners, recorder=True)

    def delivered(self, event_type: str, partner: str, key: str) -> list[dict[str, Any]]:
        """Deliveries of a case: by its case id (answers to banks) or request id (the application)."""
        return self.receiver.find(event_type, partner, where=lambda data: key in (data.get("case_id"),
                                                                                  data.get("request_id")))


class Packages:
    def __init__(self, stack: PackageStack, observer: Observer, recording: Recording, n: int, mode: str, tag: str):
        self.stack, self.observer, self.recording, self.mode = stack, observer, recording, mode
        self.ids = [f"PKG-{tag}-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        self.old_bank = CCB if mode == "same_bank_change" else CMB
        self.parts = [("sz-ccb", "both")] if mode == "same_bank_change" else [("sz-ccb", "new_mortgagee"),
                                                                             ("sz-cmb", "old_mortgagee")]
        self.partners = Partners(stack.hub.url, stack.doc, (REGISTRY, "sz-ccb", "sz-cmb"))
        self.post = self.partners.post
        self.proofs = {pid: f"粤(2019)深圳市不动产证明第{uuid.uuid4().int % 10**9:09d}号" for pid in self.ids}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.e_certificates: dict[str, dict[str, Any]] = {}
        self.put_requests = 0

    def settle(self, target: int) -> None:
        settle(self.stack, self.observer, self.recording, target, quiet_s=1.0, timeout_s=90)

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
    packages = Packages(stack, observer, recording, n, mode, mode[:4].upper())
    spans, _ = counted_phases(stack.moto, recording, lambda phase: getattr(packages, phase)(), PHASES)

    def span(phase: str, partner_puts: bool = False) -> list[dict[str, Any]]:
        """The hub's requests of a phase, or the partners' presigned PUTs (their credential is in the
        query string, so they carry no key id; the hub's own S3 PUTs do)."""
        rows = hub_entries(recording, spans[phase])
        return [r for r in rows if (r["op"] == "PUT object" and r["key_id"] == "?") == partner_puts]

    entries = [r for p in PHASES for r in span(p)]
    window_s = sum(s[2] for s in spans.values())
    outcomes = packages.outcomes()
    per_phase = {phase: phase_figures(span(phase), n, spans[phase][2]) for phase in PHASES}
    expected = {"application.requested": n, "mortgage.registered": n,
                "registration.result": n if len(packages.parts) == 2 else 0}
    warnings = [f"{recording.bad_lines} recorder lines unreadable: counts may be short"] if recording.bad_lines else []
    if dict(outcomes) != expected:
        warnings.append(f"outcomes {dict(outcomes)} != expected {expected}")
    return {
        "mode": mode, "packages": n, "inbound_events_per_package": per_n(packages.partners.posted, n),
        "http_statuses": {str(k): v for k, v in packages.partners.statuses.items()}, "outcomes": dict(outcomes),
        "counting_window_seconds": round(window_s, 2), "recorded_requests": spans["book"][1] - spans["record"][0],
        "partner_presigned_puts_per_package": round(len(span("upload", partner_puts=True)) / n, 3),
        "per_package": figures(entries, n), "per_phase_per_package": per_phase,
        "time_based_reads_per_second": time_based_rates(entries, window_s),
        "warnings": warnings,
    }


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
        "attribution": attribution(),
        "warnings": [f"{m}: {w}" for m, r in results.items() for w in r["warnings"]],
    }


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for mode, r in result["modes"].items():
        pc = r["per_package"]
        lines += [
            f"package_requests [{mode}]: {r['packages']} packages, inbound per package "
            f"{r['inbound_events_per_package']}, outcomes {r['outcomes']}, {r['counting_window_seconds']} s",
            totals_line("package", pc) + f"; + {r['partner_presigned_puts_per_package']} presigned PUTs by the partners",
        ]
        lines += breakdown_lines(pc)
        for phase, f in r["per_phase_per_package"].items():
            lines.append(phase_line(phase, f))
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m in MODES) or MODES
    result = run(max(1, min(args.packages, 50)), modes)
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
