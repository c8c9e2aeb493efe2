"""How familiar an uploaded gather is, and its calibrated descriptor spreads.

The bundle's velocity section may hold a calibration (``seislens calibrate velocity``:
held-out in-distribution gathers searched against this very index). When it belongs to
the index and seismic encoder being served, a gather search answers with its
familiarity (the empirical CDF of its best score among the calibration queries'; see
:mod:`seislens.models.familiarity`), a plain warning below the calibration's threshold,
and descriptor spreads (the library's and the descriptor head's) scaled by the
calibration's split-conformal factors for the query's familiarity bin. Otherwise
it answers without them and says why.
"""

from __future__ import annotations

import numpy as np
from seislens.models.branches import VELOCITY
from seislens.models.familiarity import capped_familiarity, signal_factor, spread_scale
from seislens.models.manifest import VelocityCalibration
from seislens.service.schemas import (
    DescriptorEstimate,
    DescriptorPrediction,
    Familiarity,
    VelocitySearchResponse,
)
from seislens.service.state import LoadedBranch

UNFAMILIAR = (
    "this gather is unlike the gathers the bundle was calibrated on (familiarity {score:.2f}, "
    "below {threshold:.2f}): its best match, or how close its embedding lies to known "
    "gathers', is worse than in {percent:.0f} % of in-distribution queries; treat the "
    "matches, descriptors and estimated model as unreliable (another acquisition, "
    "wavelet, noise level or geology than the library's)"
)


def branch_calibration(branch: LoadedBranch) -> tuple[VelocityCalibration | None, str | None]:
    """The calibration valid for the served index and seismic encoder, or None and why."""
    cal = getattr(branch.section, "calibration", None)
    if cal is None:
        return None, "the bundle has no familiarity calibration (seislens calibrate velocity)"
    entry_path = branch.library.entry.path if branch.library is not None else None
    seismic = branch.section.encoders[VELOCITY.query_encoder].sha256
    if cal.index_path != entry_path or cal.encoder_sha256 != seismic:
        return None, "the familiarity calibration is for another index or encoder; recalibrate"
    return cal, None


NOISY = (
    "the gather is mostly noise (estimated signal-to-noise ratio {snr:.1f} dB from the "
    "coherence of neighbouring traces; the encoders were trained down to about "
    "{full:.0f} dB on this scale): its matches say little about the subsurface"
)

PARTIAL_GEOMETRY = (
    "the gather covers only part of the model frame (missing shots or receivers, "
    "zero-filled): the encoders were trained with such gaps, but answers from part of the "
    "frame are less precise (bench/robustness.py on the default bundle, synthetic, gallery "
    "200: s→v R@1 0.67-0.83 from one shot, 0.93 from three, 0.80 from half the spread, "
    "against 0.95 from the full frame)"
)


def with_familiarity(
    answer: VelocitySearchResponse,
    best_score: float | None,
    branch: LoadedBranch,
    partial_geometry: bool = False,
    snr_db: float | None = None,
    query: np.ndarray | None = None,
) -> VelocitySearchResponse:
    """``answer`` with its familiarity and calibrated spreads, from the one calibration
    check of this request (see :func:`branch_calibration`); ``snr_db`` is the gather's
    lateral SNR estimate (:func:`seislens.models.gather_quality.lateral_snr_db`),
    ``query`` its embedding (D,), scored against the calibration's density when the
    branch has one."""
    cal, fam = query_familiarity(best_score, branch, partial_geometry, snr_db, query)
    update: dict[str, object] = {
        "familiarity": fam,
        "inferred_descriptors": _calibrated_spreads(answer.inferred_descriptors, cal, fam.score),
    }
    if answer.predicted_descriptors is not None:
        update["predicted_descriptors"] = _calibrated_predictions(
            answer.predicted_descriptors, cal, fam.score
        )
    return answer.model_copy(update=update)


def query_familiarity(
    best_score: float | None,
    branch: LoadedBranch,
    partial_geometry: bool = False,
    snr_db: float | None = None,
    query: np.ndarray | None = None,
) -> tuple[VelocityCalibration | None, Familiarity]:
    """The calibration valid for ``branch`` (or None) and the familiarity of a query
    whose best match scored ``best_score``; arguments as :func:`with_familiarity`."""
    cal, why = branch_calibration(branch)
    distance = None
    if cal is not None and query is not None and branch.density is not None:
        distance = float(branch.density.distance(query)[0])
    elif cal is not None and branch.density_problem:
        why = branch.density_problem
    return cal, _familiarity(best_score, cal, why, partial_geometry, snr_db, distance)


def _familiarity(
    best_score: float | None,
    cal: VelocityCalibration | None,
    why: str | None,
    partial_geometry: bool,
    snr_db: float | None,
    distance: float | None = None,
) -> Familiarity:
    """The familiarity of a gather whose best library match scored ``best_score``;
    ``partial_geometry`` (shots or receivers missing from the frame) always warns."""
    partial = PARTIAL_GEOMETRY if partial_geometry else None
    if cal is None or best_score is None:
        return Familiarity(
            score=None, best_score=best_score, snr_db=snr_db, warning=partial, calibration=why
        )
    score = capped_familiarity(best_score, snr_db, cal, distance)
    warnings = [partial] if partial else []
    if signal_factor(snr_db, cal) < cal.warn_below:
        warnings.append(NOISY.format(snr=snr_db, full=cal.snr_db_full))
    elif score < cal.warn_below:
        percent = 100.0 * (1.0 - score)
        warnings.append(UNFAMILIAR.format(score=score, threshold=cal.warn_below, percent=percent))
    return Familiarity(
        score=round(score, 4),
        best_score=round(best_score, 6),
        snr_db=snr_db,
        warning="; ".join(warnings) or None,
        calibration=why
        or f"{cal.queries} held-out in-distribution gathers, k = {cal.k}"
        + (", with the embedding density" if distance is not None else ""),
    )


def _calibrated_spreads(
    inferred: dict[str, DescriptorEstimate],
    cal: VelocityCalibration | None,
    score: float | None,
) -> dict[str, DescriptorEstimate]:
    """``inferred`` with each spread scaled by the calibration's factor for a query of
    familiarity ``score`` (unchanged without a valid calibration); the neighbours' own
    spread stays in ``neighbour_std``."""
    if cal is None:
        return inferred
    return {
        name: est.model_copy(
            update={
                "std": round(est.std * spread_scale(cal, name, score), 4),
                "calibrated": True,
            }
        )
        for name, est in inferred.items()
    }


def _calibrated_predictions(
    predicted: dict[str, DescriptorPrediction],
    cal: VelocityCalibration | None,
    score: float | None,
) -> dict[str, DescriptorPrediction]:
    """The head's predictions with spreads scaled by the calibration's head factors for
    this familiarity (unchanged when the calibration has none)."""
    if cal is None or not cal.head_std_scale_by_bin:
        return predicted
    return {
        name: p.model_copy(
            update={
                "std": round(p.std * spread_scale(cal, name, score, head=True), 4),
                "calibrated": True,
            }
        )
        for name, p in predicted.items()
    }
