"""Velocity-branch robustness: the bundle on gathers it did not make (synthetic).

    OMP_NUM_THREADS=1 python bench/robustness.py --bundle artifacts/default \
        --gallery 200 --propagator-gallery 1000 --seed 7 --threads 1 --workers 2 [--cache DIR]

Draws fresh velocity models spread evenly over the eight families
(``seislens.data.velocity_families``) with a seed training did not use (the default
bundle trained on seed 1, was tested on seed 2 and calibrated on seed 3) and prints
four Markdown tables, after the command line that made them:

1. **Perturbations** (``--gallery`` models): the models modelled with deepwave as the
   generator does (15, 18 and 12 Hz Ricker) and with the second propagator
   (``seislens.data.velocity_fd``, 15 Hz); the 15 Hz deepwave gathers perturbed
   (``seislens.data.velocity_perturb``: trigger delay, Gaussian noise, per-trace gains).
   One row per query set:

   * closed set: seismic→velocity R@1/5/10 against the gallery of the same models'
     velocity embeddings (``seislens.training.metrics.recall_at_k``);
   * open set (the truth is not in the library): descriptor MRE from the top-5 and the
     estimated model's MAE/SSIM (top-1, top-10 weighted) in OpenFWI's [-1, 1] units
     against the bundle's library (``seislens.training.velocity_eval.open_set``);
   * coverage of the reported ±1 std: the fraction of (query, descriptor) pairs whose
     true value lies within the served estimate's mean ± std (the service's estimator
     over its default k neighbours, ``seislens.models.estimation.neighbour_estimate``),
     raw and with the calibrated spread (the service's factor for the query's
     familiarity, ``seislens.models.familiarity.spread_scale``);
   * the descriptor head, when the bundle's seismic graph has one
     (``VelocityEmbedder.has_descriptor_head``): its descriptor MRE (open_set's
     definition: ``relative_errors`` averaged over queries and descriptors) and the
     coverage of its mean ± predicted std, raw and calibrated ("–" without a head);
   * familiarity (``seislens.models.familiarity``, against the bundle's calibration):
     its median and how often the served low-familiarity warning fires.

2. **Propagators** (``--propagator-gallery`` models, 0 skips): the same models modelled
   with deepwave (OpenFWI's setting, ``seislens.data.velocity_forward``) and with the
   second propagator (never used in training), side by side: s→v R@1/R@10 against the
   gallery of these models' velocity embeddings and the open-set, coverage and head
   figures above. The first ``--gallery`` models of each family are the perturbation
   table's, so their gathers are modelled once.

3. **Geometry** (``--gallery`` models): each gallery gather cut to another 2-D line
   acquisition, written as a real SEG-Y file (``seislens.data.gather_files.write_segy``,
   SourceX/GroupX in metres) into a temporary folder and read back by the reader the
   service uses (``read_gather``: trace coordinates mapped onto the 5 × 70 frame by
   ``seislens.data.gather_geometry``, resampled to 1 ms, cut or padded to 1 s). One row
   per acquisition: how the reader mapped it, s→v R@1/R@10 against the gallery, the
   familiarity median, the low-familiarity warning's rate and the rate of any served
   warning (low familiarity or partial geometry). A refused acquisition shows the
   reader's message instead of figures. How each file is made:

   * one or three shots, a partial spread, 35 receivers at 20 m: the frame's own
     deepwave traces at those sources and receivers (nothing interpolated);
   * 140 receivers at 5 m: deepwave on the model's cells split 2 × 2 (a 5 m grid, the
     same geology), sources at the frame's slots and receivers every 5 m at 10 m depth;
   * 2 ms and 4 ms sampling: the 1 ms deepwave traces decimated with an anti-alias
     filter (``scipy.signal.resample_poly``), as a recorder's would;
   * a 2 s record: deepwave run for 2000 samples (``ForwardConfig(nt=2000)``), not
     padded; the reader cuts it to its first second.

4. **Familiarity** against gathers unlike any family — pure noise, random reflectivity
   (sparse spikes convolved with the 15 Hz Ricker, no moveout), velocity models with a
   salt body, checkerboards, and 700 m crops of a large folded and faulted model in
   the manner of the published Marmousi model (``large_model_crops``: generated here,
   3 × 12 km, not the published grid; all modelled with deepwave): the AUROC against the
   as-generated queries and the warning's rate on each.

Run time of ``--gallery 200 --propagator-gallery 1000 --workers 2`` (an estimate; not
run here, the machine being shared with a training job). Measured with one thread per
process on this 2-core machine under a load of 4-5, 10 models each (``Source.model``):
the second propagator (NumPy) ran at 0.47-0.81 models/s in four runs, deepwave at
1.7-3.4 in the same runs, so FD is 2-4× slower than deepwave; a 2 s deepwave record
costs 1.3-2× a 1 s one and the 5 m grid ~3.5×. Taking deepwave's ~10 models/s on 2
quiet workers: modelling 1000 deepwave (~100 s) + 1000 FD (~200-400 s) + 400 at 18/12 Hz
(~40 s) + 200 2-s records (~35 s) + 200 on the 5 m grid (~70 s) + 100 odd models in the
main process (~20 s); embedding ~6,200 gathers (~30 ms each, ~190 s) and writing and
reading 2,200 SEG-Y files (~90 s). In all ~12-17 min on a quiet machine, up to twice
that on a busy one; ~5.5 GB of memory at its peak (the 2,000 wide-gallery gathers are
2.8 GB). The tiny check ``--gallery 16 --propagator-gallery 16 --workers 1`` took 114 s
here (88 s of it modelling).

The bundle is read only. All figures are synthetic (our families, our propagators).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from _common import print_table
from seislens.data.gather_files import GatherUpload, UploadError, read_gather, write_segy
from seislens.data.gather_geometry import SOURCE_SLOTS_M
from seislens.data.velocity_families import FAMILIES, velocity_models
from seislens.data.velocity_forward import ForwardConfig, model_gathers
from seislens.data.velocity_perturb import (
    add_gaussian_noise,
    apply_trace_gains,
    delay_gathers,
    remodel_gathers,
)
from seislens.data.wavelets import make_wavelet
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import VELOCITY
from seislens.models.contract import CELL_M, GATHER_DT_MS, N_RECEIVERS, N_SHOTS, N_TIME
from seislens.models.descriptors import DESCRIPTOR_NAMES, compute_descriptors, relative_errors
from seislens.models.embedders import VelocityEmbedder
from seislens.models.estimation import DEFAULT_TEMPERATURE, neighbour_estimate
from seislens.models.familiarity import (
    GaussianDensity,
    joint_familiarity,
    load_density,
    signal_factor,
    spread_scale,
)
from seislens.models.gather_quality import lateral_snr_db
from seislens.models.manifest import VelocityCalibration
from seislens.service.settings import Settings
from seislens.training.metrics import recall_at_k
from seislens.training.velocity_eval import open_set
from tqdm import tqdm

#: The service's default number of neighbours, over which it reports mean ± std.
SERVED_K = Settings.model_fields["default_k"].default
#: Gathers embedded per ONNX call.
EMBED_BATCH = 32
#: Models per modelling task.
CHUNK = 10
#: Cells of the fine grid per 10 m model cell (a 5 m grid).
FINE = 2
#: A figure that does not apply (no head, no calibration, a refused acquisition).
DASH = "–"

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# --------------------------------------------------------------------------- modelling


@dataclass(frozen=True)
class Source:
    """How gathers are modelled.

    Attributes:
        propagator: ``"deepwave"`` (the generator's), ``"fd"`` (the second propagator)
            or ``"deepwave-5m"`` (deepwave on the model refined to a 5 m grid,
            receivers every 5 m: (N, 5, nt, 140)).
        freq: Ricker peak frequency, Hz.
        nt: samples at 1 ms (deepwave only for another length than the frame's).
    """

    propagator: Literal["deepwave", "fd", "deepwave-5m"]
    freq: float = 15.0
    nt: int = N_TIME

    @property
    def receiver_spacing_m(self) -> float:
        """Distance between the modelled receivers, m."""
        return CELL_M / FINE if self.propagator == "deepwave-5m" else CELL_M

    def model(self, models: np.ndarray) -> np.ndarray:
        """Gathers (N, 5, nt, n_receivers) float32 of velocity models (N, 70, 70) m/s."""
        if self.propagator == "deepwave-5m":
            return np.stack([fine_grid_gathers(m, self.freq, self.nt) for m in models])
        if self.nt != N_TIME:
            if self.propagator != "deepwave":
                raise ValueError(f"{self.propagator} models {N_TIME} samples only")
            cfg = ForwardConfig(freq=self.freq, nt=self.nt)
            return np.stack([model_gathers(m, cfg) for m in models])
        return remodel_gathers(models, self.freq, self.propagator)


BASE = Source("deepwave")
SECOND = Source("fd")
LONG_RECORD = Source("deepwave", nt=2 * N_TIME)
FINE_GRID = Source("deepwave-5m")


def fine_grid_gathers(velocity: np.ndarray, freq: float = 15.0, nt: int = N_TIME) -> np.ndarray:
    """Gathers (5, nt, 140) of one (70, 70) m/s model with receivers every 5 m.

    The model's cells are split 2 × 2 (the same geology on a 5 m grid) and modelled by
    deepwave as ``seislens.data.velocity_forward.model_gathers`` does, at the
    generator's settings with depths and the PML kept in metres: sources at the frame's
    slots (x = 0, 170, 340, 520, 690 m) and 140 receivers at x = 0 … 695 m, all 10 m
    deep; OpenFWI's polarity.
    """
    import deepwave
    import torch

    base = ForwardConfig()
    cfg = ForwardConfig(
        dx=base.dx / FINE,
        freq=freq,
        nt=nt,
        source_depth=base.source_depth * FINE,
        receiver_depth=base.receiver_depth * FINE,
        pml_width=base.pml_width * FINE,
    )
    v = np.repeat(np.repeat(np.asarray(velocity, np.float32), FINE, 0), FINE, 1)
    nx = v.shape[1]
    src = torch.zeros(N_SHOTS, 1, 2, dtype=torch.long)
    src[:, 0, 0] = cfg.source_depth
    src[:, 0, 1] = torch.from_numpy(np.round(SOURCE_SLOTS_M / cfg.dx).astype(np.int64))
    rec = torch.zeros(N_SHOTS, nx, 2, dtype=torch.long)
    rec[:, :, 0] = cfg.receiver_depth
    rec[:, :, 1] = torch.arange(nx)
    wavelet = torch.from_numpy(make_wavelet(cfg.wavelet_spec(), cfg.nt, cfg.dt))
    out = deepwave.scalar(
        torch.from_numpy(v),
        cfg.dx,
        cfg.dt,
        source_amplitudes=wavelet.reshape(1, 1, -1).repeat(N_SHOTS, 1, 1),
        source_locations=src,
        receiver_locations=rec,
        accuracy=cfg.accuracy,
        pml_width=cfg.pml_widths(),
        boundary=cfg.boundaries(),
        pml_freq=cfg.freq,
        max_vel=max(cfg.max_vel, float(v.max())),
        courant_number=cfg.courant_number,
    )
    data = out.receiver_amplitudes.detach().numpy()  # (shots, receivers, nt)
    return (-cfg.scale * data.transpose(0, 2, 1)).astype(np.float32)


def per_family(count: int) -> list[int]:
    """How many of ``count`` models each family gets (the first families one more)."""
    n = len(FAMILIES)
    return [count // n + (i < count % n) for i in range(n)]


def gallery_models(count: int, seed: int) -> np.ndarray:
    """``count`` velocity models (count, 70, 70) m/s, spread evenly over the families."""
    counts = zip(FAMILIES, per_family(count), strict=True)
    return np.concatenate([velocity_models(f, seed, 0, n) for f, n in counts if n])


def prefix_rows(small: int, large: int) -> np.ndarray | None:
    """Rows of ``gallery_models(large, s)`` holding ``gallery_models(small, s)``, in
    order (each family's first models), or None when ``small > large``."""
    if small > large:
        return None
    starts = np.cumsum([0, *per_family(large)])[:-1]
    return np.concatenate(
        [s + np.arange(n) for s, n in zip(starts, per_family(small), strict=True)]
    ).astype(np.int64)


def _init_worker(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _model_task(task: tuple[np.ndarray, Source]) -> np.ndarray:
    models, source = task
    return source.model(models)


def _chunks(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for s in range(0, len(array), size):
        yield array[s : s + size]


def model_all(
    models: np.ndarray, sources: Sequence[Source], workers: int, threads: int
) -> dict[Source, np.ndarray]:
    """Gathers (N, 5, nt, n_receivers) of ``models`` for every source, modelled
    ``CHUNK`` models a task over ``workers`` processes (``threads`` each)."""
    tasks = [(c, s) for s in sources for c in _chunks(models, CHUNK)]
    bar = tqdm(total=len(models) * len(sources), unit="model", desc="modelling")
    if workers > 1:
        pool = mp.get_context("spawn").Pool(workers, _init_worker, (threads,))
        results: Iterator[np.ndarray] = pool.imap(_model_task, tasks)
    else:
        pool = None
        _init_worker(threads)
        results = map(_model_task, tasks)
    blocks: dict[Source, list[np.ndarray]] = {s: [] for s in sources}
    try:
        for (_, source), block in zip(tasks, results, strict=True):
            blocks[source].append(block)
            bar.update(len(block))
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    return {s: np.concatenate(b) for s, b in blocks.items() if b}


# --------------------------------------------------------------------------- query sets


@dataclass(frozen=True)
class QuerySet:
    """One row of the perturbation table: gathers of ``source``, optionally perturbed."""

    name: str
    source: Source
    perturb: Perturb | None = None


QUERY_SETS: tuple[QuerySet, ...] = (
    QuerySet("as generated (deepwave, 15 Hz Ricker)", BASE),
    QuerySet("4 ms trigger delay", BASE, lambda g, r: delay_gathers(g, 4.0)),
    QuerySet("10 ms trigger delay", BASE, lambda g, r: delay_gathers(g, 10.0)),
    QuerySet("Gaussian noise 10 % of RMS", BASE, lambda g, r: add_gaussian_noise(g, 0.1, r)),
    QuerySet("Gaussian noise 30 % of RMS", BASE, lambda g, r: add_gaussian_noise(g, 0.3, r)),
    QuerySet("per-trace gain in [0.5, 2]", BASE, lambda g, r: apply_trace_gains(g, 0.5, 2.0, r)),
    QuerySet("deepwave, 18 Hz Ricker", Source("deepwave", 18.0)),
    QuerySet("deepwave, 12 Hz Ricker", Source("deepwave", 12.0)),
    QuerySet("second propagator (staggered FD, 15 Hz)", SECOND),
)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Acquisition:
    """A 2-D line acquisition cut from modelled gathers and written as SEG-Y.

    Attributes:
        name: the row's label.
        source: the gathers it is cut from.
        shots: source slots kept (0-based; the frame's x = 0, 170, 340, 520, 690 m).
        receivers: receiver columns kept of the source's grid, as ``slice`` arguments
            (start, stop, step).
        dt_ms: the file's sample interval, a whole multiple of 1 ms (decimated with an
            anti-alias filter).
    """

    name: str
    source: Source = BASE
    shots: tuple[int, ...] = tuple(range(N_SHOTS))
    receivers: tuple[int, int | None, int] = (0, None, 1)
    dt_ms: int = 1

    def write(self, path: Path, gather: np.ndarray) -> None:
        """Write this acquisition of one modelled gather (5, nt, n_receivers) as SEG-Y."""
        from scipy.signal import resample_poly

        shots = list(self.shots)
        keep = slice(*self.receivers)
        x = (np.arange(gather.shape[-1]) * self.source.receiver_spacing_m)[keep]
        traces = gather[shots][..., keep]
        if self.dt_ms != 1:
            traces = resample_poly(traces, 1, self.dt_ms, axis=1).astype(np.float32)
        spacing = float(np.median(np.diff(x)))
        write_segy(
            path,
            traces,
            float(self.dt_ms),
            dx_m=spacing,
            source_x_m=SOURCE_SLOTS_M[shots],
            receiver_x_m=x,
        )


ACQUISITIONS: tuple[Acquisition, ...] = (
    Acquisition("the frame itself (5 shots, 70 receivers at 10 m, 1 ms, 1 s)"),
    Acquisition("one shot at x = 0 m (end-on)", shots=(0,)),
    Acquisition("one shot at x = 340 m (split spread)", shots=(2,)),
    Acquisition("three shots at x = 0, 340, 690 m", shots=(0, 2, 4)),
    Acquisition("35 receivers at 20 m (x = 0-680 m)", receivers=(0, None, 2)),
    Acquisition("140 receivers at 5 m (deepwave on a 5 m grid)", FINE_GRID),
    Acquisition("2 ms sampling (anti-aliased decimation)", dt_ms=2),
    Acquisition("4 ms sampling (anti-aliased decimation)", dt_ms=4),
    Acquisition("2 s record (deepwave, 2000 samples; cut to 1 s)", LONG_RECORD),
    Acquisition("partial spread: 35 receivers at x = 0-340 m", receivers=(0, 35, 1)),
    Acquisition("spread of 30 receivers (x = 0-290 m; below half)", receivers=(0, 30, 1)),
)


@dataclass
class ReadBack:
    """What the reader made of one acquisition of every gallery gather.

    Attributes:
        uploads: the accepted files, in gallery order.
        rows: the gallery rows they belong to (int64).
        refusals: the reader's distinct refusal messages.
        refused: how many files were refused.
    """

    uploads: list[GatherUpload]
    rows: np.ndarray
    refusals: list[str]
    refused: int


def read_back(acquisition: Acquisition, gathers: np.ndarray, folder: Path) -> ReadBack:
    """Write each gather (N, 5, nt, n_receivers) as ``acquisition`` into ``folder`` and
    read it back with the service's reader."""
    uploads, rows, refusals, refused = [], [], [], 0
    path = folder / "upload.sgy"
    for i, gather in enumerate(gathers):
        acquisition.write(path, gather)
        try:
            uploads.append(read_gather(path, path.name))
            rows.append(i)
        except UploadError as exc:
            refused += 1
            if str(exc) not in refusals:
                refusals.append(str(exc))
        finally:
            path.unlink(missing_ok=True)
    return ReadBack(uploads, np.asarray(rows, np.int64), refusals, refused)


def mapped_summary(uploads: list[GatherUpload]) -> str:
    """'3 shots, 70 of 70 receivers' from the first upload (the geometry of all)."""
    first = uploads[0]
    covered = first.receiver_mask[first.shot_mask].sum(axis=1)
    lo, hi = int(covered.min()), int(covered.max())
    span = str(lo) if lo == hi else f"{lo}-{hi}"
    n = int(first.shot_mask.sum())
    return f"{n} shot{'s' * (n > 1)}, {span} of {N_RECEIVERS} receivers"


# --------------------------------------------------------------------------- scoring


@dataclass
class Embedded:
    """Embeddings (N, D) of query gathers, with the descriptor head's mean and std
    (N, 9) in descriptor units, or None without a head."""

    seismic: np.ndarray
    head_mean: np.ndarray | None
    head_std: np.ndarray | None


def embed(embedder: VelocityEmbedder, gathers: np.ndarray) -> Embedded:
    """Embed (N, 5, 1000, 70) raw gathers ``EMBED_BATCH`` at a time."""
    parts = [embedder.embed_gathers_with_head(b) for b in _chunks(gathers, EMBED_BATCH)]
    seismic = np.concatenate([p[0] for p in parts])
    if parts[0][1] is None:
        return Embedded(seismic, None, None)
    return Embedded(
        seismic, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    )


def spread_scales(
    calibration: VelocityCalibration, fam: np.ndarray, head: bool = False
) -> np.ndarray:
    """The service's calibration factors (Q, 9) of each query's spreads for its
    familiarity (``seislens.models.familiarity.spread_scale``)."""
    return np.array(
        [[spread_scale(calibration, n, float(f), head) for n in DESCRIPTOR_NAMES] for f in fam]
    )


def within(truth: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """The fraction of finite (query, descriptor) pairs with |truth - mean| <= std."""
    ok = np.isfinite(mean) & np.isfinite(truth) & np.isfinite(std)
    return float(np.mean((np.abs(truth - mean) <= std)[ok]))


def coverage(
    library: LoadedLibrary,
    seismic: np.ndarray,
    truth: np.ndarray,
    calibration: VelocityCalibration | None,
    fam: np.ndarray,
    k: int = SERVED_K,
) -> tuple[float, float]:
    """Coverage of the served mean ± std over the top-``k`` neighbours: raw, and with
    the calibrated spread of each query's familiarity ``fam`` (NaN without a
    calibration)."""
    scores, ids = library.search(seismic, min(k, len(library)))
    lib_desc = library.descriptors(np.arange(len(library)), DESCRIPTOR_NAMES)
    mean, std = neighbour_estimate(scores, ids, lib_desc, DEFAULT_TEMPERATURE)
    raw = within(truth, mean, std)
    if calibration is None:
        return raw, float("nan")
    return raw, within(truth, mean, std * spread_scales(calibration, fam))


def head_figures(
    e: Embedded, truth: np.ndarray, calibration: VelocityCalibration | None, fam: np.ndarray
) -> dict[str, float]:
    """The descriptor head's MRE (as ``open_set``: relative errors averaged over
    queries and descriptors) and the coverage of its mean ± std, raw and calibrated
    (NaN without a head, or without head factors in the calibration)."""
    nan = float("nan")
    if e.head_mean is None or e.head_std is None:
        return {"head_mre": nan, "head_coverage": nan, "head_calibrated_coverage": nan}
    calibrated = nan
    if calibration is not None and calibration.head_std_scale_by_bin:
        scaled = e.head_std * spread_scales(calibration, fam, head=True)
        calibrated = within(truth, e.head_mean, scaled)
    return {
        "head_mre": float(relative_errors(e.head_mean, truth).mean()),
        "head_coverage": within(truth, e.head_mean, e.head_std),
        "head_calibrated_coverage": calibrated,
    }


def familiarity_of(
    library: LoadedLibrary,
    seismic: np.ndarray,
    calibration: VelocityCalibration | None,
    gathers: np.ndarray,
    density: GaussianDensity | None = None,
) -> np.ndarray:
    """Each query's familiarity (Q,) as the service scores it: its best library score's
    CDF (joint with the embedding's distance under the calibration's ``density``, when
    it has one) capped by the signal factor of the gather's (Q, shots, time, receivers)
    lateral SNR; NaN without a calibration."""
    best = library.search(seismic, 1)[0][:, 0]
    if calibration is None:
        return np.full(len(best), np.nan)
    cap = np.array([signal_factor(lateral_snr_db(g), calibration) for g in gathers])
    distance = density.distance(seismic) if density is not None else None
    return np.minimum(joint_familiarity(best, distance, calibration), cap)


def bundle_density(bundle: Path, calibration: VelocityCalibration | None) -> GaussianDensity | None:
    """The calibration's embedding density (None without one), as the service loads it."""
    if calibration is None or calibration.density is None:
        return None
    return load_density(bundle, calibration.density)


def warned_rate(fam: np.ndarray, calibration: VelocityCalibration | None) -> float:
    """How often the low-familiarity warning fires (NaN without a calibration)."""
    return float(np.mean(fam < calibration.warn_below)) if calibration else float("nan")


def score(
    embedder: VelocityEmbedder,
    library: LoadedLibrary,
    gathers: np.ndarray,
    gallery: np.ndarray,
    models: np.ndarray,
    desc: np.ndarray,
    calibration: VelocityCalibration | None,
    density: GaussianDensity | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """Closed- and open-set figures, ±1 std coverage, the head's figures and
    familiarity of one query set; and each query's familiarity (N,)."""
    e = embed(embedder, gathers)
    fam = familiarity_of(library, e.seismic, calibration, gathers, density)
    opened = open_set(library, {"seismic": e.seismic, "desc": desc, "models": models})
    raw, calibrated = coverage(library, e.seismic, desc, calibration, fam)
    figures = {
        **recall_at_k(e.seismic, gallery, (1, 5, 10)),
        "descriptor_mre": opened["descriptor_mre"],
        "top1_mae": opened["model_top1"]["mae"],
        "top1_ssim": opened["model_top1"]["ssim"],
        "topk_mae": opened["model_top10"]["mae"],
        "topk_ssim": opened["model_top10"]["ssim"],
        "coverage": raw,
        "calibrated_coverage": calibrated,
        **head_figures(e, desc, calibration, fam),
        "familiarity": float(np.median(fam)),
        "warned": warned_rate(fam, calibration),
    }
    return figures, fam


def cell(value: float) -> str:
    """A table cell: three decimals, or a dash for NaN."""
    return DASH if np.isnan(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- odd gathers


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an in-distribution score > an outside one), ties counting one half."""
    a, b = np.asarray(inside)[:, None], np.asarray(outside)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def large_model(rng: np.random.Generator, depth: int = 300, width: int = 1200) -> np.ndarray:
    """A large 2-D velocity model (depth, width) m/s at the frame's 10 m cells, built the
    way the published Marmousi model's geology is described (not its grid): a stack of
    25-40 thin sedimentary layers, velocity rising with depth with reversals, folded into an
    anticline and synclines and cut by three dipping normal faults with throws of
    50-250 m."""
    z, x = np.mgrid[0:depth, 0:width].astype(np.float64)
    n_layers = int(rng.integers(25, 41))
    tops = np.sort(rng.uniform(5, depth - 10, n_layers))
    speeds = np.sort(rng.uniform(1600, 4500, n_layers + 1))
    swap = rng.random(n_layers + 1) < 0.25  # velocity reversals
    speeds[1:][swap[1:]] = speeds[:-1][swap[1:]] - rng.uniform(50, 300, int(swap[1:].sum()))
    speeds[0] = 1500.0
    fold = rng.uniform(15, 45) * np.sin(2 * np.pi * x / rng.uniform(500, 1100) + rng.uniform(0, 6))
    shift = fold * (1 - z / (2.0 * depth))
    for x0 in rng.uniform(0.15, 0.85, 3) * width:
        dip = np.tan(np.deg2rad(rng.uniform(50, 75)))
        shift = shift + np.where(x > x0 + z / dip, rng.uniform(5, 25), 0.0)
    layer = np.searchsorted(tops, z - shift, side="right")
    return np.clip(speeds[np.clip(layer, 0, n_layers)], 1500.0, 4500.0).astype(np.float32)


def large_model_crops(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` crops (count, 70, 70) m/s of :func:`large_model` (one model per 10 crops)."""
    crops = []
    for i in range(count):
        if i % 10 == 0:
            big = large_model(rng)
        r = int(rng.integers(0, big.shape[0] - N_RECEIVERS + 1))
        c = int(rng.integers(0, big.shape[1] - N_RECEIVERS + 1))
        crops.append(big[r : r + N_RECEIVERS, c : c + N_RECEIVERS])
    return np.array(crops, np.float32)


def odd_gathers(count: int, seed: int) -> dict[str, np.ndarray]:
    """Gathers unlike any family: noise, random reflectivity, salt bodies, checkerboards,
    crops of a large folded and faulted model."""
    rng = np.random.default_rng([seed, 99])
    shape = (count, N_SHOTS, N_TIME, N_RECEIVERS)
    spikes = rng.standard_normal(shape) * (rng.random(shape) < 0.01)
    t = (np.arange(-60, 61) * GATHER_DT_MS / 1000.0) * np.pi * 15.0
    ricker = ((1 - 2 * t**2) * np.exp(-(t**2))).astype(np.float32)
    reflectivity = np.apply_along_axis(np.convolve, 2, spikes, ricker, mode="same")
    salt, boards = [], []
    z, x = np.mgrid[0:70, 0:70]
    for _ in range(count):
        base = 1800.0 + 25.0 * z + rng.uniform(-100, 100)
        cz, cx, rz, rx = rng.uniform(25, 50), rng.uniform(15, 55), *rng.uniform(8, 18, 2)
        inside = ((z - cz) / rz) ** 2 + ((x - cx) / rx) ** 2 < 1
        salt.append(np.where(inside, 4400.0, base))
        size = int(rng.integers(6, 15))
        lo, hi = rng.uniform(1800, 2600), rng.uniform(3400, 4400)
        boards.append(np.where((z // size + x // size) % 2 == 0, lo, hi))
    return {
        "pure noise": rng.standard_normal(shape).astype(np.float32),
        "random reflectivity": reflectivity.astype(np.float32),
        "salt-body velocity models": remodel_gathers(np.array(salt, np.float32)),
        "checkerboard velocity models": remodel_gathers(np.array(boards, np.float32)),
        "crops of a large folded, faulted model": remodel_gathers(large_model_crops(count, rng)),
    }


# --------------------------------------------------------------------------- tables

MAIN_HEADER = [
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
    "head MRE",
    "head ±1 coverage",
    "head calibrated ±1 coverage",
    "familiarity (median)",
    "warned",
]
MAIN_KEYS = (
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
    "head_mre",
    "head_coverage",
    "head_calibrated_coverage",
    "familiarity",
    "warned",
)
PROPAGATOR_HEADER = [
    "propagator (synthetic)",
    "s→v R@1",
    "s→v R@10",
    "descriptor MRE",
    "top-1 MAE",
    "top-1 SSIM",
    "top-10 MAE",
    "top-10 SSIM",
    "±1 std coverage",
    "calibrated ±1 coverage",
    "head MRE",
    "head ±1 coverage",
    "head calibrated ±1 coverage",
]
PROPAGATOR_KEYS = tuple(k for k in MAIN_KEYS if k not in ("recall@5", "familiarity", "warned"))
PROPAGATORS = {
    BASE: "deepwave (OpenFWI's setting, 15 Hz Ricker)",
    SECOND: "second propagator (staggered FD, 15 Hz; never trained on)",
}
GEOMETRY_HEADER = [
    "acquisition (SEG-Y through the reader)",
    "mapped onto the frame",
    "s→v R@1",
    "s→v R@10",
    "familiarity (median)",
    "warned (familiarity)",
    "any served warning",
]


def geometry_row(
    acquisition: Acquisition,
    got: ReadBack,
    embedder: VelocityEmbedder,
    library: LoadedLibrary,
    gallery: np.ndarray,
    calibration: VelocityCalibration | None,
    density: GaussianDensity | None = None,
) -> list[str]:
    """One geometry row: the mapping, recall against the gallery and familiarity; the
    reader's refusal instead of figures when every file was refused."""
    if not got.uploads:
        return [acquisition.name, f"refused: {got.refusals[0]}", *[DASH] * 5]
    data = np.stack([u.data for u in got.uploads])
    seismic = embed(embedder, data).seismic
    recall = recall_against(seismic, gallery, got.rows)
    fam = familiarity_of(library, seismic, calibration, data, density)
    partial = np.array([u.partial_geometry for u in got.uploads])
    served = partial | (fam < calibration.warn_below) if calibration else partial
    mapped = mapped_summary(got.uploads)
    if got.refused:
        mapped += f" ({got.refused} refused: {got.refusals[0]})"
    return [
        acquisition.name,
        mapped,
        cell(recall["recall@1"]),
        cell(recall["recall@10"]),
        cell(float(np.median(fam))),
        cell(warned_rate(fam, calibration)),
        cell(float(np.mean(served))),
    ]


def recall_against(seismic: np.ndarray, gallery: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """R@1/R@10 of queries (Q, D) whose true models are ``gallery[rows]``, each ranked
    against the whole gallery (N, D); ties count against the truth, as
    ``seislens.training.metrics.ranks_of_truth``."""
    sims = seismic @ gallery.T
    rank = (sims >= sims[np.arange(len(rows)), rows][:, None]).sum(axis=1) - 1
    return {f"recall@{k}": float(np.mean(rank < k)) for k in (1, 10)}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    ap.add_argument(
        "--gallery", type=int, default=200, help="fresh models of the perturbation and geometry"
    )
    ap.add_argument(
        "--propagator-gallery",
        type=int,
        default=1000,
        help="fresh models of the deepwave/second-propagator table (0 skips it)",
    )
    ap.add_argument("--seed", type=int, default=7, help="model seed (training used 1-3)")
    ap.add_argument("--threads", type=int, default=1, help="threads per process (torch, ONNX)")
    ap.add_argument("--workers", type=int, default=1, help="modelling processes")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder keeping the modelled gathers between runs (several GB at the defaults)",
    )
    args = ap.parse_args(argv)
    if args.gallery < 10:
        ap.error("--gallery must be at least 10")
    if args.propagator_gallery and args.propagator_gallery < 10:
        ap.error("--propagator-gallery must be 0 or at least 10")
    return args


def command_line(argv: list[str] | None) -> str:
    """The command that made the tables, with its OMP_NUM_THREADS."""
    words = ["python", "bench/robustness.py", *(sys.argv[1:] if argv is None else argv)]
    omp = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={omp} " if omp else "") + shlex.join(words)


def cached_model_all(
    models: np.ndarray, sources: Sequence[Source], args: argparse.Namespace
) -> dict[Source, np.ndarray]:
    """:func:`model_all`, reading and writing the gathers of each (models, source) pair
    under ``args.cache`` when one is given (one ``.npy`` per pair, named by a hash of
    the models and the source; written aside, then renamed), so that a rerun on another
    bundle models nothing again."""
    if args.cache is None:
        return model_all(models, sources, args.workers, args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(np.ascontiguousarray(models, np.float32).tobytes()).hexdigest()
    paths = {
        s: args.cache / f"{hashlib.sha256(f'{digest}{s!r}'.encode()).hexdigest()[:24]}.npy"
        for s in sources
    }
    missing = [s for s in sources if not paths[s].exists()]
    out = model_all(models, missing, args.workers, args.threads) if missing else {}
    for s in missing:
        aside = paths[s].with_suffix(".part.npy")
        np.save(aside, out[s])
        os.replace(aside, paths[s])
    return {s: out[s] if s in out else np.load(paths[s]) for s in sources}


def model_everything(
    args: argparse.Namespace, models: np.ndarray, wide: np.ndarray | None
) -> tuple[dict[Source, np.ndarray], dict[Source, np.ndarray]]:
    """Gathers of the gallery's models for every source the query sets and acquisitions
    need, and of the propagator table's models (``wide``) for deepwave and the second
    propagator; the gallery's deepwave and FD gathers are taken from the wider set when
    it holds its models."""
    needed = [q.source for q in QUERY_SETS] + [a.source for a in ACQUISITIONS]
    sources = list(dict.fromkeys(needed))
    wide_gathers: dict[Source, np.ndarray] = {}
    rows = None
    if wide is not None:
        wide_gathers = cached_model_all(wide, list(PROPAGATORS), args)
        rows = prefix_rows(len(models), len(wide))
        if rows is not None and not np.array_equal(wide[rows], models):
            rows = None
    shared = [s for s in sources if s in wide_gathers] if rows is not None else []
    gathers = cached_model_all(models, [s for s in sources if s not in shared], args)
    for s in shared:
        gathers[s] = wide_gathers[s][rows]
    return gathers, wide_gathers


def main(argv: list[str] | None = None) -> dict[str, list[list[str]]]:
    """Run the benchmark and print its tables; returns them by name (rows of cells)."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    models = gallery_models(args.gallery, args.seed)
    desc = compute_descriptors(models)
    wide = gallery_models(args.propagator_gallery, args.seed) if args.propagator_gallery else None
    gathers, wide_gathers = model_everything(args, models, wide)
    t_model = time.perf_counter() - t0
    manifest = read_manifest(args.bundle)
    embedder = VelocityEmbedder(args.bundle, manifest.velocity, None, args.threads)
    calibration = manifest.velocity.calibration
    density = bundle_density(args.bundle, calibration)
    library = LoadedLibrary.open(args.bundle, manifest, VELOCITY)
    tables: dict[str, list[list[str]]] = {"main": [], "propagators": [], "geometry": [], "odd": []}
    try:
        gallery = embedder.embed_velocity_models(models)
        inside = np.zeros(0)
        for i, q in enumerate(tqdm(QUERY_SETS, desc="query sets")):
            g = gathers[q.source]
            if q.perturb is not None:
                g = q.perturb(g, np.random.default_rng([args.seed, i]))
            r, fam = score(embedder, library, g, gallery, models, desc, calibration, density)
            tables["main"].append([q.name, *(cell(r[k]) for k in MAIN_KEYS)])
            inside = fam if i == 0 else inside
        if wide is not None:
            wide_gallery = embedder.embed_velocity_models(wide)
            wide_desc = compute_descriptors(wide)
            for source, name in PROPAGATORS.items():
                g = wide_gathers[source]
                r, _ = score(
                    embedder, library, g, wide_gallery, wide, wide_desc, calibration, density
                )
                tables["propagators"].append([name, *(cell(r[k]) for k in PROPAGATOR_KEYS)])
        with tempfile.TemporaryDirectory(prefix="seislens-robustness-") as folder:
            for a in tqdm(ACQUISITIONS, desc="acquisitions"):
                got = read_back(a, gathers[a.source], Path(folder))
                tables["geometry"].append(
                    geometry_row(a, got, embedder, library, gallery, calibration, density)
                )
        n_odd = max(10, args.gallery // 4)
        if calibration is not None:
            for name, g in odd_gathers(n_odd, args.seed).items():
                seismic = embed(embedder, g).seismic
                fam = familiarity_of(library, seismic, calibration, g, density)
                tables["odd"].append(
                    [name, cell(auroc(inside, fam)), cell(warned_rate(fam, calibration))]
                )
        size = len(library)
    finally:
        library.close()
    _print_tables(args, argv, tables, size, calibration, n_odd, t_model, time.perf_counter() - t0)
    return tables


def _print_tables(
    args: argparse.Namespace,
    argv: list[str] | None,
    tables: dict[str, list[list[str]]],
    size: int,
    calibration: VelocityCalibration | None,
    n_odd: int,
    t_model: float,
    t_total: float,
) -> None:
    """Print the command line and the four tables with their captions."""
    print(f"\n`{command_line(argv)}`\n")
    print(
        f"## Robustness (synthetic): gallery of {args.gallery} fresh in-family models "
        f"(seed {args.seed}), bundle {args.bundle}, library of {size}\n"
    )
    print_table(MAIN_HEADER, tables["main"])
    print(
        f"\nOpen set: descriptors from the top-5, model MAE/SSIM in [-1, 1] units; coverage "
        f"over the served top-{SERVED_K} mean ± std; head: the seismic graph's descriptor "
        f"head ({DASH} without one or without head factors in the calibration)."
    )
    if tables["propagators"]:
        print(
            f"\n### Propagators: the same {args.propagator_gallery} fresh models (seed "
            f"{args.seed}, evenly over the 8 families), gallery of their {args.propagator_gallery} "
            "velocity embeddings\n"
        )
        print_table(PROPAGATOR_HEADER, tables["propagators"])
    print(
        f"\n### Geometry: the {args.gallery} gallery gathers cut to another acquisition, "
        "written as SEG-Y and read back by the service's reader (R@k against the gallery; "
        "'any served warning' counts the partial-geometry warning too)\n"
    )
    print_table(GEOMETRY_HEADER, tables["geometry"])
    if tables["odd"]:
        assert calibration is not None
        print(
            f"\n### Familiarity against gathers unlike any family ({n_odd} each; warning "
            f"below {calibration.warn_below}): AUROC against the as-generated queries, and "
            "the warning's rate\n"
        )
        print_table(["queries", "AUROC vs in-family", "warned"], tables["odd"])
    print(f"\nModelling {t_model:.0f} s, in all {t_total:.0f} s.")


if __name__ == "__main__":
    main()
