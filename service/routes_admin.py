"""Admin routes (bearer token): switching bundles without dropping requests."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from seislens.index.bundle import BundleError
from seislens.service import errors as err
from seislens.service.deps import AdminDep, HolderDep, MetricsDep, SettingsDep
from seislens.service.errors import InvalidParameterError, error_responses
from seislens.service.schemas import BundleRef, ReloadRequest, ReloadResponse
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, LoadedBundle, ReloadInProgressError

log = logging.getLogger("seislens.service")

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses=error_responses(
        err.TOKEN_MISSING,
        err.TOKEN_WRONG,
        err.ADMIN_DISABLED,
        err.RELOAD_REFUSED,
        err.RELOAD_BUSY,
        err.BUNDLE_OUTSIDE_ROOT,
    ),
    summary="Switch to another bundle (or re-read the current one)",
)
def reload_bundle(
    holder: HolderDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Load the bundle completely (hashes, encoders, index, a warm-up query), then swap
    it in: requests already running finish on the bundle they started with, which is
    closed after the last of them. A bundle that cannot be served is refused (409) and
    the current one keeps serving."""
    target = _target(body.bundle if body else None, holder, settings)
    start = time.perf_counter()
    try:
        previous, current = holder.reload(target, settings)
    except ReloadInProgressError as exc:
        raise HTTPException(409, str(exc)) from exc
    except BundleError as exc:
        metrics.reloads.labels("refused").inc()
        serving = holder.current.name if holder.current else "nothing"
        log.warning("reload to %s refused: %s", target, exc)
        raise HTTPException(409, f"bundle refused, still serving {serving!r}: {exc}") from exc
    seconds = time.perf_counter() - start
    metrics.reloads.labels("success").inc()
    metrics.bundle_loaded(current.count, current.events.count if current.events else 0)
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
        raise InvalidParameterError(
            ("body", "bundle"),
            f"{requested} is outside the bundle root {root}; expected a bundle inside it",
            "outside_bundle_root",
        )
    return path


def _ref(bundle: LoadedBundle) -> BundleRef:
    return BundleRef(
        name=bundle.name, path=str(bundle.path), created=bundle.created, models=bundle.count
    )
