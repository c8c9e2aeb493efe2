"""On-the-fly augmentation of preprocessed gathers: what users' files do to a gather
without changing the subsurface, drawn again for every batch.

Works on encoder inputs (B, shots, T', R) — decimated, normalised, log-compressed and
standardised by ``seislens.models.velocity_preprocess.gather_features``. Each batch is
mapped back to amplitudes (the standardisation and the sign·log1p compression undone),
perturbed there, then preprocessed again with the same code the service runs, so the
encoder sees exactly what a perturbed upload would give it. One feature sample lasts
``dt_ms`` = 1 ms × decimation (8 ms for the default bundle). Per gather, each
perturbation is applied with its own probability (:class:`AugmentConfig`):

* trigger delay (one time shift for the whole gather, −20…+40 ms, sub-sample linear
  interpolation, zero-filled);
* per-trace gain (log-uniform) and static shifts (ms);
* dead (zeroed), polarity-reversed and noisy traces;
* additive noise at an SNR drawn in dB against the gather's RMS: white, coloured
  (1/f^β, β in [0.5, 2]) or bursts (a few windows of strong noise);
* a zero-phase band-pass (cosine-tapered corners, Hz);
* an amplitude-decay correction ``(t / 1 s)^p`` as users apply (p in [0, 2]);
* missing shots (only k of 5 kept) and missing receivers (a partial spread, random
  gaps, or every second receiver replaced by interpolation as for a 20 m spread) —
  zeroed as the service's geometry mapping zero-fills what a file lacks.

Draws come from a ``numpy.random.Generator`` the caller seeds (per epoch and batch),
so a run is reproducible and resumable.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.models.contract import GATHER_DT_MS
from seislens.models.velocity_preprocess import GatherPreprocess, gather_features


class AugmentConfig(BaseModel):
    """Probabilities (per gather) and ranges of the augmentations; 0 disables one."""

    model_config = ConfigDict(extra="forbid")

    delay_prob: float = Field(0.6, ge=0, le=1)
    delay_ms: tuple[float, float] = (-20.0, 40.0)
    gain_prob: float = Field(0.5, ge=0, le=1)
    gain_range: tuple[float, float] = (0.5, 2.0)
    static_prob: float = Field(0.3, ge=0, le=1)
    static_ms: float = Field(6.0, ge=0, description="statics uniform in ±static_ms")
    bad_trace_prob: float = Field(0.4, ge=0, le=1, description="gathers with bad traces")
    bad_trace_fraction: float = Field(0.05, ge=0, lt=1, description="of the traces, each kind")
    noise_prob: float = Field(0.7, ge=0, le=1)
    snr_db: tuple[float, float] = (0.0, 40.0)
    bandpass_prob: float = Field(0.3, ge=0, le=1)
    low_cut_hz: tuple[float, float] = (2.0, 10.0)
    high_cut_hz: tuple[float, float] = (20.0, 55.0)
    decay_prob: float = Field(0.2, ge=0, le=1)
    decay_power: tuple[float, float] = (0.0, 2.0)
    shot_drop_prob: float = Field(0.4, ge=0, le=1)
    single_shot_prob: float = Field(
        0.0,
        ge=0,
        le=1,
        description="of the gathers whose shots are dropped, those left with one shot (drawn "
        "evenly over the slots); the others keep 1 to shots-1 shots drawn evenly",
    )
    receiver_drop_prob: float = Field(0.4, ge=0, le=1)
    min_receivers: int = Field(35, ge=1, description="fewest receivers a partial spread keeps")


def _to_amplitudes(x: np.ndarray, cfg: GatherPreprocess) -> np.ndarray:
    """Undo standardisation and sign·log1p: features → peak-normalised amplitudes."""
    y = x.astype(np.float32) * cfg.std + cfg.mean
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(cfg.log_alpha)) / cfg.log_alpha


def _shift(g: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Delay traces by ``shift`` samples (broadcast to (B, S, 1, R)), linear interpolation."""
    t = np.arange(g.shape[2], dtype=np.float32).reshape(1, 1, -1, 1)
    src = t - shift
    i0 = np.floor(src).astype(np.int64)
    w = (src - i0).astype(np.float32)
    n = g.shape[2]
    shape = np.broadcast_shapes(src.shape, g.shape)

    def take(i: np.ndarray) -> np.ndarray:
        ok = (i >= 0) & (i < n)
        vals = np.take_along_axis(g, np.broadcast_to(np.clip(i, 0, n - 1), shape), axis=2)
        return np.where(np.broadcast_to(ok, shape), vals, 0.0)

    return (1 - w) * take(i0) + w * take(i0 + 1)


def _rms(g: np.ndarray) -> float:
    live = np.abs(g).sum(axis=1) > 0  # (S, R) traces that hold data
    return float(np.sqrt(np.mean(g.transpose(0, 2, 1)[live] ** 2))) if live.any() else 1.0


def _noise(shape: tuple[int, ...], kind: str, dt_s: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of (S, T, R): white, coloured (1/f^β) or bursts."""
    white = rng.standard_normal(shape).astype(np.float32)
    if kind == "coloured":
        spec = np.fft.rfft(white, axis=1)
        f = np.fft.rfftfreq(shape[1], dt_s)
        f[0] = f[1]
        spec *= (f ** (-rng.uniform(0.5, 2.0) / 2)).reshape(1, -1, 1)
        white = np.fft.irfft(spec, n=shape[1], axis=1).astype(np.float32)
    elif kind == "burst":
        env = np.zeros(shape[1], np.float32)
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(0, shape[1]))
            env[start : start + int(rng.integers(3, max(4, shape[1] // 8)))] = 1.0
        white *= env.reshape(1, -1, 1)
    rms = float(np.sqrt(np.mean(white**2)))
    return white / rms if rms > 0 else white


def _bandpass(g: np.ndarray, low: float, high: float, dt_s: float) -> np.ndarray:
    """Zero-phase band-pass of (S, T, R) with cosine tapers of one octave at each corner."""
    spec = np.fft.rfft(g, axis=1)
    f = np.fft.rfftfreq(g.shape[1], dt_s)
    lo = np.clip((f - low / 2) / (low / 2), 0, 1)
    hi = np.clip((2 * high - f) / high, 0, 1)
    gain = np.sin(0.5 * np.pi * lo) ** 2 * np.sin(0.5 * np.pi * hi) ** 2
    return np.fft.irfft(spec * gain.reshape(1, -1, 1), n=g.shape[1], axis=1).astype(np.float32)


def _drop_receivers(g: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> None:
    """A partial spread, random gaps, or 20 m spacing interpolated back onto 10 m (in place)."""
    n_rec = g.shape[2]
    kind = rng.integers(3)
    if kind == 0:  # partial spread: a contiguous window of at least min_receivers
        width = int(rng.integers(min(cfg.min_receivers, n_rec), n_rec + 1))
        start = int(rng.integers(0, n_rec - width + 1))
        keep = np.zeros(n_rec, bool)
        keep[start : start + width] = True
        g[:, :, ~keep] = 0.0
    elif kind == 1:  # gaps
        g[:, :, rng.random(n_rec) < rng.uniform(0.05, 0.3)] = 0.0
    else:  # every second receiver only, the others interpolated (a 20 m spread)
        odd = np.arange(1, n_rec - 1, 2)
        g[:, :, odd] = 0.5 * (g[:, :, odd - 1] + g[:, :, odd + 1])


def _perturb(g: np.ndarray, cfg: AugmentConfig, dt_ms: float, rng: np.random.Generator) -> None:
    """Perturb one (S, T, R) gather of amplitudes in place."""
    s, t, r = g.shape
    dt_s = dt_ms / 1000.0
    if rng.random() < cfg.decay_prob:
        time = np.maximum(np.arange(t) * dt_s, dt_s)
        g *= (time ** rng.uniform(*cfg.decay_power)).reshape(1, -1, 1).astype(np.float32)
    if rng.random() < cfg.bandpass_prob:
        g[:] = _bandpass(g, rng.uniform(*cfg.low_cut_hz), rng.uniform(*cfg.high_cut_hz), dt_s)
    shift = np.zeros((1, 1, 1, 1), np.float32)
    if rng.random() < cfg.delay_prob:
        shift = shift + rng.uniform(*cfg.delay_ms) / dt_ms
    if rng.random() < cfg.static_prob:
        shift = shift + rng.uniform(-cfg.static_ms, cfg.static_ms, (1, s, 1, r)) / dt_ms
    if np.any(shift != 0):
        g[:] = _shift(g[None], shift.astype(np.float32))[0]
    if rng.random() < cfg.gain_prob:
        lo, hi = np.log(cfg.gain_range)
        g *= np.exp(rng.uniform(lo, hi, (s, 1, r))).astype(np.float32)
    if rng.random() < cfg.noise_prob:
        kind = ("white", "coloured", "burst")[int(rng.integers(3))]
        level = _rms(g) * 10 ** (-rng.uniform(*cfg.snr_db) / 20)
        g += level * _noise(g.shape, kind, dt_s, rng)
    if rng.random() < cfg.bad_trace_prob:
        frac = cfg.bad_trace_fraction
        reverse = rng.random((s, 1, r)) < frac
        g *= np.where(reverse, -1.0, 1.0).astype(np.float32)
        noisy = (rng.random((s, 1, r)) < frac) & ~reverse
        g += noisy * (3 * _rms(g)) * rng.standard_normal(g.shape).astype(np.float32)
        g *= (rng.random((s, 1, r)) >= frac).astype(np.float32)  # dead
    if rng.random() < cfg.receiver_drop_prob:
        _drop_receivers(g, cfg, rng)
    if rng.random() < cfg.shot_drop_prob:
        single = cfg.single_shot_prob > 0 and rng.random() < cfg.single_shot_prob
        kept = 1 if single else int(rng.integers(1, s))
        keep = rng.choice(s, size=kept, replace=False)
        dropped = np.setdiff1d(np.arange(s), keep)
        g[dropped] = 0.0


def augment_features(
    features: np.ndarray, aug: AugmentConfig, pre: GatherPreprocess, rng: np.random.Generator
) -> np.ndarray:
    """Augmented encoder inputs of a batch.

    Args:
        features: (B, shots, T', R) preprocessed gathers (``gather_features`` output).
        aug: what to draw.
        pre: the preprocessing that made ``features`` (its ``decimate`` sets the
            sample interval: 1 ms × decimate).
        rng: the batch's random generator.

    Returns:
        float32 (B, shots, T', R), preprocessed again by ``gather_features``.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"features must be (B, shots, T', R); got shape {x.shape}")
    g = _to_amplitudes(x, pre)
    dt_ms = GATHER_DT_MS * pre.decimate
    for k in range(len(g)):
        _perturb(g[k], aug, dt_ms, rng)
    again = pre.model_copy(update={"decimate": 1, "n_time": x.shape[2]})
    return gather_features(g, again)
