"""Errors: the answers the API gives when it cannot do what was asked.

Every error answers ``{"detail": "<message>", "reason": "<label>"}`` (a 422 adds
``errors``, the invalid parameters): what is wrong and what is expected, and a short
stable label carried by the error itself, never read from its message; it is also the
metrics' label. The service raises :class:`ApiError` subclasses (status and reason as
class data); the readers below it raise ``UploadError`` / ``EventInputError`` with a
reason of their own. No user input leads to a 500. No answer shows a path of the
server's temporary files (:func:`scrub_paths`). Examples: :mod:`.error_docs`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import tempfile
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from seislens.data.gather_files import UploadError
from seislens.models.event_preprocess import EventInputError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("seislens.service")

TEMP_FILE_TEXT = "(temporary file)"
"""What a server-side temporary path reads as in an answer."""

_TEMP_PATH = re.compile(
    rf"(?:{re.escape(tempfile.gettempdir().rstrip('/'))}/|\bseislens-upload-)[^\s'\"]*"
)


def scrub_paths(text: str) -> str:
    """``text`` with every path under the temporary folder (where uploads are saved)
    replaced by :data:`TEMP_FILE_TEXT`: messages of the readers' libraries may name it."""
    return _TEMP_PATH.sub(TEMP_FILE_TEXT, text)


class ApiError(HTTPException):
    """An error answer: its HTTP status, reason (a short label) and message.

    An ``HTTPException``, so that FastAPI lets it through when it is raised while the
    body is read (``UploadTooLargeError``).

    Args:
        message: what is wrong and what is expected (default: the class's).
        reason: overrides the class's reason (one class, several causes).
        status: overrides the class's status.
    """

    status: int = 400
    reason: str = "bad_request"
    message: str = "bad request"
    headers: dict[str, str] = {}  # noqa: RUF012 (never changed)
    upload: bool = False  # a refused upload: also counted by seislens_uploads_rejected
    errors: list[dict[str, Any]]  # a 422's invalid parameters (loc, msg, type)

    def __init__(
        self, message: str | None = None, reason: str | None = None, status: int | None = None
    ) -> None:
        self.message = message or self.message
        self.reason = reason or self.reason
        self.status = status or self.status
        self.errors = []
        super().__init__(self.status, self.message, self.headers)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """The JSON answer (an ``ErrorResponse``, or a ``ValidationErrorResponse``)."""
        body: dict[str, Any] = {"detail": scrub_paths(self.message), "reason": self.reason}
        if self.status == 422:
            body["errors"] = [
                {**e, "msg": scrub_paths(e["msg"])} if isinstance(e.get("msg"), str) else e
                for e in self.errors
            ]
        return body


class InvalidParameterError(ApiError):
    """A request parameter that is well-formed but names nothing usable (422).

    Args:
        loc: where, e.g. ("query", "family").
        message: what is wrong and what is expected.
        reason: a short label, e.g. 'unknown_family' (also the error's ``type``).
    """

    status = 422

    def __init__(self, loc: tuple[str, ...], message: str, reason: str) -> None:
        super().__init__(message, reason)
        self.errors = [{"loc": list(loc), "msg": message, "type": reason}]


class InvalidUploadError(InvalidParameterError):
    """An uploaded file that cannot be used (422): a reader's refusal, with its reason."""

    upload = True

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(("body", "file"), message, reason)


class InvalidRequestError(ApiError):
    """Parameters failing the routes' declared types or bounds (422): FastAPI's errors,
    summarised in one line."""

    status = 422
    reason = "invalid_request"

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        items = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        lines = [f"{'.'.join(map(str, i['loc'])) or 'request'}: {i['msg']}" for i in items]
        super().__init__("; ".join(lines) or "invalid request")
        self.errors = items


class NotFoundError(ApiError):
    """What the request names does not exist here (404)."""

    status, reason = 404, "not_found"


class ConflictError(ApiError):
    """The request cannot be carried out in the current state (409)."""

    status, reason = 409, "conflict"


class UnavailableError(ApiError):
    """A part of the bundle the request needs is unavailable (503)."""

    status, reason = 503, "unavailable"


class NotReadyError(UnavailableError):
    """No bundle is being served yet (503; retry shortly); ``why`` says why."""

    reason = "not_ready"
    headers = {"Retry-After": "5"}  # noqa: RUF012

    def __init__(self, why: str) -> None:
        super().__init__(f"not ready: {why}; retry shortly")


class StoreUnavailableError(UnavailableError):
    """The library's metadata store cannot be read (503): its files changed on disk;
    ``why`` is SQLite's message."""

    reason = "store_unavailable"
    headers = {"Retry-After": "5"}  # noqa: RUF012

    def __init__(self, why: str) -> None:
        super().__init__(
            f"the library's metadata store cannot be read ({why}); its files changed on "
            "disk (an index rebuild?): reload the bundle (POST /v1/admin/reload)",
        )


class AdminDisabledError(NotFoundError):
    """No admin token is configured: the admin routes do not exist (404)."""

    reason = "admin_disabled"
    message = "the admin API is disabled: no admin token is configured (set SEISLENS_ADMIN_TOKEN)"


class MissingTokenError(ApiError):
    """An admin request without a bearer token (401)."""

    status, reason = 401, "token_missing"
    message = "missing bearer token: send 'Authorization: Bearer <SEISLENS_ADMIN_TOKEN>'"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class WrongTokenError(ApiError):
    """An admin request with a wrong bearer token (403)."""

    status, reason, message = 403, "token_wrong", "invalid admin token"


def as_api_error(exc: Exception) -> ApiError:
    """The answer to an exception: itself, a reader's refusal, a framework error, or
    (for anything unforeseen) an internal error (500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UploadError | EventInputError):
        return InvalidUploadError(str(exc), exc.reason)
    if isinstance(exc, RequestValidationError):
        return InvalidRequestError(exc.errors())
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailableError(str(exc))
    if isinstance(exc, StarletteHTTPException):  # unknown paths, wrong methods
        reason = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        error = ApiError(str(exc.detail), reason, exc.status_code)
        error.headers = dict(exc.headers or {})
        return error
    why = f"internal error ({type(exc).__name__}); the server log has the details"
    return ApiError(why, "internal_error", 500)


async def _answer(request: Request, exc: Exception) -> JSONResponse:
    """Answer an error; record its reason for the metrics (``request.state``)."""
    error = as_api_error(exc)
    if error.status == 500:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
    elif isinstance(error, StoreUnavailableError):
        log.error("metadata store unavailable on %s: %s", request.url.path, exc)
    request.state.error_reason = error.reason
    metrics = getattr(request.app.state, "metrics", None)
    if error.upload and metrics is not None:
        metrics.uploads_rejected.labels(reason=error.reason).inc()
    return JSONResponse(error.body(), error.status, headers=error.headers)


def install_exception_handlers(app: FastAPI) -> None:
    """Answer every exception as :func:`as_api_error` says."""
    handled = (UploadError, EventInputError, RequestValidationError, sqlite3.OperationalError)
    for kind in (*handled, StarletteHTTPException, Exception):  # ApiError: an HTTPException
        app.add_exception_handler(kind, _answer)
