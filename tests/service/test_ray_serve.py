"""The service replicated on Ray Serve (skipped without the cluster extra): two
replicas of the FastAPI app answer a SEG-Y search through Serve's HTTP proxy."""

from __future__ import annotations

import socket

import httpx
import pytest
from ray_session import SKIP_REASON, ray_cluster
from seislens.service.settings import Settings

pytest.importorskip("ray", reason=SKIP_REASON)

from seislens.service import ray_serve


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


@pytest.mark.slow  # ~30 s: Serve's controller, proxy and two replicas loading the bundle
def test_two_serve_replicas_answer_a_segy_search(tiny_bundle, sample):
    ray_cluster()
    port = _free_port()
    settings = Settings(onnx_threads=1, prefer_gpu=False)
    bounds = ray_serve.RayServeSettings(cpus_per_replica=0.5)
    ray_serve.serve_on_ray(
        tiny_bundle, port=port, replicas=2, settings=settings, bounds=bounds, blocking=False
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for _ in range(4):
                r = client.post(
                    "/v1/velocity/search",
                    files={"file": ("gather.sgy", sample.segy)},
                    params={"k": 3},
                )
                assert r.status_code == 200, r.text
                assert r.json()["results"][0]["id"] == sample.model_id
            bad = client.post("/v1/velocity/search", files={"file": ("gather.sgy", b"not segy")})
            assert 400 <= bad.status_code < 500
    finally:
        ray_serve.shutdown()
