"""The OpenAPI document served at ``/openapi.json``, made for generated clients.

FastAPI's document (with the produced error examples of :mod:`.error_docs`) is
post-processed so that client generators (openapi-python-client, openapi-typescript,
openapi-generator) produce clients that work:

* uploads are ``format: binary`` strings — multipart *file* parts. FastAPI with
  pydantic v2 writes ``contentMediaType: application/octet-stream``, which generators
  read as a plain string field (sent as a form field, refused by the service);
* the answers that are files are declared with their media types and a string schema
  (``format: binary`` for binary ones), so clients return the body's bytes or text
  instead of decoding JSON: the scan downloads (CSV, QuakeML, miniSEED), the
  Prometheus text, and the model routes' ``.npy`` and PNG;
* where one answer has a JSON and binary forms (``format=json|npy|png``), the binary
  media types come first: a generator that reads one media type per answer takes the
  first it supports, and a client reading JSON from a PNG fails, while bytes of any
  form can always be read (JSON ones with ``json.loads``).

Generators that do not know a vendor media type (QuakeML's ``application/xml``,
miniSEED's ``application/vnd.fdsn.mseed``) are told to read it as bytes with
:data:`CLIENT_CONTENT_TYPE_OVERRIDES` (openapi-python-client's
``content_type_overrides``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from seislens.service.error_docs import documented_openapi
from seislens.service.routes_scans import DOWNLOADS

BINARY_SCHEMA: dict[str, str] = {"type": "string", "format": "binary"}
"""The schema of a file: an upload part or a binary answer."""

TEXT_SCHEMA: dict[str, str] = {"type": "string"}
"""The schema of a text answer (read as a string)."""

DOWNLOAD_MEDIA_TYPES: dict[str, str] = {
    f"download_scan_{kind}": media for kind, (_, media) in DOWNLOADS.items()
}
"""Operation id → media type of the file it answers (the scan routes' own table)."""

CLIENT_CONTENT_TYPE_OVERRIDES: dict[str, str] = {
    media: "application/octet-stream"
    for media in DOWNLOAD_MEDIA_TYPES.values()
    if not media.startswith("text/")
}
"""Media types a generator should read as bytes (openapi-python-client's
``content_type_overrides``): those of the binary downloads it does not know."""


def client_openapi(app: FastAPI) -> dict[str, Any]:
    """The document ``/openapi.json`` serves: :func:`documented_openapi`, then
    :func:`for_generated_clients` (built once; FastAPI caches the document)."""
    return for_generated_clients(documented_openapi(app))


def for_generated_clients(
    doc: dict[str, Any], downloads: Mapping[str, str] = DOWNLOAD_MEDIA_TYPES
) -> dict[str, Any]:
    """``doc`` changed in place (idempotent): file uploads as binary parts, file answers
    with their media types, binary forms first.

    Args:
        doc: an OpenAPI 3.1 document as FastAPI builds it.
        downloads: operation id → the media type of the file it answers.
    """
    _binary_uploads(doc.get("components", {}).get("schemas", {}))
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            if "requestBody" in operation:
                _binary_uploads(operation["requestBody"])
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    _declare_answer(response, downloads.get(operation.get("operationId", "")))
    return doc


def _binary_uploads(node: Any) -> None:
    """Every string schema under ``node`` with a ``contentMediaType`` becomes a binary
    string (what generators read as a file)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_uploads(value)
    elif isinstance(node, list):
        for value in node:
            _binary_uploads(value)


def _is_binary(media_type: str) -> bool:
    return media_type != "application/json" and not media_type.startswith("text/")


def _declare_answer(response: dict[str, Any], download: str | None) -> None:
    """A 2xx answer with a schema per media type, binary forms before JSON."""
    content: dict[str, Any] = response.get("content", {})
    if download is not None and download not in content:
        content = {download: {}}  # FileResponse routes: FastAPI declares no content
    for media_type, entry in content.items():
        if "schema" not in entry:
            entry["schema"] = dict(BINARY_SCHEMA if _is_binary(media_type) else TEXT_SCHEMA)
    ordered = sorted(content, key=lambda media_type: not _is_binary(media_type))
    if content:
        response["content"] = {media_type: content[media_type] for media_type in ordered}
