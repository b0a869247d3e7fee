"""The audit log's state and its sequencer: pending leaves, batches, the tree head, the leaf index.

Items of the audit table (pk, sk):

    leaf#<ref>, <sub>      one leaf: its canonical JSON, who may see its proof; `pending_shard` +
                           `pending_at` (the sparse pending-index) until sequenced, then `index`
    head, head             size, root, signed checkpoint, verifier key: advanced only by a write
                           conditional on the size it was read at, so two sequencers cannot fork it
    intent, <size>         the batch to append to the tree of that size, fixed before anything is
                           written: a sequencer that dies half-way is followed by one that appends
                           the same leaves in the same order and writes the same bytes
    stream#<table>, <shard> how far the collector has read that stream shard
    lease, sequencer       which invocation is sequencing (an optimisation: the head decides)

One cycle (`cycle`): collect new leaves from the two tables' streams into pending items
(conditional puts, deterministic keys: a re-read writes nothing), then integrate up to MAX_BATCH
pending leaves as one batch: tiles and entry bundles to S3, leaf items marked with their index,
then the head with a new signed checkpoint. The schedule runs cycles every few seconds for most of
each minute (`run`); local mode runs one cycle every ~2 s.
"""
from __future__ import annotations

import hashlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from chalicelib import aws
from chalicelib.audit import leaves, note, tiles, tree
from chalicelib.audit.leaves import Leaf
from chalicelib.observability import logger, metrics
from chalicelib.settings import get_settings, on_reset

PENDING_SHARDS = 8  # spreads pending writes over several index partitions
MAX_BATCH = 4096  # leaves per batch: the intent item (~60 bytes a leaf) stays far below 400 KB
MAX_STREAM_PAGES = 50  # per shard per cycle
MAX_CYCLES = 200
INTENT_RETENTION_S = 7 * 86400
POSITION_RETENTION_S = 3 * 86400  # a stream keeps records 24 h; a shard's position outlives it
_WORKERS = 16


def _ddb() -> Any:
    return aws.client("dynamodb")


def _table() -> str:
    return get_settings().audit_table


def _put(item: dict[str, Any], condition: str, names: dict[str, str] | None = None,
         values: dict[str, Any] | None = None) -> bool:
    """PutItem if `condition` holds: False, and nothing written, when it does not."""
    extra: dict[str, Any] = {}
    if names:
        extra["ExpressionAttributeNames"] = names
    if values:
        extra["ExpressionAttributeValues"] = values
    try:
        _ddb().put_item(TableName=_table(), Item=item, ConditionExpression=condition, **extra)
        return True
    except Exception as exc:
        if aws.is_conditional_check_failure(exc):
            return False
        raise


def _is_missing(exc: Exception) -> bool:
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") in (
        "TrimmedDataAccessException", "ResourceNotFoundException")


# --------------------------------------------------------------------------------------------------
# pending leaves


def _leaf_key(ref: str, sub: str) -> dict[str, Any]:
    return {"pk": {"S": f"leaf#{ref}"}, "sk": {"S": sub}}


def put_pending(leaf: Leaf, now: float | None = None) -> bool:
    """Store a leaf to be sequenced, once: True if it is new."""
    now = time.time() if now is None else now
    shard = int.from_bytes(hashlib.sha256(f"{leaf.ref}\x1f{leaf.sub}".encode()).digest()[:2], "big") % PENDING_SHARDS
    item = {**_leaf_key(leaf.ref, leaf.sub), "leaf": {"S": leaf.entry.decode("utf-8")},
            "pending_shard": {"S": f"p{shard}"}, "pending_at": {"N": repr(now)}}
    if leaf.parties:
        item["parties"] = {"SS": sorted(set(leaf.parties))}
    if leaf.case_key:
        item["case_key"] = {"S": leaf.case_key}
    return _put(item, "attribute_not_exists(pk)")


def record_operator_action(operator_id: str, action: str, target_ref: str, details_hash: str,
                           at: float | None = None) -> str:
    """Record what an operator did (issue 7); returns the action id the leaf is found by."""
    from chalicelib import ids

    at = time.time() if at is None else at
    action_id = "opr_" + ids.event_id().removeprefix("evt_")
    put_pending(leaves.operator_leaf(action_id, operator_id, action, target_ref, details_hash, at), at)
    return action_id


# --------------------------------------------------------------------------------------------------
# collecting leaves from the streams


def _stream_sources() -> list[tuple[str, str | None, Callable[[dict[str, Any]], list[Leaf]]]]:
    s = get_settings()
    return [("events", s.events_stream_arn, leaves.from_event_record),
            ("deliveries", s.deliveries_stream_arn, leaves.from_delivery_record)]


def collect(now: float | None = None) -> int:
    """Read both streams from where the last cycle stopped; a pending item per new leaf."""
    found = 0
    for name, arn, to_leaves in _stream_sources():
        if arn:
            found += _tail(name, arn, to_leaves, now)
    return found


def _shards(arn: str) -> list[dict[str, Any]]:
    streams = aws.client("dynamodbstreams")
    shards: list[dict[str, Any]] = []
    start: str | None = None
    for _ in range(100):  # 100 shards a page
        page = streams.describe_stream(StreamArn=arn, **({"ExclusiveStartShardId": start} if start else {}))
        description = page["StreamDescription"]
        shards += description.get("Shards", [])
        start = description.get("LastEvaluatedShardId")
        if not start:
            break
    return shards


def _positions(name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for page in _ddb().get_paginator("query").paginate(
            TableName=_table(), KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"stream#{name}"}}, ConsistentRead=True):
        for item in page["Items"]:
            found[item["sk"]["S"]] = {"sequence": item.get("sequence", {}).get("S"),
                                      "done": item.get("done", {}).get("BOOL", False)}
    return found


def _tail(name: str, arn: str, to_leaves: Callable[[dict[str, Any]], list[Leaf]], now: float | None) -> int:
    streams = aws.client("dynamodbstreams")
    positions = _positions(name)
    found = 0
    for shard in _shards(arn):
        shard_id = shard["ShardId"]
        position = positions.get(shard_id, {"sequence": None, "done": False})
        if position["done"]:
            continue
        iterator = _iterator(arn, shard_id, position["sequence"])
        sequence, done = position["sequence"], False
        for _ in range(MAX_STREAM_PAGES):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            batch = [leaf for record in records for leaf in to_leaves(record)]
            found += sum(_parallel(lambda leaf: put_pending(leaf, now), batch))
            if records:
                sequence = records[-1]["dynamodb"]["SequenceNumber"]
            iterator = page.get("NextShardIterator")
            if iterator is None:
                done = True  # a closed shard, read to its end
                break
            if not records:
                break
        if (sequence, done) != (position["sequence"], position["done"]):
            item = {"pk": {"S": f"stream#{name}"}, "sk": {"S": shard_id}, "done": {"BOOL": done},
                    "expires_at": {"N": str(int(time.time()) + POSITION_RETENTION_S)}}
            if sequence:
                item["sequence"] = {"S": sequence}
            _ddb().put_item(TableName=_table(), Item=item)
    return found


def _iterator(arn: str, shard_id: str, after: str | None) -> str:
    streams = aws.client("dynamodbstreams")
    if after:
        try:
            return streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                              SequenceNumber=after)["ShardIterator"]
        except Exception as exc:
            if not _is_missing(exc):
                raise
            # The stream trimmed records this collector never read (it was stopped for over 24 h):
            # they are lost to the audit log. Loud, and carry on from what is left.
            logger.error("audit collector fell behind the stream's retention", extra={"shard": shard_id})
            metrics.add_metric(name="AuditStreamTrimmed", unit="Count", value=1)
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


def _parallel(work: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))


# --------------------------------------------------------------------------------------------------
# the head and batches


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes
    checkpoint: str
    verifier_key: str
    integrated_at: float


def read_head() -> Head | None:
    item = _ddb().get_item(TableName=_table(), Key={"pk": {"S": "head"}, "sk": {"S": "head"}},
                           ConsistentRead=True).get("Item")
    if not item:
        return None
    return Head(int(item["size"]["N"]), item["root"]["B"], item["checkpoint"]["S"], item["verifier_key"]["S"],
                float(item["integrated_at"]["N"]))


def _write_head(head: Head, previous: Head | None) -> bool:
    item = {"pk": {"S": "head"}, "sk": {"S": "head"}, "size": {"N": str(head.size)}, "root": {"B": head.root},
            "checkpoint": {"S": head.checkpoint}, "verifier_key": {"S": head.verifier_key},
            "integrated_at": {"N": repr(head.integrated_at)}}
    if previous is None:
        return _put(item, "attribute_not_exists(pk)")
    return _put(item, "#size = :seen", {"#size": "size"}, {":seen": {"N": str(previous.size)}})


def _signed_head(size: int, root: bytes, at: float) -> Head:
    key = note.log_key()
    checkpoint = key.sign(note.checkpoint_body(get_settings().audit_origin, size, root))
    return Head(size, root, checkpoint, key.verifier_key, at)


_stores: dict[str, tiles.TileStore] = {}
_stores_lock = threading.Lock()


@on_reset
def _forget_stores() -> None:
    with _stores_lock:
        _stores.clear()


def tile_store() -> tiles.TileStore:
    """The audit bucket's tiles; one cache per process (tiles are immutable)."""
    bucket = get_settings().audit_bucket
    with _stores_lock:
        if bucket not in _stores:
            _stores[bucket] = tiles.TileStore(tiles.S3Blobs(bucket))
        return _stores[bucket]


def _publish(head: Head) -> None:
    tile_store().blobs.put(tiles.CHECKPOINT_PATH, head.checkpoint.encode("utf-8"))


def _start(now: float) -> Head:
    """The empty log's checkpoint, signed once."""
    head = _signed_head(0, tree.EMPTY_ROOT, now)
    if _write_head(head, None):
        _publish(head)
        return head
    found = read_head()
    assert found is not None
    return found


def _pending_keys(limit: int) -> list[tuple[float, str, str]]:
    found: list[tuple[float, str, str]] = []
    for shard in range(PENDING_SHARDS):
        page = _ddb().query(TableName=_table(), IndexName="pending-index",
                            KeyConditionExpression="pending_shard = :shard",
                            ExpressionAttributeValues={":shard": {"S": f"p{shard}"}}, Limit=limit)
        found += [(float(i["pending_at"]["N"]), i["pk"]["S"], i["sk"]["S"]) for i in page["Items"]]
    return sorted(found)[:limit]


def _batch_get(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def get(chunk: list[tuple[str, str]]) -> list[dict[str, Any]]:
        request = {_table(): {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk], "ConsistentRead": True}}
        items: list[dict[str, Any]] = []
        for attempt in range(8):
            answer = _ddb().batch_get_item(RequestItems=request)
            items += answer["Responses"].get(_table(), [])
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(0.05 * 2 ** attempt)
        raise RuntimeError("BatchGetItem kept leaving keys unprocessed")

    for items in _parallel(get, [keys[i:i + 100] for i in range(0, len(keys), 100)]):
        for item in items:
            found[(item["pk"]["S"], item["sk"]["S"])] = item
    return found


def _batch_put(items: list[dict[str, Any]]) -> None:
    def put(chunk: list[dict[str, Any]]) -> None:
        request = {_table(): [{"PutRequest": {"Item": item}} for item in chunk]}
        for attempt in range(8):
            request = _ddb().batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(0.05 * 2 ** attempt)
        raise RuntimeError("BatchWriteItem kept leaving items unprocessed")

    _parallel(put, [items[i:i + 25] for i in range(0, len(items), 25)])


@dataclass(frozen=True)
class Intent:
    size: int
    keys: list[tuple[str, str]]
    created_at: float


def _read_intent(size: int) -> Intent | None:
    item = _ddb().get_item(TableName=_table(), Key={"pk": {"S": "intent"}, "sk": {"S": f"{size:020d}"}},
                           ConsistentRead=True).get("Item")
    if not item:
        return None
    keys = [tuple(line.split("\t", 1)) for line in item["keys"]["S"].split("\n")]
    return Intent(size, keys, float(item["created_at"]["N"]))  # type: ignore[arg-type]


def _new_intent(size: int, now: float) -> Intent | None:
    candidates = _pending_keys(MAX_BATCH)
    if not candidates:
        return None
    items = _batch_get([(pk, sk) for _, pk, sk in candidates])
    # The pending index is eventually consistent: a leaf sequenced a moment ago may still be listed.
    keys = [(pk, sk) for _, pk, sk in candidates if (pk, sk) in items and "index" not in items[(pk, sk)]]
    if not keys:
        return None
    fixed = _put({"pk": {"S": "intent"}, "sk": {"S": f"{size:020d}"}, "created_at": {"N": repr(now)},
                  "keys": {"S": "\n".join(f"{pk}\t{sk}" for pk, sk in keys)},
                  "expires_at": {"N": str(int(now) + INTENT_RETENTION_S)}}, "attribute_not_exists(pk)")
    # Another sequencer may have fixed this batch first: then append that one.
    return Intent(size, keys, now) if fixed else _read_intent(size)


def sequence_once(now: float | None = None) -> int:
    """Append one batch of pending leaves; returns how many leaves it appended."""
    now = time.time() if now is None else now
    head = read_head() or _start(now)
    intent = _read_intent(head.size) or _new_intent(head.size, now)
    if intent is None:
        return 0
    _append(head, intent)
    return len(intent.keys)


def _append(head: Head, intent: Intent) -> None:
    found = _batch_get(intent.keys)
    missing = [key for key in intent.keys if key not in found]
    if missing:
        raise RuntimeError(f"{len(missing)} leaves of the batch at {head.size} are gone")
    items = [found[key] for key in intent.keys]
    for offset, item in enumerate(items):
        if "index" in item and int(item["index"]["N"]) != head.size + offset:
            raise RuntimeError(f"leaf {item['pk']['S']} is already at index {item['index']['N']}")
    entries = [item["leaf"]["S"].encode("utf-8") for item in items]
    store = tile_store()
    writes = tiles.append(store, head.size, entries, [tree.leaf_hash(entry) for entry in entries])
    size = head.size + len(entries)
    new_head = _signed_head(size, tree.root(size, tiles.hashes_after(store, size, writes)), intent.created_at)
    _parallel(lambda path: store.blobs.put(path, writes[path]), sorted(writes))
    sequenced = []
    for offset, item in enumerate(items):
        done = {k: v for k, v in item.items() if k not in ("pending_shard", "pending_at")}
        done.update(index={"N": str(head.size + offset)}, integrated_at={"N": repr(intent.created_at)})
        sequenced.append(done)
    _batch_put(sequenced)
    if _write_head(new_head, head):
        _publish(new_head)
        metrics.add_metric(name="AuditLeavesSequenced", unit="Count", value=len(entries))
        logger.info("audit batch sequenced", extra={"from_size": head.size, "tree_size": size})


# --------------------------------------------------------------------------------------------------
# the schedule


def _lease(owner: str, until: float, now: float) -> bool:
    return _put({"pk": {"S": "lease"}, "sk": {"S": "sequencer"}, "owner": {"S": owner}, "until": {"N": repr(until)}},
                "attribute_not_exists(pk) OR #until < :now OR #owner = :owner", {"#until": "until", "#owner": "owner"},
                {":now": {"N": repr(now)}, ":owner": {"S": owner}})


def cycle(now: float | None = None) -> dict[str, int]:
    """Collect new leaves, then append batches until none is left (bounded)."""
    collected = collect(now)
    sequenced = 0
    for _ in range(MAX_CYCLES):
        appended = sequence_once(now)
        sequenced += appended
        if appended < MAX_BATCH:
            break
    return {"collected": collected, "sequenced": sequenced}


def run(remaining_ms: Callable[[], int] | None = None) -> dict[str, int]:
    """The scheduled handler: cycles every `audit_cadence_s` for up to `audit_run_s` seconds (and
    never past the function's own time limit), while holding the sequencer lease."""
    s = get_settings()
    budget = float(s.audit_run_s)
    if remaining_ms is not None:
        budget = min(budget, remaining_ms() / 1000 - 15)
    started = time.monotonic()
    owner = uuid.uuid4().hex
    totals = {"collected": 0, "sequenced": 0, "cycles": 0}
    if not _lease(owner, time.time() + max(budget, 0) + 60, time.time()):
        return totals
    try:
        for _ in range(MAX_CYCLES):
            for key, value in cycle().items():
                totals[key] += value
            totals["cycles"] += 1
            if time.monotonic() - started + s.audit_cadence_s > budget:
                break
            time.sleep(s.audit_cadence_s)
    finally:
        _lease(owner, 0.0, time.time())  # handing it back: the next invocation need not wait
    return totals


# --------------------------------------------------------------------------------------------------
# what the read endpoints need


def leaves_of(ref: str) -> list[dict[str, Any]]:
    return _ddb().query(TableName=_table(), KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": {"S": f"leaf#{ref}"}}, ConsistentRead=True)["Items"]


def entries(first: int, count: int) -> Iterable[bytes]:
    """Leaves by index, from the entry bundles of the current tree (operators, tests)."""
    head = read_head()
    size = head.size if head else 0
    store = tile_store()
    end = min(size, first + count)
    index = first
    while index < end:
        bundle, offset = divmod(index, tiles.TILE_WIDTH)
        width = tiles.tile_width(size, 0, bundle)
        chunk = store.entries(bundle, width)
        for entry in chunk[offset:offset + end - index]:
            yield entry
        index += len(chunk[offset:offset + end - index])
