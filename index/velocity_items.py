"""Velocity-branch library items: velocity models (70, 70) in m/s from ``.npy`` files.

Stored beside the index: ``models.npy``, (N, 70, 70) float16 velocity models in m/s,
memory-mapped by the service. Each item's metadata record holds its family, its nine
physical descriptors and its provenance ``<file>[<row>]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from seislens.index.bundle import BundleError
from seislens.index.items import ArraySpec, ItemPart
from seislens.index.metadata import ItemKind
from seislens.models.contract import VELOCITY_MODEL_SHAPE
from seislens.models.descriptors import compute_descriptors, descriptors_as_dict
from seislens.models.manifest import BranchSection


@dataclass(frozen=True)
class VelocityItemOptions:
    """The velocity branch has no build options beyond the common ones."""


@dataclass(frozen=True)
class ModelSource:
    """One .npy file of velocity models: (n, 70, 70) or (n, 1, 70, 70) in m/s."""

    path: Path
    family: str
    count: int

    def read(self, start: int, stop: int) -> np.ndarray:
        """Models ``start``..``stop`` as (stop - start, 70, 70) float32 m/s."""
        arr = np.load(self.path, mmap_mode="r")
        block = np.asarray(arr[start:stop], dtype=np.float32)
        return block[:, 0] if block.ndim == 4 else block


def _family_of(folder: Path) -> str:
    manifest = folder / "seislens.json"
    if manifest.exists():
        fam = json.loads(manifest.read_text()).get("family")
        if fam:
            return str(fam)
    return folder.name.lower()


def _model_files(folder: Path) -> list[Path]:
    openfwi = sorted(folder.glob("model*.npy"), key=lambda p: (len(p.name), p.name))
    if openfwi:
        return openfwi
    return sorted(p for p in folder.glob("*.npy") if not p.name.startswith(("data", "desc")))


def _files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(model file, family) under each path, folders in sorted order."""
    folders: list[Path] = []
    files: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append((p, p.parent.name.lower()))
        elif p.is_dir():
            if _model_files(p):
                folders.append(p)
            else:
                folders += sorted(c for c in p.iterdir() if c.is_dir() and _model_files(c))
        else:
            raise BundleError(f"library path {p} does not exist")
    for f in folders:
        files += [(m, _family_of(f)) for m in _model_files(f)]
    if not files:
        raise BundleError(f"no velocity-model .npy files under {', '.join(map(str, paths))}")
    return files


def discover_sources(paths: list[Path], max_per_folder: int | None = None) -> list[ModelSource]:
    """Velocity-model files under each path (an OpenFWI folder, a folder of model .npy
    files, a parent of such folders, or one .npy file), checked for shape."""
    sources, taken = [], {}
    for path, fam in _files(paths):
        arr = np.load(path, mmap_mode="r")
        shape = arr.shape[1:] if arr.ndim == 3 else arr.shape[2:] if arr.ndim == 4 else None
        if shape != VELOCITY_MODEL_SHAPE or (arr.ndim == 4 and arr.shape[1] != 1):
            raise BundleError(
                f"{path}: shape {arr.shape}; expected velocity models (n, 70, 70) or (n, 1, 70, 70)"
            )
        key = str(path.parent)
        room = (max_per_folder or 1 << 62) - taken.get(key, 0)
        n = min(arr.shape[0], room)
        if n > 0:
            sources.append(ModelSource(path, fam, n))
            taken[key] = taken.get(key, 0) + n
    return sources


class VelocityItems:
    """Velocity models as library items (see the module docstring)."""

    kind: ClassVar[ItemKind] = "velocity"
    unit: ClassVar[str] = "model"
    arrays: ClassVar[dict[str, ArraySpec]] = {"models": ArraySpec("float16", VELOCITY_MODEL_SHAPE)}
    options_type: ClassVar[type] = VelocityItemOptions

    def discover(
        self, paths: list[Path], max_per_folder: int | None, options: VelocityItemOptions
    ) -> list[ModelSource]:
        return discover_sources(paths, max_per_folder)

    def fingerprint(self, source: ModelSource) -> Any:
        return [str(source.path.resolve()), source.count, source.path.stat().st_size]

    def embed(
        self,
        embedder: Any,
        source: ModelSource,
        start: int,
        stop: int,
        options: VelocityItemOptions,
    ) -> ItemPart:
        models = source.read(start, stop)
        return ItemPart(
            vectors=embedder.embed_velocity_models(models),
            arrays={"models": models.astype(np.float16)},
            family=[source.family] * (stop - start),
            source=[f"{source.path}[{i}]" for i in range(start, stop)],
            descriptors=[descriptors_as_dict(d) for d in compute_descriptors(models)],
        )

    def describe(self, sources: list[ModelSource], options: VelocityItemOptions) -> list[Any]:
        return sorted({str(s.path.parent) for s in sources})

    def entry_fields(
        self, section: BranchSection, options: VelocityItemOptions, arrays: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        return {}
