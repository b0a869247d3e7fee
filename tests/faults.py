"""Fault injection for the hub's flows: AWS calls that fail, and a worker killed between any two steps.

The hub reaches AWS only through `chalicelib.aws.client`; `Injector` hooks every client it hands out
(botocore's `before-call` event) and counts the hub's AWS calls, so a fault can be placed at "the
n-th call of this run". Faults:

    crash         the worker dies just before call n (so after step n-1): `WorkerKilled` is a
                  BaseException, which no `except Exception` in the hub (nor Powertools' batch
                  processor) catches: the handler is gone mid-flight, as a killed Lambda would be
    throttle      call n fails as DynamoDB/SQS/S3 throttling (after botocore's own retries)
    server_error  call n fails with a 500
    timeout       call n times out reading the answer

`World` is the hub with its partners and everything AWS would do around the handlers, run by hand
and in order: partners post signed events over the app's HTTP routes (and retry with the same
webhook-id until they get a 2xx, as the contract tells them to); the events table's DynamoDB stream
(moto's, read through its shard iterator) feeds `app.route_accepted`, and a batch that fails or dies
is handed again from its first unprocessed record; the delivery queue feeds `app.deliver`, and a
message whose handler died or reported it failed comes back (visibility timeout); `app.sweep` runs
as the schedule would. `settle()` runs all of that until nothing moves (bounded).

`outcome()` is what must not depend on a fault: the events accepted, the deliveries made and their
final states, what each receiver got (distinct webhook-ids), the ledger and each case's stage.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError

from tests.support import envelope, lambda_context, secret_of, sign_request

FAULT_KINDS = ("crash", "throttle", "server_error", "timeout")
_THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException", "sqs": "RequestThrottled",
                   "s3": "SlowDown", "secretsmanager": "ThrottlingException"}
MAX_SETTLE_ROUNDS = 40
MAX_POST_ATTEMPTS = 6


class WorkerKilled(BaseException):
    """The worker process died here (not an Exception: nothing in the hub may catch it)."""


@dataclass
class Fault:
    at: int
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}@{self.at}"


@dataclass
class Injector:
    fault: Fault | None = None
    calls: int = 0
    run_calls: int = 0
    fired: str | None = None  # "<service>.<operation>" the fault hit
    trace: list[str] = field(default_factory=list)
    _hooked: dict[int, Any] = field(default_factory=dict)

    def install(self, monkeypatch) -> None:
        """Hook every client the hub asks for until `remove` (clients outlive a run: unhook them)."""
        from chalicelib import aws

        original = aws.client

        def hooked_client(service: str) -> Any:
            client = original(service)
            if id(client) not in self._hooked:
                client.meta.events.register("before-call", self._before_call)
                self._hooked[id(client)] = client
            return client

        monkeypatch.setattr(aws, "client", hooked_client)

    def remove(self) -> None:
        for client in self._hooked.values():
            client.meta.events.unregister("before-call", self._before_call)
        self._hooked.clear()

    def _before_call(self, model: Any, **_: Any) -> None:
        self.calls += 1
        service = model.service_model.service_name
        self.trace.append(f"{service}.{model.name}")
        fault = self.fault
        if fault is None or self.fired is not None or self.calls != fault.at:
            return
        self.fired = f"{service}.{model.name}"
        if fault.kind == "crash":
            raise WorkerKilled(self.fired)
        if fault.kind == "timeout":
            raise ReadTimeoutError(endpoint_url=f"injected://{service}")
        code, status = ((_THROTTLE_CODES.get(service, "ThrottlingException"), 400) if fault.kind == "throttle"
                        else ("InternalServerError", 500))
        raise ClientError({"Error": {"Code": code, "Message": "injected fault"},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, model.name)


class Env:
    """What outlives one run: partners, a receiver and the app's test client. AWS only for a few runs:
    moto's scans and queries grow with its tables, so runs sharing one moto slow down run after run
    (a run's outcome is read by scanning the tables); every RUNS_PER_AWS runs it starts afresh
    (`begin_run`). Runs sharing it tell themselves apart by case ids."""

    RUNS_PER_AWS = 8  # a fresh moto with every resource costs about half a run

    def __init__(self, hub: Any, partners: dict, receiver: Any, mock: Any, setenv: Callable[[str, str], None]):
        self.hub = hub
        self.partners = partners
        self.receiver = receiver
        self._mock = mock
        self._setenv = setenv
        self.ddb = boto3.client("dynamodb")  # the world's own clients: never counted, never failed
        self.sqs = boto3.client("sqs")
        self.s3 = boto3.client("s3")
        self.streams = boto3.client("dynamodbstreams")
        self._runs = 0
        self.fresh_aws()

    def begin_run(self) -> None:
        if self._runs >= self.RUNS_PER_AWS:
            self.fresh_aws()
        self._runs += 1

    def fresh_aws(self) -> None:
        """Empty AWS with every resource of infra/resources.json; settings and caches renewed (clients
        are kept: moto serves any client in this process, and making one costs more than a run's step)."""
        from chalicelib.settings import forget_resources, get_settings
        from infra.local_resources import ensure_resources

        self._mock.reset()
        for key, value in ensure_resources(None, "cn-north-1").items():
            self._setenv(key, value)
        forget_resources()
        self.settings = get_settings()
        self.stream_arn = self.ddb.describe_table(TableName=self.settings.events_table)["Table"]["LatestStreamArn"]
        self.positions: dict[str, str] = {}  # shard id → last sequence number handled
        self._runs = 0
        while not self.receiver.requests.empty():  # what an earlier run's deliveries left
            self.receiver.requests.get_nowait()


class World:
    """One run of a flow: partners posting, and the AWS event sources around the handlers, by hand."""

    def __init__(self, env: Env, injector: Injector, run_id: str):
        self.env = env
        self.hub = env.hub
        self.partners = env.partners
        self.receiver = env.receiver
        self.injector = injector
        self.run_id = run_id
        self.posted: dict[str, tuple[str, str]] = {}  # webhook-id → (partner, type), answered 2xx
        self.refused: list[tuple[str, int, str]] = []
        self.received: list[dict] = []
        self.kills = 0
        self.handler_errors = 0
        self.settings = env.settings
        self._ddb, self._sqs, self._streams = env.ddb, env.sqs, env.streams
        self._stream_arn = env.stream_arn
        self._positions = env.positions

    # ------------------------------------------------------------------ partners
    def post(self, partner_id: str, event_type: str, data: dict) -> dict:
        """A partner's webhook, retried with the same webhook-id until a 2xx (the contract's rule)."""
        body = envelope(event_type, data)
        webhook_id = f"msg_{uuid.uuid4().hex}"
        for _ in range(MAX_POST_ATTEMPTS):
            headers = sign_request(secret_of(self.partners, partner_id), body, msg_id=webhook_id)
            try:
                response = self.hub.http.post(f"/v1/partners/{partner_id}/events", body=body.encode(), headers=headers)
            except WorkerKilled:
                self.kills += 1
                continue  # no answer: the partner times out and sends again
            if response.status_code >= 500:
                continue
            answer = json.loads(response.body)
            if response.status_code >= 400:
                self.refused.append((event_type, response.status_code, answer["error"]["code"]))
                return answer
            self.posted[webhook_id] = (partner_id, event_type)
            return answer
        raise AssertionError(f"{event_type} from {partner_id} never got an answer")

    def upload(self, partner_id: str, content: bytes, media_type: str = "application/pdf") -> dict:
        """A partner's document: a slot from the hub (retried like a webhook), the bytes PUT to storage,
        then S3 → EventBridge → `verify_document`, which EventBridge retries until it succeeds."""
        import hashlib

        import app
        from chalicelib import documents

        body = json.dumps({"sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
                           "media_type": media_type})
        msg_id = f"msg_{uuid.uuid4().hex}"
        slot = None
        for _ in range(MAX_POST_ATTEMPTS):
            headers = sign_request(secret_of(self.partners, partner_id), body, msg_id=msg_id)
            try:
                response = self.hub.http.post(f"/v1/partners/{partner_id}/documents", body=body.encode(),
                                              headers=headers)
            except WorkerKilled:
                self.kills += 1
                continue
            if response.status_code < 300:
                slot = json.loads(response.body)
                break
            assert response.status_code >= 500, response.body
        assert slot is not None, "no upload slot"
        bucket, key = documents.document_settings().bucket, documents.object_key(partner_id, slot["document_id"])
        put = self.env.s3.put_object(Bucket=bucket, Key=key, Body=content, ContentType=media_type)
        event = {"version": "0", "id": uuid.uuid4().hex, "detail-type": "Object Created", "source": "aws.s3",
                 "account": "123456789012", "time": now_iso(), "region": "cn-north-1", "resources": [],
                 "detail": {"bucket": {"name": bucket},
                            "object": {"key": key, "size": len(content), **({"version-id": put["VersionId"]}
                                                                            if put.get("VersionId") else {})}}}
        for _ in range(MAX_POST_ATTEMPTS):
            try:
                app.verify_document(event, lambda_context("verify_document"))
                break
            except WorkerKilled:
                self.kills += 1
            except Exception:
                self.handler_errors += 1
        return {"document_id": slot["document_id"], "sha256": hashlib.sha256(content).hexdigest(),
                "media_type": media_type, "size": len(content)}

    # ------------------------------------------------------------------ the event sources
    def _shards(self) -> list[str]:
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        return [s["ShardId"] for s in shards]

    def pump_stream(self) -> int:
        """Hand new stream records to route_accepted in order; a failed or killed batch is handed
        again from its first unprocessed record next time (ReportBatchItemFailures)."""
        import app

        handled = 0
        for shard in self._shards():
            after = self._positions.get(shard)
            kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after \
                else {"ShardIteratorType": "TRIM_HORIZON"}
            iterator = self._streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard, **kind)["ShardIterator"]
            records = self._streams.get_records(ShardIterator=iterator, Limit=10).get("Records", [])
            if not records:
                continue
            event = {"Records": [{**r, "eventSourceARN": self._stream_arn, "awsRegion": "cn-north-1"} for r in records]}
            try:
                result = app.route_accepted(event, lambda_context("route_accepted"))
            except WorkerKilled:
                self.kills += 1
                return handled + 1  # the whole batch comes again
            except Exception:  # every record failed: Powertools raises, and Lambda hands the batch again
                self.handler_errors += 1
                return handled + 1
            failures = [f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])]
            done = records
            if failures:
                first = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == failures[0])
                done = records[:first]
            if done:
                self._positions[shard] = done[-1]["dynamodb"]["SequenceNumber"]
            handled += len(records)
        return handled

    def pump_queue(self) -> int:
        """Hand delivery messages to `deliver`; a message it failed or died on comes back."""
        import app

        url = self.settings.delivery_queue_url
        got = self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        AttributeNames=["All"]).get("Messages", [])
        for message in got:
            record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                      "body": message["Body"], "attributes": message.get("Attributes", {}),
                      "messageAttributes": {}, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs",
                      "eventSourceARN": "arn:aws:sqs:cn-north-1:123456789012:hub-deliveries",
                      "awsRegion": "cn-north-1"}
            try:
                result = app.deliver({"Records": [record]}, lambda_context("deliver"))
            except WorkerKilled:
                self.kills += 1
                result = {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
            except Exception:  # the whole batch failed: the message comes back
                self.handler_errors += 1
                result = {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
            if (result or {}).get("batchItemFailures"):
                self._sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                                    VisibilityTimeout=0)
            else:
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(got)

    def sweep(self) -> None:
        import app

        try:
            app.sweep({"version": "0", "id": f"sweep-{uuid.uuid4().hex}", "detail-type": "Scheduled Event",
                       "source": "aws.events",
                       "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "cn-north-1",
                       "resources": [], "detail": {}}, lambda_context("sweep"))
        except WorkerKilled:
            self.kills += 1
        except Exception:  # a sweep that failed is simply run again next minute (counted, never hidden)
            self.handler_errors += 1

    def settle(self) -> None:
        """Run the stream, the queue and the sweeper until nothing moves."""
        quiet = 0
        for _ in range(MAX_SETTLE_ROUNDS):
            moved = self.pump_stream() + self.pump_queue()
            if moved:
                quiet = 0
                continue
            self.sweep()
            moved = self.pump_queue()
            quiet = 0 if moved else quiet + 1
            if quiet >= 2:
                break
        while not self.receiver.requests.empty():
            self.received.append(self.receiver.requests.get_nowait())

    def sequence_audit(self) -> None:
        """The audit sequencer's schedule: run until it completes a cycle (a killed or failed one is
        simply run again next time, as the schedule would)."""
        from chalicelib.audit import log

        for _ in range(MAX_POST_ATTEMPTS):
            try:
                log.cycle()
                return
            except WorkerKilled:
                self.kills += 1
            except Exception:
                self.handler_errors += 1
        raise AssertionError("the audit sequencer never completed a cycle")

    def audit_outcome(self, event_ids: set[str], delivery_ids: set[str]) -> dict:
        """Every accepted event and every final delivery of this run: exactly one leaf, sequenced, and
        its inclusion proof verifies (with the partner's stand-alone verifier) against the signed head."""
        from chalicelib.audit import log, tree
        from tools import verify_audit

        head = log.read_head()
        checkpoint = verify_audit.read_checkpoint(head.checkpoint, _verifier_key())
        source = log.tile_store().hashes_at(head.size)
        counts: dict[str, int] = {}
        unproven = 0
        for kind, refs in (("event", event_ids), ("delivery", delivery_ids)):
            for ref in sorted(refs):
                items = [i for i in log.leaves_of(ref) if "index" in i]
                counts[f"{kind} leaves: {len(items)}"] = counts.get(f"{kind} leaves: {len(items)}", 0) + 1
                for item in items:
                    index = int(item["index"]["N"])
                    proof = tree.inclusion_proof(index, head.size, source)
                    try:
                        verify_audit.verify_inclusion(index, checkpoint.size,
                                                      verify_audit.leaf_hash(item["leaf"]["S"].encode()), proof,
                                                      checkpoint.root)
                    except Exception:
                        unproven += 1
        return {"leaf_counts": dict(sorted(counts.items())), "unproven": unproven}

    # ------------------------------------------------------------------ what the partners were sent
    def sent(self, event_type: str, partner_id: str | None = None, case_id: str | None = None) -> list[dict]:
        """Bodies the hub scheduled, as the partner gets them (of this run's case, when given)."""
        items = self._scan(self.settings.deliveries_table)
        found = [json.loads(i["body"]["S"])["data"] for i in items
                 if i["type"]["S"] == event_type and i.get("body", {}).get("S")
                 and (partner_id is None or i["partner_id"]["S"] == partner_id)]
        return [d for d in found if case_id is None or d.get("case_id") == case_id]

    def _scan(self, table: str) -> list[dict]:
        items: list[dict] = []
        for page in self._ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page["Items"])
        return items

    def outcome(self, subjects: list[Any], stage: Callable[[Any], str]) -> dict:
        """What a fault must not change."""
        from chalicelib import cases

        events = [i for i in self._scan(self.settings.events_table) if i["webhook_id"]["S"] in self.posted]
        event_ids = {i["event_id"]["S"] for i in events}
        deliveries = [i for i in self._scan(self.settings.deliveries_table) if i["event_id"]["S"] in event_ids]
        got_ids = {r["headers"].get("webhook-id") for r in self.received}
        ledger = []
        stages = []
        for subject in subjects:
            if isinstance(subject, tuple):  # a case: (case id, unit code); its ledger
                # a non-tax credit names its bill's payment code, which differs from run to run
                ledger += sorted((e["debit"], ":".join(e["credit"].split(":")[:2])
                                  if e["credit"].startswith("nontax:") else e["credit"], e["amount_fen"])
                                 for e in cases.ledger_entries(*subject))
            stages.append(stage(subject))
        self.sequence_audit()
        finals = {i["delivery_id"]["S"] for i in deliveries if i["state"]["S"] in ("delivered", "dead")}
        return {
            "audit": self.audit_outcome(event_ids, finals),
            "accepted": sorted((i["partner_id"]["S"], i["type"]["S"]) for i in events),
            "accepted_twice": len(events) - len({i["dedup_key"]["S"] for i in events}),
            "posted_not_stored": sorted(set(self.posted) - {i["webhook_id"]["S"] for i in events}),
            "deliveries": sorted((i["partner_id"]["S"], i["type"]["S"], i["state"]["S"]) for i in deliveries),
            "delivered_not_received": sorted(i["delivery_id"]["S"] for i in deliveries
                                             if i["state"]["S"] == "delivered" and i["delivery_id"]["S"] not in got_ids),
            "ledger": ledger,
            "stages": stages,
        }


def _verifier_key() -> str:
    from chalicelib import audit

    return audit.verifier_key()


def now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()


def monotonic_budget(seconds: float) -> Callable[[], bool]:
    """A bound for a loop: True while the budget lasts (bounds, never a timing assertion)."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() < end
