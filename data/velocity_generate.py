"""Generate OpenFWI-format synthetic datasets: velocity models, deepwave gathers, descriptors.

Sample ``i`` of dataset ``(family, seed)`` depends on nothing else, so the output is
byte-identical whatever the number of workers, and an interrupted run resumes at the
first shard that is not complete. Workers are processes with one torch thread each
(deepwave ignores ``OMP_NUM_THREADS``; one thread per process was the fastest layout
on the CPU). Workers draw the models and the physics themselves
(``VelocityGenConfig.physics``: ``seislens.data.velocity_physics``), and tasks are
queued ahead, so no worker waits while a finished shard is written.
"""

from __future__ import annotations

import json
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
from seislens.data.velocity_physics import PhysicsRanges, sample_forward
from seislens.models.descriptors import compute_descriptors
from tqdm import tqdm

from seislens import __version__

GENERATOR_VERSION = 2


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
    physics: PhysicsRanges | None = Field(
        None, description="per-sample physics ranges; None keeps OpenFWI's setting (the preset)"
    )

    def identity(self) -> dict[str, Any]:
        """The fields that define the dataset's content, as JSON values (as in the manifest)."""
        identity = {
            "family": self.family,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "generator_version": GENERATOR_VERSION,
            "forward": self.forward.model_dump(),
            "physics": self.physics.model_dump() if self.physics else None,
        }
        return json.loads(json.dumps(identity))


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


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


#: One worker task: (family, seed, first sample, count, physics ranges, base settings).
Task = tuple[str, int, int, int, dict[str, Any] | None, dict[str, Any]]


def _run_task(task: Task) -> tuple[int, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Models, gathers and drawn physics of ``count`` consecutive samples (the worker's job).

    Returns (first sample, models (b, 70, 70), gathers (b, shots, nt, nx), physics).
    """
    family, seed, start, count, ranges, base = task
    rng_ranges = PhysicsRanges(**ranges) if ranges is not None else None
    base_cfg = ForwardConfig(**base)
    models = velocity_models(family, seed, start, count)
    configs = [sample_forward(family, seed, start + k, rng_ranges, base_cfg) for k in range(count)]
    gathers = np.stack([model_gathers(m, c) for m, c in zip(models, configs, strict=True)])
    physics = [
        c.model_dump(exclude={"dx", "dt", "nt", "n_shots", "max_vel", "scale"}) for c in configs
    ]
    return start, models, gathers, physics


def _shard_plan(cfg: VelocityGenConfig) -> list[tuple[int, int, int]]:
    """(shard index (1-based), first sample, size) for every shard of the dataset."""
    plan = []
    for k, start in enumerate(range(0, cfg.count, cfg.shard_size)):
        plan.append((k + 1, start, min(cfg.shard_size, cfg.count - start)))
    return plan


def _tasks(cfg: VelocityGenConfig, todo: list[tuple[int, int, int]]) -> Iterator[Task]:
    ranges = cfg.physics.model_dump() if cfg.physics else None
    for _, start, size in todo:
        for s in range(start, start + size, cfg.chunk):
            n = min(cfg.chunk, start + size - s)
            yield (cfg.family, cfg.seed, s, n, ranges, cfg.forward.model_dump())


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
        pool = mp.get_context("spawn").Pool(cfg.workers, _worker_init)
    else:
        _worker_init()
    try:
        # Workers draw the models themselves and tasks are queued ahead, so they keep
        # modelling while this process writes a finished shard.
        tasks = _tasks(cfg, todo)
        results = pool.imap(_run_task, tasks) if pool else map(_run_task, tasks)
        pending: dict[int, list[tuple[int, np.ndarray, np.ndarray, list[dict[str, Any]]]]] = {}
        shard_of = {start: (index, start, size) for index, start, size in todo}
        starts = sorted(shard_of)
        for result in results:
            first = max(s for s in starts if s <= result[0])
            pending.setdefault(first, []).append(result)
            bar.update(len(result[1]))
            index, _, size = shard_of[first]
            if sum(len(r[1]) for r in pending[first]) == size:
                parts = sorted(pending.pop(first), key=lambda r: r[0])
                _write_shard(
                    out,
                    index,
                    np.concatenate([r[2] for r in parts]),
                    np.concatenate([r[1] for r in parts]),
                    [p for r in parts for p in r[3]],
                )
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


def _write_shard(
    out: Path, index: int, gathers: np.ndarray, models: np.ndarray, physics: list[dict[str, Any]]
) -> None:
    """Write one shard; the model file last, so its presence marks the shard complete."""
    atomic_write_json(out / f"physics{index}.json", physics)
    atomic_save_npy(out / f"data{index}.npy", gathers.astype(np.float32))
    atomic_save_npy(out / f"desc{index}.npy", compute_descriptors(models))
    atomic_save_npy(out / f"model{index}.npy", models[:, None].astype(np.float32))
