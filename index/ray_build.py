"""The index build job on Ray Data (``seislens index build --engine ray``).

The same build as :func:`seislens.index.builder.build` — the same parts, request id,
write-beside folder, quantiser training, shards, atomic switch and prune — with only
its embedding step run on a Ray cluster:

1. the build's parts (:func:`~seislens.index.builder.part_plan`: source, start, stop)
   that have no finished file in the work folder become a Ray Dataset, one row a part;
2. ``map_batches`` sends them to a pool of ``workers`` actors
   (:class:`~seislens.index.ray_actor.PartEmbedder`, in a module light to import: an
   actor process loads only its own branch's item code); each actor finds the
   library's sources itself (the same discovery, so the same sources), holds one ONNX
   session per graph (CUDA when the node has a GPU and ``gpus_per_worker`` > 0) and
   writes each part it embeds atomically to the work folder (a shared file system
   between the nodes, or the one machine);
3. back in the driver, the builder assembles the parts in order (ids = the local
   build's), trains the quantiser once (IVF-PQ), adds vectors (and shards), switches.

A job killed at any point reruns only the parts without a file: the work folder is
named by the request (library fingerprints, encoder hash, part size, options).

Library folders may be local paths or filesystem URLs pyarrow resolves
(:func:`resolve_library`): ``file:///abs/path`` is that local folder (the same build,
the same request, as the path itself); a folder on another filesystem (``s3://``,
``gs://``, ``hdfs://``, ``abfs://``, ...) is copied once, with its folder names (the
velocity families), to ``<bundle>/index/.library-<hash of the URL>/`` beside the work
folder (so on the same shared file system the actors read), reused by a rerun once the
copy is complete, and removed after a successful build.
Imported only when ``--engine ray`` is asked for: the package imports without ray.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seislens.index.builder import BuildConfig, PartsJob, build, part_plan
from seislens.index.bundle import BundleError
from seislens.index.ray_actor import PartEmbedder
from seislens.models.branches import Branch
from seislens.models.manifest import IndexEntry

try:
    import pyarrow.fs as pafs
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
            "items": job.items,  # pickled by its class: the actor imports that branch only
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=engine.workers),
        num_cpus=engine.cpus_per_worker,
        num_gpus=engine.gpus_per_worker,
    )
    return embedded.take_all()


LibrarySource = str | Path
"""A library folder (or file): a local path, or a filesystem URL pyarrow resolves."""

STAGED_MARK = ".complete"
"""The file that marks a staged copy of a remote library folder as whole."""


def is_url(source: LibrarySource) -> bool:
    """Whether ``source`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(source, str) and "://" in source


def resolve_library(sources: Sequence[LibrarySource], stage: Path) -> list[Path]:
    """Local paths for the library ``sources``, in order: a local path as it is; a URL
    resolved with ``pyarrow.fs.FileSystem.from_uri``: its path on the local filesystem
    (``file://``), else its copy staged under ``stage`` (:func:`stage_source`).

    Raises:
        BundleError: a URL pyarrow cannot resolve, or that names nothing.
    """
    paths = []
    for source in sources:
        if not is_url(source):
            paths.append(Path(source))
            continue
        try:
            fs, path = pafs.FileSystem.from_uri(str(source))
        except (ValueError, OSError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid, ...
            raise BundleError(
                f"library {source}: not a filesystem URL pyarrow resolves ({exc})"
            ) from None
        if isinstance(fs, pafs.LocalFileSystem):
            paths.append(Path(path))
        else:
            digest = hashlib.sha256(str(source).encode()).hexdigest()[:16]
            paths.append(stage_source(fs, path, stage / f".library-{digest}", str(source)))
    return paths


def stage_source(fs: Any, path: str, dest: Path, label: str | None = None) -> Path:
    """A local copy of ``path`` (a folder or one file) on the pyarrow filesystem ``fs``,
    kept under ``dest`` with its own name (the velocity family of a model folder);
    a whole earlier copy (its :data:`STAGED_MARK`) is reused.

    Raises:
        BundleError: ``path`` does not exist on ``fs``.
    """
    path = path.rstrip("/")
    local = dest / (Path(path).name or "library")
    if (dest / STAGED_MARK).exists():
        return local
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise BundleError(f"library {label or path} does not exist")
    shutil.rmtree(dest, ignore_errors=True)  # a copy a killed job left half done
    local.parent.mkdir(parents=True)
    if info.type == pafs.FileType.Directory:
        local.mkdir()
    local_fs = pafs.LocalFileSystem()
    pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=local_fs)
    (dest / STAGED_MARK).touch()
    return local


def ray_build(
    bundle: Path,
    branch: Branch,
    sources: Sequence[LibrarySource],
    config: BuildConfig | None = None,
    engine: RayEngine | None = None,
    progress: bool = True,
    resume: bool = True,
) -> IndexEntry:
    """:func:`seislens.index.builder.build` with its embedding on Ray (``engine``);
    the same arguments, result and guarantees, and ``sources`` may be filesystem URLs
    (:func:`resolve_library`; staged copies are removed once the build succeeded)."""
    bundle = Path(bundle)
    stage = bundle / "index"
    paths = resolve_library(sources, stage)
    embed = RayParts(engine or RayEngine())
    entry = build(bundle, branch, paths, config, progress, resume, embed_parts=embed)
    for p in paths:
        if p.is_relative_to(stage) and p.parent.name.startswith(".library-"):
            shutil.rmtree(p.parent, ignore_errors=True)
    return entry
