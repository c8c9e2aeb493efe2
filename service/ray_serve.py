"""The HTTP service replicated on Ray Serve (``seislens serve --engine ray``).

Every replica runs the same FastAPI app as ``seislens serve`` (``create_app``, built in
the replica through Serve's FastAPI ingress, so its lifespan loads the bundle and takes
its lease). Serve's proxy spreads requests over the replicas and scales them between the
bounds of :class:`RayServeSettings` on the requests in flight.

A reload reaches every replica, whichever way it comes:

* a rebuild (``seislens index build``) switches the bundle's manifest: every replica
  watches it (``SEISLENS_WATCH_INTERVAL_S``; on Ray it is never off, 0 becomes
  :attr:`RayServeSettings.watch_interval_s`);
* ``POST /v1/admin/reload`` lands on one replica: once it succeeded there, that replica
  publishes the bundle on the application's :class:`BundleBoard` (a named Ray actor)
  and every other replica, polling the board, reloads the same bundle (a replica
  started later by autoscaling too).

Each answer names its replica in the ``X-SeisLens-Replica`` header, so a client can
check what every replica serves.

Imported only with the cluster extra installed (``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from seislens.index.bundle import BundleError
from seislens.service.settings import Settings
from seislens.service.state import ReloadInProgressError

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

BOARD_NAMESPACE = "seislens"
"""The Ray namespace of the applications' bundle boards."""

REPLICA_HEADER = "X-SeisLens-Replica"
"""The response header naming the replica that answered."""

RELOAD_PATH = "/v1/admin/reload"
"""The admin route whose successful reloads are repeated on every replica."""


class RayServeSettings(BaseSettings):
    """Replication and autoscaling on Ray Serve (environment: ``SEISLENS_RAY_*``).

    Attributes:
        min_replicas: fewest replicas autoscaling keeps.
        max_replicas: most replicas autoscaling starts.
        target_ongoing_requests: requests in flight per replica autoscaling aims at.
        cpus_per_replica: CPUs each replica reserves (its ONNX Runtime threads).
        max_ongoing_requests: requests a replica takes at once before the proxy queues.
        watch_interval_s: how often (s) each replica polls the bundle's manifest and the
            bundle board, where the service settings leave the watch off.
    """

    model_config = SettingsConfigDict(env_prefix="SEISLENS_RAY_", extra="ignore")

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(4.0, gt=0)
    cpus_per_replica: float = Field(1.0, gt=0)
    max_ongoing_requests: int = Field(16, ge=1)
    watch_interval_s: float = Field(1.0, gt=0)

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


@ray.remote(num_cpus=0)
class BundleBoard:
    """The bundle every replica of one application should serve after an admin reload:
    a generation counter and the bundle directory published with it."""

    def __init__(self) -> None:
        self.generation = 0
        self.path: str | None = None

    def publish(self, path: str) -> int:
        """Announce ``path`` as the bundle to serve; returns the new generation."""
        self.generation += 1
        self.path = path
        return self.generation

    def latest(self) -> tuple[int, str | None]:
        """(generation, bundle directory); (0, None) before any admin reload."""
        return self.generation, self.path


def board_name(app_name: str = APP_NAME) -> str:
    """The named actor of ``app_name``'s bundle board."""
    return f"{app_name}-bundle-board"


def bundle_board(app_name: str = APP_NAME) -> Any:
    """The application's bundle board (created by the first replica that asks)."""
    return BundleBoard.options(
        name=board_name(app_name),
        namespace=BOARD_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote()


class BoardFollower:
    """One replica's side of the bundle board: publishes its successful admin reloads,
    and repeats the reloads other replicas published (a daemon thread polling every
    ``interval_s`` seconds).

    Args:
        app: the replica's FastAPI app (its ``state`` holds the bundle holder, the
            settings and the metrics once its lifespan ran).
        board: the application's :class:`BundleBoard` handle.
        interval_s: seconds between polls.
    """

    def __init__(self, app: Any, board: Any, interval_s: float) -> None:
        self.app = app
        self.board = board
        self.interval_s = interval_s
        self.seen = 0  # a replica started after an admin reload follows it at once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bundle-board", daemon=True)
        self._thread.start()

    async def published(self) -> None:
        """After a successful admin reload here: announce the bundle now served."""
        current = self.app.state.holder.current
        if current is None:
            return
        generation = await self.board.publish.remote(str(current.path))
        with self._lock:
            self.seen = max(self.seen, generation)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                generation, path = ray.get(self.board.latest.remote(), timeout=30)
            except Exception as exc:  # the board is gone (application deleted) or slow
                log.warning("bundle board unreachable: %s", exc)
                continue
            with self._lock:
                if generation <= self.seen or path is None:
                    continue
            if self._follow(Path(path)):
                with self._lock:
                    self.seen = max(self.seen, generation)

    def _follow(self, path: Path) -> bool:
        """Reload ``path`` as another replica did; False to try again at the next poll."""
        state = self.app.state
        try:
            _, new = state.holder.reload(path, state.settings)
        except ReloadInProgressError:
            return False
        except BundleError as exc:
            state.metrics.reloads.labels("refused").inc()
            log.warning("bundle %s published by another replica refused here: %s", path, exc)
            return True
        state.metrics.reloads.labels("success").inc()
        state.metrics.bundle_loaded(new.library_sizes())
        log.info("reloaded %s as published by another replica", path)
        return True


class ReplicaMiddleware:
    """ASGI middleware of a replica: names the replica in every answer's
    :data:`REPLICA_HEADER`, and calls ``on_reload`` after a successful admin reload."""

    def __init__(self, app: Any, replica: str, on_reload: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.replica = replica.encode()
        self.on_reload = on_reload

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def named_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                header = (REPLICA_HEADER.lower().encode(), self.replica)
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, named_send)
        if status == 200 and scope["method"] == "POST" and scope["path"] == RELOAD_PATH:
            await self.on_reload()


def replica_app(settings: Settings, interval_s: float, app_name: str = APP_NAME) -> Any:
    """The app of one replica (runs in the replica): ``create_app`` on ``settings``, with
    :class:`ReplicaMiddleware` and a :class:`BoardFollower`."""
    from seislens.service.app import create_app

    app = create_app(settings)
    replica = serve.get_replica_context().replica_id.unique_id
    follower = BoardFollower(app, bundle_board(app_name), interval_s)
    app.add_middleware(ReplicaMiddleware, replica=replica, on_reload=follower.published)
    app.state.board_follower = follower
    return app


class SeisLensReplica:
    """One Serve replica: the FastAPI app of :func:`replica_app`."""


def replica_settings(settings: Settings, bounds: RayServeSettings) -> Settings:
    """The settings every replica runs on: ``settings`` with the manifest watch on
    (``bounds.watch_interval_s`` where ``settings`` turn it off: else a rebuild would
    reach no replica)."""
    if settings.watch_interval_s > 0:
        return settings
    return settings.model_copy(update={"watch_interval_s": bounds.watch_interval_s})


def application(
    settings: Settings, replicas: int = 2, bounds: RayServeSettings | None = None
) -> Any:
    """The Serve application: ``replicas`` replicas of the app on ``settings`` (the
    manifest watch turned on where ``settings`` leave it off)."""
    bounds = bounds or RayServeSettings()
    settings = replica_settings(settings, bounds)
    interval_s = settings.watch_interval_s

    def build_app() -> Any:  # runs in each replica
        return replica_app(settings, interval_s)

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
    remove_board()  # a new deployment starts on ``bundle``, not a board left over
    log.info("deploying SeisLens on Ray Serve at http://%s:%d, %d replicas", host, port, replicas)
    serve.run(
        application(settings, replicas, bounds),
        name=APP_NAME,
        route_prefix="/",
        blocking=blocking,
    )


def running_replicas(app_name: str = APP_NAME) -> int:
    """Replicas of the application's deployment in the RUNNING state."""
    status = serve.status().applications.get(app_name)
    if status is None:
        return 0
    deployment = status.deployments.get(APP_NAME)
    return int(deployment.replica_states.get("RUNNING", 0)) if deployment else 0


def shutdown() -> None:
    """Remove the application, its bundle board, and stop Serve on the cluster."""
    serve.delete(APP_NAME)
    serve.shutdown()
    remove_board()


def remove_board(app_name: str = APP_NAME) -> None:
    """Kill the application's bundle board, if there is one."""
    with contextlib.suppress(ValueError):  # no replica created one
        ray.kill(ray.get_actor(board_name(app_name), namespace=BOARD_NAMESPACE))
