"""Uploads: the size limit and the time limit enforced while the body streams in, and
the temporary file.

:class:`BodyLimitMiddleware` refuses a request body past the limit: at once when its
``Content-Length`` announces more, else as soon as the bytes received pass it. Either
way it raises :class:`UploadTooLargeError` (413, reason ``too_large``) from the body
stream, before the rest is read. A body that has not fully arrived within
``SEISLENS_UPLOAD_TIMEOUT_S`` of the request's start (a slow or stalled client) is
refused the same way with :class:`UploadTimeoutError` (408, reason ``upload_timeout``),
and the connection closed. The limit covers the file plus the multipart framing
(:data:`MULTIPART_ALLOWANCE` bytes); :func:`saved_upload` then checks the file's own
size exactly while copying it to the temporary file the readers need (segyio opens
paths only).

A route that also takes the file as a raw ``application/octet-stream`` body declares
:data:`RawBodyDep` (the body streamed straight to a temporary file, its size checked
exactly as it arrives: no multipart parsing, no second copy) and
:data:`RAW_BODY_REQUEST` as ``openapi_extra``; :func:`uploaded_file` then gives the
route one path whichever way the file came.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import Depends, Query, Request, UploadFile
from seislens.service.deps import SettingsDep
from seislens.service.errors import ApiError, InvalidParameterError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_ALLOWANCE = 64 * 1024
"""Bytes allowed beyond the file size for multipart boundaries and part headers."""

RAW_BODY_TYPE = "application/octet-stream"
"""The Content-Type of a file sent as the whole request body."""

_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_CHUNK = 1 << 20
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SUFFIXES = frozenset({".sgy", ".segy", ".su", ".npy"})

GATHER_FILE_DOC = (
    "a shot gather. SEG-Y (rev 0/1, IBM or IEEE floats) or SU: any 2-D line, placed by "
    "SourceX/GroupX (scalar applied) or offsets — 1–10 shots, each within 40 m of a source "
    "slot (x = 0, 170, 340, 520, 690 m); receivers 5–25 m apart, resampled onto the 10 m "
    "grid (0–690 m), at least 35 of its 70 points covered per shot; 0.25–8 ms sampling; at "
    "least 0.6 s (shorter than 1 s zero-padded, longer cut). .npy: exactly (5, 1000, 70) — "
    "5 shots × 70 receivers at 10 m, 1 ms, 1 s (arrays carry no geometry). The encoders "
    "were trained with missing shots and receivers (zero-filled, as here); answers from "
    "part of the frame are less precise and carry a warning"
)
"""The accepted gather files, as the OpenAPI pages of every gather route state them."""


class UploadTooLargeError(ApiError):
    """The upload passed the size limit (413, raised while it streams in).

    Args:
        limit: the limit in bytes.
        announced: the size the request announced (Content-Length), if that is why.
    """

    status, reason, upload = 413, "too_large", True
    headers = {"Connection": "close"}  # noqa: RUF012

    def __init__(self, limit: int, announced: int | None = None) -> None:
        limit_text = f"{limit} bytes ({limit / 2**20:.1f} MiB, SEISLENS_MAX_UPLOAD_BYTES)"
        if announced is not None:
            head = f"the upload is too large: {announced} bytes announced; the limit is "
        else:
            head = "the upload is too large: it passed the limit of "
        super().__init__(head + limit_text)


class UploadTimeoutError(ApiError):
    """The request body did not arrive in time (408, raised while it streams in).

    Args:
        timeout_s: the limit in seconds.
    """

    status, reason, upload = 408, "upload_timeout", True
    headers = {"Connection": "close"}  # noqa: RUF012

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the request body did not arrive within {timeout_s:g} s "
            "(SEISLENS_UPLOAD_TIMEOUT_S); the client sent it too slowly or stopped sending"
        )


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_file_bytes + MULTIPART_ALLOWANCE``, or
    not received within ``timeout_s`` of the request's start.

    Args:
        app: the wrapped ASGI application.
        max_file_bytes: the largest upload accepted (the file itself).
        timeout_s: seconds the whole body may take to arrive.
    """

    def __init__(self, app: ASGIApp, max_file_bytes: int, timeout_s: float = 120.0) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + MULTIPART_ALLOWANCE
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return

        def too_large(announced: int | None = None) -> ApiError:
            return UploadTooLargeError(self.max_file_bytes, announced)

        def too_slow() -> ApiError:
            return UploadTimeoutError(self.timeout_s)

        limited = limited_receive(
            scope, receive, self.max_body_bytes, self.timeout_s, too_large, too_slow
        )
        await self.app(scope, limited, send)


def limited_receive(
    scope: Scope,
    receive: Receive,
    max_body_bytes: int,
    timeout_s: float,
    too_large: Callable[..., ApiError],
    too_slow: Callable[[], ApiError],
) -> Receive:
    """``receive`` of a request whose body may hold at most ``max_body_bytes`` and must
    arrive within ``timeout_s`` of now: raises ``too_large(announced)`` at once for an
    announced Content-Length over the limit, ``too_large()`` as soon as a streamed body
    passes it, and ``too_slow()`` at the deadline. Once the body is in, messages pass
    unchanged (e.g. a wait for the client's disconnect)."""
    announced = content_length(scope)
    deadline = time.monotonic() + timeout_s
    received = 0
    complete = False

    async def receive_limited() -> Message:
        nonlocal received, complete
        if complete:
            return await receive()
        if announced is not None and announced > max_body_bytes:
            raise too_large(announced)
        try:  # a timer on this task, not wait_for's new task per message (~6 a body)
            async with asyncio.timeout(deadline - time.monotonic()):
                message = await receive()
        except TimeoutError:
            raise too_slow() from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body_bytes:
                raise too_large()
            complete = not message.get("more_body", False)
        else:
            complete = True  # http.disconnect
        return message

    return receive_limited


def content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@contextlib.contextmanager
def saved_upload(upload: UploadFile, max_bytes: int) -> Iterator[Path]:
    """Copy an upload to a named temporary file, refusing it past ``max_bytes``.

    The file is removed when the ``with`` block ends.

    Raises:
        UploadTooLargeError: the file holds more than ``max_bytes`` bytes.
    """
    fd, path = _temp_file(upload.filename)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            _copy_limited(upload.file, out, max_bytes)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _temp_file(filename: str | None) -> tuple[int, Path]:
    """A new temporary file (descriptor, path) keeping the client's suffix when it is
    one the readers know (a format hint)."""
    suffix = Path(filename or "").suffix.lower()
    fd, name = tempfile.mkstemp(
        prefix="seislens-upload-", suffix=suffix if suffix in _SUFFIXES else ""
    )
    return fd, Path(name)


# --------------------------------------------------------------------------- raw bodies

RAW_BODY_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the file: a multipart `file` field, or the whole body as "
        f"`{RAW_BODY_TYPE}` (faster: no multipart parsing; the optional `filename` query "
        "parameter names it, and its suffix is a format hint)",
        "content": {
            RAW_BODY_TYPE: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
        },
    }
}
"""``openapi_extra`` of a route taking :data:`RawBodyDep` beside its multipart ``file``
(merged with the multipart body FastAPI documents)."""


def unsupported_upload_type(content_type: str) -> ApiError:
    """The 415 of a body that is neither multipart (a ``file`` field) nor a raw file."""
    return ApiError(
        f"unsupported Content-Type {content_type or '(none)'!r}; send the file as "
        f"multipart/form-data (a `file` field) or as the whole body with Content-Type "
        f"{RAW_BODY_TYPE}",
        "unsupported_media_type",
        415,
    )


def missing_upload() -> InvalidParameterError:
    """The 422 of a request carrying no file."""
    return InvalidParameterError(
        ("body", "file"),
        "no file in the request: send a multipart/form-data `file` field, or the file as "
        f"the whole body with Content-Type {RAW_BODY_TYPE} (curl: -H 'Content-Type: "
        f"{RAW_BODY_TYPE}' --data-binary @shot.sgy)",
        "missing_file",
    )


@dataclass(frozen=True)
class RawBody:
    """A raw body saved to a temporary file, and the client's name for it."""

    path: Path
    filename: str | None


FilenameQuery = Annotated[
    str | None,
    Query(
        max_length=255,
        description="the file's name, for a raw application/octet-stream body (its suffix "
        "is a format hint; the format is detected from the content anyway)",
    ),
]


async def raw_body_upload(
    request: Request, settings: SettingsDep, filename: FilenameQuery = None
) -> AsyncIterator[RawBody | None]:
    """The raw ``application/octet-stream`` body saved to a temporary file, or None for
    a form (the route reads its ``file``) or no body at all.

    The body is written as its chunks arrive, its size checked exactly against
    ``max_upload_bytes`` (at once when Content-Length announces more); the file is
    removed after the answer.

    Raises:
        UploadTooLargeError: past the limit (413).
        ApiError: 415 for a body of another Content-Type.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORM_TYPES):
        yield None
        return
    if not content_type.startswith(RAW_BODY_TYPE):
        if content_type or content_length(request.scope):
            raise unsupported_upload_type(content_type)
        yield None  # no body: the route says what it expects
        return
    max_bytes = settings.max_upload_bytes
    announced = content_length(request.scope)
    if announced is not None and announced > max_bytes:
        raise UploadTooLargeError(max_bytes, announced)
    fd, path = _temp_file(filename)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            written = 0
            async for chunk in request.stream():
                written += len(chunk)
                if written > max_bytes:
                    raise UploadTooLargeError(max_bytes)
                out.write(chunk)
        yield RawBody(path, filename)
    finally:
        path.unlink(missing_ok=True)


RawBodyDep = Annotated[RawBody | None, Depends(raw_body_upload)]
"""The raw body's temporary file (None without one): see :func:`raw_body_upload`."""


@contextlib.contextmanager
def uploaded_file(
    file: UploadFile | None, raw: RawBody | None, max_bytes: int
) -> Iterator[tuple[Path, str]]:
    """The request's file on disk and its name, from a multipart ``file`` or a raw body
    (:data:`RawBodyDep`).

    Raises:
        InvalidParameterError: neither was sent (422 ``missing_file``).
        UploadTooLargeError: the multipart file passes ``max_bytes``.
    """
    if file is not None:
        with saved_upload(file, max_bytes) as path:
            yield path, file.filename or "upload"
    elif raw is not None:
        yield raw.path, raw.filename or "upload"
    else:
        raise missing_upload()


def _copy_limited(src: IO[bytes], dst: IO[bytes], max_bytes: int) -> int:
    """Copy a binary stream in chunks; UploadTooLargeError as soon as it passes the limit."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise UploadTooLargeError(max_bytes)
        dst.write(chunk)
    return written
