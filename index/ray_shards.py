"""A sharded index fanned out to Ray actors, one shard each (when the shards do not
fit in one process): each actor opens its shard file, a search asks every actor for its
top-k at once and merges them as :class:`~seislens.index.shards.ShardedIndex` does.

Imported only with the cluster extra installed (``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from seislens.index.shards import ShardedIndex, shard_files
from seislens.index.vector_index import IndexKind, VectorIndex, VectorIndexConfig

try:
    import ray
except ImportError as exc:  # pragma: no cover - the cluster extra is not installed
    raise ImportError("actor shards need the cluster extra: pip install -e '.[cluster]'") from exc


INLINE_QUERY_BYTES = 64 * 1024
"""Query batches up to this size (bytes) are sent inside each actor call, not put once
in the object store (below Ray's 100 KiB direct-call limit)."""


class ShardActor:
    """One shard in a Ray actor (its own process, on any node of the cluster).

    Args:
        path: the shard's ``.faiss`` file (a path every node can read).
        config: search-time settings (:class:`VectorIndexConfig` fields).
    """

    def __init__(self, path: str, config: dict[str, Any] | None = None) -> None:
        cfg = VectorIndexConfig.model_validate(config) if config else None
        self.index = VectorIndex.load(Path(path), cfg)

    def describe(self) -> dict[str, Any]:
        """The shard's dim, ntotal and configuration."""
        return {"dim": self.index.dim, "ntotal": self.index.ntotal, "config": self.index.config}

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`VectorIndex.search` on the shard."""
        return self.index.search(queries, k, allowed_ids)

    def set_search_params(self, params: dict[str, Any]) -> None:
        """:meth:`VectorIndex.set_search_params` on the shard."""
        self.index.set_search_params(**params)
        return None


class ActorShardedIndex(ShardedIndex):
    """The shards of an index folder, each held by a :class:`ShardActor`.

    Args:
        folder: an index folder with shards (:func:`~seislens.index.shards.shard_files`).
        config: search-time settings for every shard.
        cpus_per_shard: CPUs each actor reserves.
    """

    def __init__(
        self, folder: Path, config: VectorIndexConfig | None = None, cpus_per_shard: float = 1
    ) -> None:
        files = shard_files(folder)
        if not files:
            raise ValueError(f"{folder} holds no shards; build with shards > 1")
        remote = ray.remote(num_cpus=cpus_per_shard)(ShardActor)
        dumped = config.model_dump() if config else None
        self.actors = [remote.remote(str(f), dumped) for f in files]
        self._info = ray.get([a.describe.remote() for a in self.actors])

    @property
    def count(self) -> int:
        return len(self.actors)

    @property
    def dim(self) -> int:
        return int(self._info[0]["dim"])

    @property
    def kind(self) -> IndexKind:
        return self._info[0]["config"].kind

    @property
    def config(self) -> VectorIndexConfig:
        return self._info[0]["config"]

    @property
    def ntotal(self) -> int:
        return sum(int(i["ntotal"]) for i in self._info)

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def on_gpu(self) -> bool:
        return False

    def ids(self) -> np.ndarray:
        raise NotImplementedError("ids() of actor shards: ask each ShardActor")

    def _search_shards(
        self, queries: np.ndarray, k: int, allowed: list[np.ndarray | None]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every actor's top-k, asked at once.

        A small query batch travels inside each call (Ray inlines arguments under its
        direct-call limit); a larger one goes through the object store once, shared by
        every actor. An object-store put of a single query doubled the fan-out's round
        trip here (6.8 against 3.4 ms on two near-empty shards).
        """
        q: Any = np.ascontiguousarray(queries, dtype=np.float32)
        if q.nbytes > INLINE_QUERY_BYTES:
            q = ray.put(q)
        return ray.get(
            [a.search.remote(q, k, s) for a, s in zip(self.actors, allowed, strict=True)]
        )

    def set_search_params(self, **params: Any) -> None:
        ray.get([a.set_search_params.remote(params) for a in self.actors])
        self._info = ray.get([a.describe.remote() for a in self.actors])

    def to_gpu(self) -> tuple[bool, str]:
        return False, "actor shards search on their actors' CPUs"

    def close(self) -> None:
        """End the actors."""
        for actor in self.actors:
            ray.kill(actor)
