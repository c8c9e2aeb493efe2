"""Velocity routes that query the library by the other two modalities of its shared
space: a velocity model (``/v1/velocity/search/by-model``) and physical descriptors
(``/v1/velocity/search/by-descriptors``). They answer like the gather search: the
top-k library models with links, the inferred descriptors and the estimated model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from seislens.models.branches import VELOCITY
from seislens.service import error_docs as docs
from seislens.service.deps import BundleDep, EstimatesDep, SettingsDep
from seislens.service.error_docs import ErrorDoc, error_responses, invalid_value
from seislens.service.estimation import EstimateStore
from seislens.service.routes_velocity import (
    UNKNOWN_FAMILY,
    FamilyQuery,
    KQuery,
    check_family,
)
from seislens.service.schemas import SearchTiming, VelocityAnswer
from seislens.service.schemas_query import (
    DescriptorQueryInfo,
    DescriptorSearchBody,
    DescriptorSearchResponse,
    VelocityModelQueryInfo,
    VelocityModelSearchResponse,
    VelocityQueryBase,
)
from seislens.service.state import LoadedBundle
from seislens.service.velocity_answers import keep_estimate, velocity_answer
from seislens.service.velocity_descriptor_search import (
    DESCRIPTOR_SEARCH_RULE,
    DESCRIPTOR_VALUE_ERRORS,
    TOLERANCE_ERRORS,
    descriptor_query,
    search_descriptors,
)
from seislens.service.velocity_model_input import (
    VELOCITY_MODEL_ERRORS,
    VELOCITY_MODEL_REQUEST,
    VelocityModelDep,
)
from seislens.service.velocity_search import SearchOutcome, search_velocity_model

router = APIRouter(prefix="/v1/velocity/search", tags=["velocity"])

AnswerT = TypeVar("AnswerT", bound=VelocityAnswer)

_BAD_DESCRIPTOR_BODY = ErrorDoc(
    422,
    "bad_body",
    "Not a JSON object of descriptors",
    lambda: invalid_value(("body",), DescriptorSearchBody, {"mean_velocity": 3000.0}),
)
_SHARED_ERRORS = (docs.K_OUT_OF_RANGE, UNKNOWN_FAMILY, docs.STORE_UNAVAILABLE)


@dataclass(frozen=True)
class VelocityQueryParams:
    """What every query of these routes shares: ``k``, the checked ``family``, the
    estimate's softmax temperature and when the request began (``perf_counter``)."""

    k: int
    family: str | None
    temperature: float
    start: float


async def velocity_query_params(
    bundle: BundleDep, settings: SettingsDep, k: KQuery = None, family: FamilyQuery = None
) -> VelocityQueryParams:
    """``k`` (default SEISLENS_DEFAULT_K) and ``family`` (422 for one not in the library)."""
    start = time.perf_counter()
    check_family(bundle, family)
    k_value = k or settings.default_k
    return VelocityQueryParams(k_value, family, settings.estimate_temperature, start)


ParamsDep = Annotated[VelocityQueryParams, Depends(velocity_query_params)]


def _answer(
    answer: type[AnswerT],
    info: type[VelocityQueryBase],
    request: Request,
    bundle: LoadedBundle,
    estimates: EstimateStore,
    params: VelocityQueryParams,
    outcome: SearchOutcome,
    read_s: float,
    **fields: Any,
) -> AnswerT:
    """Keep the estimate and answer: ``info`` of the query (its own ``fields``, and the
    id, k, family, bundle and timing every query reports) with the search's results."""
    query_id = estimates.new_id()
    keep_estimate(estimates, query_id, outcome, bundle.name, params.temperature)
    ms = {stage: round(s * 1000, 3) for stage, s in outcome.seconds.items()}
    timing = SearchTiming(
        read_ms=round(read_s * 1000, 3),
        embed_ms=ms["embed"],
        search_ms=ms["search"],
        estimate_ms=ms["estimate"],
        total_ms=round((time.perf_counter() - params.start) * 1000, 3),
    )
    query = info(
        query_id=query_id,
        k=params.k,
        family=params.family,
        bundle=bundle.name,
        timing=timing,
        **fields,
    )
    return velocity_answer(answer, request, query, query_id, outcome, params.temperature)


@router.post(
    "/by-model",
    response_model=VelocityModelSearchResponse,
    responses=error_responses(*VELOCITY_MODEL_ERRORS, *_SHARED_ERRORS),
    openapi_extra=VELOCITY_MODEL_REQUEST,
    summary="Find the library velocity models closest to a velocity model",
)
def search_velocity_by_model(
    request: Request,
    bundle: BundleDep,
    estimates: EstimatesDep,
    params: ParamsDep,
    velocity: VelocityModelDep,
) -> VelocityModelSearchResponse:
    """Send a 70 × 70 velocity model in m/s (10 m cells, z downwards) as a multipart
    `.npy` `file` or as JSON `{"velocity_model": [[...]]}`; get the top-k library models
    by cosine similarity of the velocity-encoder embeddings (the library's own), the
    descriptors they imply and a link to their weighted-mean model."""
    branch = bundle.branches[VELOCITY.name]
    model = velocity.upload
    outcome = search_velocity_model(branch, model.data, params.k, params.family, params.temperature)
    return _answer(
        VelocityModelSearchResponse,
        VelocityModelQueryInfo,
        request,
        bundle,
        estimates,
        params,
        outcome,
        velocity.read_s,
        filename=velocity.filename,
        format=model.format,
        notes=model.notes,
    )


@router.post(
    "/by-descriptors",
    response_model=DescriptorSearchResponse,
    responses=error_responses(
        *DESCRIPTOR_VALUE_ERRORS,
        *TOLERANCE_ERRORS,
        _BAD_DESCRIPTOR_BODY,
        *_SHARED_ERRORS,
        docs.NOT_READY,
    ),
    summary="Find the library velocity models with given physical descriptors",
    description=(
        "Send descriptor values (any subset of the nine) and optional tolerances; get "
        "the top-k library models, the descriptors they imply and a link to their "
        "weighted-mean model. " + DESCRIPTOR_SEARCH_RULE
    ),
)
def search_velocity_by_descriptors(
    request: Request,
    bundle: BundleDep,
    estimates: EstimatesDep,
    params: ParamsDep,
    body: DescriptorSearchBody,
) -> DescriptorSearchResponse:
    """Search by descriptors (the rule: :data:`DESCRIPTOR_SEARCH_RULE`)."""
    wanted = descriptor_query(body.descriptors, body.tolerances)
    branch = bundle.branches[VELOCITY.name]
    found = search_descriptors(branch, wanted, params.k, params.family, params.temperature)
    return _answer(
        DescriptorSearchResponse,
        DescriptorQueryInfo,
        request,
        bundle,
        estimates,
        params,
        found.outcome,
        0.0,
        descriptors=wanted.targets,
        tolerances=wanted.tolerances,
        method=found.method,
        candidates=found.candidates,
    )
