"""Uploads: the size limit enforced while the body streams in, and the temporary file.

:class:`BodyLimitMiddleware` refuses a request body past the limit: at once when its
``Content-Length`` announces more, else as soon as the bytes received pass it. Either
way it raises :class:`UploadTooLargeError` (413, reason ``too_large``) from the body
stream, before the rest is read. The limit covers the file plus the multipart framing
(:data:`MULTIPART_ALLOWANCE` bytes); :func:`saved_upload` then checks the file's own
size exactly while copying it to the temporary file the readers need (segyio opens
paths only).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fastapi import UploadFile
from seislens.service.errors import ApiError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_ALLOWANCE = 64 * 1024
"""Bytes allowed beyond the file size for multipart boundaries and part headers."""

_CHUNK = 1 << 20
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_file_bytes + MULTIPART_ALLOWANCE``.

    Args:
        app: the wrapped ASGI application.
        max_file_bytes: the largest upload accepted (the file itself).
    """

    def __init__(self, app: ASGIApp, max_file_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + MULTIPART_ALLOWANCE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        announced = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if announced is not None and announced > self.max_body_bytes:
                raise UploadTooLargeError(self.max_file_bytes, announced)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise UploadTooLargeError(self.max_file_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
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
    suffix = Path(upload.filename or "").suffix.lower()
    safe_suffix = suffix if suffix in {".sgy", ".segy", ".su", ".npy"} else ""
    fd, name = tempfile.mkstemp(prefix="seislens-upload-", suffix=safe_suffix)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            _copy_limited(upload.file, out, max_bytes)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _copy_limited(src: IO[bytes], dst: IO[bytes], max_bytes: int) -> int:
    """Copy a binary stream in chunks; UploadTooLargeError as soon as it passes the limit."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise UploadTooLargeError(max_bytes)
        dst.write(chunk)
    return written
