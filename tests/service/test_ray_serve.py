"""The service replicated on Ray Serve (skipped without the cluster extra): two
replicas of the FastAPI app answer a SEG-Y search through Serve's HTTP proxy, and a
reload (a rebuild picked up by the manifest watchers, an admin reload to another
bundle) reaches both replicas with no failed request while SEG-Y searches run.

The two slow tests share one deployment (on copies of the tiny bundle); the search
test runs first, on the bundle the deployment started with."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ray_session import SKIP_REASON, ray_cluster
from seislens.service.settings import Settings
from service_helpers import ADMIN_TOKEN

from seislens.rebuild_drill import velocity_library

pytest.importorskip("ray", reason=SKIP_REASON)

from seislens.service import ray_serve

from seislens.ray_reload_drill import reloads_under_load, segy_search


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_autoscaling_bounds_include_the_replicas_asked_for():
    bounds = ray_serve.RayServeSettings(min_replicas=2, max_replicas=3)
    assert ray_serve.autoscaling(5, bounds) == {
        "min_replicas": 2,
        "initial_replicas": 5,
        "max_replicas": 5,
        "target_ongoing_requests": bounds.target_ongoing_requests,
    }
    with pytest.raises(ValueError, match="exceeds"):
        ray_serve.RayServeSettings(min_replicas=4, max_replicas=2)


def test_the_manifest_watch_is_never_off_on_ray():
    """Off in the settings, every replica still watches (else a rebuild reaches none)."""
    bounds = ray_serve.RayServeSettings(watch_interval_s=0.7)
    for asked, runs in ((0, 0.7), (0.3, 0.3)):
        settings = ray_serve.replica_settings(Settings(watch_interval_s=asked), bounds)
        assert settings.watch_interval_s == runs


def test_the_replica_middleware_names_the_replica_and_reports_admin_reloads():
    """Every answer names its replica; only a successful admin reload is reported."""
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post(ray_serve.RELOAD_PATH)
    def reload(ok: bool) -> dict[str, bool]:
        if not ok:
            raise HTTPException(409, "refused")
        return {"ok": ok}

    reports = []

    async def on_reload() -> None:
        reports.append(1)

    app.add_middleware(ray_serve.ReplicaMiddleware, replica="r1", on_reload=on_reload)
    with TestClient(app) as client:
        assert client.get("/nowhere").headers[ray_serve.REPLICA_HEADER] == "r1"
        assert client.post(ray_serve.RELOAD_PATH, params={"ok": 0}).status_code == 409
        assert reports == []
        r = client.post(ray_serve.RELOAD_PATH, params={"ok": 1})
        assert r.status_code == 200 and r.headers[ray_serve.REPLICA_HEADER] == "r1"
        assert reports == [1]


@pytest.fixture(scope="module")
def deployment(tiny_bundle, tmp_path_factory) -> Iterator[tuple[str, tuple[Path, Path]]]:
    """Two replicas (fixed: autoscaling bounds 2..2) serving a copy of the tiny bundle,
    with a second copy to reload to; (url, bundles)."""
    ray_cluster()
    root = tmp_path_factory.mktemp("ray-serve")
    bundles = (root / "a", root / "b")
    for b in bundles:
        shutil.copytree(tiny_bundle, b)
    port = _free_port()
    settings = Settings(
        onnx_threads=1, prefer_gpu=False, admin_token=ADMIN_TOKEN, watch_interval_s=0.2
    )
    bounds = ray_serve.RayServeSettings(cpus_per_replica=0.5, min_replicas=2, max_replicas=2)
    ray_serve.serve_on_ray(
        bundles[0], port=port, replicas=2, settings=settings, bounds=bounds, blocking=False
    )
    try:
        yield f"http://127.0.0.1:{port}", bundles
    finally:
        ray_serve.shutdown()


@pytest.mark.slow  # ~30 s: Serve's controller, proxy and two replicas loading the bundle
def test_two_serve_replicas_answer_a_segy_search(deployment, sample):
    url, _ = deployment
    replicas = set()
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(8):
            r = client.post(
                "/v1/velocity/search",
                files={"file": ("gather.sgy", sample.segy)},
                params={"k": 3},
            )
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["id"] == sample.model_id
            replicas.add(r.headers[ray_serve.REPLICA_HEADER])
        bad = client.post("/v1/velocity/search", files={"file": ("gather.sgy", b"not segy")})
        assert 400 <= bad.status_code < 500
    assert ray_serve.running_replicas() == 2
    assert 1 <= len(replicas) <= 2


@pytest.mark.slow  # ~15 s on top of the deployment: two rebuilds of 24 models under load
def test_a_reload_reaches_every_replica_without_a_failed_request(
    deployment, tiny_bundle, sample, tmp_path
):
    url, bundles = deployment
    library = [velocity_library(tiny_bundle, tmp_path / "library")]
    report = reloads_under_load(
        url,
        bundles,
        library,
        [segy_search(sample.segy)],
        ADMIN_TOKEN,
        reloads=2,
        concurrency=2,
    )
    assert [r.kind for r in report.reloads] == ["watch", "admin"]
    assert [r.bundle for r in report.reloads] == [str(b.resolve()) for b in bundles]
    assert all(r.replicas == 2 for r in report.reloads)
    assert report.requests > 0
    assert report.failed == 0, report.examples
