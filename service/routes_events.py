"""Event routes: classify a miniSEED recording, and search the library for similar events.

Both take the same upload and parameters and run the same path
(:mod:`seislens.service.event_search`); the search skips the classification heads.
``station``, ``p_arrival`` and ``k`` may be sent as query parameters or as form fields
of the multipart body (as an HTML form does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from obspy import UTCDateTime
from seislens.data.event_travel_time import TravelTimeDepth, travel_time_depth
from seislens.index.metadata import ItemRecord
from seislens.models.branches import EVENTS
from seislens.models.contract import SAMPLING_RATE_HZ, WINDOW_S
from seislens.models.event_preprocess import EventWindow
from seislens.service import error_docs as docs
from seislens.service.deps import BundleDep, MetricsDep, SettingsDep
from seislens.service.error_docs import ErrorDoc, error_responses
from seislens.service.errors import (
    InvalidParameterError,
    NotFoundError,
    UnavailableError,
)
from seislens.service.event_search import (
    EventOutcome,
    StationOutcome,
    parse_p_arrival,
    read_recording,
    run_events,
)
from seislens.service.library_search import ranked_matches
from seislens.service.parse_jobs import MINISEED, parse_error_docs
from seislens.service.schemas import (
    EventClassifyResponse,
    EventQueryInfo,
    EventSearchResponse,
    EventTiming,
    EventWindowInfo,
    Quantity,
    SimilarEvent,
    SkippedStation,
    SPickInfo,
    StationClassification,
    StationEvents,
    TravelTimeCheck,
)
from seislens.service.settings import MAX_K
from seislens.service.state import NO_EVENT_ENCODERS, LoadedBranch, LoadedBundle
from seislens.service.uploads import saved_upload

router = APIRouter(prefix="/v1/events", tags=["events"])


def no_event_branch() -> NotFoundError:
    """The 404 of a bundle without an event branch."""
    return NotFoundError(NO_EVENT_ENCODERS, "no_event_encoders")


def no_events_index(problem: str) -> UnavailableError:
    """The 503 of a similar-event search on an event branch served without its index."""
    return UnavailableError(f"similar-event search is unavailable: {problem}", "no_events_index")


PARSE_ERRORS = parse_error_docs(MINISEED)
"""The answers of the parse workers (:func:`~seislens.service.event_search.read_recording`)."""

EVENT_QUERY_ERRORS = (
    ErrorDoc(404, "no_event_encoders", "The bundle has no event branch", no_event_branch),
    *docs.RECORDING_ERRORS,
    ErrorDoc(
        422,
        "bad_p_arrival",
        "p_arrival not a time",
        lambda: _p_arrival("yesterday", "query"),
    ),
    ErrorDoc(422, "conflict", "Given twice, differently", lambda: _one("station", "CER", "FUR")),
    docs.K_OUT_OF_RANGE,
    docs.MISSING_FILE,
    docs.TOO_LARGE,
    docs.NOT_READY,
    *PARSE_ERRORS,
)
_NO_EVENTS_INDEX = ErrorDoc(
    503,
    "no_events_index",
    "The bundle has no usable events index",
    lambda: no_events_index(
        "the bundle has events encoders but no events index; build it (seislens index "
        "build --branch events) to search similar items"
    ),
)

_FILE_DOC = (
    "a miniSEED recording with three components per station (Z, N, E or Z, 1, 2), at "
    f"least {WINDOW_S:.0f} s long"
)
_STATION_DOC = "only this station: 'STA' or 'NET.STA' (default: every station in the file)"
_P_DOC = "a known P arrival (UTC, ISO 8601) to align the window on (default: STA/LTA trigger)"
_K_DOC = "similar library events per station (default SEISLENS_DEFAULT_K, 10)"

_ID_LEN = 64


@dataclass(frozen=True)
class EventQueryParams:
    """The parameters of an event query, from the query string or the form."""

    station: str | None
    p_arrival: UTCDateTime | None
    p_arrival_text: str | None
    k: int


def _one(name: str, query: object, form: object) -> tuple[object, str]:
    """The value given once, as a query parameter or a form field, and where."""
    if query is not None and form is not None and query != form:
        raise InvalidParameterError(
            ("query", name),
            f"{name} is given twice with different values: {query!r} as a query parameter "
            f"and {form!r} as a form field; give it once",
            "conflict",
        )
    return (query, "query") if query is not None else (form, "body")


def _blank(text: str | None) -> str | None:
    return text.strip() if text is not None and text.strip() else None


async def event_params(
    settings: SettingsDep,
    station: Annotated[str | None, Query(max_length=_ID_LEN, description=_STATION_DOC)] = None,
    p_arrival: Annotated[str | None, Query(max_length=_ID_LEN, description=_P_DOC)] = None,
    k: Annotated[int | None, Query(ge=1, le=MAX_K, description=_K_DOC)] = None,
    station_form: Annotated[
        str | None, Form(alias="station", max_length=_ID_LEN, description=_STATION_DOC)
    ] = None,
    p_arrival_form: Annotated[
        str | None, Form(alias="p_arrival", max_length=_ID_LEN, description=_P_DOC)
    ] = None,
    k_form: Annotated[int | None, Form(alias="k", ge=1, le=MAX_K, description=_K_DOC)] = None,
) -> EventQueryParams:
    """Merge the query-string and form parameters; parse ``p_arrival``."""
    sta, _ = _one("station", _blank(station), _blank(station_form))
    p_text, where = _one("p_arrival", _blank(p_arrival), _blank(p_arrival_form))
    k_value, _ = _one("k", k, k_form)
    p_time = None if p_text is None else _p_arrival(str(p_text), where)
    return EventQueryParams(
        station=None if sta is None else str(sta),
        p_arrival=p_time,
        p_arrival_text=None if p_time is None else str(p_time),
        k=int(k_value) if k_value is not None else settings.default_k,  # type: ignore[call-overload]
    )


def _p_arrival(text: str, where: str) -> UTCDateTime:
    """``p_arrival`` as a UTC time; a 422 at ``(where, 'p_arrival')`` if it is none."""
    try:
        return parse_p_arrival(text)
    except ValueError as exc:
        raise InvalidParameterError((where, "p_arrival"), str(exc), "bad_p_arrival") from exc


async def event_branch(bundle: BundleDep) -> LoadedBranch:
    """The bundle's event branch; 404 when it has none."""
    branch = bundle.branches.get(EVENTS.name)
    if branch is None:
        raise no_event_branch()
    return branch


ParamsDep = Annotated[EventQueryParams, Depends(event_params)]
BranchDep = Annotated[LoadedBranch, Depends(event_branch)]
FileField = Annotated[UploadFile, File(description=_FILE_DOC)]


@router.post(
    "/classify",
    response_model=EventClassifyResponse,
    responses=error_responses(*EVENT_QUERY_ERRORS),
    summary="Classify a miniSEED recording: event type, source parameters, similar events",
)
def classify_events(
    bundle: BundleDep,
    branch: BranchDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    params: ParamsDep,
    file: FileField,
) -> EventClassifyResponse:
    """Upload a three-component miniSEED recording; per station, get the event type
    probabilities (earthquake, explosion, surface event, noise), the epicentral distance,
    depth and magnitude the model infers (meaningless for noise), the top-k most similar
    library events and the 60 s window used (aligned on `p_arrival` when given, else on
    an STA/LTA trigger, else the start of the record)."""
    query, outcome = _run(bundle, branch, settings, metrics, params, file, classify=True)
    return EventClassifyResponse(
        query=query,
        stations=[_classification(branch, s) for s in outcome.stations],
        skipped=_skipped(outcome),
    )


@router.post(
    "/search",
    response_model=EventSearchResponse,
    responses=error_responses(*EVENT_QUERY_ERRORS, _NO_EVENTS_INDEX),
    summary="Find the library events most similar to a miniSEED recording",
)
def search_events(
    bundle: BundleDep,
    branch: BranchDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    params: ParamsDep,
    file: FileField,
) -> EventSearchResponse:
    """The similar-event half of `classify_events`, on the same path: per station, the
    window used and the top-k library events by cosine similarity of the spectrum
    embeddings."""
    if branch.library is None:
        raise no_events_index(str(branch.index_problem))
    query, outcome = _run(bundle, branch, settings, metrics, params, file, classify=False)
    return EventSearchResponse(
        query=query,
        stations=[
            StationEvents(
                station=s.window.station,
                channels=list(s.window.channels),
                window=window_info(s.window),
                similar=_similar(s),
            )
            for s in outcome.stations
        ],
        skipped=_skipped(outcome),
    )


# --------------------------------------------------------------------------- helpers


def _run(
    bundle: LoadedBundle,
    branch: LoadedBranch,
    settings: SettingsDep,
    metrics: MetricsDep,
    params: EventQueryParams,
    file: UploadFile,
    classify: bool,
) -> tuple[EventQueryInfo, EventOutcome]:
    """Read the upload (in a parse worker), run the event path, record the stage times."""
    start = time.perf_counter()
    filename = file.filename or "upload"
    with saved_upload(file, settings.max_upload_bytes) as path:
        recording = read_recording(
            path, filename, branch.embedder.pre, params.station, params.p_arrival, settings
        )
    read_s = time.perf_counter() - start - recording.seconds.get("preprocess", 0.0)
    outcome = run_events(branch, recording, params.k, classify)
    outcome.seconds["read"] = read_s
    for stage, seconds in outcome.seconds.items():
        metrics.event_stage.labels(stage).observe(seconds)
    ms = {stage: round(s * 1000, 3) for stage, s in outcome.seconds.items()}
    notes = list(recording.notes)
    if branch.library is None:
        notes.append(f"no similar events: {branch.index_problem}")
    query = EventQueryInfo(
        filename=filename,
        traces=recording.traces,
        stations_in_file=recording.stations,
        station=params.station,
        p_arrival=params.p_arrival_text,
        k=params.k,
        bundle=bundle.name,
        library_events=branch.count,
        notes=notes,
        timing=EventTiming(
            read_ms=ms["read"],
            preprocess_ms=ms["preprocess"],
            embed_ms=ms["embed"],
            classify_ms=ms["classify"],
            search_ms=ms["search"],
            total_ms=round((time.perf_counter() - start) * 1000, 3),
        ),
    )
    return query, outcome


def window_info(w: EventWindow) -> EventWindowInfo:
    """The answer's description of a station's 60 s window."""
    p_offset = None if w.p_sample is None else w.p_sample / SAMPLING_RATE_HZ
    return EventWindowInfo(
        start=str(w.start),
        end=str(w.end),
        seconds=WINDOW_S,
        rule=w.rule,
        p_time=None if p_offset is None else str(w.start + p_offset),
        p_offset_s=p_offset,
        padded_s=w.padded_s,
        input_sampling_rate_hz=w.input_sampling_rate_hz,
    )


def neighbour_spread(records: Sequence[ItemRecord], key: str) -> float | None:
    """Standard deviation of catalogue field ``key`` over ``records`` (the top-k similar
    events) that have a finite value for it; None with fewer than two."""
    values = []
    for rec in records:
        value = rec.metadata.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            values.append(float(value))
    return round(float(np.std(values)), 3) if len(values) >= 2 else None


def _similar(s: StationOutcome) -> list[SimilarEvent]:
    return [
        SimilarEvent(**shared, label=rec.family, metadata=rec.metadata)
        for rec, shared in ranked_matches(s.records, s.scores)
    ]


def _classification(branch: LoadedBranch, s: StationOutcome) -> StationClassification:
    assert s.probabilities is not None and s.regression is not None
    classes = branch.embedder.classes
    probs = np.asarray(s.probabilities, dtype=np.float64)
    units = branch.embedder.targets

    def quantity(name: str, default_unit: str, key: str) -> Quantity:
        return Quantity(
            value=round(float(s.regression[name]), 3),  # type: ignore[index]
            unit=units.get(name, default_unit),
            spread=neighbour_spread(s.records, key),
        )

    label = classes[int(probs.argmax())]
    depth = quantity("depth", "km", "depth_km")
    check = travel_time_depth(
        s.window.waveform, s.window.p_sample, float(s.regression["distance"]), label
    )
    value, method = check.answer(depth.value)
    depth = depth.model_copy(update={"value": round(value, 3), "method": method})
    label = check.label  # an explosion too deep to be one is an earthquake
    return StationClassification(
        station=s.window.station,
        channels=list(s.window.channels),
        window=window_info(s.window),
        probabilities={c: round(float(p), 6) for c, p in zip(classes, probs, strict=True)},
        label=label,
        distance_km=quantity("distance", "km", "distance_km"),
        depth_km=depth,
        magnitude=quantity("magnitude", "magnitude units", "magnitude"),
        travel_time=travel_time_check(s.window, check, float(s.regression["depth"])),
        similar=_similar(s),
    )


def travel_time_check(
    window: EventWindow, check: TravelTimeDepth, model_depth_km: float
) -> TravelTimeCheck:
    """The answer's S − P block from :func:`travel_time_depth`'s result."""
    pick = check.pick
    return TravelTimeCheck(
        s_pick=None
        if pick is None
        else SPickInfo(
            s_time=str(window.start + pick.s_sample / SAMPLING_RATE_HZ),
            s_minus_p_s=round(pick.s_minus_p_s, 3),
            ratio=round(pick.ratio, 2),
        ),
        depth_km=None if check.depth_km is None else round(check.depth_km, 3),
        model_depth_km=round(model_depth_km, 3),
        applied=check.applied,
        reason=check.reason,
        relabelled_from=check.relabelled_from,
    )


def _skipped(outcome: EventOutcome) -> list[SkippedStation]:
    return [SkippedStation(station=k, reason=why) for k, why in outcome.skipped]
