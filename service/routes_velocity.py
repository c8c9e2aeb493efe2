"""Velocity routes: search by shot gather, library models and estimated models."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, HTTPException, Path, Query, Request, Response, UploadFile
from seislens.data.gather_files import GatherUpload, read_gather
from seislens.index.metadata import ItemRecord
from seislens.models.descriptors import DESCRIPTOR_UNITS
from seislens.service import errors as err
from seislens.service.deps import BundleDep, EstimatesDep, MetricsDep, SettingsDep
from seislens.service.errors import InvalidParameterError, error_responses
from seislens.service.estimation import ESTIMATE_METHOD, Estimate
from seislens.service.rendering import (
    BINARY_RESPONSES,
    SPACING_M,
    ModelFormat,
    as_rows,
    npy_response,
    png_response,
)
from seislens.service.schemas import (
    DescriptorEstimate,
    EstimatedModel,
    QueryInfo,
    SearchTiming,
    VelocityEstimateResponse,
    VelocityMatch,
    VelocityModelResponse,
    VelocitySearchResponse,
)
from seislens.service.search import SearchOutcome, descriptor_unit, search_gather
from seislens.service.settings import MAX_K
from seislens.service.state import LoadedBundle
from seislens.service.uploads import saved_upload

router = APIRouter(prefix="/v1/velocity", tags=["velocity"])

FormatQuery = Annotated[
    ModelFormat,
    Query(alias="format", description="json (nested lists), npy (float32 array) or png"),
]

_SEARCH_ERRORS = error_responses(
    err.EMPTY_FILE,
    err.TRUNCATED,
    err.NOT_A_GATHER,
    err.GEOMETRY,
    err.NON_FINITE,
    err.NPY_PICKLE,
    err.K_OUT_OF_RANGE,
    err.UNKNOWN_FAMILY,
    err.MISSING_FILE,
    err.TOO_LARGE,
    err.NOT_READY,
    err.STORE_UNAVAILABLE,
)


@router.post(
    "/search",
    response_model=VelocitySearchResponse,
    responses=_SEARCH_ERRORS,
    summary="Find the velocity models that fit a shot gather",
)
def search_velocity(
    request: Request,
    bundle: BundleDep,
    settings: SettingsDep,
    estimates: EstimatesDep,
    metrics: MetricsDep,
    file: Annotated[
        UploadFile,
        File(
            description="a shot gather: SEG-Y (rev 0/1, IBM or IEEE floats), SU or .npy "
            "(5, 1000, 70) — 5 shots × 70 receivers, 1 s"
        ),
    ],
    k: Annotated[
        int | None,
        Query(ge=1, le=MAX_K, description="models to return (default SEISLENS_DEFAULT_K, 10)"),
    ] = None,
    family: Annotated[
        str | None, Query(description="only models of this family, e.g. 'flatvel-a'")
    ] = None,
) -> VelocitySearchResponse:
    """Upload a gather; get the top-k library models by cosine similarity, the physical
    descriptors inferred from them (similarity-weighted mean and spread) and a link to
    the estimated velocity model (their similarity-weighted mean)."""
    start = time.perf_counter()
    _check_family(bundle, family)
    with saved_upload(file, settings.max_upload_bytes) as path:
        upload = read_gather(path, file.filename or "upload")
    read_s = time.perf_counter() - start
    k = k or settings.default_k
    outcome = search_gather(bundle, upload.data, k, family, settings.estimate_temperature)
    outcome.seconds["read"] = read_s
    for stage, seconds in outcome.seconds.items():
        metrics.search_stage.labels(stage).observe(seconds)
    query_id = estimates.new_id()
    if outcome.velocity is not None:
        estimates.put(_estimate(query_id, outcome, bundle, settings.estimate_temperature))
    total_ms = (time.perf_counter() - start) * 1000
    query = _query_info(query_id, file, upload, k, family, bundle, outcome, total_ms)
    return _search_response(request, query, outcome, settings.estimate_temperature)


@router.get(
    "/models/{model_id}",
    response_model=VelocityModelResponse,
    responses={
        **BINARY_RESPONSES,
        **error_responses(
            err.MODEL_NOT_FOUND,
            err.BAD_MODEL_ID,
            err.BAD_FORMAT,
            err.NOT_READY,
            err.STORE_UNAVAILABLE,
        ),
    },
    summary="A library velocity model",
)
def get_velocity_model(
    bundle: BundleDep,
    model_id: Annotated[int, Path(ge=0, description="the model's id (from a search)")],
    fmt: FormatQuery = "json",
) -> VelocityModelResponse | Response:
    """One library model as JSON, a float32 ``.npy`` array or a PNG image."""
    record = bundle.library.store.get(model_id)
    if record is None:
        raise HTTPException(
            404,
            f"no velocity model with id {model_id}; the library of bundle {bundle.name!r} "
            f"holds {bundle.count} models",
        )
    velocity = np.asarray(bundle.library.models[record.row], dtype=np.float32)
    if fmt == "npy":
        return npy_response(velocity, f"velocity-{model_id}.npy")
    if fmt == "png":
        return png_response(velocity, f"model {model_id} ({record.family})")
    return _model_response(record, velocity)


@router.get(
    "/estimates/{query_id}",
    response_model=VelocityEstimateResponse,
    responses={**BINARY_RESPONSES, **error_responses(err.ESTIMATE_NOT_FOUND, err.BAD_FORMAT)},
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
        raise HTTPException(
            404,
            f"no estimate for query {query_id}; estimates are kept for the "
            f"{estimates.capacity} most recent searches",
        )
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


def _check_family(bundle: LoadedBundle, family: str | None) -> None:
    """Refuse a family filter naming no family of the library (422)."""
    if family is not None and family not in bundle.family_counts:
        raise InvalidParameterError(
            ("query", "family"),
            f"unknown family {family!r}; this library holds: {', '.join(bundle.families)}",
            "unknown_family",
        )


def _estimate(
    query_id: str, outcome: SearchOutcome, bundle: LoadedBundle, temperature: float
) -> Estimate:
    assert outcome.velocity is not None
    return Estimate(
        query_id=query_id,
        velocity=outcome.velocity,
        neighbour_ids=[int(r.id) for r in outcome.records],
        weights=[round(float(w), 6) for w in outcome.weights],
        bundle=bundle.name,
        temperature=temperature,
    )


def _query_info(
    query_id: str,
    file: UploadFile,
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
        filename=file.filename or "upload",
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


def _search_response(
    request: Request, query: QueryInfo, outcome: SearchOutcome, temperature: float
) -> VelocitySearchResponse:
    results = [
        VelocityMatch(
            rank=rank,
            id=rec.id,
            score=round(float(score), 6),
            family=rec.family,
            descriptors=rec.descriptors,
            source=rec.source,
            model_url=str(request.url_for("get_velocity_model", model_id=str(rec.id))),
        )
        for rank, (rec, score) in enumerate(zip(outcome.records, outcome.scores, strict=True), 1)
    ]
    inferred = {
        name: DescriptorEstimate(mean=mean, std=std, unit=descriptor_unit(name))
        for name, (mean, std) in outcome.descriptors.items()
    }
    estimated = None
    if outcome.velocity is not None:
        estimated = EstimatedModel(
            query_id=query.query_id,
            url=str(request.url_for("get_velocity_estimate", query_id=query.query_id)),
            shape=list(outcome.velocity.shape),
            method=ESTIMATE_METHOD,
            neighbours=len(outcome.records),
            temperature=temperature,
        )
    return VelocitySearchResponse(
        query=query, results=results, inferred_descriptors=inferred, estimated_model=estimated
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
