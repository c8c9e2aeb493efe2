"""The event branch's cache of training views (NumPy; memory-mapped float16 spectra).

``cache/<key>/`` holds every training and validation trace's views (see ``event_views``):
the catalogued-P window, the serve-like automatic window and randomly shifted windows,
as float16 spectra (N, K, 3, 50, 120) and float32 info vectors (N, K, 8), computed
once. The key hashes the dataset (each chunk's metadata bytes, waveform file size and
time), the preprocessing and window settings, the splits and caps, so a changed
dataset or setting is never served stale. A cache is built in a temp folder and
renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.event_dataset import EventDataset, dataset_chunks
from seislens.data.event_views import event_targets, trace_views
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import INFO_FIELDS, SPECTRUM_SHAPE
from seislens.models.event_preprocess import EventInputError
from seislens.training.event_config import EventTrainConfig
from seislens.training.runs import RunError
from tqdm import tqdm

CACHE_VERSION = 1


@dataclass
class ViewCache:
    """Cached views of the training and validation traces (memory-mapped spectra)."""

    path: Path
    spectra: np.ndarray  # (N, K, *SPECTRUM_SHAPE) float16
    info: np.ndarray  # (N, K, 8) float32
    labels: np.ndarray  # (N,) int64 class indices
    targets: np.ndarray  # (N, 3) float32, NaN where missing
    split: np.ndarray  # (N,) str
    valid: np.ndarray  # (N,) bool: False for traces the preprocessing refused
    meta: dict[str, Any]

    @property
    def n_views(self) -> int:
        return int(self.spectra.shape[1])

    def rows(self, split: str | None) -> np.ndarray:
        """Cache rows of one split that could be preprocessed."""
        if split is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero((self.split == split) & self.valid)


def dataset_fingerprint(folder: Path) -> list[dict[str, Any]]:
    """What identifies a SeisBench folder's content cheaply: per chunk, the metadata's
    SHA-256 and the waveform file's size and modification time."""
    out = []
    for chunk in dataset_chunks(folder):
        meta = folder / f"metadata{chunk}.csv"
        wave = folder / f"waveforms{chunk}.hdf5"
        digest = hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None
        stat = wave.stat() if wave.is_file() else None
        out.append(
            {
                "chunk": chunk,
                "metadata_sha256": digest,
                "waveforms_bytes": stat.st_size if stat else None,
                "waveforms_mtime_ns": stat.st_mtime_ns if stat else None,
            }
        )
    return out


def cache_key(cfg: EventTrainConfig) -> str:
    """Hash of the dataset and everything that shapes the cached views."""
    text = json.dumps(
        {
            "version": CACHE_VERSION,
            "dataset": dataset_fingerprint(Path(cfg.data.folder)),
            "preprocess": cfg.preprocess.model_dump(mode="json"),
            "window": cfg.window.model_dump(mode="json"),
            "data": cfg.data.model_dump(mode="json", exclude={"folder"}),
            "seed": cfg.seed,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _select(ds: EventDataset, split: str | None, cap: int | None, seed: int) -> np.ndarray:
    if split is None or "split" not in ds.metadata.columns:
        return np.zeros(0, np.int64)
    splits = ds.metadata["split"].astype(str).str.strip().str.lower().to_numpy()
    rows = np.flatnonzero((splits == split) & (ds.label_ids >= 0))
    if cap is not None and len(rows) > cap:
        rows = np.sort(np.random.default_rng([seed, 3]).choice(rows, cap, replace=False))
    return rows


def _views(cfg: EventTrainConfig, row: int) -> list[Any]:
    views: list[Any] = ["catalog"]
    if cfg.window.auto_view:
        views.append("auto")
    if cfg.window.shifted_views:
        rng = np.random.default_rng([cfg.seed, 7, row])
        views += [float(u) for u in rng.random(cfg.window.shifted_views)]
    return views


def load_view_cache(cfg: EventTrainConfig, root: Path, progress: bool = True) -> ViewCache:
    """The cache for ``cfg`` under ``root``, built (atomically) when missing."""
    folder = Path(cfg.data.folder)
    ds = EventDataset(folder)
    key = cache_key(cfg)
    path = Path(root) / key
    if not (path / "meta.json").is_file():
        _build_cache(cfg, ds, path, key, progress)
    meta = json.loads((path / "meta.json").read_text())
    return ViewCache(
        path=path,
        spectra=np.load(path / "spectra.npy", mmap_mode="r"),
        info=np.load(path / "info.npy"),
        labels=np.load(path / "labels.npy"),
        targets=np.load(path / "targets.npy"),
        split=np.load(path / "split.npy"),
        valid=np.load(path / "valid.npy"),
        meta=meta,
    )


def _build_cache(
    cfg: EventTrainConfig, ds: EventDataset, path: Path, key: str, progress: bool
) -> None:
    if "split" not in ds.metadata.columns:
        raise RunError(
            f"{cfg.data.folder}: metadata has no 'split' column; training needs one "
            "(train/dev/test per trace, as SeisBench datasets have)"
        )
    train = _select(ds, cfg.data.train_split, cfg.data.max_train, cfg.seed)
    val = _select(ds, cfg.data.val_split, cfg.data.max_val, cfg.seed)
    if len(train) == 0:
        splits = sorted(ds.metadata["split"].astype(str).unique())
        raise RunError(
            f"{cfg.data.folder}: no labelled trace in split {cfg.data.train_split!r} "
            f"(splits present: {splits}; labels map onto {list(CLASSES)})"
        )
    rows = np.concatenate([train, val])
    k = cfg.window.n_views
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        spectra = np.lib.format.open_memmap(
            tmp / "spectra.npy", "w+", np.float16, (len(rows), k, *SPECTRUM_SHAPE)
        )
        info = np.zeros((len(rows), k, len(INFO_FIELDS)), np.float32)
        valid = np.ones(len(rows), bool)
        t0 = time.perf_counter()
        bar = tqdm(rows, desc=f"caching {k} view(s) a trace", unit="trace", disable=not progress)
        for n, row in enumerate(bar):
            try:
                views = trace_views(
                    ds, int(row), _views(cfg, int(row)), cfg.preprocess, cfg.window.shift_range_s
                )
            except EventInputError:
                valid[n] = False
                continue
            for v, view in enumerate(views):
                spectra[n, v] = view.spectrum
                info[n, v] = view.info
        spectra.flush()
        del spectra
        np.save(tmp / "info.npy", info)
        np.save(tmp / "labels.npy", ds.label_ids[rows])
        np.save(tmp / "targets.npy", event_targets(ds)[rows].astype(np.float32))
        np.save(
            tmp / "split.npy",
            np.array([cfg.data.train_split] * len(train) + [cfg.data.val_split or ""] * len(val)),
        )
        np.save(tmp / "valid.npy", valid)
        np.save(tmp / "rows.npy", rows)
        unknown = int((ds.label_ids < 0).sum())
        meta = {
            "key": key,
            "folder": str(Path(cfg.data.folder).resolve()),
            "views": ["catalog"]
            + (["auto"] if cfg.window.auto_view else [])
            + ["shift"] * cfg.window.shifted_views,
            "train": len(train),
            "val": len(val),
            "refused": int((~valid).sum()),
            "unknown_labels_skipped": unknown,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
