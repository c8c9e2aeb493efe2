"""Velocity-model libraries: discovery, the batch (re)build job and the loaded library.

A library index lives in ``<bundle>/index/velocity-<build id>/``:

* ``vectors.faiss`` — FAISS index of the model embeddings under ids 0..N-1;
* ``items.sqlite``  — metadata (family, descriptors, provenance, row);
* ``models.npy``    — (N, 70, 70) float16 velocity models in m/s, memory-mapped.

A build embeds the sources in parts of ``part_size`` models, each saved atomically
in a work folder named by the build request, so a rerun after an interruption skips
the parts already done. The finished index is written to a new folder and the bundle
manifest is switched to it in one atomic rename; the previous index stays in use
until then and is removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from seislens.index.bundle import (
    BundleError,
    encoder_hash,
    read_manifest,
    verify_index,
    write_manifest,
)
from seislens.index.metadata import ItemRecord, MetadataStore
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.models.contract import VELOCITY_MODEL_SHAPE
from seislens.models.descriptors import compute_descriptors, descriptors_as_dict
from seislens.models.embedders import VelocityEmbedder
from tqdm import tqdm

INDEX_NAME = "velocity"


@dataclass(frozen=True)
class ModelSource:
    """One .npy file of velocity models: (n, 70, 70) or (n, 1, 70, 70) in m/s."""

    path: Path
    family: str
    count: int

    def read(self, start: int, stop: int) -> np.ndarray:
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


def discover_sources(paths: list[Path], max_per_folder: int | None = None) -> list[ModelSource]:
    """Velocity-model files under each path (an OpenFWI folder, a folder of model .npy
    files, a parent of such folders, or one .npy file), checked for shape."""
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
    sources, taken = [], {}
    for path, fam in files:
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


def _batches(sources: list[ModelSource], size: int) -> Iterator[tuple[ModelSource, int, int]]:
    for src in sources:
        for s in range(0, src.count, size):
            yield src, s, min(src.count, s + size)


def _request_id(sources: list[ModelSource], enc_sha: str, part: int, base: int) -> str:
    text = json.dumps(
        [[str(s.path.resolve()), s.count, s.path.stat().st_size] for s in sources]
        + [enc_sha, part, base]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _embed_parts(
    embedder: VelocityEmbedder,
    sources: list[ModelSource],
    work: Path,
    part_size: int,
    progress: bool,
) -> list[Path]:
    """Embed every source in parts saved atomically to ``work``; skip finished parts."""
    work.mkdir(parents=True, exist_ok=True)
    total = sum(s.count for s in sources)
    bar = tqdm(total=total, desc="embedding library", unit="model", disable=not progress)
    parts = []
    for k, (src, a, b) in enumerate(_batches(sources, part_size)):
        path = work / f"part-{k:06d}.npz"
        parts.append(path)
        if not path.exists():
            models = src.read(a, b)
            vectors = embedder.embed_models(models)
            tmp = work / f"part-{k:06d}.tmp.npz"
            np.savez(
                tmp,
                vectors=vectors,
                models=models.astype(np.float16),
                desc=compute_descriptors(models),
                family=np.array([src.family] * (b - a)),
                source=np.array([f"{src.path}[{i}]" for i in range(a, b)]),
            )
            os.replace(tmp, path)
        bar.update(b - a)
    bar.close()
    return parts


def _assemble(
    parts: list[Path], out: Path, dim: int, cfg: VectorIndexConfig, base: LoadedLibrary | None
) -> int:
    """Write vectors.faiss, items.sqlite and models.npy into ``out``; returns the count."""
    out.mkdir(parents=True)
    n_old = len(base) if base else 0
    sizes = [len(np.load(p)["family"]) for p in parts]
    n = n_old + sum(sizes)
    models = np.lib.format.open_memmap(out / "models.npy", "w+", np.float16, (n, 70, 70))
    index = VectorIndex(dim, cfg)
    store = MetadataStore.create(out / "items.sqlite")
    if base:
        models[:n_old] = base.models
        store.add_many(base.store.get_many(np.arange(n_old)))
        index = VectorIndex.load(base.path / "vectors.faiss", cfg)
    if cfg.kind == "ivfpq" and not index.is_trained:
        index.train(np.concatenate([np.load(p)["vectors"] for p in parts]))
    row = n_old
    for p in parts:
        z = np.load(p)
        k = len(z["family"])
        ids = np.arange(row, row + k, dtype=np.int64)
        index.add(z["vectors"], ids)
        models[row : row + k] = z["models"]
        store.add_many(
            ItemRecord(int(i), "velocity", str(f), int(i), str(s), descriptors_as_dict(d))
            for i, f, s, d in zip(ids, z["family"], z["source"], z["desc"], strict=True)
        )
        row += k
    models.flush()
    del models
    store.close()
    index.save(out / "vectors.faiss")
    return n


def build_velocity_index(
    bundle: Path,
    libraries: list[Path],
    config: VectorIndexConfig | None = None,
    add: bool = False,
    part_size: int = 1024,
    max_per_folder: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed libraries into the bundle's velocity index (a rebuild, or ``add``).

    Returns the manifest's new index entry.
    """
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if "velocity" not in manifest:
        raise BundleError(f"{bundle} has no velocity encoders; export a run first")
    cfg = config or VectorIndexConfig()
    base = None
    if add:
        if INDEX_NAME not in manifest.get("indexes", {}):
            raise BundleError(f"{bundle} has no velocity index to add to; build one first")
        base = LoadedLibrary.open(bundle, manifest)
        cfg = VectorIndexConfig.model_validate(manifest["indexes"][INDEX_NAME]["config"])
    enc_sha = encoder_hash(manifest, "velocity", "velocity")
    sources = discover_sources(libraries, max_per_folder)
    embedder = VelocityEmbedder(bundle, manifest["velocity"])
    request = _request_id(sources, enc_sha, part_size, len(base) if base else 0)
    work = bundle / "index" / f".work-{request}"
    parts = _embed_parts(embedder, sources, work, part_size, progress)
    build_id = f"{INDEX_NAME}-{time.strftime('%Y%m%dT%H%M%S')}-{request[:6]}"
    out = bundle / "index" / build_id
    shutil.rmtree(out, ignore_errors=True)
    n = _assemble(parts, out, embedder.embed_dim, cfg, base)
    old = manifest.get("indexes", {}).get(INDEX_NAME)
    entry = {
        "branch": "velocity",
        "encoder": "velocity",
        "encoder_sha256": enc_sha,
        "path": f"index/{build_id}",
        "count": n,
        "config": cfg.model_dump(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": sorted({str(s.path.parent) for s in sources})
        + (old["sources"] if add and old else []),
    }
    manifest = read_manifest(bundle)  # re-read: the switch is one atomic write
    manifest.setdefault("indexes", {})[INDEX_NAME] = entry
    write_manifest(bundle, manifest)
    _prune_old_indexes(bundle, keep={entry["path"], old["path"] if old else ""})
    shutil.rmtree(work, ignore_errors=True)
    return entry


def _prune_old_indexes(bundle: Path, keep: set[str]) -> None:
    """Remove velocity index folders older than the previous one.

    The previous folder stays: a running service may still hold it open (SQLite opens
    a connection per thread lazily) until it reloads the bundle.
    """
    for folder in (bundle / "index").glob(f"{INDEX_NAME}-*"):
        if f"index/{folder.name}" not in keep:
            shutil.rmtree(folder, ignore_errors=True)


class LoadedLibrary:
    """A velocity library opened for search: FAISS + SQLite + memory-mapped models."""

    def __init__(self, path: Path, index: VectorIndex, store: MetadataStore, models: np.ndarray):
        self.path = path
        self.index = index
        self.store = store
        self.models = models

    @classmethod
    def open(
        cls, bundle: Path, manifest: dict[str, Any], config: VectorIndexConfig | None = None
    ) -> LoadedLibrary:
        """Open the bundle's velocity index after checking it belongs to the encoder."""
        entry = verify_index(manifest, INDEX_NAME)
        path = Path(bundle) / entry["path"]
        if not path.is_dir():
            raise BundleError(f"{bundle}: index folder {entry['path']} is missing")
        cfg = config or VectorIndexConfig.model_validate(entry["config"])
        index = VectorIndex.load(path / "vectors.faiss", cfg)
        models = np.load(path / "models.npy", mmap_mode="r")
        if index.ntotal != entry["count"] or len(models) != entry["count"]:
            raise BundleError(
                f"{bundle}: index {entry['path']} holds {index.ntotal} vectors and "
                f"{len(models)} models; the manifest says {entry['count']}"
            )
        return cls(path, index, MetadataStore.open(path / "items.sqlite"), models)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def descriptors(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), 9) descriptor vectors of the given ids."""
        from seislens.models.descriptors import DESCRIPTOR_NAMES

        recs = self.store.get_many([int(i) for i in ids])
        return np.array(
            [[r.descriptors[k] for k in DESCRIPTOR_NAMES] for r in recs if r is not None],
            dtype=np.float32,
        )

    def close(self) -> None:
        self.store.close()
