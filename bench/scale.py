"""Past one machine: rebuild throughput on Ray Data and sharded search latency.

    python bench/scale.py --bundle artifacts/default --models 4000 --vectors 100000

Rebuild: one velocity library of ``--models`` models (the bundle's own indexed models,
tiled with a small offset per copy; embedding cost does not depend on the content) is
indexed three times into fresh copies of the bundle, with the same parts
(``--part-size``): in this process (``--engine local``; ONNX Runtime picks its threads),
and on a local Ray cluster of ``--cpus`` CPUs with 1 and with 2 embedding actors (one
ONNX thread each). Printed: seconds, models/s, the speed-up of 2 actors over 1 and the
overhead of 1 actor over the local build; the three indexes are checked equal.

Search: ``--vectors`` unit vectors (random; exact search does not care what they are)
in one exact index, the same split into ``--shards`` shards searched in this process,
and the same shards in one Ray actor each. Queries are asked one at a time
(``--queries``); printed: p50/p99 ms a query and whether the merged top-10 ids and
scores equal the single index's. FAISS runs on ``--threads`` threads.

Tables go to stdout, the figures to ``bench/out/scale.json``. Needs the cluster extra,
except with ``--no-ray`` (the local build and the in-process shards only).
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


def timed_build(bundle: Path, library: Path, part_size: int, workers: int | None) -> float:
    """Seconds to build ``bundle``'s velocity index (None workers: the local engine)."""
    cfg = BuildConfig(part_size=part_size)
    start = time.perf_counter()
    if workers is None:
        build(bundle, VELOCITY, [library], cfg, progress=False)
    else:
        from seislens.index.ray_build import RayEngine, RayParts

        parts = RayParts(RayEngine(workers=workers))
        build(bundle, VELOCITY, [library], cfg, progress=False, embed_parts=parts)
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
    runs: dict[str, float] = {}
    results = {}
    engines = (("local", None),) if args.no_ray else (("local", None), ("ray-1", 1), ("ray-2", 2))
    for name, workers in engines:
        copy = work / f"bundle-{name}"
        shutil.copytree(args.bundle, copy)
        runs[name] = timed_build(copy, library, args.part_size, workers)
        results[name] = vectors_of(copy)
        print(f"{name}: {runs[name]:.1f} s", file=sys.stderr)
    ids0, scores0 = results["local"]
    equal = all(
        np.array_equal(ids0, i) and np.allclose(scores0, s, atol=1e-5) for i, s in results.values()
    )
    out = {
        "models": args.models,
        "part_size": args.part_size,
        "seconds": runs,
        "models_per_s": {k: args.models / v for k, v in runs.items()},
        "same_index": bool(equal),
    }
    if not args.no_ray:
        out["speedup_2_over_1"] = runs["ray-1"] / runs["ray-2"]
        out["overhead_1_over_local"] = runs["ray-1"] / runs["local"] - 1
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
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    p.add_argument("--models", type=int, default=4000, help="library size of the rebuild")
    p.add_argument("--part-size", type=int, default=250, help="models per resumable part")
    p.add_argument("--vectors", type=int, default=100_000, help="vectors of the search bench")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="FAISS threads")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the Ray cluster")
    p.add_argument("--skip-rebuild", action="store_true")
    p.add_argument("--no-ray", action="store_true", help="only the in-process figures")
    args = p.parse_args()

    faiss.omp_set_num_threads(args.threads)
    load = os.getloadavg()[0]
    if not args.no_ray:
        import ray

        address = os.environ.get("RAY_ADDRESS")  # a running cluster, else a local one
        local = {} if address else {"num_cpus": args.cpus, "include_dashboard": False}
        ray.init(address=address, log_to_driver=False, **local)
    figures: dict[str, Any] = {"cpus": args.cpus, "load_average_at_start": load}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_rebuild:
            figures["rebuild"] = rebuild_bench(args, Path(tmp))
    figures["search"] = search_bench(args)
    figures["load_average_at_end"] = os.getloadavg()[0]
    if not args.no_ray:
        ray.shutdown()

    if "rebuild" in figures:
        r = figures["rebuild"]
        print(f"Rebuild of {r['models']} velocity models (parts of {r['part_size']}):\n")
        print("| engine | s | models/s |\n|---|---|---|")
        for name, s in r["seconds"].items():
            print(f"| {name} | {s:.1f} | {r['models_per_s'][name]:.1f} |")
        if not args.no_ray:
            print(
                f"\n2 actors over 1: {r['speedup_2_over_1']:.2f}x; 1 actor over local: "
                f"{100 * r['overhead_1_over_local']:+.0f} %; same index: {r['same_index']}\n"
            )
    s = figures["search"]
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
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
