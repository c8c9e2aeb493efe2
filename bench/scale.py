"""Past one machine: rebuild throughput on Ray Data, sharded search latency, and
reloads under load on Ray Serve replicas.

    python bench/scale.py --bundle artifacts/default --models 4000 --vectors 100000
    python bench/scale.py --skip-rebuild --skip-search --reloads 5   # the reloads alone

Rebuild: one velocity library of ``--models`` models (the bundle's own indexed models,
tiled with a small offset per copy; embedding cost does not depend on the content) is
indexed into fresh copies of the bundle, with the same parts (``--part-size``), by each
of ``--engines``: in this process (``local``; ONNX Runtime picks its threads: one a
core), the same with one ONNX thread pinned to one CPU (``local-1thread``: what one actor
has; a process affinity alone does not bind ONNX Runtime's own threads, which it pins to
the cores itself), and on a local Ray cluster of
``--cpus`` CPUs with 1 and with 2 embedding actors (``ray-1``, ``ray-2``; one ONNX thread
each; a tiny Ray Data job first, untimed, so its one-time start-up is not in ``ray-1``).
Printed per engine: seconds, models/s, and where they went (the embedding call, when its
first and last part file was written, the rest: discovery, assembly, index, switch); the
speed-up of 2 actors over 1 and the overhead of 1 actor over each local build; the
indexes are checked equal. With ``--rounds N`` the engines take N turns, each round
starting one engine later (a drift of a shared machine falls on all of them): the
figures are medians, and every round's ratios are printed beside them.

Search: ``--vectors`` unit vectors (random; exact search does not care what they are)
in one exact index, the same split into ``--shards`` shards searched in this process,
and the same shards in one Ray actor each. Queries are asked one at a time
(``--queries``); printed: p50/p99 ms a query and whether the merged top-10 ids and
scores equal the single index's. FAISS runs on ``--threads`` threads.

Reloads: two copies of the bundle; 2 Serve replicas (autoscaling bounds 2..2,
``--cpus-per-replica`` each, manifest watch 0.2 s) serve the first while
``--reload-concurrency`` clients send SEG-Y searches (a noise gather, top-3) without a
pause; ``--reloads`` reloads, in turn a rebuild of the served bundle's velocity index
(picked up by the replicas' manifest watchers) and a rebuild of the other copy followed
by one admin reload to it (carried to the other replica by the bundle board). After each,
``GET /v1/bundle`` is asked until both replicas (the ``X-SeisLens-Replica`` header) serve
the new bundle and index. Printed: per reload, its kind and the seconds until every
replica served it; requests sent and failed (anything but the expected 200). The code is
seislens/ray_reload_drill.py, also run by tests/service/test_ray_serve.py.

Tables go to stdout, the figures to ``bench/out/scale.json``. Needs the cluster extra,
except with ``--no-ray`` (the local build and the in-process shards only; no reloads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from seislens.index.builder import BuildConfig, build
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.index.shards import ShardedIndex, ShardWriter
from seislens.index.vector_index import VectorIndex
from seislens.models.branches import VELOCITY

OUT = Path(__file__).resolve().parent / "out" / "scale.json"


def make_library(bundle: Path, root: Path, n: int) -> Path:
    """A library folder of ``n`` models tiled from the bundle's indexed models."""
    entry = read_manifest(bundle).indexes["velocity"]
    base = np.load(bundle / entry.path / "models.npy").astype(np.float32)
    reps = -(-n // len(base))
    tiled = np.concatenate([base + 3.0 * r for r in range(reps)])[:n]
    (root / "bench").mkdir(parents=True)
    np.save(root / "bench" / "model1.npy", tiled)
    return root


class TimedParts:
    """An embedding engine timed: seconds of its call, and when (s from the call's
    start) its first and last part files were written."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.figures: dict[str, float] = {}

    def __call__(self, job: Any) -> list[Path]:
        start, wall = time.perf_counter(), time.time()
        parts = self.inner(job)
        mtimes = sorted(p.stat().st_mtime for p in parts)
        self.figures = {
            "embed_s": time.perf_counter() - start,
            "first_part_s": mtimes[0] - wall,
            "last_part_s": mtimes[-1] - wall,
            "parts": len(parts),
        }
        return parts


def timed_build(
    bundle: Path, library: Path, part_size: int, workers: int | None, cpus: set[int] | None = None
) -> dict[str, float]:
    """Seconds to build ``bundle``'s velocity index (None workers: the local engine, on
    the CPUs ``cpus`` if given, one ONNX thread a CPU), and where they went:
    ``embed_s`` (the embedding engine's call), ``first_part_s`` / ``last_part_s`` (its
    first and last part file written, from the call's start), ``rest_s`` (discovery,
    assembly, index, switch)."""
    from seislens.index.builder import _embed_parts

    cfg = BuildConfig(part_size=part_size, threads=0 if cpus is None else len(cpus))
    if workers is None:
        parts = TimedParts(_embed_parts)
    else:
        from seislens.index.ray_build import RayEngine, RayParts

        parts = TimedParts(RayParts(RayEngine(workers=workers)))
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    try:
        start = time.perf_counter()
        build(bundle, VELOCITY, [library], cfg, progress=False, embed_parts=parts)
        total = time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, before)
    return {"total_s": total, **parts.figures, "rest_s": total - parts.figures["embed_s"]}


def warm_ray_data() -> float:
    """Seconds of a first, tiny Ray Data job (its one-time start-up, kept out of the
    timed builds)."""
    import ray.data

    start = time.perf_counter()
    ray.data.range(4, override_num_blocks=2).map_batches(lambda b: b).take_all()
    return time.perf_counter() - start


def vectors_of(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of a fixed query against the bundle's whole velocity index."""
    lib = LoadedLibrary.open(bundle, read_manifest(bundle), VELOCITY)
    try:
        q = np.random.default_rng(0).standard_normal((4, lib.index.dim)).astype(np.float32)
        scores, ids = lib.search(q, len(lib))
        return ids, scores
    finally:
        lib.close()


def rebuild_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    library = make_library(args.bundle, work / "lib", args.models)
    engines: list[tuple[str, int | None, set[int] | None]] = [
        ("local", None, None),
        ("local-1thread", None, {min(os.sched_getaffinity(0))}),
    ]
    out: dict[str, Any] = {"models": args.models, "part_size": args.part_size}
    if not args.no_ray:
        engines += [("ray-1", 1, None), ("ray-2", 2, None)]
        out["ray_data_warm_up_s"] = warm_ray_data()
    engines = [e for e in engines if e[0] in args.engines.split(",")]
    rounds: list[dict[str, dict[str, float]]] = []
    results = []
    for r in range(args.rounds):  # each round starts one engine later: drift falls on all
        turn = engines[r % len(engines) :] + engines[: r % len(engines)]
        runs: dict[str, dict[str, float]] = {}
        for name, workers, cpus in turn:
            copy = work / f"bundle-{name}"
            shutil.copytree(args.bundle, copy)
            runs[name] = timed_build(copy, library, args.part_size, workers, cpus)
            results.append(vectors_of(copy))
            shutil.rmtree(copy)
            print(f"round {r + 1} {name}: {runs[name]}", file=sys.stderr)
        rounds.append({name: runs[name] for name, *_ in engines})
    ids0, scores0 = results[0]
    equal = all(np.array_equal(ids0, i) and np.allclose(scores0, s, atol=1e-5) for i, s in results)
    phases = {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        for name in rounds[0]
    }
    seconds = {k: v["total_s"] for k, v in phases.items()}
    out |= {
        "rounds": rounds,
        "seconds": seconds,
        "phases": phases,
        "models_per_s": {k: args.models / v for k, v in seconds.items()},
        "same_index": bool(equal),
    }
    ratios: dict[str, list[float]] = {}
    if {"ray-1", "ray-2"} <= set(seconds):
        ratios["speedup_2_over_1"] = [r["ray-1"]["total_s"] / r["ray-2"]["total_s"] for r in rounds]
        ratios["embed_speedup_2_over_1"] = [
            r["ray-1"]["embed_s"] / r["ray-2"]["embed_s"] for r in rounds
        ]
    for local in ("local", "local-1thread") if "ray-1" in seconds else ():
        if local in seconds:
            ratios[f"overhead_1_over_{local}"] = [
                r["ray-1"]["total_s"] / r[local]["total_s"] - 1 for r in rounds
            ]
    for key, values in ratios.items():  # the median round's figure, and every round's
        out[key] = statistics.median(values)
        out[f"{key}_per_round"] = values
    return out


def latencies(
    index: Any, queries: np.ndarray, k: int
) -> tuple[list[float], np.ndarray, np.ndarray]:
    """ms a query (one at a time), and the stacked (scores, ids)."""
    times, scores, ids = [], [], []
    for q in queries:
        start = time.perf_counter()
        s, i = index.search(q[None], k)
        times.append((time.perf_counter() - start) * 1e3)
        scores.append(s)
        ids.append(i)
    return times, np.concatenate(scores), np.concatenate(ids)


def search_bench(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.vectors, 256)).astype(np.float32)
    queries = rng.standard_normal((args.queries, 256)).astype(np.float32)
    ids = np.arange(args.vectors, dtype=np.int64)
    single = VectorIndex(256)
    single.add(x, ids)
    writer = ShardWriter(single.empty_like(), args.shards)
    writer.add(x, ids)
    out: dict[str, Any] = {"vectors": args.vectors, "shards": args.shards, "k": 10}
    with tempfile.TemporaryDirectory() as tmp:
        writer.save(Path(tmp))
        out["bytes_per_vector"] = {
            "single": (Path(tmp) / "shards" / "vectors-000.faiss").stat().st_size
            * args.shards
            / args.vectors
        }
        candidates = {"single": single, "in-process": ShardedIndex(writer.shards)}
        actors = None
        if not args.no_ray:
            from seislens.index.ray_shards import ActorShardedIndex

            actors = ActorShardedIndex(Path(tmp), cpus_per_shard=0.5)
            candidates["actors"] = actors
        ref = None
        for name, index in candidates.items():
            latencies(index, queries[:10], 10)  # warm up
            t, s, i = latencies(index, queries, 10)
            ref = ref or (s, i)
            out[name] = {
                "p50_ms": statistics.median(t),
                "p99_ms": float(np.percentile(t, 99)),
                "identical": bool(np.array_equal(ref[1], i) and np.allclose(ref[0], s, atol=1e-6)),
            }
            print(f"{name}: p50 {out[name]['p50_ms']:.2f} ms", file=sys.stderr)
        if actors is not None:
            actors.close()
            out["fan_out_added_p50_ms"] = out["actors"]["p50_ms"] - out["single"]["p50_ms"]
            out["round_trip"] = actor_round_trip(args.shards, queries[:200])
    return out


def actor_round_trip(shards: int, queries: np.ndarray) -> dict[str, float]:
    """The fan-out's own cost: p50/p99 ms of a search over `shards` actors that hold 100
    vectors each, so that the actor calls and the merge are all that is timed."""
    from seislens.index.ray_shards import ActorShardedIndex

    rng = np.random.default_rng(1)
    x = rng.standard_normal((100 * shards, 256)).astype(np.float32)
    writer = ShardWriter(VectorIndex(256), shards)
    writer.add(x, np.arange(len(x), dtype=np.int64))
    with tempfile.TemporaryDirectory() as tmp:
        writer.save(Path(tmp))
        actors = ActorShardedIndex(Path(tmp), cpus_per_shard=0.5)
        try:
            latencies(actors, queries[:10], 10)
            t, _, _ = latencies(actors, queries, 10)
        finally:
            actors.close()
    out = {"p50_ms": statistics.median(t), "p99_ms": float(np.percentile(t, 99))}
    print(f"round trip, {shards} near-empty actors: p50 {out['p50_ms']:.2f} ms", file=sys.stderr)
    return out


def reload_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Reloads under load on 2 Serve replicas (see the module docstring)."""
    import socket

    from seislens.data.gather_files import write_segy
    from seislens.service.ray_serve import RayServeSettings, serve_on_ray, shutdown
    from seislens.service.settings import Settings

    from seislens.ray_reload_drill import reloads_under_load, segy_search
    from seislens.rebuild_drill import velocity_library

    bundles = (work / "serve-a", work / "serve-b")
    for b in bundles:
        shutil.copytree(args.bundle, b)
    library = [velocity_library(args.bundle, work / "reload-library")]
    gather = np.random.default_rng(0).standard_normal((5, 1000, 70)).astype(np.float32)
    write_segy(work / "query.sgy", gather)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "bench-token"
    settings = Settings(onnx_threads=1, prefer_gpu=False, admin_token=token, watch_interval_s=0.2)
    bounds = RayServeSettings(
        min_replicas=2, max_replicas=2, cpus_per_replica=args.cpus_per_replica
    )
    start = time.perf_counter()
    serve_on_ray(
        bundles[0], port=port, replicas=2, settings=settings, bounds=bounds, blocking=False
    )
    started_s = time.perf_counter() - start
    try:
        report = reloads_under_load(
            f"http://127.0.0.1:{port}",
            bundles,
            library,
            [segy_search((work / "query.sgy").read_bytes())],
            token,
            reloads=args.reloads,
            replicas=2,
            concurrency=args.reload_concurrency,
        )
    finally:
        shutdown()
    return {
        "replicas": 2,
        "library_models": int(
            sum(len(np.load(f, mmap_mode="r")) for f in library[0].rglob("*.npy"))
        ),
        "concurrency": args.reload_concurrency,
        "deploy_s": started_s,
        "reloads": [vars(r) for r in report.reloads],
        "requests": report.requests,
        "failed": report.failed,
        "outcomes": report.outcomes,
        "failure_examples": report.examples,
    }


def search_table(s: dict[str, Any]) -> None:
    """Print the search figures as a Markdown table."""
    print(
        f"Exact search, {s['vectors']} vectors, {s['shards']} shards, top-10, one query a call:\n"
    )
    print("| index | p50 ms | p99 ms | identical to single |\n|---|---|---|---|")
    for name in ("single", "in-process", "actors"):
        if name in s:
            f = s[name]
            print(f"| {name} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['identical']} |")
    if "fan_out_added_p50_ms" in s:
        print(f"\nfan-out over actors adds {s['fan_out_added_p50_ms']:.2f} ms p50")
        rt = s["round_trip"]
        print(
            f"fan-out round trip (near-empty shards): p50 {rt['p50_ms']:.2f} ms, "
            f"p99 {rt['p99_ms']:.2f} ms"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    p.add_argument("--models", type=int, default=4000, help="library size of the rebuild")
    p.add_argument("--part-size", type=int, default=250, help="models per resumable part")
    p.add_argument(
        "--rounds", type=int, default=1, help="rebuild rounds (the engines take turns; medians)"
    )
    p.add_argument("--vectors", type=int, default=100_000, help="vectors of the search bench")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="FAISS threads")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the Ray cluster")
    p.add_argument("--reloads", type=int, default=5, help="reloads on 2 Serve replicas")
    p.add_argument("--reload-concurrency", type=int, default=4, help="clients during reloads")
    p.add_argument("--cpus-per-replica", type=float, default=0.5)
    p.add_argument(
        "--engines",
        default="local,local-1thread,ray-1,ray-2",
        help="rebuild engines, comma-separated (local-1thread: one ONNX thread on one CPU)",
    )
    p.add_argument("--skip-rebuild", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--skip-reload", action="store_true")
    p.add_argument("--no-ray", action="store_true", help="only the in-process figures")
    args = p.parse_args()

    faiss.omp_set_num_threads(args.threads)
    load = os.getloadavg()[0]
    if not args.no_ray:
        import ray

        # a running cluster, else a new local one ("local": never a stale
        # /tmp/ray/ray_current_cluster left by an earlier session)
        address = os.environ.get("RAY_ADDRESS")
        local = {} if address else {"num_cpus": args.cpus, "include_dashboard": False}
        ray.init(address=address or "local", log_to_driver=False, **local)
    figures: dict[str, Any] = {"cpus": args.cpus, "load_average_at_start": load}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_rebuild:
            figures["rebuild"] = rebuild_bench(args, Path(tmp))
        if not (args.no_ray or args.skip_reload):
            figures["reload"] = reload_bench(args, Path(tmp))
    if not args.skip_search:
        figures["search"] = search_bench(args)
    figures["load_average_at_end"] = os.getloadavg()[0]
    if not args.no_ray:
        ray.shutdown()

    if "rebuild" in figures:
        r = figures["rebuild"]
        print(f"Rebuild of {r['models']} velocity models (parts of {r['part_size']}):\n")
        print(
            "| engine | s | models/s | embedding s | first part at s | last part at s "
            "| rest s |\n|---|---|---|---|---|---|---|"
        )
        for name, f in r["phases"].items():
            print(
                f"| {name} | {f['total_s']:.1f} | {r['models_per_s'][name]:.1f} "
                f"| {f['embed_s']:.1f} | {f['first_part_s']:.1f} | {f['last_part_s']:.1f} "
                f"| {f['rest_s']:.1f} |"
            )
        if len(r["rounds"]) > 1:
            print(f"\n(medians over {len(r['rounds'])} rounds; each round's figure after it)")
        if "speedup_2_over_1" in r:
            rounds = ", ".join(f"{x:.2f}x" for x in r["speedup_2_over_1_per_round"])
            print(
                f"\n2 actors over 1: {r['speedup_2_over_1']:.2f}x (embedding alone "
                f"{r['embed_speedup_2_over_1']:.2f}x; rounds {rounds})"
            )
        for local in ("local", "local-1thread"):
            if f"overhead_1_over_{local}" in r:
                per = r[f"overhead_1_over_{local}_per_round"]
                rounds = ", ".join(f"{100 * x:+.0f} %" for x in per)
                print(
                    f"1 actor over {local}: {100 * r[f'overhead_1_over_{local}']:+.0f} % "
                    f"(rounds {rounds})"
                )
        if "ray_data_warm_up_s" in r:
            print(f"Ray Data warm-up {r['ray_data_warm_up_s']:.1f} s (untimed)")
        print(f"same index: {r['same_index']}\n")
    if "reload" in figures:
        r = figures["reload"]
        print(
            f"{len(r['reloads'])} reloads on {r['replicas']} Serve replicas under "
            f"{r['concurrency']} clients of SEG-Y search (library {r['library_models']}):\n"
        )
        print("| # | kind | s until every replica served it |\n|---|---|---|")
        for i, run in enumerate(r["reloads"], 1):
            print(f"| {i} | {run['kind']} | {run['seconds_to_every_replica']:.2f} |")
        print(f"\nrequests {r['requests']}, failed {r['failed']}\n")
    if "search" in figures:
        search_table(figures["search"])
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
