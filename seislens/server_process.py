"""A real uvicorn SeisLens server in a subprocess: start, wait until ready, stop.

Used by the tests that need a real server and by the serving benchmarks, so both start
it the same way (``seislens.service.server.serve`` on a free localhost port).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SERVE_CODE = (
    "import sys; from pathlib import Path; from seislens.service.server import serve; "
    "serve(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), sys.argv[3])"
)


@dataclass(frozen=True)
class RunningServer:
    """A started server: its base URL and process id."""

    url: str
    pid: int


class ServerStartError(RuntimeError):
    """The server exited, or was not ready in time (the message holds its log tail)."""


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _log_tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return "(its output went to this terminal)"
    return log_path.read_text()[-4000:]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def running_server(
    bundle: Path,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    log_level: str = "info",
    start_timeout_s: float = 90.0,
) -> Iterator[RunningServer]:
    """Serve ``bundle`` in a subprocess until the block ends; yields it once ready.

    Args:
        bundle: the bundle folder to serve.
        log_path: where the server's stdout and stderr go (None: this process's).
        env: extra environment, e.g. ``{"SEISLENS_WATCH_INTERVAL_S": "0.2"}``.
        log_level: uvicorn's log level.
        start_timeout_s: how long /readyz may take to answer 200, in seconds.

    Raises:
        ServerStartError: the server exited or was not ready within the timeout.
    """
    port = free_port()
    full_env = {**os.environ, "SEISLENS_ONNX_THREADS": "1", **(env or {})}
    argv = [sys.executable, "-c", SERVE_CODE, str(bundle), str(port), log_level]
    out: IO[str] | None = open(log_path, "w") if log_path is not None else None  # noqa: SIM115
    try:
        proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if out is not None:
            out.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _ready(url):
            if proc.poll() is not None:
                raise ServerStartError(
                    f"the server exited with {proc.returncode}:\n{_log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the server was not ready in {start_timeout_s:.0f} s:\n{_log_tail(log_path)}"
                )
            time.sleep(0.2)
        yield RunningServer(url, proc.pid)
    finally:
        _stop(proc)
