"""Admin routes (bearer token): switching bundles without dropping requests.

The token is checked before anything else of the request is read: the JSON body is
parsed by a dependency that runs after the router's token check (FastAPI would parse a
declared ``Body`` parameter first)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from seislens.index.bundle import BundleError
from seislens.models.branches import VELOCITY
from seislens.service.deps import AdminDep, HolderDep, MetricsDep, SettingsDep
from seislens.service.error_docs import ErrorDoc, error_responses
from seislens.service.errors import (
    AdminDisabledError,
    ConflictError,
    InvalidParameterError,
    MissingTokenError,
    WrongTokenError,
)
from seislens.service.schemas import BundleRef, ReloadRequest, ReloadResponse
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, LoadedBundle, ReloadInProgressError, load_bundle

log = logging.getLogger("seislens.service")

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep])


def bundle_refused(serving: str, exc: BundleError) -> ConflictError:
    """The 409 of a reload to a bundle that cannot be served (``serving`` stays)."""
    return ConflictError(f"bundle refused, still serving {serving!r}: {exc}", "bundle_refused")


def outside_root(requested: str, root: Path) -> InvalidParameterError:
    """The 422 of a reload to a path outside SEISLENS_BUNDLE_ROOT."""
    return InvalidParameterError(
        ("body", "bundle"),
        f"{requested} is outside the bundle root {root}; expected a bundle inside it",
        "outside_bundle_root",
    )


def parse_reload_body(raw: bytes) -> ReloadRequest | None:
    """The reload request in a JSON body (None for no body, or ``null``).

    Raises:
        RequestValidationError: not JSON, or not a :class:`ReloadRequest` (422).
    """
    if raw.strip() in (b"", b"null"):
        return None
    try:
        return ReloadRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


async def reload_body(request: Request) -> ReloadRequest | None:
    """The body of a reload, read only once the token has been checked."""
    return parse_reload_body(await request.body())


ReloadBodyDep = Annotated[ReloadRequest | None, Depends(reload_body)]

_RELOAD_BODY = {
    "requestBody": {
        "required": False,
        "description": "which bundle to switch to; no body: reload the current one",
        "content": {"application/json": {"schema": ReloadRequest.model_json_schema()}},
    }
}
"""The documented body of a reload (the route reads it itself, after the token check)."""


def _missing_bundle() -> BundleError:
    """What loading a bundle that does not exist raises."""
    try:
        load_bundle(Path("/bundles/next"), Settings.model_construct())
    except BundleError as exc:
        return exc
    raise AssertionError("/bundles/next is a bundle")


_RELOAD_ERRORS = error_responses(
    ErrorDoc(401, "token_missing", "No bearer token", MissingTokenError),
    ErrorDoc(403, "token_wrong", "Wrong bearer token", WrongTokenError),
    ErrorDoc(404, "admin_disabled", "Admin routes disabled", AdminDisabledError),
    ErrorDoc(
        409,
        "bundle_refused",
        "Bundle cannot be served (old one keeps serving)",
        lambda: bundle_refused("default", _missing_bundle()),
    ),
    ErrorDoc(409, "reload_in_progress", "Another reload is running", ReloadInProgressError),
    ErrorDoc(
        422,
        "outside_bundle_root",
        "Path outside SEISLENS_BUNDLE_ROOT",
        lambda: outside_root("../etc", Path("/bundles")),
    ),
    ErrorDoc(422, "invalid_request", "Body not JSON", lambda: parse_reload_body(b"{bundle")),
)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses=_RELOAD_ERRORS,
    summary="Switch to another bundle (or re-read the current one)",
    openapi_extra=_RELOAD_BODY,
)
def reload_bundle(
    holder: HolderDep, settings: SettingsDep, metrics: MetricsDep, body: ReloadBodyDep
) -> ReloadResponse:
    """Load the bundle completely (hashes, encoders, index, a warm-up query), then swap
    it in: requests already running finish on the bundle they started with, which is
    closed after the last of them. A bundle that cannot be served is refused (409) and
    the current one keeps serving."""
    target = _target(body.bundle if body else None, holder, settings)
    start = time.perf_counter()
    try:
        previous, current = holder.reload(target, settings)
    except BundleError as exc:
        metrics.reloads.labels("refused").inc()
        serving = holder.current.name if holder.current else "nothing"
        log.warning("reload to %s refused: %s", target, exc)
        raise bundle_refused(serving, exc) from exc
    seconds = time.perf_counter() - start
    metrics.reloads.labels("success").inc()
    metrics.bundle_loaded(current.library_sizes())
    log.info("reloaded: now serving %s from %s (%.2f s)", current.name, current.path, seconds)
    return ReloadResponse(
        previous=_ref(previous) if previous else None, current=_ref(current), seconds=seconds
    )


def _target(requested: str | None, holder: BundleHolder, settings: Settings) -> Path:
    """The bundle directory to load: the one asked for (inside SEISLENS_BUNDLE_ROOT when
    that is set), else the current one again."""
    if requested is None:
        return holder.current.path if holder.current else settings.bundle
    path = Path(requested).expanduser()
    root = settings.bundle_root
    if root is None:
        return path
    path = (root / path).resolve()
    if not path.is_relative_to(root.resolve()):
        raise outside_root(requested, root)
    return path


def _ref(bundle: LoadedBundle) -> BundleRef:
    return BundleRef(
        name=bundle.name,
        path=str(bundle.path),
        created=bundle.created,
        models=bundle.library_size(VELOCITY.name),
    )
