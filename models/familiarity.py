"""How familiar a query is, and spreads that cover the truth as often as they claim.

NumPy only; the service and the calibration (``seislens.training.velocity_calibration``)
use the same functions.

* **Familiarity** of a query: the empirical CDF of its best cosine score against the
  library among held-out in-distribution queries' best scores
  (:class:`~seislens.models.manifest.VelocityCalibration.top1_scores`): 0.5 is a typical
  in-distribution query, 0 is less similar to the library than every calibration query.
  It never increases when the best score falls, so a gather buried in more noise is
  never reported more familiar unless its match improves.
* **Calibrated spread**: split-conformal scaling of the neighbours' weighted standard
  deviation, per descriptor: the factor is the ``coverage`` quantile of
  |truth − mean| / std over the calibration queries, so mean ± factor·std held the truth
  in that fraction of them.
"""

from __future__ import annotations

import numpy as np
from seislens.models.manifest import VelocityCalibration

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
