"""OpenFWI-format velocity datasets: shards on disk, the manifest, a paired dataset.

A dataset folder holds numbered shards, 1-based as in OpenFWI's downloads:

* ``data{i}.npy``  — (n, 5, 1000, 70) float32 gathers (shots, time at 1 ms, receivers);
* ``model{i}.npy`` — (n, 1, 70, 70) float32 velocity models in m/s;
* ``desc{i}.npy``  — (n, 9) float32 physical descriptors (ours; computed on demand and
  cached in memory when a folder of real OpenFWI files lacks them);
* ``seislens.json`` — the manifest (ours; optional for real OpenFWI folders).

Every shard file is written to a temporary name and renamed into place, so a folder
never holds a half-written shard.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from seislens.models.descriptors import compute_descriptors

MANIFEST = "seislens.json"
_SHARD_RE = re.compile(r"^(data|model|desc)(\d+)\.npy$")


class DatasetError(ValueError):
    """A dataset folder is missing, malformed or not the one expected."""


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as .npy via a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, payload: dict[str, Any] | list[Any]) -> None:
    """Write ``payload`` as indented JSON via a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_dataset_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc


def shard_indices(folder: Path) -> list[int]:
    """Sorted indices i of the ``data{i}.npy`` / ``model{i}.npy`` pairs in ``folder``.

    Raises:
        DatasetError: when a data file has no model file or the other way round.
    """
    folder = Path(folder)
    found: dict[str, set[int]] = {"data": set(), "model": set(), "desc": set()}
    for entry in folder.iterdir():
        m = _SHARD_RE.match(entry.name)
        if m:
            found[m.group(1)].add(int(m.group(2)))
    unpaired = found["data"] ^ found["model"]
    if unpaired:
        raise DatasetError(
            f"{folder}: data/model files do not pair up; unmatched shard indices "
            f"{sorted(unpaired)} (every data{{i}}.npy needs a model{{i}}.npy)"
        )
    return sorted(found["data"])


@dataclass
class Shard:
    """One memory-mapped shard: gathers (n,5,T,70), models (n,1,70,70), descriptors."""

    index: int
    data: np.ndarray
    model: np.ndarray
    desc_path: Path
    _desc: np.ndarray | None = field(default=None, repr=False)

    @property
    def descriptors(self) -> np.ndarray:
        """(n, 9) float32 descriptors, from ``desc{i}.npy`` or computed from the models."""
        if self._desc is None:
            if self.desc_path.exists():
                self._desc = np.load(self.desc_path)
            else:
                self._desc = compute_descriptors(np.asarray(self.model))
        return self._desc


def _open_shard(folder: Path, i: int) -> Shard:
    data = np.load(folder / f"data{i}.npy", mmap_mode="r")
    model = np.load(folder / f"model{i}.npy", mmap_mode="r")
    if data.ndim != 4 or model.ndim != 4 or model.shape[1] != 1:
        raise DatasetError(
            f"shard {i} in {folder}: expected data (n, shots, time, receivers) and model "
            f"(n, 1, nz, nx); found data {data.shape} and model {model.shape}"
        )
    if data.shape[0] != model.shape[0]:
        raise DatasetError(
            f"shard {i} in {folder}: data{i}.npy holds {data.shape[0]} samples but "
            f"model{i}.npy holds {model.shape[0]}; they must match"
        )
    return Shard(i, data, model, folder / f"desc{i}.npy")


class OpenFWIDataset:
    """Gathers, velocity models and descriptors of an OpenFWI-format folder, by index.

    Shards are memory-mapped; nothing is read until an item is asked for. Works on real
    OpenFWI downloads (no manifest, no descriptor files) and on our generated folders.

    Args:
        folder: the dataset folder.
        expect_shape: when given, the (shots, time, receivers) shape every gather must
            have; a folder of another shape raises DatasetError.
    """

    def __init__(self, folder: Path | str, expect_shape: tuple[int, int, int] | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder} is not a folder")
        indices = shard_indices(self.folder)
        if not indices:
            raise DatasetError(
                f"{self.folder} holds no OpenFWI shards (expected data1.npy + model1.npy …)"
            )
        self.manifest = read_dataset_manifest(self.folder)
        self.shards = [_open_shard(self.folder, i) for i in indices]
        shapes = {s.data.shape[1:] for s in self.shards}
        if len(shapes) != 1:
            raise DatasetError(f"{self.folder}: shards disagree on gather shape: {shapes}")
        self.gather_shape: tuple[int, ...] = shapes.pop()
        if expect_shape is not None and tuple(self.gather_shape) != tuple(expect_shape):
            raise DatasetError(
                f"{self.folder}: gathers have shape {self.gather_shape}; "
                f"expected {tuple(expect_shape)} (shots, time samples, receivers)"
            )
        sizes = np.array([s.data.shape[0] for s in self.shards])
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])

    @property
    def family(self) -> str:
        """The family named by the manifest, else the folder's name."""
        if self.manifest and self.manifest.get("family"):
            return str(self.manifest["family"])
        return self.folder.name.lower()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[Shard, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.shards[k], index - int(self._offsets[k])

    def gather(self, index: int) -> np.ndarray:
        """(shots, time, receivers) float32 gather of sample ``index``."""
        shard, j = self._locate(index)
        return np.asarray(shard.data[j], dtype=np.float32)

    def velocity_model(self, index: int) -> np.ndarray:
        """(nz, nx) float32 velocity model (m/s) of sample ``index``."""
        shard, j = self._locate(index)
        return np.asarray(shard.model[j, 0], dtype=np.float32)

    def descriptors(self, index: int) -> np.ndarray:
        """(9,) float32 descriptors of sample ``index``."""
        shard, j = self._locate(index)
        return shard.descriptors[j]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gather, model, descriptors) of sample ``index``."""
        return self.gather(index), self.velocity_model(index), self.descriptors(index)

    def all_models(self) -> np.ndarray:
        """Every velocity model, (N, 70, 70) float32, read into memory (2 × 10⁴ B each)."""
        return np.concatenate([np.asarray(s.model[:, 0]) for s in self.shards])

    def all_descriptors(self) -> np.ndarray:
        """Every descriptor vector, (N, 9) float32."""
        return np.concatenate([s.descriptors for s in self.shards])

    def iter_gathers(self, batch: int = 64):
        """Yield (start, gathers (b, shots, time, receivers)) batches in order."""
        start = 0
        for shard in self.shards:
            n = shard.data.shape[0]
            for j in range(0, n, batch):
                block = np.asarray(shard.data[j : j + batch], dtype=np.float32)
                yield start + j, block
            start += n
