"""A real uvicorn SeisLens server in a subprocess, for tests (start, wait, stop)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 90


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_server(bundle: Path, log_path: Path, **env: str) -> Iterator[str]:
    """`serve()` on ``bundle`` in a subprocess on a free port, ready; yields its base URL.

    Args:
        bundle: the bundle to serve.
        log_path: where the server's output goes.
        env: extra ``SEISLENS_*`` settings (e.g. ``SEISLENS_WATCH_INTERVAL_S="0.2"``).
    """
    port = free_port()
    env = {**os.environ, "SEISLENS_BUNDLE": str(bundle), "SEISLENS_ONNX_THREADS": "1", **env}
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
