"""Probes and metrics: liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response
from seislens.models.branches import VELOCITY
from seislens.service import error_docs as docs
from seislens.service.deps import HolderDep, MetricsDep
from seislens.service.error_docs import error_responses
from seislens.service.metrics import CONTENT_TYPE
from seislens.service.schemas import HealthResponse, ReadyResponse
from seislens.service.state import BundleNotLoadedError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness probe")
async def get_health() -> HealthResponse:
    """The process is up and answering (says nothing about the bundle)."""
    return HealthResponse()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses=error_responses(docs.NOT_READY),
    summary="Readiness probe",
)
async def get_readiness(holder: HolderDep) -> ReadyResponse:
    """200 when a bundle is loaded and searches are answered, else 503."""
    bundle = holder.current
    if bundle is None:
        raise BundleNotLoadedError("no bundle is loaded")
    return ReadyResponse(bundle=bundle.name, models=bundle.library_size(VELOCITY.name))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {CONTENT_TYPE: {}}}},
    summary="Prometheus metrics",
)
async def get_metrics(metrics: MetricsDep) -> Response:
    """Requests and latency per route, refused uploads by reason, bundle reloads, search
    stage times, library size and process figures, in Prometheus' text format."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
