"""Perturbations of shot gathers that leave the subsurface unchanged: for robustness checks.

A gather is (shots, time samples, receivers) = (5, 1000, 70) float32 at 1 ms; a batch
is (N, shots, time, receivers). Every function takes either and returns a new float32
array of the same shape; the random ones draw from a ``numpy.random.Generator`` the
caller seeds, so a benchmark is reproducible.

* :func:`delay_gathers` — a later (or earlier) trigger: the traces shifted in time by a
  whole number of samples, zero-filled;
* :func:`add_gaussian_noise` — white Gaussian noise at a fraction of each gather's RMS;
* :func:`apply_trace_gains` — one gain per trace (shot, receiver), log-uniform in
  [lo, hi];
* :func:`remodel_gathers` — another Ricker peak frequency (or the other propagator)
  cannot be made from a gather: the velocity models are modelled again with deepwave
  (``seislens.data.velocity_forward``) or the second propagator
  (``seislens.data.velocity_fd``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from seislens.data.velocity_fd import FDConfig, fd_gathers
from seislens.data.velocity_forward import ForwardConfig, model_gathers
from seislens.models.contract import GATHER_DT_MS

Propagator = Literal["deepwave", "fd"]
PROPAGATORS: tuple[str, ...] = ("deepwave", "fd")


def _check_gathers(gathers: np.ndarray) -> np.ndarray:
    g = np.asarray(gathers, dtype=np.float32)
    if g.ndim not in (3, 4):
        raise ValueError(
            f"gathers must be (shots, time, receivers) or (N, shots, time, receivers); "
            f"got shape {g.shape}"
        )
    return g


def delay_gathers(gathers: np.ndarray, delay_ms: float, dt_ms: float = GATHER_DT_MS) -> np.ndarray:
    """Shift every trace ``delay_ms`` later (negative: earlier), filling with zeros.

    Args:
        gathers: (shots, time, receivers) or (N, shots, time, receivers).
        delay_ms: the trigger delay, ms; a whole number of samples.
        dt_ms: the sample interval, ms (> 0).

    Raises:
        ValueError: a delay that is not a whole number of samples, or a bad shape.
    """
    g = _check_gathers(gathers)
    if dt_ms <= 0:
        raise ValueError(f"dt_ms is {dt_ms}; expected > 0")
    shift = delay_ms / dt_ms
    n = round(shift)
    if not math.isclose(shift, n, abs_tol=1e-6):
        raise ValueError(f"delay {delay_ms} ms is not a whole number of {dt_ms} ms samples")
    out = np.zeros_like(g)
    nt = g.shape[-2]
    if abs(n) >= nt:
        return out
    if n >= 0:
        out[..., n:, :] = g[..., : nt - n, :]
    else:
        out[..., : nt + n, :] = g[..., -n:, :]
    return out


def add_gaussian_noise(
    gathers: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``fraction`` × each gather's RMS.

    Args:
        gathers: (shots, time, receivers) or (N, shots, time, receivers).
        fraction: noise RMS / signal RMS (>= 0), e.g. 0.1 for 10 %.
        rng: the random generator to draw from.
    """
    g = _check_gathers(gathers)
    if not fraction >= 0:
        raise ValueError(f"fraction is {fraction}; expected >= 0")
    rms = np.sqrt(np.mean(np.square(g, dtype=np.float64), axis=(-3, -2, -1), keepdims=True))
    noise = rng.standard_normal(g.shape) * (fraction * rms)
    return (g + noise).astype(np.float32)


def apply_trace_gains(
    gathers: np.ndarray, lo: float, hi: float, rng: np.random.Generator
) -> np.ndarray:
    """Multiply each trace (shot, receiver) by a gain drawn log-uniform in [lo, hi].

    Args:
        gathers: (shots, time, receivers) or (N, shots, time, receivers).
        lo, hi: gain bounds, 0 < lo <= hi (dimensionless).
        rng: the random generator to draw from.
    """
    g = _check_gathers(gathers)
    if not 0 < lo <= hi:
        raise ValueError(f"gain bounds [{lo}, {hi}]; expected 0 < lo <= hi")
    shape = (*g.shape[:-2], 1, g.shape[-1])
    gains = np.exp(rng.uniform(np.log(lo), np.log(hi), size=shape))
    return (g * gains).astype(np.float32)


def remodel_gathers(
    velocity_models: np.ndarray, freq: float = 15.0, propagator: Propagator = "deepwave"
) -> np.ndarray:
    """Gathers of velocity models with a Ricker of peak ``freq``, by either propagator.

    Args:
        velocity_models: (N, nz, nx) velocities in m/s.
        freq: Ricker peak frequency, Hz (> 0).
        propagator: ``"deepwave"`` (the generator's, OpenFWI's acquisition) or ``"fd"``
            (the second propagator, same acquisition).

    Returns:
        (N, shots, nt, nx) float32 gathers in OpenFWI's polarity.
    """
    models = np.asarray(velocity_models, dtype=np.float32)
    if models.ndim != 3:
        raise ValueError(f"velocity_models must be (N, nz, nx); got shape {models.shape}")
    if propagator == "deepwave":
        cfg = ForwardConfig(freq=freq)
        return np.stack([model_gathers(m, cfg) for m in models])
    if propagator == "fd":
        fd_cfg = FDConfig(freq=freq)
        return np.stack([fd_gathers(m, fd_cfg) for m in models])
    raise ValueError(f"unknown propagator {propagator!r}; expected one of {PROPAGATORS}")
