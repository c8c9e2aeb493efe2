"""Start, wait for and stop a uvicorn SeisLens server in a subprocess (bench helpers)."""

import argparse
import os
import subprocess
import sys
import time

import httpx


def _start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    env = {**os.environ, "SEISLENS_PREFER_GPU": "true" if args.gpu else "false"}
    if args.onnx_threads is not None:
        env["SEISLENS_ONNX_THREADS"] = str(args.onnx_threads)
    if getattr(args, "faiss_threads", None) is not None:
        env["SEISLENS_FAISS_THREADS"] = str(args.faiss_threads)
    code = (
        "import sys; from pathlib import Path; from seislens.service.server import serve; "
        "serve(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), 'warning')"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(args.bundle), str(port)], env=env)


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with status {proc.returncode} (see its log above)")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(proc)
    sys.exit(f"the server was not ready within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
