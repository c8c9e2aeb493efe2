"""An index held as N shards, searched together: the merged top-k of every shard.

A build with ``shards`` > 1 (:class:`~seislens.index.builder.BuildConfig`) writes, beside
the single ``vectors.faiss`` of its index folder::

    shards.json              {"count": N, "rule": "id % count", "ntotal": [n_0, ...]}
    shards/vectors-000.faiss item ids i with i % N == 0, ...

Every shard starts from one trained index (:meth:`VectorIndex.empty_like`), so IVF-PQ
shards share one quantiser trained once. :func:`open_index` opens the shards of a folder
when it has them (each one a :class:`VectorIndex`, searched in this process) and the
single index otherwise; :mod:`seislens.index.ray_shards` puts each shard in its own Ray
actor instead. The merge keeps the k best (score, then id) of the shards' k best each,
so exact (flat) shards give the single index's top-k exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from seislens.index.vector_index import IndexKind, VectorIndex, VectorIndexConfig

SHARDS_FILE = "shards.json"
"""The shard list in an index folder."""
SHARDS_DIR = "shards"
"""The folder of shard files in an index folder."""
SINGLE_FILE = "vectors.faiss"
"""The single index file of an index folder."""


def shard_of(ids: np.ndarray, count: int) -> np.ndarray:
    """The shard (0..count-1) that holds each id: ``id % count``."""
    return np.asarray(ids, dtype=np.int64) % count


class ShardWriter:
    """Splits what is added to an index into ``count`` shards (ids by ``id % count``).

    Args:
        index: the (trained, still empty of the new items) index the shards copy.
        count: number of shards, >= 2.
    """

    def __init__(self, index: VectorIndex, count: int) -> None:
        if count < 2:
            raise ValueError(f"count is {count}; expected at least 2 shards")
        self.shards = [index.empty_like() for _ in range(count)]

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (n, d) vectors under ids (n,) to their shards."""
        where = shard_of(ids, len(self.shards))
        for i, shard in enumerate(self.shards):
            mask = where == i
            if mask.any():
                shard.add(vectors[mask], ids[mask])

    def save(self, folder: Path) -> None:
        """Write ``shards/vectors-<i>.faiss`` and then ``shards.json`` (atomically: a
        folder has shards only once every file is written)."""
        (folder / SHARDS_DIR).mkdir(exist_ok=True)
        for i, shard in enumerate(self.shards):
            shard.save(folder / SHARDS_DIR / f"vectors-{i:03d}.faiss")
        listing = {
            "count": len(self.shards),
            "rule": "id % count",
            "ntotal": [s.ntotal for s in self.shards],
        }
        tmp = folder / f".{SHARDS_FILE}.tmp"
        tmp.write_text(json.dumps(listing))
        os.replace(tmp, folder / SHARDS_FILE)


def shard_files(folder: Path) -> list[Path]:
    """The shard files of an index folder, in shard order ([] when it has none)."""
    listing = Path(folder) / SHARDS_FILE
    if not listing.is_file():
        return []
    count = int(json.loads(listing.read_text())["count"])
    return [Path(folder) / SHARDS_DIR / f"vectors-{i:03d}.faiss" for i in range(count)]


def merge_top_k(
    results: list[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several (scores (Q, k_i), ids (Q, k_i)) results, best first (higher
    score, then lower id); empty slots (id -1, score -inf) last."""
    scores = np.concatenate([r[0] for r in results], axis=1)
    ids = np.concatenate([r[1] for r in results], axis=1)
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_ids = np.take_along_axis(ids, order, axis=1)
    if top_ids.shape[1] < k:  # fewer candidates than k in all: pad
        pad = k - top_ids.shape[1]
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        top_ids = np.pad(top_ids, ((0, 0), (0, pad)), constant_values=-1)
    return top_scores.astype(np.float32), top_ids.astype(np.int64)


class ShardSearcher(Protocol):
    """What a shard answers (a :class:`VectorIndex` is one)."""

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


class ShardedIndex:
    """N shards searched as one index (the part of :class:`VectorIndex` that search
    uses: ``search``, ``dim``, ``kind``, ``config``, ``ntotal``, ``to_gpu``, ...).

    Args:
        shards: the shards, shard i holding the ids with ``id % N == i``.
    """

    def __init__(self, shards: list[VectorIndex]) -> None:
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        self.shards = shards

    @property
    def count(self) -> int:
        """Number of shards."""
        return len(self.shards)

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return self.shards[0].dim

    @property
    def kind(self) -> IndexKind:
        """The shards' kind ('flat', 'hnsw', 'ivfpq')."""
        return self.shards[0].kind

    @property
    def config(self) -> VectorIndexConfig:
        """The shards' configuration."""
        return self.shards[0].config

    @property
    def ntotal(self) -> int:
        """Vectors in all shards."""
        return sum(s.ntotal for s in self.shards)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def is_trained(self) -> bool:
        """Whether every shard is trained."""
        return all(s.is_trained for s in self.shards)

    @property
    def on_gpu(self) -> bool:
        """Whether every shard searches on a GPU copy."""
        return all(s.on_gpu for s in self.shards)

    def ids(self) -> np.ndarray:
        """All stored ids, int64, shard after shard."""
        return np.concatenate([s.ids() for s in self.shards])

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (Q, k) and ids (Q, k) as :meth:`VectorIndex.search`, merged over shards."""
        queries = np.atleast_2d(np.asarray(queries))
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k is {k!r}; expected an integer >= 1")
        allowed = self._allowed(allowed_ids)
        return merge_top_k(self._search_shards(queries, int(k), allowed), int(k))

    def _allowed(self, allowed_ids: np.ndarray | None) -> list[np.ndarray | None]:
        """Each shard's part of an id filter (None: no filter)."""
        if allowed_ids is None:
            return [None] * self.count
        allowed = np.asarray(allowed_ids, dtype=np.int64)
        where = shard_of(allowed, self.count)
        return [allowed[where == i] for i in range(self.count)]

    def _search_shards(
        self, queries: np.ndarray, k: int, allowed: list[np.ndarray | None]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every shard's own top-k (here: one after another in this process; faiss
        itself uses the cores)."""
        return [s.search(queries, k, a) for s, a in zip(self.shards, allowed, strict=True)]

    def set_search_params(self, **params: Any) -> None:
        """:meth:`VectorIndex.set_search_params` on every shard."""
        for shard in self.shards:
            shard.set_search_params(**params)

    def to_gpu(self) -> tuple[bool, str]:
        """Every shard on a GPU copy when faiss sees one; (all used, first reason)."""
        done = [s.to_gpu() for s in self.shards]
        return all(u for u, _ in done), done[0][1]


def open_index(folder: Path, config: VectorIndexConfig | None = None) -> VectorIndex | ShardedIndex:
    """An index folder's shards when it has them (:data:`SHARDS_FILE`), else its single
    ``vectors.faiss``; ``config`` as :meth:`VectorIndex.load`'s."""
    files = shard_files(folder)
    if files:
        return ShardedIndex([VectorIndex.load(f, config) for f in files])
    return VectorIndex.load(Path(folder) / SINGLE_FILE, config)
