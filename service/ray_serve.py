"""The HTTP service replicated on Ray Serve (``seislens serve --engine ray``).

Every replica runs the same FastAPI app as ``seislens serve`` (``create_app``, built in
the replica through Serve's FastAPI ingress, so its lifespan loads the bundle, takes its
lease and, with ``SEISLENS_WATCH_INTERVAL_S`` > 0, watches the manifest: a rebuild's
switch reaches every replica). Serve's proxy spreads requests over the replicas and
scales them between the bounds of :class:`RayServeSettings` on the requests in flight.

Imported only with the cluster extra installed (``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from seislens.service.settings import Settings

try:
    import ray
    from ray import serve
except ImportError as exc:  # pragma: no cover - the cluster extra is not installed
    raise ImportError(
        "serving on Ray needs the cluster extra: pip install -e '.[cluster]'"
    ) from exc

log = logging.getLogger("seislens.service")

APP_NAME = "seislens"
"""The Serve application (and deployment) name."""


class RayServeSettings(BaseSettings):
    """Replication and autoscaling on Ray Serve (environment: ``SEISLENS_RAY_*``).

    Attributes:
        min_replicas: fewest replicas autoscaling keeps.
        max_replicas: most replicas autoscaling starts.
        target_ongoing_requests: requests in flight per replica autoscaling aims at.
        cpus_per_replica: CPUs each replica reserves (its ONNX Runtime threads).
        max_ongoing_requests: requests a replica takes at once before the proxy queues.
    """

    model_config = SettingsConfigDict(env_prefix="SEISLENS_RAY_", extra="ignore")

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(4.0, gt=0)
    cpus_per_replica: float = Field(1.0, gt=0)
    max_ongoing_requests: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> RayServeSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} exceeds max_replicas={self.max_replicas}"
            )
        return self


def autoscaling(replicas: int, bounds: RayServeSettings) -> dict[str, Any]:
    """Serve's autoscaling config: start at ``replicas``, within the bounds (widened to
    include ``replicas``)."""
    if replicas < 1:
        raise ValueError(f"replicas is {replicas}; expected at least 1")
    return {
        "min_replicas": min(replicas, bounds.min_replicas),
        "initial_replicas": replicas,
        "max_replicas": max(replicas, bounds.max_replicas),
        "target_ongoing_requests": bounds.target_ongoing_requests,
    }


class SeisLensReplica:
    """One Serve replica: the FastAPI app of :func:`seislens.service.app.create_app`."""


def application(
    settings: Settings, replicas: int = 2, bounds: RayServeSettings | None = None
) -> Any:
    """The Serve application: ``replicas`` replicas of the app on ``settings``."""
    bounds = bounds or RayServeSettings()

    def build_app() -> Any:  # runs in each replica
        from seislens.service.app import create_app

        return create_app(settings)

    ingress = serve.ingress(build_app)(SeisLensReplica)
    deployment = serve.deployment(
        name=APP_NAME,
        autoscaling_config=autoscaling(replicas, bounds),
        max_ongoing_requests=bounds.max_ongoing_requests,
        ray_actor_options={"num_cpus": bounds.cpus_per_replica},
    )(ingress)
    return deployment.bind()


def serve_on_ray(
    bundle: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 2,
    address: str | None = None,
    settings: Settings | None = None,
    bounds: RayServeSettings | None = None,
    blocking: bool = True,
) -> None:
    """Deploy the service on the Ray cluster at ``address`` (None: this process's, or a
    new local one) and serve HTTP on ``host``:``port``; with ``blocking``, until
    interrupted.

    Raises:
        RuntimeError: the deployment did not become healthy (a replica could not load
            the bundle; the replicas' logs say why).
    """
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    settings = (settings or Settings()).model_copy(update={"bundle": Path(bundle).resolve()})
    serve.start(http_options={"host": host, "port": port})
    log.info("deploying SeisLens on Ray Serve at http://%s:%d, %d replicas", host, port, replicas)
    serve.run(
        application(settings, replicas, bounds),
        name=APP_NAME,
        route_prefix="/",
        blocking=blocking,
    )


def shutdown() -> None:
    """Remove the application and stop Serve on the cluster."""
    serve.delete(APP_NAME)
    serve.shutdown()
