"""The verifiable audit log: every accepted event and every delivery outcome, in a Merkle tree a
partner can check on its own (DOMAIN.md, trust; seed 003).

Design, in the order a fact travels:

* Leaves come from durable facts, not from extra writes on the request path (`leaves`): an accepted
  event is an INSERT on the events table's stream, a delivery outcome a delivery item entering
  `delivered` or `dead` on the deliveries table's stream; operator actions are recorded by the
  operator command (`record_operator_action`). A leaf is canonical JSON of ids, types, partner ids,
  the SHA-256 of the payload and times: no names, ID numbers, phones, secrets or partner free text.
* The sequencer (`log`, on a schedule: every minute in AWS, cycling every few seconds inside it;
  every ~2 s in local mode) reads both streams from where it stopped and writes each new leaf once
  as a pending item (deterministic key: a re-read writes nothing). Then it appends all pending leaves
  as one batch: it first fixes the batch (an `intent` item, conditional on the tree size), then writes
  the changed tiles and entry bundles to S3, marks each leaf with its index (the leaf index: event
  id / delivery id -> index), and advances the head with a new signed checkpoint, conditional on the
  size it read: two sequencers cannot fork the tree, and one that dies half-way is followed by one
  that appends the same batch and writes the same bytes (Ed25519 signatures are deterministic too).
* Hashing is RFC 9162 §2.1 exactly (leaf prefix 0x00, node prefix 0x01; `tree`). The tree is
  stored as tlog tiles (c2sp.org/tlog-tiles; `tiles`) in the audit bucket, which any tlog-tiles
  client can read; proofs read only the O(log n) tile hashes they need (an in-process cache keeps
  the immutable tiles), so a log of millions of leaves answers a proof in milliseconds.
* Checkpoints are C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note; `note`) signed
  with Ed25519; the key is derived from a secret generated once in Secrets Manager.
* Partners read the checkpoint, inclusion proofs and consistency proofs with signed reads (`api`),
  and verify them offline with `tools/verify_audit.py` (standard library + `cryptography`), against
  a checkpoint they kept.

Like X-Road's message log, leaves are batched and each batch is signed once (here: at most every
few seconds), rather than signing every message.
"""
from __future__ import annotations


def record_operator_action(operator_id: str, action: str, target_ref: str, details_hash: str,
                           at: float | None = None) -> str:
    """Record an operator's action in the audit log; returns its action id (the leaf's reference).

    `details_hash` is the hex SHA-256 of the action's details as the operator tool keeps them."""
    from chalicelib.audit import log

    return log.record_operator_action(operator_id, action, target_ref, details_hash, at)


def verifier_key() -> str:
    """The verifier key partners pin: `<origin>+<key id>+<base64 public key>`."""
    from chalicelib.audit import note

    return note.verifier_key()


def run_sequencer(remaining_ms=None) -> dict[str, int]:
    """The scheduled handler's work (app.audit_sequence)."""
    from chalicelib.audit import log

    return log.run(remaining_ms)
