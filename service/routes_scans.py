"""Scan routes: a long miniSEED recording in, a job out; its progress, detections and
downloads.

``POST /v1/events/scans`` takes the recording (multipart ``file`` with an optional
``stationxml``, or a raw ``application/octet-stream`` body) up to
``SEISLENS_MAX_SCAN_UPLOAD_BYTES``, checks its record headers and stations at once (a
file that is not miniSEED, or holds no station with three components, is refused 422
before any job exists; a StationXML that does not cover its stations too), and answers
202 with the job's id, status and ``Location``. The job then runs in its own process
(:mod:`~seislens.service.scan_jobs`). ``GET /v1/events/scans/{id}`` gives its state and
progress and, once done, the whole result with links to its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from seislens.models.embedders import choose_providers
from seislens.models.event_association import AssociationConfig, StationPosition
from seislens.models.event_scan import ScanConfig
from seislens.service.deps import BundleDep, SettingsDep
from seislens.service.error_docs import ErrorDoc, error_responses, invalid_value
from seislens.service.errors import InvalidParameterError
from seislens.service.links import link
from seislens.service.routes_events import EVENT_QUERY_ERRORS, event_branch
from seislens.service.scan_jobs import (
    ScanJobs,
    ScanNotFinishedError,
    TooManyScansError,
    UnknownScanError,
)
from seislens.service.scan_outputs import FILES
from seislens.service.scan_reader import MappedRecording, ScanBudgets, UploadPlan
from seislens.service.scan_stations import (
    BadStationXMLError,
    StationsNotCoveredError,
    read_station_positions,
)
from seislens.service.scan_uploads import (
    SCAN_PATH,
    ScanTooLargeError,
    ScanUploadTimeoutError,
    save_scan_body,
    scan_body_doc,
)
from seislens.service.scan_worker import UPLOAD, JobSpec
from seislens.service.schemas_scans import ScanStatusResponse
from seislens.service.settings import Settings
from seislens.service.state import LoadedBranch, LoadedBundle
from seislens.service.uploads import FilenameQuery, missing_upload
from starlette.concurrency import run_in_threadpool

router = APIRouter(prefix=SCAN_PATH, tags=["events"])

DOWNLOADS = {
    "csv": ("detections.csv", "text/csv"),
    "quakeml": ("events.quakeml", "application/xml"),
    "mseed": ("probabilities.mseed", "application/vnd.fdsn.mseed"),
}
"""Download route name → (file in the job folder, media type)."""

_JOB_ID = "0123456789abcdef0123456789abcdef"


async def get_scans(request: Request) -> ScanJobs:
    """The app's scan jobs."""
    return request.app.state.scans


ScansDep = Annotated[ScanJobs, Depends(get_scans)]
BranchDep = Annotated[LoadedBranch, Depends(event_branch)]

StrideQuery = Annotated[
    float, Query(ge=1.0, le=60.0, description="window step (s): a multiple of 0.01 s")
]
ThresholdQuery = Annotated[
    float,
    Query(gt=0.0, lt=1.0, description="event probability (1 − P(noise)) a window must pass"),
]

PeakQuery = Annotated[
    float,
    Query(
        gt=0.0,
        lt=1.0,
        description="event probability a detection's best window must reach (higher: fewer "
        "false detections, fewer events found)",
    ),
]

_NOT_COVERED = ErrorDoc(
    422,
    "stationxml_coverage",
    "The StationXML lacks stations of the recording",
    lambda: StationsNotCoveredError("stations.xml", ["SY.S001"], ["SY.S000"]),
)


def _refusal(data: bytes, filename: str = "day.mseed") -> Exception:
    """What the submission's header check makes of ``data`` (it refuses)."""
    import tempfile

    from seislens.models.event_preprocess import EventPreprocessConfig

    with tempfile.TemporaryDirectory(prefix="seislens-doc-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        try:
            with MappedRecording(path, filename, scan_budgets(Settings())) as recording:
                recording.plan(EventPreprocessConfig())
        except Exception as exc:
            return exc
    raise AssertionError("the example upload was accepted")


def _z_only() -> bytes:
    """A 2-minute vertical alone, as miniSEED."""
    import io

    import numpy as np
    from obspy import Stream, Trace, UTCDateTime

    header = {"network": "XX", "station": "ONE", "channel": "HHZ", "sampling_rate": 100.0}
    trace = Trace(np.arange(12_000, dtype=np.int32) % 97, {**header, "starttime": UTCDateTime(0)})
    buffer = io.BytesIO()
    Stream([trace]).write(buffer, format="MSEED")
    return buffer.getvalue()


SUBMIT_ERRORS = (
    *(d for d in EVENT_QUERY_ERRORS if d.name in ("no_event_encoders", "not_ready")),
    ErrorDoc(
        422,
        "unknown_format",
        "Not miniSEED",
        lambda: _refusal(b"This is not seismic data, just a note about it.\n" * 200),
    ),
    ErrorDoc(422, "no_usable_station", "No station with 3 components", lambda: _refusal(_z_only())),
    ErrorDoc(422, "missing_file", "Neither a `file` part nor a raw body", missing_upload),
    ErrorDoc(
        422,
        "bad_stride",
        "stride_s not a multiple of 0.01 s",
        lambda: _scan_config(2.345, 0.5, 0.95),
    ),
    ErrorDoc(
        422,
        "bad_stationxml",
        "StationXML that cannot be read",
        lambda: BadStationXMLError("stations.xml", "XMLSyntaxError: Start tag expected"),
    ),
    _NOT_COVERED,
    ErrorDoc(429, "too_many_scans", "Every scan slot taken", lambda: TooManyScansError(2)),
    ErrorDoc(413, "too_large", "Over the scan size limit", lambda: ScanTooLargeError(512 * 2**20)),
    ErrorDoc(
        408, "upload_timeout", "Body not received in time", lambda: ScanUploadTimeoutError(1800.0)
    ),
)
JobIdPath = Annotated[
    str,
    PathParam(pattern="^[0-9a-f]{32}$", description="the job's id: 32 hex digits, from the POST"),
]
_UNKNOWN = ErrorDoc(404, "unknown_scan", "No such scan job", lambda: UnknownScanError(_JOB_ID))
_BAD_ID = ErrorDoc(
    422,
    "bad_scan_id",
    "Id not 32 hex digits",
    lambda: invalid_value(("path", "job_id"), JobIdPath, "not-an-id"),
)
STATUS_ERRORS = (_UNKNOWN, _BAD_ID)
DOWNLOAD_ERRORS = (
    *STATUS_ERRORS,
    ErrorDoc(
        409,
        "scan_not_finished",
        "The scan is still running",
        lambda: ScanNotFinishedError(_JOB_ID, "running", None),
    ),
    ErrorDoc(
        409,
        "scan_failed",
        "The scan failed",
        lambda: ScanNotFinishedError(_JOB_ID, "failed", {"detail": "the worker died"}),
    ),
)


def scan_budgets(settings: Settings) -> ScanBudgets:
    """What a scanned file may declare, from the settings."""
    return ScanBudgets(
        max_stations=settings.max_scan_stations,
        max_traces=settings.max_scan_traces,
        max_channel_samples=settings.max_scan_channel_samples,
    )


def association_for(branch: LoadedBranch) -> AssociationConfig:
    """The association settings, with the bundle's distance MAE (when its evaluation
    has one) as the least uncertainty of a model distance."""
    evaluation = branch.section.evaluation or {}
    mae = ((evaluation.get("regression") or {}).get("distance") or {}).get("mae")
    if isinstance(mae, int | float) and mae > 0:
        return AssociationConfig(distance_error_km=float(mae))
    return AssociationConfig()


def _scan_config(stride_s: float, threshold: float, peak_threshold: float) -> ScanConfig:
    try:
        return ScanConfig(stride_s=stride_s, threshold=threshold, peak_threshold=peak_threshold)
    except ValidationError as exc:
        raise InvalidParameterError(
            ("query", "stride_s"), exc.errors()[0]["msg"], "bad_stride"
        ) from exc


def _check_upload(
    path: Path,
    filename: str,
    xml: Path | None,
    xml_name: str | None,
    branch: LoadedBranch,
    settings: Settings,
) -> tuple[UploadPlan, dict[str, StationPosition] | None]:
    """The recording's plan (headers checked, stations chosen) and, with a StationXML,
    the positions of its stations (they must all be covered)."""
    with MappedRecording(path, filename, scan_budgets(settings)) as recording:
        plan = recording.plan(branch.embedder.pre)
    positions = None
    if xml is not None:
        positions = read_station_positions(xml, xml_name or "stations.xml", plan.stations)
    return plan, positions


def _links(request: Request, job_id: str) -> dict[str, str]:
    out = {"self": link(request, "get_scan", job_id=job_id)}
    for name in DOWNLOADS:
        out[name] = link(request, f"download_scan_{name}", job_id=job_id)
    return out


def _answer(request: Request, scans: ScanJobs, job_id: str) -> dict[str, Any]:
    status = scans.status(job_id)
    result = None
    if status.get("state") == "done":
        result = _read_json(scans.folder(job_id) / FILES["result"])
    return ScanStatusResponse.from_status(status, _links(request, job_id), result).model_dump(
        mode="json"
    )


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


@router.post(
    "",
    status_code=202,
    response_model=ScanStatusResponse,
    responses=error_responses(*SUBMIT_ERRORS),
    openapi_extra=scan_body_doc(),
    summary="Scan a long miniSEED recording (a job): detections and events",
)
async def submit_scan(
    request: Request,
    bundle: BundleDep,
    branch: BranchDep,
    settings: SettingsDep,
    scans: ScansDep,
    stride_s: StrideQuery = ScanConfig.model_fields["stride_s"].default,
    threshold: ThresholdQuery = ScanConfig.model_fields["threshold"].default,
    peak_threshold: PeakQuery = ScanConfig.model_fields["peak_threshold"].default,
    filename: FilenameQuery = None,
) -> JSONResponse:
    """Upload hours or days of 3-component miniSEED (one station or several); every
    station is scanned with sliding 60 s windows every `stride_s` seconds. Answers 202
    with the job; `GET` its `Location` for progress and, when done, the detections
    (start, end, station, class probabilities, distance, depth and magnitude with
    spreads, peak window), the events they form across stations (one type each; located
    when a `stationxml` part gives the stations' coordinates) and links to the CSV,
    QuakeML and class-probability miniSEED."""
    config = _scan_config(stride_s, threshold, peak_threshold)
    with scans.reserve() as (job_id, folder):
        upload = await save_scan_body(
            request,
            folder / UPLOAD,
            settings.max_scan_upload_bytes,
            settings.max_stationxml_bytes,
            filename,
        )
        plan, positions = await run_in_threadpool(
            _check_upload,
            upload.path,
            upload.filename,
            upload.stationxml,
            upload.stationxml_name,
            branch,
            settings,
        )
        spec = _spec(bundle, branch, settings, job_id, folder, upload.filename, config, positions)
        scans.start(
            spec,
            filename=upload.filename,
            bundle=bundle.name,
            settings={
                "stride_s": config.stride_s,
                "threshold": config.threshold,
                "peak_threshold": config.peak_threshold,
            },
            stations=[s.station for s in plan.stations],
            skipped=[{"station": s, "reason": why} for s, why in plan.skipped],
            located=positions is not None,
        )
    body = _answer(request, scans, job_id)
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


def _spec(
    bundle: LoadedBundle,
    branch: LoadedBranch,
    settings: Settings,
    job_id: str,
    folder: Path,
    filename: str,
    config: ScanConfig,
    positions: dict[str, StationPosition] | None,
) -> JobSpec:
    return JobSpec(
        folder=folder,
        job_id=job_id,
        filename=filename,
        bundle=Path(bundle.path),
        section=branch.section,
        bundle_name=bundle.name,
        providers=choose_providers(settings.prefer_gpu),
        threads=settings.onnx_threads,
        config=config,
        association=association_for(branch),
        budgets=scan_budgets(settings),
        positions=positions,
        memory_mib=settings.scan_job_memory_mib,
    )


@router.get(
    "/{job_id}",
    response_model=ScanStatusResponse,
    responses=error_responses(*STATUS_ERRORS),
    summary="A scan job: state, progress and, when done, its detections and events",
)
async def get_scan(request: Request, job_id: JobIdPath, scans: ScansDep) -> dict[str, Any]:
    """The job's state (queued, running, done, failed), its progress (windows scanned
    of those planned), its error when it failed, and when done the result: stations
    scanned and skipped (with why), detections, events, and links to the files."""
    return await run_in_threadpool(_answer, request, scans, job_id)


def _download(scans: ScanJobs, job_id: str, kind: str) -> FileResponse:
    name, media = DOWNLOADS[kind]
    path = scans.output(job_id, name)
    return FileResponse(path, media_type=media, filename=f"scan-{job_id}-{name}")


@router.get(
    "/{job_id}/detections.csv",
    response_class=FileResponse,
    responses=error_responses(*DOWNLOAD_ERRORS),
    summary="A finished scan's detections as CSV",
)
async def download_scan_csv(job_id: JobIdPath, scans: ScansDep) -> FileResponse:
    """One row per detection (station level), with its event's id."""
    return _download(scans, job_id, "csv")


@router.get(
    "/{job_id}/events.quakeml",
    response_class=FileResponse,
    responses=error_responses(*DOWNLOAD_ERRORS),
    summary="A finished scan's events as QuakeML",
)
async def download_scan_quakeml(job_id: JobIdPath, scans: ScansDep) -> FileResponse:
    """QuakeML 1.2: one event per grouped event — type, P picks, origin when located,
    magnitude — with the class probabilities and the stations' agreement as comments."""
    return _download(scans, job_id, "quakeml")


@router.get(
    "/{job_id}/probabilities.mseed",
    response_class=FileResponse,
    responses=error_responses(*DOWNLOAD_ERRORS),
    summary="A finished scan's class-probability traces as miniSEED",
)
async def download_scan_mseed(job_id: JobIdPath, scans: ScansDep) -> FileResponse:
    """Per station one trace per class (location SL, channel EAR/EXP/SUR/NOI), one
    sample per window at its centre: SeisBench's `annotate` convention."""
    return _download(scans, job_id, "mseed")
