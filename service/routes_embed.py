"""Embedding routes: any modality of a bundle's shared spaces in, its embedding out, for
users who index their own data. ``POST /v1/embed/<modality>`` takes the same upload as
the matching search (:data:`~seislens.service.embedding_modalities.MODALITIES`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, UploadFile
from seislens.models.branches import EVENTS, VELOCITY
from seislens.service import error_docs as docs
from seislens.service.deps import BundleDep, SettingsDep
from seislens.service.embedding_modalities import (
    MODALITIES,
    as_floats,
    embed_recording,
    embedding_info,
    unknown_modality,
)
from seislens.service.error_docs import ErrorDoc, error_responses, invalid_value
from seislens.service.event_search import read_recording
from seislens.service.parse_jobs import read_gather_upload
from seislens.service.routes_events import (
    EVENT_QUERY_ERRORS,
    FileField,
    ParamsDep,
    event_branch,
    window_info,
)
from seislens.service.routes_velocity import GATHER_PARSE_ERRORS
from seislens.service.schemas import SkippedStation
from seislens.service.schemas_query import (
    DescriptorValues,
    EmbeddingResponse,
    RecordingEmbeddingResponse,
    StationEmbedding,
)
from seislens.service.uploads import GATHER_FILE_DOC, saved_upload
from seislens.service.velocity_descriptor_search import (
    DESCRIPTOR_VALUE_ERRORS,
    INCOMPLETE_DESCRIPTORS,
    descriptor_query,
    require_all_descriptors,
)
from seislens.service.velocity_model_input import (
    VELOCITY_MODEL_ERRORS,
    VELOCITY_MODEL_REQUEST,
    VelocityModelDep,
)

router = APIRouter(prefix="/v1/embed", tags=["embed"])

_UNKNOWN_MODALITY = ErrorDoc(
    404, "unknown_modality", "Not a modality", lambda: unknown_modality("spectrum")
)


@router.post(
    "/gather",
    response_model=EmbeddingResponse,
    responses=error_responses(
        *docs.GATHER_ERRORS,
        *GATHER_PARSE_ERRORS,
        docs.MISSING_FILE,
        docs.TOO_LARGE,
        docs.NOT_READY,
    ),
    summary="Embed a shot gather (seismic encoder)",
)
def embed_gather(
    bundle: BundleDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=GATHER_FILE_DOC)],
) -> EmbeddingResponse:
    """The unit-norm embedding the gather search searches with: the same upload, readers
    and preprocessing as `POST /v1/velocity/search`."""
    with saved_upload(file, settings.max_upload_bytes) as path:
        upload = read_gather_upload(path, file.filename or "upload", settings)
    vector = bundle.branches[VELOCITY.name].embedder.embed_gathers(upload.data[None])[0]
    return EmbeddingResponse(
        **embedding_info(bundle, MODALITIES["gather"]),
        embedding=as_floats(vector),
        notes=upload.notes,
    )


@router.post(
    "/velocity",
    response_model=EmbeddingResponse,
    responses=error_responses(*VELOCITY_MODEL_ERRORS),
    openapi_extra=VELOCITY_MODEL_REQUEST,
    summary="Embed a velocity model (velocity encoder: the library's embeddings)",
)
def embed_velocity_model(bundle: BundleDep, velocity: VelocityModelDep) -> EmbeddingResponse:
    """A 70 × 70 velocity model in m/s, as a multipart `.npy` `file` or JSON
    `{"velocity_model": [[...]]}` (as `POST /v1/velocity/search/by-model`), embedded
    as the library's models are."""
    embedder = bundle.branches[VELOCITY.name].embedder
    vector = embedder.embed_velocity_models(velocity.upload.data[None])[0]
    return EmbeddingResponse(
        **embedding_info(bundle, MODALITIES["velocity"]),
        embedding=as_floats(vector),
        notes=velocity.upload.notes,
    )


@router.post(
    "/descriptors",
    response_model=EmbeddingResponse,
    responses=error_responses(
        *DESCRIPTOR_VALUE_ERRORS,
        INCOMPLETE_DESCRIPTORS,
        ErrorDoc(
            422,
            "bad_body",
            "Not a JSON object of descriptors",
            lambda: invalid_value(("body",), DescriptorValues, {"mean_velocity": 3000.0}),
        ),
        docs.NOT_READY,
    ),
    summary="Embed the nine physical descriptors (descriptor encoder)",
)
def embed_descriptors(bundle: BundleDep, body: DescriptorValues) -> EmbeddingResponse:
    """JSON `{"descriptors": {name: value}}` with all nine descriptors, in their units."""
    wanted = require_all_descriptors(descriptor_query(body.descriptors))
    vector = bundle.branches[VELOCITY.name].embedder.embed_descriptors(wanted.vector()[None])
    return EmbeddingResponse(
        **embedding_info(bundle, MODALITIES["descriptors"]),
        embedding=as_floats(vector[0]),
        notes=[],
    )


@router.post(
    "/recording",
    response_model=RecordingEmbeddingResponse,
    responses=error_responses(*EVENT_QUERY_ERRORS),
    summary="Embed each station window of a miniSEED recording (spectrum encoder)",
    dependencies=[Depends(event_branch)],  # 404 without an event branch
)
def embed_recording_windows(
    bundle: BundleDep,
    settings: SettingsDep,
    params: ParamsDep,
    file: FileField,
) -> RecordingEmbeddingResponse:
    """The same upload, parameters and windows as `POST /v1/events/classify` (`k` is not
    used); one unit-norm spectrum-encoder embedding per station window."""
    pre = bundle.branches[EVENTS.name].embedder.pre
    with saved_upload(file, settings.max_upload_bytes) as path:
        recording = read_recording(
            path, file.filename or "upload", pre, params.station, params.p_arrival, settings
        )
    found = embed_recording(bundle, recording)
    return RecordingEmbeddingResponse(
        **embedding_info(bundle, MODALITIES["recording"]),
        stations=[
            StationEmbedding(
                station=w.station,
                channels=list(w.channels),
                window=window_info(w),
                embedding=as_floats(v),
            )
            for w, v in zip(found.windows, found.vectors, strict=True)
        ],
        skipped=[SkippedStation(station=k, reason=why) for k, why in found.skipped],
        notes=recording.notes,
    )


ModalityPath = Annotated[str, Path(max_length=64, description="gather, velocity, …")]


@router.post(
    "/{modality}",
    responses=error_responses(
        _UNKNOWN_MODALITY,
        ErrorDoc(
            422,
            "bad_modality",
            "Modality name too long",
            lambda: invalid_value(("path", "modality"), ModalityPath, "x" * 65),
        ),
    ),
    summary="Any other modality: 404 with those accepted",
    response_description="never: a modality without a route of its own is answered 404",
)
def embed_unknown_modality(modality: ModalityPath) -> None:
    """Answers 404 with the accepted modalities (the routes above take precedence)."""
    raise unknown_modality(modality)
