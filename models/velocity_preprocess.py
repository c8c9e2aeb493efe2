"""Preprocessing of the velocity branch (NumPy only): the same code at train and serve time.

Gathers, (N, shots, T, receivers) or (shots, T, receivers):

1. time decimation by ``decimate`` (mean over non-overlapping windows: a box
   anti-alias filter; the 15 Hz data at 1 ms is oversampled, so 4× keeps 250 Hz);
2. per-gather normalisation by the largest |amplitude| (indifferent to overall scale);
3. canonical polarity: the sign that makes the largest-|amplitude| sample positive
   (the direct wave's main lobe), so a gather and its negative are one input;
4. OpenFWI's sign·log1p compression, ``sign(x)·log1p(α|x|)/log1p(α)``, so weak deep
   reflections weigh beside the direct wave;
5. standardisation with a global mean and standard deviation fitted on training data.

Velocity models (N, 70, 70) in m/s map to OpenFWI's [-1, 1]:
``2·(v − v_min)/(v_max − v_min) − 1`` with v_min = 1500, v_max = 4500 m/s.
Descriptors (N, 9) are standardised with per-descriptor means and standard deviations.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.models.contract import V_MAX_M_S, V_MIN_M_S


class GatherPreprocess(BaseModel):
    """Parameters of the gather preprocessing; saved into every export."""

    model_config = ConfigDict(extra="forbid")

    decimate: int = Field(4, ge=1, le=20, description="time decimation factor")
    log_alpha: float = Field(100.0, gt=0, description="α of sign·log1p(α|x|)")
    mean: float = 0.0
    std: float = Field(1.0, gt=0)
    n_time: int = Field(1000, gt=0, description="samples the encoder's input is cut from")


class VelocityPreprocess(BaseModel):
    """Velocity-model scaling to OpenFWI's normalised [-1, 1] units."""

    model_config = ConfigDict(extra="forbid")

    v_min: float = V_MIN_M_S
    v_max: float = V_MAX_M_S


class DescriptorPreprocess(BaseModel):
    """Per-descriptor standardisation."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float] = Field(default_factory=lambda: [0.0] * 9)
    std: list[float] = Field(default_factory=lambda: [1.0] * 9)


class Preprocessing(BaseModel):
    """All preprocessing parameters of a velocity-branch bundle."""

    model_config = ConfigDict(extra="forbid")

    gather: GatherPreprocess = GatherPreprocess()
    velocity: VelocityPreprocess = VelocityPreprocess()
    descriptors: DescriptorPreprocess = DescriptorPreprocess()


def _batch(x: np.ndarray, ndim: int, what: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=np.float32)
    single = a.ndim == ndim - 1
    if single:
        a = a[None]
    if a.ndim != ndim:
        raise ValueError(f"{what} must have {ndim - 1} or {ndim} dimensions; got shape {a.shape}")
    return a, single


def decimate_time(gathers: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping windows of ``factor`` samples on axis -2: (N,S,T//f,R)."""
    if factor == 1:
        return gathers
    n, s, t, r = gathers.shape
    t_out = t // factor
    return gathers[:, :, : t_out * factor].reshape(n, s, t_out, factor, r).mean(axis=3)


def gather_features(gathers: np.ndarray, cfg: GatherPreprocess) -> np.ndarray:
    """Encoder input from raw gathers.

    Args:
        gathers: (N, shots, T, receivers) or (shots, T, receivers), any units; T must
            be at least ``cfg.n_time`` (extra samples are cut).
        cfg: preprocessing parameters.

    Returns:
        float32 (N, shots, n_time // decimate, receivers) (or without N for one gather).
    """
    g, single = _batch(gathers, 4, "gathers")
    if g.shape[2] < cfg.n_time:
        raise ValueError(f"gathers need {cfg.n_time} time samples; got {g.shape[2]}")
    if not np.isfinite(g).all():
        raise ValueError("gathers contain NaN or Inf samples")
    g = decimate_time(g[:, :, : cfg.n_time], cfg.decimate)
    flat = g.reshape(len(g), -1)
    peak_idx = np.abs(flat).argmax(axis=1)
    peak = flat[np.arange(len(g)), peak_idx]
    scale = np.where(peak == 0, 1.0, peak).reshape(-1, 1, 1, 1)  # signed: fixes polarity
    g = g / scale
    g = np.sign(g) * np.log1p(cfg.log_alpha * np.abs(g)) / np.log1p(cfg.log_alpha)
    g = (g - cfg.mean) / cfg.std
    g = g.astype(np.float32)
    return g[0] if single else g


def velocity_features(models: np.ndarray, cfg: VelocityPreprocess) -> np.ndarray:
    """(N, 70, 70) m/s → (N, 1, 70, 70) float32 in [-1, 1] (or (1, 70, 70) for one)."""
    v, single = _batch(models, 3, "velocity models")
    out = (2.0 * (v - cfg.v_min) / (cfg.v_max - cfg.v_min) - 1.0)[:, None].astype(np.float32)
    return out[0] if single else out


def velocity_from_features(x: np.ndarray, cfg: VelocityPreprocess) -> np.ndarray:
    """Inverse of :func:`velocity_features`: [-1, 1] units → m/s, channel axis dropped."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim >= 3 and a.shape[-3] == 1:
        a = a[..., 0, :, :]
    return ((a + 1.0) * 0.5 * (cfg.v_max - cfg.v_min) + cfg.v_min).astype(np.float32)


def descriptor_features(desc: np.ndarray, cfg: DescriptorPreprocess) -> np.ndarray:
    """(N, 9) physical descriptors → standardised (N, 9) float32."""
    d, single = _batch(desc, 2, "descriptors")
    out = ((d - np.asarray(cfg.mean)) / np.asarray(cfg.std)).astype(np.float32)
    return out[0] if single else out


def fit_preprocessing(
    gathers_sample: np.ndarray, descriptors: np.ndarray, gather_cfg: GatherPreprocess
) -> Preprocessing:
    """Fit the global statistics on training data.

    Args:
        gathers_sample: (n, shots, T, receivers) raw gathers, a sample of the train set.
        descriptors: (N, 9) training descriptors.
        gather_cfg: the fixed gather parameters (decimation, α).
    """
    unit = gather_cfg.model_copy(update={"mean": 0.0, "std": 1.0})
    feats = gather_features(gathers_sample, unit)
    gather = gather_cfg.model_copy(
        update={"mean": float(feats.mean()), "std": float(feats.std() or 1.0)}
    )
    std = descriptors.std(axis=0)
    desc = DescriptorPreprocess(
        mean=[float(x) for x in descriptors.mean(axis=0)],
        std=[float(x) if x > 0 else 1.0 for x in std],
    )
    return Preprocessing(gather=gather, descriptors=desc)
