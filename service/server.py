"""Running the service under uvicorn (what ``seislens serve`` calls)."""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any

from seislens.service.settings import Settings

log = logging.getLogger("seislens.service")

STARTUP_FAILURE = 3
"""Exit status when the service cannot start (uvicorn's own for a failed start-up)."""


def log_config(log_level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, with SeisLens' own loggers on the same handler
    (so the start-up lines — bundle, execution provider, GPU index — are printed)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["seislens"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return config


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options from the settings: proxy headers (X-Forwarded-For, -Proto)
    trusted only from ``forwarded_allow_ips`` (none when empty), the keep-alive timeout
    of idle connections (s), and its HTTP protocol with a deadline and a size limit on
    each request's head (:mod:`~seislens.service.http_timeouts`; h11's own limit set to
    the same size)."""
    from seislens.service.http_timeouts import guarded_protocol

    trusted = settings.forwarded_allow_ips
    return {
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": list(trusted),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "http": guarded_protocol("auto", settings.head_timeout_s, settings.max_head_bytes),
        "h11_max_incomplete_event_size": settings.max_head_bytes,
    }


def serve(
    bundle: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    settings: Settings | None = None,
) -> None:
    """Serve ``bundle`` over HTTP until interrupted.

    Args:
        bundle: the bundle directory (overrides SEISLENS_BUNDLE).
        host: interface to listen on ('0.0.0.0' for all, as in a container).
        port: TCP port.
        log_level: 'critical', 'error', 'warning', 'info', 'debug' or 'trace'.
        settings: other settings; by default read from SEISLENS_* variables.

    Raises:
        SystemExit: with status 3 when the bundle cannot be served (the log says why).
    """
    import uvicorn
    from seislens.service.app import create_app

    base = settings or Settings()
    settings = base.model_copy(update={"bundle": Path(bundle)})
    config = uvicorn.Config(  # configures logging
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level.lower(),
        log_config=log_config(log_level),
        **uvicorn_options(settings),
    )
    log.info("starting SeisLens on http://%s:%d with bundle %s", host, port, settings.bundle)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # the lifespan refused the bundle; its message is logged
        sys.exit(STARTUP_FAILURE)
