"""A branch's library index opened for search, the same for every branch.

An index folder (``<bundle>/index/<branch>-<build id>/``, written by
:mod:`seislens.index.builder`) holds:

* ``vectors.faiss`` — FAISS index of the library embeddings under ids 0..N-1 (and,
  from a sharded build, the same as N shards: :mod:`seislens.index.shards`, opened
  instead);
* ``items.sqlite``  — one metadata record per item (family, source, descriptors,
  metadata; ``row`` = its row in the arrays);
* ``<name>.npy``    — per-item arrays, memory-mapped: the velocity branch's ``models``
  (N, 70, 70) float16 m/s; the event branch's ``labels`` (N,) int8 class indices (-1:
  unknown) and ``info`` (N, 8) float32 SeisCLIP info fields.

:meth:`LoadedLibrary.open` refuses an index built with another encoder than the
branch's current library encoder, or whose files disagree with the manifest's count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from seislens.index.bundle import BundleError, verify_index
from seislens.index.metadata import ItemRecord, MetadataStore
from seislens.index.shards import ShardedIndex, open_index
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.models.branches import Branch
from seislens.models.manifest import IndexEntry, Manifest


class LoadedLibrary:
    """One branch's library: FAISS + SQLite + memory-mapped per-item arrays.

    Args:
        branch: the registry branch.
        entry: the manifest's entry of the index.
        path: the index folder.
        index: the opened vector index.
        store: the opened metadata store (read-only).
        arrays: name → (N, ...) per-item arrays.
    """

    def __init__(
        self,
        branch: Branch,
        entry: IndexEntry,
        path: Path,
        index: VectorIndex | ShardedIndex,
        store: MetadataStore,
        arrays: dict[str, np.ndarray],
    ) -> None:
        self.branch = branch
        self.entry = entry
        self.path = path
        self.index = index
        self.store = store
        self._arrays = arrays

    @classmethod
    def open(
        cls,
        bundle_root: Path,
        manifest: Manifest,
        branch: Branch,
        config: VectorIndexConfig | None = None,
    ) -> LoadedLibrary:
        """Open the bundle's index of ``branch``.

        Args:
            bundle_root: the bundle directory.
            manifest: its manifest.
            branch: the registry branch.
            config: search-time settings overriding the entry's (e.g. ``hnsw_ef_search``).

        Raises:
            BundleError: no index, one built with another encoder, a missing folder, or
                files that disagree with the manifest's count.
        """
        entry = verify_index(manifest, branch)
        path = Path(bundle_root) / entry.path
        if not path.is_dir():
            raise BundleError(f"{bundle_root}: index folder {entry.path} is missing")
        cfg = config or VectorIndexConfig.model_validate(entry.config)
        index = open_index(path, cfg)  # its shards when the build wrote them
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(path.glob("*.npy"))}
        counts = {"vectors": index.ntotal} | {name: len(a) for name, a in arrays.items()}
        if any(n != entry.count for n in counts.values()):
            held = ", ".join(f"{n} {name}" for name, n in counts.items())
            raise BundleError(
                f"{bundle_root}: index {entry.path} holds {held}; the manifest says {entry.count}"
            )
        return cls(branch, entry, path, index, MetadataStore.open(path / "items.sqlite"), arrays)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def array_names(self) -> list[str]:
        """The per-item arrays stored with the index."""
        return list(self._arrays)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine scores (Q, k) and ids (Q, k) of the most similar items, best first;
        slots without a result hold id -1 (a library or allowed set smaller than k).

        Args:
            queries: (Q, d) or (d,) embeddings.
            k: results per query.
            allowed_ids: only these ids may be returned (None: all).
        """
        return self.index.search(queries, k, allowed_ids)

    def records(self, ids: np.ndarray | Sequence[int]) -> list[ItemRecord | None]:
        """Stored records of the given ids, flattened (None for -1 / missing)."""
        return self.store.get_many(np.asarray(ids, dtype=np.int64).reshape(-1))

    def array(self, name: str) -> np.ndarray:
        """The per-item array ``name`` (N, ...), memory-mapped; index it with ids."""
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(
                f"the {self.branch.name} index has no array {name!r}; it has "
                f"{', '.join(self._arrays) or 'none'}"
            ) from None

    def take(self, name: str, ids: np.ndarray, fill: float = -1) -> np.ndarray:
        """``array(name)`` at ``ids`` (any shape), ``fill`` where an id is -1."""
        ids = np.asarray(ids, dtype=np.int64)
        values = np.asarray(self.array(name)[np.maximum(ids, 0).reshape(-1)])
        values = values.reshape(ids.shape + values.shape[1:])
        mask = (ids < 0).reshape(ids.shape + (1,) * (values.ndim - ids.ndim))
        return np.where(mask, np.asarray(fill, values.dtype), values)

    def descriptors(self, ids: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(len(ids), len(names)) float32 descriptor values of the given ids' records
        (NaN where a record lacks one; missing records dropped)."""
        recs = self.records(ids)
        return np.array(
            [[r.descriptors.get(k, np.nan) for k in names] for r in recs if r is not None],
            dtype=np.float32,
        ).reshape(-1, len(names))

    def family_counts(self) -> dict[str, int]:
        """Items per family (velocity-model family, event label)."""
        return self.store.family_counts()

    def ids_for_family(self, family: str) -> np.ndarray:
        """Ids of one family's items (int64)."""
        return self.store.ids_for_family(family)

    def close(self) -> None:
        """Close the metadata store (the index and arrays are freed with the object)."""
        self.store.close()
