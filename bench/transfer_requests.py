"""AWS requests per complete transfer case (flow 1, one window), counted AT THE AWS ENDPOINT.

moto server (own process, request recorder) → local mode (`python -m localmode`) against it → the
Beijing partners (bj-registry, bj-tax, bj-fiscal, bj-pay; canonical formats) played by this process:
an HTTP receiver keeps every delivery, and the benchmark answers them as the partners would, signed
with the official standardwebhooks library. One warm-up case first (not counted), then recording
starts and N complete cases run in lock-step phases, each phase settled (its deliveries received, the
delivery queue empty, the hub quiet) before the next:

    submit   application.submitted                  → tax.assessment_requested + nontax.bill_requested ×2
    answer   nontax.bill_issued ×2 + tax.assessed   → payment.order_requested ×2 (each_pays_own)
    pay      payment.succeeded ×2                   → (ledger; nothing delivered)
    clear    tax.cleared                            → case.ready_to_book
    book     registration.booked                    → tax.booking_shared

and, apart from the case total, one signed case read (GET /v1/cases/{id}) per case. Every request
the endpoint recorded is classified by service, operation and table, as a write or a read, as made by
the hub's code or by the event-source emulation (localmode/drivers.py: ReceiveMessage,
DeleteMessageBatch, GetRecords, …), and, for reads, as following from events or from time (polling,
the partner-registry refresh). Observer requests (this process's own look-ups) carry another access
key id and are left out.

    .venv/bin/python -m bench.transfer_requests [--cases 10] [--land-revenue 500000]
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from bench.common import (Partners, Receiver, StackBase, counted_phases, http, hub_entries, partners_doc,
                          publish_result, secret_of)
from bench.write_count import (OBSERVER_KEY, Observer, Recording, attribution, breakdown_lines, figures, per_n,
                               phase_line, rates_line, time_based_rates, totals_line)

NAME = "transfer_requests"
PAYER_MODE = "each_pays_own"
PHASES = ("submit", "answer", "pay", "clear", "book")


class TransferStack(StackBase):
    """moto (recorder) + a receiver keeping every delivery + local mode with the tests' partners."""

    def __init__(self) -> None:
        self._start("hub-bench-transfer-", Receiver(keep_bodies=True), partners_doc, recorder=True)


class Cases:
    """N transfer cases driven by the partners, phase by phase."""

    def __init__(self, stack: TransferStack, observer: Observer, recording: Recording | None, n: int,
                 land_revenue: int | None, tag: str):
        from tests.test_transfer_flow import BJ_UNIT

        self.stack, self.observer, self.recording = stack, observer, recording
        self.unit = BJ_UNIT
        self.ids = [f"BENCH-{tag}{i:02d}-{uuid.uuid4().hex[:4]}" for i in range(n)]
        self.land_revenue = land_revenue
        self.partners = Partners(stack.hub.url, stack.doc, ("bj-registry", "bj-tax", "bj-fiscal", "bj-pay"))
        self.event_ids: set[str] = set()
        self.case_set = set(self.ids)

    def post(self, partner_id: str, event_type: str, data: dict[str, Any]) -> None:
        self.event_ids.add(self.partners.post(partner_id, event_type, data)["event_id"])

    def delivered(self, event_type: str, partner: str) -> list[dict[str, Any]]:
        return self.stack.receiver.find(event_type, partner, where=lambda data: data.get("case_id") in self.case_set)

    def settle(self, done: Callable[[], bool], what: str, quiet_s: float = 0.6, timeout_s: float = 120) -> None:
        """`done()`, the delivery queue empty, and no write by the hub for `quiet_s`."""
        started = time.monotonic()
        while True:
            if self.recording is not None:
                self.recording.poll()
            quiet = self.recording is None or time.monotonic() - self.recording.last_hub_write_at >= quiet_s
            if quiet and done() and self.observer.queue_empty():
                return
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{what}: not settled within {timeout_s:.0f} s\nhub log tail:\n"
                                   f"{self.stack.hub_log_tail()}")
            time.sleep(0.05)

    def orders_paid(self) -> bool:
        for case_id in self.ids:
            item = self.observer.ddb.get_item(TableName="hub-cases", ConsistentRead=True, Key={
                "pk": {"S": f"case#{case_id}"}, "sk": {"S": f"{self.unit}#record"}}).get("Item")
            orders = json.loads(item["doc"]["S"])["orders"] if item else {}
            if not orders or any(state["state"] != "paid" for state in orders.values()):
                return False
        return True

    # ----------------------------------------------------------------- the phases

    def submit(self) -> None:
        from tests.test_transfer_flow import application

        for case_id in self.ids:
            self.post("bj-registry", "application.submitted", application(case_id, PAYER_MODE, self.land_revenue))
        bills = 2 if self.land_revenue else 1
        self.settle(lambda: len(self.delivered("tax.assessment_requested", "bj-tax")) >= len(self.ids)
                    and len(self.delivered("nontax.bill_requested", "bj-fiscal")) >= bills * len(self.ids),
                    "assessment and bill requests")

    def answer(self) -> None:
        from tests.test_transfer_flow import assessment, bill_for

        for request in self.delivered("nontax.bill_requested", "bj-fiscal"):
            self.post("bj-fiscal", "nontax.bill_issued", bill_for(request["data"]))
        for request in self.delivered("tax.assessment_requested", "bj-tax"):
            self.post("bj-tax", "tax.assessed", assessment(request["data"]["case_id"]))
        self.settle(lambda: len(self.delivered("payment.order_requested", "bj-pay")) >= 2 * len(self.ids),
                    "payment orders")

    def pay(self) -> None:
        from tests.test_transfer_flow import pay

        for order in self.delivered("payment.order_requested", "bj-pay"):
            self.post("bj-pay", "payment.succeeded", pay(order["data"]))
        self.settle(self.orders_paid, "orders paid")

    def clear(self) -> None:
        from tests.test_transfer_flow import clearance

        for case_id in self.ids:
            self.post("bj-tax", "tax.cleared", clearance(case_id))
        self.settle(lambda: len(self.delivered("case.ready_to_book", "bj-registry")) >= len(self.ids),
                    "ready to book")

    def book(self) -> None:
        from tests.test_transfer_flow import NOW

        for ready in self.delivered("case.ready_to_book", "bj-registry"):
            data = ready["data"]
            self.post("bj-registry", "registration.booked", {
                "case_id": data["case_id"], "unit_code": data["unit_code"], "service": "transfer", "booked_at": NOW(),
                "certificates": [{"kind": "ownership_certificate",
                                  "number": f"京(2026)朝阳区不动产权第{abs(hash(data['case_id'])) % 10**7:07d}号"}]})
        self.settle(lambda: len(self.delivered("tax.booking_shared", "bj-tax")) >= len(self.ids), "booking shared")

    def read_each(self) -> Counter:
        """One signed read per case (as chalicelib/reads.py describes); returns the stages seen."""
        from standardwebhooks import Webhook

        stages: Counter = Counter()
        webhook = Webhook(secret_of(self.stack.doc, "bj-registry"))
        for case_id in self.ids:
            nonce = f"read_{uuid.uuid4().hex}"
            now = datetime.now(timezone.utc).replace(microsecond=0)
            status, body = http("GET", f"{self.stack.hub.url}/v1/cases/{case_id}", headers={
                "hub-partner-id": "bj-registry", "webhook-id": nonce, "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": webhook.sign(nonce, now, f"GET /v1/cases/{case_id}")}, timeout=30)
            if status != 200:
                raise RuntimeError(f"read {case_id}: HTTP {status} {body[:300]!r}")
            for case in json.loads(body)["cases"]:
                stages[case["stage"]] += 1
                if case["holds"] or case["risks"]:
                    raise RuntimeError(f"case {case_id} has holds or risks: {case['holds']} {case['risks']}")
        self.settle(lambda: True, "reads")
        return stages


def run(n: int = 10, land_revenue: int | None = 500_000) -> dict[str, Any]:
    with TransferStack() as stack:
        observer = Observer(stack)
        # Warm-up: one complete case before counting (first loads, caches, imports in the hub).
        warm = Cases(stack, observer, None, 1, land_revenue, "W")
        for phase in PHASES:
            getattr(warm, phase)()
        time.sleep(1.0)

        recording = Recording(stack.recorder_file)
        stack.moto.api("recorder/stop-recording")
        stack.moto.api("recorder/reset-recording")
        cases = Cases(stack, observer, recording, n, land_revenue, "C")
        spans, returned = counted_phases(stack.moto, recording, lambda phase: getattr(cases, phase)(),
                                         (*PHASES, "read_each"))
        stages = returned["read_each"]
        window_s = sum(spans[p][2] for p in PHASES)
        delivery_rows = observer.delivery_rows(cases.event_ids)
        deliveries = Counter((d["partner"], d["type"])
                             for d in stack.receiver.find(where=lambda data: data.get("case_id") in cases.case_set))
        repeats = stack.receiver.repeats
        hub_log = stack.hub.log_path.read_text(errors="replace")

    observer_count = sum(1 for r in recording.entries if r["key_id"] == OBSERVER_KEY)

    def span(phase: str) -> list[dict[str, Any]]:
        return hub_entries(recording, spans[phase])

    case_entries = [r for p in PHASES for r in span(p)]
    per_phase = {}
    for phase in PHASES:
        entries = span(phase)
        f = figures(entries, n)
        per_phase[phase] = {"seconds": round(spans[phase][2], 2), "writes_by_hub_code": f["writes_by_hub_code"],
                            "writes_by_event_source_emulation": f["writes_by_event_source_emulation"],
                            "reads_by_hub_code_event_driven": f["reads_by_hub_code_event_driven"],
                            "hub_code_writes_by_operation_table_and_item": f["hub_code_writes_by_operation_table_and_item"],
                            "hub_code_event_driven_reads_by_operation_and_table":
                                f["hub_code_event_driven_reads_by_operation_and_table"]}
    inbound = sum(cases.partners.posted.values())
    problems = []
    if recording.bad_lines:
        problems.append(f"{recording.bad_lines} recorder lines could not be read: counts may be short")
    case_delivery_states: Counter = Counter()
    for (state, _, _), count in delivery_rows.items():
        case_delivery_states[state] += count
    if set(case_delivery_states) - {"unroutable"} != {"delivered"}:
        problems.append(f"not every delivery was delivered: {dict(case_delivery_states)}")
    if dict(stages) != {"closed": n}:
        problems.append(f"not every case closed: {dict(stages)}")
    delivered_total = sum(deliveries.values())
    per_case = figures(case_entries, n)
    return {
        "what": f"AWS requests per complete transfer case ({PAYER_MODE}), counted at the moto endpoint by its recorder",
        "cases": n, "payer_mode": PAYER_MODE, "land_revenue_fen": land_revenue,
        "partners": {"source": stack.partners_source, "acting": ["bj-registry", "bj-tax", "bj-fiscal", "bj-pay"],
                     "receiver": "answers 204 to every delivery"},
        "inbound_events_per_case": per_n(cases.partners.posted, n),
        "http_statuses": {str(k): v for k, v in sorted(cases.partners.statuses.items())},
        "deliveries_per_case": {f"{p} {t}": round(v / n, 3) for (p, t), v in sorted(deliveries.items())},
        "delivery_states_per_case": per_n(case_delivery_states, n),
        "unroutable_dead_letters_per_case": {f"{t} → {p}": round(c / n, 3) for (st, t, p), c in sorted(
            delivery_rows.items()) if st == "unroutable"},
        "repeated_deliveries_seen": repeats,
        "counting_window_seconds": round(window_s, 2),
        "recorded_requests": len(recording.entries), "observer_requests_excluded": observer_count,
        "unparseable_recording_lines": recording.bad_lines, "recovered_joined_entries": recording.joined_entries,
        "per_case": per_case,
        "per_inbound_event": {"writes_by_hub_code": round(per_case["writes_by_hub_code"] * n / inbound, 3),
                              "writes": round(per_case["writes"] * n / inbound, 3)},
        "per_delivery": {"writes_by_hub_code": round(per_case["writes_by_hub_code"] * n / max(delivered_total, 1), 3)},
        "per_phase_per_case": per_phase,
        "time_based_reads_per_second": time_based_rates(case_entries, window_s),
        "signed_read_per_case": {**figures(span("read_each"), n), "stages_seen": dict(stages)},
        "attribution": attribution(),
        "personal_data_in_hub_log": any(x in hub_log for x in ("11010519491231002X", "110105195001010039")),
        "warnings": problems,
        "notes": [
            "counting window = the five phases (submit … book); signed reads are counted apart (signed_read_per_case)",
            "phases are lock-step over all N cases and each is settled before the next, so every request "
            "falls in the phase that caused it (time-based polling excepted)",
            "time-based reads (GetRecords, ReceiveMessage, partner-registry refresh, S3 listing) depend on "
            "how long the window lasted, not on the number of cases",
        ],
    }


def summary(result: dict[str, Any]) -> list[str]:
    pc = result["per_case"]
    lines = [
        f"transfer_requests: {result['cases']} complete {result['payer_mode']} cases, "
        f"{sum(result['inbound_events_per_case'].values()):g} inbound events and "
        f"{sum(result['deliveries_per_case'].values()):g} deliveries per case "
        f"(states {result['delivery_states_per_case']}), {result['recorded_requests']} requests recorded in "
        f"{result['counting_window_seconds']} s",
        totals_line("case", pc),
        f"  per inbound event: {result['per_inbound_event']}; per delivery: {result['per_delivery']}",
        f"  dead letters routing recorded for want of a partner (never sent), per case: "
        f"{result['unroutable_dead_letters_per_case']}",
    ]
    lines += breakdown_lines(pc, every_kind=True)
    for phase, f in result["per_phase_per_case"].items():
        lines.append(phase_line(phase, f))
    sr = result["signed_read_per_case"]
    lines.append(f"  one signed case read: writes {sr['writes_by_hub_code']} {sr['hub_code_writes_by_operation_table_and_item']}, "
                 f"event-driven reads {sr['reads_by_hub_code_event_driven']} "
                 f"{sr['hub_code_event_driven_reads_by_operation_and_table']}; stages {sr['stages_seen']}")
    lines.append(rates_line(result["time_based_reads_per_second"]))
    lines.append(f"  recorder: {result['recovered_joined_entries']} entries recovered from shared lines, "
                 f"{result['unparseable_recording_lines']} unreadable")
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--land-revenue", type=int, default=500_000,
                        help="land revenue in fen (0: none; then the obligor gets no bill)")
    args = parser.parse_args(argv)
    result = run(max(1, min(args.cases, 100)), args.land_revenue or None)
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
