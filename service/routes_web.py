"""The web page at ``/``: static HTML, CSS and vanilla JS over the API (nothing loaded
from outside the service), its favicon, and the page-data routes it draws from
(:mod:`seislens.service.routes_page_data`, included here)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from seislens.service import routes_page_data
from seislens.service.errors import NotFoundError

STATIC = Path(__file__).parent / "static"

PAGE_FILES = {
    "page.css": "text/css",
    "app.js": "text/javascript",
    "common.js": "text/javascript",
    "colours.js": "text/javascript",
    "gather.js": "text/javascript",
    "recording.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
"""The page's assets (served at ``/page/<name>``) and their media types."""

router = APIRouter(include_in_schema=False)
router.include_router(routes_page_data.router)


@router.get("/")
async def get_index_page() -> FileResponse:
    """The upload page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/favicon.ico")
async def get_favicon() -> FileResponse:
    """The icon browsers ask for (a 32 × 32 ICO)."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


@router.get("/page/{name}")
async def get_page_file(name: str = PathParam(max_length=64)) -> FileResponse:
    """One of the page's own files (:data:`PAGE_FILES`); 404 for any other name."""
    media_type = PAGE_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"no page file {name!r}", "unknown_page_file")
    return FileResponse(STATIC / name, media_type=media_type)
