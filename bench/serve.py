"""Serving speed through real HTTP: uvicorn in a subprocess, SEG-Y uploads over loopback.

    python bench/serve.py --bundle artifacts/default
    python bench/serve.py --bundle artifacts/default --run runs/velocity-default   # + torch

Prints a markdown table: p50/p99 latency of one SEG-Y search at concurrency 1,
requests/s at concurrency 8, the server's peak RSS, and the server's own time per
stage (read, embed, search, estimate). With ``--run`` (the training run the bundle was
exported from, and torch installed) it also times the ONNX seismic encoder against
torch eager on the same batch. The client runs on the same machine as the server and
takes part of its CPU: the figures are what one machine serves to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _common import add_server_options, print_table, sequential_posts, server_env
from seislens.data.gather_files import write_segy
from seislens.models.contract import GATHER_SHAPE

from seislens.server_process import running_server

SEARCH = "/v1/velocity/search"


def main() -> None:
    args = _parse()
    gather = _gather(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        segy_path = Path(tmp) / "shot.sgy"
        write_segy(segy_path, gather)
        segy = segy_path.read_bytes()
        rows, stages = _bench_http(args, segy)
    print(
        f"\nbundle {args.bundle}, SEG-Y upload {len(segy) / 1e6:.2f} MB, k={args.k}, "
        f"{os.cpu_count()} CPU cores (client and server share them)\n"
    )
    print_table(["measure", "value", "goal"], rows)
    print("\nserver time per stage (median over the concurrency-1 requests, ms)\n")
    print_table(["stage", "ms"], [[k, f"{v:.2f}"] for k, v in stages.items()])
    print()
    _bench_encoders(args, gather)


# --------------------------------------------------------------------------- HTTP


def _bench_http(args: argparse.Namespace, segy: bytes) -> tuple[list[list[str]], dict[str, float]]:
    """Start the server, measure, stop it; (table rows, stage medians)."""
    with running_server(
        args.bundle, env=server_env(args), log_level="warning", start_timeout_s=args.start_timeout
    ) as server:
        latencies, stages = _sequential(server.url, segy, args.requests, args.k, args.warmup)
        rps, errors = asyncio.run(
            _concurrent(server.url, segy, args.concurrent_requests, args.concurrency, args.k)
        )
        rss, rss_how = _peak_rss_mib(server.pid)
    p50, p99 = np.percentile(latencies, [50, 99])
    rows = [
        [f"latency p50, concurrency 1 ({args.requests} requests)", f"{p50:.1f} ms", "≤ 30 ms"],
        [f"latency p99, concurrency 1 ({args.requests} requests)", f"{p99:.1f} ms", ""],
        [
            f"throughput, concurrency {args.concurrency} ({args.concurrent_requests} requests)",
            f"{rps:.1f} req/s" + (f" ({errors} errors)" if errors else ""),
            "≥ 40 req/s",
        ],
        [f"server {rss_how}", f"{rss:.0f} MiB" if rss else "n/a", ""],
    ]
    return rows, stages


def _sequential(
    url: str, segy: bytes, n: int, k: int, warmup: int
) -> tuple[list[float], dict[str, float]]:
    """n searches one after another on one keep-alive connection: latencies (ms) and
    the server's median time per stage."""
    with httpx.Client(base_url=url, timeout=60) as http:
        return sequential_posts(http, SEARCH, "shot.sgy", segy, {"k": k}, n, warmup)


async def _concurrent(url: str, segy: bytes, n: int, concurrency: int, k: int) -> tuple[float, int]:
    """n searches by ``concurrency`` clients at once: (requests/s, failed requests)."""
    remaining = n
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            r = await http.post(SEARCH, files={"file": ("shot.sgy", segy)}, params={"k": k})
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        for _ in range(concurrency):  # open the connections and warm up
            await http.post(SEARCH, files={"file": ("shot.sgy", segy)}, params={"k": k})
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return n / elapsed, errors


def _peak_rss_mib(pid: int) -> tuple[float | None, str]:
    """The server's peak resident set size in MiB and how it was read: VmHWM from
    /proc on Linux, else psutil's current RSS (a lower bound), else unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "peak RSS (VmHWM)"
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20, "RSS at the end (psutil)"
    except Exception:  # psutil missing or the process gone
        return None, "peak RSS"


# --------------------------------------------------------------------------- encoders


def _bench_encoders(args: argparse.Namespace, gather: np.ndarray) -> None:
    """ONNX Runtime against torch eager: the seismic encoder on the same batch."""
    print("## ONNX Runtime against torch eager (seismic encoder)\n")
    if args.run is None:
        print("skipped: give --run (the training run the bundle was exported from)")
        return
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed (pip install -e '.[train]')")
        return
    from seislens.index.bundle import read_manifest
    from seislens.models.embedders import OnnxEncoder
    from seislens.models.velocity_preprocess import Preprocessing, gather_features
    from seislens.training.branch_training import load_run

    threads = args.onnx_threads or 1
    torch.set_num_threads(threads)
    manifest = read_manifest(args.bundle)
    section = manifest.velocity
    pre = Preprocessing.model_validate(section.preprocessing)
    onnx = OnnxEncoder(
        args.bundle / section.encoders["seismic"].file, ["CPUExecutionProvider"], threads
    )
    model = load_run(args.run, branch="velocity").network
    rows = []
    for batch in (1, args.batch):
        x = gather_features(np.repeat(gather[None], batch, axis=0), pre.gather)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            t_torch = _time(lambda xt=xt: model.encode_seismic(xt), args.repeats)
        t_onnx = _time(lambda x=x: onnx(x), args.repeats)
        rows.append(
            [
                str(batch),
                f"{t_onnx * 1000:.2f}",
                f"{t_torch * 1000:.2f}",
                f"{t_torch / t_onnx:.2f}×",
            ]
        )
    print(f"{threads} threads each, median of {args.repeats} runs (ms per batch); goal ≥ 2×\n")
    print_table(["batch", "ONNX Runtime", "torch eager", "speed-up"], rows)


def _time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after two warm-up runs."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- helpers


def _gather(data: Path | None) -> np.ndarray:
    """A real gather (sample 0 of an OpenFWI folder) or, without one, a synthetic one."""
    if data is not None:
        files = sorted(data.glob("data*.npy"))
        if not files:
            sys.exit(f"{data} holds no data*.npy files (an OpenFWI-format folder expected)")
        return np.asarray(np.load(files[0], mmap_mode="r")[0], dtype=np.float32)
    print("no --data folder: uploading a synthetic random gather")
    return np.random.default_rng(0).standard_normal(GATHER_SHAPE).astype(np.float32)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    default_data = Path("data/test/flatvel-a")
    p.add_argument(
        "--data",
        type=Path,
        default=default_data if default_data.is_dir() else None,
        help="OpenFWI folder whose first gather is uploaded",
    )
    p.add_argument("--requests", type=int, default=200, help="searches at concurrency 1")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument(
        "--concurrent-requests", type=int, default=400, help="searches at the given concurrency"
    )
    p.add_argument("--k", type=int, default=10)
    add_server_options(p)
    p.add_argument(
        "--run", type=Path, default=None, help="training run for the ONNX vs torch comparison"
    )
    p.add_argument("--batch", type=int, default=16, help="batch of the encoder comparison")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    if not (args.bundle / "manifest.json").exists():
        p.error(f"{args.bundle} is not a bundle (no manifest.json); pass --bundle")
    for name in ("requests", "concurrency", "concurrent_requests", "repeats", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


if __name__ == "__main__":
    main()
