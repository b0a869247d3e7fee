"""The audit log's tree, tiles and signed notes against published vectors, and their properties.

Vectors, copied from public sources:
* RFC 6962 Merkle tree: google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc at commit
  c25edc2cced17500dec7bdc4e1fb51e9aeca5683 (kInputs, kSHA256Roots, kSHA256Paths, kSHA256Proofs),
  the same vectors as transparency-dev/merkle, proof/verify_test.go at commit
  02194e9afb6c1d95b5381350007963aa70fff472, which adds the consistency proof 6 -> 7 and the edge cases
  of TestVerifyInclusion / TestVerifyConsistency; the hasher vectors are transparency-dev/merkle,
  rfc6962/rfc6962_test.go at commit 78493b07ef9b552e3379abf9e23d4da26fbe797c.
* Signed notes: golang/mod, sumdb/note/note_test.go at commit 02c991387e35f9e4c0a9b7ce137717055f8d716d
  (the PeterNeumann and EnochRoot keys, TestSign's output, TestOpen's signatures).
* Tile layout: c2sp.org/tlog-tiles (C2SP/C2SP tlog-tiles.md at commit 0ad71eb1f1b99acf18deb575978c9205e24860cc):
  index 1234067 is x001/x234/067; a tree of 70,000 leaves has 273 full level-0 tiles, a level-0
  tile of width 112, one full level-1 tile, a level-1 tile of width 17 and a level-2 tile of width 1.

The verifier under test is tools/verify_audit.py, which shares no code with the hub.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.audit import note, tiles, tree

ROOT = Path(__file__).resolve().parents[1]


def _load_verifier():
    spec = importlib.util.spec_from_file_location("verify_audit", ROOT / "tools" / "verify_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verifier = _load_verifier()
h = bytes.fromhex

# --- RFC 6962 vectors -------------------------------------------------------------------------

INPUTS = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f")]
ROOTS = [h(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
EMPTY_ROOT = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
# (leaf, 1-based as in the source; tree size; path)
PATHS = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def build(entries: list[bytes], batches: list[int] | None = None) -> tuple[tiles.MemoryBlobs, tiles.TileStore]:
    """A tree of `entries` in tiles, appended in batches of the given sizes (default: one batch)."""
    blobs = tiles.MemoryBlobs()
    store = tiles.TileStore(blobs)
    size = 0
    for count in batches or [len(entries)]:
        batch = entries[size:size + count]
        for path, data in tiles.append(store, size, batch, [tree.leaf_hash(e) for e in batch]).items():
            blobs.put(path, data)
        size += len(batch)
    return blobs, store


def test_rfc6962_hasher_vectors():
    assert tree.EMPTY_ROOT == EMPTY_ROOT
    assert tree.leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert tree.leaf_hash(b"L123456") == h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert tree.node_hash(b"N123", b"N456") == h("aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    assert verifier.leaf_hash(b"L123456") == tree.leaf_hash(b"L123456")
    assert verifier.node_hash(b"N123", b"N456") == tree.node_hash(b"N123", b"N456")


@pytest.mark.parametrize("batches", [[1] * 8, [8], [3, 5], [2, 3, 1, 2]])
def test_roots_of_the_reference_tree_however_it_was_appended(batches):
    blobs, store = build(INPUTS, batches)
    assert tree.root(0, store.hashes_at(8)) == EMPTY_ROOT
    for size in range(1, 9):
        assert tree.root(size, store.hashes_at(8)) == ROOTS[size - 1]
    # and as the tree of each size saw itself when a batch ended there
    done = 0
    for count in batches:
        done += count
        assert tree.root(done, store.hashes_at(done)) == ROOTS[done - 1]


@pytest.mark.parametrize("leaf, size, path", PATHS)
def test_inclusion_paths(leaf, size, path):
    _, store = build(INPUTS)
    expected = [h(x) for x in path]
    assert tree.inclusion_proof(leaf - 1, size, store.hashes_at(8)) == expected
    assert tree.inclusion_proof(leaf - 1, size, build(INPUTS[:size])[1].hashes_at(size)) == expected
    verifier.verify_inclusion(leaf - 1, size, tree.leaf_hash(INPUTS[leaf - 1]), expected, ROOTS[size - 1])


@pytest.mark.parametrize("first, second, proof", CONSISTENCY)
def test_consistency_proofs(first, second, proof):
    _, store = build(INPUTS)
    expected = [h(x) for x in proof]
    assert tree.consistency_proof(first, second, store.hashes_at(8)) == expected
    verifier.verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], expected)


def _fails(check, *args) -> bool:
    try:
        check(*args)
    except verifier.VerificationError:
        return True
    return False


@pytest.mark.parametrize("leaf, size, path", PATHS[1:])
def test_corrupted_inclusion_proofs_fail(leaf, size, path):
    """transparency-dev/merkle's corruptInclusionProof probes, each must fail."""
    index, root, proof = leaf - 1, ROOTS[size - 1], [h(x) for x in path]
    good = tree.leaf_hash(INPUTS[index])
    probes = [(index - 1, size, good, proof, root), (index + 1, size, good, proof, root),
              (index ^ 2, size, good, proof, root), (index, size * 2, good, proof, root),
              (index, size // 2, good, proof, root), (index, size, b"WrongLeaf", proof, root),
              (index, size, good, proof, EMPTY_ROOT), (index, size, good, proof, SOME_HASH),
              (index, size, good, proof + [b""], root), (index, size, good, proof + [root], root),
              (index, size, good, [b""] + proof, root), (index, size, good, [root] + proof, root)]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, good, flipped, root))
    if proof:
        probes.append((index, size, good, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, good, [proof[0], SOME_HASH] + proof[1:], root))
    for probe in probes:
        assert _fails(verifier.verify_inclusion, *probe), probe


def test_inclusion_edge_cases():
    for index, size in ((0, 0), (0, 1), (1, 0), (2, 1)):
        assert _fails(verifier.verify_inclusion, index, size, SOME_HASH, [], b"")
        assert _fails(verifier.verify_inclusion, index, size, b"", [], EMPTY_ROOT)
        assert _fails(verifier.verify_inclusion, index, size, SOME_HASH, [], EMPTY_ROOT)
    single = tree.leaf_hash(b"data")
    verifier.verify_inclusion(0, 1, single, [], single)
    assert _fails(verifier.verify_inclusion, 0, 1, b"", [], single)
    assert _fails(verifier.verify_inclusion, 0, 1, single, [], b"")
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8, build(INPUTS)[1].hashes_at(8))


@pytest.mark.parametrize("first, second, proof", CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(first, second, proof):
    """transparency-dev/merkle's corruptConsistencyProof probes, each must fail."""
    r1, r2, p = ROOTS[first - 1], ROOTS[second - 1], [h(x) for x in proof]
    probes = [(first - 1, second, r1, r2, p), (first + 1, second, r1, r2, p), (first ^ 2, second, r1, r2, p),
              (first, second * 2, r1, r2, p), (first, second // 2, r1, r2, p), (first, second, b"WrongRoot", r2, p),
              (first, second, r1, b"WrongRoot", p), (first, second, r2, r1, p), (first, second, r1, r2, []),
              (first, second, r1, r2, p + [b""]), (first, second, r1, r2, p + [r1]), (first, second, r1, r2, p + [r2]),
              (first, second, r1, r2, [b""] + p), (first, second, r1, r2, [r1] + p), (first, second, r1, r2, [r2] + p),
              (first, second, r1, r2, [p[0]] + p), (first, second, r1, r2, p[:-1])]
    for i in range(len(p)):
        flipped = list(p)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((first, second, r1, r2, flipped))
    for probe in probes:
        assert _fails(verifier.verify_consistency, *probe), probe


def test_consistency_edge_cases():
    a, b = b"don't care 1", b"don't care 2"
    verifier.verify_consistency(0, 0, a, a, [])
    verifier.verify_consistency(0, 1, a, b, [])
    verifier.verify_consistency(1, 1, b, b, [])
    for probe in ((0, 0, a, b, []), (1, 1, a, b, []), (1, 0, a, b, []), (2, 1, a, b, []), (1, 2, a, b, []),
                  (0, 0, EMPTY_ROOT, b, []), (1, 1, EMPTY_ROOT, b, []), (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
                  (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])):
        assert _fails(verifier.verify_consistency, *probe), probe
    store = build(INPUTS)[1].hashes_at(8)
    assert tree.consistency_proof(0, 5, store) == [] and tree.consistency_proof(5, 5, store) == []


# --- signed notes ----------------------------------------------------------------------------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6"
             "RyyBwJnAM=\n")
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1Rv"
             "Mc+QQ=\n")


def peter() -> note.LogKey:
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])  # PRIVATE+KEY+<name>+<id>+<base64>
    assert raw[0] == 1
    return note.key_from_seed("PeterNeumann", raw[1:])


def test_signing_matches_go_sumdb_note():
    key = peter()
    assert key.verifier_key == PETER_VKEY
    assert key.sign(TEXT) == TEXT + "\n" + PETER_SIG
    with pytest.raises(ValueError):
        key.sign("abc")  # no final newline
    with pytest.raises(ValueError):
        note.key_from_seed("a+b", bytes(32))


def test_opening_notes_like_go_sumdb_note():
    assert verifier.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, PETER_VKEY) == TEXT
    assert verifier.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, ENOCH_VKEY) == TEXT
    assert _fails(verifier.open_note, TEXT + "\n" + ENOCH_SIG, PETER_VKEY)  # no signature by the pinned key
    assert _fails(verifier.open_note, TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], PETER_VKEY)
    assert _fails(verifier.open_note, TEXT.replace("cryptography", "cryptographY") + "\n" + PETER_SIG, PETER_VKEY)
    for bad in (TEXT, TEXT + "\n", TEXT + "\n" + PETER_SIG[:-1], "\x01" + TEXT + "\n" + PETER_SIG,
                TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
                "dngotpRZb6KE6RyyBwJnAM=\n", TEXT + "\n" + PETER_SIG + "Unexpected line.\n"):
        assert _fails(verifier.open_note, bad, PETER_VKEY), bad


def test_verifier_keys_are_checked():
    verifier.parse_verifier_key(PETER_VKEY)
    for bad in ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                PETER_VKEY.replace("c74f20a3", "c74f20a4"), PETER_VKEY[:-1], "PeterNeumann+c74f20a3"):
        assert _fails(verifier.parse_verifier_key, bad), bad


def test_checkpoints_are_signed_notes_of_the_tree():
    key = note.key_from_seed("example.com/log", hashlib.sha256(b"seed").digest())
    signed = key.sign(note.checkpoint_body("example.com/log", 8, ROOTS[7]))
    assert signed.splitlines()[:3] == ["example.com/log", "8", base64.b64encode(ROOTS[7]).decode()]
    kept = verifier.read_checkpoint(signed, key.verifier_key)
    assert kept == (("example.com/log", 8, ROOTS[7]))
    assert _fails(verifier.read_checkpoint, signed, key.verifier_key, "example.com/other")
    assert _fails(verifier.read_checkpoint, signed.replace("\n8\n", "\n9\n"), key.verifier_key)
    other = note.key_from_seed("example.com/log", hashlib.sha256(b"other").digest())
    assert _fails(verifier.read_checkpoint, signed, other.verifier_key)


def test_a_key_derived_from_a_secret_is_stable_and_secret_dependent():
    one = note.key_from_secret("example.com/log", "x" * 64)
    assert one.verifier_key == note.key_from_secret("example.com/log", "x" * 64).verifier_key
    assert one.verifier_key != note.key_from_secret("example.com/log", "y" * 64).verifier_key
    with pytest.raises(ValueError):
        note.key_from_secret("example.com/log", "short")


# --- tiles ------------------------------------------------------------------------------------

def test_tile_paths_per_tlog_tiles():
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(2, 0, 1) == "tile/2/000.p/1"
    assert tiles.tile_path(1, 1000, 17) == "tile/1/x001/000.p/17"
    assert tiles.entries_path(1234067, 8) == "tile/entries/x001/x234/067.p/8"
    with pytest.raises(ValueError):
        tiles.tile_path(0, 0, 0)
    assert tiles.decode_bundle(tiles.encode_bundle([b"", b"ab", b"x" * 300])) == [b"", b"ab", b"x" * 300]


def _final_tiles(blobs: tiles.MemoryBlobs, size: int) -> dict[str, bytes]:
    """The tiles a tree of `size` leaves is made of (full ones and its own partial ones)."""
    wanted = {}
    level = 0
    while size >> (8 * level):
        stored = size >> (8 * level)
        for index in range((stored + 255) // 256):
            width = tiles.tile_width(size, level, index)
            wanted[tiles.tile_path(level, index, width)] = blobs.get(tiles.tile_path(level, index, width))
        level += 1
    return wanted


def test_the_70000_leaf_example_of_the_spec():
    entries = [i.to_bytes(4, "big") for i in range(70_000)]
    blobs, store = build(entries, [40_000, 1, 29_999])
    final = _final_tiles(blobs, 70_000)
    level0 = [p for p in final if p.startswith("tile/0/")]
    assert len([p for p in level0 if ".p/" not in p]) == 273 and "tile/0/273.p/112" in final
    assert {p for p in final if not p.startswith("tile/0/")} == {"tile/1/000", "tile/1/001.p/17", "tile/2/000.p/1"}
    reference = _reference_root(entries)
    assert tree.root(70_000, store.hashes_at(70_000)) == reference
    assert _final_tiles(build(entries)[0], 70_000) == final
    assert store.entries(273, 112) == entries[273 * 256:]


def test_256_leaves_make_a_full_tile_and_a_partial_level_1_tile():
    blobs, _ = build([bytes([i]) for i in range(256)])
    assert set(_final_tiles(blobs, 256)) == {"tile/0/000", "tile/1/000.p/1"}


# --- properties against the RFC's own recursive definitions ----------------------------------

def _reference_root(data: list[bytes]) -> bytes:
    if not data:
        return EMPTY_ROOT
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1 << ((len(data) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _reference_root(data[:k]) + _reference_root(data[k:])).digest()


def _reference_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m < k:
        return _reference_path(m, data[:k]) + [_reference_root(data[k:])]
    return _reference_path(m - k, data[k:]) + [_reference_root(data[:k])]


def _reference_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    if m == len(data):
        return [] if whole else [_reference_root(data)]
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m <= k:
        return _reference_subproof(m, data[:k], whole) + [_reference_root(data[k:])]
    return _reference_subproof(m - k, data[k:], False) + [_reference_root(data[:k])]


@st.composite
def grown_trees(draw):
    """Leaves (sizes across tile boundaries) and how they were split into batches."""
    size = draw(st.integers(min_value=1, max_value=700))
    cuts = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=size), max_size=6))) | {size})
    batches = [b - a for a, b in zip([0] + cuts, cuts)]
    salt = draw(st.binary(max_size=4))
    return [salt + i.to_bytes(3, "big") for i in range(size)], batches


@settings(max_examples=60, deadline=None)
@given(grown_trees(), st.data())
def test_tiles_give_the_rfc_tree_whatever_the_batches(grown, data):
    entries, batches = grown
    size = len(entries)
    blobs, store = build(entries, batches)
    assert _final_tiles(blobs, size) == _final_tiles(build(entries)[0], size)
    source = store.hashes_at(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    assert tree.root(size, source) == _reference_root(entries)
    assert tree.root(old, source) == _reference_root(entries[:old])
    path = tree.inclusion_proof(index, size, source)
    assert path == _reference_path(index, entries)
    verifier.verify_inclusion(index, size, tree.leaf_hash(entries[index]), path, _reference_root(entries))
    proof = tree.consistency_proof(old, size, source)
    assert proof == (_reference_subproof(old, entries, True) if old < size else [])
    verifier.verify_consistency(old, size, _reference_root(entries[:old]), _reference_root(entries), proof)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=600), st.data())
def test_a_changed_bit_anywhere_fails_verification(size, data):
    entries = [i.to_bytes(2, "big") for i in range(size)]
    _, store = build(entries)
    source, root = store.hashes_at(size), _reference_root(entries)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = tree.inclusion_proof(index, size, source)
    leaf = tree.leaf_hash(entries[index])
    if path:
        which = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        bad = list(path)
        bad[which] = (int.from_bytes(bad[which], "big") ^ (1 << bit)).to_bytes(32, "big")
        assert _fails(verifier.verify_inclusion, index, size, leaf, bad, root)
    other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
    assert _fails(verifier.verify_inclusion, other, size, leaf, path, root)
    old = data.draw(st.integers(min_value=1, max_value=size - 1))
    proof = tree.consistency_proof(old, size, source)
    bad_root = bytes([root[0] ^ 1]) + root[1:]
    assert _fails(verifier.verify_consistency, old, size, _reference_root(entries[:old]), bad_root, proof)
