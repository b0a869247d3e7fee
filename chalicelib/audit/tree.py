"""RFC 9162 §2.1 Merkle tree hashing and the proofs a log serves, from stored subtree hashes.

Nothing here holds the tree. The proofs are computed from a `HashSource`: a function giving the hash
of a *complete* subtree (2**height leaves, aligned). `tiles.TiledHashes` reads it from tlog tiles,
so a proof costs O(log n) tile reads and hashes however large the log is. Verification is not here:
partners verify with `tools/verify_audit.py`, which depends on nothing of the hub.
"""
from __future__ import annotations

import hashlib
from typing import Callable

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (height, index) -> MTH(D[index * 2**height : (index + 1) * 2**height])
HashSource = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(source: HashSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for the ranges RFC 9162's recursion produces: `start` is aligned to a power
    of two at least as large as the range, so the range splits into complete subtrees from the left,
    largest first, whose hashes fold from the right."""
    if end <= start:
        raise ValueError("empty range")
    parts = []
    at, remaining = start, end - start
    while remaining:
        height = remaining.bit_length() - 1
        if at % (1 << height):
            raise ValueError(f"range [{start}, {end}) is not left-aligned")
        parts.append(source(height, at >> height))
        at += 1 << height
        remaining -= 1 << height
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def root(size: int, source: HashSource) -> bytes:
    return range_hash(source, 0, size) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, source: HashSource) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, n, m = 0, size, index
    # Walk down from the root, remembering the sibling at each level; the path lists them bottom-up.
    while n > 1:
        k = _split(n)
        if m < k:
            proof.append(range_hash(source, start + k, start + n))
            n = k
        else:
            proof.append(range_hash(source, start, start + k))
            start, n, m = start + k, n - k, m - k
    proof.reverse()
    return proof


def consistency_proof(first: int, second: int, source: HashSource) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second]); empty when first is 0 or equal to second."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    start, n, m, whole = 0, second, first, True
    while m != n:
        k = _split(n)
        if m <= k:
            proof.append(range_hash(source, start + k, start + n))
            n = k
        else:
            proof.append(range_hash(source, start, start + k))
            start, n, m, whole = start + k, n - k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        proof.append(range_hash(source, start, start + n))
    proof.reverse()
    return proof
