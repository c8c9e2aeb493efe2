"""The documented errors: each OpenAPI error example is the answer the real code gives.

A route lists its errors as :class:`ErrorDoc` (``responses=error_responses(...)``);
each example is produced when the OpenAPI document is first built
(:func:`documented_openapi`). An upload refusal is documented by running the real
reader on a crafted bad upload (:class:`BadUpload`: the file name, bytes and parameters
a client would send); a request-validation refusal by running pydantic on the route
parameter's own type; the others by constructing the error the route raises, with the
function it raises it with. This module holds the errors shared by several routes;
route-specific ones are documented next to the code that raises them.
"""

from __future__ import annotations

import functools
import io
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from obspy import Stream, Trace, UTCDateTime
from pydantic import Field, ValidationError, create_model
from pydantic_core import PydanticUndefined
from seislens.data.gather_files import read_gather, write_segy
from seislens.data.velocity_model_files import read_velocity_model
from seislens.models.contract import VELOCITY_MODEL_SHAPE
from seislens.models.event_preprocess import EventPreprocessConfig
from seislens.service import recording_examples as ex
from seislens.service.errors import ApiError, as_api_error
from seislens.service.event_search import parse_p_arrival, read_miniseed, select_windows
from seislens.service.schemas import ErrorResponse, ValidationErrorResponse
from seislens.service.settings import MAX_K, Settings
from seislens.service.state import BundleNotLoadedError
from seislens.service.uploads import (
    RAW_BODY_TYPE,
    UploadTimeoutError,
    UploadTooLargeError,
    unsupported_upload_type,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

# --------------------------------------------------------------------------- OpenAPI


@dataclass(frozen=True)
class ErrorDoc:
    """One documented error answer, produced by the real code.

    Attributes:
        status: its HTTP status (checked against the error ``provoke`` produces).
        name: the example's name.
        summary: a few words on the cause.
        provoke: raises (or returns) the error, by calling the code that raises it on
            a representative bad input.
    """

    status: int
    name: str
    summary: str
    provoke: Callable[[], object]

    def error(self) -> ApiError:
        """The error ``provoke`` raises (or returns), as answered."""
        try:
            result = self.provoke()
        except Exception as exc:
            result = exc
        if not isinstance(result, Exception):
            raise TypeError(f"error example {self.name!r} produced no error")
        error = as_api_error(result)
        if error.status != self.status:
            raise ValueError(f"error example {self.name!r} is {error.status}, not {self.status}")
        return error

    @functools.cached_property
    def example(self) -> dict[str, Any]:
        """The OpenAPI example: summary and the answer's body (produced once)."""
        return {"summary": self.summary, "value": self.error().body()}


_DESCRIPTIONS = {
    400: "Malformed request body: multipart or JSON that cannot be parsed, or a multipart "
    "text field over 1 MiB (send files as file parts: with a filename)",
    401: "Missing bearer token",
    403: "Wrong bearer token",
    404: "Not found",
    408: "The request body did not arrive in time (SEISLENS_UPLOAD_TIMEOUT_S)",
    409: "Conflict: the request cannot be carried out in the current state",
    413: "Upload too large (refused while it streams in)",
    415: "Unsupported media type",
    422: "Invalid request or unusable upload",
    503: "Not ready: no bundle loaded, or a part of it unavailable",
}


_UNPRODUCED: list[dict[str, Any]] = []
"""The routes' example tables still holding :class:`ErrorDoc` (produced on first use)."""


def error_responses(*docs: ErrorDoc) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with its model and named examples (the
    examples stay :class:`ErrorDoc` until :func:`documented_openapi` produces them)."""
    out: dict[int | str, dict[str, Any]] = {}
    for doc in docs:
        entry = out.setdefault(
            doc.status,
            {
                "model": ValidationErrorResponse if doc.status == 422 else ErrorResponse,
                "description": _DESCRIPTIONS.get(doc.status, "Error"),
                "content": {"application/json": {"examples": {}}},
            },
        )
        examples = entry["content"]["application/json"]["examples"]
        if not examples:
            _UNPRODUCED.append(examples)
        examples[doc.name] = doc
    return out


def documented_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, every :class:`ErrorDoc` produced first, with the
    answers every body-taking operation can give (:func:`document_bodies`)."""
    while _UNPRODUCED:
        examples = _UNPRODUCED.pop()
        for name, doc in examples.items():
            if isinstance(doc, ErrorDoc):
                examples[name] = doc.example
    return document_bodies(FastAPI.openapi(app))


def document_bodies(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (changed in place) with, for every operation that takes a request body,
    the errors the framework answers before the route runs — 400 for a multipart or
    JSON body that cannot be parsed, 408 for a body too slow to arrive, 413 for one too
    large, 415 for a body neither multipart nor a raw file where both are accepted — and
    ``minLength: 1`` on every file (binary) field: an empty file is refused."""
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                _document_body_errors(operation)
    for schema in doc.get("components", {}).get("schemas", {}).values():
        for prop in schema.get("properties", {}).values():
            for alt in [prop, *prop.get("anyOf", [])]:  # a file, or an optional file
                if alt.get("format") == "binary" or "contentMediaType" in alt:
                    alt.setdefault("minLength", 1)
    return doc


def _document_body_errors(operation: dict[str, Any]) -> None:
    content = operation["requestBody"].get("content", {})
    docs = [UPLOAD_TIMEOUT, TOO_LARGE]
    multipart = any(t.startswith("multipart/") for t in content)
    if multipart:
        docs.append(MALFORMED_MULTIPART)
    if multipart and RAW_BODY_TYPE in content:  # a file part or the whole body
        docs.append(UNSUPPORTED_UPLOAD_TYPE)
    if "application/json" in content:
        docs.append(MALFORMED_JSON)
    responses = operation.setdefault("responses", {})
    for doc in docs:
        entry = responses.get(str(doc.status))
        if entry is None:
            entry = responses[str(doc.status)] = {
                "description": _DESCRIPTIONS[doc.status],
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                        "examples": {},
                    }
                },
            }
        examples = entry["content"]["application/json"].setdefault("examples", {})
        if not any(
            e.get("value", {}).get("reason") == doc.error().reason for e in examples.values()
        ):
            examples[doc.name] = doc.example


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class BadUpload:
    """A crafted bad upload: a few words on it, the client's file name, the file's bytes
    (built on demand) and the query parameters sent with it."""

    summary: str
    filename: str
    content: Callable[[], bytes]
    params: dict[str, str] = field(default_factory=dict)


def _read_gather(upload: BadUpload) -> object:
    """What the velocity search's reader makes of ``upload`` (it raises)."""
    with tempfile.TemporaryDirectory(prefix="seislens-doc-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(upload.content())
        return read_gather(path, upload.filename)


def _read_recording(upload: BadUpload) -> object:
    """What the event routes' reader and window selection make of ``upload`` with the
    default preprocessing (it raises)."""
    p_text = upload.params.get("p_arrival")
    max_stations = Settings.model_fields["max_event_stations"].default
    with tempfile.TemporaryDirectory(prefix="seislens-doc-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(upload.content())
        recording = read_miniseed(path, upload.filename)
        p_arrival = parse_p_arrival(p_text) if p_text else None
        pre = EventPreprocessConfig()
        return select_windows(recording, pre, upload.params.get("station"), p_arrival, max_stations)


def invalid_value(
    loc: tuple[str, ...], annotation: Any, value: Any = PydanticUndefined
) -> RequestValidationError:
    """The validation error of ``value`` (missing when not given) for a parameter of
    type ``annotation`` at ``loc``, as FastAPI raises it."""
    params = create_model("Params", value=(annotation, ...))
    try:
        params.model_validate({} if value is PydanticUndefined else {"value": value})
    except ValidationError as exc:
        return RequestValidationError([{**e, "loc": (*loc, *e["loc"][1:])} for e in exc.errors()])
    raise ValueError(f"{value!r} is a valid {annotation}")


# --------------------------------------------------------------------------- gathers


def _gather(n_shots: int = 5) -> np.ndarray:
    """A deterministic non-zero gather (n_shots, 1000, 70) float32."""
    t = np.arange(1000, dtype=np.float32)[None, :, None]
    return np.sin(0.05 * t + np.arange(n_shots * 70).reshape(n_shots, 1, 70)).astype(np.float32)


def _segy(gather: np.ndarray, cut: int = 0) -> bytes:
    with tempfile.TemporaryDirectory(prefix="seislens-doc-") as tmp:
        path = Path(tmp) / "gather.sgy"
        write_segy(path, gather)
        data = path.read_bytes()
    return data[: len(data) - cut]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _with_nan() -> np.ndarray:
    gather = _gather()
    gather[2, 500, 30:42] = np.nan
    return gather


_TEXT = b"This is not seismic data, just a note about it.\n" * 200

GATHER_UPLOADS: dict[str, BadUpload] = {
    "empty": BadUpload("Empty upload", "shot.sgy", lambda: b""),
    "unknown_format": BadUpload("Text file renamed .sgy", "notes.sgy", lambda: _TEXT),
    "truncated": BadUpload("Truncated SEG-Y", "shot.sgy", lambda: _segy(_gather(), cut=1000)),
    "geometry": BadUpload("More than 10 shots", "shot.sgy", lambda: _segy(_gather(11))),
    "non_finite": BadUpload("NaN or Inf samples", "shot.npy", lambda: _npy(_with_nan())),
    "shape": BadUpload(
        ".npy of the wrong shape", "shot.npy", lambda: _npy(np.ones((5, 999, 70), np.float32))
    ),
    "pickle": BadUpload(
        ".npy holding pickled objects", "shot.npy", lambda: _npy(np.array([{}], dtype=object))
    ),
}
"""Bad gathers by the reason the velocity search refuses them with."""

GATHER_ERRORS = tuple(
    ErrorDoc(422, reason, upload.summary, lambda u=upload: _read_gather(u))
    for reason, upload in GATHER_UPLOADS.items()
)


# --------------------------------------------------------------------------- velocity models


def _read_velocity_model(upload: BadUpload) -> object:
    """What the velocity-model routes' reader makes of ``upload`` (it raises)."""
    with tempfile.TemporaryDirectory(prefix="seislens-doc-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(upload.content())
        return read_velocity_model(path, upload.filename)


def _velocity_model(fill: float = 2500.0, nan: bool = False) -> np.ndarray:
    model = np.full(VELOCITY_MODEL_SHAPE, fill, np.float32)
    if nan:
        model[10, 20:30] = np.nan
    return model


VELOCITY_MODEL_UPLOADS: dict[str, BadUpload] = {
    "empty": BadUpload("Empty upload", "model.npy", lambda: b""),
    "unknown_format": BadUpload("Text file renamed .npy", "notes.npy", lambda: _TEXT),
    "pickle": BadUpload(
        ".npy holding pickled objects", "model.npy", lambda: _npy(np.array([{}], dtype=object))
    ),
    "shape": BadUpload(
        ".npy of the wrong shape", "model.npy", lambda: _npy(np.ones((70, 71), np.float32))
    ),
    "dtype": BadUpload(
        ".npy of complex numbers", "model.npy", lambda: _npy(np.ones((70, 70), np.complex64))
    ),
    "non_finite": BadUpload(
        "NaN or Inf velocities", "model.npy", lambda: _npy(_velocity_model(nan=True))
    ),
    "velocity_range": BadUpload(
        "Velocities not in m/s (km/s)", "model.npy", lambda: _npy(_velocity_model(2.5))
    ),
}
"""Bad velocity-model files by the reason the velocity-model routes refuse them with."""

VELOCITY_MODEL_ERRORS = tuple(
    ErrorDoc(422, reason, upload.summary, lambda u=upload: _read_velocity_model(u))
    for reason, upload in VELOCITY_MODEL_UPLOADS.items()
)


# --------------------------------------------------------------------------- recordings

_T0 = UTCDateTime(2020, 1, 1)


def _recording(
    seconds: float = 90.0,
    rates: tuple[float, float, float] = (100.0, 100.0, 100.0),
    components: str = "ZNE",
    dead: str = "",
    gap_s: float = 0.0,
) -> Stream:
    """A deterministic record of station XX.STA: white noise, ``seconds`` long, per
    component at its rate; ``dead`` components all zeros, Z cut by a ``gap_s`` gap at 30 s."""
    rng = np.random.default_rng(7)
    traces = []
    for comp, rate in zip(components, rates, strict=False):
        n = int(seconds * rate)
        data = rng.standard_normal(n).astype(np.float32)
        if comp in dead:
            data[:] = 0
        header = {"network": "XX", "station": "STA", "channel": f"HH{comp}"}
        trace = Trace(data, {**header, "sampling_rate": rate, "starttime": _T0})
        if gap_s and comp == "Z":
            cut = trace.stats.starttime + 30
            traces += [trace.slice(endtime=cut), trace.slice(starttime=cut + gap_s)]
        else:
            traces.append(trace)
    return Stream(traces)


def _mseed(make: Callable[[], Stream]) -> Callable[[], bytes]:
    def content() -> bytes:
        buffer = io.BytesIO()
        make().write(buffer, format="MSEED")
        return buffer.getvalue()

    return content


def _event(summary: str, make: Callable[[], Stream], **params: str) -> BadUpload:
    return BadUpload(summary, "event.mseed", _mseed(make), params)


RECORDING_UPLOADS: dict[str, BadUpload] = {
    "empty": BadUpload("Empty upload", "event.mseed", lambda: b""),
    "unknown_format": BadUpload("Not a miniSEED file", "notes.txt", lambda: _TEXT),
    "components": _event("Vertical component only", lambda: _recording(components="Z")),
    "too_short": _event("Shorter than the 60 s window", lambda: _recording(seconds=30.0)),
    "sampling_rate": _event(
        "Components at different sampling rates", lambda: _recording(rates=(100.0, 50.0, 100.0))
    ),
    "unknown_station": _event("Station not in the file", _recording, station="FUR"),
    "gap": _event("Gap longer than the limit", lambda: _recording(gap_s=5.0)),
    "p_arrival_outside": _event(
        "p_arrival outside the data", _recording, p_arrival="2020-01-02T00:00:00Z"
    ),
    "dead_channel": _event("All-zero channel", lambda: _recording(dead="N")),
    "bad_record": BadUpload(
        "A record declaring more samples than it holds", "event.mseed", ex.overfull_record
    ),
    "too_many_stations": BadUpload(
        "More stations than a file may hold", "event.mseed", ex.too_many_stations
    ),
    "too_many_traces": BadUpload(
        "More traces than a file may hold", "event.mseed", ex.too_many_traces
    ),
    "too_many_samples": BadUpload(
        "A channel longer than the budget (at 100 Hz)", "event.mseed", ex.too_many_samples
    ),
}
"""Bad miniSEED recordings by the reason the event routes refuse them with."""

RECORDING_ERRORS = tuple(
    ErrorDoc(422, reason, upload.summary, lambda u=upload: _read_recording(u))
    for reason, upload in RECORDING_UPLOADS.items()
)


# --------------------------------------------------------------------------- shared

NOT_READY = ErrorDoc(
    503, "not_ready", "No bundle loaded", lambda: BundleNotLoadedError("no bundle is loaded")
)
STORE_UNAVAILABLE = ErrorDoc(
    503,
    "store_unavailable",
    "Library files changed on disk",
    lambda: sqlite3.OperationalError("unable to open database file"),
)
TOO_LARGE = ErrorDoc(
    413,
    "too_large",
    "Over the size limit",
    lambda: UploadTooLargeError(50 * 2**20, announced=70 * 2**20),
)
UPLOAD_TIMEOUT = ErrorDoc(
    408,
    "upload_timeout",
    "Body not received in time",
    lambda: UploadTimeoutError(Settings.model_fields["upload_timeout_s"].default),
)


def malformed_multipart() -> Exception:
    """What the framework's form parser answers for a multipart body without a
    boundary, by running it (Starlette's ``Request.form``) on such a body."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data")],
        "app": None,
    }
    try:
        next(Request(scope, receive).form().__await__())  # fails before it awaits
    except Exception as exc:
        return exc
    raise AssertionError("the form parser accepted a multipart body without a boundary")


MALFORMED_MULTIPART = ErrorDoc(
    400, "malformed_multipart", "Multipart body that cannot be parsed", malformed_multipart
)
UNSUPPORTED_UPLOAD_TYPE = ErrorDoc(
    415,
    "unsupported_media_type",
    "Neither multipart nor application/octet-stream",
    lambda: unsupported_upload_type("text/plain"),
)
MALFORMED_JSON = ErrorDoc(
    400,
    "malformed_json",
    "JSON body that cannot be decoded (not UTF-8)",
    # what fastapi.routing raises when the JSON body cannot be decoded
    lambda: StarletteHTTPException(400, "There was an error parsing the body"),
)
MISSING_FILE = ErrorDoc(
    422, "missing_file", "No `file` field", lambda: invalid_value(("body", "file"), bytes)
)
K_OUT_OF_RANGE = ErrorDoc(
    422,
    "k_out_of_range",
    f"k outside 1–{MAX_K}",
    lambda: invalid_value(("query", "k"), Annotated[int, Field(ge=1, le=MAX_K)], MAX_K + 1),
)
