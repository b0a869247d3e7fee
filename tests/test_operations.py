"""The operators' API (`/v1/ops/…`) and `hubctl` over the same functions (chalicelib/operations.py).

In-process: Chalice's test client over the real app, moto behind it, the events stream pumped by hand
(tests/test_transfer_flow.Flow), deliveries attempted against a real HTTP receiver. Each action is
checked where it lands: the hold or delivery it changed, the operator-actions record, and the audit
leaf whose hash is of that record's details (sequenced into the tree and proved with the partners'
own verifier, tools/verify_audit.py).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_partner_registry import hubctl_run as hubctl  # hubctl in-process, inside the moto mock
from tests.test_transfer_flow import BJ_UNIT, _to_orders, pay
from tests.test_utility_flow import Utilities, failed

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-operator-token-0123456789"
PERSONAL = ("张三", "李四", "11010519491231002X", "110105195001010039", "王五测试", "440305198507150013")


@pytest.fixture
def ops(hub, partners, monkeypatch, tmp_path):
    """The hub with an operator token, the partner registry seeded (the partners list reads it), and
    hubctl kept inside the moto mock."""
    import hubctl
    from chalicelib import partner_admin
    from chalicelib.partners import PartnersFile
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_OPERATOR_TOKEN", TOKEN)
    monkeypatch.setattr(hubctl, "LOCAL_STATE", tmp_path / "no-local-hub.json")
    reset_settings()
    partner_admin.seed_from_file(PartnersFile.model_validate(partners))
    return Operator(hub, partners)


class Operator(Utilities):
    def call(self, method: str, path: str, body: dict | None = None, operator: str = "ops-li",
             token: str = TOKEN) -> tuple[int, dict]:
        headers = {"hub-operator-token": token, "hub-operator": operator, "content-type": "application/json"}
        send = self.hub.http.get if method == "GET" else self.hub.http.post
        extra = {} if method == "GET" else {"body": json.dumps(body or {}).encode()}
        response = send("/v1/ops/" + path, headers=headers, **extra)
        return response.status_code, json.loads(response.body)

    def ok(self, method: str, path: str, body: dict | None = None, **kwargs) -> dict:
        status, answer = self.call(method, path, body, **kwargs)
        assert status == 200, (path, status, answer)
        return answer

    def held_case(self, case_id: str) -> dict:
        """A Beijing transfer whose payment came with a wrong total: held, nothing booked."""
        self.payer_mode, self.land_revenue = "obligee_pays_all", None
        [order] = _to_orders(self, case_id)
        self.send("bj-pay", "payment.succeeded", pay(order, total_fen=order["total_fen"] + 1))
        [hold] = [h for h in self.ok("GET", "holds")["holds"] if h["case_id"] == case_id]
        return hold


def recorded(action_id: str) -> dict:
    """The operator-actions record and its audit leaf agree: the leaf's hash is of the record's details."""
    from chalicelib import operations
    from chalicelib.audit import log
    from chalicelib.audit.leaves import canonical

    [record] = [a for a in operations.actions(limit=1000) if a["action_id"] == action_id]
    [leaf] = [json.loads(i["leaf"]["S"]) for i in log.leaves_of(action_id)]
    digest = hashlib.sha256(canonical(record["details"])).hexdigest()
    assert leaf["details_sha256"] == record["details_sha256"] == digest
    assert (leaf["operator_id"], leaf["action"], leaf["target_ref"]) == (
        record["details"]["operator_id"], record["details"]["action"], record["details"]["target_ref"])
    return record


# ------------------------------------------------------------------------------------------------
# sign-in and the console's files


def test_the_console_page_and_its_files_are_served_with_a_strict_policy(hub):
    page = hub.http.get("/console")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.body.decode() if isinstance(page.body, bytes) else page.body
    assert 'src="console/console.js"' in text and 'href="console/console.css"' in text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        response = hub.http.get(f"/console/{name}")
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(kind)
    assert hub.http.get("/console/app.py").status_code == 404
    assert hub.http.get("/console/..%2Fops_api.py").status_code == 404
    assert json.loads(hub.http.get("/console/sign-in.json").body) == {"auth": "token"}


def test_the_operator_api_wants_the_token_and_an_operator_id(ops):
    status, body = ops.call("GET", "session")
    assert (status, body) == (200, {"operator_id": "ops-li", "auth": "token"})
    for token in ("", "wrong-token-0123456789", TOKEN + "x"):
        status, body = ops.call("GET", "holds", token=token)
        assert (status, body["error"]["code"]) == (401, "operator_unauthenticated")
        assert TOKEN not in json.dumps(body)
    for operator in ("", "Ops Li", "张三", "x" * 65):
        status, body = ops.call("GET", "holds", operator=operator)
        assert (status, body["error"]["code"]) == (400, "invalid_operator")
    assert ops.call("GET", "no-such-thing")[0] == 404
    assert ops.call("POST", "holds/release", {"case_id": "X"}, token="nope")[0] == 401


def test_without_a_configured_token_nobody_signs_in(hub, monkeypatch):
    from chalicelib.settings import reset_settings

    for value in ("", "short"):
        monkeypatch.setenv("HUB_OPERATOR_TOKEN", value)
        reset_settings()
        response = hub.http.get("/v1/ops/session", headers={"hub-operator-token": value, "hub-operator": "ops-li"})
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "operator_sign_in_not_configured"


def test_cognito_mode_trusts_only_the_claims_api_gateway_verified(monkeypatch, aws_env):
    from chalicelib import ops_api
    from chalicelib.settings import reset_settings

    claims = {"cognito:username": "Ops.Wang", "sub": "5f0c6c1e-0000-4000-8000-000000000001",
              "cognito:groups": "[hub-operators other]"}
    # Token mode never reads claims: Chalice's local server decodes an unverified token into the same place.
    monkeypatch.setenv("HUB_OPERATOR_TOKEN", TOKEN)
    reset_settings()
    status, body = ops_api.answer("GET", "session", None, None, {}, None, None, {"authorizer": {"claims": claims}})
    assert (status, body["error"]["code"]) == (401, "operator_unauthenticated")

    monkeypatch.setenv("HUB_OPERATOR_AUTH", "cognito")
    monkeypatch.setenv("HUB_OPERATOR_COGNITO_DOMAIN", "hub-ops.auth.cn-north-1.amazoncognito.com")
    monkeypatch.setenv("HUB_OPERATOR_COGNITO_CLIENT_ID", "abc123client")
    reset_settings()
    status, body = ops_api.answer("GET", "session", None, None, {"hub-operator-token": TOKEN}, None, None, {})
    assert (status, body["error"]["code"]) == (401, "operator_unauthenticated")  # no verified claims: no entry
    status, body = ops_api.answer("GET", "session", None, None, {}, None, None, {"authorizer": {"claims": claims}})
    assert (status, body) == (200, {"operator_id": "ops.wang", "auth": "cognito"})
    outsider = {**claims, "cognito:groups": "readers"}
    status, body = ops_api.answer("GET", "session", None, None, {}, None, None, {"authorizer": {"claims": outsider}})
    assert (status, body["error"]["code"]) == (403, "not_an_operator")
    config = ops_api.sign_in_config()
    assert config == {"auth": "cognito", "client_id": "abc123client",
                      "authorize_url": "https://hub-ops.auth.cn-north-1.amazoncognito.com/oauth2/authorize",
                      "token_url": "https://hub-ops.auth.cn-north-1.amazoncognito.com/oauth2/token"}
    policy = ops_api.asset("index.html")[2]["Content-Security-Policy"]
    assert "connect-src 'self' https://hub-ops.auth.cn-north-1.amazoncognito.com;" in policy


# ------------------------------------------------------------------------------------------------
# a case and its holds


def test_a_case_shows_its_lanes_and_a_released_hold_books_nothing(ops, capsys):
    from chalicelib import cases

    hold = ops.held_case("OPS-HOLD-1")
    assert hold["reason"] == "total_mismatch" and hold["unit_code"] == BJ_UNIT

    [detail] = ops.ok("GET", "cases/OPS-HOLD-1")["cases"]
    assert detail["case"]["case_id"] == "OPS-HOLD-1" and detail["case"]["stage"] == "awaiting_payment"
    assert [a["partner_id"] for a in detail["agencies"]] == ["bj-registry", "bj-tax", "bj-fiscal", "bj-pay"]
    assert [a["kind"] for a in detail["agencies"]] == ["registry", "tax", "fiscal", "payment"]
    types = [(t["direction"], t["type"]) for t in detail["timeline"]]
    assert ("in", "application.submitted") in types and ("out", "payment.order_requested") in types
    assert ("in", "payment.succeeded") in types
    assert [h["hold_id"] for h in detail["holds"]] == [hold["hold_id"]]
    stages = {c["stage"]: c for c in detail["clocks"]}
    assert stages and all(c["due_ts"] > c["started_ts"] for c in stages.values())
    assert all(c["limit"]["value"] >= 1 for c in stages.values())
    text = json.dumps(detail, ensure_ascii=False)
    assert not [value for value in PERSONAL if value in text]

    # hubctl sees the same hold through the same function.
    code, listed, _ = hubctl(capsys, "holds", "list")
    assert code == 0 and [h["hold_id"] for h in listed] == [hold["hold_id"]]

    # A reason is a code: free text (it could name someone) is refused, and nothing is recorded.
    for reason in ("because 张三 called", "", None, "Reviewed"):
        status, body = ops.call("POST", "holds/release", {"case_id": "OPS-HOLD-1", "hold_id": hold["hold_id"],
                                                          "reason": reason})
        assert (status, body["error"]["code"]) == (422, "invalid_reason")
    assert ops.ok("GET", "actions")["actions"] == []

    released = ops.ok("POST", "holds/release", {"case_id": "OPS-HOLD-1", "hold_id": hold["hold_id"],
                                                "reason": "reviewed_no_booking"})
    assert released["hold"]["released"]["by"] == "ops-li"
    assert released["hold"]["released"]["reason"] == "reviewed_no_booking"
    record = recorded(released["action_id"])
    assert record["details"] == {"action": "hold.release", "operator_id": "ops-li", "reason": "reviewed_no_booking",
                                 "target_ref": f"OPS-HOLD-1#{BJ_UNIT}#hold#{hold['hold_id']}",
                                 "hold_id": hold["hold_id"], "hold_reason": "total_mismatch"}

    # Off the open list, on the released one, shown on the case; no money moved.
    assert ops.ok("GET", "holds")["holds"] == []
    [shown] = ops.ok("GET", "holds?state=released")["holds"]
    assert shown["hold_id"] == hold["hold_id"] and shown["released"]["action_id"] == released["action_id"]
    [detail] = ops.ok("GET", "cases/OPS-HOLD-1")["cases"]
    assert detail["holds"][0]["released"]["by"] == "ops-li"
    assert detail["case"]["stage"] == "awaiting_payment" and detail["case"]["orders"][0]["paid_fen"] == 0
    assert cases.ledger_entries("OPS-HOLD-1", BJ_UNIT) == []

    # Once: a second release (API or hubctl) is refused and records nothing.
    status, body = ops.call("POST", "holds/release", {"case_id": "OPS-HOLD-1", "hold_id": hold["hold_id"],
                                                      "reason": "reviewed_no_booking"})
    assert (status, body["error"]["code"]) == (409, "hold_not_open")
    code, _, err = hubctl(capsys, "holds", "release", "OPS-HOLD-1", hold["hold_id"], "--reason", "again")
    assert code == 1 and "hold_not_open" in err
    assert len(ops.ok("GET", "actions")["actions"]) == 1
    code, listed, _ = hubctl(capsys, "holds", "list", "--released")
    assert code == 0 and [h["hold_id"] for h in listed] == [hold["hold_id"]]


def test_hubctl_releases_a_hold_under_the_operator_it_names(ops, capsys):
    hold = ops.held_case("OPS-HOLD-2")
    code, answer, err = hubctl(capsys, "holds", "release", "OPS-HOLD-2", hold["hold_id"], "--reason",
                               "platform_confirmed_refund", "--operator", "ops-zhao")
    assert code == 0, err
    assert answer["hold"]["released"]["by"] == "ops-zhao" and "action_id" not in answer
    [action] = ops.ok("GET", "actions")["actions"]
    assert f"recorded in the audit log as {action['action_id']}" in err
    assert recorded(action["action_id"])["details"]["operator_id"] == "ops-zhao"
    status, body = ops.call("POST", "holds/release", {"case_id": "OPS-NOPE", "hold_id": "x", "reason": "x_y"})
    assert (status, body["error"]["code"]) == (404, "case_not_found")
    status, body = ops.call("POST", "holds/release", {"case_id": "OPS-HOLD-2", "hold_id": "nope", "reason": "x_y"})
    assert (status, body["error"]["code"]) == (404, "hold_not_found")
    code, shown, _ = hubctl(capsys, "cases", "show", "OPS-HOLD-2")
    assert code == 0 and shown[0]["holds"][0]["released"]["by"] == "ops-zhao"
    code, timeline, _ = hubctl(capsys, "cases", "timeline", "OPS-HOLD-2")
    assert code == 0 and timeline[0]["timeline"] == ops.ok("GET", "cases/OPS-HOLD-2")["cases"][0]["timeline"]
    code, _, err = hubctl(capsys, "cases", "show", "OPS-NOPE")
    assert code == 1 and "case_not_found" in err


# ------------------------------------------------------------------------------------------------
# dead letters, partner health, the audit log


def _dead_letter(ops, monkeypatch, receiver) -> str:
    """A case whose assessment request the tax bureau answers 500 to, with no retries left: a dead letter."""
    import boto3

    from chalicelib import delivery
    from chalicelib.settings import get_settings, reset_settings
    from tests.test_transfer_flow import application

    monkeypatch.setenv("HUB_RETRY_SCHEDULE", "")
    reset_settings()
    receiver.path_status["/bj-tax"] = 500
    ops.send("bj-registry", "application.submitted", application("OPS-DEAD-1", "obligee_pays_all"))
    for item in boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]:
        delivery.attempt(item["delivery_id"]["S"])  # the queue's handler, by hand
    [item] = [d for d in delivery.list_dead() if d["partner_id"] == "bj-tax"]
    return item["delivery_id"]


def _received(receiver) -> list[dict]:
    found = []
    while not receiver.requests.empty():
        found.append(receiver.requests.get_nowait())
    return found


def test_a_dead_letter_is_replayed_once_and_partner_health_shows_it(ops, monkeypatch, receiver, capsys):
    from chalicelib import delivery

    delivery_id = _dead_letter(ops, monkeypatch, receiver)
    [listed] = ops.ok("GET", "dead-letters?partner=bj-tax")["dead_letters"]
    assert listed["delivery_id"] == delivery_id and listed["case_key"] == f"OPS-DEAD-1#{BJ_UNIT}"
    assert "body" not in listed
    code, by_hubctl, _ = hubctl(capsys, "dead-letters", "list", "--partner", "bj-tax")
    assert code == 0 and [d["delivery_id"] for d in by_hubctl] == [delivery_id]

    health = {p["partner_id"]: p for p in ops.ok("GET", "partners/health")["partners"]}
    assert health["bj-tax"]["dead"] == 1 and health["bj-tax"]["kind"] == "tax"
    assert health["bj-fiscal"]["delivered"] >= 1 and health["bj-fiscal"]["dead"] == 0
    assert 0 <= health["bj-fiscal"]["latency_ms"]["p50"] <= health["bj-fiscal"]["latency_ms"]["max"]
    assert health["bj-tax"]["last_error"] == "HTTP 500"
    assert set(health) >= {p["id"] for p in ops.partners["partners"]}

    # The tax bureau is back; the operator replays from the API: the same webhook-id goes out again.
    receiver.path_status.clear()
    status, body = ops.call("POST", f"dead-letters/{delivery_id}/replay", {"reason": "Receiver back"})
    assert (status, body["error"]["code"]) == (422, "invalid_reason")
    answer = ops.ok("POST", f"dead-letters/{delivery_id}/replay", {"reason": "receiver_recovered"})
    assert answer["replayed"] is True and answer["delivery_id"] == delivery_id
    assert recorded(answer["action_id"])["details"] == {
        "action": "dead_letter.replay", "operator_id": "ops-li", "reason": "receiver_recovered",
        "target_ref": delivery_id, "partner_id": "bj-tax", "type": "tax.assessment_requested"}
    assert ops.ok("GET", f"deliveries/{delivery_id}")["state"] == "pending"
    assert delivery.attempt(delivery_id) == "delivered"
    assert ops.ok("GET", f"deliveries/{delivery_id}")["state"] == "delivered"
    assert delivery_id in {r["headers"]["webhook-id"] for r in _received(receiver) if r["status"] == 200}

    # Not dead any more: a second replay is refused (API and hubctl) and records nothing.
    status, body = ops.call("POST", f"dead-letters/{delivery_id}/replay", {"reason": "receiver_recovered"})
    assert (status, body["error"]["code"]) == (409, "not_dead")
    code, _, err = hubctl(capsys, "dead-letters", "replay", delivery_id)
    assert code == 1 and "not_dead" in err
    code, _, err = hubctl(capsys, "dead-letters", "replay", "msg_nosuchdelivery")
    assert code == 1 and "delivery_not_found" in err
    code, _, err = hubctl(capsys, "dead-letters", "replay")
    assert code == 2 and "name a delivery id or --all" in err
    assert [a["action_id"] for a in ops.ok("GET", "actions")["actions"]] == [answer["action_id"]]


def test_operator_actions_are_in_the_signed_tree_and_proved_with_the_partners_verifier(ops, monkeypatch, receiver,
                                                                                      capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import verify_audit
    finally:
        sys.path.pop(0)
    from chalicelib.audit import log

    status, body = ops.call("GET", "audit/checkpoint")
    assert (status, body["error"]["code"]) == (404, "audit_log_not_started")
    delivery_id = _dead_letter(ops, monkeypatch, receiver)
    code, answer, err = hubctl(capsys, "dead-letters", "replay", delivery_id, "--operator", "ops-qian")
    assert code == 0, err
    action_id = err.split("recorded in the audit log as ")[1].split()[0]
    for _ in range(5):  # each cycle reads the streams and integrates what is pending
        log.cycle()
    checkpoint = ops.ok("GET", "audit/checkpoint")
    code, by_hubctl, _ = hubctl(capsys, "audit", "checkpoint")
    assert code == 0 and by_hubctl == checkpoint and checkpoint["tree_size"] >= 1
    kept = verify_audit.read_checkpoint(checkpoint["checkpoint"], checkpoint["verifier_key"])

    proof = ops.ok("GET", f"audit/{action_id}")
    [leaf] = verify_audit.verify_inclusion_answer(proof, kept, ref=action_id)
    assert leaf["leaf"]["kind"] == "operator" and leaf["leaf"]["operator_id"] == "ops-qian"
    assert leaf["leaf"]["details_sha256"] == recorded(action_id)["details_sha256"]
    code, again, _ = hubctl(capsys, "audit", "prove", "--action-id", action_id)
    assert code == 0 and again == proof
    code, _, err = hubctl(capsys, "audit", "prove", "--event-id", "evt_nosuchevent")
    assert code == 1 and "leaf_not_found" in err
    code, actions, _ = hubctl(capsys, "audit", "actions")
    assert code == 0 and [a["action_id"] for a in actions] == [action_id]


def test_a_relay_shows_its_two_offices_lanes_through_api_and_hubctl(aws_env, monkeypatch, tmp_path, capsys):
    """A five-city relay (its own partners: a registry and a city office per city) read by an operator."""
    from chalice.test import Client

    import app
    import hubctl as command
    from chalicelib.settings import reset_settings
    from tests import test_relay_flow as relay_tests

    doc = relay_tests.relay_partners("http://127.0.0.1:9")
    (tmp_path / "partners.json").write_text(json.dumps(doc))
    for name, value in (("HUB_PARTNER_SOURCE", "file"), ("HUB_PARTNERS", str(tmp_path / "partners.json")),
                        ("HUB_OPERATOR_TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(command, "LOCAL_STATE", tmp_path / "no-local-hub.json")
    reset_settings()
    with Client(app.app) as client:
        relays = relay_tests.Relays(client, doc)
        relay_tests.start(relays, "110000", "440300", "RC-OPS-1")
        relays.send("sz-registry", "relay.accepted", relay_tests.accepted("RC-OPS-1"))
        operator = Operator(client, doc)
        detail = operator.ok("GET", "relays/RC-OPS-1")
        assert detail["relay"]["state"] == "accepted" and detail["relay"]["office_partner_id"] == "bj-office"
        assert [a["partner_id"] for a in detail["agencies"]] == ["sz-registry", "bj-office"]
        assert {(t["direction"], t["type"]) for t in detail["timeline"]} >= {
            ("in", "relay.collected"), ("out", "relay.requested"), ("in", "relay.accepted"), ("out", "relay.status")}
        text = json.dumps(detail, ensure_ascii=False)
        for applicant in relay_tests.APPLICANTS:
            assert applicant["name"] not in text and applicant["id_number"] not in text
        assert operator.call("GET", "relays/RC-NOPE")[1]["error"]["code"] == "relay_not_found"
        code, shown, _ = hubctl(capsys, "relays", "show", "RC-OPS-1")
        assert code == 0 and shown["timeline"] == detail["timeline"] and shown["state"] == "accepted"


# ------------------------------------------------------------------------------------------------
# utilities, lists, partners


def test_a_failed_utility_is_retried_from_the_api_and_recorded(ops, capsys):
    requests_ = ops.book("OPS-UT-1", utilities=("water",))
    ops.send("sz-water", "utility.transfer_failed", failed(requests_["water"]))
    [failure] = ops.ok("GET", "utilities")["utilities"]
    assert (failure["case_id"], failure["utility"]) == ("OPS-UT-1", "water")
    code, listed, _ = hubctl(capsys, "utilities", "list")
    assert code == 0 and listed == [failure]
    answer = ops.ok("POST", "utilities/retry", {"case_id": "OPS-UT-1", "utility": "water", "reason": "arrears_settled"})
    assert answer["attempt"] == 2 and answer["request_id"].endswith("-water-2")
    assert recorded(answer["action_id"])["details"]["attempt"] == 2
    assert ops.ok("GET", "utilities")["utilities"] == []
    status, body = ops.call("POST", "utilities/retry", {"case_id": "OPS-UT-1", "utility": "water",
                                                        "reason": "arrears_settled"})
    assert (status, body["error"]["code"]) == (409, "utility_not_failed")
    code, _, err = hubctl(capsys, "utilities", "retry", "OPS-UT-1", "--utility", "gas", "--reason", "x_y")
    assert code == 1 and "utility_not_requested" in err
    assert len(ops.ok("GET", "actions")["actions"]) == 1


def test_lists_and_partners_read_the_same_through_api_and_hubctl(ops, capsys):
    for path, argv, key in (("risks", ("risks", "list"), "risks"), ("overdue", ("overdue", "list"), "overdue"),
                            ("reconciliations", ("reconciliations", "list"), "reports")):
        code, listed, _ = hubctl(capsys, *argv)
        assert code == 0 and ops.ok("GET", path)[key] == listed
    assert ops.call("GET", "overdue?closed_on=yesterday")[1]["error"]["code"] == "invalid_day"
    assert ops.call("GET", "holds?limit=0")[1]["error"]["code"] == "invalid_limit"
    assert ops.call("GET", "holds?state=maybe")[1]["error"]["code"] == "invalid_state"
    status, body = ops.call("GET", "reconciliations?report_key=../../etc/passwd")
    assert (status, body["error"]["code"]) == (422, "invalid_report_key")
    partners_ = ops.ok("GET", "partners")["partners"]
    code, listed, _ = hubctl(capsys, "partners", "list")
    assert code == 0 and listed == partners_
    assert "whsec_" not in json.dumps(partners_)


def test_partner_admin_actions_are_recorded(ops, capsys, receiver):
    code, answer, err = hubctl(capsys, "partners", "add", "--id", "hz-tax", "--kind", "tax", "--city", "330100",
                               "--endpoint", receiver.url("hz-tax"), "--operator", "ops-sun")
    assert code == 0, err
    assert answer["secret"].startswith("whsec_") and answer["partner"]["id"] == "hz-tax"
    code, _, err = hubctl(capsys, "partners", "rotate-secret", "hz-tax", "--operator", "ops-sun")
    assert code == 0, err
    code, _, err = hubctl(capsys, "hub-secret", "rotate", "--operator", "ops-sun")
    assert code == 0, err
    actions = ops.ok("GET", "actions")["actions"]
    assert {(a["details"]["action"], a["details"]["target_ref"]) for a in actions} == {
        ("hub.rotate_signing_secret", "hub-signing-secret"), ("partner.rotate_secret", "hz-tax"),
        ("partner.add", "hz-tax")}
    assert [a["at"] for a in actions] == sorted((a["at"] for a in actions), reverse=True)  # newest first
    for action in actions:
        assert "whsec_" not in json.dumps(recorded(action["action_id"]))


# ------------------------------------------------------------------------------------------------
# hubctl --help


def _commands() -> list[tuple[str, ...]]:
    import hubctl

    found = []
    for group_action in hubctl.parser()._subparsers._group_actions:
        for group, group_parser in group_action.choices.items():
            found.append((group,))
            for command_action in group_parser._subparsers._group_actions:
                found += [(group, command) for command in command_action.choices]
    return found


def test_every_group_and_command_has_help_a_newcomer_can_follow():
    commands = _commands()
    assert {("holds", "release"), ("dead-letters", "replay"), ("utilities", "retry"), ("audit", "prove"),
            ("audit", "checkpoint"), ("cases", "timeline"), ("relays", "show"), ("partners", "health")} <= set(commands)
    top = subprocess.run([sys.executable, "hubctl.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and "a first look" in top.stdout and "/console" in top.stdout
    import hubctl

    for argv in commands:
        parser = hubctl.parser()
        for word in argv:  # walk down to the group's or command's own parser
            parser = next(a for a in parser._subparsers._group_actions).choices[word]
        text = parser.format_help()
        assert parser.description and len(parser.description) >= 10, argv
        for action in parser._actions:
            if action.dest not in ("help",) and action.option_strings and action.help is None and not action.choices:
                raise AssertionError(f"hubctl {' '.join(argv)}: {action.option_strings} has no help")
        assert "usage: hubctl " + " ".join(argv) in text
