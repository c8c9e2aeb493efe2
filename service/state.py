"""The loaded bundle and the holder that swaps it atomically.

A :class:`LoadedBundle` is everything a request needs: the manifest and, for every
branch of the registry (:data:`seislens.models.branches.BRANCHES`) that the bundle has,
a :class:`LoadedBranch`: its ONNX embedder and its opened library (FAISS index,
metadata, memory-mapped per-item arrays). The :class:`BundleHolder` hands it out under a
lease (a reference count). A reload builds the new :class:`LoadedBundle` completely —
hashes checked, encoders and indexes opened, one warm-up query per branch run — and
only then swaps the reference, so a request keeps the bundle it started with and the
old libraries are closed when its last lease ends.

On disk, the process announces what it holds with a lease file in the bundle folder
(:class:`~seislens.index.leases.LeaseKeeper`): the index folders and encoder files of
every bundle still open, so that an index build or export never deletes them. A load
reserves the files its manifest names before it opens them (and re-reads the manifest
to be sure no build switched meanwhile); a bundle releases its files when it closes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seislens.index.bundle import BundleError, read_manifest, verify_encoders
from seislens.index.leases import LeaseKeeper
from seislens.index.library import LoadedLibrary
from seislens.index.retention import current_paths
from seislens.models.branches import BRANCHES, Branch
from seislens.models.embedders import choose_providers
from seislens.models.familiarity import load_density
from seislens.models.manifest import BranchSection, Manifest
from seislens.service.errors import ConflictError, NotReadyError
from seislens.service.event_search import warm_up_events
from seislens.service.settings import Settings
from seislens.service.velocity_search import warm_up_velocity

log = logging.getLogger("seislens.service")

NO_EVENT_ENCODERS = (
    "this bundle has no event encoders: it serves the velocity branch only; export an "
    "event run into it (seislens export --branch events) and build its events index "
    "(seislens index build --branch events) to classify miniSEED recordings"
)
"""Why the events routes answer 404 for a bundle without an ``events`` section."""


class BundleNotLoadedError(NotReadyError):
    """No bundle is being served (the service is starting or stopping): 503."""


class ReloadInProgressError(ConflictError):
    """Another reload is running; reloads happen one at a time (409)."""

    reason = "reload_in_progress"

    def __init__(self) -> None:
        super().__init__("another reload is in progress; try again when it ends")


@dataclass(frozen=True)
class BundleRuntime:
    """How this process runs the bundle: ONNX Runtime providers and thread counts (the
    provider really used and the FAISS placement are per branch, on
    :class:`LoadedBranch`)."""

    available_providers: list[str]
    requested_providers: list[str]
    onnx_threads: int
    faiss_threads: int


class LoadedBranch:
    """One branch of a loaded bundle: its section, its ONNX embedder and, when it has a
    usable one, its library.

    A required branch (velocity) without a usable index refuses the bundle. An optional
    branch (events) whose index is missing, or was built with another encoder (an export
    after the last index build), is still served without its library: the event path
    classifies but does not search (``index_problem`` says why).

    Args:
        branch: the registry branch.
        section: the manifest's section of it.
        embedder: the branch's embedder (``branch.embedder``).
        library: the opened library, or None.
        index_problem: why there is no library (None when there is one).
        gpu_index: whether FAISS searches a GPU copy of the index, and why.
        density: the calibration's gather-embedding density
            (:class:`~seislens.models.familiarity.GaussianDensity`), or None (no
            calibration density, or its file could not be read: ``density_problem``).
    """

    def __init__(
        self,
        branch: Branch,
        section: BranchSection,
        embedder: Any,
        library: LoadedLibrary | None,
        index_problem: str | None,
        gpu_index: tuple[bool, str],
        density: Any = None,
        density_problem: str | None = None,
    ) -> None:
        self.branch = branch
        self.density = density
        self.density_problem = density_problem
        self.section = section
        self.embedder = embedder
        self.library = library
        self.index_problem = index_problem
        self.gpu_index, self.gpu_index_reason = gpu_index
        self.family_counts: dict[str, int] = library.family_counts() if library else {}

    @property
    def count(self) -> int:
        """Items in the library (0 without one)."""
        return len(self.library) if self.library is not None else 0

    @property
    def families(self) -> list[str]:
        """Families (velocity-model families, event labels) in the library, sorted."""
        return sorted(self.family_counts)

    def close(self) -> None:
        if self.library is not None:
            self.library.close()


WARM_UPS: dict[str, Callable[[LoadedBranch], None]] = {
    "velocity": warm_up_velocity,
    "events": warm_up_events,
}
"""One query down each branch's whole path at load, by registry name: lazy imports and
graph set-up happen then, and graphs that cannot run here fail at load, not at the
first request."""


class LoadedBundle:
    """A bundle opened for serving, with a lease count.

    Args:
        path: the bundle directory.
        manifest: its manifest.
        branches: registry name → loaded branch, for the branches the bundle has.
        runtime: provider and thread facts.
        file_leases: the process's lease keeper; the bundle holds :meth:`held_files`
            under it from now until it closes (None: no lease).
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        branches: dict[str, LoadedBranch],
        runtime: BundleRuntime,
        file_leases: LeaseKeeper | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.branches = branches
        self.runtime = runtime
        self._file_leases = file_leases
        if file_leases is not None:
            file_leases.hold(self, path, self.held_files())
        self.loaded_at = time.time()
        self._lock = threading.Lock()
        self._leases = 0
        self._retired = False
        self._closed = False

    # ------------------------------------------------------------------ facts

    @property
    def name(self) -> str:
        """The bundle's name from its manifest (else the folder's name)."""
        return str(self.manifest.name or self.path.name)

    @property
    def created(self) -> str | None:
        """When the bundle was exported (ISO 8601), if recorded."""
        return self.manifest.created

    def library_size(self, branch: str) -> int:
        """Items in the library of ``branch`` (0 when the bundle lacks it or its index)."""
        loaded = self.branches.get(branch)
        return loaded.count if loaded is not None else 0

    def held_files(self) -> set[str]:
        """Bundle-relative paths this bundle has open: its libraries' index folders and
        its encoder files."""
        files = {b.library.entry.path for b in self.branches.values() if b.library is not None}
        return files | {e.file for b in self.branches.values() for e in b.section.encoders.values()}

    def library_sizes(self) -> dict[str, int]:
        """:meth:`library_size` of every branch of the registry, by name."""
        return {name: self.library_size(name) for name in BRANCHES}

    # ------------------------------------------------------------------ leases

    @property
    def leases(self) -> int:
        """Requests currently using this bundle."""
        return self._leases

    @property
    def closed(self) -> bool:
        """Whether the libraries have been closed (retired and no lease left)."""
        return self._closed

    def acquire(self) -> None:
        """Take a lease; a closed bundle cannot be leased."""
        with self._lock:
            if self._closed:
                raise BundleNotLoadedError(f"bundle {self.name} has been closed")
            self._leases += 1

    def release(self) -> None:
        """Return a lease; the last one of a retired bundle closes it."""
        with self._lock:
            self._leases -= 1
            close = self._retired and self._leases == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self._close()

    def retire(self) -> None:
        """Mark as replaced: closed now if unused, else when the last lease returns."""
        with self._lock:
            self._retired = True
            close = self._leases == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self._close()

    def _close(self) -> None:
        log.info("closing bundle %s (%s)", self.name, self.path)
        for branch in self.branches.values():
            branch.close()
        if self._file_leases is not None:
            self._file_leases.release(self)


def load_bundle(
    path: Path, settings: Settings, file_leases: LeaseKeeper | None = None
) -> LoadedBundle:
    """Open a bundle completely: manifest, encoder hashes, encoders, indexes, warm-up.

    Args:
        path: the bundle directory.
        settings: the service's settings.
        file_leases: the process's lease keeper: the files are reserved before they are
            opened, and held by the bundle once loaded (None: no lease).

    Raises:
        BundleError: with a message saying what is wrong; nothing stays open then.
    """
    path = Path(path)
    opened: list[LoadedBranch] = []
    reservation = object()
    try:
        return _open_bundle(path, settings, opened, file_leases, reservation)
    except Exception as exc:
        for branch in opened:
            branch.close()
        if isinstance(exc, BundleError):
            raise
        # a malformed manifest, or onnxruntime, faiss and sqlite with their own types
        why = f"{type(exc).__name__}: {exc}"
        raise BundleError(f"{path}: could not load the bundle: {why}") from exc
    finally:
        if file_leases is not None:
            file_leases.release(reservation)


RESERVE_TRIES = 5
"""Times a load re-reads a manifest that changed while it reserved its files."""


def _reserved_manifest(
    path: Path, file_leases: LeaseKeeper | None, reservation: object
) -> Manifest:
    """The bundle's manifest, its files reserved under ``reservation`` first: the
    manifest is re-read after the lease is written, and the reservation redone if a
    build switched it meanwhile (a build prunes after its switch, so it sees the lease)."""
    manifest = read_manifest(path)
    if file_leases is None:
        return manifest
    for _ in range(RESERVE_TRIES):
        file_leases.hold(reservation, path, current_paths(manifest))
        again = read_manifest(path)
        if again == manifest:
            break
        manifest = again
    return manifest


def _open_bundle(
    path: Path,
    settings: Settings,
    opened: list[LoadedBranch],
    file_leases: LeaseKeeper | None,
    reservation: object,
) -> LoadedBundle:
    """The steps of :func:`load_bundle`; branches it opens are added to ``opened``."""
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle directory (it does not exist)")
    manifest = _reserved_manifest(path, file_leases, reservation)
    _set_faiss_threads(settings.faiss_threads)
    providers = choose_providers(settings.prefer_gpu)
    branches: dict[str, LoadedBranch] = {}
    for branch in BRANCHES.values():
        section = manifest.section(branch.name)
        if section is None:
            if branch.required:
                raise BundleError(
                    f"{path} has no {branch.name} encoders; export a run into it first"
                )
            continue
        loaded = _open_branch(path, manifest, branch, section, settings, providers)
        opened.append(loaded)
        WARM_UPS[branch.name](loaded)
        branches[branch.name] = loaded
    runtime = BundleRuntime(
        available_providers=_available_providers(),
        requested_providers=providers,
        onnx_threads=settings.onnx_threads,
        faiss_threads=_faiss_threads(),
    )
    return LoadedBundle(path, manifest, branches, runtime, file_leases)


def _open_branch(
    path: Path,
    manifest: Manifest,
    branch: Branch,
    section: BranchSection,
    settings: Settings,
    providers: list[str],
) -> LoadedBranch:
    """One branch: encoder hashes checked (a mismatch refuses the bundle), the graphs
    opened, the library opened (see :class:`LoadedBranch` for a missing one) and placed."""
    verify_encoders(path, manifest, branch)
    embedder = branch.build_embedder(path, section, providers, settings.onnx_threads)
    library, problem = _open_library(path, manifest, branch)
    placement = (False, f"no {branch.index_name} index")
    if library is not None:
        try:
            _check_dim(path, branch, library, embedder.embed_dim)
            placement = _place_index(library, settings)
        except BaseException:
            library.close()
            raise
    density, density_problem = _open_density(path, section)
    return LoadedBranch(
        branch, section, embedder, library, problem, placement, density, density_problem
    )


def _open_density(path: Path, section: BranchSection) -> tuple[Any, str | None]:
    """The velocity calibration's embedding density, or None and why not (a density
    that cannot be read leaves the familiarity to the best score alone)."""
    cal = getattr(section, "calibration", None)
    spec = getattr(cal, "density", None)
    if spec is None:
        return None, None
    try:
        return load_density(path, spec), None
    except (OSError, ValueError, KeyError) as exc:
        return None, f"the calibration's density {spec.file} is unusable ({exc})"


def _open_library(
    path: Path, manifest: Manifest, branch: Branch
) -> tuple[LoadedLibrary | None, str | None]:
    """The branch's library, or (None, why) for an optional branch that cannot have one."""
    if branch.index_name not in manifest.indexes and not branch.required:
        problem = (
            f"the bundle has {branch.name} encoders but no {branch.index_name} index; build "
            f"it (seislens index build --branch {branch.name}) to search similar items"
        )
    else:
        try:
            return LoadedLibrary.open(path, manifest, branch), None
        except Exception as exc:  # BundleError, or faiss/numpy/sqlite on damaged files
            if branch.required:
                raise
            problem = f"the {branch.index_name} index cannot be used: {exc}"
    log.warning("%s: %s; the %s branch is served without its library", path, problem, branch.name)
    return None, problem


def _check_dim(path: Path, branch: Branch, library: LoadedLibrary, embed_dim: int) -> None:
    if library.index.dim != embed_dim:
        raise BundleError(
            f"{path}: the {branch.index_name} index holds {library.index.dim}-d vectors but "
            f"the {branch.name} encoders embed in {embed_dim} dimensions; rebuild the index"
        )


def _set_faiss_threads(threads: int) -> None:
    """FAISS's OpenMP thread count (process-wide); 0 leaves FAISS's default."""
    if threads > 0:
        import faiss

        faiss.omp_set_num_threads(threads)


def _place_index(library: LoadedLibrary, settings: Settings) -> tuple[bool, str]:
    """Move the index to the GPU when wanted and possible; (used, why)."""
    if not settings.prefer_gpu:
        return False, "GPU disabled by configuration (SEISLENS_PREFER_GPU=false); searching on CPU"
    return library.index.to_gpu()


def _faiss_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class BundleHolder:
    """The bundle being served; swapped atomically by :meth:`replace`.

    Args:
        file_leases: the process's lease keeper, used by :meth:`reload` (None: bundles
            are loaded without a lease).
    """

    def __init__(self, file_leases: LeaseKeeper | None = None) -> None:
        self.file_leases = file_leases
        self._current: LoadedBundle | None = None
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()

    @property
    def current(self) -> LoadedBundle | None:
        """The bundle new requests get (None before start-up or after shutdown)."""
        return self._current

    @contextlib.contextmanager
    def lease(self) -> Iterator[LoadedBundle]:
        """The current bundle, kept open until the ``with`` block ends.

        Raises:
            BundleNotLoadedError: no bundle is loaded.
        """
        with self._lock:
            bundle = self._current
            if bundle is None:
                raise BundleNotLoadedError("no bundle is loaded")
            bundle.acquire()
        try:
            yield bundle
        finally:
            bundle.release()

    def replace(self, new: LoadedBundle | None) -> LoadedBundle | None:
        """Serve ``new`` from now on; the previous bundle is retired and returned."""
        with self._lock:
            old, self._current = self._current, new
        if old is not None and old is not new:
            old.retire()
        return old

    def reload(self, path: Path, settings: Settings) -> tuple[LoadedBundle | None, LoadedBundle]:
        """Load the bundle at ``path`` fully, then swap it in; (previous, new).

        Raises:
            ReloadInProgressError: another reload is running.
            BundleError: the new bundle cannot be served; the current one stays.
        """
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgressError()
        try:
            new = load_bundle(path, settings, self.file_leases)
            return self.replace(new), new
        finally:
            self._reload_lock.release()

    def close(self) -> None:
        """Stop serving (shutdown): the current bundle is retired."""
        self.replace(None)
