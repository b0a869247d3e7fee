"""The audit log through the app: leaves from a real flow (Chalice test client, moto, a real HTTP
receiver), batches sequenced from the two tables' streams, the signed read endpoints, crash and
concurrency safety of the sequencer, operator actions, and a partner verifying offline with
tools/verify_audit.py against a checkpoint fetched over HTTP from local mode."""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from tests.support import envelope, lambda_context, secret_of, sign_request
from tests.test_audit_tree import _reference_root, verifier
from tests.test_personal_data import ID_A, ID_B, NAME, OTHER_NAME, PERSONAL, PHONE, personal_application

REPO = Path(__file__).resolve().parents[1]
VERIFIER = REPO / "tools" / "verify_audit.py"


class Audited:
    """Partners posting signed events and reading the audit log; the stream, queue and schedule
    handlers run by hand (the test client runs none of them)."""

    def __init__(self, hub, partners):
        self.hub = hub
        self.partners = partners
        self.routed: set[str] = set()

    def post(self, partner_id: str, event_type: str, data: dict) -> tuple[dict, str, str]:
        """Returns the 202 answer, the raw body and the webhook-id the partner chose."""
        body = envelope(event_type, data)
        webhook_id = f"msg_{PHONE}_{uuid.uuid4().hex}"  # a partner's free text, with a phone number in it
        response = self.hub.http.post(f"/v1/partners/{partner_id}/events", body=body.encode(),
                                      headers=sign_request(secret_of(self.partners, partner_id), body, webhook_id))
        assert response.status_code == 202, response.body
        return json.loads(response.body), body, webhook_id

    def route(self) -> None:
        import app
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().events_table)["Items"]
        for item in sorted((i for i in items if i["event_id"]["S"] not in self.routed), key=lambda i: i["event_id"]["S"]):
            self.routed.add(item["event_id"]["S"])
            record = {"eventID": item["event_id"]["S"], "eventName": "INSERT", "eventVersion": "1.1",
                      "eventSource": "aws:dynamodb", "awsRegion": "cn-north-1",
                      "eventSourceARN": "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/x",
                      "dynamodb": {"Keys": {"dedup_key": item["dedup_key"]}, "NewImage": item,
                                   "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}}
            assert app.route_accepted({"Records": [record]}, lambda_context("route_accepted")) == {"batchItemFailures": []}

    def deliveries(self, state: str | None = None) -> list[dict]:
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table)["Items"]
        return [i for i in items if state is None or i["state"]["S"] == state]

    def deliver(self) -> list[str]:
        from chalicelib import delivery

        return [delivery.attempt(i["delivery_id"]["S"], now=time.time() + 10) for i in self.deliveries("pending")]

    def sequence(self) -> int:
        """Run the scheduled handler until a cycle finds nothing new (as local mode does every ~2 s)."""
        import app

        total = 0
        for _ in range(10):
            done = app.audit_sequence({"version": "0", "id": "1", "detail-type": "Scheduled Event",
                                       "source": "aws.events", "account": "000000000000", "time": "2026-11-23T00:00:00Z",
                                       "region": "cn-north-1", "resources": [], "detail": {}},
                                      lambda_context("audit_sequence"))
            total += done["sequenced"]
            if not done["collected"] and not done["sequenced"]:
                return total
        raise AssertionError("the sequencer kept finding new leaves")

    def read(self, partner_id: str, path: str, nonce: str | None = None) -> tuple[int, dict]:
        nonce = nonce or f"read_{uuid.uuid4().hex}"
        stamp = int(time.time())
        signature = Webhook(secret_of(self.partners, partner_id)).sign(
            nonce, datetime.fromtimestamp(stamp, tz=timezone.utc), f"GET {path}")
        response = self.hub.http.get(path, headers={"hub-partner-id": partner_id, "webhook-id": nonce,
                                                    "webhook-timestamp": str(stamp), "webhook-signature": signature})
        return response.status_code, json.loads(response.body)


@pytest.fixture
def audited(hub, partners, monkeypatch):
    monkeypatch.setenv("HUB_AUDIT_RUN_SECONDS", "0")
    from chalicelib.settings import reset_settings

    reset_settings()
    return Audited(hub, partners)


def _leaves() -> list[dict]:
    from chalicelib.audit import log

    head = log.read_head()
    return [json.loads(entry) for entry in log.entries(0, head.size)]


def _everything_the_log_stores() -> str:
    """Every leaf, tile, bundle and checkpoint object, and every item of the audit table, as text."""
    from chalicelib.settings import get_settings

    s = get_settings()
    s3 = boto3.client("s3")
    parts = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s.audit_bucket):
        for obj in page.get("Contents", []):
            parts.append(s3.get_object(Bucket=s.audit_bucket, Key=obj["Key"])["Body"].read().decode("utf-8", "replace"))
    items = boto3.client("dynamodb").scan(TableName=s.audit_table)["Items"]
    parts.append(json.dumps(items, ensure_ascii=False, default=str))
    return "\n".join(parts)


def _run_flow(audited: Audited, receiver) -> dict:
    """An application with personal data; its deliveries, one of them dead-lettered and replayed."""
    from chalicelib import delivery

    answer, body, webhook_id = audited.post("sz-registry", "application.submitted", personal_application())
    audited.route()
    pending = audited.deliveries("pending")
    assert len(pending) >= 2
    first = pending[0]["delivery_id"]["S"]
    receiver.path_status[f"/{pending[0]['partner_id']['S']}"] = 500
    from chalicelib.settings import get_settings

    waits = len(get_settings().retry_schedule)
    for attempt in range(waits + 1):  # the whole retry schedule, then the dead letter
        outcome = delivery.attempt(first, now=time.time() + 10 ** 6 * (attempt + 1))
    assert outcome == "dead"
    receiver.path_status.clear()
    assert audited.deliver().count("delivered") == len(pending) - 1
    assert delivery.replay(first) and delivery.attempt(first, now=time.time() + 10) == "delivered"
    return {"event_id": answer["event_id"], "body": body, "webhook_id": webhook_id, "replayed": first,
            "deliveries": [p["delivery_id"]["S"] for p in pending]}


def test_a_real_flow_is_logged_with_no_personal_data(audited, receiver):
    from chalicelib import audit
    from chalicelib.audit import log

    flow = _run_flow(audited, receiver)
    assert audited.sequence() >= 1 + len(flow["deliveries"]) + 1
    leaves = _leaves()

    [event] = [leaf for leaf in leaves if leaf["kind"] == "event"]
    assert event == {"v": 1, "kind": "event", "event_id": flow["event_id"], "type": "application.submitted",
                     "partner_id": "sz-registry", "payload_sha256": hashlib.sha256(flow["body"].encode()).hexdigest(),
                     "received_at": event["received_at"]}
    outcomes = {(leaf["delivery_id"], leaf["outcome"], leaf["replay"]) for leaf in leaves if leaf["kind"] == "delivery"}
    assert {(d, "delivered", 0) for d in flow["deliveries"] if d != flow["replayed"]} <= outcomes
    assert {(flow["replayed"], "dead", 0), (flow["replayed"], "delivered", 1)} <= outcomes
    bodies = {i["delivery_id"]["S"]: i["body"]["S"] for i in audited.deliveries()}
    for leaf in leaves:
        if leaf["kind"] == "delivery":
            assert leaf["payload_sha256"] == hashlib.sha256(bodies[leaf["delivery_id"]].encode()).hexdigest()
            assert leaf["event_id"] == flow["event_id"]
    # every fact once: a second pass over the streams finds nothing new
    assert len({json.dumps(leaf, sort_keys=True) for leaf in leaves}) == len(leaves)
    assert log.cycle() == {"collected": 0, "sequenced": 0}

    stored = _everything_the_log_stores()
    assert flow["event_id"] in stored and flow["replayed"] in stored  # the scan sees the leaves
    assert PERSONAL and not [value for value in PERSONAL if value in stored]
    assert flow["webhook_id"] not in stored

    head = log.read_head()
    entries = [json.dumps(leaf, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() for leaf in leaves]
    assert head.root == _reference_root(entries)
    assert head.verifier_key == audit.verifier_key()
    assert verifier.read_checkpoint(head.checkpoint, audit.verifier_key()) == (
        "registration-hub.example/audit", len(leaves), head.root)


def test_reads_give_proofs_that_verify_to_those_taking_part(audited, receiver):
    flow = _run_flow(audited, receiver)
    audited.sequence()

    status, kept = audited.read("bj-registry", "/v1/audit/checkpoint")  # any partner may read checkpoints
    assert status == 200
    vkey = kept["verifier_key"]
    old = verifier.read_checkpoint(kept["checkpoint"], vkey)
    assert (old.size, base64.b64encode(old.root).decode()) == (kept["tree_size"], kept["root_hash"])

    ref = flow["event_id"]
    for reader in ("sz-registry", "sz-tax", "sz-fiscal"):  # the sender, and the case's participants
        status, answer = audited.read(reader, f"/v1/audit/inclusion/{ref}")
        assert status == 200, answer
        [leaf] = verifier.verify_inclusion_answer(answer, old, ref=ref,
                                                  payload_sha256=hashlib.sha256(flow["body"].encode()).hexdigest())
        assert leaf["leaf"]["kind"] == "event"
    for stranger, unknown in (("bj-registry", ref), ("sz-registry", "evt_nosuchevent")):
        status, answer = audited.read(stranger, f"/v1/audit/inclusion/{unknown}")
        assert (status, answer["error"]["code"]) == (404, "leaf_not_found")

    target = next(i["partner_id"]["S"] for i in audited.deliveries() if i["delivery_id"]["S"] == flow["replayed"])
    status, answer = audited.read(target, f"/v1/audit/inclusion/{flow['replayed']}")
    assert status == 200
    assert [x["leaf"]["outcome"] for x in verifier.verify_inclusion_answer(answer, old, ref=flow["replayed"])] == [
        "dead", "delivered"]

    # the log grows; the old checkpoint still proves the old leaves, and the new one extends it
    audited.post("sz-registry", "application.submitted", personal_application(case_id="SZ-2026-000999"))
    audited.route()
    audited.deliver()
    audited.sequence()
    status, fresh = audited.read("sz-tax", "/v1/audit/checkpoint")
    new = verifier.read_checkpoint(fresh["checkpoint"], vkey)
    assert new.size > old.size
    status, answer = audited.read("sz-registry", f"/v1/audit/inclusion/{ref}/{old.size}")
    assert status == 200 and answer["checkpoint"] is None
    verifier.verify_inclusion_answer(answer, old, ref=ref)
    status, answer = audited.read("sz-registry", f"/v1/audit/consistency/{old.size}/{new.size}")
    assert status == 200 and answer["checkpoint"] == fresh["checkpoint"]
    verifier.verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(p) for p in answer["proof"]])
    with pytest.raises(verifier.VerificationError):
        verifier.verify_consistency(old.size, new.size, new.root, old.root, [base64.b64decode(p) for p in answer["proof"]])

    for path, status_, code in ((f"/v1/audit/inclusion/{ref}/abc", 400, "invalid_tree_size"),
                                (f"/v1/audit/inclusion/{ref}/0", 422, "tree_size_out_of_range"),
                                (f"/v1/audit/inclusion/{ref}/{new.size + 1}", 422, "tree_size_out_of_range"),
                                (f"/v1/audit/consistency/{new.size}/{old.size}", 422, "tree_size_out_of_range")):
        got = audited.read("sz-registry", path)
        assert (got[0], got[1]["error"]["code"]) == (status_, code), path


def test_reads_are_signed_and_cannot_be_replayed(audited):
    audited.sequence()
    assert audited.hub.http.get("/v1/audit/checkpoint").status_code == 400  # no partner, no signature
    assert audited.read("sz-registry", "/v1/audit/checkpoint", nonce="read_once")[0] == 200
    status, answer = audited.read("sz-registry", "/v1/audit/checkpoint", nonce="read_once")
    assert status == 401
    stamp = int(time.time())
    signature = Webhook(secret_of(audited.partners, "sz-registry")).sign(
        "read_other", datetime.fromtimestamp(stamp, tz=timezone.utc), "GET /v1/audit/consistency/0/0")
    response = audited.hub.http.get("/v1/audit/checkpoint", headers={
        "hub-partner-id": "sz-registry", "webhook-id": "read_other", "webhook-timestamp": str(stamp),
        "webhook-signature": signature})
    assert response.status_code == 401  # signed for another path


def test_a_batch_cut_short_is_completed_with_the_same_bytes(audited, monkeypatch):
    from chalicelib.audit import log
    from chalicelib.settings import get_settings

    for n in range(3):
        audited.post("sz-registry", "application.submitted", personal_application(case_id=f"SZ-2026-00010{n}"))
    assert log.collect() == 3

    def crash(items):
        raise RuntimeError("the sequencer died after writing its tiles")

    put = log._batch_put
    monkeypatch.setattr(log, "_batch_put", crash)
    with pytest.raises(RuntimeError):
        log.sequence_once()
    monkeypatch.setattr(log, "_batch_put", put)
    s3, bucket = boto3.client("s3"), get_settings().audit_bucket
    written = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
               for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"] != "checkpoint"}
    assert log.read_head().size == 0 and any(k.startswith("tile/0/") for k in written)

    audited.post("sz-registry", "application.submitted", personal_application(case_id="SZ-2026-000200"))
    assert log.collect() == 1
    assert log.sequence_once() == 3  # the batch fixed before the crash, not the leaf that came later
    assert log.read_head().size == 3
    for key, data in written.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
    assert log.sequence_once() == 1 and log.sequence_once() == 0
    events = [leaf["event_id"] for leaf in _leaves()]
    assert len(events) == len(set(events)) == 4


def test_two_sequencers_cannot_fork_the_tree(audited):
    from chalicelib.audit import log

    audited.sequence()
    for n in range(2):
        audited.post("sz-registry", "application.submitted", personal_application(case_id=f"SZ-2026-00030{n}"))
    log.collect()
    stale = log.read_head()
    first = log._new_intent(stale.size, time.time())
    second = log._new_intent(stale.size, time.time() + 5)  # a second sequencer finds the batch fixed
    assert second == first
    log._append(stale, first)
    after = log.read_head()
    assert after.size == stale.size + 2
    log._append(stale, first)  # the slow one finishes the same batch: same bytes, the head stays
    assert log.read_head() == after
    assert not log._write_head(log._signed_head(stale.size + 1, after.root, time.time()), stale)
    assert log.read_head() == after


def test_collecting_again_from_the_start_adds_nothing(audited):
    from chalicelib.audit import log
    from chalicelib.settings import get_settings

    audited.post("sz-registry", "application.submitted", personal_application())
    audited.sequence()
    size = log.read_head().size
    ddb = boto3.client("dynamodb")
    for name in ("events", "deliveries"):  # the collector forgets where it was
        for item in ddb.query(TableName=get_settings().audit_table, KeyConditionExpression="pk = :pk",
                              ExpressionAttributeValues={":pk": {"S": f"stream#{name}"}})["Items"]:
            ddb.delete_item(TableName=get_settings().audit_table, Key={"pk": item["pk"], "sk": item["sk"]})
    assert log.collect() == 0 and log.sequence_once() == 0
    assert log.read_head().size == size


def test_operator_actions_are_recorded_without_personal_data(audited):
    from chalicelib import audit
    from chalicelib.errors import HubError

    details = hashlib.sha256(b'{"reason":"partner asked"}').hexdigest()
    action_id = audit.record_operator_action("ops-7", "dead_letter.replay", "msg_abc", details)
    audited.sequence()
    [leaf] = [leaf for leaf in _leaves() if leaf["kind"] == "operator"]
    assert leaf == {"v": 1, "kind": "operator", "action_id": action_id, "operator_id": "ops-7",
                    "action": "dead_letter.replay", "target_ref": "msg_abc", "details_sha256": details,
                    "at": leaf["at"]}
    for bad in ({"target_ref": f"case:{ID_A}"}, {"target_ref": f"x-{PHONE}"}, {"operator_id": "zhang.san@example.com"},
                {"operator_id": NAME}, {"details_hash": "not-a-hash"}, {"target_ref": ID_B}):
        args = {"operator_id": "ops-7", "action": "case.close", "target_ref": "SZ-2026-000123", "details_hash": details,
                **bad}
        with pytest.raises(HubError) as refused:
            audit.record_operator_action(**args)
        assert refused.value.status == 422 and not any(v in json.dumps(refused.value.body(), ensure_ascii=False)
                                                       for v in PERSONAL + (OTHER_NAME,))
    # a unit code is a property's code, not a person's: it may be named
    audit.record_operator_action("ops-7", "case.close", "SZ-2026-000123#440305001001GB00001F00010001", details)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40), st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_an_event_leaf_holds_nothing_of_the_data(text, phone):
    from chalicelib.audit import leaves

    data = {"parties": [{"name": text, "id_number": ID_A, "phone": phone}], "note": text}
    image = {"dedup_key": {"S": f"sz-registry#{text}"}, "event_id": {"S": "evt_0123456789"},
             "partner_id": {"S": "sz-registry"}, "webhook_id": {"S": text}, "type": {"S": "application.submitted"},
             "timestamp": {"S": "2026-11-23T09:30:00+08:00"}, "data": {"S": json.dumps(data, ensure_ascii=False)},
             "payload_sha256": {"S": "0" * 64}, "received_at": {"N": "1795000000.5"}, "answer": {"S": "{}"}}
    [leaf] = leaves.from_event_record({"eventName": "INSERT", "dynamodb": {"NewImage": image}})
    # the same leaf whatever the data and the partner's webhook-id say
    assert leaf.body == {"v": 1, "kind": "event", "event_id": "evt_0123456789", "type": "application.submitted",
                         "partner_id": "sz-registry", "payload_sha256": "0" * 64,
                         "received_at": "2026-11-18T11:06:40.500Z"}
    assert ID_A not in leaf.entry.decode() and phone not in leaf.entry.decode()


def test_the_verifier_needs_only_the_standard_library_and_cryptography():
    tree_ = ast.parse(VERIFIER.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree_) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree_) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


# --- a partner, offline, against local mode ------------------------------------------------------

def _signed_get(url: str, partner_id: str, secret: str, path: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    nonce, now = f"read_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    request = urllib.request.Request(url + path, headers={
        "hub-partner-id": partner_id, "webhook-id": nonce, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(nonce, now, f"GET {path}")})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _verify(*args: str) -> subprocess.CompletedProcess:
    # -I: the partner's own Python, nothing of the hub on the path
    return subprocess.run([sys.executable, "-I", str(VERIFIER), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_a_partner_verifies_offline_against_a_checkpoint_from_local_mode(tmp_path):
    """`make run` as it comes (embedded moto, built-in partners): the README's signed request, then the
    README's audit example as written, then tampering, forging and a consistency proof."""
    import re

    from tests.support import free_port
    from tests.test_e2e import LocalHub

    hub = LocalHub(tmp_path, {"HUB_SINK_PORT": str(free_port())},
                   drop=("HUB_PARTNERS", "HUB_AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    try:
        dev = json.loads((REPO / "localmode" / "dev-partners.json").read_text())
        secret = {p["id"]: p["secrets"][0] for p in dev["partners"]}
        env = {**hub.env, "HUB_PORT": str(hub.port)}
        readme = (REPO / "README.md").read_text()
        request = readme.split("<!-- readme-example:start -->")[1].split("<!-- readme-example:end -->")[0]
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", request.split("```sh", 1)[1].rsplit("```", 1)[0]],
                              cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        ref = json.loads(done.stdout)["event_id"]
        body = re.search(r"^BODY='(.*)'$", request, re.M).group(1)

        deadline = time.monotonic() + 60
        while True:  # sequenced within a few seconds
            status, proof = _signed_get(hub.url, "sz-registry", secret["sz-registry"], f"/v1/audit/inclusion/{ref}")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200, proof

        example = readme.split("<!-- readme-audit-example:start -->")[1].split("<!-- readme-audit-example:end -->")[0]
        script = example.split("```sh", 1)[1].rsplit("```", 1)[0].replace("evt_…", ref)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, capture_output=True, text=True,
                              timeout=60, env={**env, "BODY": body})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["leaves"][0]["leaf"]["event_id"] == ref

        status, checkpoint = _signed_get(hub.url, "sz-registry", secret["sz-registry"], "/v1/audit/checkpoint")
        assert status == 200
        status, proof = _signed_get(hub.url, "sz-registry", secret["sz-registry"],
                                    f"/v1/audit/inclusion/{ref}/{checkpoint['tree_size']}")
        assert status == 200
        vkey = checkpoint["verifier_key"]
        (tmp_path / "kept.txt").write_text(checkpoint["checkpoint"], encoding="utf-8", newline="")
        (tmp_path / "proof.json").write_text(json.dumps(proof))
        done = _verify("checkpoint", "--key", vkey, "--checkpoint", str(tmp_path / "kept.txt"))
        assert done.returncode == 0, done.stderr

        tampered = json.loads(json.dumps(proof))
        tampered["leaves"][0]["leaf"] = tampered["leaves"][0]["leaf"].replace("sz-registry", "sz-registrx")
        (tmp_path / "tampered.json").write_text(json.dumps(tampered))
        done = _verify("inclusion", "--key", vkey, "--checkpoint", str(tmp_path / "kept.txt"),
                       "--proof", str(tmp_path / "tampered.json"))
        assert done.returncode == 1 and "NOT VERIFIED" in done.stderr
        done = _verify("inclusion", "--key", vkey, "--checkpoint", str(tmp_path / "kept.txt"),
                       "--proof", str(tmp_path / "proof.json"), "--payload-sha256", "0" * 64)
        assert done.returncode == 1  # a leaf of another payload
        size = checkpoint["tree_size"]
        forged = checkpoint["checkpoint"].replace(f"\n{size}\n", f"\n{size + 1}\n")
        (tmp_path / "forged.txt").write_text(forged, encoding="utf-8", newline="")
        assert _verify("checkpoint", "--key", vkey, "--checkpoint", str(tmp_path / "forged.txt")).returncode == 1

        # later: a newer checkpoint, and the proof that it extends the one kept
        data = json.loads(body)["data"]
        status, _ = hub.post_event("sz-registry", secret["sz-registry"], "application.submitted",
                                   {**data, "case_id": "SZ-2026-000777"})
        assert status == 202
        deadline = time.monotonic() + 60
        while True:
            status, newer = _signed_get(hub.url, "sz-tax", secret["sz-tax"], "/v1/audit/checkpoint")
            if newer.get("tree_size", 0) > size or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert newer["tree_size"] > size
        status, consistency = _signed_get(hub.url, "sz-tax", secret["sz-tax"],
                                          f"/v1/audit/consistency/{size}/{newer['tree_size']}")
        assert status == 200
        (tmp_path / "newer.json").write_text(json.dumps(newer))
        (tmp_path / "consistency.json").write_text(json.dumps(consistency))
        done = _verify("consistency", "--key", vkey, "--old", str(tmp_path / "kept.txt"),
                       "--new", str(tmp_path / "newer.json"), "--proof", str(tmp_path / "consistency.json"))
        assert done.returncode == 0, done.stderr
        done = _verify("consistency", "--key", vkey, "--old", str(tmp_path / "newer.json"),
                       "--new", str(tmp_path / "kept.txt"), "--proof", str(tmp_path / "consistency.json"))
        assert done.returncode == 1
        log_text = hub.log.read_text()
        assert "11010519491231002X" not in log_text
    finally:
        assert hub.stop() == 0
