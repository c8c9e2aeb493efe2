"""Prometheus metrics of one app (its own registry, so several apps can live in one
process, as in tests), and the middleware that times every request."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST

_UNLABELLED = {False: "unlabelled", True: "internal_error"}
"""The reason of an error answer no handler labelled (a 500 escapes them all)."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class ServiceMetrics:
    """The service's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        ProcessCollector(registry=reg)
        self.requests = Counter(
            "seislens_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "seislens_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.uploads_rejected = Counter(
            "seislens_uploads_rejected",
            "Uploads refused, by reason (too_large, empty, unknown_format, truncated, ...).",
            ["reason"],
            registry=reg,
        )
        self.errors = Counter(
            "seislens_http_errors",
            "Error answers (4xx, 5xx), by route template, status code and reason.",
            ["route", "status", "reason"],
            registry=reg,
        )
        self.reloads = Counter(
            "seislens_bundle_reloads",
            "Bundle reloads through /v1/admin/reload, by outcome (success, refused).",
            ["outcome"],
            registry=reg,
        )
        self.search_stage = Histogram(
            "seislens_search_stage_seconds",
            "Time of each stage of a velocity search (read, embed, search, estimate).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )
        self.library_items = Gauge(
            "seislens_library_items",
            "Items in each branch's library being served (0 without one), by branch.",
            ["branch"],
            registry=reg,
        )
        self.event_stage = Histogram(
            "seislens_event_stage_seconds",
            "Time of each stage of an event query (read, preprocess, embed, classify, search).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )

    def bundle_loaded(self, library_sizes: dict[str, int]) -> None:
        """Set the library gauge of every branch after a bundle is (re)loaded.

        Args:
            library_sizes: items per branch name (every registry branch, 0 when absent).
        """
        for branch, size in library_sizes.items():
            self.library_items.labels(branch).set(size)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request by its route template (not its raw path, so
    ids in paths do not multiply the series); count error answers by the ``reason``
    their handler recorded (``request.state.error_reason``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
            if status >= 400:
                reason = scope.get("state", {}).get("error_reason") or _UNLABELLED[status >= 500]
                self.metrics.errors.labels(template, str(status), reason).inc()
