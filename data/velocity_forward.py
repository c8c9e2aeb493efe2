"""Acoustic forward modelling of OpenFWI-style shot gathers with deepwave.

OpenFWI's acquisition: a 70 × 70 grid with dx = dz = 10 m; 5 sources at
x = round(linspace(0, 69, 5)) = (0, 17, 34, 52, 69) cells and 70 receivers at every
surface cell, all at 10 m depth (grid row 1); a 15 Hz Ricker wavelet peaking at
1.5 / f = 0.1 s; 1000 samples at dt = 1 ms; absorbing (PML, 20 cells) boundaries on
every side, so no free surface. :class:`ForwardConfig` also names another wavelet
family and phase, a free surface, other depths, PML widths and FD orders, which the
randomised generator (``seislens.data.velocity_physics``) draws per sample.

Time step: deepwave's default picks an internal step below dt for stability and
resamples, about 0.12 s a sample here. With ``courant_number = 0.65`` the CFL limit
for 4500 m/s at 10 m is met by dt = 1 ms itself, no internal resampling happens,
modelling is twice as fast and the gathers differ from the default by about 0.4 %
(measured; far below the differences between families). That is our default.

Polarity and scale follow OpenFWI's files (lanl/OpenFWI issues #7 and #15 report that
deepwave's output has the opposite sign and another scale): the gather is
``-OPENFWI_SCALE * deepwave_output``. Calibration (scripts in bench/): 60 generated
FlatVel-A samples span −24.6 … 47.7 after the sign flip, against −26.95 … 52.77 over
OpenFWI's 30,000 FlatVel-A samples, so deepwave's amplitude scale already matches to
within the sampling of the extremes and the constant stays 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.data.wavelets import WaveletKind, WaveletSpec, make_wavelet

#: Calibration of deepwave's amplitudes to OpenFWI's (see module docstring).
OPENFWI_SCALE = 1.0


class ForwardConfig(BaseModel):
    """Acquisition and propagator settings (OpenFWI's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dx: float = Field(10.0, gt=0, description="grid spacing, m")
    dt: float = Field(0.001, gt=0, description="sample interval, s")
    nt: int = Field(1000, gt=0, description="time samples")
    freq: float = Field(15.0, gt=0, description="wavelet peak frequency, Hz")
    wavelet: WaveletKind = Field("ricker", description="wavelet family (seislens.data.wavelets)")
    phase_deg: float = Field(0.0, ge=-180, le=180, description="wavelet phase rotation, degrees")
    free_surface: bool = Field(False, description="a reflecting top (no PML above the model)")
    n_shots: int = Field(5, gt=0)
    source_depth: int = Field(1, ge=0, description="source row (cells)")
    receiver_depth: int = Field(1, ge=0, description="receiver row (cells)")
    pml_width: int = Field(20, ge=0, description="absorbing layer, cells")
    accuracy: int = Field(4, description="finite-difference order in space")
    courant_number: float | None = Field(0.65, gt=0, le=1)
    max_vel: float = Field(4500.0, gt=0, description="velocity bound used for the CFL, m/s")
    scale: float = Field(OPENFWI_SCALE, description="output = -scale * deepwave amplitude")

    def wavelet_spec(self) -> WaveletSpec:
        """The source wavelet these settings name."""
        return WaveletSpec(kind=self.wavelet, peak_hz=self.freq, phase_deg=self.phase_deg)

    def pml_widths(self) -> list[int]:
        """PML cells per face (top, bottom, left, right); 0 on top for a free surface."""
        w = self.pml_width
        return [0 if self.free_surface else w, w, w, w]

    def boundaries(self) -> list[str]:
        """deepwave's boundary kind per face (top, bottom, left, right)."""
        return ["free" if self.free_surface else "pml", "pml", "pml", "pml"]


def source_columns(n_shots: int, nx: int) -> np.ndarray:
    """Source x positions (cells): ``round(linspace(0, nx - 1, n_shots))``."""
    return np.round(np.linspace(0, nx - 1, n_shots)).astype(np.int64)


def model_gathers(velocity: np.ndarray, config: ForwardConfig | None = None) -> np.ndarray:
    """Shot gathers of one velocity model.

    Args:
        velocity: (nz, nx) velocities in m/s (depth first), all positive and finite.
        config: acquisition and propagator settings; OpenFWI's by default.

    Returns:
        (n_shots, nt, nx) float32 gathers, receivers at every surface cell, in OpenFWI's
        polarity and scale.
    """
    import deepwave
    import torch

    cfg = config or ForwardConfig()
    v = np.asarray(velocity, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"velocity must be (nz, nx); got shape {v.shape}")
    if not np.isfinite(v).all() or (v <= 0).any():
        raise ValueError("velocity must be finite and positive everywhere")
    nx = v.shape[1]
    src = torch.zeros(cfg.n_shots, 1, 2, dtype=torch.long)
    src[:, 0, 0] = cfg.source_depth
    src[:, 0, 1] = torch.from_numpy(source_columns(cfg.n_shots, nx))
    rec = torch.zeros(cfg.n_shots, nx, 2, dtype=torch.long)
    rec[:, :, 0] = cfg.receiver_depth
    rec[:, :, 1] = torch.arange(nx)
    wavelet = torch.from_numpy(make_wavelet(cfg.wavelet_spec(), cfg.nt, cfg.dt))
    amplitudes = wavelet.reshape(1, 1, -1).repeat(cfg.n_shots, 1, 1)
    with warnings.catch_warnings():
        # High peak frequencies on the 10 m grid are dispersive by design: the randomised
        # generator draws them so the encoder meets such gathers (deepwave warns).
        warnings.filterwarnings("ignore", message="At least six grid cells per wavelength")
        out = _scalar(deepwave, torch.from_numpy(v), cfg, src, rec, amplitudes)
    data = out.receiver_amplitudes.detach().numpy()  # (shots, receivers, nt)
    return (-cfg.scale * data.transpose(0, 2, 1)).astype(np.float32)


def _scalar(deepwave: Any, v: Any, cfg: ForwardConfig, src: Any, rec: Any, amp: Any) -> Any:
    """One deepwave.scalar call with the settings of ``cfg``."""
    return deepwave.scalar(
        v,
        cfg.dx,
        cfg.dt,
        source_amplitudes=amp,
        source_locations=src,
        receiver_locations=rec,
        accuracy=cfg.accuracy,
        pml_width=cfg.pml_widths(),
        boundary=cfg.boundaries(),
        pml_freq=cfg.freq,
        max_vel=max(cfg.max_vel, float(v.max())),
        courant_number=cfg.courant_number,
    )
