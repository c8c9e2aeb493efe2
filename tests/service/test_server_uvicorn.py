"""A real uvicorn process on a free localhost port, a real SEG-Y upload over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from seislens.server_process import running_server


@pytest.fixture
def server(tiny_bundle, tmp_path):
    """`serve()` in a subprocess on a free port; yields (base URL, log path)."""
    log_path = tmp_path / "server.log"
    with running_server(tiny_bundle, log_path) as running:
        yield running.url, log_path


def test_segy_upload_through_uvicorn(server, sample, tmp_path):
    url, log_path = server
    path: Path = tmp_path / "shot.sgy"
    path.write_bytes(sample.segy)  # written by segyio (write_segy) from a real gather
    with httpx.Client(base_url=url, timeout=30) as http, open(path, "rb") as fh:
        r = http.post("/v1/velocity/search", files={"file": ("shot.sgy", fh)}, params={"k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["results"][0]["id"] == sample.model_id
        assert body["query"]["format"] == "segy"
        png = http.get(body["estimated_model"]["url"], params={"format": "png"})
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        bad = http.post("/v1/velocity/search", files={"file": ("x.sgy", b"")})
        assert bad.status_code == 422 and "empty" in bad.json()["detail"]
        assert http.get("/healthz").status_code == 200
    log = log_path.read_text()
    assert "ONNX Runtime execution provider: CPUExecutionProvider" in log
    assert "FAISS index on GPU: " in log
