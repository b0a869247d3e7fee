"""The tree stored as tlog tiles (c2sp.org/tlog-tiles): layout, reading hashes, appending a batch.

A tile at level L, index N holds up to 256 consecutive hashes of subtrees of 256**L leaves
(level 0: leaf hashes); `tile/<L>/<N>` when full, `tile/<L>/<N>.p/<W>` while it has W < 256.
Entry bundles `tile/entries/<N>[.p/<W>]` hold the leaves themselves, each prefixed with its length
as a big-endian uint16. Every path names immutable content (a partial tile of a given width never
changes), so every tile read is cacheable; the checkpoint is the one mutable object.

Appending a batch rewrites only the right edge: the partial tile of each level that gained hashes,
plus the full tiles the batch completed. The same batch appended to the same tree always writes the
same bytes to the same paths, so a sequencer that dies half-way simply writes them again.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

from chalicelib.audit.tree import HASH_SIZE, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_BYTES = 0xFFFF
CHECKPOINT_PATH = "checkpoint"


def _index_path(n: int) -> str:
    """1234067 -> x001/x234/067: zero-padded 3-digit elements, all but the last prefixed with x."""
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    if not 0 <= level <= 63 or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"no tile at level {level} of width {width}")
    return f"tile/{level}/{_index_path(index)}" + (f".p/{width}" if width < TILE_WIDTH else "")


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"no entry bundle of width {width}")
    return f"tile/entries/{_index_path(index)}" + (f".p/{width}" if width < TILE_WIDTH else "")


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes tile (level, index) has in a tree of `size` leaves (0: none yet)."""
    stored = size >> (TILE_HEIGHT * level)  # complete subtrees of 256**level leaves
    return max(0, min(TILE_WIDTH, stored - index * TILE_WIDTH))


class Tile:
    """The hashes of one tile and, computed once on first use, the subtrees inside it."""

    __slots__ = ("hashes", "_levels")

    def __init__(self, data: bytes):
        if not data or len(data) % HASH_SIZE or len(data) > TILE_WIDTH * HASH_SIZE:
            raise ValueError(f"a tile has 1 to {TILE_WIDTH} hashes, not {len(data)} bytes")
        self.hashes = [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        self._levels: list[list[bytes]] | None = None

    def node(self, height: int, index: int) -> bytes:
        """The hash of the 2**height hashes of this tile starting at index * 2**height."""
        if height == 0:
            return self.hashes[index]
        if self._levels is None:
            levels = [self.hashes]
            while len(levels[-1]) > 1:
                below = levels[-1]
                levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
            self._levels = levels
        return self._levels[height][index]

    def root(self) -> bytes:
        """The hash of a full tile: one hash of the level above."""
        return self.node(TILE_HEIGHT, 0)


class TileStore:
    """Tiles and entry bundles over a blob store (`get(path) -> bytes`, `put(path, bytes)`), with an
    in-memory cache of parsed tiles: every tile path is immutable, so the cache is never stale."""

    def __init__(self, blobs: Any, cache_tiles: int = 4096):
        self.blobs = blobs
        self._cache: OrderedDict[str, Tile] = OrderedDict()
        self._limit = cache_tiles
        self._lock = threading.Lock()

    def tile(self, level: int, index: int, width: int) -> Tile:
        path = tile_path(level, index, width)
        with self._lock:
            found = self._cache.get(path)
            if found is not None:
                self._cache.move_to_end(path)
                return found
        tile = Tile(self.blobs.get(path))
        if len(tile.hashes) != width:
            raise ValueError(f"{path} holds {len(tile.hashes)} hashes")
        with self._lock:
            self._cache[path] = tile
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return tile

    def entries(self, index: int, width: int) -> list[bytes]:
        return decode_bundle(self.blobs.get(entries_path(index, width)))

    def hashes_at(self, size: int) -> "TiledHashes":
        return TiledHashes(size, self.tile)


class TiledHashes:
    """The `HashSource` of a tree of `size` leaves: complete-subtree hashes read from its tiles.

    A subtree of height 8L + r is 2**r consecutive hashes of one level-L tile; the tile read is the
    full one when the tree has it, else the tree's partial one, which holds every hash a proof at
    this or any smaller size can ask for.
    """

    def __init__(self, size: int, fetch: Callable[[int, int, int], Tile]):
        self.size = size
        self.fetch = fetch

    def __call__(self, height: int, index: int) -> bytes:
        level, within = divmod(height, TILE_HEIGHT)
        first = index << within
        tile_index, offset = divmod(first, TILE_WIDTH)
        width = tile_width(self.size, level, tile_index)
        if offset + (1 << within) > width:
            raise ValueError(f"subtree ({height}, {index}) is not complete in a tree of size {self.size}")
        return self.fetch(level, tile_index, width).node(within, offset >> within)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry has at most {MAX_ENTRY_BYTES} bytes")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at:at + 2], "big")
        entries.append(data[at + 2:at + 2 + length])
        at += 2 + length
    if at != len(data):
        raise ValueError("truncated entry bundle")
    return entries


def append(store: TileStore, size: int, entries: list[bytes], hashes: list[bytes]) -> dict[str, bytes]:
    """Everything to write to grow the tree of `size` leaves by `entries` (whose leaf hashes are
    `hashes`): {path: content} for every tile and entry bundle the batch changes or completes."""
    if len(entries) != len(hashes):
        raise ValueError("one leaf hash per entry")
    if not entries:
        return {}
    writes: dict[str, bytes] = {}
    index, width = divmod(size, TILE_WIDTH)
    known = store.entries(index, width) if width else []
    for n, chunk in _chunks(index, known + entries):
        writes[entries_path(n, len(chunk))] = encode_bundle(chunk)
    level, stored, added = 0, size, hashes  # `stored`: hashes this level had before the batch
    while added:
        index, width = divmod(stored, TILE_WIDTH)
        known = store.tile(level, index, width).hashes if width else []
        completed = []
        for n, chunk in _chunks(index, known + added):
            data = b"".join(chunk)
            writes[tile_path(level, n, len(chunk))] = data
            if len(chunk) == TILE_WIDTH:
                completed.append(Tile(data).root())
        level, stored, added = level + 1, stored // TILE_WIDTH, completed
    return writes


def _chunks(first_index: int, items: list[bytes]) -> Iterable[tuple[int, list[bytes]]]:
    for offset in range(0, len(items), TILE_WIDTH):
        yield first_index + offset // TILE_WIDTH, items[offset:offset + TILE_WIDTH]


def hashes_after(store: TileStore, size: int, writes: Mapping[str, bytes]) -> TiledHashes:
    """The tree of `size` leaves as it will be once `writes` are stored: the new root is computed
    before the batch's tiles are written (and a re-run computes it the same way)."""
    def fetch(level: int, index: int, width: int) -> Tile:
        found = writes.get(tile_path(level, index, width))
        return Tile(found) if found is not None else store.tile(level, index, width)

    return TiledHashes(size, fetch)


class S3Blobs:
    """The audit bucket. Missing objects raise KeyError."""

    def __init__(self, bucket: str):
        self.bucket = bucket

    def get(self, path: str) -> bytes:
        from chalicelib import aws

        try:
            return aws.client("s3").get_object(Bucket=self.bucket, Key=path)["Body"].read()
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise KeyError(path) from None
            raise

    def put(self, path: str, data: bytes) -> None:
        from chalicelib import aws

        text = path == CHECKPOINT_PATH
        aws.client("s3").put_object(
            Bucket=self.bucket, Key=path, Body=data,
            ContentType="text/plain; charset=utf-8" if text else "application/octet-stream",
            # tlog-tiles: the checkpoint is mutable, every tile is immutable.
            CacheControl="no-cache" if text else "public, max-age=31536000, immutable")


class MemoryBlobs:
    """A blob store in a dict: for building a tree in memory (benchmarks, property tests)."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def get(self, path: str) -> bytes:
        return self.objects[path]

    def put(self, path: str, data: bytes) -> None:
        self.objects[path] = data
