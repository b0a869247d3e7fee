"""Faults, measured: AWS calls that fail and workers killed between any two steps lose nothing.

For each flow a clean run is made first; it counts the hub's AWS calls (n) and gives the outcome that
no fault may change (tests/faults.py `World.outcome`). Then the same flow runs again with one fault
at call 1, 2, …, n: a killed worker at every position (every pair of steps), and throttling, a 500 or
a timeout at every position too, in turn (position i gets kind i mod 3). After recovery (partners
retry, the stream and the queue hand their records again, the sweeper runs) the outcome must equal
the clean one: every accepted event stored once, every delivery delivered and received, the same
ledger (no split booked twice, none missing) and the same stage.

`FAULTS_STRIDE` (env, default 1) tests every k-th position only, for a quick local run; CI runs all.
The figures of a run go to build/reliability/faults.json (RELIABILITY.md cites them).
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.faults import FAULT_KINDS, Env, Fault, Injector, World, now_iso
from tests.support import Receiver, new_secret, partners_doc

SZ_UNIT = "440305001002GB00001F00010001"

STRIDE = int(os.environ.get("FAULTS_STRIDE", "1"))
REPORT = Path(__file__).resolve().parent.parent / "build" / "reliability" / "faults.json"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The test partners, a receiver and the app; moto, started afresh every few runs (`Env.begin_run`)."""
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib.settings import reset_settings

    receiver = Receiver()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("HUB_AWS_ENDPOINT", "HUB_PARTNERS", "HUB_DELIVERY_QUEUE_URL"):
            monkeypatch.delenv(name, raising=False)
        for key, value in {"AWS_DEFAULT_REGION": "cn-north-1", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                           "HUB_RETRY_SCHEDULE": "0,0,0,0,0", "HUB_SWEEP_GRACE": "0",
                           "HUB_PARTNER_SOURCE": "file"}.items():
            monkeypatch.setenv(key, value)
        try:
            with mock_aws() as mock:
                doc = partners_doc(f"http://127.0.0.1:{receiver.port}")
                doc["partners"].append({"id": "sh-office", "kind": "city_office", "city": "310000",  # for relays
                                        "secrets": [new_secret()], "mapping": "canonical",
                                        "endpoint": f"http://127.0.0.1:{receiver.port}/sh-office"})
                path = tmp_path_factory.mktemp("faults") / "partners.json"
                path.write_text(json.dumps(doc))
                monkeypatch.setenv("HUB_PARTNERS", str(path))
                import app

                with Client(app.app) as client:
                    yield Env(client, doc, receiver, mock, monkeypatch.setenv)
        finally:
            reset_settings()
            receiver.close()


# ------------------------------------------------------------------------------------ the flows

def transfer_run(world: World) -> list[tuple[str, str]]:
    """One-window transfer: submitted → assessed + billed → ordered → paid → cleared → booked."""
    from tests.test_transfer_flow import BJ_UNIT, application, assessment, bill_for, clearance, pay

    case_id = f"BJ-FAULT-{world.run_id}"
    submitted = application(case_id, "each_pays_own", 500_000)
    submitted["utilities_consented"] = []  # Beijing's utilities are not partners here
    world.post("bj-registry", "application.submitted", submitted)
    world.settle()
    for request in world.sent("nontax.bill_requested", "bj-fiscal", case_id):
        world.post("bj-fiscal", "nontax.bill_issued", bill_for(request))
    world.post("bj-tax", "tax.assessed", assessment(case_id))
    world.settle()
    for order in world.sent("payment.order_requested", "bj-pay", case_id):
        world.post("bj-pay", "payment.succeeded", pay(order))
    world.post("bj-tax", "tax.cleared", clearance(case_id))
    world.settle()
    world.post("bj-registry", "registration.booked", {
        "case_id": case_id, "unit_code": BJ_UNIT, "service": "transfer", "booked_at": now_iso(),
        "certificates": [{"kind": "ownership_certificate", "number": "京(2026)朝阳区不动产权第0099999号"}]})
    world.settle()
    return [(case_id, BJ_UNIT)]


def relay_run(world: World) -> list[str]:
    """Remote collect, local handle: Shanghai's office collects a Shenzhen unit's case with two scans;
    Shenzhen's registry accepts, receives the originals and completes."""
    from tests.test_relay_flow import PDF, PDF2, accepted, collected, completed, originals

    relay_id, registry_case = f"SH-RC-{world.run_id}", f"RC-{world.run_id}"
    scans = [world.upload("sh-office", PDF + world.run_id.encode()), world.upload("sh-office", PDF2)]
    world.post("sh-office", "relay.collected", collected("310000", SZ_UNIT, relay_id, scans))
    world.settle()
    for answer, data in (("relay.accepted", accepted(relay_id, registry_case)),
                         ("relay.originals_received", originals(relay_id, registry_case)),
                         ("relay.completed", completed(relay_id, registry_case))):
        world.post("sz-registry", answer, data)
        world.settle()
    return [relay_id]


def package_run(world: World) -> list[tuple[str, str]]:
    """带押过户, combined: the seller's loan at CMB is on record; both banks send their part with their
    borrower's consent; the hub files one application; the registry books it."""
    from tests.test_mortgage_flow import CONSENT, CONSENTS_OF, PDF2, booking, package_request, recorded_mortgage

    cmb = {"name": "招商银行股份有限公司深圳分行", "uscc": "91440101MA9W000042"}
    old_proof, package_id = f"粤(2019)深圳市不动产证明第{world.run_id}号", f"PKG-F-{world.run_id}"
    world.post("sz-registry", "restriction.recorded", recorded_mortgage(old_proof, cmb, SZ_UNIT))
    world.settle()
    for bank, role in (("sz-ccb", "new_mortgagee"), ("sz-cmb", "old_mortgagee")):
        consents = {r: world.upload(bank, CONSENT + f"{r}{world.run_id}".encode()) for r in CONSENTS_OF[role]}
        scans = [{"kind": "mortgage_contract", "title": "抵押合同", "document": world.upload(bank, PDF2)}]
        part = package_request(bank, role, consents, scans, "combined", package_id, SZ_UNIT)
        part["package"]["old_mortgage"]["proof_number"] = old_proof
        world.post(bank, "mortgage.requested", part)
        world.settle()
    [application] = [a for a in world.sent("application.requested", "sz-registry")
                     if a["request_id"] == f"PKG_{package_id}"]
    e_cert = world.upload("sz-registry", b"%PDF-1.7\n e-proof " + world.run_id.encode() + b"\n%%EOF\n")
    world.post("sz-registry", "registration.booked", booking(
        application, [f"粤(2026)深圳市不动产证明第{world.run_id}号"], [e_cert], 1, ownership=True) | {
        "case_id": f"REG-{world.run_id}"})
    world.settle()
    return [(f"PKG_{package_id}", SZ_UNIT)]


def case_stage(subject) -> str:
    from chalicelib import cases, flows
    from chalicelib.flows import relay

    if isinstance(subject, str):
        record = relay.load("relay", subject)
        return relay.state_of(record.doc) if record else "missing"
    case = cases.load(*subject)
    return flows.view(case)["stage"] if case else "missing"


FLOWS = {"transfer": transfer_run, "relay": relay_run, "package": package_run}


CHUNKS = 4  # the positions of one flow are split over this many tests (xdist spreads them)
_CLEAN: dict[str, tuple[dict, int]] = {}


def _run(env: Env, name: str, fault: Fault | None) -> tuple[dict, World]:
    run = FLOWS[name]
    env.begin_run()
    with pytest.MonkeyPatch.context() as monkeypatch:
        injector = Injector(fault=fault)
        injector.install(monkeypatch)
        world = World(env, injector, uuid.uuid4().hex[:8])
        try:
            keys = run(world)
            world.settle()  # recovery: everything the fault left behind is picked up
            injector.fault = None  # a fault that never fired must not fire while the outcome is read
            injector.run_calls = injector.calls  # the flow's own calls (reading the outcome makes more)
            return world.outcome(keys, case_stage), world
        finally:
            injector.remove()


def _clean(env: Env, name: str) -> tuple[dict, int]:
    """The outcome and AWS call count of a run with no fault (after one warm-up run)."""
    if name not in _CLEAN:
        _run(env, name, None)
        outcome, world = _run(env, name, None)
        assert outcome["posted_not_stored"] == [] and outcome["delivered_not_received"] == []
        assert outcome["accepted_twice"] == 0 and world.refused == [], world.refused
        assert world.kills == 0 and world.handler_errors == 0, (world.kills, world.handler_errors)
        assert all(state == "delivered" for _, _, state in outcome["deliveries"]), outcome["deliveries"]
        assert world.injector.run_calls > 20  # the flow really ran through AWS
        _CLEAN[name] = outcome, world.injector.run_calls
    return _CLEAN[name]


def _record(name: str, figures: dict) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    found[name] = figures
    REPORT.write_text(json.dumps(found, indent=1, sort_keys=True))


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("name", sorted(FLOWS))
def test_one_fault_at_every_step_changes_nothing(env, name, chunk):
    clean, calls = _clean(env, name)
    tried = {kind: 0 for kind in FAULT_KINDS}
    fired = {kind: 0 for kind in FAULT_KINDS}
    kills = 0
    failures = []
    unfired: list[str] = []
    for at in range(1 + chunk * STRIDE, calls + 1, STRIDE * CHUNKS):
        for kind in ("crash", ("throttle", "server_error", "timeout")[at % 3]):
            outcome, world = _run(env, name, Fault(at, kind))
            tried[kind] += 1
            fired[kind] += world.injector.fired is not None
            if world.injector.fired is None:
                unfired.append(f"{kind}@{at}/{world.injector.run_calls}")
            kills += world.kills
            if outcome != clean:
                diff = {k: (clean[k], outcome[k]) for k in clean if clean[k] != outcome[k]}
                failures.append(f"{kind}@{at} ({world.injector.fired}): {json.dumps(diff, ensure_ascii=False)[:600]}")
    _record(f"{name}-{chunk}", {"aws_calls_in_clean_run": calls, "faults_tried": tried, "faults_fired": fired,
                                "workers_killed": kills, "runs_that_differed": len(failures),
                                "events_accepted": len(clean["accepted"]), "deliveries": len(clean["deliveries"]),
                                "ledger_entries": len(clean["ledger"])})
    assert not failures, "\n".join(failures[:20])
    # A run's call count varies a little (the sweeper may find a delivery still queued), so a position
    # near the end can fall past a run's last call; nearly every position must really have been hit.
    assert fired["crash"] >= 0.8 * tried["crash"], (fired, tried, unfired)
