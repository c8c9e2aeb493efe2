"""The application factory.

    uvicorn --factory seislens.service.app:create_app     # settings from SEISLENS_* env

The bundle is loaded in the ``lifespan`` before the first request is accepted; a
bundle that cannot be served stops the start-up with its message. The lifespan also
runs the lease keeper (``SEISLENS_LEASE_TTL_S``): the files the service holds are
announced in the bundle's ``leases/`` folder while it runs, and the announcement is
removed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from seislens.index.bundle import BundleError
from seislens.index.leases import LeaseKeeper
from seislens.models.branches import BRANCHES
from seislens.service import routes_docs, routes_scans
from seislens.service.api import api_router
from seislens.service.errors import install_exception_handlers
from seislens.service.estimation import EstimateStore
from seislens.service.event_search import start_parse_workers
from seislens.service.metrics import MetricsMiddleware, ServiceMetrics
from seislens.service.openapi_doc import client_openapi
from seislens.service.scan_jobs import ScanJobs
from seislens.service.scan_uploads import RouteBodyLimits
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, LoadedBundle, load_bundle
from seislens.service.watch import watch_bundle
from starlette.concurrency import run_in_threadpool

from seislens import __version__

log = logging.getLogger("seislens.service")

DESCRIPTION = """\
Upload a shot gather (SEG-Y, SU or NumPy; 5 shots × 70 receivers, 1 s) and get back the
most similar subsurface velocity models of the library, the physical descriptors they
imply and an estimated velocity model.

Upload a three-component miniSEED recording and get back, per station, the event type
(earthquake, explosion, surface event, noise), the distance, depth and magnitude the
model infers, and the most similar events of the library (when the bundle has an event
branch).

Every error answers `{"detail": "<message>", "reason": "<label>"}`: what is wrong and
what is expected, and a short stable label of the cause (a 422 adds `errors`, the
invalid parameters). Each documented error example is the answer the service gives.
"""

TAGS = [
    {
        "name": "velocity",
        "description": "Search by shot gather, velocity model or descriptors; library and "
        "estimated models.",
    },
    {
        "name": "events",
        "description": "Classify a miniSEED recording; search similar library events.",
    },
    {
        "name": "embed",
        "description": "Embeddings of a gather, a velocity model, descriptors or a recording.",
    },
    {"name": "bundle", "description": "The bundle (encoders, index, metrics) being served."},
    {"name": "admin", "description": "Bundle switching; needs the bearer token."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]


def operation_id(route: APIRoute) -> str:
    """OpenAPI operation ids are the route functions' names (``search_velocity``, …),
    so a generated client reads ``client.search_velocity(...)``."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the SeisLens API.

    Args:
        settings: the configuration; None reads it from ``SEISLENS_*`` variables.
    """
    settings = settings or Settings()
    metrics = ServiceMetrics()
    leases = LeaseKeeper(settings.lease_ttl_s) if settings.lease_ttl_s > 0 else None
    holder = BundleHolder(leases)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if leases is not None:
            leases.start()
        try:
            bundle = await run_in_threadpool(_load_at_startup, settings, leases)
            holder.replace(bundle)
            metrics.bundle_loaded(bundle.library_sizes())
            watcher = None
            if settings.watch_interval_s > 0:
                watcher = asyncio.create_task(watch_bundle(holder, settings, metrics))
            yield
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            holder.close()
        finally:
            if leases is not None:
                leases.close()

    app = FastAPI(
        title="SeisLens",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served from vendored files instead of a CDN (routes_docs)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.estimates = EstimateStore(settings.estimate_cache_size)
    app.state.scans = ScanJobs(settings)
    install_exception_handlers(app)
    app.openapi = functools.partial(client_openapi, app)  # type: ignore[method-assign]
    app.add_middleware(  # the service's body limits, the scan route's own (scan_uploads)
        RouteBodyLimits,
        max_file_bytes=settings.max_upload_bytes,
        timeout_s=settings.upload_timeout_s,
        max_scan_bytes=settings.max_scan_upload_bytes,
        max_stationxml_bytes=settings.max_stationxml_bytes,
        scan_timeout_s=settings.scan_upload_timeout_s,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"]
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    app.include_router(api_router)
    app.include_router(routes_scans.router)
    app.include_router(routes_docs.router)
    return app


def _load_at_startup(settings: Settings, leases: LeaseKeeper | None) -> LoadedBundle:
    """Load the configured bundle; a bundle that cannot be served stops the start-up."""
    try:
        bundle = load_bundle(settings.bundle, settings, leases)
    except BundleError as exc:
        log.error("cannot start: bundle %s cannot be served: %s", settings.bundle, exc)
        raise
    log.info("serving bundle %s from %s", bundle.name, bundle.path)
    start_parse_workers(settings)  # gather and miniSEED uploads are read in worker processes
    for name, branch in BRANCHES.items():
        loaded = bundle.branches.get(name)
        if loaded is None:
            log.info("no %s branch in this bundle: its routes answer 404", name)
            continue
        library = loaded.library
        log.info(
            "%s branch: %d %ss (%s index), families %s%s",
            name,
            loaded.count,
            branch.item,
            library.index.kind if library else "no",
            ", ".join(loaded.families),
            f" ({loaded.index_problem})" if loaded.index_problem else "",
        )
        log.info(
            "%s branch: ONNX Runtime execution provider: %s (available: %s)",
            name,
            loaded.embedder.provider,
            ", ".join(bundle.runtime.available_providers),
        )
        log.info(
            "%s branch: FAISS index on GPU: %s (%s)",
            name,
            "yes" if loaded.gpu_index else "no",
            loaded.gpu_index_reason,
        )
    return bundle
