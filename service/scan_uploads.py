"""Scan uploads: their own size and time limits, enforced while the body streams in, and
the upload written straight into the job's folder.

A recording to scan is far larger than a query (a day of 3-component 100 Hz data is
~100–200 MB), so the scan route has its own limits (``SEISLENS_MAX_SCAN_UPLOAD_BYTES``,
``SEISLENS_SCAN_UPLOAD_TIMEOUT_S``). :class:`RouteBodyLimits` wraps the app: a request
to :data:`SCAN_PATH` streams through :class:`ScanBodyLimit` (413 at once when its
Content-Length announces more, else as soon as the bytes received pass the limit; 408
when the body is too slow), every other request through the service's
:class:`~seislens.service.uploads.BodyLimitMiddleware` unchanged.

:func:`save_scan_body` then writes the recording into the job's folder: a raw
``application/octet-stream`` body chunk by chunk as it arrives, or the ``file`` part of a
multipart form (with an optional ``stationxml`` part, ``SEISLENS_MAX_STATIONXML_BYTES`` at
most) copied there from the form parser's spool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from seislens.service.errors import ApiError, InvalidParameterError
from seislens.service.uploads import (
    MULTIPART_ALLOWANCE,
    RAW_BODY_TYPE,
    BodyLimitMiddleware,
    content_length,
    limited_receive,
    missing_upload,
    unsupported_upload_type,
)
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

SCAN_PATH = "/v1/events/scans"
"""The route whose bodies get the scan limits (exactly this path: POST submits)."""

_CHUNK = 1 << 20
_FORM_TYPES = ("multipart/form-data",)


class ScanTooLargeError(ApiError):
    """A scan upload past its limit (413, raised while it streams in)."""

    status, reason, upload = 413, "too_large", True
    headers = {"Connection": "close"}  # noqa: RUF012

    def __init__(self, limit: int, what: str = "recording", env: str = "MAX_SCAN_UPLOAD") -> None:
        super().__init__(
            f"the {what} is too large: it passes the limit of {limit} bytes "
            f"({limit / 2**20:.1f} MiB, SEISLENS_{env}_BYTES) for a scan"
        )


class ScanUploadTimeoutError(ApiError):
    """A scan upload that did not arrive in time (408)."""

    status, reason, upload = 408, "upload_timeout", True
    headers = {"Connection": "close"}  # noqa: RUF012

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the scan upload did not arrive within {timeout_s:g} s "
            "(SEISLENS_SCAN_UPLOAD_TIMEOUT_S); the client sent it too slowly or stopped"
        )


class ScanBodyLimit:
    """The scan route's body limit (file + stationxml + multipart framing) and deadline.

    Args:
        app: the wrapped ASGI application.
        max_bytes: the largest body accepted.
        file_limit: the recording's limit, as messages state it.
        timeout_s: seconds the whole body may take.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, file_limit: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.file_limit = file_limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        def too_large(announced: int | None = None) -> ApiError:
            return ScanTooLargeError(self.file_limit)

        def too_slow() -> ApiError:
            return ScanUploadTimeoutError(self.timeout_s)

        limited = limited_receive(
            scope, receive, self.max_bytes, self.timeout_s, too_large, too_slow
        )
        await self.app(scope, limited, send)


class RouteBodyLimits:
    """The service's body limits, with the scan route's own (see the module docstring).

    Args:
        app: the wrapped ASGI application.
        max_file_bytes, timeout_s: the limits of every other route
            (``SEISLENS_MAX_UPLOAD_BYTES``, ``SEISLENS_UPLOAD_TIMEOUT_S``).
        max_scan_bytes, max_stationxml_bytes, scan_timeout_s: the scan route's.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_file_bytes: int,
        timeout_s: float,
        max_scan_bytes: int,
        max_stationxml_bytes: int,
        scan_timeout_s: float,
    ) -> None:
        self.default = BodyLimitMiddleware(app, max_file_bytes, timeout_s)
        body = max_scan_bytes + max_stationxml_bytes + MULTIPART_ALLOWANCE
        self.scan = ScanBodyLimit(app, body, max_scan_bytes, scan_timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_scan = (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "").rstrip("/") == SCAN_PATH
        )
        await (self.scan if is_scan else self.default)(scope, receive, send)


# --------------------------------------------------------------------------- saving


@dataclass(frozen=True)
class ScanUpload:
    """A scan's uploaded files in the job's folder: the recording (its path and the
    client's name) and the StationXML, if one came."""

    path: Path
    filename: str
    stationxml: Path | None
    stationxml_name: str | None


async def save_scan_body(
    request: Request,
    dest: Path,
    max_bytes: int,
    max_stationxml_bytes: int,
    filename: str | None,
) -> ScanUpload:
    """Write the request's recording to ``dest`` (and a StationXML beside it).

    Args:
        request: the POST.
        dest: where the recording goes.
        max_bytes: its size limit; max_stationxml_bytes: the StationXML's.
        filename: the client's name for a raw body (``filename`` query parameter).
    Raises:
        ScanTooLargeError: a file past its limit (413).
        ApiError: 415 for another Content-Type, 422 without a file.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(RAW_BODY_TYPE):
        announced = content_length(request.scope)
        if announced is not None and announced > max_bytes:
            raise ScanTooLargeError(max_bytes)
        written = 0
        with open(dest, "wb", buffering=0) as out:
            async for chunk in request.stream():
                written += len(chunk)
                if written > max_bytes:
                    raise ScanTooLargeError(max_bytes)
                out.write(chunk)
        if written == 0:
            raise missing_upload()
        return ScanUpload(dest, filename or "upload", None, None)
    if not content_type.startswith(_FORM_TYPES):
        if content_type or content_length(request.scope):
            raise unsupported_upload_type(content_type)
        raise missing_upload()
    form = await request.form(max_files=2, max_fields=16)
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise missing_upload()
        await run_in_threadpool(_copy, file.file, dest, max_bytes, "recording", "MAX_SCAN_UPLOAD")
        xml = form.get("stationxml")
        xml_path = None
        if isinstance(xml, UploadFile):
            xml_path = dest.with_name("stations.xml")
            await run_in_threadpool(
                _copy, xml.file, xml_path, max_stationxml_bytes, "StationXML", "MAX_STATIONXML"
            )
        elif xml is not None:
            raise InvalidParameterError(
                ("body", "stationxml"),
                "stationxml must be a file part (a StationXML document), not a text field",
                "bad_stationxml",
            )
        return ScanUpload(
            dest,
            file.filename or "upload",
            xml_path,
            None if xml_path is None else (xml.filename or "stations.xml"),  # type: ignore[union-attr]
        )
    finally:
        await form.close()


def _copy(src: IO[bytes], dest: Path, max_bytes: int, what: str, env: str) -> int:
    """Copy a spooled form part to ``dest``; 413 as soon as it passes ``max_bytes``."""
    src.seek(0)
    written = 0
    with open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise ScanTooLargeError(max_bytes, what, env)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return written


def scan_body_doc() -> dict[str, Any]:
    """``openapi_extra`` of the scan route: its two ways of sending the recording."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "the miniSEED recording",
                            },
                            "stationxml": {
                                "type": "string",
                                "format": "binary",
                                "description": "optional FDSN StationXML of its stations: "
                                "the events are then located",
                            },
                        },
                    }
                },
                RAW_BODY_TYPE: {
                    "schema": {"type": "string", "format": "binary", "minLength": 1},
                },
            },
            "description": "the miniSEED recording as a multipart `file` (with an optional "
            f"`stationxml` part), or the whole body as `{RAW_BODY_TYPE}` (named by the "
            "`filename` query parameter; no StationXML then)",
        }
    }
