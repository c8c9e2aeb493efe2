"""What the serving benchmarks share: the server's settings from the command line, and
Markdown tables."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx


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


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table on stdout (cells with '|' or newlines made safe)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |")


def sequential_posts(
    http: httpx.Client, route: str, filename: str, data: bytes, params: dict, n: int, warmup: int
) -> tuple[list[float], dict[str, float]]:
    """``n`` uploads to ``route`` one after another (after ``warmup`` unmeasured ones) on
    one keep-alive connection: client latencies (ms) and the server's median time per
    stage (its ``query.timing``, ms). A failed answer stops the benchmark."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        r = http.post(route, files={"file": (filename, data)}, params=params)
        elapsed = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            sys.exit(f"{route} failed ({r.status_code}): {r.text}")
        if i >= warmup:
            latencies.append(elapsed)
            timings.append(r.json()["query"]["timing"])
    stages = {
        key.removesuffix("_ms"): statistics.median(t[key] for t in timings) for key in timings[0]
    }
    return latencies, stages
