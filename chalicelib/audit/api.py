"""What the audit endpoints answer, as (status, body).

Every read is signed like a case read (chalicelib/reads.py: the request line in place of the body,
a fresh nonce, ±300 s), so it answers known partners only:

    GET /v1/audit/checkpoint                        the latest signed checkpoint and the verifier key
    GET /v1/audit/inclusion/<ref>                   proofs that the leaves of an event id (or a
    GET /v1/audit/inclusion/<ref>/<tree_size>       delivery id, or an operator action id) are in
                                                    the tree of the latest checkpoint, or of a size
                                                    the partner kept a checkpoint of
    GET /v1/audit/consistency/<first>/<second>      that the tree of size `second` extends `first`

An inclusion proof is answered to the partners the leaf names (the sender of an event, the receiver
of a delivery) and to the partners taking part in its case or relay; to anyone else it is the same
404 as a leaf that does not exist. Checkpoints and consistency proofs hold only sizes and hashes.
Hashes are base64, as in the checkpoint; proofs are RFC 9162 §2.1.3 / §2.1.4 paths, leaf side first.
"""
from __future__ import annotations

import base64
import re
from typing import Any, Mapping

from chalicelib import reads
from chalicelib.audit import leaves, log, tree
from chalicelib.errors import HubError
from chalicelib.partners import Partner
from chalicelib.settings import get_settings

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SIZE = re.compile(r"[0-9]{1,19}")


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


def latest_head() -> log.Head:
    """The head of the latest checkpoint, or 404 before the sequencer's first."""
    head = log.read_head()
    if head is None:
        raise HubError(404, "audit_log_not_started", "The audit log has no checkpoint yet; retry in a few seconds.")
    return head


def _size(text: str, field: str, head: log.Head, least: int) -> int:
    if not _SIZE.fullmatch(text or ""):
        raise HubError(400, "invalid_tree_size", "A tree size is a whole number.",
                       [{"field": field, "code": "invalid_format", "message": "digits only"}])
    size = int(text)
    if not least <= size <= head.size:
        raise HubError(422, "tree_size_out_of_range", f"The tree has {head.size} leaves.",
                       [{"field": field, "code": "out_of_range", "message": f"between {least} and {head.size}"}])
    return size


def checkpoint_of(head: log.Head) -> dict[str, Any]:
    """A checkpoint as partners (and operators) read it, with the key that verifies it."""
    return {"origin": get_settings().audit_origin, "tree_size": head.size,
            "root_hash": base64.b64encode(head.root).decode(), "checkpoint": head.checkpoint,
            "verifier_key": head.verifier_key, "integrated_at": leaves.iso(head.integrated_at)}


def proven_leaves(items: list[dict[str, Any]], size: int, head: log.Head) -> list[dict[str, Any]]:
    """The leaves of `items` (`log.leaves_of`) sequenced into the tree of `size` leaves, oldest first, each
    with its inclusion path in that tree; [] when none is yet."""
    included = sorted((int(i["index"]["N"]), i["leaf"]["S"]) for i in items
                      if "index" in i and int(i["index"]["N"]) < size)
    if not included:
        return []
    source = log.tile_store().hashes_at(head.size)
    return [{"leaf_index": index, "leaf": text, "inclusion_path": _b64(tree.inclusion_proof(index, size, source))}
            for index, text in included]


def read_checkpoint(headers: Mapping[str, str]) -> tuple[int, dict]:
    return reads.answer("GET", "/v1/audit/checkpoint", headers, lambda partner: checkpoint_of(latest_head()))


def read_inclusion(ref: str, tree_size: str | None, headers: Mapping[str, str]) -> tuple[int, dict]:
    path = f"/v1/audit/inclusion/{ref}" + (f"/{tree_size}" if tree_size is not None else "")

    def build(partner: Partner) -> dict[str, Any]:
        head = latest_head()
        size = head.size if tree_size is None else _size(tree_size, "tree_size", head, 1)
        items = log.leaves_of(ref) if _REF.fullmatch(ref or "") else []
        visible = [item for item in items if _may_see(partner, item)]
        if not visible:
            raise HubError(404, "leaf_not_found", "No audit leaf with this reference that you may see.")
        proven = proven_leaves(visible, size, head)
        if not proven:
            raise HubError(409, "not_yet_sequenced", "Leaves are sequenced within seconds; ask again, "
                           "or at a larger tree size.")
        return {"ref": ref, "tree_size": size, "checkpoint": head.checkpoint if size == head.size else None,
                "leaves": proven}

    return reads.answer("GET", path, headers, build)


def read_consistency(first: str, second: str, headers: Mapping[str, str]) -> tuple[int, dict]:
    def build(partner: Partner) -> dict[str, Any]:
        head = latest_head()
        new = _size(second, "second", head, 0)
        old = _size(first, "first", head, 0)
        if old > new:
            raise HubError(422, "tree_size_out_of_range", "The first tree size cannot be larger than the second.",
                           [{"field": "first", "code": "out_of_range", "message": "at most the second size"}])
        proof = tree.consistency_proof(old, new, log.tile_store().hashes_at(head.size))
        return {"first": old, "second": new, "proof": _b64(proof),
                "checkpoint": head.checkpoint if new == head.size else None}

    return reads.answer("GET", f"/v1/audit/consistency/{first}/{second}", headers, build)


def _may_see(partner: Partner, item: dict[str, Any]) -> bool:
    if partner.id in item.get("parties", {}).get("SS", []):
        return True
    case_key = item.get("case_key", {}).get("S")
    return bool(case_key) and partner.id in _participants(case_key)


def _participants(case_key: str) -> list[str]:
    """Who takes part in the case, relay or inquiry a leaf belongs to ("<case_id>#<unit>" or "<kind>#<id>";
    inquiries are records of the relay kind, chalicelib/flows/inquiry.py)."""
    from chalicelib import cases
    from chalicelib.flows import inquiry, relay

    first, _, rest = case_key.partition("#")
    if first in (relay.RELAY, relay.ASSIST, inquiry.INQUIRY):
        record = relay.load(first, rest)
        return record.doc.get("participants", []) if record else []
    case = cases.load(first, rest)
    return case.doc.get("participants", []) if case else []
