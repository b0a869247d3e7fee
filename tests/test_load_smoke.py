"""bench/load.py's machinery for a few seconds at a low rate, against a real local-mode hub (a
subprocess, its own moto server, a real HTTP receiver): every request is accepted, and every accepted
event is stored, routed (each case gets exactly the deliveries flow 1 must make, all delivered and
received) and sequenced in the audit log. Correctness only: nothing here asserts a time or a rate;
the figures are the benchmark's (BENCHMARKS.md)."""
from __future__ import annotations

import pytest

from bench.load import LoadStack, Step, Traffic, catch_up, verify

pytestmark = pytest.mark.e2e
RATE, SECONDS, MAX_STEPS = 4, 3, 6


def test_mixed_partner_traffic_is_accepted_stored_routed_and_sequenced():
    with LoadStack() as stack:
        traffic = Traffic(stack.doc, stack.receiver)
        steps = []
        # Steps until the partners have answered a payment order too (answers are sent oldest first,
        # so the first cases complete within a few steps); between steps the hub catches up.
        while len(steps) < MAX_STEPS and "payment.succeeded" not in traffic.mix():
            steps.append(Step(RATE, SECONDS).run(stack.hub.port, traffic, workers=4).figures())
            assert catch_up(traffic, 60) is not None, stack.hub_log_tail()
        loss = verify(stack, traffic, drain_s=90)

    for step in steps:
        assert step["errors"] == {}, step["error_samples"]  # no 4xx, no 5xx, no timeout
        assert step["accepted"] == step["requests"] == RATE * SECONDS
    mix = traffic.mix()
    assert set(mix) == {"application.submitted", "tax.assessed", "nontax.bill_issued", "payment.succeeded"}, mix
    assert mix["application.submitted"] >= sum(mix.values()) / 2  # callbacks are half of the traffic at most
    assert loss["problems"] == {k: [] for k in loss["problems"]}
    assert loss["no_loss"]
    assert loss["accepted_events"] == sum(mix.values()) == sum(s["requests"] for s in steps)
    assert loss["deliveries_in_table"] == loss["deliveries_received"] == loss["deliveries_expected"] > 0
