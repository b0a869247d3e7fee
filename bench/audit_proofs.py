"""Audit proofs on a log of a million leaves: how long an inclusion or consistency proof takes, as a
ratio to a floor measured in the same run (one SHA-256 of a leaf; a dict lookup for scale).

The tree is built the way the sequencer builds it (`tiles.append`, batches of 4,096 leaf entries of
the hub's leaf format, ~230 bytes each), into an in-memory blob store, so the figure is the proof
computation itself: tile lookups and hashing, not S3 latency. Two cases:
* warm: one TileStore for all proofs, as in a Lambda container that has answered before (its cache
  of parsed tiles fills as proofs are made);
* cold: a fresh TileStore for every proof (every tile parsed and its inner hashes computed anew),
  an upper bound for a container's first proof, apart from the few S3 GETs it then makes.
Times are the thread's CPU time (the proofs do no I/O here), so the shared machine's pauses do not
count. Each round measures the floor, then the proofs, alternating; medians over rounds. Every loop
is bounded by its count.

    .venv/bin/python -m bench.audit_proofs [--leaves 1000000] [--proofs 2000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import hashlib
import random
import time
from typing import Any

from bench.common import REPO, log, median, percentile, publish_result

NAME = "audit_proofs"
BATCH = 4096


def _entry(i: int) -> bytes:
    from chalicelib.audit import leaves

    return leaves.canonical({"v": 1, "kind": "event", "event_id": f"evt_{i:026d}", "type": "application.submitted",
                             "partner_id": "sz-registry", "payload_sha256": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                             "received_at": "2026-11-23T01:30:00.123Z"})


def build(leaves: int) -> tuple[Any, float]:
    from chalicelib.audit import tiles, tree

    blobs = tiles.MemoryBlobs()
    store = tiles.TileStore(blobs, cache_tiles=64)  # building reads only the right edge
    started = time.perf_counter()
    size = 0
    while size < leaves:
        batch = [_entry(i) for i in range(size, min(leaves, size + BATCH))]
        for path, data in tiles.append(store, size, batch, [tree.leaf_hash(e) for e in batch]).items():
            blobs.put(path, data)
        size += len(batch)
    return blobs, time.perf_counter() - started


def _per_op(work, count: int) -> list[float]:
    """Seconds of this thread's CPU per call: the work is CPU only (tiles in memory), and the shared
    machine's descheduling pauses (tens of ms) would otherwise make the tail a figure of the machine."""
    times = []
    for i in range(count):
        t0 = time.thread_time()
        work(i)
        times.append(time.thread_time() - t0)
    return times


def _floor(work, count: int) -> float:
    """Seconds per call of a sub-microsecond operation: timed over the whole loop, not per call."""
    t0 = time.thread_time()
    for i in range(count):
        work(i)
    return (time.thread_time() - t0) / count


def run(leaves: int = 1_000_000, proofs: int = 2000, rounds: int = 5) -> dict[str, Any]:
    from chalicelib.audit import tiles, tree

    log(f"building a tree of {leaves:,} leaves …")
    blobs, build_s = build(leaves)
    warm_store = tiles.TileStore(blobs, cache_tiles=8192)
    rng = random.Random(20261123)
    sample = _entry(12345)
    lookup = {f"evt_{i}": i for i in range(10_000)}
    per_round = []
    for r in range(rounds):
        indexes = [rng.randrange(leaves) for _ in range(proofs)]
        pairs = [tuple(sorted((rng.randrange(1, leaves + 1), rng.randrange(1, leaves + 1)))) for _ in range(proofs)]
        floor = _floor(lambda i: tree.leaf_hash(sample), proofs * 50)
        dict_floor = _floor(lambda i: lookup.get(f"evt_{i % 10_000}"), proofs * 50)
        warm = _per_op(lambda i: tree.inclusion_proof(indexes[i], leaves, warm_store.hashes_at(leaves)), proofs)
        consistency = _per_op(lambda i: tree.consistency_proof(pairs[i][0], pairs[i][1], warm_store.hashes_at(leaves)),
                              proofs)
        cold_count = max(1, proofs // 10)
        cold = _per_op(lambda i: tree.inclusion_proof(indexes[i], leaves, tiles.TileStore(blobs).hashes_at(leaves)),
                       cold_count)
        per_round.append({
            "round": r + 1, "floor_sha256_us": floor * 1e6, "floor_dict_us": dict_floor * 1e6,
            "inclusion_warm_us": {"p50": median(warm) * 1e6, "p99": percentile(warm, 99) * 1e6},
            "consistency_warm_us": {"p50": median(consistency) * 1e6, "p99": percentile(consistency, 99) * 1e6},
            "inclusion_cold_us": {"p50": median(cold) * 1e6, "p99": percentile(cold, 99) * 1e6},
            "ratio_inclusion_warm_p50": median(warm) / floor, "ratio_inclusion_warm_p99": percentile(warm, 99) / floor,
            "ratio_consistency_warm_p50": median(consistency) / floor,
            "ratio_inclusion_cold_p50": median(cold) / floor,
        })
        log(f"round {r + 1}: sha256 {floor * 1e6:.2f} µs, inclusion warm p50 {median(warm) * 1e6:.0f} µs, "
            f"cold p50 {median(cold) * 1e6:.0f} µs")
    # correctness of what was timed: one proof of each kind verifies with the partner's verifier
    verifier = _verifier()
    root = tree.root(leaves, warm_store.hashes_at(leaves))
    index = leaves // 3
    verifier.verify_inclusion(index, leaves, tree.leaf_hash(_entry(index)),
                              tree.inclusion_proof(index, leaves, warm_store.hashes_at(leaves)), root)
    old = leaves // 2 + 1
    verifier.verify_consistency(old, leaves, tree.root(old, warm_store.hashes_at(leaves)), root,
                                tree.consistency_proof(old, leaves, warm_store.hashes_at(leaves)))

    def mid(key: str, sub: str | None = None) -> float:
        return median([(r[key][sub] if sub else r[key]) for r in per_round])

    return {"leaves": leaves, "proofs_per_round": proofs, "rounds": per_round, "build_seconds": round(build_s, 1),
            "tiles_and_bundles": len(blobs.objects),
            "median": {"floor_sha256_us": mid("floor_sha256_us"), "floor_dict_us": mid("floor_dict_us"),
                       "inclusion_warm_us_p50": mid("inclusion_warm_us", "p50"),
                       "inclusion_warm_us_p99": mid("inclusion_warm_us", "p99"),
                       "consistency_warm_us_p50": mid("consistency_warm_us", "p50"),
                       "inclusion_cold_us_p50": mid("inclusion_cold_us", "p50"),
                       "ratio_inclusion_warm_p50": mid("ratio_inclusion_warm_p50"),
                       "ratio_inclusion_warm_p99": mid("ratio_inclusion_warm_p99"),
                       "ratio_consistency_warm_p50": mid("ratio_consistency_warm_p50"),
                       "ratio_inclusion_cold_p50": mid("ratio_inclusion_cold_p50")}}


def _verifier() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("verify_audit", REPO / "tools" / "verify_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(result: dict[str, Any]) -> list[str]:
    m = result["median"]
    return [f"audit proofs, {result['leaves']:,} leaves (built in {result['build_seconds']} s): "
            f"inclusion warm p50 {m['inclusion_warm_us_p50']:.0f} µs = {m['ratio_inclusion_warm_p50']:.0f}× one "
            f"leaf SHA-256 ({m['floor_sha256_us']:.2f} µs), p99 {m['ratio_inclusion_warm_p99']:.0f}×; "
            f"consistency warm p50 {m['ratio_consistency_warm_p50']:.0f}×; inclusion cold p50 "
            f"{m['inclusion_cold_us_p50'] / 1000:.1f} ms = {m['ratio_inclusion_cold_p50']:.0f}×"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(min(max(args.leaves, 2), 5_000_000), min(max(args.proofs, 10), 100_000), min(max(args.rounds, 1), 50))
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
