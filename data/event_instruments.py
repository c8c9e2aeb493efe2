"""Recording chains of the synthetic event generator: sensor, digitiser, saturation.

A synthetic record is ground velocity passed through one of three sensors, each a
poles-and-zeros (Laplace, rad/s) transfer function as a StationXML response states it,
then a 24-bit digitiser:

* **broadband** — a feedback velocity sensor (STS-2, Trillium, CMG-3T class): flat to
  velocity between its natural period (30–240 s, damping 0.707) and a high-frequency
  pole pair at 40–90 Hz; 750–2,000 V/(m/s). Channel code ``HH`` (``BH`` below 80 Hz).
* **short_period** — a moving-coil geophone (L-4C to GS-11D class): a second-order
  high-pass on velocity at its natural frequency (1–4.5 Hz, damping 0.6–0.75), flat to
  velocity above; 30–300 V/(m/s) with its preamplifier. ``EH`` (``SH``).
* **accelerometer** — a force-balance accelerometer (EpiSensor class): flat to
  *acceleration* to a pole pair at 100–200 Hz; 2.5–10 V/g, so a ±20 V digitiser clips at
  2–8 g. ``HN`` (``BN``). Its record is the time derivative of the velocity record in the
  band where both are flat.

The digitiser maps ±``full_scale_v`` (20 V) onto ±2^23 counts, adds its own white noise
(0.5–2 counts rms), rounds to whole counts and **saturates**: samples beyond the full
scale are held at it (a flat top, as a clipped record looks). Its anti-alias filter is
zero-phase: flat to 0.4 × the sampling rate, a raised-cosine taper to zero at Nyquist —
so a 20 Hz record holds nothing above 10 Hz and the 100 Hz model sees that band limit.
The accelerometer adds its self-noise as white acceleration (−145 to −135 dB re
1 (m/s²)²/Hz), above the quietest sites' ground noise at most frequencies.

Limits: linear sensors up to the clip (no mass-position drift, no tilt, no non-linear
recovery after saturation), one gain per channel, no timing errors, three components
with the same response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

InstrumentKind = Literal["broadband", "short_period", "accelerometer"]
INSTRUMENT_KINDS: tuple[str, ...] = ("broadband", "short_period", "accelerometer")
G = 9.81  # m/s², one g
BITS = 24
FULL_SCALE_COUNTS = 2 ** (BITS - 1) - 1
ANTI_ALIAS_PASS = 0.4  # × sampling rate: end of the anti-alias filter's pass band
Range = tuple[float, float]


class InstrumentRanges(BaseModel):
    """Ranges the recording chain of each trace is drawn from (uniform, sensitivities
    log-uniform)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broadband_period_s: Range = Field((30.0, 240.0), description="natural period (s)")
    broadband_high_hz: Range = Field((40.0, 90.0), description="high-frequency poles (Hz)")
    broadband_v_per_m_s: Range = Field((750.0, 2000.0), description="V/(m/s)")
    geophone_hz: Range = Field((1.0, 4.5), description="natural frequency (Hz)")
    geophone_damping: Range = Field((0.6, 0.75), description="fraction of critical")
    geophone_v_per_m_s: Range = Field((30.0, 300.0), description="V/(m/s), with preamp")
    accelerometer_v_per_g: Range = Field((2.5, 10.0), description="V/g")
    accelerometer_corner_hz: Range = Field((100.0, 200.0), description="pole pair (Hz)")
    accelerometer_noise_db: Range = Field(
        (-145.0, -135.0), description="self-noise, dB re 1 (m/s²)²/Hz (white)"
    )
    digitizer_noise_counts: Range = Field((0.5, 2.0), description="rms (counts)")
    full_scale_v: float = Field(20.0, gt=0, description="digitiser input at full scale (±V)")


@dataclass(frozen=True)
class Instrument:
    """One recording chain. ``zeros``/``poles`` in rad/s act on the sensor's input
    (velocity for ``input_units`` "M/S", acceleration for "M/S**2"); ``a0`` normalises
    the transfer function to 1 at ``norm_hz``, where the sensor gives ``sensitivity``
    V per input unit."""

    kind: str
    zeros: tuple[complex, ...]
    poles: tuple[complex, ...]
    a0: float
    norm_hz: float
    sensitivity: float
    input_units: str
    counts_per_volt: float
    digitizer_noise_counts: float
    self_noise_psd: float = 0.0  # (m/s²)²/Hz, white acceleration; 0: none

    def sensor_response(self, freqs: np.ndarray) -> np.ndarray:
        """(F,) complex V per input unit at ``freqs`` (Hz)."""
        return self.sensitivity * _paz(freqs, self.zeros, self.poles, self.a0)

    def velocity_response(self, freqs: np.ndarray) -> np.ndarray:
        """(F,) complex counts per (m/s) of ground velocity at ``freqs`` (Hz)."""
        h = self.sensor_response(freqs) * self.counts_per_volt
        return h * (2j * np.pi * freqs) if self.input_units == "M/S**2" else h

    def counts_per_m_s(self, freq_hz: float = 1.0) -> float:
        """|counts per m/s| of ground velocity at one frequency (Hz)."""
        return float(abs(self.velocity_response(np.array([freq_hz]))[0]))

    def channel_prefix(self, sampling_rate_hz: float) -> str:
        """SEED band + instrument code: HH/BH, EH/SH, HN/BN."""
        high = sampling_rate_hz >= 80.0
        if self.kind == "broadband":
            return "HH" if high else "BH"
        if self.kind == "short_period":
            return "EH" if high else "SH"
        return "HN" if high else "BN"

    def describe(self) -> dict[str, Any]:
        """JSON-able poles, zeros and gains (what a StationXML stage would hold)."""
        return {
            "kind": self.kind,
            "input_units": self.input_units,
            "zeros": [[z.real, z.imag] for z in self.zeros],
            "poles": [[p.real, p.imag] for p in self.poles],
            "a0": self.a0,
            "normalization_hz": self.norm_hz,
            "sensitivity_v_per_unit": self.sensitivity,
            "counts_per_volt": self.counts_per_volt,
        }

    def to_obspy(self) -> Any:
        """The sensor + digitiser as an :class:`obspy.core.inventory.Response`."""
        from obspy.core.inventory.response import Response

        return Response.from_paz(
            zeros=list(self.zeros),
            poles=list(self.poles),
            stage_gain=self.sensitivity * self.counts_per_volt,
            stage_gain_frequency=self.norm_hz,
            input_units=self.input_units,
            output_units="COUNTS",
            normalization_frequency=self.norm_hz,
            normalization_factor=self.a0,
        )


def _paz(freqs: np.ndarray, zeros: tuple, poles: tuple, a0: float) -> np.ndarray:
    """a0 Π(s - z) / Π(s - p) at s = 2πi f."""
    s = 2j * np.pi * np.asarray(freqs, float)
    num = np.ones_like(s)
    for z in zeros:
        num = num * (s - z)
    den = np.ones_like(s)
    for p in poles:
        den = den * (s - p)
    return a0 * num / den


def _normalised(zeros: tuple, poles: tuple, norm_hz: float) -> float:
    """a0 making |a0 Π(s - z)/Π(s - p)| = 1 at ``norm_hz``."""
    return float(1.0 / abs(_paz(np.array([norm_hz]), zeros, poles, 1.0)[0]))


def _pair(freq_hz: float, damping: float) -> tuple[complex, complex]:
    """The complex pole pair of a second-order system (rad/s)."""
    w = 2 * math.pi * freq_hz
    root = w * math.sqrt(max(1.0 - damping**2, 0.0))
    return complex(-w * damping, root), complex(-w * damping, -root)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds)) if bounds[1] > bounds[0] else float(bounds[0])


def _log_uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(math.exp(_uniform(rng, (math.log(bounds[0]), math.log(bounds[1])))))


def draw_instrument(rng: np.random.Generator, kind: str, ranges: InstrumentRanges) -> Instrument:
    """One recording chain of ``kind`` with its parameters drawn from ``ranges``."""
    counts_per_volt = (FULL_SCALE_COUNTS + 1) / ranges.full_scale_v
    noise = _uniform(rng, ranges.digitizer_noise_counts)
    if kind == "broadband":
        zeros: tuple[complex, ...] = (0j, 0j)
        low = _pair(1.0 / _uniform(rng, ranges.broadband_period_s), 1 / math.sqrt(2))
        poles = low + _pair(_uniform(rng, ranges.broadband_high_hz), 1 / math.sqrt(2))
        sens, units, norm = _log_uniform(rng, ranges.broadband_v_per_m_s), "M/S", 1.0
        self_noise = 0.0
    elif kind == "short_period":
        f0 = _uniform(rng, ranges.geophone_hz)
        zeros, poles = (0j, 0j), _pair(f0, _uniform(rng, ranges.geophone_damping))
        sens, units, norm = _log_uniform(rng, ranges.geophone_v_per_m_s), "M/S", 15.0
        self_noise = 0.0
    elif kind == "accelerometer":
        zeros, poles = (), _pair(_uniform(rng, ranges.accelerometer_corner_hz), 1 / math.sqrt(2))
        sens = _log_uniform(rng, ranges.accelerometer_v_per_g) / G
        units, norm = "M/S**2", 1.0
        self_noise = 10.0 ** (_uniform(rng, ranges.accelerometer_noise_db) / 10.0)
    else:
        raise ValueError(f"unknown instrument {kind!r}; expected one of {list(INSTRUMENT_KINDS)}")
    return Instrument(
        kind=kind,
        zeros=zeros,
        poles=poles,
        a0=_normalised(zeros, poles, norm),
        norm_hz=norm,
        sensitivity=sens,
        input_units=units,
        counts_per_volt=counts_per_volt,
        digitizer_noise_counts=noise,
        self_noise_psd=self_noise,
    )


def anti_alias(freqs: np.ndarray, sampling_rate_hz: float) -> np.ndarray:
    """(F,) zero-phase digitiser anti-alias gain: 1 to 0.4 fs, raised cosine to 0 at fs/2."""
    lo, hi = ANTI_ALIAS_PASS * sampling_rate_hz, 0.5 * sampling_rate_hz
    x = np.clip((np.asarray(freqs) - lo) / (hi - lo), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def band_limit_hz(sampling_rate_hz: float) -> float:
    """Highest frequency (Hz) a record at this rate carries in full (the pass band's end)."""
    return ANTI_ALIAS_PASS * sampling_rate_hz


def digitize(counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Round to whole counts and saturate at ±full scale.

    Returns:
        (samples as float32, the fraction of samples at the clip level).
    """
    clipped = np.abs(counts) >= FULL_SCALE_COUNTS
    out = np.clip(np.rint(counts), -FULL_SCALE_COUNTS, FULL_SCALE_COUNTS).astype(np.float32)
    return out, float(clipped.mean())
