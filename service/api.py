"""All routers of the API, gathered."""

from __future__ import annotations

from fastapi import APIRouter
from seislens.service import (
    routes_admin,
    routes_bundle,
    routes_embed,
    routes_events,
    routes_health,
    routes_velocity,
    routes_velocity_query,
    routes_web,
)

api_router = APIRouter()
api_router.include_router(routes_velocity.router)
api_router.include_router(routes_velocity_query.router)
api_router.include_router(routes_events.router)
api_router.include_router(routes_embed.router)
api_router.include_router(routes_bundle.router)
api_router.include_router(routes_admin.router)
api_router.include_router(routes_health.router)
api_router.include_router(routes_web.router)
