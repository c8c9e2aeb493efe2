"""Source wavelets of three families, sampled on a regular time axis.

Every function returns a float32 array of ``nt`` samples at interval ``dt`` seconds,
peak amplitude 1 (before a phase rotation), so the amplitude scale of a gather does
not depend on the family:

* :func:`ricker` — zero-phase Mexican hat of peak frequency ``f`` (Hz), centred at
  ``1.5 / f`` s plus ``delay`` (OpenFWI's source);
* :func:`ormsby` — zero-phase trapezoidal band-pass ``f1 < f2 ≤ f3 < f4`` (Hz), Hann
  tapered to ±``2 / f1`` s about its centre so it stays compact;
* :func:`berlage` — causal, minimum-phase-like ``t^n e^{-αt} sin(2π f t)`` (a dynamite
  or air-gun-like signature) starting at ``delay``;
* :func:`rotate_phase` — a constant phase rotation φ (degrees): ``w cos φ − H[w] sin φ``
  with ``H`` the Hilbert transform (FFT).

:class:`WaveletSpec` names one draw and :func:`make_wavelet` samples it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

WaveletKind = Literal["ricker", "ormsby", "berlage"]
WAVELET_KINDS: tuple[str, ...] = ("ricker", "ormsby", "berlage")


def _check_axis(nt: int, dt: float) -> None:
    if nt <= 0 or dt <= 0:
        raise ValueError(f"nt and dt must be positive; got nt={nt}, dt={dt}")


def _unit_peak(w: np.ndarray) -> np.ndarray:
    peak = float(np.abs(w).max())
    return (w / peak if peak > 0 else w).astype(np.float32)


def ricker(freq: float, nt: int, dt: float, delay: float = 0.0) -> np.ndarray:
    """Ricker wavelet of peak frequency ``freq`` (Hz) peaking at ``1.5/freq + delay`` s: (nt,)."""
    _check_axis(nt, dt)
    if freq <= 0:
        raise ValueError(f"freq must be positive; got {freq}")
    t = np.arange(nt) * dt - 1.5 / freq - delay
    a = (np.pi * freq * t) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float32)


def ormsby(corners: tuple[float, float, float, float], nt: int, dt: float) -> np.ndarray:
    """Zero-phase Ormsby wavelet with corner frequencies ``f1 < f2 ≤ f3 < f4`` (Hz): (nt,).

    Centred at ``2 / f1`` s (so its taper fits before the centre) and Hann-tapered to
    ±``2 / f1`` s; peak 1.
    """
    _check_axis(nt, dt)
    f1, f2, f3, f4 = corners
    if not 0 < f1 < f2 <= f3 < f4:
        raise ValueError(f"Ormsby corners must satisfy 0 < f1 < f2 <= f3 < f4; got {corners}")
    half = 2.0 / f1
    t = np.arange(nt) * dt - half

    def term(f: float) -> np.ndarray:
        return (np.pi * f) ** 2 * np.sinc(f * t) ** 2

    w = (term(f4) - term(f3)) / (f4 - f3) - (term(f2) - term(f1)) / (f2 - f1)
    taper = np.where(np.abs(t) <= half, 0.5 * (1 + np.cos(np.pi * t / half)), 0.0)
    return _unit_peak(w * taper)


def berlage(freq: float, nt: int, dt: float, n: float = 2.0, delay: float = 0.0) -> np.ndarray:
    """Causal Berlage wavelet ``t^n e^{-αt} sin(2π f t)`` from ``delay`` s on: (nt,), peak 1.

    α = 2π f / √(3 n)-like damping chosen as ``π f`` so the wavelet lasts about 2 cycles.
    """
    _check_axis(nt, dt)
    if freq <= 0 or n <= 0:
        raise ValueError(f"freq and n must be positive; got freq={freq}, n={n}")
    t = np.clip(np.arange(nt) * dt - delay, 0.0, None)
    w = t**n * np.exp(-math.pi * freq * t) * np.sin(2 * math.pi * freq * t)
    return _unit_peak(w)


def rotate_phase(w: np.ndarray, degrees: float) -> np.ndarray:
    """Constant phase rotation of a wavelet by ``degrees``: same shape, float32."""
    x = np.asarray(w, dtype=np.float64)
    if degrees == 0:
        return x.astype(np.float32)
    spec = np.fft.rfft(x)
    phi = math.radians(degrees)
    spec[1:] *= complex(math.cos(phi), math.sin(phi))
    return np.fft.irfft(spec, n=len(x)).astype(np.float32)


class WaveletSpec(BaseModel):
    """One wavelet: family, peak frequency (Hz) and constant phase rotation (degrees)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: WaveletKind = "ricker"
    peak_hz: float = Field(15.0, gt=0)
    phase_deg: float = Field(0.0, ge=-180, le=180)


def make_wavelet(spec: WaveletSpec, nt: int, dt: float) -> np.ndarray:
    """Sample ``spec`` on ``nt`` samples at ``dt`` s: (nt,) float32.

    The Ormsby band is ``(0.4, 0.7, 1.3, 1.9) × peak``; the Berlage wavelet uses n = 2.
    """
    f = spec.peak_hz
    if spec.kind == "ricker":
        w = ricker(f, nt, dt)
    elif spec.kind == "ormsby":
        w = ormsby((0.4 * f, 0.7 * f, 1.3 * f, 1.9 * f), nt, dt)
    else:
        w = berlage(f, nt, dt, delay=0.01)
    return rotate_phase(w, spec.phase_deg)
