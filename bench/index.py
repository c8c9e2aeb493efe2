"""FAISS search speed and recall@10 on the velocity encoder's own embeddings.

    python bench/index.py --bundle artifacts/default --sizes 10000 100000 1000000 --threads 1

For each library size N (``--sizes``) it builds every kind of
:class:`seislens.index.vector_index.VectorIndex` over N velocity-model embeddings and
prints markdown tables of build time, index size (MiB, serialised), search time in ms a
query (one query at a time, p50 and p99, and all queries in one batched call) and
recall@10 against exact search:

* exact (``flat``, inner product);
* HNSW (M=32, efConstruction 200) at efSearch 16, 32, 64, 128, 256;
* IVF-PQ (nlist ≈ 4·sqrt(N), 32 bytes a vector, refine factor 0 and 8) at nprobe
  8, 16, 32, 64.

The library is the ENCODER'S OWN embeddings, not random vectors (random 256-d vectors
are a worst case for graph indexes): velocity models drawn by
``seislens.data.velocity_families`` (families cycled, seed 0; model i is family
i mod 8) and embedded by the bundle's ONNX velocity encoder, in ``--workers`` processes.
The queries are the embeddings of ``--queries`` models drawn with another seed (1):
embeddings of held-out gathers would be the real use but need forward modelling.
Embeddings are cached in ``bench/out/embeddings-<encoder hash>-<n>.npy`` (and
``queries-<encoder hash>-<n>.npy``); a cached larger library serves every smaller size
(model i does not depend on the size), so reruns skip the embedding.

FAISS runs on ``--threads`` OpenMP threads (default 1: a service answers one query at a
time); ``--build-threads`` may give index building more. Progress goes to stderr, the
tables to stdout. The 1M size takes many minutes (embedding, HNSW build, IVF training).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from seislens.data.velocity_families import FAMILIES, velocity_models
from seislens.index.bundle import read_manifest, verify_encoders
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.models.branches import VELOCITY
from seislens.models.embedders import VelocityEmbedder
from tqdm import tqdm

LIBRARY_SEED = 0
QUERY_SEED = 1
K = 10
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
EF_SEARCHES = (16, 32, 64, 128, 256)
PQ_M = 32
REFINE_FACTORS = (0, 8)
NPROBES = (8, 16, 32, 64)
TRAIN_POINTS_PER_LIST = 39  # FAISS's minimum for k-means without a warning
EMBED_CHUNK = 2048  # models a worker generates and embeds at once (~40 MB)
ADD_CHUNK = 50_000  # vectors added to an index at once (for the progress bar)
MIN_SINGLE = 20  # queries timed one at a time, at least, whatever the budget
GOAL_MS, GOAL_RECALL = 2.0, 0.98  # issue 4: at 1M, a search <= 2 ms with recall@10 >= 0.98
DEFAULT_OUT = Path(__file__).resolve().parent / "out"

_START = time.perf_counter()
_EMBEDDER: VelocityEmbedder | None = None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SearchTiming:
    """Search time in ms a query: one at a time (p50, p99 over ``n_single`` queries)
    and batched (one call with every query, divided by their number)."""

    p50_ms: float
    p99_ms: float
    batch_ms: float
    n_single: int


@dataclass(frozen=True)
class Result:
    """One measured configuration of one index at one library size."""

    size: int
    kind: str
    params: dict[str, int]
    build_s: float
    mib: float
    recall: float
    timing: SearchTiming
    extra: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since start."""
    print(f"[{time.perf_counter() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)


def encoder_tag(bundle: Path) -> tuple[str, int]:
    """The velocity encoder's SHA-256 (12 hex digits, checked against its file) and
    the embedding dimension: the cache key of the embeddings."""
    manifest = read_manifest(bundle)
    verify_encoders(bundle, manifest, VELOCITY)
    section = manifest.velocity
    return section.encoders["velocity"].sha256[:12], section.embed_dim


def family_cycled_models(seed: int, start: int, stop: int) -> np.ndarray:
    """Models ``start .. stop-1`` of the family-cycled sequence: (stop-start, 70, 70) m/s.

    Model i is model ``i // 8`` of family ``FAMILIES[i % 8]`` of dataset ``seed``, so it
    does not depend on how the sequence is split into chunks or how long it is.
    """
    n_fam = len(FAMILIES)
    out: np.ndarray | None = None
    for j, family in enumerate(FAMILIES):
        first = start + (j - start) % n_fam  # the first i >= start with i % 8 == j
        if first >= stop:
            continue
        count = len(range(first, stop, n_fam))
        models = velocity_models(family, seed, first // n_fam, count)
        if out is None:
            out = np.empty((stop - start, *models.shape[1:]), np.float32)
        out[first - start :: n_fam] = models
    assert out is not None, "empty span"
    return out


def _init_worker(bundle: str, threads: int) -> None:
    """Open the bundle's velocity embedder once per process."""
    global _EMBEDDER
    _EMBEDDER = VelocityEmbedder(
        Path(bundle), read_manifest(Path(bundle)).velocity, threads=threads
    )


def _embed_span(seed: int, start: int, stop: int) -> np.ndarray:
    """Generate and embed models ``start .. stop-1`` of dataset ``seed``: (n, D)."""
    assert _EMBEDDER is not None, "_init_worker was not called"
    return _EMBEDDER.embed_velocity_models(family_cycled_models(seed, start, stop))


def _embedded_spans(
    bundle: Path, spans: list[tuple[int, int]], seed: int, workers: int
) -> Iterator[np.ndarray]:
    """Embeddings of each span in order: in this process (``workers`` <= 1) or in a
    spawned pool, with at most two spans a worker in flight (bounded memory)."""
    if workers <= 1:
        _init_worker(str(bundle), 1)
        for start, stop in spans:
            yield _embed_span(seed, start, stop)
        return
    ctx = get_context("spawn")  # no fork after FAISS's OpenMP has started
    with ProcessPoolExecutor(workers, ctx, _init_worker, (str(bundle), 1)) as pool:
        pending: deque[Future[np.ndarray]] = deque()
        todo = iter(spans)
        for start, stop in todo:
            pending.append(pool.submit(_embed_span, seed, start, stop))
            if len(pending) >= 2 * workers:
                break
        while pending:
            yield pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_embed_span, seed, *nxt))


def embed_velocity_models(
    bundle: Path, seed: int, n: int, dim: int, workers: int, desc: str
) -> np.ndarray:
    """(n, dim) embeddings of the first n family-cycled models of dataset ``seed``."""
    out = np.empty((n, dim), np.float32)
    spans = [(s, min(s + EMBED_CHUNK, n)) for s in range(0, n, EMBED_CHUNK)]
    with tqdm(total=n, desc=desc, unit="model", file=sys.stderr, smoothing=0.1) as bar:
        for (start, stop), emb in zip(
            spans, _embedded_spans(bundle, spans, seed, workers), strict=True
        ):
            out[start:stop] = emb
            bar.update(stop - start)
    return out


def cached_embeddings(
    out_dir: Path, prefix: str, bundle: Path, seed: int, n: int, dim: int, workers: int
) -> tuple[np.ndarray, str]:
    """The first n embeddings of dataset ``seed``, from the smallest cached file
    ``<prefix>-<m>.npy`` with m >= n, else computed and cached. Returns them and a
    sentence saying where they came from."""
    cached = sorted(
        (int(p.stem.rsplit("-", 1)[1]), p)
        for p in out_dir.glob(f"{prefix}-*.npy")
        if p.stem.rsplit("-", 1)[1].isdigit()
    )
    for m, path in cached:
        if m >= n:
            log(f"{n} embeddings from {path}")
            arr = np.load(path, mmap_mode="r")
            return np.array(arr[:n], np.float32), f"cached ({path.name})"
    log(f"embedding {n} models (seed {seed}) in {max(workers, 1)} process(es)")
    t0 = time.perf_counter()
    emb = embed_velocity_models(bundle, seed, n, dim, workers, desc=f"embed {prefix.split('-')[0]}")
    seconds = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}-{n}.npy"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, emb)
    os.replace(tmp, path)
    log(f"cached {path}")
    rate = n / seconds
    return emb, f"generated and embedded in {seconds:.0f} s ({rate:.0f} models/s, {workers} proc.)"


# --------------------------------------------------------------------------- measuring


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / k (ids; -1 never counts)."""
    hits = [np.intersect1d(f[f >= 0], e).size for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / exact.shape[1]


def time_search(
    index: VectorIndex, queries: np.ndarray, budget_s: float
) -> tuple[SearchTiming, np.ndarray, np.ndarray]:
    """Time ``index.search``: one query at a time (until ``budget_s`` has passed, at
    least MIN_SINGLE queries), then all queries in one call. Returns the timing and the
    batched call's scores and ids (q, K)."""
    index.search(queries[:1], K)  # warm-up
    single: list[float] = []
    deadline = time.perf_counter() + budget_s
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None], K)
        single.append(time.perf_counter() - t0)
        if len(single) >= MIN_SINGLE and time.perf_counter() > deadline:
            break
    t0 = time.perf_counter()
    scores, ids = index.search(queries, K)
    batch = time.perf_counter() - t0
    ms = np.asarray(single) * 1e3
    timing = SearchTiming(
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        batch_ms=batch * 1e3 / len(queries),
        n_single=len(single),
    )
    return timing, scores, ids


def index_mib(index: VectorIndex) -> float:
    """The index's serialised size in MiB (what it holds in memory, near enough)."""
    return float(faiss.serialize_index(index.faiss_index).nbytes) / 2**20


def build_index(
    config: VectorIndexConfig, library: np.ndarray, build_threads: int, search_threads: int
) -> tuple[VectorIndex, float]:
    """A VectorIndex of ``config`` over ``library`` (ids 0..n-1), trained on a sample
    for IVF-PQ, on ``build_threads`` FAISS threads. Returns it and the seconds taken."""
    n, dim = library.shape
    faiss.omp_set_num_threads(build_threads)
    t0 = time.perf_counter()
    index = VectorIndex(dim, config)
    if config.kind == "ivfpq":
        n_train = min(n, TRAIN_POINTS_PER_LIST * config.ivf_nlist)
        sample = np.random.default_rng(0).choice(n, n_train, replace=False)
        log(f"  training IVF-PQ (nlist {config.ivf_nlist}) on {n_train} vectors")
        index.train(library[np.sort(sample)])
    ids = np.arange(n, dtype=np.int64)
    desc = f"  add {config.kind} N={n}"
    for s in tqdm(range(0, n, ADD_CHUNK), desc=desc, file=sys.stderr, leave=False):
        index.add(library[s : s + ADD_CHUNK], ids[s : s + ADD_CHUNK])
    seconds = time.perf_counter() - t0
    faiss.omp_set_num_threads(search_threads)
    return index, seconds


def ivf_nlist(n: int) -> int:
    """IVF lists for a library of n vectors: about 4·sqrt(n)."""
    return max(1, round(4 * np.sqrt(n)))


def bench_size(library: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> list[Result]:
    """Every index kind and search setting over one library."""
    n = len(library)
    threads, build_threads = args.threads, args.build_threads or args.threads
    results: list[Result] = []

    log(f"N={n}: exact (flat)")
    flat, build_s = build_index(VectorIndexConfig(kind="flat"), library, build_threads, threads)
    timing, exact_scores, exact = time_search(flat, queries, args.single_budget)
    cos = {
        "top1_cos": float(exact_scores[:, 0].mean()),
        "top10_cos": float(exact_scores[:, -1].mean()),
    }
    results.append(Result(n, "flat", {}, build_s, index_mib(flat), 1.0, timing, cos))
    del flat

    log(f"N={n}: HNSW M={HNSW_M} efConstruction={HNSW_EF_CONSTRUCTION}")
    cfg = VectorIndexConfig(kind="hnsw", hnsw_m=HNSW_M, hnsw_ef_construction=HNSW_EF_CONSTRUCTION)
    hnsw, build_s = build_index(cfg, library, build_threads, threads)
    mib = index_mib(hnsw)
    log(f"  built in {build_s:.1f} s, {mib:.0f} MiB")
    for ef in EF_SEARCHES:
        hnsw.set_search_params(ef_search=ef)
        timing, _, ids = time_search(hnsw, queries, args.single_budget)
        recall = recall_at_k(ids, exact)
        results.append(Result(n, "hnsw", {"ef_search": ef}, build_s, mib, recall, timing))
        log(f"  efSearch {ef}: recall@10 {recall:.3f}, p50 {timing.p50_ms:.3f} ms")
    del hnsw

    nlist = ivf_nlist(n)
    if n < max(nlist, 256):
        log(f"N={n}: too few vectors to train IVF-PQ; skipped")
        return results
    for refine in REFINE_FACTORS:
        log(f"N={n}: IVF-PQ nlist={nlist} pq_m={PQ_M} refine={refine}")
        cfg = VectorIndexConfig(
            kind="ivfpq",
            ivf_nlist=nlist,
            pq_m=PQ_M,
            ivf_nprobe=min(NPROBES[0], nlist),
            pq_refine_factor=refine,
        )
        ivf, build_s = build_index(cfg, library, build_threads, threads)
        mib = index_mib(ivf)
        log(f"  built in {build_s:.1f} s, {mib:.0f} MiB")
        for nprobe in (p for p in NPROBES if p <= nlist):
            ivf.set_search_params(nprobe=nprobe)
            timing, _, ids = time_search(ivf, queries, args.single_budget)
            recall = recall_at_k(ids, exact)
            params = {"nlist": nlist, "refine": refine, "nprobe": nprobe}
            results.append(Result(n, "ivfpq", params, build_s, mib, recall, timing))
            log(f"  nprobe {nprobe}: recall@10 {recall:.3f}, p50 {timing.p50_ms:.3f} ms")
        del ivf
    return results


# --------------------------------------------------------------------------- reporting


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


TIMING_HEADER = ["p50 ms (1 query)", "p99 ms (1 query)", "ms/query (batched)", "queries timed"]

SECTIONS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("flat", "Exact search (flat inner product)", {}),
    (
        "hnsw",
        f"HNSW (M={HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION})",
        {"ef_search": "efSearch"},
    ),
    (
        "ivfpq",
        f"IVF-PQ (nlist ≈ 4·sqrt(N), {PQ_M} bytes a vector, 8-bit codes)",
        {"nlist": "nlist", "refine": "refine", "nprobe": "nprobe"},
    ),
)
"""Per index kind: its table's title and its parameter columns (key → heading)."""


def _row(r: Result, param_keys: list[str]) -> list[str]:
    """One table row: size, parameters, build, size, recall, timings (, cosines)."""
    t = r.timing
    cells = [f"{r.size:,}", *(str(r.params[k]) for k in param_keys)]
    cells += [f"{r.build_s:.2f}", f"{r.mib:.1f}", f"{r.recall:.4f}"]
    cells += [f"{t.p50_ms:.3f}", f"{t.p99_ms:.3f}", f"{t.batch_ms:.3f}", str(t.n_single)]
    return cells + [f"{v:.4f}" for v in r.extra.values()]


def render_tables(results: list[Result]) -> str:
    """One markdown table per index kind (the exact one adds the mean cosine of the
    queries' nearest and 10th nearest neighbour, to show how crowded the space is)."""
    parts = []
    for kind, title, columns in SECTIONS:
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        extra = ["mean top-1 cos", "mean 10th cos"] if kind == "flat" else []
        header = ["N", *columns.values(), "build s", "MiB", "recall@10", *TIMING_HEADER, *extra]
        body = [_row(r, list(columns)) for r in rows]
        parts.append(f"\n### {title}\n\n{_table(header, body)}")
    return "\n".join(parts)


def render_goal(results: list[Result]) -> str:
    """Per size, the fastest approximate setting (by p50) with recall@10 >= GOAL_RECALL."""
    lines = [
        f"\n### Goal (issue 4: at 1M, a search <= {GOAL_MS:g} ms with recall@10 >= "
        f"{GOAL_RECALL:g} against exact)\n"
    ]
    for size in sorted({r.size for r in results}):
        ok = [r for r in results if r.size == size and r.kind != "flat" and r.recall >= GOAL_RECALL]
        if not ok:
            lines.append(f"- N={size:,}: no approximate setting reaches recall@10 {GOAL_RECALL:g}")
            continue
        best = min(ok, key=lambda r: r.timing.p50_ms)
        params = ", ".join(f"{k} {v}" for k, v in best.params.items())
        verdict = "meets" if best.timing.p50_ms <= GOAL_MS else "misses"
        lines.append(
            f"- N={size:,}: fastest with recall@10 >= {GOAL_RECALL:g} is {best.kind} ({params}): "
            f"recall {best.recall:.4f}, p50 {best.timing.p50_ms:.3f} ms — {verdict} "
            f"the {GOAL_MS:g} ms goal"
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render_conditions(
    args: argparse.Namespace, tag: str, n_queries: int, sources: dict[str, str]
) -> str:
    """Who, where, when and how: the conditions every figure depends on."""
    import onnxruntime

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    build_threads = args.build_threads or args.threads
    return "\n".join(
        [
            "## FAISS index benchmark (bench/index.py)\n",
            f"- date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- machine: {_cpu_model()}; os.cpu_count() = {os.cpu_count()}, "
            f"usable by this process {len(os.sched_getaffinity(0))}; load average at "
            f"start {load} (other jobs share the machine)",
            f"- FAISS {faiss.__version__}: {args.threads} OpenMP thread(s) for search "
            f"(faiss.omp_set_num_threads), {build_threads} for building; "
            f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}, "
            f"Python {platform.python_version()}",
            f"- bundle {args.bundle}, velocity encoder sha256 {tag}…",
            f"- library: the first N of one sequence of velocity models from "
            f"seislens.data.velocity_families ({len(FAMILIES)} families cycled, seed "
            f"{LIBRARY_SEED}), embedded by the bundle's ONNX velocity encoder; ids 0..N-1; "
            f"{sources['library']}",
            f"- queries: {n_queries} velocity-model embeddings of models drawn with another "
            f"seed ({QUERY_SEED}), not library members — embeddings of held-out gathers "
            f"would be the real use but need forward modelling; {sources['queries']}",
            f"- recall@{K}: mean over the queries of |top-{K} ∩ exact top-{K}| / {K} (ids), "
            f"exact = the flat index's batched search",
            f"- time: VectorIndex.search (with its normalising copy); one query at a time "
            f"over up to {n_queries} queries (stopping after ~{args.single_budget:g} s, at "
            f"least {MIN_SINGLE}), and one batched call with all {n_queries}, in ms a query",
            "- MiB: the faiss index serialised (vectors, graph or codes, and ids)",
        ]
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--threads", type=int, default=1, help="FAISS threads for search")
    p.add_argument("--build-threads", type=int, default=None, help="default: --threads")
    p.add_argument("--workers", type=int, default=2, help="embedding processes")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument(
        "--single-budget",
        type=float,
        default=10.0,
        help="seconds of one-at-a-time queries per setting (at least 20 queries)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="embedding cache folder")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or args.queries < 1 or args.threads < 1:
        p.error("--sizes, --queries and --threads must be positive")
    args.sizes = sorted(set(args.sizes))
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the benchmark; print the tables; return the results."""
    args = parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    log(f"FAISS threads: {faiss.omp_get_max_threads()} (search), CPUs: {os.cpu_count()}")
    tag, dim = encoder_tag(args.bundle)
    largest = max(args.sizes)
    library, lib_src = cached_embeddings(
        args.out, f"embeddings-{tag}", args.bundle, LIBRARY_SEED, largest, dim, args.workers
    )
    queries, q_src = cached_embeddings(
        args.out, f"queries-{tag}", args.bundle, QUERY_SEED, args.queries, dim, args.workers
    )
    conditions = render_conditions(args, tag, len(queries), {"library": lib_src, "queries": q_src})
    results: list[Result] = []
    for size in args.sizes:
        results += bench_size(library[:size], queries, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(conditions + f"\n- peak RSS of this process: {peak:.0f} MiB\n")
    print(render_tables(results))
    print(render_goal(results))
    if args.json is not None:
        payload: dict[str, Any] = {
            "conditions": conditions,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
