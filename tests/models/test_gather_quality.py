"""The lateral SNR estimate on synthetic gathers with known noise."""

import itertools

import numpy as np
import pytest
from seislens.models.gather_quality import lateral_snr_db


def _gather(shots: int = 3, n_time: int = 1000, receivers: int = 40) -> np.ndarray:
    """Ricker arrivals moving out linearly (2 ms per 10 m receiver) in every shot."""
    t = np.arange(n_time) * 1e-3
    out = np.zeros((shots, n_time, receivers))
    for s in range(shots):
        for r in range(receivers):
            for t0 in (0.1 + 0.002 * abs(r - 8 * s), 0.4 + 0.001 * r):
                arg = (np.pi * 15.0 * (t - t0)) ** 2
                out[s, :, r] += (1 - 2 * arg) * np.exp(-arg)
    return out


def test_the_estimate_follows_the_added_noise():
    clean = _gather()
    rms = float(np.sqrt(np.mean(clean**2)))
    noise = np.random.default_rng(0).standard_normal(clean.shape)
    levels = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
    snr = [lateral_snr_db(clean + level * rms * noise) for level in levels]
    assert snr[0] > 15.0  # clean: coherent from trace to trace
    assert all(b < a for a, b in itertools.pairwise(snr)), snr
    # at the gather's own RMS (0 dB) the estimate reads within a few dB of 0
    assert -6.0 < snr[levels.index(1.0)] < 3.0
    assert lateral_snr_db(noise) < -8.0


def test_dead_traces_are_skipped_and_an_empty_gather_has_no_estimate():
    g = _gather()
    with_gaps = g.copy()
    with_gaps[:, :, ::3] = 0.0  # every third receiver dead
    with_gaps[1:] = 0.0  # one shot only
    assert lateral_snr_db(with_gaps) == pytest.approx(lateral_snr_db(g), abs=6.0)
    assert lateral_snr_db(np.zeros((2, 100, 5))) is None
    assert lateral_snr_db(np.ones((1, 100, 1))) is None  # no neighbours


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected"):
        lateral_snr_db(np.zeros((100, 5)))
    with pytest.raises(ValueError, match="positive"):
        lateral_snr_db(np.zeros((1, 100, 5)), dt_s=0.0)


def test_extreme_and_missing_samples_give_a_finite_answer_or_none():
    g = _gather()
    huge = (g * 3e38 / np.abs(g).max()).astype(np.float32)  # float32's range, no overflow
    assert lateral_snr_db(huge) == pytest.approx(lateral_snr_db(g), abs=1e-6)
    flat = np.full((2, 200, 6), 3e38, dtype=np.float32)
    assert lateral_snr_db(flat) is None  # no signal once the mean is removed
    holed = g.copy()
    holed[0, :, 3] = np.nan  # a trace of NaN counts as dead
    value = lateral_snr_db(holed)
    assert value is not None and np.isfinite(value)
