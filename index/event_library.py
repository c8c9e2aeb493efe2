"""Event libraries: the batch (re)build job and the loaded library (no torch).

An events index lives in ``<bundle>/index/events-<build id>/``:

* ``vectors.faiss`` — FAISS index of the spectrum embeddings under ids 0..N-1;
* ``items.sqlite``  — one record per trace: kind ``"event"``, family = its label
  (earthquake, explosion, surface, noise), source ``<folder>::<trace_name>``, and
  metadata (trace name, station, split, magnitude, depth, distance, back-azimuth, SNR,
  P pick, times, the window used);
* ``labels.npy``    — (N,) int8 class index (``CLASSES`` order; -1 for unknown);
* ``info.npy``      — (N, 8) float32 SeisCLIP info fields of each indexed window.

Each library folder is SeisBench-format; its traces (by default those of its ``train``
split with a known label) are cut and transformed by the serving code path with the
bundle's preprocessing settings (window on the catalogued P pick when there is one) and
embedded by the bundle's ONNX spectrum encoder. The build runs in parts of ``part_size``
traces saved atomically in a work folder named by the request, so a rerun after an
interruption skips finished parts; the finished index is written to a new folder and
the manifest switched to it in one atomic write (``manifest["indexes"]["events"]``), the
old folder removed afterwards. :meth:`LoadedEventLibrary.open` refuses an index built
with another spectrum encoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.event_dataset import UNKNOWN, EventDataset, EventDatasetError, find_column
from seislens.data.event_views import WindowMode, trace_views
from seislens.index.bundle import (
    BundleError,
    encoder_hash,
    read_manifest,
    verify_index,
    write_manifest,
)
from seislens.index.metadata import ItemRecord, MetadataStore
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_preprocess import EventInputError
from tqdm import tqdm

INDEX_NAME = "events"
ENCODER = "spectrum"

METADATA_FIELDS: dict[str, tuple[str, ...]] = {
    "magnitude": ("source_magnitude",),
    "magnitude_type": ("source_magnitude_type",),
    "depth_km": ("source_depth_km",),
    "distance_km": ("path_ep_distance_km", "source_distance_km", "path_hyp_distance_km"),
    "back_azimuth_deg": ("path_back_azimuth_deg", "back_azimuth_deg"),
    "snr_db": ("trace_snr_db",),
    "p_arrival_sample": ("trace_p_arrival_sample",),
    "trace_start_time": ("trace_start_time",),
    "source_origin_time": ("source_origin_time",),
    "source_latitude_deg": ("source_latitude_deg",),
    "source_longitude_deg": ("source_longitude_deg",),
    "source_id": ("source_id", "event_id"),
    "split": ("split",),
}
"""Metadata kept per indexed trace (first matching column, case-insensitive)."""


@dataclass
class EventSource:
    """The rows of one SeisBench folder to index."""

    folder: Path
    dataset: EventDataset
    rows: np.ndarray
    split: str | None

    @property
    def count(self) -> int:
        return len(self.rows)


def discover_event_sources(
    paths: list[Path],
    split: str | None = "train",
    max_per_folder: int | None = None,
    include_unknown: bool = False,
) -> list[EventSource]:
    """The traces to index in each SeisBench folder: one split (None: all), labelled
    ones only unless ``include_unknown``, the first ``max_per_folder`` of them."""
    sources = []
    for p in map(Path, paths):
        if not p.exists():
            raise BundleError(f"library path {p} does not exist")
        try:
            ds = EventDataset(p, split=split)
        except EventDatasetError as exc:
            raise BundleError(f"library {p}: {exc}") from exc
        rows = np.arange(len(ds)) if include_unknown else np.flatnonzero(ds.label_ids >= 0)
        if max_per_folder is not None:
            rows = rows[:max_per_folder]
        if len(rows):
            sources.append(EventSource(p, ds, rows, split))
    if not sources:
        raise BundleError(
            f"no labelled traces{f' in split {split!r}' if split else ''} under "
            f"{', '.join(map(str, paths))}"
        )
    return sources


def _batches(sources: list[EventSource], size: int) -> Iterator[tuple[EventSource, np.ndarray]]:
    for src in sources:
        for s in range(0, src.count, size):
            yield src, src.rows[s : s + size]


def _request_id(sources: list[EventSource], enc_sha: str, part: int, base: int, window: str) -> str:
    text = json.dumps(
        [
            [
                str(s.folder.resolve()),
                s.split,
                s.count,
                hashlib.sha256(s.rows.tobytes()).hexdigest(),
                sorted(p.stat().st_size for p in s.folder.glob("*.csv")),
            ]
            for s in sources
        ]
        + [enc_sha, part, base, window]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _clean(value: Any) -> Any:
    """JSON-friendly metadata value (NaN → None, NumPy scalars → Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row_metadata(ds: EventDataset, i: int, columns: dict[str, str | None]) -> dict[str, Any]:
    """A trace's metadata: its SeisBench ``trace_name`` (and the writer's original name
    when the traces were bucketed), ``NET.STA``, and :data:`METADATA_FIELDS`."""
    row = ds.metadata.iloc[i]
    meta: dict[str, Any] = {"trace_name": str(row["trace_name"])}
    if isinstance(row.get("trace_name_original"), str):
        meta["trace_name_original"] = row["trace_name_original"]
    net = row.get("station_network_code")
    sta = row.get("station_code")
    if isinstance(sta, str):
        meta["station"] = f"{net}.{sta}" if isinstance(net, str) else sta
    for key, column in columns.items():
        if column is not None:
            meta[key] = _clean(row[column])
    return meta


def _embed_parts(
    embedder: EventEmbedder,
    sources: list[EventSource],
    work: Path,
    part_size: int,
    window: WindowMode,
    progress: bool,
) -> list[Path]:
    """Embed every source in parts saved atomically to ``work``; skip finished parts."""
    work.mkdir(parents=True, exist_ok=True)
    total = sum(s.count for s in sources)
    bar = tqdm(total=total, desc="embedding events", unit="trace", disable=not progress)
    parts = []
    for k, (src, rows) in enumerate(_batches(sources, part_size)):
        path = work / f"part-{k:06d}.npz"
        parts.append(path)
        if not path.exists():
            columns = {
                key: find_column(src.dataset.metadata, c) for key, c in METADATA_FIELDS.items()
            }
            spectra, info, labels, metas, names = [], [], [], [], []
            for i in rows:
                try:
                    (view,) = trace_views(src.dataset, int(i), [window], embedder.pre)
                except EventInputError:
                    continue
                spectra.append(view.spectrum)
                info.append(view.info)
                labels.append(str(src.dataset.labels[i]))
                meta = _row_metadata(src.dataset, int(i), columns)
                meta |= {
                    "window_start_s": view.start_s,
                    "window_rule": view.rule,
                    "dataset": str(src.folder),
                }
                metas.append(json.dumps(meta, default=_clean))
                names.append(f"{src.folder}::{meta['trace_name']}")
            vectors = (
                embedder.embed_spectra(np.stack(spectra))
                if spectra
                else np.zeros((0, embedder.embed_dim), np.float32)
            )
            tmp = work / f"part-{k:06d}.tmp.npz"
            np.savez(
                tmp,
                vectors=vectors,
                info=np.stack(info) if info else np.zeros((0, 8), np.float32),
                labels=np.array(labels, dtype=str),
                metadata=np.array(metas, dtype=str),
                source=np.array(names, dtype=str),
                refused=np.array(len(rows) - len(spectra)),
            )
            os.replace(tmp, path)
        bar.update(len(rows))
    bar.close()
    return parts


def _assemble(
    parts: list[Path],
    out: Path,
    dim: int,
    cfg: VectorIndexConfig,
    base: LoadedEventLibrary | None,
) -> dict[str, Any]:
    """Write vectors.faiss, items.sqlite, labels.npy and info.npy into ``out``."""
    out.mkdir(parents=True)
    n_old = len(base) if base else 0
    sizes = [len(np.load(p)["labels"]) for p in parts]
    n = n_old + sum(sizes)
    info = np.zeros((n, 8), np.float32)
    labels = np.full(n, -1, np.int8)
    index = VectorIndex(dim, cfg)
    store = MetadataStore.create(out / "items.sqlite")
    if base:
        info[:n_old] = base.info
        labels[:n_old] = base.labels
        store.add_many(r for r in base.store.get_many(np.arange(n_old)) if r is not None)
        index = VectorIndex.load(base.path / "vectors.faiss", cfg)
    if cfg.kind == "ivfpq" and not index.is_trained:
        index.train(np.concatenate([np.load(p)["vectors"] for p in parts]))
    row, refused = n_old, 0
    for p in parts:
        z = np.load(p)
        k = len(z["labels"])
        refused += int(z["refused"])
        if k == 0:
            continue
        ids = np.arange(row, row + k, dtype=np.int64)
        index.add(z["vectors"], ids)
        info[row : row + k] = z["info"]
        labels[row : row + k] = [CLASSES.index(x) if x in CLASSES else -1 for x in z["labels"]]
        store.add_many(
            ItemRecord(int(i), "event", str(lab), int(i), str(src), {}, json.loads(str(meta)))
            for i, lab, src, meta in zip(ids, z["labels"], z["source"], z["metadata"], strict=True)
        )
        row += k
    store.close()
    np.save(out / "info.npy", info)
    np.save(out / "labels.npy", labels)
    index.save(out / "vectors.faiss")
    per_class = {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)}
    if (labels < 0).any():
        per_class[UNKNOWN] = int((labels < 0).sum())
    return {"count": n, "refused": refused, "per_class": per_class}


def build_events_index(
    bundle: Path,
    libraries: list[Path],
    config: VectorIndexConfig | None = None,
    add: bool = False,
    split: str | None = "train",
    window: WindowMode = "catalog",
    part_size: int = 1024,
    max_per_folder: int | None = None,
    include_unknown: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed SeisBench-format folders into the bundle's events index (a rebuild, or
    ``add``). Returns the manifest's new index entry.

    Args:
        bundle: a bundle with an ``events`` section (``seislens export events``).
        libraries: SeisBench-format folders.
        config: the FAISS index kind (exact ``flat`` by default); ignored with ``add``.
        add: append to the existing events index instead of replacing it.
        split: the split of each folder to index ("train"; None: every trace).
        window: "catalog" (windows on catalogued P picks) or "auto" (as an upload
            without a pick).
        part_size: traces per resumable part.
        max_per_folder: cap on traces per folder.
        include_unknown: also index traces whose label maps to no class (family
            "unknown").
    """
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if "events" not in manifest:
        raise BundleError(f"{bundle} has no event encoders; export a run first (export events)")
    cfg = config or VectorIndexConfig()
    base = None
    if add:
        if INDEX_NAME not in manifest.get("indexes", {}):
            raise BundleError(f"{bundle} has no events index to add to; build one first")
        base = LoadedEventLibrary.open(bundle, manifest)
        cfg = VectorIndexConfig.model_validate(manifest["indexes"][INDEX_NAME]["config"])
    enc_sha = encoder_hash(manifest, "events", ENCODER)
    sources = discover_event_sources(libraries, split, max_per_folder, include_unknown)
    embedder = EventEmbedder(bundle, manifest["events"])
    request = _request_id(sources, enc_sha, part_size, len(base) if base else 0, window)
    work = bundle / "index" / f".work-{request}"
    parts = _embed_parts(embedder, sources, work, part_size, window, progress)
    build_id = f"{INDEX_NAME}-{time.strftime('%Y%m%dT%H%M%S')}-{request[:6]}"
    out = bundle / "index" / build_id
    shutil.rmtree(out, ignore_errors=True)
    try:
        built = _assemble(parts, out, embedder.embed_dim, cfg, base)
    finally:
        if base:
            base.close()
    old = manifest.get("indexes", {}).get(INDEX_NAME)
    entry = {
        "branch": "events",
        "encoder": ENCODER,
        "encoder_sha256": enc_sha,
        "path": f"index/{build_id}",
        "count": built["count"],
        "per_class": built["per_class"],
        "config": cfg.model_dump(),
        "window": window,
        "preprocessing": manifest["events"]["preprocessing"],
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": [{"folder": str(s.folder), "split": s.split, "traces": s.count} for s in sources]
        + (old.get("sources", []) if add and old else []),
        "refused": built["refused"] + (old.get("refused", 0) if add and old else 0),
    }
    manifest = read_manifest(bundle)  # re-read: the switch is one atomic write
    manifest.setdefault("indexes", {})[INDEX_NAME] = entry
    write_manifest(bundle, manifest)
    if old and old["path"] != entry["path"]:
        shutil.rmtree(bundle / old["path"], ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return entry


class LoadedEventLibrary:
    """An events index opened for search: FAISS + SQLite + labels and info arrays."""

    def __init__(
        self,
        path: Path,
        index: VectorIndex,
        store: MetadataStore,
        labels: np.ndarray,
        info: np.ndarray,
        entry: dict[str, Any],
    ):
        self.path = path
        self.index = index
        self.store = store
        self.labels = labels
        self.info = info
        self.entry = entry

    @classmethod
    def open(
        cls, bundle: Path, manifest: dict[str, Any], config: VectorIndexConfig | None = None
    ) -> LoadedEventLibrary:
        """Open the bundle's events index after checking it belongs to the bundle's
        spectrum encoder (BundleError otherwise)."""
        entry = verify_index(manifest, INDEX_NAME)
        if entry.get("branch") != "events" or entry.get("encoder") != ENCODER:
            raise BundleError(
                f"index {INDEX_NAME!r} is for {entry.get('branch')}/{entry.get('encoder')}; "
                f"expected events/{ENCODER}"
            )
        path = Path(bundle) / entry["path"]
        if not path.is_dir():
            raise BundleError(f"{bundle}: index folder {entry['path']} is missing")
        cfg = config or VectorIndexConfig.model_validate(entry["config"])
        index = VectorIndex.load(path / "vectors.faiss", cfg)
        labels = np.load(path / "labels.npy")
        info = np.load(path / "info.npy", mmap_mode="r")
        if index.ntotal != entry["count"] or len(labels) != entry["count"]:
            raise BundleError(
                f"{bundle}: index {entry['path']} holds {index.ntotal} vectors and "
                f"{len(labels)} labels; the manifest says {entry['count']}"
            )
        return cls(path, index, MetadataStore.open(path / "items.sqlite"), labels, info, entry)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine scores (Q, k) and ids (Q, k) of the most similar indexed events."""
        return self.index.search(queries, min(k, max(1, len(self))))

    def records(self, ids: np.ndarray) -> list[ItemRecord | None]:
        """Stored records of the given ids (None for -1 / missing)."""
        return self.store.get_many(np.asarray(ids).reshape(-1))

    def neighbour_labels(self, ids: np.ndarray) -> np.ndarray:
        """Class indices of the given ids (-1 where the id is -1 or the label unknown)."""
        ids = np.asarray(ids)
        return np.where(ids >= 0, self.labels[np.maximum(ids, 0)], -1)

    def close(self) -> None:
        self.store.close()
