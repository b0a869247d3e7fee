#!/usr/bin/env python3
"""Verify the registration hub's audit log offline: one file, the Python standard library and the
`cryptography` package (pip install cryptography), nothing of the hub.

    python verify_audit.py checkpoint  --key VKEY --checkpoint kept.txt
    python verify_audit.py inclusion   --key VKEY --checkpoint kept.txt --proof inclusion.json \
                                       [--ref evt_…] [--payload-sha256 HEX]
    python verify_audit.py consistency --key VKEY --old kept.txt --new newer.txt --proof consistency.json

VKEY is the log's verifier key (`<origin>+<key id>+<base64 key>`), obtained once and pinned.
A checkpoint file is the signed note (c2sp.org/tlog-checkpoint) as kept, or the JSON answer of
GET /v1/audit/checkpoint. A proof file is the JSON answer of GET /v1/audit/inclusion/<ref>[/<size>]
or GET /v1/audit/consistency/<first>/<second>. Exit status 0: verified; 1: not verified (the
reason on stderr); 2: bad usage.

Hashing is RFC 9162 §2.1 (SHA-256, leaf prefix 0x00, node prefix 0x01); proofs are verified with
the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2; signatures are Ed25519 signed notes
(c2sp.org/signed-note). The functions below can be imported as well.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from typing import NamedTuple

HASH_SIZE = 32
ED25519 = 0x01
EM_DASH = "\u2014"
REF_FIELDS = {"event": "event_id", "delivery": "delivery_id", "operator": "action_id"}  # what a leaf is found by


class VerificationError(Exception):
    """The input does not verify; the message says why."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError(f"{what} is not base64") from None


# ---------------------------------------------------------------------------------------------
# signed notes and checkpoints


class VerifierKey(NamedTuple):
    name: str
    key_id: bytes
    public_key: bytes


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def parse_verifier_key(vkey: str) -> VerifierKey:
    parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
    if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
        raise VerificationError("a verifier key reads <name>+<8 hex digits>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        key_id = bytes.fromhex(hex_id)
    except ValueError:
        raise VerificationError("the verifier key's id is not hex") from None
    raw = _b64(encoded, "the verifier key")
    if len(raw) != 1 + 32 or raw[0] != ED25519:
        raise VerificationError("not an Ed25519 verifier key")
    expected = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if expected != key_id:
        raise VerificationError("the verifier key's id does not match its name and key")
    return VerifierKey(name, key_id, raw[1:])


def open_note(note: str, vkey: str) -> str:
    """The text of a signed note whose signature by `vkey` verifies (signatures by other keys are
    ignored, as c2sp.org/signed-note says); raises VerificationError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = parse_verifier_key(vkey)
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationError("a note has no control characters but newlines")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise VerificationError("not a signed note (text, blank line, signature lines)")
    text, signatures = note[:split + 1], note[split + 2:]
    verified = False
    for line in signatures.split("\n")[:-1]:
        prefix, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if prefix != EM_DASH or not _valid_name(name) or not encoded or " " in encoded:
            raise VerificationError("malformed signature line")
        raw = _b64(encoded, "a signature")
        if len(raw) < 5:
            raise VerificationError("malformed signature")
        if name != key.name or raw[:4] != key.key_id:
            continue  # another key's signature (a witness, a rotated key): not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise VerificationError(f"the signature by {key.name} does not verify") from None
        verified = True
    if not verified:
        raise VerificationError(f"the note carries no signature by {key.name}+{key.key_id.hex()}")
    return text


class Checkpoint(NamedTuple):
    origin: str
    size: int
    root: bytes


def read_checkpoint(note: str, vkey: str, origin: str | None = None) -> Checkpoint:
    """A checkpoint whose signature verifies; its origin must be `origin` (default: the key's name)."""
    text = open_note(note, vkey)
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationError("a checkpoint has an origin, a tree size and a root hash")
    expected = origin or parse_verifier_key(vkey).name
    if lines[0] != expected:
        raise VerificationError(f"the checkpoint is of log {lines[0]!r}, not {expected!r}")
    size = lines[1]
    if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise VerificationError("the tree size is not a decimal number")
    root = _b64(lines[2], "the root hash")
    if len(root) != HASH_SIZE:
        raise VerificationError("the root hash is not 32 bytes")
    return Checkpoint(lines[0], int(size), root)


# ---------------------------------------------------------------------------------------------
# RFC 9162 proofs


def _hashes(values: list[bytes]) -> list[bytes]:
    if any(len(v) != HASH_SIZE for v in values):
        raise VerificationError("a proof hash is not 32 bytes")
    return values


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, steps 1-5: the root the proof leads to from the leaf hash."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise VerificationError("the leaf hash is not 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in _hashes(proof):
        if sn == 0:
            raise VerificationError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise VerificationError("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of size `second` extends the tree of size `first`."""
    if not 0 <= first <= second:
        raise VerificationError(f"a tree of size {second} cannot extend one of size {first}")
    if first == second:
        if proof or first_root != second_root:
            raise VerificationError("equal tree sizes have equal roots and an empty proof")
        return
    if first == 0:
        if proof:
            raise VerificationError("the empty tree's consistency proof is empty")
        return
    if not proof:
        raise VerificationError("the consistency proof is empty")
    path = _hashes(list(proof))
    if first & (first - 1) == 0:  # an exact power of two: its root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the consistency proof is too short")
    if fr != first_root or sr != second_root:
        raise VerificationError("the consistency proof does not lead to both roots")


# ---------------------------------------------------------------------------------------------
# the hub's answers


def load_checkpoint_file(path: str) -> str:
    """The signed note, from a file holding it or the JSON answer of GET /v1/audit/checkpoint."""
    with open(path, encoding="utf-8", newline="") as fh:
        content = fh.read()
    if content.lstrip().startswith("{"):
        try:
            return json.loads(content)["checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise VerificationError(f"{path} is JSON without a checkpoint") from None
    return content


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            found = json.load(fh)
    except ValueError:
        raise VerificationError(f"{path} is not JSON") from None
    if not isinstance(found, dict):
        raise VerificationError(f"{path} is not a JSON object")
    return found


def verify_inclusion_answer(answer: dict, checkpoint: Checkpoint, ref: str | None = None,
                            payload_sha256: str | None = None) -> list[dict]:
    """Every leaf of an inclusion answer is in the checkpoint's tree; returns the leaves, parsed."""
    if answer.get("tree_size") != checkpoint.size:
        raise VerificationError(f"the proof is for a tree of size {answer.get('tree_size')}, "
                                f"the checkpoint has {checkpoint.size}")
    found = []
    for entry in answer.get("leaves") or []:
        text = entry["leaf"]
        path = [_b64(h, "a proof hash") for h in entry["inclusion_path"]]
        verify_inclusion(entry["leaf_index"], checkpoint.size, leaf_hash(text.encode("utf-8")), path, checkpoint.root)
        leaf = json.loads(text)
        if ref is not None and leaf.get(REF_FIELDS.get(leaf.get("kind"), "")) != ref:
            raise VerificationError(f"leaf {entry['leaf_index']} is not about {ref}")
        if payload_sha256 is not None and leaf.get("payload_sha256") != payload_sha256.lower():
            raise VerificationError(f"leaf {entry['leaf_index']} is of another payload")
        found.append({"leaf_index": entry["leaf_index"], "leaf": leaf})
    if not found:
        raise VerificationError("the answer has no leaves")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the registration hub's audit log offline.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("checkpoint", "inclusion", "consistency"):
        sub = commands.add_parser(name)
        sub.add_argument("--key", required=True, help="the log's verifier key <origin>+<id>+<base64>")
        sub.add_argument("--origin", help="the log's origin line (default: the key's name)")
        if name in ("checkpoint", "inclusion"):
            sub.add_argument("--checkpoint", required=True, help="a checkpoint you kept (note or JSON answer)")
        if name == "inclusion":
            sub.add_argument("--proof", required=True, help="the JSON answer of GET /v1/audit/inclusion/…")
            sub.add_argument("--ref", help="the event, delivery or action id the leaves must be about")
            sub.add_argument("--payload-sha256", help="the SHA-256 (hex) of the body you sent or received")
        if name == "consistency":
            sub.add_argument("--old", required=True, help="the older checkpoint you kept")
            sub.add_argument("--new", required=True, help="the newer checkpoint")
            sub.add_argument("--proof", required=True, help="the JSON answer of GET /v1/audit/consistency/…")
    args = parser.parse_args(argv)
    try:
        if args.command == "checkpoint":
            kept = read_checkpoint(load_checkpoint_file(args.checkpoint), args.key, args.origin)
            result: dict = {"verified": True, "origin": kept.origin, "tree_size": kept.size,
                            "root_hash": base64.b64encode(kept.root).decode()}
        elif args.command == "inclusion":
            kept = read_checkpoint(load_checkpoint_file(args.checkpoint), args.key, args.origin)
            leaves = verify_inclusion_answer(_load_json(args.proof), kept, args.ref, args.payload_sha256)
            result = {"verified": True, "tree_size": kept.size, "leaves": leaves}
        else:
            old = read_checkpoint(load_checkpoint_file(args.old), args.key, args.origin)
            new = read_checkpoint(load_checkpoint_file(args.new), args.key, args.origin)
            answer = _load_json(args.proof)
            if (answer.get("first"), answer.get("second")) != (old.size, new.size):
                raise VerificationError(f"the proof is from {answer.get('first')} to {answer.get('second')}, "
                                        f"the checkpoints are {old.size} and {new.size}")
            verify_consistency(old.size, new.size, old.root, new.root,
                               [_b64(h, "a proof hash") for h in answer.get("proof") or []])
            result = {"verified": True, "first": old.size, "second": new.size}
    except VerificationError as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    except (OSError, KeyError, TypeError) as exc:
        print(f"NOT VERIFIED: unreadable input ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
