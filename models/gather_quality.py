"""How much of a shot gather is signal: a signal-to-noise estimate from the gather alone.

Seismic signal is coherent from one receiver to the next (10 m apart, the arrivals
move out by a few milliseconds at most); random noise is not. For two neighbouring
traces that share a signal of power ``S`` under independent noise of power ``N``, the
best normalised cross-correlation over small lags is about ``ρ = S / (S + N)``, so
``S / N = ρ / (1 − ρ)``. The median ``ρ`` over every neighbour pair of every shot gives
an estimate that needs no model, no picks and no library, and that falls steadily as
more noise is added, which is what the familiarity score needs to stay honest on
gathers drowned in noise (:mod:`seislens.models.familiarity`).

On a clean synthetic gather it reads about +24 dB; on white noise added at the gather's
own RMS (0 dB) about −3 dB; on pure noise about −12 dB (the floor: the best of a few
lags of uncorrelated traces is still a few hundredths).
"""

from __future__ import annotations

import math

import numpy as np

MAX_MOVEOUT_S = 0.008
"""Largest time shift searched between neighbouring traces, seconds: 10 m at 1,250 m/s."""


def lateral_snr_db(
    gather: np.ndarray,
    dt_s: float = 0.001,
    max_moveout_s: float = MAX_MOVEOUT_S,
    stride: int = 2,
) -> float | None:
    """Signal-to-noise ratio of a gather (dB) from its neighbour-trace coherence.

    Args:
        gather: (shots, time, receivers) amplitudes, receivers in spread order at equal
            spacing; dead or zero-filled traces are skipped.
        dt_s: sample interval, seconds.
        max_moveout_s: the largest shift between neighbours searched, seconds.
        stride: time samples skipped for speed (the coherence of band-limited signal
            is unchanged; white noise stays white).

    Returns:
        10·log10(ρ / (1 − ρ)) of the median best correlation ρ over neighbour pairs
        (clipped to ±40 dB), or None when the gather has no two live neighbours.

    Raises:
        ValueError: ``gather`` is not 3-D, or ``dt_s``/``stride`` are not positive.
    """
    if gather.ndim != 3:
        raise ValueError(f"gather has shape {gather.shape}; expected (shots, time, receivers)")
    if dt_s <= 0 or stride < 1:
        raise ValueError(f"dt_s {dt_s} and stride {stride} must be positive")
    x = np.asarray(gather[:, ::stride, :], dtype=np.float64)
    peak = np.max(np.abs(x), axis=1, keepdims=True)  # each trace scaled to its peak:
    x = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)  # no overflow at 1e38
    x = x - x.mean(axis=1, keepdims=True)
    n_time = x.shape[1]
    max_lag = min(n_time - 1, max(1, math.ceil(max_moveout_s / (dt_s * stride))))
    energy = np.sqrt(np.einsum("str,str->sr", x, x))
    left, right = x[:, :, :-1], x[:, :, 1:]
    best = np.full(left.shape[0::2], -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            num = np.einsum("str,str->sr", left[:, lag:], right[:, : n_time - lag])
        else:
            num = np.einsum("str,str->sr", left[:, : n_time + lag], right[:, -lag:])
        np.maximum(best, num, out=best)
    denom = energy[:, :-1] * energy[:, 1:]
    live = (energy[:, :-1] > 0) & (energy[:, 1:] > 0)
    if not live.any():
        return None
    rho = float(np.median(best[live] / denom[live]))
    if not math.isfinite(rho):  # non-finite samples: no estimate
        return None
    rho = min(max(rho, 1e-4), 1.0 - 1e-4)
    return round(10.0 * math.log10(rho / (1.0 - rho)), 2)
