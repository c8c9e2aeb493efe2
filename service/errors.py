"""Errors: the exceptions routes raise, their handlers, and their OpenAPI documentation.

Every error answers JSON ``{"detail": "<message>"}``; a 422 adds ``errors``, the
invalid parameters (``loc``, ``msg``, ``type``). No user input leads to a 500.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from seislens.data.gather_files import UploadError
from seislens.models.event_preprocess import EventInputError
from seislens.service.schemas import ErrorResponse, ValidationErrorResponse
from seislens.service.state import BundleNotLoadedError

log = logging.getLogger("seislens.service")


class UploadTooLargeError(HTTPException):
    """The upload passed the size limit (raised while it streams in).

    Args:
        limit: the limit in bytes.
        announced: the size the request announced (Content-Length), if that is why.
    """

    def __init__(self, limit: int, announced: int | None = None) -> None:
        limit_text = f"{limit} bytes ({limit / 2**20:.1f} MiB, SEISLENS_MAX_UPLOAD_BYTES)"
        if announced is not None:
            detail = f"the upload is too large: {announced} bytes announced; the limit is "
        else:
            detail = "the upload is too large: it passed the limit of "
        super().__init__(413, detail + limit_text)


class InvalidParameterError(Exception):
    """A request parameter that is well-formed but names nothing usable (422).

    Args:
        loc: where, e.g. ("query", "family").
        message: what is wrong and what is expected.
        kind: a short machine-readable type.
    """

    def __init__(self, loc: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.kind = kind


# --------------------------------------------------------------------------- handlers


def _validation_body(errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The 422 body: a one-line summary and each invalid parameter."""
    items = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(map(str, i['loc'])) or 'request'}: {i['msg']}" for i in items)
    return {"detail": summary or "invalid request", "errors": items}


def upload_reason(message: str) -> str:
    """A short label for a refused upload (the metrics' ``reason``)."""
    text = message.lower()
    for needle, reason in (
        ("empty", "empty"),
        ("truncated", "truncated"),
        (" 0 traces", "no_traces"),
        (" nan and ", "non_finite"),
        ("pickled", "pickle"),
        ("shape", "shape"),
        ("geometry", "geometry"),
        ("shots x", "geometry"),
        ("not a", "format"),
    ):
        if needle in text:
            return reason
    return "unreadable"


def recording_reason(message: str) -> str:
    """A short label for a refused miniSEED recording (the metrics' ``reason``)."""
    text = message.lower()
    for needle, reason in (
        ("empty", "empty"),
        ("not a readable miniseed", "format"),
        ("no miniseed traces", "no_traces"),
        ("stations; at most", "too_many_stations"),
        ("not in the file", "station"),
        ("3 components are needed", "components"),
        ("different sampling rates", "sampling_rate"),
        ("different rates", "sampling_rate"),
        ("gap", "gap"),
        ("p_arrival", "p_arrival"),
        ("the window needs", "too_short"),
        ("nan", "non_finite"),
        ("all zeros", "dead_channel"),
        ("constant", "dead_channel"),
        ("do not overlap", "no_overlap"),
    ):
        if needle in text:
            return reason
    return "unusable_recording"


def _count_rejection(request: Request, reason: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.uploads_rejected.labels(reason=reason).inc()


async def _upload_error(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc)
    _count_rejection(request, upload_reason(message))
    body = _validation_body([{"loc": ("body", "file"), "msg": message, "type": "invalid_gather"}])
    body["detail"] = message
    return JSONResponse(body, 422)


async def _unusable_recording(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc)
    _count_rejection(request, "mseed_" + recording_reason(message))
    body = _validation_body(
        [{"loc": ("body", "file"), "msg": message, "type": "unusable_recording"}]
    )
    body["detail"] = message
    return JSONResponse(body, 422)


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UploadTooLargeError)
    _count_rejection(request, "too_large")
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers={"Connection": "close"})


async def _invalid_parameter(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidParameterError)
    body = _validation_body([{"loc": exc.loc, "msg": exc.message, "type": exc.kind}])
    body["detail"] = exc.message
    return JSONResponse(body, 422)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(_validation_body(exc.errors()), 422)


async def _not_loaded(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": f"not ready: {exc}; retry shortly"},
        503,
        headers={"Retry-After": "5"},
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("metadata store unavailable on %s: %s", request.url.path, exc)
    return JSONResponse(
        {
            "detail": f"the library's metadata store cannot be read ({exc}); its files "
            "changed on disk (an index rebuild?): reload the bundle (POST /v1/admin/reload)"
        },
        503,
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); the server log has the details"},
        500,
    )


def install_exception_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the documented answers."""
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(EventInputError, _unusable_recording)
    app.add_exception_handler(UploadTooLargeError, _too_large)
    app.add_exception_handler(InvalidParameterError, _invalid_parameter)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(BundleNotLoadedError, _not_loaded)
    app.add_exception_handler(sqlite3.OperationalError, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)


# --------------------------------------------------------------------------- OpenAPI


@dataclass(frozen=True)
class ErrorExample:
    """One documented error answer: its status, an example name and body."""

    status: int
    name: str
    summary: str
    detail: str
    loc: tuple[str, ...] | None = None  # 422 examples: the invalid parameter

    def value(self) -> dict[str, Any]:
        if self.status != 422:
            return {"detail": self.detail}
        loc = list(self.loc or ("body",))
        return {"detail": self.detail, "errors": [{"loc": loc, "msg": self.detail, "type": "..."}]}


_DESCRIPTIONS = {
    401: "Missing bearer token",
    403: "Wrong bearer token",
    404: "Not found",
    409: "Conflict: the request cannot be carried out in the current state",
    413: "Upload too large (refused while it streams in)",
    422: "Invalid request or unusable upload",
    503: "Not ready: no bundle loaded, or a part of it unavailable",
}


def error_responses(*examples: ErrorExample) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with its model and named examples."""
    out: dict[int | str, dict[str, Any]] = {}
    for ex in examples:
        model: type[BaseModel] = ValidationErrorResponse if ex.status == 422 else ErrorResponse
        entry = out.setdefault(
            ex.status,
            {
                "model": model,
                "description": _DESCRIPTIONS.get(ex.status, "Error"),
                "content": {"application/json": {"examples": {}}},
            },
        )
        entry["content"]["application/json"]["examples"][ex.name] = {
            "summary": ex.summary,
            "value": ex.value(),
        }
    return out


NOT_READY = ErrorExample(
    503, "not_ready", "No bundle loaded", "not ready: no bundle is loaded; retry shortly"
)
K_OUT_OF_RANGE = ErrorExample(
    422,
    "k_out_of_range",
    "k outside 1–100",
    "query.k: Input should be less than or equal to 100",
    ("query", "k"),
)
UNKNOWN_FAMILY = ErrorExample(
    422,
    "unknown_family",
    "Family not in the library",
    "unknown family 'flatvel-c'; this library holds: curvefault-b, flatvel-a",
    ("query", "family"),
)
EMPTY_FILE = ErrorExample(
    422,
    "empty_file",
    "Empty upload",
    "'shot.sgy' is empty (0 bytes); expected a SEG-Y, SU or .npy gather",
    ("body", "file"),
)
TRUNCATED = ErrorExample(
    422,
    "truncated",
    "Truncated SEG-Y",
    "'shot.sgy' is a truncated SEG-Y file: 1483000 bytes of traces is 349.76 traces of "
    "4240 bytes (240-byte header + 1000 samples x 4 bytes); expected a whole number of traces",
    ("body", "file"),
)
GEOMETRY = ErrorExample(
    422,
    "geometry",
    "Not 5 shots x 70 receivers",
    "'shot.sgy': found 4 shots (grouped by FieldRecord) with 70, 70, 70, 70 traces (280 "
    "traces in all); expected 5 shots x 70 receivers (350 traces)",
    ("body", "file"),
)
NOT_A_GATHER = ErrorExample(
    422,
    "not_a_gather",
    "Text file renamed .sgy",
    "'notes.sgy' is not a readable SEG-Y file (it looks like a text file): the binary "
    "header's sample format code (bytes 3225-3226) is 8224; expected one of 1 (4-byte IBM "
    "float), 2 (4-byte signed integer), 3 (2-byte signed integer), 5 (4-byte IEEE float), "
    "8 (1-byte signed integer)",
    ("body", "file"),
)
NON_FINITE = ErrorExample(
    422,
    "non_finite",
    "NaN or Inf samples",
    "'shot.npy' holds 12 NaN and 0 Inf samples (first in trace 3); expected finite amplitudes",
    ("body", "file"),
)
NPY_PICKLE = ErrorExample(
    422,
    "pickle",
    ".npy holding pickled objects",
    "'shot.npy' holds Python objects (pickled data), which are not accepted; expected a "
    "numeric array of shape (5, 1000, 70)",
    ("body", "file"),
)
MISSING_FILE = ErrorExample(
    422, "missing_file", "No `file` field", "body.file: Field required", ("body", "file")
)
TOO_LARGE = ErrorExample(
    413,
    "too_large",
    "Over the size limit",
    "the upload is too large: 73400320 bytes announced; the limit is 52428800 bytes "
    "(50.0 MiB, SEISLENS_MAX_UPLOAD_BYTES)",
)
MODEL_NOT_FOUND = ErrorExample(
    404,
    "unknown_model",
    "No model with this id",
    "no velocity model with id 123456; this library holds ids 0 to 4999",
)
ESTIMATE_NOT_FOUND = ErrorExample(
    404,
    "unknown_estimate",
    "Estimate expired or never made",
    "no estimate for query 0f3c…; estimates are kept for the 256 most recent searches",
)
ADMIN_DISABLED = ErrorExample(
    404,
    "admin_disabled",
    "Admin routes disabled",
    "the admin API is disabled: no admin token is configured (set SEISLENS_ADMIN_TOKEN)",
)
TOKEN_MISSING = ErrorExample(
    401,
    "token_missing",
    "No bearer token",
    "missing bearer token: send 'Authorization: Bearer <SEISLENS_ADMIN_TOKEN>'",
)
TOKEN_WRONG = ErrorExample(403, "token_wrong", "Wrong bearer token", "invalid admin token")
RELOAD_REFUSED = ErrorExample(
    409,
    "bundle_refused",
    "Bundle cannot be served (old one keeps serving)",
    "bundle refused, still serving 'default': index 'velocity' was built with encoder "
    "2e779fc9dc6d… but the bundle's velocity/velocity encoder is 9a1b22c3d4e5…; rebuild the "
    "index (seislens index build) so encoder and index belong together",
)
RELOAD_BUSY = ErrorExample(
    409,
    "reload_in_progress",
    "Another reload is running",
    "another reload is in progress; try again when it ends",
)
BUNDLE_OUTSIDE_ROOT = ErrorExample(
    422,
    "outside_bundle_root",
    "Path outside SEISLENS_BUNDLE_ROOT",
    "/tmp/b is outside the bundle root /bundles; expected a bundle inside it",
    ("body", "bundle"),
)
BAD_FORMAT = ErrorExample(
    422,
    "bad_format",
    "Unknown format",
    "query.format: Input should be 'json', 'npy' or 'png'",
    ("query", "format"),
)
BAD_MODEL_ID = ErrorExample(
    422,
    "bad_model_id",
    "Id not a non-negative integer",
    "path.model_id: Input should be a valid integer, unable to parse string as an integer",
    ("path", "model_id"),
)
STORE_UNAVAILABLE = ErrorExample(
    503,
    "store_unavailable",
    "Library files changed on disk",
    "the library's metadata store cannot be read (unable to open database file); its files "
    "changed on disk (an index rebuild?): reload the bundle (POST /v1/admin/reload)",
)


# --------------------------------------------------------------------------- events

NO_EVENTS = ErrorExample(
    404,
    "no_event_encoders",
    "The bundle has no event branch",
    "this bundle has no event encoders: it serves the velocity branch only; export an "
    "event run into it (seislens export --branch events) and build its events index "
    "(seislens index build --branch events) to classify miniSEED recordings",
)
NO_EVENTS_INDEX = ErrorExample(
    503,
    "no_events_index",
    "The bundle has no usable events index",
    "similar-event search is unavailable: the bundle has event encoders but no events "
    "index; build it (seislens index build --branch events) to search similar events",
)
EMPTY_MSEED = ErrorExample(
    422,
    "empty_file",
    "Empty upload",
    "'event.mseed' is empty (0 bytes); expected a miniSEED file",
    ("body", "file"),
)
NOT_MSEED = ErrorExample(
    422,
    "not_mseed",
    "Not a miniSEED file",
    "'notes.txt' is not a readable miniSEED file (InternalMSEEDParseTimeError: julday out "
    "of bounds (wrong endian?): 8308); expected miniSEED with 3-component (Z, N, E or Z, "
    "1, 2) traces",
    ("body", "file"),
)
ONE_COMPONENT = ErrorExample(
    422,
    "one_component",
    "Vertical component only",
    "station BW.UH3 has channels ['BW.UH3..SHZ'] (components ['Z']); 3 components are "
    "needed: Z plus N and E (or 1 and 2)",
    ("body", "file"),
)
TOO_SHORT = ErrorExample(
    422,
    "too_short",
    "Shorter than the 60 s window",
    "station BW.RJOB: 30.00 s of 3-component data; the window needs 60 s",
    ("body", "file"),
)
RATE_MISMATCH = ErrorExample(
    422,
    "sampling_rates",
    "Components at different sampling rates",
    "components have different sampling rates (XX.STA..HHZ: 100.0 Hz, XX.STA..HHN: 50.0 "
    "Hz, XX.STA..HHE: 100.0 Hz); they must agree to within 1e-04 (relative)",
    ("body", "file"),
)
UNKNOWN_STATION = ErrorExample(
    422,
    "unknown_station",
    "Station not in the file",
    "station 'FUR' is not in the file; stations present: ['BW.UH3']",
    ("body", "file"),
)
LONG_GAP = ErrorExample(
    422,
    "gap",
    "Gap longer than the limit",
    "XX.STA..HHZ has a gap of 5.000 s from 2020-01-01T00:00:29.990000Z to "
    "2020-01-01T00:00:35.000000Z; gaps longer than 1.0 s are refused (shorter ones are "
    "filled by linear interpolation)",
    ("body", "file"),
)
P_OUTSIDE = ErrorExample(
    422,
    "p_arrival_outside",
    "p_arrival outside the data",
    "p_arrival 2020-01-02T00:00:00.000000Z is outside the data of station XX.STA "
    "(2020-01-01T00:00:00.000000Z – 2020-01-01T00:01:29.990000Z)",
    ("body", "file"),
)
DEAD_CHANNEL = ErrorExample(
    422,
    "dead_channel",
    "All-zero or NaN samples",
    "XX.STA..HHN is all zeros (a dead channel)",
    ("body", "file"),
)
BAD_P_ARRIVAL = ErrorExample(
    422,
    "bad_p_arrival",
    "p_arrival not a time",
    "'yesterday' is not a UTC time; expected ISO 8601, e.g. 2005-07-23T14:52:10.5Z",
    ("query", "p_arrival"),
)
