"""The web page: a small upload form over the API (static HTML and vanilla JS)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def get_index_page() -> FileResponse:
    """The upload page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")
