"""FAISS nearest-neighbour index over L2-normalised embeddings, with stable int64 ids.

Scores are inner products of unit vectors, i.e. cosine similarities in [-1, 1]:
every vector given to :meth:`VectorIndex.add` or :meth:`VectorIndex.search` is
L2-normalised (a copy) first. Three kinds, chosen by :class:`VectorIndexConfig`:

- ``flat``: exact search (``IndexIDMap2`` around ``IndexFlatIP``); the default.
- ``hnsw``: graph search (``IndexIDMap2`` around ``IndexHNSWFlat``); parameters M,
  efConstruction (build) and efSearch (query: higher is slower and more exact).
- ``ivfpq``: inverted lists with product quantisation (``IndexIVFPQ``, which takes ids
  natively; 8-bit codes, ``pq_m`` bytes a vector). Needs :meth:`VectorIndex.train`.
  Optionally the top ``k × pq_refine_factor`` candidates are re-ranked by exact inner
  product (``IndexIDMap2`` around ``IndexRefineFlat``; keeps the full vectors).

A search can be restricted to a set of ids (the family filter). It is exact when the
index keeps full vectors (flat, HNSW, refined IVF-PQ) and at most ``filter_exact_max``
ids are allowed; larger filters search the approximate index with a faiss IDSelector.

Ids are the caller's (e.g. the SQLite row id of a library item), must be >= 0 and
unique; ``-1`` marks an empty result slot. The index is saved atomically (a temporary
file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

IndexKind = Literal["flat", "hnsw", "ivfpq"]

PQ_NBITS = 8
"""Bits per product-quantiser code (256 centroids per sub-space)."""

_SELECTOR_CACHE_SIZE = 8
_MAX_FILTERED_EF = 4096


@dataclass(frozen=True)
class _Selector:
    """A faiss IDSelector, the array it points into, and how many items it selects."""

    selector: Any
    backing: np.ndarray
    n_selected: int


class VectorIndexConfig(BaseModel):
    """Which FAISS index to build and how to search it.

    Build-time fields (``hnsw_m``, ``hnsw_ef_construction``, ``ivf_nlist``, ``pq_m``,
    whether ``pq_refine_factor`` > 0) are fixed once an index is built; search-time
    fields (``hnsw_ef_search``, ``ivf_nprobe``, the refine factor's value,
    ``filter_exact_max``) are applied at load and can be changed with
    :meth:`VectorIndex.set_search_params`.
    """

    model_config = ConfigDict(extra="forbid")

    kind: IndexKind = "flat"
    hnsw_m: int = Field(32, ge=2, le=512, description="HNSW neighbours per node (M)")
    hnsw_ef_construction: int = Field(200, ge=1, description="HNSW build beam width")
    hnsw_ef_search: int = Field(64, ge=1, description="HNSW query beam width")
    ivf_nlist: int = Field(1024, ge=1, description="IVF inverted lists (k-means cells)")
    pq_m: int = Field(32, ge=1, description="PQ sub-quantisers (bytes a vector)")
    ivf_nprobe: int = Field(16, ge=1, description="IVF lists visited a query")
    pq_refine_factor: int = Field(
        0,
        ge=0,
        le=1000,
        description="re-rank k x this many IVF-PQ candidates exactly; 0 = off",
    )
    filter_exact_max: int = Field(
        50_000,
        ge=0,
        description="filtered searches allowing at most this many ids scan them exactly",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> VectorIndexConfig:
        """Refuse combinations no index can have."""
        if self.kind == "ivfpq" and self.ivf_nprobe > self.ivf_nlist:
            raise ValueError(
                f"ivf_nprobe={self.ivf_nprobe} exceeds ivf_nlist={self.ivf_nlist}; "
                "expected at most as many probed lists as lists"
            )
        return self


class VectorIndex:
    """A FAISS index of unit vectors (dimension ``dim``) under int64 ids.

    Args:
        dim: vector dimension (256 for SeisLens encoders; any positive value).
        config: index kind and parameters; the default is exact (flat) search.

    Not safe for concurrent :meth:`add` and :meth:`search`; concurrent searches are.
    """

    def __init__(self, dim: int = 256, config: VectorIndexConfig | None = None) -> None:
        config = config or VectorIndexConfig()
        if not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"dim is {dim!r}; expected a positive integer")
        self._setup(_build(int(dim), config), config)

    # ----------------------------------------------------------------- construction

    def _setup(self, index: faiss.Index, config: VectorIndexConfig) -> None:
        """Adopt a CPU faiss index built (or loaded) for ``config``."""
        self._index = index
        self._config = config
        self._gpu: faiss.Index | None = None
        self._selectors: OrderedDict[bytes, _Selector] = OrderedDict()
        self._lock = threading.Lock()
        self._id_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._apply_search_params()

    @classmethod
    def load(cls, path: Path | str, config: VectorIndexConfig | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`.

        The kind and build-time parameters come from the file (``config`` must name
        the same kind when given); search-time parameters come from ``config`` (or
        the file's own when ``config`` is None).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a faiss index of a kind this class writes, or
                not the kind ``config`` asks for.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no index file at {path}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ValueError(f"could not read faiss index file {path}: {exc}") from exc
        found = _describe(index, path)
        if config is not None and config.kind != found.kind:
            raise ValueError(
                f"index file {path} holds a '{found.kind}' index; the configuration expects "
                f"'{config.kind}'"
            )
        loaded = cls.__new__(cls)
        loaded._setup(index, _merge_config(found, config))
        return loaded

    def empty_like(self) -> VectorIndex:
        """An empty index of the same kind and parameters, sharing this one's training
        (IVF-PQ quantisers are copied): the shards of one index start from it."""
        index = faiss.clone_index(self._index)
        index.reset()
        twin = VectorIndex.__new__(VectorIndex)
        twin._setup(index, self._config)
        return twin

    def save(self, path: Path | str) -> None:
        """Write the index to ``path`` atomically: a temporary file in the same
        directory is written, flushed to disk, then renamed over ``path``."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)

    # ----------------------------------------------------------------- properties

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return int(self._index.d)

    @property
    def kind(self) -> IndexKind:
        """'flat', 'hnsw' or 'ivfpq'."""
        return self._config.kind

    @property
    def config(self) -> VectorIndexConfig:
        """The configuration in force (build parameters as built, current search ones)."""
        return self._config

    @property
    def ntotal(self) -> int:
        """Number of vectors stored."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def is_trained(self) -> bool:
        """False only for an IVF-PQ index before :meth:`train`."""
        return bool(self._index.is_trained)

    @property
    def on_gpu(self) -> bool:
        """Whether unfiltered searches run on a GPU copy (see :meth:`to_gpu`)."""
        return self._gpu is not None

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying CPU faiss index (for inspection; do not mutate)."""
        return self._index

    # ----------------------------------------------------------------- building

    def train(self, vectors: np.ndarray) -> None:
        """Train IVF-PQ's coarse quantiser and product quantiser on (n, d) vectors.

        Needs n >= max(ivf_nlist, 256); FAISS works best with 39 x ivf_nlist or more.
        A no-op for flat and HNSW indexes, which need no training.
        """
        x = self._prepare(vectors, "training vectors")
        if self.kind != "ivfpq":
            return
        needed = max(self._config.ivf_nlist, 2**PQ_NBITS)
        if x.shape[0] < needed:
            raise ValueError(
                f"IVF-PQ training got {x.shape[0]} vectors; expected at least {needed} "
                f"(ivf_nlist={self._config.ivf_nlist} lists and {2**PQ_NBITS} PQ centroids; "
                f"{39 * self._config.ivf_nlist} or more recommended)"
            )
        self._index.train(x)
        self._apply_search_params()

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (n, d) vectors under ids (n,) int64 (>= 0, unique, not yet present).

        Vectors are L2-normalised (a copy). An IVF-PQ index must be trained first.
        """
        x = self._prepare(vectors, "vectors")
        labels = _check_ids(ids, x.shape[0])
        if not self.is_trained:
            raise ValueError(
                "the IVF-PQ index is not trained; call train(vectors) with at least "
                f"{max(self._config.ivf_nlist, 2**PQ_NBITS)} vectors before add()"
            )
        present = self._present(labels)
        if present.size:
            raise ValueError(
                f"{present.size} ids are already in the index (e.g. {present[:5].tolist()}); "
                "expected new ids"
            )
        self._index.add_with_ids(x, labels)
        if self._gpu is not None:
            self._gpu.add_with_ids(x, labels)
        with self._lock:
            self._selectors.clear()
            self._id_cache = None

    def ids(self) -> np.ndarray:
        """All stored ids, int64 (ntotal,), in storage order."""
        idmap = _idmap(self._index)
        if idmap is not None:
            return faiss.vector_to_array(idmap.id_map).astype(np.int64, copy=False)
        invlists = faiss.extract_index_ivf(self._index).invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(invlists.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    # ----------------------------------------------------------------- searching

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar stored vectors to each query.

        Args:
            queries: (q, d) or (d,) vectors (L2-normalised here).
            k: results a query, >= 1.
            allowed_ids: if given, only these ids may be returned (e.g. one family).

        Returns:
            scores (q, k) float32 cosine similarities, best first, and ids (q, k)
            int64; slots without a result hold id -1 and score -inf.
        """
        x = self._prepare(np.atleast_2d(queries), "queries")
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k is {k!r}; expected an integer >= 1")
        k = int(k)
        if self.ntotal == 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            return _empty_result(x.shape[0], k)
        if allowed_ids is None:
            searched = self._gpu if self._gpu is not None else self._index
            scores, labels = searched.search(x, k)
        else:
            scores, labels = self._filtered_search(x, k, allowed_ids)
        scores = np.where(labels < 0, -np.inf, scores).astype(np.float32)
        return scores, labels.astype(np.int64, copy=False)

    def _filtered_search(
        self, x: np.ndarray, k: int, allowed_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search restricted to ``allowed_ids``, on the CPU index.

        Exact when the index keeps full vectors (flat, HNSW, refined IVF-PQ) and at most
        ``config.filter_exact_max`` ids are allowed: the allowed ids' stored vectors are
        scanned with a bitmap IDSelector. Otherwise the approximate index is searched
        with the selector, its efSearch / nprobe raised by the filter's selectivity
        (ntotal / allowed) so that enough allowed candidates are visited.
        """
        allowed = _check_ids(allowed_ids, None, name="allowed_ids", unique=False)
        sel = self._selector(allowed)
        if sel.n_selected == 0:
            return _empty_result(x.shape[0], k)
        store = _full_vector_store(self._index)
        idmap = _idmap(self._index)
        keep_alive: Any = None
        if store is not None and (
            self.kind == "flat" or sel.n_selected <= self._config.filter_exact_max
        ):
            searched, params = store, faiss.SearchParameters(sel=sel.selector)
        else:
            searched = faiss.downcast_index(idmap.index) if idmap is not None else self._index
            params, keep_alive = self._approximate_parameters(sel, k)
        scores, found = searched.search(x, k, params=params)
        del keep_alive, sel  # the selector and parameters had to live through the search
        if idmap is None:
            return scores, found
        stored = self._sorted_ids()[2]
        return scores, np.where(found >= 0, stored[np.maximum(found, 0)], -1)

    def _selector(self, allowed: np.ndarray) -> _Selector:
        """A faiss IDSelector for ``allowed`` (cached for repeated filters): over storage
        positions (a bitmap) under an id map, over ids (a batch) for plain IVF-PQ."""
        key = allowed.tobytes()
        with self._lock:
            cached = self._selectors.get(key)
            if cached is not None:
                self._selectors.move_to_end(key)
                return cached
        if _idmap(self._index) is None:
            ids = np.unique(allowed)
            sel = _Selector(faiss.IDSelectorBatch(ids), ids, int(ids.size))
        else:
            sorted_ids, order, _ = self._sorted_ids()
            pos = np.searchsorted(sorted_ids, allowed)
            found = pos < sorted_ids.size
            found[found] = sorted_ids[pos[found]] == allowed[found]
            mask = np.zeros(self.ntotal, dtype=bool)
            mask[order[pos[found]]] = True
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))
            sel = _Selector(selector, bits, int(mask.sum()))
        with self._lock:
            self._selectors[key] = sel
            if len(self._selectors) > _SELECTOR_CACHE_SIZE:
                self._selectors.popitem(last=False)
        return sel

    def _approximate_parameters(self, sel: _Selector, k: int) -> tuple[faiss.SearchParameters, Any]:
        """SearchParameters for the approximate (inner) index with the selector, and any
        object they point to that must stay alive during the search."""
        cfg = self._config
        boost = -(-self.ntotal // sel.n_selected)  # ceil(ntotal / allowed)
        if cfg.kind == "hnsw":
            ef = min(_MAX_FILTERED_EF, max(cfg.hnsw_ef_search, k) * boost)
            return faiss.SearchParametersHNSW(sel=sel.selector, efSearch=ef), None
        nprobe = min(_innermost(self._index).nlist, cfg.ivf_nprobe * boost)
        ivf = faiss.SearchParametersIVF(sel=sel.selector, nprobe=nprobe)
        if _refine(self._index) is None:
            return ivf, None
        refine = faiss.IndexRefineSearchParameters(
            k_factor=float(cfg.pq_refine_factor), base_index_params=ivf
        )
        return refine, ivf

    def _sorted_ids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted ids, storage position of each sorted id, ids in storage order)."""
        cache = self._id_cache
        if cache is None:
            stored = self.ids()
            order = np.argsort(stored, kind="stable")
            cache = self._id_cache = (stored[order], order, stored)
        return cache

    def _present(self, labels: np.ndarray) -> np.ndarray:
        """Those of ``labels`` already stored."""
        if self.ntotal == 0:
            return np.empty(0, np.int64)
        sorted_ids = self._sorted_ids()[0]
        pos = np.minimum(np.searchsorted(sorted_ids, labels), sorted_ids.size - 1)
        return labels[sorted_ids[pos] == labels]

    # ----------------------------------------------------------------- parameters

    def set_search_params(
        self,
        ef_search: int | None = None,
        nprobe: int | None = None,
        refine_factor: int | None = None,
        filter_exact_max: int | None = None,
    ) -> None:
        """Change search-time parameters: HNSW efSearch, IVF nprobe, IVF-PQ refine
        factor (only for an index built with refinement), the exact-filter limit.
        None leaves one unchanged; invalid values raise pydantic's ValidationError."""
        update: dict[str, int] = {}
        if filter_exact_max is not None:
            update["filter_exact_max"] = filter_exact_max
        if ef_search is not None:
            update["hnsw_ef_search"] = ef_search
        if nprobe is not None:
            update["ivf_nprobe"] = nprobe
        if refine_factor is not None:
            if (refine_factor > 0) != (_refine(self._index) is not None):
                raise ValueError(
                    f"refine_factor {refine_factor} does not fit this index, which was built "
                    f"{'with' if _refine(self._index) else 'without'} exact re-ranking"
                )
            update["pq_refine_factor"] = refine_factor
        self._config = VectorIndexConfig.model_validate({**self._config.model_dump(), **update})
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        """Push efSearch / nprobe / refine factor from the config into faiss."""
        cfg = self._config
        inner = _innermost(self._index)
        if cfg.kind == "hnsw":
            inner.hnsw.efSearch = cfg.hnsw_ef_search
        if cfg.kind == "ivfpq":
            inner.nprobe = min(cfg.ivf_nprobe, inner.nlist)
            refine = _refine(self._index)
            if refine is not None and cfg.pq_refine_factor > 0:
                refine.k_factor = float(cfg.pq_refine_factor)
            if self._gpu is not None:
                _set_gpu_nprobe(self._gpu, cfg.ivf_nprobe)

    # ----------------------------------------------------------------- GPU

    def to_gpu(self) -> tuple[bool, str]:
        """Search on a GPU copy when faiss sees a GPU (filtered searches stay on the
        CPU index). Returns (used_gpu, reason) for logs and ``GET /v1/bundle``."""
        gpu_index, used, reason = try_to_gpu(self._index)
        self._gpu = gpu_index if used else None
        self._apply_search_params()
        return used, reason

    # ----------------------------------------------------------------- validation

    def _prepare(self, vectors: np.ndarray, name: str) -> np.ndarray:
        """A C-contiguous float32 (n, d) copy of ``vectors``, L2-normalised."""
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} have shape {x.shape}; expected (n, {self.dim})")
        if x.dtype.kind != "f":
            raise ValueError(f"{name} have dtype {x.dtype}; expected float32")
        x = np.array(x, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(x).all():
            raise ValueError(f"{name} hold NaN or Inf values; expected finite numbers")
        norms = np.linalg.norm(x, axis=1)
        if np.any(norms == 0):
            raise ValueError(
                f"{name} {np.flatnonzero(norms == 0)[:5].tolist()} have zero length; "
                "expected non-zero vectors (they are L2-normalised)"
            )
        x /= norms[:, None]
        return x


# --------------------------------------------------------------------------- building


def _build(dim: int, config: VectorIndexConfig) -> faiss.Index:
    """A new, empty CPU index of ``config.kind`` for vectors of dimension ``dim``."""
    ip = faiss.METRIC_INNER_PRODUCT
    if config.kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if config.kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, ip)
        hnsw.hnsw.efConstruction = config.hnsw_ef_construction
        hnsw.hnsw.efSearch = config.hnsw_ef_search
        return faiss.IndexIDMap2(hnsw)
    if dim % config.pq_m:
        divisors = [m for m in (8, 16, 32, 64) if dim % m == 0]
        raise ValueError(
            f"pq_m={config.pq_m} does not divide dim={dim}; expected a divisor of {dim}"
            + (f" such as {divisors}" if divisors else "")
        )
    quantizer = faiss.IndexFlatIP(dim)
    ivfpq = faiss.IndexIVFPQ(quantizer, dim, config.ivf_nlist, config.pq_m, PQ_NBITS, ip)
    ivfpq.nprobe = config.ivf_nprobe
    if config.pq_refine_factor == 0:
        return ivfpq
    refine = faiss.IndexRefineFlat(ivfpq)
    refine.k_factor = float(config.pq_refine_factor)
    return faiss.IndexIDMap2(refine)


class _Found:
    """What a loaded faiss index turned out to be."""

    def __init__(self, kind: IndexKind, params: dict[str, int]) -> None:
        self.kind = kind
        self.params = params


def _describe(index: faiss.Index, path: Path) -> _Found:
    """Recognise the structures :func:`_build` makes and read their parameters."""
    expected = (
        "expected a SeisLens index (IndexIDMap2 over IndexFlatIP or IndexHNSWFlat, "
        "IndexIVFPQ, or IndexIDMap2 over IndexRefineFlat over IndexIVFPQ) with the "
        "inner-product metric"
    )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"index file {path} does not use the inner-product metric; {expected}")
    top = faiss.downcast_index(index)
    inner = faiss.downcast_index(top.index) if isinstance(top, faiss.IndexIDMap2) else top
    if isinstance(inner, faiss.IndexFlat) and top is not inner:
        return _Found("flat", {})
    if isinstance(inner, faiss.IndexHNSWFlat) and top is not inner:
        return _Found(
            "hnsw",
            {
                "hnsw_m": int(inner.hnsw.nb_neighbors(1)),
                "hnsw_ef_construction": int(inner.hnsw.efConstruction),
                "hnsw_ef_search": int(inner.hnsw.efSearch),
            },
        )
    refine_factor = 0
    if isinstance(inner, faiss.IndexRefine) and top is not inner:
        refine_factor = max(1, round(inner.k_factor))
        inner = faiss.downcast_index(inner.base_index)
    if isinstance(inner, faiss.IndexIVFPQ):
        return _Found(
            "ivfpq",
            {
                "ivf_nlist": int(inner.nlist),
                "pq_m": int(inner.pq.M),
                "ivf_nprobe": int(inner.nprobe),
                "pq_refine_factor": refine_factor,
            },
        )
    raise ValueError(f"index file {path} holds a faiss {type(top).__name__}; {expected}")


def _merge_config(found: _Found, config: VectorIndexConfig | None) -> VectorIndexConfig:
    """The file's build parameters with the caller's search parameters."""
    build_keys = {"hnsw_m", "hnsw_ef_construction", "ivf_nlist", "pq_m"}
    if config is None:
        return VectorIndexConfig(kind=found.kind, **found.params)
    values = config.model_dump()
    for key, value in found.params.items():
        if key in build_keys:
            values[key] = value
    has_refine = found.params.get("pq_refine_factor", 0) > 0
    if found.kind == "ivfpq" and has_refine != (config.pq_refine_factor > 0):
        values["pq_refine_factor"] = found.params["pq_refine_factor"]
    values["ivf_nprobe"] = min(values["ivf_nprobe"], values["ivf_nlist"])
    return VectorIndexConfig.model_validate(values)


# --------------------------------------------------------------------------- helpers


def _idmap(index: faiss.Index) -> faiss.IndexIDMap2 | None:
    """The id map at the top of ``index``, if any."""
    top = faiss.downcast_index(index)
    return top if isinstance(top, faiss.IndexIDMap2 | faiss.IndexIDMap) else None


def _refine(index: faiss.Index) -> faiss.IndexRefine | None:
    """The exact re-ranking layer under the id map, if any."""
    idmap = _idmap(index)
    if idmap is None:
        return None
    inner = faiss.downcast_index(idmap.index)
    return inner if isinstance(inner, faiss.IndexRefine) else None


def _full_vector_store(index: faiss.Index) -> faiss.IndexFlat | None:
    """The flat index holding every vector in storage order (positions of the id map):
    the flat index itself, HNSW's storage, or the refinement layer; None for plain
    IVF-PQ, which keeps only compressed codes."""
    inner = _innermost(index)
    if isinstance(inner, faiss.IndexFlat) and _idmap(index) is not None:
        return inner
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.downcast_index(inner.storage)
    refine = _refine(index)
    return faiss.downcast_index(refine.refine_index) if refine is not None else None


def _innermost(index: faiss.Index) -> faiss.Index:
    """The Flat, HNSW or IVF-PQ index under any id map and refinement layer."""
    idmap = _idmap(index)
    inner = faiss.downcast_index(idmap.index) if idmap is not None else faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexRefine):
        inner = faiss.downcast_index(inner.base_index)
    return inner


def _check_ids(
    ids: np.ndarray, n: int | None, name: str = "ids", unique: bool = True
) -> np.ndarray:
    """ids as a C-contiguous int64 (n,) array of values >= 0 (and unique)."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "(m,)"
        raise ValueError(f"{name} have shape {arr.shape}; expected {want}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} have dtype {arr.dtype}; expected int64")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} include negative values; expected ids >= 0 (-1 marks no result)")
    if unique and np.unique(arr).size != arr.size:
        raise ValueError(f"{name} contain duplicates; expected unique ids")
    return arr


def _empty_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (q, k) of -inf and ids (q, k) of -1."""
    return np.full((n_queries, k), -np.inf, np.float32), np.full((n_queries, k), -1, np.int64)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename on POSIX file systems (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _set_gpu_nprobe(gpu_index: faiss.Index, nprobe: int) -> None:
    """Set nprobe on a GPU IVF index (best effort: the wrapper types vary)."""
    with contextlib.suppress(AttributeError, RuntimeError):
        faiss.GpuParameterSpace().set_index_parameter(gpu_index, "nprobe", nprobe)


def try_to_gpu(index: faiss.Index) -> tuple[faiss.Index, bool, str]:
    """Copy ``index`` to GPU 0 when faiss has GPU support and sees a GPU.

    Returns:
        (index to search, used_gpu, reason): the GPU copy, True and a description;
        or the CPU ``index`` unchanged, False and why the GPU is not used.
    """
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if n_gpus <= 0:
        return index, False, "faiss sees no GPU (faiss.get_num_gpus() == 0); searching on CPU"
    if not hasattr(faiss, "StandardGpuResources"):
        return index, False, "this faiss build has no GPU support; searching on CPU"
    if isinstance(_innermost(index), faiss.IndexHNSW):
        return index, False, "faiss has no GPU HNSW index; searching on CPU"
    try:
        resources = faiss.StandardGpuResources()
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
        gpu_index.seislens_gpu_resources = resources  # keep the resources alive
    except Exception as exc:  # faiss raises RuntimeError or SWIG errors
        return index, False, f"copying the index to GPU failed ({exc}); searching on CPU"
    return gpu_index, True, f"searching on GPU 0 of {n_gpus} (faiss {faiss.__version__})"
