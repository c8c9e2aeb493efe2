"""The index build job on Ray Data (``seislens index build --engine ray``).

The same build as :func:`seislens.index.builder.build` — the same parts, request id,
write-beside folder, quantiser training, shards, atomic switch and prune — with only
its embedding step run on a Ray cluster:

1. the build's parts (:func:`~seislens.index.builder.part_plan`: source, start, stop)
   that have no finished file in the work folder become a Ray Dataset, one row a part;
2. ``map_batches`` sends them to a pool of ``workers`` actors; each actor finds the
   library's sources itself (the same discovery, so the same sources), holds one ONNX
   session per graph (CUDA when the node has a GPU and ``gpus_per_worker`` > 0) and
   writes each part it embeds atomically to the work folder (a shared file system
   between the nodes, or the one machine);
3. back in the driver, the builder assembles the parts in order (ids = the local
   build's), trains the quantiser once (IVF-PQ), adds vectors (and shards), switches.

A job killed at any point reruns only the parts without a file: the work folder is
named by the request (library fingerprints, encoder hash, part size, options).
Imported only when ``--engine ray`` is asked for: the package imports without ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from seislens.index.builder import ITEMS, BuildConfig, PartsJob, build, part_plan
from seislens.index.bundle import branch_section, read_manifest
from seislens.models.branches import Branch, get_branch
from seislens.models.manifest import IndexEntry

try:
    import ray
    import ray.data
except ImportError as exc:  # pragma: no cover - the cluster extra is not installed
    raise ImportError(
        "the Ray engine needs the cluster extra: pip install -e '.[cluster]'"
    ) from exc


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide the embedding runs.

    Attributes:
        address: the Ray cluster ("auto", "ray://host:10001", ...); None: the one this
            process is connected to, or a new local one.
        workers: embedding actors (each one ONNX session per graph).
        cpus_per_worker: CPUs each actor reserves (its ONNX Runtime threads).
        gpus_per_worker: GPUs each actor reserves (0: CPU actors; > 0 runs the
            sessions on CUDA when onnxruntime offers it).
    """

    address: str | None = None
    workers: int = 2
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker < 1 or self.gpus_per_worker < 0:
            raise ValueError(
                f"workers={self.workers}, cpus_per_worker={self.cpus_per_worker}, "
                f"gpus_per_worker={self.gpus_per_worker}; expected >= 1, >= 1, >= 0"
            )


class PartEmbedder:
    """A Ray Data actor: one branch embedder; embeds the parts of a batch of rows.

    Args:
        bundle: the bundle directory; branch: the registry name; paths, max_per_folder,
            options: what the build discovers its sources with; threads: ONNX Runtime
            intra-op threads; gpu: prefer CUDA.
    """

    def __init__(
        self,
        bundle: str,
        branch: str,
        paths: list[str],
        max_per_folder: int | None,
        options: Any,
        threads: int,
        gpu: bool,
    ) -> None:
        from seislens.models.embedders import choose_providers

        self.branch = get_branch(branch)
        self.items = ITEMS[branch]
        self.options = options
        self.sources = self.items.discover([Path(p) for p in paths], max_per_folder, options)
        section = branch_section(Path(bundle), read_manifest(Path(bundle)), self.branch)
        self.embedder = self.branch.build_embedder(
            Path(bundle), section, choose_providers(prefer_gpu=gpu), threads
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed each row's part (``path``, ``source``, ``start``, ``stop``) to its file;
        the rows back with ``items`` (items embedded) and ``pid`` (this actor's process)."""
        done = []
        for path, i, a, b in zip(
            batch["path"], batch["source"], batch["start"], batch["stop"], strict=True
        ):
            part = self.items.embed(
                self.embedder, self.sources[int(i)], int(a), int(b), self.options
            )
            part.save(Path(str(path)))
            done.append(len(part))
        n = len(done)
        return {"path": batch["path"], "items": np.array(done), "pid": np.full(n, os.getpid())}


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` unless this process already has (None: a
    local cluster of this machine's CPUs)."""
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)


class RayParts:
    """The builder's embedding step (a :data:`~seislens.index.builder.PartsEmbedder`)
    on Ray Data with ``engine``; ``embedded`` lists the part files its last call wrote
    (the others were finished already)."""

    def __init__(self, engine: RayEngine) -> None:
        self.engine = engine
        self.embedded: list[Path] = []

    def __call__(self, job: PartsJob) -> list[Path]:
        connect(self.engine.address)
        job.work.mkdir(parents=True, exist_ok=True)
        plan = part_plan(job.sources, job.part_size, job.work)
        todo = [
            {"path": str(p), "source": i, "start": a, "stop": b}
            for p, i, a, b in plan
            if not p.exists()
        ]
        rows = _run(job, self.engine, todo) if todo else []
        self.embedded = [Path(str(r["path"])) for r in rows]
        return [p for p, *_ in plan]


def _run(job: PartsJob, engine: RayEngine, todo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Embed the ``todo`` parts on the cluster; their result rows."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = job.progress
    ds = ray.data.from_items(todo, override_num_blocks=len(todo))
    embedded = ds.map_batches(
        PartEmbedder,
        fn_constructor_kwargs={
            "bundle": str(job.bundle),
            "branch": job.branch.name,
            "paths": [str(p) for p in job.paths],
            "max_per_folder": job.max_per_folder,
            "options": job.options,
            "threads": engine.cpus_per_worker,
            "gpu": engine.gpus_per_worker > 0,
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=engine.workers),
        num_cpus=engine.cpus_per_worker,
        num_gpus=engine.gpus_per_worker,
    )
    return embedded.take_all()


def ray_build(
    bundle: Path,
    branch: Branch,
    sources: list[Path],
    config: BuildConfig | None = None,
    engine: RayEngine | None = None,
    progress: bool = True,
    resume: bool = True,
) -> IndexEntry:
    """:func:`seislens.index.builder.build` with its embedding on Ray (``engine``);
    the same arguments, result and guarantees."""
    embed = RayParts(engine or RayEngine())
    return build(bundle, branch, sources, config, progress, resume, embed_parts=embed)
