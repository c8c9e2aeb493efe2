"""A velocity model sent to the service: a multipart ``.npy`` file or a JSON body.

The routes that take one (``/v1/velocity/search/by-model``, ``/v1/embed/velocity``)
declare :data:`VELOCITY_MODEL_REQUEST` as their OpenAPI request body and get the
checked model from the :func:`velocity_model_input` dependency, which picks the reader
by the request's ``Content-Type``. Both paths apply
:mod:`seislens.data.velocity_model_files`' checks; the file path uses the gather
search's upload machinery (size limit, temporary file).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from seislens.data.gather_files import UploadError
from seislens.data.velocity_model_files import (
    VelocityModelUpload,
    check_velocity_model,
    read_velocity_model,
)
from seislens.service import error_docs as docs
from seislens.service.deps import SettingsDep
from seislens.service.error_docs import ErrorDoc, invalid_value
from seislens.service.errors import ApiError, InvalidParameterError
from seislens.service.schemas_query import VelocityModelBody
from seislens.service.uploads import saved_upload
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

_FILE_DOC = "a velocity model as .npy: float32 or float64, shape (70, 70) or (1, 70, 70), m/s"

VELOCITY_MODEL_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the velocity model: a multipart `file` (.npy) or a JSON body",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": _FILE_DOC}
                    },
                }
            },
            "application/json": {"schema": VelocityModelBody.model_json_schema()},
        },
    }
}
"""``openapi_extra`` of the routes that take a velocity model."""


_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
"""Form bodies: read for their ``file`` (a form without one is a missing file)."""


@dataclass(frozen=True)
class VelocityModelInput:
    """The checked model, the client's file name (None for JSON), seconds to read it."""

    upload: VelocityModelUpload
    filename: str | None
    read_s: float


def unsupported_media_type(content_type: str) -> ApiError:
    """The 415 of a body that is neither multipart nor JSON."""
    return ApiError(
        f"unsupported Content-Type {content_type or '(none)'!r}; send the velocity model "
        "as multipart/form-data (a .npy `file`) or as application/json "
        '({"velocity_model": [[...70 values] × 70 rows]})',
        "unsupported_media_type",
        415,
    )


def velocity_model_from_json(body: bytes) -> VelocityModelUpload:
    """The model of a JSON body ``{"velocity_model": [[...]]}``, checked.

    Raises:
        RequestValidationError: not JSON of that shape (422 ``invalid_request``).
        InvalidParameterError: at ('body', 'velocity_model'), with the reader's reason.
    """
    try:
        parsed = VelocityModelBody.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    try:
        return check_velocity_model(parsed.velocity_model, "velocity_model", "json")
    except UploadError as exc:
        raise InvalidParameterError(("body", "velocity_model"), str(exc), exc.reason) from exc


def _read_file(file: UploadFile, max_bytes: int) -> VelocityModelUpload:
    with saved_upload(file, max_bytes) as path:
        return read_velocity_model(path, file.filename or "upload")


async def velocity_model_input(request: Request, settings: SettingsDep) -> VelocityModelInput:
    """The velocity model of the request: its multipart ``file`` or its JSON body.

    Raises:
        ApiError: 415 for another Content-Type; 422 for a missing file or a model the
            readers refuse; 413 past the upload limit.
    """
    start = time.perf_counter()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        upload = velocity_model_from_json(await request.body())
        return VelocityModelInput(upload, None, time.perf_counter() - start)
    if not content_type.startswith(_FORM_TYPES):
        raise unsupported_media_type(content_type)
    async with request.form(max_files=1) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise invalid_value(("body", "file"), bytes)
        upload = await run_in_threadpool(_read_file, file, settings.max_upload_bytes)
    return VelocityModelInput(upload, file.filename or "upload", time.perf_counter() - start)


VelocityModelDep = Annotated[VelocityModelInput, Depends(velocity_model_input)]

_NAN_ROWS = json.dumps({"velocity_model": [[float("nan")] * 70] * 70}).encode()

VELOCITY_MODEL_ERRORS: tuple[ErrorDoc, ...] = (
    *docs.VELOCITY_MODEL_ERRORS,
    ErrorDoc(
        422,
        "json_shape",
        "JSON rows not 70 × 70",
        lambda: velocity_model_from_json(b'{"velocity_model": [[2500.0, 2600.0]]}'),
    ),
    ErrorDoc(
        422,
        "json_non_finite",
        "NaN in the JSON rows",
        lambda: velocity_model_from_json(_NAN_ROWS),
    ),
    ErrorDoc(
        422,
        "bad_json",
        "Not JSON of the expected shape",
        lambda: velocity_model_from_json(b'{"velocity": [[2500.0]]}'),
    ),
    ErrorDoc(
        415,
        "unsupported_media_type",
        "Neither multipart nor JSON",
        lambda: unsupported_media_type("text/plain"),
    ),
    docs.MISSING_FILE,
    docs.TOO_LARGE,
    docs.NOT_READY,
)
"""The errors of a route taking a velocity model (:data:`VELOCITY_MODEL_REQUEST`)."""
