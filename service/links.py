"""Links in answers (``model_url``, ``estimated_model.url``), never built from an
arbitrary ``Host`` header.

:func:`link` gives the URL of a named route:

* with ``SEISLENS_PUBLIC_BASE_URL`` set: that URL followed by the route's path
  (``https://seislens.example.org/api/v1/velocity/models/3``);
* else, for a request whose ``Host`` names one of ``SEISLENS_LINK_HOSTS`` (default: the
  loopback names ``localhost``, ``127.0.0.1``, ``::1``; ``*`` allows any): an absolute
  URL on that host (``http://127.0.0.1:8000/v1/velocity/models/3``), as before;
* else a relative link (``/v1/velocity/models/3``, under the ASGI root path): a client
  resolves it against the URL it called, and a forged ``Host`` cannot redirect it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from seislens.service.settings import Settings

_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::\d{1,5})?")
"""A well-formed ``Host`` header: a name or an IPv6 literal in brackets, maybe a port."""


def link(request: Request, name: str, **path_params: Any) -> str:
    """The URL of the route ``name`` with ``path_params`` (see the module docstring)."""
    path = str(request.app.url_path_for(name, **path_params))
    settings: Settings = request.app.state.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + path
    if _allowed_host(request.headers.get("host", ""), settings.link_hosts):
        return str(request.url_for(name, **path_params))
    root = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    return str(root).rstrip("/") + path


def _allowed_host(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (a ``Host`` header; its port ignored) is well formed and one
    links may be built on."""
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    if "*" in allowed:
        return True
    name = (match["v6"] or match["name"]).lower()
    return name in {h.lower().strip("[]") for h in allowed}
