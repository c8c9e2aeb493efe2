"""What the serving benchmarks share: the server's settings from the command line, and
Markdown tables."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import AbstractContextManager

import httpx

from seislens.server_process import RunningServer, running_server


def add_server_options(p: argparse.ArgumentParser, faiss_threads: bool = True) -> None:
    """The benchmarked server's options: ``--onnx-threads``, ``--faiss-threads``,
    ``--gpu`` and ``--start-timeout`` (seconds)."""
    p.add_argument(
        "--onnx-threads",
        type=int,
        default=None,
        help="SEISLENS_ONNX_THREADS for the server (default: the service's, 1)",
    )
    if faiss_threads:
        p.add_argument(
            "--faiss-threads",
            type=int,
            default=None,
            help="SEISLENS_FAISS_THREADS for the server (default: the service's, 1)",
        )
    p.add_argument("--gpu", action="store_true", help="let the server use CUDA / a GPU index")
    p.add_argument("--start-timeout", type=float, default=120)


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """``SEISLENS_*`` settings of the benchmarked server from ``--gpu``, ``--onnx-threads``
    and (where the benchmark has it) ``--faiss-threads``."""
    env = {"SEISLENS_PREFER_GPU": "true" if args.gpu else "false"}
    if args.onnx_threads is not None:
        env["SEISLENS_ONNX_THREADS"] = str(args.onnx_threads)
    if getattr(args, "faiss_threads", None) is not None:
        env["SEISLENS_FAISS_THREADS"] = str(args.faiss_threads)
    return env


def benchmarked_server(args: argparse.Namespace) -> AbstractContextManager[RunningServer]:
    """The benchmarked uvicorn server on ``args.bundle`` with :func:`server_env`'s
    settings, started (``--start-timeout``) on entering and stopped on leaving."""
    return running_server(
        args.bundle, env=server_env(args), log_level="warning", start_timeout_s=args.start_timeout
    )


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table on stdout (cells with '|' or newlines made safe)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |")


RAW_BODY = {"content-type": "application/octet-stream"}
"""Headers of an upload sent as the whole request body (no multipart)."""


def timed_post(
    http: httpx.Client, route: str, filename: str, data: bytes, params: dict, raw: bool = False
) -> tuple[float, dict[str, float]]:
    """One upload to ``route``, as a multipart ``file`` or (``raw``) the whole body as
    application/octet-stream named by a ``filename`` query parameter: the client's
    latency (ms) and the server's ``query.timing``. A failed answer stops the benchmark."""
    t0 = time.perf_counter()
    if raw:
        r = http.post(
            route, content=data, headers=RAW_BODY, params={**params, "filename": filename}
        )
    else:
        r = http.post(route, files={"file": (filename, data)}, params=params)
    elapsed = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        sys.exit(f"{route} failed ({r.status_code}): {r.text}")
    return elapsed, r.json()["query"]["timing"]


def median_stages(timings: list[dict[str, float]]) -> dict[str, float]:
    """The median of each ``*_ms`` stage over the answers' ``query.timing``."""
    return {
        key.removesuffix("_ms"): statistics.median(t[key] for t in timings) for key in timings[0]
    }


def sequential_posts(
    http: httpx.Client, route: str, filename: str, data: bytes, params: dict, n: int, warmup: int
) -> tuple[list[float], dict[str, float]]:
    """``n`` uploads to ``route`` one after another (after ``warmup`` unmeasured ones) on
    one keep-alive connection: client latencies (ms) and the server's median time per
    stage (its ``query.timing``, ms). A failed answer stops the benchmark."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    for i in range(warmup + n):
        elapsed, timing = timed_post(http, route, filename, data, params)
        if i >= warmup:
            latencies.append(elapsed)
            timings.append(timing)
    return latencies, median_stages(timings)
