"""Velocity routes: search by shot gather, library models and estimated models."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel
from seislens.data.gather_files import GatherUpload
from seislens.index.metadata import ItemRecord
from seislens.models.branches import VELOCITY
from seislens.models.descriptors import DESCRIPTOR_UNITS
from seislens.models.estimation import ESTIMATE_METHOD
from seislens.models.gather_quality import lateral_snr_db
from seislens.service import error_docs as docs
from seislens.service.deps import BundleDep, EstimatesDep, MetricsDep, SettingsDep
from seislens.service.error_docs import ErrorDoc, error_responses, invalid_value
from seislens.service.errors import InvalidParameterError, NotFoundError
from seislens.service.parse_jobs import GATHER, parse_error_docs, read_gather_upload
from seislens.service.rendering import (
    BINARY_RESPONSES,
    SPACING_M,
    ModelFormat,
    as_rows,
    npy_response,
    png_response,
)
from seislens.service.schemas import (
    QueryInfo,
    SearchTiming,
    VelocityEstimateResponse,
    VelocityModelResponse,
    VelocitySearchResponse,
)
from seislens.service.settings import MAX_K
from seislens.service.state import LoadedBundle
from seislens.service.uploads import (
    GATHER_FILE_DOC,
    RAW_BODY_REQUEST,
    RawBodyDep,
    missing_upload,
    unsupported_upload_type,
    uploaded_file,
)
from seislens.service.velocity_answers import keep_estimate, velocity_answer
from seislens.service.velocity_familiarity import with_familiarity
from seislens.service.velocity_search import SearchOutcome, search_gather

router = APIRouter(prefix="/v1/velocity", tags=["velocity"])

FormatQuery = Annotated[
    ModelFormat,
    Query(alias="format", description="json (nested lists), npy (float32 array) or png"),
]

MAX_MODEL_ID = 2**63 - 1
"""The largest model id: item ids are SQLite integers (signed 64-bit); a larger one
is refused (422) before it reaches the store."""

ModelIdPath = Annotated[
    int, Path(ge=0, le=MAX_MODEL_ID, description="the model's id (from a search)")
]

KQuery = Annotated[
    int | None,
    Query(ge=1, le=MAX_K, description="models to return (default SEISLENS_DEFAULT_K, 10)"),
]
"""``k`` of every velocity search."""

FamilyQuery = Annotated[
    str | None, Query(description="only models of this family, e.g. 'flatvel-a'")
]
"""``family`` of every velocity search (checked by :func:`check_family`)."""


def unknown_family(family: str, families: list[str]) -> InvalidParameterError:
    """The 422 for a family filter naming no family of the library."""
    return InvalidParameterError(
        ("query", "family"),
        f"unknown family {family!r}; this library holds: {', '.join(families)}",
        "unknown_family",
    )


def unknown_model(model_id: int, bundle: str, count: int) -> NotFoundError:
    """The 404 for a model id the library (of ``count`` models) does not hold."""
    return NotFoundError(
        f"no velocity model with id {model_id}; the library of bundle {bundle!r} "
        f"holds {count} models",
        "unknown_model",
    )


def unknown_estimate(query_id: str, capacity: int) -> NotFoundError:
    """The 404 for a query id whose estimate is not (or no longer) kept."""
    return NotFoundError(
        f"no estimate for query {query_id}; estimates are kept for the {capacity} most "
        "recent searches",
        "unknown_estimate",
    )


_BAD_FORMAT = ErrorDoc(
    422,
    "bad_format",
    "Unknown format",
    lambda: invalid_value(("query", "format"), ModelFormat, "tiff"),
)
UNKNOWN_FAMILY = ErrorDoc(
    422,
    "unknown_family",
    "Family not in the library",
    lambda: unknown_family("flatvel-c", ["curvefault-b", "flatvel-a"]),
)
GATHER_PARSE_ERRORS = parse_error_docs(GATHER)
"""The parse workers' answers for gather uploads (:mod:`~seislens.service.parse_jobs`)."""
_SEARCH_ERRORS = error_responses(
    *docs.GATHER_ERRORS,
    *GATHER_PARSE_ERRORS,
    docs.K_OUT_OF_RANGE,
    UNKNOWN_FAMILY,
    ErrorDoc(422, "missing_file", "Neither a `file` field nor a raw body", missing_upload),
    ErrorDoc(
        415,
        "unsupported_media_type",
        "Neither multipart nor application/octet-stream",
        lambda: unsupported_upload_type("text/plain"),
    ),
    docs.TOO_LARGE,
    docs.NOT_READY,
    docs.STORE_UNAVAILABLE,
)
_MODEL_ERRORS = error_responses(
    ErrorDoc(
        404,
        "unknown_model",
        "No model with this id",
        lambda: unknown_model(123456, "default", 5000),
    ),
    ErrorDoc(
        422,
        "bad_model_id",
        "Id not a non-negative integer",
        lambda: invalid_value(("path", "model_id"), ModelIdPath, "abc"),
    ),
    ErrorDoc(
        422,
        "model_id_out_of_range",
        "Id past the largest stored id (2^63 - 1)",
        lambda: invalid_value(("path", "model_id"), ModelIdPath, MAX_MODEL_ID + 1),
    ),
    _BAD_FORMAT,
    docs.NOT_READY,
    docs.STORE_UNAVAILABLE,
)
_ESTIMATE_ERRORS = error_responses(
    ErrorDoc(
        404,
        "unknown_estimate",
        "Estimate expired or never made",
        lambda: unknown_estimate("0f3c9a0e6d2b4f7e8a1c5b3d9e7f6a2c", 256),
    ),
    _BAD_FORMAT,
)


@router.post(
    "/search",
    response_model=VelocitySearchResponse,
    responses=_SEARCH_ERRORS,
    summary="Find the velocity models that fit a shot gather",
    openapi_extra=RAW_BODY_REQUEST,
)
def search_velocity(
    request: Request,
    bundle: BundleDep,
    settings: SettingsDep,
    estimates: EstimatesDep,
    metrics: MetricsDep,
    raw: RawBodyDep,
    file: Annotated[
        UploadFile | None,
        File(description=GATHER_FILE_DOC),
    ] = None,
    k: KQuery = None,
    family: FamilyQuery = None,
) -> Response:
    """Upload a gather (a multipart `file`, or the whole body as
    `application/octet-stream`, which skips multipart parsing); get the top-k library
    models by cosine similarity, the physical descriptors inferred from them
    (similarity-weighted mean and spread) and a link to the estimated velocity model
    (their similarity-weighted mean)."""
    start = time.perf_counter()
    check_family(bundle, family)
    with uploaded_file(file, raw, settings.max_upload_bytes) as (path, filename):
        upload = read_gather_upload(path, filename, settings)
    read_s = time.perf_counter() - start
    k = k or settings.default_k
    branch = bundle.branches[VELOCITY.name]
    outcome = search_gather(branch, upload.data, k, family, settings.estimate_temperature)
    outcome.seconds["read"] = read_s
    for stage, seconds in outcome.seconds.items():
        metrics.search_stage.labels(stage).observe(seconds)
    query_id = estimates.new_id()
    keep_estimate(estimates, query_id, outcome, bundle.name, settings.estimate_temperature)
    total_ms = (time.perf_counter() - start) * 1000
    query = _query_info(query_id, filename, upload, k, family, bundle, outcome, total_ms)
    answer = velocity_answer(
        VelocitySearchResponse, request, query, query_id, outcome, settings.estimate_temperature
    )
    best = float(outcome.scores[0]) if len(outcome.scores) else None
    snr_db = lateral_snr_db(upload.data)
    return json_answer(
        with_familiarity(answer, best, branch, upload.partial_geometry, snr_db, query=outcome.query)
    )


@router.get(
    "/models/{model_id}",
    response_model=VelocityModelResponse,
    responses={**BINARY_RESPONSES, **_MODEL_ERRORS},
    summary="A library velocity model",
)
def get_velocity_model(
    bundle: BundleDep,
    model_id: ModelIdPath,
    fmt: FormatQuery = "json",
) -> VelocityModelResponse | Response:
    """One library model as JSON, a float32 ``.npy`` array or a PNG image."""
    library = bundle.branches[VELOCITY.name].library
    assert library is not None  # the velocity branch is served with its library
    record = library.store.get(model_id)
    if record is None:
        raise unknown_model(model_id, bundle.name, len(library))
    velocity = np.asarray(library.array("models")[record.row], dtype=np.float32)
    if fmt == "npy":
        return npy_response(velocity, f"velocity-{model_id}.npy")
    if fmt == "png":
        return png_response(velocity, f"model {model_id} ({record.family})")
    return _model_response(record, velocity)


@router.get(
    "/estimates/{query_id}",
    response_model=VelocityEstimateResponse,
    responses={**BINARY_RESPONSES, **_ESTIMATE_ERRORS},
    summary="The velocity model estimated by a search",
)
def get_velocity_estimate(
    estimates: EstimatesDep,
    query_id: Annotated[str, Path(description="the search's query id", max_length=64)],
    fmt: FormatQuery = "json",
) -> VelocityEstimateResponse | Response:
    """The similarity-weighted mean of a search's top-k models, kept for the most recent
    searches (SEISLENS_ESTIMATE_CACHE_SIZE)."""
    estimate = estimates.get(query_id)
    if estimate is None:
        raise unknown_estimate(query_id, estimates.capacity)
    if fmt == "npy":
        return npy_response(estimate.velocity, f"estimate-{query_id}.npy")
    if fmt == "png":
        return png_response(
            estimate.velocity, f"estimate {query_id[:8]} (top-{len(estimate.neighbour_ids)})"
        )
    return VelocityEstimateResponse(
        query_id=estimate.query_id,
        bundle=estimate.bundle,
        method=ESTIMATE_METHOD,
        temperature=estimate.temperature,
        neighbours=estimate.neighbour_ids,
        weights=estimate.weights,
        shape=list(estimate.velocity.shape),
        spacing_m=SPACING_M,
        velocity=as_rows(estimate.velocity),
    )


# --------------------------------------------------------------------------- helpers


def json_answer(answer: BaseModel) -> Response:
    """``answer`` as its JSON response, serialised here in the handler's thread.

    Returning the model instead makes FastAPI validate the finished answer again and
    serialise it in a second trip through the thread pool (a sync route's response is
    handled there): about 0.5 ms of a search's latency. The bytes are the ones FastAPI
    writes (by alias, nothing excluded: ``tests/service/test_velocity_search_speed.py``
    checks), and the route's ``response_model`` still documents the schema.
    """
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


def check_family(bundle: LoadedBundle, family: str | None) -> None:
    """Refuse a family filter naming no family of the library (422)."""
    branch = bundle.branches[VELOCITY.name]
    if family is not None and family not in branch.family_counts:
        raise unknown_family(family, branch.families)


def _query_info(
    query_id: str,
    filename: str,
    upload: GatherUpload,
    k: int,
    family: str | None,
    bundle: LoadedBundle,
    outcome: SearchOutcome,
    total_ms: float,
) -> QueryInfo:
    ms = {stage: round(s * 1000, 3) for stage, s in outcome.seconds.items()}
    return QueryInfo(
        query_id=query_id,
        filename=filename,
        format=upload.format,
        traces=upload.n_traces,
        source_dt_ms=upload.source_dt_ms,
        notes=upload.notes,
        k=k,
        family=family,
        bundle=bundle.name,
        timing=SearchTiming(
            read_ms=ms["read"],
            embed_ms=ms["embed"],
            search_ms=ms["search"],
            estimate_ms=ms["estimate"],
            total_ms=round(total_ms, 3),
        ),
    )


def _model_response(record: ItemRecord, velocity: np.ndarray) -> VelocityModelResponse:
    return VelocityModelResponse(
        id=record.id,
        family=record.family,
        source=record.source,
        descriptors=record.descriptors,
        units={name: DESCRIPTOR_UNITS.get(name, "") for name in record.descriptors},
        shape=list(velocity.shape),
        spacing_m=SPACING_M,
        velocity=as_rows(velocity),
    )
