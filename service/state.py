"""The loaded bundle and the holder that swaps it atomically.

A :class:`LoadedBundle` is everything a request needs: the manifest, the ONNX
embedder and the opened library (FAISS index, metadata, memory-mapped models) of the
velocity branch and, when the manifest has an ``events`` section, the event branch
(:class:`EventBranch`: its three ONNX graphs and its events library). The
:class:`BundleHolder` hands it out under a lease (a reference count). A reload builds
the new :class:`LoadedBundle` completely — hashes checked, encoders and index opened,
one warm-up query run — and only then swaps the reference, so a request keeps the
bundle it started with and the old library is closed when its last lease ends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from seislens.index.bundle import BundleError, read_manifest, verify_encoders, verify_index
from seislens.index.event_library import INDEX_NAME as EVENTS_INDEX
from seislens.index.event_library import LoadedEventLibrary
from seislens.index.library import INDEX_NAME, LoadedLibrary
from seislens.models.contract import GATHER_SHAPE
from seislens.models.embedders import VelocityEmbedder, choose_providers
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_preprocess import stream_to_windows
from seislens.service.event_search import warm_up_stream
from seislens.service.settings import Settings

log = logging.getLogger("seislens.service")

NO_EVENT_ENCODERS = (
    "this bundle has no event encoders: it serves the velocity branch only; export an "
    "event run into it (seislens export --branch events) and build its events index "
    "(seislens index build --branch events) to classify miniSEED recordings"
)
"""Why the events routes answer 404 for a bundle without an ``events`` section."""


class _Closable(Protocol):
    def close(self) -> None: ...


class BundleNotLoadedError(RuntimeError):
    """No bundle is being served (the service is starting or stopping)."""


class ReloadInProgressError(RuntimeError):
    """Another reload is running; reloads happen one at a time."""


@dataclass(frozen=True)
class RuntimeInfo:
    """How the bundle really runs: ONNX Runtime provider and FAISS placement."""

    execution_provider: str
    available_providers: list[str]
    requested_providers: list[str]
    onnx_threads: int
    faiss_threads: int
    gpu_index: bool
    gpu_index_reason: str


class EventBranch:
    """The event branch of a loaded bundle: its ONNX graphs and, when it has a usable
    one, its events library.

    An events index that is missing, or was built with another spectrum encoder (an
    export after the last index build), does not stop the bundle: classification is
    still served, the similar-event search is not (``index_problem`` says why).

    Args:
        embedder: the spectrum, info and heads graphs with their preprocessing settings.
        library: the opened events library, or None.
        index_problem: why there is no library (None when there is one).
        gpu_index: whether FAISS searches a GPU copy of the events index, and why.
    """

    def __init__(
        self,
        embedder: EventEmbedder,
        library: LoadedEventLibrary | None,
        index_problem: str | None,
        gpu_index: tuple[bool, str],
    ) -> None:
        self.embedder = embedder
        self.library = library
        self.index_problem = index_problem
        self.gpu_index, self.gpu_index_reason = gpu_index

    @property
    def classes(self) -> tuple[str, ...]:
        """Event classes, in the order of the heads' probabilities."""
        return self.embedder.classes

    @property
    def count(self) -> int:
        """Events in the library (0 without one)."""
        return len(self.library) if self.library is not None else 0

    def close(self) -> None:
        if self.library is not None:
            self.library.close()


class LoadedBundle:
    """A bundle opened for serving, with a lease count.

    Args:
        path: the bundle directory.
        manifest: its manifest.
        embedder: the velocity-branch ONNX embedder.
        library: the opened velocity library.
        runtime: provider and GPU-index facts.
        events: the event branch, None when the manifest has no ``events`` section.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        embedder: VelocityEmbedder,
        library: LoadedLibrary,
        runtime: RuntimeInfo,
        events: EventBranch | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.embedder = embedder
        self.library = library
        self.runtime = runtime
        self.events = events
        self.loaded_at = time.time()
        self.family_counts = library.store.family_counts("velocity")
        self._lock = threading.Lock()
        self._leases = 0
        self._retired = False
        self._closed = False

    # ------------------------------------------------------------------ facts

    @property
    def name(self) -> str:
        """The bundle's name from its manifest (else the folder's name)."""
        return str(self.manifest.get("name") or self.path.name)

    @property
    def created(self) -> str | None:
        """When the bundle was exported (ISO 8601), if recorded."""
        created = self.manifest.get("created")
        return str(created) if created is not None else None

    @property
    def count(self) -> int:
        """Velocity models in the library."""
        return len(self.library)

    @property
    def families(self) -> list[str]:
        """Families present in the library, sorted."""
        return sorted(self.family_counts)

    @property
    def index_entry(self) -> dict[str, Any]:
        """The manifest's entry of the velocity index."""
        return dict(self.manifest["indexes"][INDEX_NAME])

    # ------------------------------------------------------------------ leases

    @property
    def leases(self) -> int:
        """Requests currently using this bundle."""
        return self._leases

    @property
    def closed(self) -> bool:
        """Whether the library has been closed (retired and no lease left)."""
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
        self.library.close()
        if self.events is not None:
            self.events.close()


def load_bundle(path: Path, settings: Settings) -> LoadedBundle:
    """Open a bundle completely: manifest, encoder hashes, encoders, index, warm-up.

    Raises:
        BundleError: with a message saying what is wrong; nothing stays open then.
    """
    path = Path(path)
    opened: list[_Closable] = []
    try:
        return _open_bundle(path, settings, opened)
    except Exception as exc:
        for library in opened:
            library.close()
        if isinstance(exc, BundleError):
            raise
        # a malformed manifest, or onnxruntime, faiss and sqlite with their own types
        why = f"{type(exc).__name__}: {exc}"
        raise BundleError(f"{path}: could not load the bundle: {why}") from exc


def _open_bundle(path: Path, settings: Settings, opened: list[_Closable]) -> LoadedBundle:
    """The steps of :func:`load_bundle`; libraries it opens are added to ``opened``."""
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle directory (it does not exist)")
    manifest = read_manifest(path)
    if "velocity" not in manifest:
        raise BundleError(f"{path} has no velocity encoders; export a run into it first")
    verify_encoders(path, manifest, "velocity")
    verify_index(manifest, INDEX_NAME)
    _set_faiss_threads(settings.faiss_threads)
    providers = choose_providers(settings.prefer_gpu)
    embedder = VelocityEmbedder(path, manifest["velocity"], providers, settings.onnx_threads)
    library = LoadedLibrary.open(path, manifest)
    opened.append(library)
    if library.index.dim != embedder.embed_dim:
        raise BundleError(
            f"{path}: the velocity index holds {library.index.dim}-d vectors but the "
            f"encoders embed in {embedder.embed_dim} dimensions; rebuild the index"
        )
    gpu_used, gpu_reason = _place_index(library, settings)
    _warm_up(embedder, library)
    events = _open_events(path, manifest, settings, providers, opened)
    runtime = RuntimeInfo(
        execution_provider=embedder.provider,
        available_providers=_available_providers(),
        requested_providers=providers,
        onnx_threads=settings.onnx_threads,
        faiss_threads=_faiss_threads(),
        gpu_index=gpu_used,
        gpu_index_reason=gpu_reason,
    )
    return LoadedBundle(path, manifest, embedder, library, runtime, events)


def _open_events(
    path: Path,
    manifest: dict[str, Any],
    settings: Settings,
    providers: list[str],
    opened: list[_Closable],
) -> EventBranch | None:
    """The event branch when the manifest has one: encoder hashes checked (a mismatch
    refuses the bundle, as for the velocity branch), the graphs opened, the events
    library opened when it is there and belongs to the spectrum encoder, one warm-up
    classification and search run."""
    if "events" not in manifest:
        return None
    verify_encoders(path, manifest, "events")
    embedder = EventEmbedder(path, manifest["events"], providers, settings.onnx_threads)
    library: LoadedEventLibrary | None = None
    problem: str | None = None
    placement = (False, "no events index")
    if EVENTS_INDEX not in manifest.get("indexes", {}):
        problem = (
            "the bundle has event encoders but no events index; build it (seislens index "
            "build --branch events) to search similar events"
        )
    else:
        try:
            library = LoadedEventLibrary.open(path, manifest)
        except Exception as exc:  # BundleError, or faiss/numpy/sqlite on damaged files
            problem = f"the events index cannot be used: {exc}"
        else:
            opened.append(library)
            if library.index.dim != embedder.embed_dim:
                raise BundleError(
                    f"{path}: the events index holds {library.index.dim}-d vectors but the "
                    f"event encoders embed in {embedder.embed_dim} dimensions; rebuild it"
                )
            placement = _place_index(library, settings)
    if problem is not None:
        log.warning("%s: %s; classification is served, similar-event search is not", path, problem)
    branch = EventBranch(embedder, library, problem, placement)
    _warm_up_events(branch)
    return branch


def _set_faiss_threads(threads: int) -> None:
    """FAISS's OpenMP thread count (process-wide); 0 leaves FAISS's default."""
    if threads > 0:
        import faiss

        faiss.omp_set_num_threads(threads)


def _place_index(
    library: LoadedLibrary | LoadedEventLibrary, settings: Settings
) -> tuple[bool, str]:
    """Move the index to the GPU when wanted and possible; (used, why)."""
    if not settings.prefer_gpu:
        return False, "GPU disabled by configuration (SEISLENS_PREFER_GPU=false); searching on CPU"
    return library.index.to_gpu()


def _warm_up(embedder: VelocityEmbedder, library: LoadedLibrary) -> None:
    """One embedding and one search, so the first request is not the slow one and an
    encoder that cannot run here fails at load, not at the first query."""
    rng = np.random.default_rng(0)
    gather = rng.standard_normal((1, *GATHER_SHAPE)).astype(np.float32)
    vector = embedder.embed_gathers(gather)
    if len(library):
        library.index.search(vector, 1)


def _warm_up_events(branch: EventBranch) -> None:
    """The whole event path once on a synthetic record (miniSEED-like stream →
    windows → spectra → encoders → search): lazy imports and graph set-up happen
    here, and graphs that cannot run here fail at load."""
    spectra = branch.embedder.spectra(stream_to_windows(warm_up_stream(), branch.embedder.pre))
    vectors = branch.embedder.embed_spectra(spectra)
    branch.embedder.classify(spectra)
    if branch.library is not None and len(branch.library):
        branch.library.search(vectors, 1)


def _faiss_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class BundleHolder:
    """The bundle being served; swapped atomically by :meth:`replace`."""

    def __init__(self) -> None:
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
            raise ReloadInProgressError("another reload is in progress; try again when it ends")
        try:
            new = load_bundle(path, settings)
            return self.replace(new), new
        finally:
            self._reload_lock.release()

    def close(self) -> None:
        """Stop serving (shutdown): the current bundle is retired."""
        self.replace(None)
