"""The interactive API documentation, served from files the package ships (no CDN):
Swagger UI at ``/docs`` and ReDoc at ``/redoc``, both over ``/openapi.json``.

The viewers' files are vendored under ``static/vendor/`` (their sources, versions and
licences: ``static/vendor/README.md``) and served at ``/docs/assets/<name>``; only the
files :data:`VENDOR_FILES` lists are served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from seislens.service.errors import NotFoundError

VENDOR = Path(__file__).parent / "static" / "vendor"

VENDOR_FILES: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript"),
}
"""Asset name (``/docs/assets/<name>``) → (file under ``static/vendor/``, media type)."""

ASSET_CACHE = "public, max-age=86400"
"""Cache-Control of the assets: they change only with the package."""

SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "tryItOutEnabled": True}
"""Swagger UI settings: no online validator badge (it would load from swagger.io)."""

DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
"""Content-Security-Policy of the two pages: nothing from another host, so the browser
does not even try (ReDoc's side menu would load its maker's logo from a CDN; the image
hides itself when refused). Inline script and styles: FastAPI's page templates and
the viewers' own."""

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    """The path the app is mounted under (``root_path``, behind a proxy)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def get_swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the OpenAPI document, from the vendored files."""
    root = _prefix(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} — API (Swagger UI)",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/favicon.ico",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get("/redoc")
async def get_redoc(request: Request) -> HTMLResponse:
    """ReDoc over the OpenAPI document, from the vendored file (no web fonts)."""
    root = _prefix(request)
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} — API (ReDoc)",
        redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
        redoc_favicon_url=f"{root}/favicon.ico",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get("/docs/assets/{name}")
async def get_docs_asset(name: Annotated[str, PathParam(max_length=64)]) -> FileResponse:
    """One vendored file of the documentation viewers (404 for any other name)."""
    entry = VENDOR_FILES.get(name)
    if entry is None:
        raise NotFoundError(
            f"no documentation asset {name!r}; the assets are: " + ", ".join(sorted(VENDOR_FILES)),
            "unknown_asset",
        )
    relative, media_type = entry
    return FileResponse(
        VENDOR / relative, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
    )
