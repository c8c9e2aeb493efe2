"""How familiar a query is, and spreads that cover the truth as often as they claim.

NumPy only; the service and the calibration (``seislens.training.velocity_calibration``)
use the same functions.

* **Familiarity** of a query: the empirical CDF of its best cosine score against the
  library among held-out in-distribution queries' best scores
  (:class:`~seislens.models.manifest.VelocityCalibration.top1_scores`): 0.5 is a typical
  in-distribution query, 0 is less similar to the library than every calibration query.
  It never increases when the best score falls. A gather buried in noise can still
  find a close match (faint noise moves the best score a few hundredths either way, and
  an encoder maps a gather drowned far below its training's noise floor to wherever it
  maps noise), so the score is capped by a **signal factor** of the gather's own
  signal-to-noise estimate (:func:`signal_factor`,
  :func:`seislens.models.gather_quality.lateral_snr_db`): 1 at and above the
  calibration's ``snr_db_full``, 0 at and below ``snr_db_zero``, linear between.
  With a **density** (:class:`GaussianDensity`, fitted on gather embeddings of the
  library's own kind), a gather also counts as unfamiliar when its embedding lies far
  from theirs, even if some library model matches it well (an encoder can map a
  geology no family has onto a confident layered answer): the familiarity is then the
  empirical CDF, among the calibration queries, of min(best-score CDF, squared
  Mahalanobis distance's upper tail), so it still falls below ``warn_below`` on about
  that fraction of in-distribution queries (:func:`joint_familiarity`).
* **Calibrated spread**: split-conformal scaling of the neighbours' weighted standard
  deviation, per descriptor: the factor is the ``coverage`` quantile of
  |truth − mean| / std over the calibration queries, so mean ± factor·std held the truth
  in that fraction of them. With familiarity bins the factor is taken per bin of the
  query's familiarity (Mondrian conformal), made non-increasing with familiarity, so
  the spreads of unfamiliar queries widen (:func:`spread_scale`).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from seislens.models.manifest import VelocityCalibration, VelocityDensity

SNR_DB_FULL = 5.0
"""Estimated lateral SNR (dB) from which a gather's familiarity is not capped: the
encoders' training noise reaches 0 dB true SNR, which the estimate reads as about
−3 dB, so the cap starts a little above the trained range."""
SNR_DB_ZERO = -10.0
"""Estimated lateral SNR (dB) at which the cap reaches 0: noise three times the gather's
own RMS (−9.5 dB true), far below anything the encoders were trained on."""

SPREAD_FLOOR_FRACTION = 1e-3
"""Spreads below this fraction of a descriptor's floor count as the floor fraction in the
ratio (a unanimous top-k says nothing about its own error)."""


def familiarity(best_score: float | np.ndarray, calibration: VelocityCalibration) -> np.ndarray:
    """Empirical CDF of ``best_score`` (cosine, any shape) among the calibration
    queries' best scores: values in [0, 1], non-decreasing in the score."""
    ref = np.asarray(calibration.top1_scores, dtype=np.float64)
    if ref.ndim != 1 or ref.size == 0 or np.any(np.diff(ref) < 0):
        raise ValueError("calibration top1_scores must be a non-empty ascending list")
    score = np.asarray(best_score, dtype=np.float64)
    return np.searchsorted(ref, score, side="right") / ref.size


def signal_factor(snr_db: float | None, calibration: VelocityCalibration) -> float:
    """In [0, 1]: how far the gather's estimated SNR (dB) stands above the calibration's
    floor — 1 at or above ``snr_db_full``, 0 at or below ``snr_db_zero``, linear between;
    1 when the calibration sets no floor or the SNR could not be estimated."""
    full, zero = calibration.snr_db_full, calibration.snr_db_zero
    if snr_db is None or full is None or zero is None:
        return 1.0
    return float(np.clip((snr_db - zero) / (full - zero), 0.0, 1.0))


DENSITY_SHRINKAGE = 0.05
"""Default covariance shrinkage of the embedding density: the fitted covariance is
mixed with this fraction of its mean variance times the identity, which keeps the
precision well conditioned on a few thousand 256-D embeddings."""


@dataclass(frozen=True)
class GaussianDensity:
    """A Gaussian over embeddings: ``mean`` (D,) and ``precision`` (D, D) float64."""

    mean: np.ndarray
    precision: np.ndarray

    def distance(self, vectors: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances (Q,) of embeddings (Q, D) or (D,)."""
        v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if v.ndim != 2 or v.shape[1] != self.mean.shape[0]:
            dim = self.mean.shape[0]
            raise ValueError(f"embeddings of shape {v.shape}; the density has dim {dim}")
        z = v - self.mean
        return np.einsum("ij,jk,ik->i", z, self.precision, z)

    def save(self, path: Path) -> str:
        """Write the density to ``path`` (.npz) aside, then rename; returns its sha256."""
        aside = path.with_name(path.name + ".part")
        with open(aside, "wb") as f:
            np.savez(f, mean=self.mean, precision=self.precision)
        aside.replace(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def fit_density(vectors: np.ndarray, shrinkage: float = DENSITY_SHRINKAGE) -> GaussianDensity:
    """The Gaussian of embeddings (N, D), covariance shrunk towards its mean variance.

    Raises:
        ValueError: fewer than two embeddings, or ``shrinkage`` outside [0, 1].
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings {x.shape}: want (N >= 2, D)")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage is {shrinkage}; expected within [0, 1]")
    mean = x.mean(axis=0)
    cov = np.cov(x - mean, rowvar=False)
    dim = cov.shape[0]
    cov = (1.0 - shrinkage) * cov + shrinkage * (np.trace(cov) / dim) * np.eye(dim)
    return GaussianDensity(mean, np.linalg.pinv(cov, hermitian=True))


@functools.lru_cache(maxsize=8)
def _read_density(path: str, sha256: str) -> GaussianDensity:
    raw = Path(path).read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"{path}: sha256 differs from the calibration's")
    with np.load(path) as f:
        return GaussianDensity(np.array(f["mean"]), np.array(f["precision"]))


def load_density(bundle: Path, spec: VelocityDensity) -> GaussianDensity:
    """The density file of a calibration, checked against its sha256 (cached per file).

    Raises:
        OSError: the file is missing or unreadable; ValueError: its hash differs.
    """
    return _read_density(str(Path(bundle) / spec.file), spec.sha256)


def distance_tail(distance: float | np.ndarray, spec: VelocityDensity) -> np.ndarray:
    """The fraction of calibration queries at least as far from the density as
    ``distance`` (squared Mahalanobis, any shape): 1 for a central embedding, 0 for one
    farther than every calibration query."""
    ref = np.asarray(spec.reference, dtype=np.float64)
    return (ref.size - np.searchsorted(ref, np.asarray(distance), side="left")) / ref.size


def joint_statistic(
    best_score: float | np.ndarray, distance: float | np.ndarray, calibration: VelocityCalibration
) -> np.ndarray:
    """min(best-score CDF, distance upper tail), the statistic whose CDF among the
    calibration queries is the joint familiarity (``calibration.density`` must be set)."""
    assert calibration.density is not None
    return np.minimum(
        familiarity(best_score, calibration), distance_tail(distance, calibration.density)
    )


def joint_familiarity(
    best_score: float | np.ndarray,
    distance: float | np.ndarray | None,
    calibration: VelocityCalibration,
) -> np.ndarray:
    """The familiarity from the best score and, with a density and a distance, from how
    far the embedding lies (the CDF of :func:`joint_statistic` among the calibration
    queries'); the best score's CDF alone otherwise."""
    if calibration.density is None or distance is None:
        return familiarity(best_score, calibration)
    ref = np.asarray(calibration.density.combined, dtype=np.float64)
    stat = joint_statistic(best_score, distance, calibration)
    return np.searchsorted(ref, stat, side="right") / ref.size


def capped_familiarity(
    best_score: float,
    snr_db: float | None,
    calibration: VelocityCalibration,
    distance: float | None = None,
) -> float:
    """The familiarity of a query (:func:`joint_familiarity`), capped by the signal
    factor of its estimated SNR (never above either)."""
    fam = float(joint_familiarity(best_score, distance, calibration))
    return min(fam, signal_factor(snr_db, calibration))


def conformal_scale(
    abs_errors: np.ndarray, spreads: np.ndarray, floor: float, coverage: float
) -> float:
    """The factor c such that |error| ≤ c·spread holds in ``coverage`` of the queries.

    Args:
        abs_errors: (Q,) |truth − estimate| of one descriptor, in its unit.
        spreads: (Q,) the estimate's spread (weighted std), same unit.
        floor: the descriptor's relative-error floor (its unit); spreads are floored at
            ``SPREAD_FLOOR_FRACTION`` of it.
        coverage: the wanted coverage in (0, 1), e.g. 0.6827 for ±1σ.
    """
    abs_errors = np.asarray(abs_errors, dtype=np.float64)
    spreads = np.asarray(spreads, dtype=np.float64)
    if abs_errors.shape != spreads.shape or abs_errors.ndim != 1 or abs_errors.size == 0:
        raise ValueError(f"errors {abs_errors.shape} and spreads {spreads.shape}: want (Q,)")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage is {coverage}; expected within (0, 1)")
    ratio = abs_errors / np.maximum(spreads, SPREAD_FLOOR_FRACTION * floor)
    n = ratio.size
    # the finite-sample split-conformal quantile: rank ceil((n + 1) · coverage)
    rank = min(n, int(np.ceil((n + 1) * coverage)))
    return float(np.sort(ratio)[rank - 1])


def bin_of(familiarity_score: float, bins: list[float]) -> int:
    """The index of the familiarity bin (ascending upper edges) holding the score."""
    return min(
        int(np.searchsorted(np.asarray(bins), familiarity_score, side="left")), len(bins) - 1
    )


def spread_scale(
    calibration: VelocityCalibration, name: str, familiarity_score: float | None, head: bool = False
) -> float:
    """The factor for descriptor ``name``'s spread of a query of this familiarity: the
    query's bin's factor when the calibration has bins (the head's with ``head``), else
    the single ``std_scale`` (1 for the head without bins, or an unknown descriptor)."""
    by_bin = calibration.head_std_scale_by_bin if head else calibration.std_scale_by_bin
    if by_bin and calibration.familiarity_bins and familiarity_score is not None:
        return by_bin[bin_of(familiarity_score, calibration.familiarity_bins)].get(name, 1.0)
    return 1.0 if head else calibration.std_scale.get(name, 1.0)


def monotone_bin_scales(
    abs_errors: np.ndarray,
    spreads: np.ndarray,
    fam: np.ndarray,
    bins: list[float],
    floor: float,
    coverage: float,
) -> list[float]:
    """Per familiarity bin, the conformal factor of one descriptor, made non-increasing
    with familiarity (a bin with fewer than 5 queries takes the pooled factor).

    Args:
        abs_errors, spreads: (Q,) as :func:`conformal_scale`; fam: (Q,) familiarities.
        bins: ascending upper edges, the last 1.0.
    """
    pooled = conformal_scale(abs_errors, spreads, floor, coverage)
    which = np.array([bin_of(float(f), bins) for f in fam])
    out = []
    for b in range(len(bins)):
        rows = which == b
        out.append(
            conformal_scale(abs_errors[rows], spreads[rows], floor, coverage)
            if rows.sum() >= 5
            else pooled
        )
    return list(np.maximum.accumulate(np.asarray(out)[::-1])[::-1])
