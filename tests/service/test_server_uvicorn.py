"""A real uvicorn process on a free localhost port, a real SEG-Y upload over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    """Poll /readyz until 200, the process exits, or the time is up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server was not ready in {START_TIMEOUT_S} s:\n{log_path.read_text()}")


@pytest.fixture
def server(tiny_bundle, tmp_path):
    """`serve()` in a subprocess on a free port; yields (base URL, log path)."""
    port = _free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "SEISLENS_BUNDLE": str(tiny_bundle), "SEISLENS_ONNX_THREADS": "1"}
    code = (
        "import os; from pathlib import Path; from seislens.service.server import serve; "
        f"serve(Path(os.environ['SEISLENS_BUNDLE']), '127.0.0.1', {port}, 'info')"
    )
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log_path)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
