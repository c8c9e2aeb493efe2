"""Seismic background noise of the synthetic event generator, in absolute units.

The ground's noise is drawn per trace from Peterson's (1993) models, as obspy ships them
(the file behind :func:`obspy.signal.spectral_estimation.get_nlnm` / ``get_nhnm``): the acceleration
power spectral density in dB re 1 (m/s²)²/Hz lies at a *position* u between the new low
and new high noise models, PSD_dB(f) = NLNM(f) + u (NHNM(f) − NLNM(f)), u drawn per trace
(0 the quietest vault on Earth, 1 a noisy urban site). Both models already carry the
primary and secondary microseism peaks; on top of them each trace gets

* a secondary-microseism bump of 0–10 dB, log-normal in frequency around 0.12–0.30 Hz
  (the peak moves with the sea state);
* a cultural bump of 0–12 dB around 2–10 Hz (traffic, machinery), bursting 0–2 times
  per record (0.5–4 s, up to 5 × its level);
* a slow modulation of the ambient part (±15 % per term, periods 20–200 s).

Horizontal components get 1–1.5 × the vertical amplitude. Above 10 Hz — where the
models end — the PSD keeps its 10 Hz acceleration level (velocity falling as 1/f), and
below 1e-5 Hz its longest-period value. Random phases: the noise is Gaussian and
stationary apart from the modulation and bursts.

Where the noise of a record is measured (SNR), it is the rms over time of this noise
after the instrument and in the SNR band.

Not modelled: recorded noise. obspy ships no three-component noise recording long and
well-described enough (its test files are seconds long, one component, or of unknown
response); Peterson's models are themselves envelopes of real recordings' spectra.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

Range = tuple[float, float]


def noise_model_file() -> Path:
    """obspy's file of Peterson's models (read directly: importing ``obspy.signal`` takes
    seconds; the file is what its ``get_nlnm``/``get_nhnm`` read)."""
    spec = importlib.util.find_spec("obspy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("obspy is not installed; the noise models come with it")
    return Path(spec.submodule_search_locations[0]) / "signal" / "data" / "noise_models.npz"


@lru_cache(maxsize=1)
def _peterson() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log10 frequency increasing, NLNM dB, NHNM dB) on one frequency grid."""
    with np.load(noise_model_file()) as data:
        periods, low, high = data["model_periods"], data["low_noise"], data["high_noise"]
    logf = np.linspace(-5.0, 1.0, 241)
    order = np.argsort(np.log10(periods))
    x = np.log10(periods)[order]
    lo = np.interp(-logf, x, np.asarray(low)[order])
    hi = np.interp(-logf, x, np.asarray(high)[order])
    return logf, lo, hi


def peterson_psd_db(freqs: np.ndarray, position: float) -> np.ndarray:
    """(F,) acceleration PSD (dB re 1 (m/s²)²/Hz) at ``position`` in [0, 1] between the
    NLNM (0) and the NHNM (1); held constant beyond the models' 1e-5–10 Hz."""
    logf, lo, hi = _peterson()
    x = np.log10(np.clip(np.asarray(freqs, float), 10.0 ** logf[0], 10.0 ** logf[-1]))
    return np.interp(x, logf, lo + position * (hi - lo))


def acceleration_to_velocity_psd(freqs: np.ndarray, psd_acc: np.ndarray) -> np.ndarray:
    """(m/s²)²/Hz → (m/s)²/Hz: divide by (2πf)² (the DC bin is set to 0)."""
    f = np.asarray(freqs, float)
    out = np.zeros_like(psd_acc, dtype=float)
    nz = f > 0
    out[nz] = psd_acc[nz] / (2 * math.pi * f[nz]) ** 2
    return out


def psd_amplitude(psd: np.ndarray, sampling_rate_hz: float) -> np.ndarray:
    """Gain on the rfft of unit-variance white noise giving a series with one-sided PSD
    ``psd``: sqrt(PSD · fs / 2) (so the variance is the PSD's integral)."""
    return np.sqrt(np.asarray(psd) * sampling_rate_hz / 2.0)


def ground_noise_spectra(
    freqs: np.ndarray, nfft: int, fs: float, position: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Z/N/E ground-velocity noise spectra (3, F) complex: the ambient part (Peterson +
    microseism bump) and the cultural part (its 2–10 Hz bump), such that ``irfft`` gives
    m/s. ``freqs`` are the rfft frequencies of ``nfft`` samples at ``fs`` Hz."""
    f = np.maximum(freqs, freqs[1])
    base_db = peterson_psd_db(f, position)
    f_ms = rng.uniform(0.12, 0.30)
    micro_db = rng.uniform(0.0, 10.0) * np.exp(-0.5 * (np.log(f / f_ms) / 0.35) ** 2)
    f_cult = rng.uniform(2.0, 10.0)
    bump = np.exp(-0.5 * (np.log(f / f_cult) / 0.5) ** 2)
    cult_db = rng.uniform(0.0, 12.0)
    ambient_psd = 10.0 ** ((base_db + micro_db) / 10.0)
    cultural_psd = 10.0 ** (base_db / 10.0) * (10.0 ** (cult_db / 10.0) - 1.0) * bump
    gains = np.array([1.0, rng.uniform(1.0, 1.5), rng.uniform(1.0, 1.5)])[:, None]
    out = []
    for psd in (ambient_psd, cultural_psd):
        white = np.fft.rfft(rng.standard_normal((3, nfft)), axis=-1) * gains
        amp = psd_amplitude(acceleration_to_velocity_psd(freqs, psd), fs)
        spec = white * amp
        spec[:, 0] = 0.0
        out.append(spec)
    return out[0], out[1]


def modulate(
    time_s: np.ndarray,
    ambient: np.ndarray,
    cultural: np.ndarray,
    record_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(3, n) noise: the ambient series under a slow modulation (±15 % per term, periods
    20–200 s), the cultural one under 0–2 short bursts (0.5–4 s wide, 1–5 × its level)."""
    slow = np.ones_like(time_s)
    for _ in range(3):
        period_hz = rng.uniform(0.005, 0.05)
        slow += (
            0.15
            * rng.uniform(-1, 1)
            * np.sin(2 * math.pi * period_hz * time_s + rng.uniform(0, 2 * math.pi))
        )
    bursts = np.ones_like(time_s)
    for _ in range(int(rng.integers(0, 3))):
        start, width = rng.uniform(0, record_s), rng.uniform(0.5, 4.0)
        bursts += rng.uniform(1.0, 4.0) * np.exp(-0.5 * ((time_s - start) / width) ** 2)
    return ambient * np.maximum(slow, 0.2) + cultural * bursts
