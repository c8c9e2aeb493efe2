"""A second acoustic propagator, written here, sharing nothing with deepwave: evaluation only.

SeisLens trains on deepwave's gathers (``seislens.data.velocity_forward``). To tell
whether an encoder has learned kinematics or one simulator's waveforms, the
robustness benchmark (``bench/robustness.py``) models the same velocity models with
this code too. It is never used for training.

Scheme (every choice differs from deepwave's second-order-in-time scalar wave
equation with a PML and a point source added to the wavefield):

* **Equations.** The first-order, constant-density acoustic system in pressure ``p``
  (Pa-like units) and particle velocity ``(v_x, v_z)``, with ρ = 1 and bulk modulus
  ``K = c²``::

      ∂v/∂t = -∇p,        ∂p/∂t = -K ∇·v + K q(t) δ(x - x_s)

* **Grid.** A staggered grid (Virieux / Levander): ``p`` at cell centres, ``v_x`` half
  a cell to the right, ``v_z`` half a cell down; fourth-order staggered differences
  (coefficients 9/8 and -1/24) in space, second-order leapfrog in time (``v`` at
  half steps).
* **Boundary.** A Cerjan et al. (1985) exponential sponge of ``sponge_width`` cells on
  every side (no free surface): ``p`` and ``v`` are multiplied each step by
  ``exp(-(α (B - d) / B)²)`` at ``d`` cells from the model's edge inside the sponge.
* **Source.** A band-limited pressure-rate (volume-injection) term: ``q(t)`` is the
  time integral of the Ricker wavelet, ``(t - t₀) exp(-(π f (t - t₀))²)``, evaluated
  analytically at each half step and added to the source cell as a discrete delta (in
  cell units, not divided by the cell's area, as deepwave's point source). Then ``p``
  obeys ``∂²p/∂t² = K ∇²p + K ricker(t) δ``: the Ricker wavelet as source time
  function, without differentiating a sampled wavelet.
* **Time step.** The internal step is ``dt / n`` with the smallest integer ``n`` for
  which ``courant · dx / (c_max √2 (9/8 + 1/24))`` (the staggered fourth-order CFL
  limit times a safety factor) is not exceeded; the output is every ``n``-th state.
  The source is band-limited far below the 500 Hz Nyquist frequency of 1 ms samples,
  so taking every ``n``-th sample is an exact resampling to ``dt``. At the defaults
  (10 m cells, 4500 m/s, courant 0.9) ``n`` = 1.

Acquisition is OpenFWI's (as ``ForwardConfig``'s defaults): 5 sources at
``x = round(linspace(0, 69, 5))`` cells and 70 receivers at every surface cell, all
10 m deep (row 1); 1000 samples at 1 ms; a 15 Hz Ricker peaking at 1.5 / f.

Polarity and amplitude: the source term above radiates the Ricker with OpenFWI's
polarity (the direct wave's main lobe positive, as in the generator after its sign
flip). The amplitude is multiplied by ``FD_SCALE`` so that the RMS of the direct
wave (the first 100 m of offset, 0–0.3 s) matches deepwave's generator output
(``model_gathers``). Measured on two-layer models (top 1500, 2000, 3000, 4500 m/s, the
second 1500 m/s faster from 400 m): deepwave / ours = 1.0026–1.0037 before the
calibration, so ``FD_SCALE`` = 1.003; the normalised correlation of the two whole
gathers is 0.999 and their cross-correlation peaks at zero lag (checked by
tests/data/test_velocity_fd.py).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.data.velocity_forward import source_columns
from seislens.models.contract import CELL_M, GATHER_DT_MS, N_SHOTS, N_TIME, V_MAX_M_S

#: Fourth-order staggered-grid coefficients.
C1, C2 = 9.0 / 8.0, -1.0 / 24.0

#: Calibration of this propagator's amplitude to deepwave's generator (module docstring).
FD_SCALE = 1.003


class FDConfig(BaseModel):
    """Acquisition and scheme settings of the second propagator (OpenFWI's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dx: float = Field(CELL_M, gt=0, description="grid spacing, m")
    dt: float = Field(GATHER_DT_MS / 1000.0, gt=0, description="output sample interval, s")
    nt: int = Field(N_TIME, gt=0, description="output time samples")
    freq: float = Field(15.0, gt=0, description="Ricker peak frequency, Hz")
    n_shots: int = Field(N_SHOTS, gt=0)
    source_depth: int = Field(1, ge=0, description="source row (cells)")
    receiver_depth: int = Field(1, ge=0, description="receiver row (cells)")
    sponge_width: int = Field(40, ge=4, description="Cerjan sponge, cells on every side")
    sponge_alpha: float = Field(0.35, gt=0, description="sponge strength α (dimensionless)")
    courant: float = Field(0.9, gt=0, le=1, description="fraction of the CFL limit used")
    max_vel: float = Field(V_MAX_M_S, gt=0, description="velocity bound for the CFL, m/s")
    scale: float = Field(FD_SCALE, description="output = scale * pressure")


def substeps(config: FDConfig, max_velocity: float) -> int:
    """Internal steps per output sample: the smallest n with dt / n within the CFL limit.

    Args:
        config: the grid (``dx``, m) and output step (``dt``, s), and ``courant``.
        max_velocity: the fastest velocity of the model, m/s.
    """
    limit = config.dx / (max(max_velocity, config.max_vel) * math.sqrt(2.0) * (C1 - C2))
    return max(1, math.ceil(config.dt / (config.courant * limit) - 1e-9))


def source_rate(freq: float, t: np.ndarray) -> np.ndarray:
    """The pressure-rate source ``q(t)``: the integral of a Ricker peaking at 1.5 / f.

    Args:
        freq: peak frequency, Hz. t: times, s.

    Returns:
        ``(t - t0) exp(-(π f (t - t0))²)`` in s, float64, shaped like ``t``.
    """
    tau = np.asarray(t, np.float64) - 1.5 / freq
    return tau * np.exp(-((np.pi * freq * tau) ** 2))


def _sponge(nz: int, nx: int, width: int, alpha: float) -> np.ndarray:
    """Cerjan damping factors of the padded grid, (nz + 2B, nx + 2B) float32, 1 inside."""

    def profile(n: int) -> np.ndarray:
        d = np.zeros(n + 2 * width)
        ramp = np.arange(width, 0, -1) / width  # 1 at the outer edge … 1/B next to the model
        d[:width], d[n + width :] = ramp, ramp[::-1]
        return np.exp(-((alpha * d) ** 2))

    return np.outer(profile(nz), profile(nx)).astype(np.float32)


def _check_velocity(velocity: np.ndarray, config: FDConfig) -> np.ndarray:
    v = np.asarray(velocity, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"velocity must be (nz, nx) in m/s; got shape {v.shape}")
    if min(v.shape) < 4:
        raise ValueError(f"velocity must be at least 4 × 4 cells; got shape {v.shape}")
    if not np.isfinite(v).all() or (v <= 0).any():
        raise ValueError("velocity must be finite and positive everywhere (m/s)")
    for name in ("source_depth", "receiver_depth"):
        if getattr(config, name) >= v.shape[0]:
            raise ValueError(f"{name} {getattr(config, name)} is below the model ({v.shape[0]})")
    return v


def _diff(a: np.ndarray, axis: int) -> np.ndarray:
    """The staggered fourth-order difference along ``axis`` (times dx), for cells
    1 … n-3: at k + 1/2 when ``a`` lives on integer points, at k + 1 when on half points."""
    n = a.shape[axis]

    def part(lo: int, hi: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[axis] = slice(lo, n + hi if hi < 0 else None)
        return a[tuple(index)]

    return C1 * (part(2, -1) - part(1, -2)) + C2 * (part(3, 0) - part(0, -3))


def fd_gathers(velocity: np.ndarray, config: FDConfig | None = None) -> np.ndarray:
    """Shot gathers of one velocity model by the staggered-grid scheme (module docstring).

    Args:
        velocity: (nz, nx) velocities in m/s (depth first), all positive and finite.
        config: acquisition and scheme settings; OpenFWI's acquisition by default.

    Returns:
        (n_shots, nt, nx) float32 gathers, receivers at every surface cell, in OpenFWI's
        polarity and (via ``FD_SCALE``) deepwave's amplitude scale.

    Raises:
        ValueError: a velocity model that is not 2-D, finite and positive, or a
            source/receiver row below it.
    """
    cfg = config or FDConfig()
    v = _check_velocity(velocity, cfg)
    nz, nx = v.shape
    b = cfg.sponge_width
    n_sub = substeps(cfg, float(v.max()))
    step = cfg.dt / n_sub
    padded = np.pad(v, b, mode="edge").astype(np.float64)
    k_dt = (padded**2 * step / cfg.dx).astype(np.float32)  # K dt / dx per cell
    b_dt = np.float32(step / cfg.dx)  # dt / (ρ dx), ρ = 1
    damp = _sponge(nz, nx, b, cfg.sponge_alpha)
    shape = (cfg.n_shots, nz + 2 * b, nx + 2 * b)
    p, vx, vz = (np.zeros(shape, np.float32) for _ in range(3))
    shots = np.arange(cfg.n_shots)
    sz, sx = cfg.source_depth + b, source_columns(cfg.n_shots, nx) + b
    rz = cfg.receiver_depth + b
    t_half = (np.arange(cfg.nt * n_sub) + 0.5) * step
    k_src = padded[sz, sx][:, None] ** 2
    inject = (source_rate(cfg.freq, t_half) * k_src * step).astype(np.float32)  # K q dt
    out = np.empty((cfg.n_shots, cfg.nt, nx), np.float32)
    for n in range(cfg.nt * n_sub):
        if n % n_sub == 0:
            out[:, n // n_sub] = p[:, rz, b : b + nx]
        vx[:, :, 1:-2] -= b_dt * _diff(p, 2)
        vz[:, 1:-2, :] -= b_dt * _diff(p, 1)
        p[:, :, 2:-1] -= k_dt[:, 2:-1] * _diff(vx, 2)
        p[:, 2:-1, :] -= k_dt[2:-1, :] * _diff(vz, 1)
        p[shots, sz, sx] += inject[:, n]
        p *= damp
        vx *= damp
        vz *= damp
    if not np.isfinite(out).all():
        raise FloatingPointError("the finite-difference modelling became unstable")
    return cfg.scale * out
