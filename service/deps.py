"""Dependencies shared by the routes, as ``Annotated`` types.

They are coroutines because they only read app state: a plain ``def`` dependency
would cost a trip through the thread pool on every request.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from seislens.service.errors import AdminDisabledError, MissingTokenError, WrongTokenError
from seislens.service.estimation import EstimateStore
from seislens.service.metrics import ServiceMetrics
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, LoadedBundle


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_holder(request: Request) -> BundleHolder:
    """The holder of the bundle being served."""
    return request.app.state.holder


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


async def get_estimates(request: Request) -> EstimateStore:
    """Recent estimated models, by query id."""
    return request.app.state.estimates


async def lease_bundle(request: Request) -> AsyncIterator[LoadedBundle]:
    """The current bundle, leased for the whole request: a reload meanwhile swaps the
    reference but this request keeps (and its lease keeps open) the bundle it began with."""
    holder: BundleHolder = request.app.state.holder
    with holder.lease() as bundle:
        yield bundle


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[BundleHolder, Depends(get_holder)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
EstimatesDep = Annotated[EstimateStore, Depends(get_estimates)]
BundleDep = Annotated[LoadedBundle, Depends(lease_bundle)]

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token (SEISLENS_ADMIN_TOKEN); admin routes are disabled without one.",
)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with the configured bearer token.

    404 when no token is configured (admin disabled), 401 without a bearer token, 403
    with a wrong one.
    """
    if settings.admin_token is None:
        raise AdminDisabledError()
    if credentials is None or not credentials.credentials:
        raise MissingTokenError()
    if not _token_matches(settings, credentials.credentials):
        raise WrongTokenError()


def _token_matches(settings: Settings, token: str) -> bool:
    """Whether ``token`` is the configured admin token (compared in constant time)."""
    if settings.admin_token is None:
        return False
    expected = settings.admin_token.get_secret_value().encode()
    return secrets.compare_digest(token.encode(), expected)


async def sent_admin_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """Whether the request carries the admin token (never an error: a public route
    shows more to an admin, e.g. the bundle's paths)."""
    return credentials is not None and _token_matches(settings, credentials.credentials)


AdminDep = Depends(require_admin)
AdminViewDep = Annotated[bool, Depends(sent_admin_token)]
