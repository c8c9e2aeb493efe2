"""Calibrate a velocity bundle's familiarity score and descriptor spreads (no torch).

Held-out in-distribution gathers (OpenFWI-format folders whose velocity models are not
in the library) are searched against the bundle's library exactly as the service
searches them (top-k, the served estimator); their best scores become the familiarity
reference and their descriptor errors the split-conformal spread factors
(:mod:`seislens.models.familiarity`). The caller opens the bundle and writes the result
into its manifest (``seislens calibrate velocity``). The spread factors are also taken
per familiarity bin (tertiles by default), and for the descriptor head's predicted std
when the bundle has one, so unfamiliar queries get the wider spreads their errors need.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from seislens.data.openfwi import OpenFWIDataset
from seislens.models.descriptors import DESCRIPTOR_FLOORS, DESCRIPTOR_NAMES
from seislens.models.embedders import VelocityEmbedder
from seislens.models.estimation import DEFAULT_TEMPERATURE, neighbour_estimate
from seislens.models.familiarity import (
    SNR_DB_FULL,
    SNR_DB_ZERO,
    GaussianDensity,
    conformal_scale,
    joint_familiarity,
    joint_statistic,
    monotone_bin_scales,
)
from seislens.models.library_view import LibraryView
from seislens.models.manifest import VelocityCalibration, VelocityDensity
from seislens.training.velocity_eval import embed_gathers_with_head_of

MIN_QUERIES = 20
"""Fewer held-out queries than this give no usable quantiles: refused."""


def calibrate_velocity(
    embedder: VelocityEmbedder,
    library: LibraryView,
    datasets: list[OpenFWIDataset],
    index_path: str,
    encoder_sha256: str,
    k: int = 10,
    warn_below: float = 0.05,
    coverage: float = 0.6827,
    progress: bool = True,
    n_bins: int = 3,
    snr_db_full: float | None = SNR_DB_FULL,
    snr_db_zero: float | None = SNR_DB_ZERO,
    density: GaussianDensity | None = None,
    density_info: dict[str, object] | None = None,
) -> VelocityCalibration:
    """Familiarity reference and spread factors from held-out gathers.

    Args:
        embedder: the bundle's velocity embedder.
        library: the bundle's velocity library (``models`` array, descriptors).
        datasets: held-out OpenFWI-format datasets (gathers (5, 1000, 70), models and
            descriptors); none of their velocity models may be in the library.
        index_path, encoder_sha256: the index and seismic encoder calibrated.
        k: neighbours per query, as the service's default ``k``.
        warn_below: familiarity under which answers carry a warning.
        coverage: the coverage the calibrated ±1 spread is to have.
        progress: a progress bar while embedding.
        n_bins: familiarity bins of equal width for the per-bin factors (1: none).
        snr_db_full, snr_db_zero: the signal factor's ramp (dB of the lateral SNR
            estimate) that caps the familiarity of noisy gathers; None: no cap.

    Raises:
        ValueError: fewer than ``MIN_QUERIES`` gathers, or k < 1.
    """
    if k < 1:
        raise ValueError(f"k is {k}; expected k >= 1")
    total = sum(len(d) for d in datasets)
    if total < MIN_QUERIES:
        raise ValueError(f"{total} calibration gathers; at least {MIN_QUERIES} are needed")
    queries, head_mean, head_std = embed_gathers_with_head_of(embedder, datasets, progress)
    truth = np.concatenate([d.all_descriptors() for d in datasets])
    k = min(k, len(library))
    scores, ids = library.search(queries, k)
    lib_desc = library.descriptors(np.arange(len(library)), DESCRIPTOR_NAMES)
    mean, std = neighbour_estimate(scores, ids, lib_desc, DEFAULT_TEMPERATURE)
    scale = {
        name: conformal_scale(
            np.abs(mean[:, j] - truth[:, j]), std[:, j], DESCRIPTOR_FLOORS[name], coverage
        )
        for j, name in enumerate(DESCRIPTOR_NAMES)
    }
    cal = VelocityCalibration(
        index_path=index_path,
        encoder_sha256=encoder_sha256,
        k=k,
        queries=total,
        top1_scores=sorted(float(s) for s in scores[:, 0]),
        warn_below=warn_below,
        coverage=coverage,
        std_scale=scale,
        snr_db_full=snr_db_full,
        snr_db_zero=snr_db_zero,
        data=[str(Path(d.folder)) for d in datasets],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    distance = None
    if density is not None:
        distance = density.distance(queries)
        cal = _with_density(cal, scores[:, 0], distance, density_info or {})
    if n_bins <= 1:
        return cal
    bins = [round((b + 1) / n_bins, 6) for b in range(n_bins)]
    fam = joint_familiarity(scores[:, 0], distance, cal)
    update: dict[str, object] = {
        "familiarity_bins": bins,
        "std_scale_by_bin": _bin_scales(mean, std, truth, fam, bins, coverage),
    }
    if head_mean is not None and head_std is not None:
        update["head_std_scale_by_bin"] = _bin_scales(
            head_mean, head_std, truth, fam, bins, coverage
        )
    return cal.model_copy(update=update)


def _with_density(
    cal: VelocityCalibration, best: np.ndarray, distance: np.ndarray, info: dict[str, object]
) -> VelocityCalibration:
    """``cal`` with its density section: the queries' distances and joint statistics."""
    spec = VelocityDensity.model_validate(
        {**info, "reference": sorted(float(d) for d in distance), "combined": [0.0]}
    )
    partial = cal.model_copy(update={"density": spec})
    stat = joint_statistic(best, distance, partial)
    spec = spec.model_copy(update={"combined": sorted(float(v) for v in stat)})
    return cal.model_copy(update={"density": spec})


def _bin_scales(
    mean: np.ndarray,
    std: np.ndarray,
    truth: np.ndarray,
    fam: np.ndarray,
    bins: list[float],
    coverage: float,
) -> list[dict[str, float]]:
    """Per familiarity bin, descriptor → factor (non-increasing with familiarity)."""
    per_name = {
        name: monotone_bin_scales(
            np.abs(mean[:, j] - truth[:, j]),
            std[:, j],
            fam,
            bins,
            DESCRIPTOR_FLOORS[name],
            coverage,
        )
        for j, name in enumerate(DESCRIPTOR_NAMES)
    }
    return [{name: float(v[b]) for name, v in per_name.items()} for b in range(len(bins))]
