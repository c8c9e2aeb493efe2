"""The index build job: one mechanism for every branch of the registry.

:func:`build` embeds a library into a bundle's index of one branch:

1. the branch's sources are found under the paths given (:mod:`~seislens.index.items`);
2. they are embedded by the branch's library encoder in parts of ``part_size`` items,
   each saved atomically in a work folder named by the build request
   (``index/.work-<request>``), so a rerun after an interruption skips finished parts;
3. the new index is written beside the current one, to ``index/<branch>-<UTC time>-<id>/``:
   ``vectors.faiss``, ``items.sqlite`` and the branch's per-item arrays (``<name>.npy``),
   marked as being written (:func:`~seislens.index.retention.building`) until the switch;
4. under the bundle's lock, the manifest's ``indexes[branch.index_name]`` is switched to
   it in one atomic write (temporary file, then rename), which also records the replaced
   folder in ``retained``: a service reading the bundle sees the old index or the new
   one, never a mix;
5. still under the lock, the bundle is pruned (:func:`~seislens.index.retention.prune`):
   the last ``keep`` folders of each branch stay, and so does every folder a running
   service holds (its lease, :mod:`~seislens.index.leases`); folders left by killed
   builds go. The work folder goes last.

With ``add``, the items are appended to the existing index (its vectors, records and
arrays are copied, only the new items embedded). Every store and index the job opens
is closed, on errors too. A build killed at any point leaves the bundle loadable: the
manifest names the old index until the switch, and the new one after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from seislens.index.bundle import (
    BundleError,
    branch_section,
    encoder_hash,
    read_manifest,
    write_manifest,
)
from seislens.index.event_items import EventItems
from seislens.index.items import ItemPart, LibraryItems, Source
from seislens.index.library import LoadedLibrary
from seislens.index.metadata import ItemRecord, MetadataStore
from seislens.index.retention import (
    DEFAULT_KEEP,
    building,
    bundle_lock,
    check_keep,
    prune,
    with_retained,
)
from seislens.index.shards import ShardWriter
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.index.velocity_items import VelocityItems
from seislens.models.branches import Branch
from seislens.models.manifest import BranchSection, IndexEntry, Manifest
from tqdm import tqdm

ITEMS: dict[str, LibraryItems] = {"velocity": VelocityItems(), "events": EventItems()}
"""The per-branch part of the build job, by registry name."""


@dataclass(frozen=True)
class BuildConfig:
    """How to build.

    Attributes:
        index: the FAISS index kind; None: exact ``flat`` (ignored with ``add``, which
            keeps the existing index's).
        add: append to the branch's existing index instead of replacing it.
        part_size: items per resumable part.
        max_per_folder: cap on items taken from one folder.
        options: the branch's own options (``ITEMS[name].options_type``); None: its
            defaults.
        keep: index folders of the branch kept after the switch, the new one included
            (>= 1); folders a running service holds are kept besides.
        shards: also write the index as this many shards (ids split by ``id % shards``,
            :mod:`~seislens.index.shards`); 1: the single index only.
        threads: ONNX Runtime intra-op threads of the in-process embedder; 0: its
            default (one a core, and pinned to them: a process affinity does not bind
            them). A Ray build's actors take theirs from the engine instead.
    """

    index: VectorIndexConfig | None = None
    add: bool = False
    part_size: int = 1024
    max_per_folder: int | None = None
    options: Any = None
    keep: int = DEFAULT_KEEP
    shards: int = 1
    threads: int = 0


@dataclass(frozen=True)
class PartsJob:
    """The embedding step of a build, as an engine gets it.

    Attributes:
        bundle: the bundle directory; branch, section: what embeds.
        items: the branch's library items; sources: what :meth:`LibraryItems.discover`
            found at ``paths`` (with ``max_per_folder``), in order.
        paths: the library paths given; max_per_folder: the cap applied.
        embedder: the branch embedder opened by the build (in this process).
        work: the resumable work folder (``index/.work-<request>``).
        part_size: items per part; options: the branch's build options.
        progress: whether to show progress.
    """

    bundle: Path
    branch: Branch
    section: BranchSection
    items: LibraryItems
    sources: list[Source]
    paths: list[Path]
    max_per_folder: int | None
    embedder: Any
    work: Path
    part_size: int
    options: Any
    progress: bool


PartsEmbedder = Callable[[PartsJob], list[Path]]
"""An embedding engine: writes every missing part of a job to its work folder and
returns all part files in order (:func:`part_plan`'s)."""


def build(
    bundle: Path,
    branch: Branch,
    sources: list[Path],
    config: BuildConfig | None = None,
    progress: bool = True,
    resume: bool = True,
    embed_parts: PartsEmbedder | None = None,
) -> IndexEntry:
    """Embed the library at ``sources`` into the bundle's index of ``branch``.

    Args:
        bundle: a bundle with a section for ``branch``.
        branch: the registry branch.
        sources: library paths (the branch's kind: OpenFWI folders, SeisBench folders).
        config: what to build (default :class:`BuildConfig`).
        progress: a progress bar while embedding.
        resume: reuse parts of an interrupted build of the same request (False: embed
            everything again).
        embed_parts: the embedding engine (default: in this process, one part after
            another; :mod:`~seislens.index.ray_build` runs it on Ray Data).

    Returns:
        The manifest's new index entry (already switched to).

    Raises:
        BundleError: no section for the branch, no index to add to, bad sources.
    """
    bundle, config = Path(bundle), config or BuildConfig()
    started = time.time()
    check_keep(config.keep)
    items = ITEMS[branch.name]
    options = _options(items, config.options)
    manifest = read_manifest(bundle)
    section = branch_section(bundle, manifest, branch)
    old = manifest.indexes.get(branch.index_name)
    if config.add and old is None:
        raise BundleError(f"{bundle} has no {branch.name} index to add to; build one first")
    if config.shards < 1 or (config.add and config.shards > 1):
        raise BundleError(f"shards is {config.shards}; expected >= 1 (1 with add)")
    found = items.discover([Path(p) for p in sources], config.max_per_folder, options)
    with contextlib.ExitStack() as stack:
        base = None
        cfg = config.index or VectorIndexConfig()
        if config.add:
            base = LoadedLibrary.open(bundle, manifest, branch)
            stack.callback(base.close)
            cfg = base.index.config
        request = _request_id(branch, items, found, manifest, config, options, base)
        work = bundle / "index" / f".work-{request}"
        if not resume:
            shutil.rmtree(work, ignore_errors=True)
        embedder = branch.build_embedder(bundle, section, None, config.threads)
        job = PartsJob(
            bundle, branch, section, items, found, [Path(p) for p in sources],
            config.max_per_folder, embedder, work, config.part_size, options, progress,
        )  # fmt: skip
        parts = (embed_parts or _embed_parts)(job)
        build_id = _build_id(branch)
        out = bundle / "index" / build_id
        with building(out):
            count, refused = _written(
                parts, out, items, embedder.embed_dim, cfg, base, config.shards
            )
            entry = IndexEntry(
                branch=branch.name,
                encoder=branch.library_encoder,
                encoder_sha256=encoder_hash(manifest, branch, branch.library_encoder),
                path=f"index/{build_id}",
                count=count,
                config=cfg.model_dump(),
                built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                sources=items.describe(found, options)
                + (_extra(old, "sources", []) if base else []),
                refused=refused + (_extra(old, "refused", 0) if base else 0),
                **_entry_fields(items, section, options, out),
            )
            _publish(bundle, branch, entry, config.keep, started)
    shutil.rmtree(work, ignore_errors=True)
    return entry


def _options(items: LibraryItems, options: Any) -> Any:
    if options is None:
        return items.options_type()
    if not isinstance(options, items.options_type):
        raise TypeError(
            f"build options are a {type(options).__name__}; this branch takes "
            f"{items.options_type.__name__}"
        )
    return options


def _extra(entry: IndexEntry | None, key: str, default: Any) -> Any:
    """A field of an index entry that the schema leaves open (``sources``, ...)."""
    return (entry.model_extra or {}).get(key, default) if entry is not None else default


def _entry_fields(
    items: LibraryItems, section: BranchSection, options: Any, folder: Path
) -> dict[str, Any]:
    """The branch's extra entry fields, from the arrays just written to ``folder``."""
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in items.arrays}
    return items.entry_fields(section, options, arrays)


def _request_id(
    branch: Branch,
    items: LibraryItems,
    sources: list[Source],
    manifest: Any,
    config: BuildConfig,
    options: Any,
    base: LoadedLibrary | None,
) -> str:
    """What a build embeds, hashed: parts of the same request are reusable."""
    text = json.dumps(
        [
            branch.name,
            [items.fingerprint(s) for s in sources],
            encoder_hash(manifest, branch, branch.library_encoder),
            config.part_size,
            len(base) if base else 0,
            asdict(options),
        ],
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build_id(branch: Branch) -> str:
    """``<index name>-<UTC time>-<6 hex>``: a fresh folder name for every build."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{branch.index_name}-{stamp}-{uuid.uuid4().hex[:6]}"


def part_plan(sources: list[Source], size: int, work: Path) -> list[tuple[Path, int, int, int]]:
    """Every part of a build: (part file in ``work``, source index, start, stop), in the
    order their items get ids. Every engine names parts this way, so any can resume."""
    plan = []
    for i, src in enumerate(sources):
        for s in range(0, src.count, size):
            plan.append((work / f"part-{len(plan):06d}.npz", i, s, min(src.count, s + size)))
    return plan


def _embed_parts(job: PartsJob) -> list[Path]:
    """Embed every source in parts saved atomically to the work folder, in this process;
    skip finished parts."""
    job.work.mkdir(parents=True, exist_ok=True)
    total = sum(s.count for s in job.sources)
    unit = job.items.unit
    bar = tqdm(total=total, desc=f"embedding {unit}s", unit=unit, disable=not job.progress)
    parts = []
    try:
        for path, i, a, b in part_plan(job.sources, job.part_size, job.work):
            parts.append(path)
            if not path.exists():
                part = job.items.embed(job.embedder, job.sources[i], a, b, job.options)
                part.save(path)
            bar.update(b - a)
    finally:
        bar.close()
    return parts


def _written(
    parts: list[Path],
    out: Path,
    items: LibraryItems,
    dim: int,
    cfg: VectorIndexConfig,
    base: LoadedLibrary | None,
    shards: int = 1,
) -> tuple[int, int]:
    """The new index folder ``out``, written completely; (items, refused).

    A failure removes the partly written folder (the manifest still names the old one);
    a killed build leaves it to the next build's prune.
    """
    try:
        return _assemble(items, parts, out, dim, cfg, base, shards)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _assemble(
    items: LibraryItems,
    parts: list[Path],
    out: Path,
    dim: int,
    cfg: VectorIndexConfig,
    base: LoadedLibrary | None,
    shards: int = 1,
) -> tuple[int, int]:
    """Write vectors.faiss, items.sqlite and the per-item arrays into ``out`` (and the
    ``shards`` shards when > 1); (items, refused). ``out`` exists (created by
    :func:`building`) and is empty."""
    n_old = len(base) if base else 0
    sizes = [len(np.load(p)["family"]) for p in parts]
    n = n_old + sum(sizes)
    arrays = {
        name: np.lib.format.open_memmap(out / f"{name}.npy", "w+", spec.dtype, (n, *spec.shape))
        for name, spec in items.arrays.items()
    }
    for name, spec in items.arrays.items():
        arrays[name][:] = spec.fill
    index = VectorIndex.load(base.path / "vectors.faiss", cfg) if base else VectorIndex(dim, cfg)
    refused = 0
    with MetadataStore.create(out / "items.sqlite") as store:
        if base:
            for name in arrays:
                arrays[name][:n_old] = base.array(name)
            store.add_many(r for r in base.records(np.arange(n_old)) if r is not None)
        if cfg.kind == "ivfpq" and not index.is_trained:
            index.train(np.concatenate([np.load(p)["vectors"] for p in parts]))
        writer = ShardWriter(index, shards) if shards > 1 else None
        row = n_old
        for path in parts:
            part = ItemPart.load(path)
            refused += part.refused
            _add_part(items, part, row, index, store, arrays)
            if writer is not None and len(part):
                writer.add(part.vectors, np.arange(row, row + len(part), dtype=np.int64))
            row += len(part)
    for array in arrays.values():
        array.flush()
    del arrays
    index.save(out / "vectors.faiss")
    if writer is not None:
        writer.save(out)
    return n, refused


def _add_part(
    items: LibraryItems,
    part: ItemPart,
    row: int,
    index: VectorIndex,
    store: MetadataStore,
    arrays: dict[str, np.ndarray],
) -> None:
    """Add one part's items under ids ``row``.. (id = row in the arrays)."""
    k = len(part)
    if k == 0:
        return
    ids = np.arange(row, row + k, dtype=np.int64)
    index.add(part.vectors, ids)
    for name, array in arrays.items():
        array[row : row + k] = part.arrays[name]
    store.add_many(
        ItemRecord(int(i), items.kind, fam, int(i), src, desc, meta)
        for i, fam, src, desc, meta in zip(
            ids, part.family, part.source, part.descriptors, part.metadata, strict=True
        )
    )


def _publish(bundle: Path, branch: Branch, entry: IndexEntry, keep: int, started: float) -> None:
    """Switch the manifest to ``entry`` and prune the bundle, under the bundle's lock
    (``started``: when this build began, Unix time in s)."""
    with bundle_lock(bundle):
        prune(bundle, _switch(bundle, branch, entry, keep), started)


def _switch(bundle: Path, branch: Branch, entry: IndexEntry, keep: int) -> Manifest:
    """Name ``entry`` as the branch's index in the manifest, in one atomic write that
    also retains the replaced folder (the last ``keep`` in all); the manifest written.
    The manifest is re-read first (under the bundle lock) so a change made meanwhile
    (another branch) is kept."""
    manifest = read_manifest(bundle)
    previous = manifest.indexes.get(branch.index_name)
    indexes = {**manifest.indexes, branch.index_name: entry}
    switched = with_retained(
        manifest.model_copy(update={"indexes": indexes}),
        f"index/{branch.index_name}",
        [previous.path] if previous else [],
        [entry.path],
        keep,
    )
    write_manifest(bundle, switched)
    return switched
