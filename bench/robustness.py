"""Velocity-branch robustness: the bundle on gathers it did not make (synthetic).

    OMP_NUM_THREADS=1 python bench/robustness.py --bundle artifacts/default \
        --gallery 200 --seed 7 --workers 2

Draws ``--gallery`` fresh velocity models spread evenly over the eight families
(``seislens.data.velocity_families``) with a seed training did not use (the default
bundle trained on seed 1 and was tested on seed 2), models them with deepwave as the
generator does (15, 18 and 12 Hz Ricker) and with the second propagator
(``seislens.data.velocity_fd``, 15 Hz), perturbs the 15 Hz deepwave gathers
(``seislens.data.velocity_perturb``: trigger delay, Gaussian noise, per-trace gains;
and with shots removed, as the reader maps a one- or three-shot file onto the frame),
and prints one Markdown table row per query set:

* closed set: seismic→velocity R@1/5/10 against the gallery of the N models' velocity
  embeddings (``seislens.training.metrics.recall_at_k``);
* open set (the truth is not in the library): descriptor MRE from the top-5 and the
  estimated model's MAE/SSIM (top-1, top-10 weighted) in OpenFWI's [-1, 1] units
  against the bundle's library (``seislens.training.velocity_eval.open_set``);
* coverage of the reported ±1 std: the fraction of (query, descriptor) pairs whose true
  value lies within the served estimate's mean ± std (the service's estimator over its
  default k neighbours, ``seislens.models.estimation.neighbour_estimate``).

* familiarity (``seislens.models.familiarity``, against the bundle's calibration): its
  median per query set and how often the served warning fires, plus the coverage of the
  calibrated ±1 spread (the service's std × the calibration's per-descriptor factor);
* a second table: the familiarity's AUROC between the as-generated queries and gathers
  unlike any family — pure noise, random reflectivity (sparse spikes convolved with the
  15 Hz Ricker, no moveout), velocity models with a salt body and checkerboards
  (modelled with deepwave) — and the warning's rate on each.

The bundle is read only. All figures are synthetic (our families, our propagators).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import print_table
from seislens.data.velocity_families import FAMILIES, velocity_models
from seislens.data.velocity_perturb import (
    add_gaussian_noise,
    apply_trace_gains,
    delay_gathers,
    remodel_gathers,
)
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import VELOCITY
from seislens.models.descriptors import DESCRIPTOR_NAMES, compute_descriptors
from seislens.models.embedders import VelocityEmbedder
from seislens.models.estimation import DEFAULT_TEMPERATURE, neighbour_estimate
from seislens.models.familiarity import familiarity
from seislens.models.manifest import VelocityCalibration
from seislens.service.settings import Settings
from seislens.training.metrics import recall_at_k
from seislens.training.velocity_eval import open_set
from tqdm import tqdm

#: The service's default number of neighbours, over which it reports mean ± std.
SERVED_K = Settings.model_fields["default_k"].default

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class QuerySet:
    """One row: gathers of ``source`` (propagator, Ricker Hz), optionally perturbed."""

    name: str
    source: tuple[str, float]
    perturb: Perturb | None = None


BASE = ("deepwave", 15.0)
QUERY_SETS: tuple[QuerySet, ...] = (
    QuerySet("as generated (deepwave, 15 Hz Ricker)", BASE),
    QuerySet("4 ms trigger delay", BASE, lambda g, r: delay_gathers(g, 4.0)),
    QuerySet("10 ms trigger delay", BASE, lambda g, r: delay_gathers(g, 10.0)),
    QuerySet("Gaussian noise 10 % of RMS", BASE, lambda g, r: add_gaussian_noise(g, 0.1, r)),
    QuerySet("Gaussian noise 30 % of RMS", BASE, lambda g, r: add_gaussian_noise(g, 0.3, r)),
    QuerySet("per-trace gain in [0.5, 2]", BASE, lambda g, r: apply_trace_gains(g, 0.5, 2.0, r)),
    QuerySet("deepwave, 18 Hz Ricker", ("deepwave", 18.0)),
    QuerySet("deepwave, 12 Hz Ricker", ("deepwave", 12.0)),
    QuerySet("second propagator (staggered FD, 15 Hz)", ("fd", 15.0)),
    QuerySet(
        "three shots (slots 1, 3, 5; others empty)", BASE, lambda g, r: keep_shots(g, 0, 2, 4)
    ),
    QuerySet("one shot (slot 1; others empty)", BASE, lambda g, r: keep_shots(g, 0)),
)


def keep_shots(gathers: np.ndarray, *slots: int) -> np.ndarray:
    """(N, 5, nt, nx) gathers with every shot but ``slots`` zeroed: what the upload
    reader makes of a file with only those shots (empty source slots zero-filled)."""
    out = np.zeros_like(gathers)
    out[:, list(slots)] = gathers[:, list(slots)]
    return out


def gallery_models(count: int, seed: int) -> np.ndarray:
    """``count`` velocity models (count, 70, 70) m/s, spread evenly over the families."""
    per = [count // len(FAMILIES) + (i < count % len(FAMILIES)) for i in range(len(FAMILIES))]
    return np.concatenate(
        [velocity_models(fam, seed, 0, n) for fam, n in zip(FAMILIES, per, strict=True) if n]
    )


def _init_worker(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _model_task(task: tuple[np.ndarray, float, str]) -> np.ndarray:
    models, freq, propagator = task
    return remodel_gathers(models, freq, propagator)  # type: ignore[arg-type]


def _chunks(models: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for s in range(0, len(models), size):
        yield models[s : s + size]


def model_all(
    models: np.ndarray, sources: list[tuple[str, float]], workers: int, threads: int
) -> dict[tuple[str, float], np.ndarray]:
    """Gathers (N, 5, 1000, 70) of ``models`` for every (propagator, Ricker Hz) source."""
    tasks = [(c, f, p) for p, f in sources for c in _chunks(models, 10)]
    bar = tqdm(total=len(tasks) * 10, unit="model", desc="modelling")
    if workers > 1:
        pool = mp.get_context("spawn").Pool(workers, _init_worker, (threads,))
        results: Iterator[np.ndarray] = pool.imap(_model_task, tasks)
    else:
        pool = None
        _init_worker(threads)
        results = map(_model_task, tasks)
    blocks: dict[tuple[str, float], list[np.ndarray]] = {s: [] for s in sources}
    try:
        for (_, freq, prop), block in zip(tasks, results, strict=True):
            blocks[(prop, freq)].append(block)
            bar.update(len(block))
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    return {s: np.concatenate(b) for s, b in blocks.items()}


def coverage(
    library: LoadedLibrary,
    seismic: np.ndarray,
    truth: np.ndarray,
    calibration: VelocityCalibration | None,
    k: int = SERVED_K,
) -> tuple[float, float]:
    """Fractions of finite (query, descriptor) pairs whose truth is within the served
    mean ± std over the top-``k`` neighbours: raw, and with the calibrated spread
    (NaN without a calibration)."""
    scores, ids = library.search(seismic, min(k, len(library)))
    lib_desc = library.descriptors(np.arange(len(library)), DESCRIPTOR_NAMES)
    mean, std = neighbour_estimate(scores, ids, lib_desc, DEFAULT_TEMPERATURE)
    ok = np.isfinite(mean) & np.isfinite(truth)
    err = np.abs(truth - mean)
    raw = float(np.mean((err <= std)[ok]))
    if calibration is None:
        return raw, float("nan")
    scale = np.array([calibration.std_scale.get(n, 1.0) for n in DESCRIPTOR_NAMES])
    return raw, float(np.mean((err <= std * scale)[ok]))


def best_scores(embedder: VelocityEmbedder, library: LoadedLibrary, gathers: np.ndarray):
    """Each gather's best cosine score against the library, (N,)."""
    seismic = np.concatenate([embedder.embed_gathers(b) for b in _chunks(gathers, 32)])
    return library.search(seismic, 1)[0][:, 0]


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an in-distribution score > an outside one), ties counting one half."""
    a, b = np.asarray(inside)[:, None], np.asarray(outside)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def score(
    embedder: VelocityEmbedder,
    library: LoadedLibrary,
    gathers: np.ndarray,
    gallery: np.ndarray,
    models: np.ndarray,
    desc: np.ndarray,
    calibration: VelocityCalibration | None,
) -> dict[str, float]:
    """Closed- and open-set figures, ±1 std coverage and familiarity of one query set."""
    seismic = np.concatenate([embedder.embed_gathers(b) for b in _chunks(gathers, 32)])
    closed = recall_at_k(seismic, gallery, (1, 5, 10))
    opened = open_set(library, {"seismic": seismic, "desc": desc, "models": models})
    raw, calibrated = coverage(library, seismic, desc, calibration)
    fam = _familiarity(library.search(seismic, 1)[0][:, 0], calibration)
    return {
        **closed,
        "descriptor_mre": opened["descriptor_mre"],
        "top1_mae": opened["model_top1"]["mae"],
        "top1_ssim": opened["model_top1"]["ssim"],
        "topk_mae": opened["model_top10"]["mae"],
        "topk_ssim": opened["model_top10"]["ssim"],
        "coverage": raw,
        "calibrated_coverage": calibrated,
        "familiarity": float(np.median(fam)),
        "warned": float(np.mean(fam < calibration.warn_below)) if calibration else float("nan"),
        "best": fam,
    }


def _familiarity(best: np.ndarray, calibration: VelocityCalibration | None) -> np.ndarray:
    if calibration is None:
        return np.full(len(best), np.nan)
    return familiarity(best, calibration)


HEADER = [
    "query gathers (synthetic)",
    "s→v R@1",
    "s→v R@5",
    "s→v R@10",
    "descriptor MRE",
    "top-1 MAE",
    "top-1 SSIM",
    "top-10 MAE",
    "top-10 SSIM",
    "±1 std coverage",
    "calibrated ±1 coverage",
    "familiarity (median)",
    "warned",
]
KEYS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "descriptor_mre",
    "top1_mae",
    "top1_ssim",
    "topk_mae",
    "topk_ssim",
    "coverage",
    "calibrated_coverage",
    "familiarity",
    "warned",
)


def odd_gathers(count: int, seed: int) -> dict[str, np.ndarray]:
    """Gathers unlike any family: noise, random reflectivity, salt bodies, checkerboards."""
    rng = np.random.default_rng([seed, 99])
    shape = (count, 5, 1000, 70)
    spikes = rng.standard_normal(shape) * (rng.random(shape) < 0.01)
    t = (np.arange(-60, 61) / 1000.0) * np.pi * 15.0
    ricker = ((1 - 2 * t**2) * np.exp(-(t**2))).astype(np.float32)
    reflectivity = np.apply_along_axis(np.convolve, 2, spikes, ricker, mode="same")
    salt, boards = [], []
    z, x = np.mgrid[0:70, 0:70]
    for _ in range(count):
        base = 1800.0 + 25.0 * z + rng.uniform(-100, 100)
        cz, cx, rz, rx = rng.uniform(25, 50), rng.uniform(15, 55), *rng.uniform(8, 18, 2)
        inside = ((z - cz) / rz) ** 2 + ((x - cx) / rx) ** 2 < 1
        salt.append(np.where(inside, 4400.0, base))
        cell = int(rng.integers(6, 15))
        lo, hi = rng.uniform(1800, 2600), rng.uniform(3400, 4400)
        boards.append(np.where((z // cell + x // cell) % 2 == 0, lo, hi))
    return {
        "pure noise": rng.standard_normal(shape).astype(np.float32),
        "random reflectivity": reflectivity.astype(np.float32),
        "salt-body velocity models": remodel_gathers(np.array(salt, np.float32)),
        "checkerboard velocity models": remodel_gathers(np.array(boards, np.float32)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    ap.add_argument("--gallery", type=int, default=200, help="fresh models (query = gallery)")
    ap.add_argument("--seed", type=int, default=7, help="model seed (training used 1 and 2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per process (torch, ONNX)")
    ap.add_argument("--workers", type=int, default=1, help="modelling processes")
    args = ap.parse_args()
    if args.gallery < 10:
        ap.error("--gallery must be at least 10")

    t0 = time.perf_counter()
    models = gallery_models(args.gallery, args.seed)
    desc = compute_descriptors(models)
    sources = list(dict.fromkeys(q.source for q in QUERY_SETS))
    gathers = model_all(models, sources, args.workers, args.threads)
    manifest = read_manifest(args.bundle)
    embedder = VelocityEmbedder(args.bundle, manifest.velocity, None, args.threads)
    calibration = manifest.velocity.calibration
    library = LoadedLibrary.open(args.bundle, manifest, VELOCITY)
    rows = []
    try:
        gallery = embedder.embed_velocity_models(models)
        for i, q in enumerate(tqdm(QUERY_SETS, desc="query sets")):
            g = gathers[q.source]
            if q.perturb is not None:
                g = q.perturb(g, np.random.default_rng([args.seed, i]))
            r = score(embedder, library, g, gallery, models, desc, calibration)
            rows.append([q.name, *(f"{r[k]:.3f}" for k in KEYS)])
            if i == 0:
                inside = r["best"]
        odd_rows = []
        if calibration is not None:
            for name, g in odd_gathers(max(10, args.gallery // 4), args.seed).items():
                fam = familiarity(best_scores(embedder, library, g), calibration)
                warned = float(np.mean(fam < calibration.warn_below))
                odd_rows.append([name, f"{auroc(inside, fam):.3f}", f"{warned:.3f}"])
        size = len(library)
    finally:
        library.close()
    print(
        f"\n## Robustness (synthetic): gallery of {len(models)} fresh in-family models "
        f"(seed {args.seed}), bundle {args.bundle}, library of {size}\n"
    )
    print_table(HEADER, rows)
    print(
        f"\nOpen set: descriptors from the top-5, model MAE/SSIM in [-1, 1] units; coverage "
        f"over the served top-{SERVED_K} mean ± std. {time.perf_counter() - t0:.0f} s."
    )
    if odd_rows:
        print(
            f"\nFamiliarity against gathers unlike any family ({max(10, args.gallery // 4)} "
            f"each; warning below {calibration.warn_below}): AUROC against the as-generated "
            "queries, and the warning's rate\n"
        )
        print_table(["queries", "AUROC vs in-family", "warned"], odd_rows)


if __name__ == "__main__":
    main()
