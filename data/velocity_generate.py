"""Generate OpenFWI-format synthetic datasets: velocity models, deepwave gathers, descriptors.

Sample ``i`` of dataset ``(family, seed)`` depends on nothing else, so the output is
byte-identical whatever the number of workers, and an interrupted run resumes at the
first shard that is not complete. Workers are processes with one torch thread each
(deepwave ignores ``OMP_NUM_THREADS``; one thread per process was the fastest layout
on the CPU).
"""

from __future__ import annotations

import multiprocessing as mp
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.data.openfwi import (
    MANIFEST,
    DatasetError,
    atomic_save_npy,
    atomic_write_json,
    read_dataset_manifest,
)
from seislens.data.velocity_families import check_family, velocity_models
from seislens.data.velocity_forward import ForwardConfig, model_gathers
from seislens.models.descriptors import compute_descriptors
from tqdm import tqdm

from seislens import __version__

GENERATOR_VERSION = 1


class VelocityGenConfig(BaseModel):
    """What to generate; the fields other than ``count`` and ``workers`` fix the dataset."""

    model_config = ConfigDict(extra="forbid")

    family: str
    count: int = Field(gt=0)
    seed: int = 0
    shard_size: int = Field(500, gt=0)
    workers: int = Field(1, gt=0)
    chunk: int = Field(10, gt=0, description="samples per task sent to a worker")
    forward: ForwardConfig = ForwardConfig()

    def identity(self) -> dict[str, Any]:
        """The fields that define the dataset's content."""
        return {
            "family": self.family,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "generator_version": GENERATOR_VERSION,
            "forward": self.forward.model_dump(),
        }


def _library_versions() -> dict[str, str]:
    import deepwave
    import torch

    return {
        "seislens": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "deepwave": getattr(deepwave, "__version__", "unknown"),
        "python": platform.python_version(),
    }


def _check_folder(out: Path, cfg: VelocityGenConfig) -> dict[str, Any] | None:
    """Refuse a folder holding another dataset; return its manifest when it is ours."""
    manifest = read_dataset_manifest(out)
    if manifest is None:
        if any(out.glob("data*.npy")) or any(out.glob("model*.npy")):
            raise DatasetError(
                f"{out} already holds OpenFWI shards without a SeisLens manifest; "
                "choose an empty folder"
            )
        return None
    mine = cfg.identity()
    theirs = {k: manifest.get(k) for k in mine}
    if theirs != mine:
        diff = sorted(k for k in mine if theirs.get(k) != mine[k])
        raise DatasetError(
            f"{out} holds a different dataset (differs in {', '.join(diff)}: "
            f"{', '.join(f'{k}={theirs.get(k)!r}' for k in diff)}); choose another folder"
        )
    if manifest.get("count", 0) > cfg.count:
        raise DatasetError(
            f"{out} already holds {manifest['count']} samples of this dataset; "
            f"asked for {cfg.count}; use a count of at least {manifest['count']}"
        )
    return manifest


def _shard_done(out: Path, index: int, size: int) -> bool:
    paths = [out / f"{kind}{index}.npy" for kind in ("data", "model", "desc")]
    if not all(p.exists() for p in paths):
        return False
    return np.load(paths[1], mmap_mode="r").shape[0] == size


def _worker_init(forward: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(1)
    global _FORWARD
    _FORWARD = ForwardConfig(**forward)


_FORWARD: ForwardConfig | None = None


def _model_chunk(models: np.ndarray) -> np.ndarray:
    """Gathers of a chunk of models, (b, shots, nt, nx): the worker's task."""
    cfg = _FORWARD or ForwardConfig()
    return np.stack([model_gathers(m, cfg) for m in models])


def _shard_plan(cfg: VelocityGenConfig) -> list[tuple[int, int, int]]:
    """(shard index (1-based), first sample, size) for every shard of the dataset."""
    plan = []
    for k, start in enumerate(range(0, cfg.count, cfg.shard_size)):
        plan.append((k + 1, start, min(cfg.shard_size, cfg.count - start)))
    return plan


def _chunks(models: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    for s in range(0, len(models), chunk):
        yield models[s : s + chunk]


def generate_velocity_dataset(
    out: Path, cfg: VelocityGenConfig, progress: bool = True
) -> dict[str, Any]:
    """Generate (or resume) a dataset in ``out``; returns the written manifest.

    Raises:
        DatasetError: ``out`` holds another dataset or more samples than asked for.
        ValueError: an unknown family.
    """
    cfg = cfg.model_copy(update={"family": check_family(cfg.family)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_folder(out, cfg)
    plan = _shard_plan(cfg)
    todo = [p for p in plan if not _shard_done(out, p[0], p[2])]
    manifest = {
        **cfg.identity(),
        "format": "openfwi",
        "kind": "velocity",
        "count": cfg.count,
        "shards": len(plan),
        "gather_shape": [cfg.forward.n_shots, cfg.forward.nt, 70],
        "model_shape": [1, 70, 70],
        "versions": _library_versions(),
        "complete": False,
    }
    atomic_write_json(out / MANIFEST, manifest)
    done = sum(p[2] for p in plan) - sum(p[2] for p in todo)
    bar = tqdm(total=cfg.count, initial=done, unit="sample", disable=not progress, desc=cfg.family)
    t0 = time.perf_counter()
    pool = None
    if cfg.workers > 1:
        ctx = mp.get_context("spawn")
        pool = ctx.Pool(cfg.workers, _worker_init, (cfg.forward.model_dump(),))
    else:
        _worker_init(cfg.forward.model_dump())
    try:
        for index, start, size in todo:
            models = velocity_models(cfg.family, cfg.seed, start, size)
            chunks = _chunks(models, cfg.chunk)
            results = pool.imap(_model_chunk, chunks) if pool else map(_model_chunk, chunks)
            gathers = []
            for block in results:
                gathers.append(block)
                bar.update(len(block))
            _write_shard(out, index, np.concatenate(gathers), models)
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    elapsed = time.perf_counter() - t0
    manifest["complete"] = True
    manifest["last_run"] = {
        "samples": cfg.count - done,
        "seconds": round(elapsed, 2),
        "workers": cfg.workers,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def _write_shard(out: Path, index: int, gathers: np.ndarray, models: np.ndarray) -> None:
    """Write one shard; the model file last, so its presence marks the shard complete."""
    atomic_save_npy(out / f"data{index}.npy", gathers.astype(np.float32))
    atomic_save_npy(out / f"desc{index}.npy", compute_descriptors(models))
    atomic_save_npy(out / f"model{index}.npy", models[:, None].astype(np.float32))
