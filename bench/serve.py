"""Serving speed through real HTTP: uvicorn in a subprocess, SEG-Y uploads over loopback,
against the in-process floor.

    python bench/serve.py --bundle artifacts/default
    python bench/serve.py --bundle artifacts/default --run runs/velocity-default   # + torch

Prints a markdown table: the in-process floor (the same file read, preprocessed,
embedded, searched and estimated, its SNR and familiarity computed, in this process with
the server's own functions and settings, no HTTP), the p50/p99 latency of one SEG-Y
search at concurrency 1 uploaded as a multipart ``file`` and as a raw
``application/octet-stream`` body, each one's p50 against the floor (goal ≤ 1.5×),
requests/s at concurrency 8, the server's peak RSS, and the server's own time per stage
(read, embed, search, estimate). The floor and the two uploads take turns of ten
requests, so that a change of load on a shared machine falls on all three alike. With
``--run`` (the training run the bundle was exported from, and torch installed) it also
times the ONNX seismic encoder against torch eager on the same batch. The client runs on
the same machine as the server and takes part of its CPU: the figures are what one
machine serves to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
from _common import (
    RAW_BODY,
    add_server_options,
    benchmarked_server,
    median_stages,
    print_table,
    server_env,
    timed_post,
)
from seislens.data.gather_files import read_gather, write_segy
from seislens.models.branches import VELOCITY
from seislens.models.contract import GATHER_SHAPE
from seislens.models.gather_quality import lateral_snr_db
from seislens.service.settings import Settings
from seislens.service.state import load_bundle
from seislens.service.velocity_familiarity import query_familiarity
from seislens.service.velocity_search import search_gather

SEARCH = "/v1/velocity/search"
FLOOR, MULTIPART, RAW = "in-process floor", "multipart upload", "raw-body upload"
RATIO_GOAL = 1.5
TURN = 10
"""Requests of one kind in a row before the next kind's turn (concurrency 1)."""
"""Goal: an HTTP search's p50 at most this many times the in-process floor's."""


def main() -> None:
    args = _parse()
    gather = _gather(args)
    with tempfile.TemporaryDirectory() as tmp:
        segy_path = Path(tmp) / "shot.sgy"
        write_segy(segy_path, gather)
        segy = segy_path.read_bytes()
        rows, stages = _bench_http(args, segy, segy_path)
    print(
        f"\nbundle {args.bundle}, SEG-Y upload {len(segy) / 1e6:.2f} MB, k={args.k}, "
        f"{os.cpu_count()} CPU cores (client and server share them)\n"
    )
    print_table(["measure", "value", "goal"], rows)
    print("\nserver time per stage (median over the concurrency-1 requests, ms)\n")
    print_table(
        ["stage", MULTIPART, RAW],
        [[k, f"{v:.2f}", f"{stages[RAW][k]:.2f}"] for k, v in stages[MULTIPART].items()],
    )
    print()
    _bench_encoders(args, gather)


# --------------------------------------------------------------------------- HTTP


def _bench_http(
    args: argparse.Namespace, segy: bytes, segy_path: Path
) -> tuple[list[list[str]], dict[str, dict[str, float]]]:
    """Start the server, measure, stop it; (table rows, stage medians per upload kind)."""
    with benchmarked_server(args) as server, _in_process_search(args) as floor:
        latencies, stages = _sequential(server.url, segy, segy_path, floor, args)
        throughput = {
            kind: asyncio.run(
                _concurrent(
                    server.url, segy, args.concurrent_requests, args.concurrency, args.k, raw
                )
            )
            for kind, raw in ((MULTIPART, False), (RAW, True))
        }
        rss, rss_how = _peak_rss_mib(server.pid)
    p50 = {kind: float(np.percentile(ms, 50)) for kind, ms in latencies.items()}
    rows = []
    for kind, ms in latencies.items():
        goal = "≤ 30 ms" if kind != FLOOR else ""
        rows.append([f"{kind} p50, concurrency 1 ({args.requests} requests)", _ms(p50[kind]), goal])
        rows.append([f"{kind} p99, concurrency 1", _ms(float(np.percentile(ms, 99))), ""])
    for kind in (MULTIPART, RAW):
        ratio = p50[kind] / p50[FLOOR]
        met = "met" if ratio <= RATIO_GOAL else "missed"
        rows.append([f"{kind} p50 / floor p50", f"{ratio:.2f}×", f"≤ {RATIO_GOAL}× ({met})"])
    for kind, (rps, errors) in throughput.items():
        rows.append(
            [
                f"{kind} throughput, concurrency {args.concurrency} "
                f"({args.concurrent_requests} requests)",
                f"{rps:.1f} req/s" + (f" ({errors} errors)" if errors else ""),
                "≥ 40 req/s",
            ]
        )
    rows.append([f"server {rss_how}", f"{rss:.0f} MiB" if rss else "n/a", ""])
    return rows, stages


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


@contextlib.contextmanager
def _in_process_search(args: argparse.Namespace) -> Iterator[Callable[[Path], object]]:
    """The floor: a search of a gather file with no HTTP — the same bundle, settings
    and functions as the server's route (read_gather, then search_gather: preprocess,
    embed, search, estimate; then the SNR estimate and the familiarity, which every
    answer carries). What it leaves out is the serving: the upload, the parse worker's
    process hop, the answer's assembly and JSON, and HTTP."""
    env = server_env(args)
    settings = Settings(
        bundle=args.bundle,
        prefer_gpu=args.gpu,
        **{
            name: int(env[f"SEISLENS_{name.upper()}"])
            for name in ("onnx_threads", "faiss_threads")
            if f"SEISLENS_{name.upper()}" in env
        },
    )
    bundle = load_bundle(args.bundle, settings)
    branch = bundle.branches[VELOCITY.name]

    def search(path: Path) -> object:
        upload = read_gather(path, path.name)
        outcome = search_gather(branch, upload.data, args.k, None, settings.estimate_temperature)
        best = float(outcome.scores[0]) if len(outcome.scores) else None
        snr_db = lateral_snr_db(upload.data)
        return query_familiarity(best, branch, upload.partial_geometry, snr_db, outcome.query)

    try:
        yield search
    finally:
        bundle.retire()  # closes it (no lease is held)


def _sequential(
    url: str,
    segy: bytes,
    segy_path: Path,
    floor: Callable[[Path], object],
    args: argparse.Namespace,
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """``args.requests`` in-process searches, multipart uploads and raw-body uploads
    (after ``args.warmup`` unmeasured ones of each), on one keep-alive connection, in
    turns of :data:`TURN` of a kind: latencies (ms) per kind and the server's median
    time per stage per upload kind. Each kind mostly follows itself (as a client
    sending one kind does: what the server does after an answer falls on the next
    request of the same kind), while a change of load falls on all three alike."""
    latencies: dict[str, list[float]] = {FLOOR: [], MULTIPART: [], RAW: []}
    timings: dict[str, list[dict[str, float]]] = {MULTIPART: [], RAW: []}
    params = {"k": args.k}

    def one(kind: str, http: httpx.Client) -> tuple[float, dict[str, float] | None]:
        if kind == FLOOR:
            t0 = time.perf_counter()
            floor(segy_path)
            return (time.perf_counter() - t0) * 1000, None
        return timed_post(http, SEARCH, "shot.sgy", segy, params, raw=kind == RAW)

    with httpx.Client(base_url=url, timeout=60) as http:
        for kind in latencies:
            for _ in range(args.warmup):
                one(kind, http)
        for start in range(0, args.requests, TURN):
            for kind in latencies:
                for _ in range(min(TURN, args.requests - start)):
                    ms, timing = one(kind, http)
                    latencies[kind].append(ms)
                    if timing is not None:
                        timings[kind].append(timing)
    return latencies, {kind: median_stages(t) for kind, t in timings.items()}


async def _concurrent(
    url: str, segy: bytes, n: int, concurrency: int, k: int, raw: bool
) -> tuple[float, int]:
    """n searches by ``concurrency`` clients at once, as multipart or (``raw``) raw-body
    uploads: (requests/s, failed requests)."""
    remaining = n
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if raw:
        post = {"content": segy, "headers": RAW_BODY, "params": {"k": k, "filename": "shot.sgy"}}
    else:
        post = {"files": {"file": ("shot.sgy", segy)}, "params": {"k": k}}

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            r = await http.post(SEARCH, **post)
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        for _ in range(concurrency):  # open the connections and warm up
            await http.post(SEARCH, **post)
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


def _gather(args: argparse.Namespace) -> np.ndarray:
    """The uploaded gather: sample 0 of an OpenFWI folder (``--data``), else the gather
    of the ``--segy`` file, else (neither there) a synthetic random one."""
    if args.data is not None:
        files = sorted(args.data.glob("data*.npy"))
        if not files:
            sys.exit(f"{args.data} holds no data*.npy files (an OpenFWI-format folder expected)")
        return np.asarray(np.load(files[0], mmap_mode="r")[0], dtype=np.float32)
    if args.segy.is_file():
        return read_gather(args.segy).data
    print(f"no --data folder and no {args.segy}: uploading a synthetic random gather")
    return np.random.default_rng(0).standard_normal(GATHER_SHAPE).astype(np.float32)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    p.add_argument(
        "--segy",
        type=Path,
        default=Path("examples/curvefault-b_test0.sgy"),
        help="gather file whose gather is uploaded (rewritten as SEG-Y)",
    )
    p.add_argument(
        "--data", type=Path, default=None, help="OpenFWI folder whose first gather is uploaded"
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
