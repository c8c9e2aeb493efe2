"""Training data of the velocity branch: folders → preprocessed arrays, with a disk cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from seislens.data.openfwi import MANIFEST, DatasetError, OpenFWIDataset, atomic_save_npy
from seislens.models.contract import GATHER_SHAPE
from seislens.models.velocity_preprocess import (
    GatherPreprocess,
    Preprocessing,
    fit_preprocessing,
    gather_features,
)
from tqdm import tqdm


def expand_folders(paths: list[str] | list[Path]) -> list[Path]:
    """OpenFWI folders named directly, or found one level below a parent folder."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise DatasetError(f"data folder {p} does not exist")
        if (p / MANIFEST).exists() or any(p.glob("data*.npy")):
            out.append(p)
            continue
        children = sorted(c for c in p.iterdir() if c.is_dir() and any(c.glob("data*.npy")))
        if not children:
            raise DatasetError(f"{p} holds no OpenFWI folders (data{{i}}.npy + model{{i}}.npy)")
        out.extend(children)
    return out


@dataclass
class VelocityArrays:
    """Raw-unit arrays of a dataset, paired by row."""

    velocity_models: np.ndarray  # (N, 70, 70) m/s
    descriptors: np.ndarray  # (N, 9)
    families: np.ndarray  # (N,) str
    sources: list[str]  # (N,) "folder:index"
    folders: list[Path]

    def __len__(self) -> int:
        return len(self.velocity_models)


def open_datasets(folders: list[Path], max_per_folder: int | None = None) -> list[OpenFWIDataset]:
    """Open every folder, checking that gathers have OpenFWI's (5, 1000, 70) shape."""
    return [OpenFWIDataset(f, expect_shape=GATHER_SHAPE) for f in folders]


def collect_arrays(datasets: list[OpenFWIDataset], max_per_folder: int | None) -> VelocityArrays:
    """Velocity models, descriptors, families and provenance of every sample, in order."""
    velocity_models, desc, fams, srcs = [], [], [], []
    for ds in datasets:
        n = min(len(ds), max_per_folder or len(ds))
        velocity_models.append(ds.all_models()[:n])
        desc.append(ds.all_descriptors()[:n])
        fams += [ds.family] * n
        srcs += [f"{ds.folder}:{i}" for i in range(n)]
    return VelocityArrays(
        np.concatenate(velocity_models),
        np.concatenate(desc),
        np.asarray(fams),
        srcs,
        [d.folder for d in datasets],
    )


def _cache_key(datasets: list[OpenFWIDataset], n_per: list[int], cfg: GatherPreprocess) -> str:
    parts = [cfg.model_dump_json()]
    for ds, n in zip(datasets, n_per, strict=True):
        parts.append(f"{ds.folder.resolve()}:{n}:{json.dumps(ds.manifest, sort_keys=True)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def gather_feature_cache(
    datasets: list[OpenFWIDataset],
    max_per_folder: int | None,
    cfg: GatherPreprocess,
    cache_dir: Path,
    progress: bool = True,
) -> np.ndarray:
    """Preprocessed gathers of every sample as float16 (N, shots, T', R), cached on disk.

    The cache file is named by a hash of the folders, their manifests and the
    preprocessing parameters, so a changed dataset or setting is never served stale.
    """
    n_per = [min(len(ds), max_per_folder or len(ds)) for ds in datasets]
    path = Path(cache_dir) / f"gathers-{_cache_key(datasets, n_per, cfg)}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    t = cfg.n_time // cfg.decimate
    out = np.empty((sum(n_per), GATHER_SHAPE[0], t, GATHER_SHAPE[2]), np.float16)
    bar = tqdm(total=len(out), desc="preprocessing gathers", unit="gather", disable=not progress)
    row = 0
    for ds, n in zip(datasets, n_per, strict=True):
        for start, block in ds.iter_gathers(batch=100):
            if start >= n:
                break
            block = block[: n - start]
            out[row : row + len(block)] = gather_features(block, cfg)
            row += len(block)
            bar.update(len(block))
    bar.close()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    atomic_save_npy(path, out)
    return np.load(path, mmap_mode="r")  # memory-mapped, so worker processes can share it


def fit_stats(
    datasets: list[OpenFWIDataset], arrays: VelocityArrays, cfg: GatherPreprocess, seed: int
) -> Preprocessing:
    """Fit the global preprocessing statistics on up to 256 training gathers."""
    rng = np.random.default_rng(seed)
    picks = []
    for ds in datasets:
        idx = rng.choice(len(ds), size=min(len(ds), max(1, 256 // len(datasets))), replace=False)
        picks += [ds.gather(int(i)) for i in np.sort(idx)]
    return fit_preprocessing(np.stack(picks), arrays.descriptors, cfg)


def split_rows(families: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Train and validation rows: a seeded ``val_fraction`` of each family held out."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for fam in sorted(set(families.tolist())):
        rows = np.flatnonzero(families == fam)
        rows = rows[rng.permutation(len(rows))]
        k = round(val_fraction * len(rows))
        val.append(rows[:k])
        train.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
