"""A physically grounded synthetic generator of 3-component local/regional event records.

Each trace is ``record_length_s`` (default 90 s) of Z, N, E ground velocity in nm/s at
``sampling_rate_hz`` (default 100 Hz), one of four classes, written in SeisBench's format
by :class:`~seislens.data.event_dataset.EventWriter`. The physics, per class:

* **Travel times** — first-arriving P and S (phases p/P/Pn, s/S/Sn) in ``iasp91``
  from :mod:`obspy.taup`, tabulated once per process on a (depth × distance) grid and
  bilinearly interpolated (within about 0.01 s of ``TauPyModel.get_travel_times``). The
  table also gives each ray's parameter, hence its take-off angle at the source and its
  incidence at the station (with near-surface velocities of 3.0 km/s for P and
  1.7 km/s for S, the usual steepening in the weathered layer).
* **Source** — moment M0 = 10^(1.5 Mw + 9.1) N·m; a causal Brune ω² source whose
  displacement spectrum is M0 / (1 + i f/fc)², with the Brune (1970) corner frequency
  fc = 0.37 β (Δσ / M0)^(1/3) for S (β = 3500 m/s; Δσ, the stress drop, log-uniform in
  ``stress_drop_mpa``) and 1.5 fc for P — so fc falls as M0^(-1/3) with magnitude.
* **Radiation** — earthquakes: a random double couple (strike uniform, dip with uniform
  cos, rake uniform) radiates P, SV and SH with Aki & Richards' (2002, eq. 4.89) patterns
  for the source-to-station azimuth and take-off angle. Explosions: an isotropic source
  (P radiation 1 in every direction, positive first motion) at 0–2 km depth with a higher
  corner (Δσ × 4) and weak S (5–25 % of a double couple's mean S radiation, from
  near-source conversions). Amplitudes: far-field M0 F / (4π ρ v³) with ρ = 2700 kg/m³,
  α = 6000 m/s, β = 3500 m/s, free-surface factor 2, geometric spreading 1/R to 100 km
  and 1/sqrt(R) beyond (R hypocentral).
* **Scattering** — each phase is its direct pulse plus a scattered coda: Gaussian noise
  under an envelope that starts at the arrival, decays as (T/(T+t)) exp(-t/τ) (single
  scattering, τ a few seconds to tens of seconds), passed through the same source and path
  filters, with the mean radiation (0.52 for P, 0.63 for S) on all three components.
* **Attenuation** — exp(-π f t*) with t* = T/Q + κ (Q uniform in ``q``, κ in ``kappa_s``,
  T the phase's travel time) and the matching constant-Q dispersion (a minimum-phase
  delay of (t*/π) ln(f_N/f)), so pulses stay causal and broaden with distance.
* **Surface events** (rockfalls, landslides, avalanches) — no impulsive phase: noise in the
  1–5 Hz band (corners f1 ∈ [0.8, 1.5] Hz, f2 ∈ [2.5, 5] Hz) under a spindle envelope that
  rises over 3–15 s and decays over 10–40 s, starting at the taup P time for a surface
  source, on all three components (horizontals 1–1.5 × vertical), spreading 1/sqrt(R).
  Their picks carry weights of 0.05–0.2.
* **Noise** — recorded-like, per component: a secondary-microseism peak (log-normal bump
  centred on 0.12–0.30 Hz) plus a 1/f^β background (β ∈ [0.5, 1.5]) and a cultural bump
  (2–10 Hz), random phases, slow amplitude modulation, occasional short transients, and
  an anti-alias roll-off; horizontals 1–1.5 × vertical. Event traces get noise scaled to
  an SNR drawn uniformly from ``snr_db``; noise-only traces have no arrivals.

SNR (dB) is 20 log10(A_s / A_n): A_s the peak 1 s RMS of the 3-component signal vector,
A_n the RMS of the noise vector, both band-limited to 1–45 Hz (the preprocessing band),
recorded in ``trace_snr_db``. The coda end is the last sample where the signal's 1 s RMS
stays above the noise RMS. Pick weights of events grow with SNR (0.5–1 for P).

Metadata per row (SeisBench names): the picks, weights and coda end in samples, the
travel times, distance, back-azimuth, magnitude (Mw), depth, origin time, source and
station coordinates, the mechanism of earthquakes, the class in ``trace_category``, and
``split`` (train/dev/test, stratified by class with ``split_fractions``). A noise row
leaves every source, path and pick column empty (NaN).

Determinism: the class/split plan comes from ``seed``; trace ``i`` uses its own generator
seeded by (seed, i), so the same config writes byte-identical files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import fft as sfft
from seislens.data.event_dataset import SPLITS, EventWriter
from seislens.models.contract import EVENT_CLASSES as CLASSES
from tqdm import tqdm

GENERATOR_VERSION = 1
MANIFEST_NAME = "seislens_synth.json"

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0
RHO = 2700.0  # kg/m^3
ALPHA = 6000.0  # m/s, P velocity at the source
BETA = 3500.0  # m/s, S velocity at the source
NEAR_SURFACE_VP = 3.0  # km/s
NEAR_SURFACE_VS = 1.7  # km/s
MEAN_RADIATION_P = math.sqrt(4.0 / 15.0)  # rms of the P pattern over the sphere
MEAN_RADIATION_S = math.sqrt(2.0 / 5.0)  # rms of the S pattern over the sphere
FREE_SURFACE = 2.0
NETWORK = "SY"
SNR_BAND_HZ = (1.0, 45.0)

Range = tuple[float, float]


# --------------------------------------------------------------------------- config


class EventSynthConfig(BaseModel):
    """What :func:`generate_events` writes. Ranges are (low, high), drawn uniformly
    unless said otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(1000, ge=1, description="number of traces")
    seed: int = Field(0, ge=0, description="master seed")
    class_fractions: dict[str, float] = Field(
        default_factory=lambda: {c: 0.25 for c in CLASSES},
        description="share of each class (normalised); classes left out get none",
    )
    split_fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train/dev/test shares, stratified by class"
    )
    record_length_s: float = Field(90.0, ge=60.0, le=600.0, description="trace length (s)")
    sampling_rate_hz: float = Field(100.0, ge=20.0, le=1000.0, description="Hz")
    p_onset_s: Range = Field((5.0, 25.0), description="P time after the trace start (s)")
    snr_db: Range = Field((5.0, 35.0), description="signal-to-noise ratio of events (dB)")
    distance_km: Range = Field((10.0, 300.0), description="epicentral distance (km)")
    earthquake_magnitude: Range = (1.0, 5.0)
    explosion_magnitude: Range = (1.0, 3.0)
    surface_magnitude: Range = (1.0, 3.0)
    earthquake_depth_km: Range = Field((2.0, 30.0), description="km")
    explosion_depth_km: Range = Field((0.0, 2.0), description="km")
    stress_drop_mpa: Range = Field((1.0, 10.0), description="Brune stress drop (MPa), log-uniform")
    q: Range = Field((150.0, 600.0), description="crustal quality factor")
    kappa_s: Range = Field((0.01, 0.04), description="site attenuation κ (s)")
    station_count: int = Field(40, ge=1, description="synthetic stations in the network")
    region_center_deg: tuple[float, float] = Field(
        (46.5, -121.5), description="(latitude, longitude) the stations scatter around"
    )
    bucket_size: int = Field(256, ge=1, description="traces per HDF5 dataset")

    @field_validator(
        "p_onset_s",
        "snr_db",
        "distance_km",
        "earthquake_magnitude",
        "explosion_magnitude",
        "surface_magnitude",
        "earthquake_depth_km",
        "explosion_depth_km",
        "stress_drop_mpa",
        "q",
        "kappa_s",
    )
    @classmethod
    def _ordered(cls, value: Range) -> Range:
        low, high = value
        if not low <= high:
            raise ValueError(f"range {value} must be (low, high) with low <= high")
        return value

    @field_validator("class_fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CLASSES))
        if unknown:
            raise ValueError(f"unknown classes {unknown}; expected some of {list(CLASSES)}")
        if any(v < 0 for v in value.values()) or sum(value.values()) <= 0:
            raise ValueError(f"class fractions {value} must be >= 0 with a positive sum")
        return value

    @field_validator("split_fractions")
    @classmethod
    def _splits(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v < 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"split fractions {value} must be >= 0 and sum to 1")
        return value

    @model_validator(mode="after")
    def _physical(self) -> EventSynthConfig:
        table = TABLE_LIMITS
        if not (
            table["distance_km"][0]
            <= self.distance_km[0]
            <= self.distance_km[1]
            <= table["distance_km"][1]
        ):
            raise ValueError(
                f"distance_km {self.distance_km} must lie within the travel-time table "
                f"{table['distance_km']} km"
            )
        for name in ("earthquake_depth_km", "explosion_depth_km"):
            low, high = getattr(self, name)
            if low < table["depth_km"][0] or high > table["depth_km"][1]:
                raise ValueError(f"{name} {(low, high)} must lie within {table['depth_km']} km")
        if self.p_onset_s[1] >= self.record_length_s - 30.0:
            raise ValueError(
                f"p_onset_s {self.p_onset_s} leaves under 30 s of record after P; "
                f"record_length_s is {self.record_length_s}"
            )
        if self.snr_db[0] < -20.0:
            raise ValueError(f"snr_db {self.snr_db} goes below -20 dB")
        return self

    @property
    def npts(self) -> int:
        """Samples per trace."""
        return round(self.record_length_s * self.sampling_rate_hz)


# --------------------------------------------------------------------------- travel times

_DEPTHS_KM = np.array(
    [
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
        3.0,
        4.0,
        5.0,
        7.5,
        10.0,
        12.5,
        15.0,
        17.5,
        19.9,
        20.1,
        22.5,
        25.0,
        27.5,
        30.0,
        32.5,
        34.9,
    ]
)
_DISTANCES_KM = np.arange(1.0, 341.0, 2.0)
TABLE_LIMITS = {
    "distance_km": (float(_DISTANCES_KM[0]), float(_DISTANCES_KM[-1])),
    "depth_km": (float(_DEPTHS_KM[0]), float(_DEPTHS_KM[-1])),
}
_P_PHASES = ("p", "P", "Pn")
_S_PHASES = ("s", "S", "Sn")


@dataclass(frozen=True)
class PhaseTimes:
    """First arrivals for one source–station pair (s, degrees, s/km)."""

    p_time_s: float
    s_time_s: float
    p_takeoff_deg: float
    s_takeoff_deg: float
    p_slowness_s_per_km: float
    s_slowness_s_per_km: float


@dataclass(frozen=True)
class TravelTimeTable:
    """First-arrival P and S on a (depth, distance) grid in iasp91.

    ``values`` is (6, H, D): P time (s), S time (s), P take-off (deg from down), S
    take-off, P and S horizontal slowness (s/km), at ``depths_km`` (H,) × ``distances_km``
    (D,).
    """

    depths_km: np.ndarray
    distances_km: np.ndarray
    values: np.ndarray

    def __call__(self, distance_km: float, depth_km: float) -> PhaseTimes:
        """Bilinear interpolation at one epicentral distance (km) and depth (km)."""
        i, wi = _bracket(self.depths_km, depth_km, "depth_km")
        j, wj = _bracket(self.distances_km, distance_km, "distance_km")
        v = self.values
        out = (1 - wi) * ((1 - wj) * v[:, i, j] + wj * v[:, i, j + 1]) + wi * (
            (1 - wj) * v[:, i + 1, j] + wj * v[:, i + 1, j + 1]
        )
        return PhaseTimes(*(float(x) for x in out))


def _bracket(grid: np.ndarray, x: float, name: str) -> tuple[int, float]:
    """Left index and weight of ``x`` on an increasing ``grid``."""
    if not grid[0] <= x <= grid[-1]:
        raise ValueError(f"{name} {x} outside the travel-time table [{grid[0]}, {grid[-1]}]")
    i = int(min(np.searchsorted(grid, x, side="right") - 1, len(grid) - 2))
    return i, float((x - grid[i]) / (grid[i + 1] - grid[i]))


def _first_arrival(phases: list[Any], radians: np.ndarray) -> tuple[np.ndarray, ...]:
    """Earliest time, ray parameter (s/rad) and phase index over ``phases`` at ``radians``.

    Works on each phase's sampled travel-time curve (taup's own ray sampling), taking the
    minimum over every curve segment that brackets the distance (triplications included).
    """
    best = np.full(radians.shape, np.inf)
    ray = np.full(radians.shape, np.nan)
    which = np.full(radians.shape, -1)
    for k, phase in enumerate(phases):
        d, t, p = phase.dist, phase.time, phase.ray_param
        if len(d) < 2:
            continue
        d0, d1 = d[:-1, None], d[1:, None]
        span = d1 - d0
        inside = (radians >= np.minimum(d0, d1)) & (radians <= np.maximum(d0, d1)) & (span != 0)
        w = (radians - d0) / np.where(span == 0, 1.0, span)
        times = np.where(inside, t[:-1, None] + w * (t[1:] - t[:-1])[:, None], np.inf)
        rays = p[:-1, None] + w * (p[1:] - p[:-1])[:, None]
        seg = np.argmin(times, axis=0)
        cols = np.arange(radians.size)
        better = times[seg, cols] < best
        best = np.where(better, times[seg, cols], best)
        ray = np.where(better, rays[seg, cols], ray)
        which = np.where(better, k, which)
    return best, ray, which


def _takeoff(
    phases: list[Any], which: np.ndarray, ray: np.ndarray, depth: float, model: Any
) -> np.ndarray:
    """Take-off angles (deg from the downward vertical) of the winning phases."""
    out = np.full(ray.shape, np.nan)
    radius = model.radius_of_planet - depth
    for k, phase in enumerate(phases):
        rows = which == k
        if not rows.any():
            continue
        down = bool(phase.down_going[0])
        v_mod = model.s_mod.v_mod
        wave = phase.name[0].upper()
        speed = (v_mod.evaluate_below if down else v_mod.evaluate_above)(depth, wave).item()
        angle = np.degrees(np.arcsin(np.clip(speed * ray[rows] / radius, -1.0, 1.0)))
        out[rows] = angle if down else 180.0 - angle
    return out


@lru_cache(maxsize=1)
def travel_time_table() -> TravelTimeTable:
    """The iasp91 first-arrival table, built once per process (about half a second)."""
    from obspy.taup import TauPyModel
    from obspy.taup.seismic_phase import SeismicPhase

    model = TauPyModel("iasp91").model
    radians = np.radians(_DISTANCES_KM / KM_PER_DEG)
    values = np.full((6, len(_DEPTHS_KM), len(_DISTANCES_KM)), np.nan)
    for h, depth in enumerate(_DEPTHS_KM):
        corrected = model.depth_correct(float(depth))
        for w, names in enumerate((_P_PHASES, _S_PHASES)):
            phases = [_phase(SeismicPhase, name, corrected) for name in names]
            phases = [p for p in phases if p is not None]
            time, ray, which = _first_arrival(phases, radians)
            values[w, h] = time
            values[2 + w, h] = _takeoff(phases, which, ray, float(depth), model)
            values[4 + w, h] = ray / EARTH_RADIUS_KM
    if not np.isfinite(values).all():
        raise RuntimeError("iasp91 travel-time table has gaps; the grid needs adjusting")
    return TravelTimeTable(_DEPTHS_KM.copy(), _DISTANCES_KM.copy(), values)


def _phase(cls: Any, name: str, model: Any) -> Any | None:
    """A taup phase, or None where it does not exist (e.g. up-going 'p' from 0 km)."""
    try:
        phase = cls(name, model)
    except Exception:  # taup raises assorted errors for impossible phases
        return None
    return phase if len(phase.dist) >= 2 else None


# --------------------------------------------------------------------------- source physics


def seismic_moment(magnitude: float) -> float:
    """Seismic moment M0 (N·m) of moment magnitude Mw (Hanks & Kanamori)."""
    return 10.0 ** (1.5 * magnitude + 9.1)


def corner_frequency(magnitude: float, stress_drop_mpa: float, wave: str = "S") -> float:
    """Brune corner frequency (Hz): 0.37 β (Δσ/M0)^(1/3) for S, 1.5 × that for P."""
    fc = 0.37 * BETA * (stress_drop_mpa * 1e6 / seismic_moment(magnitude)) ** (1.0 / 3.0)
    return fc * (1.5 if wave.upper() == "P" else 1.0)


def brune_velocity_spectrum(freqs: np.ndarray, moment: float, fc: float) -> np.ndarray:
    """Causal Brune ω² source, as the spectrum of moment rate's time derivative.

    Args:
        freqs: (F,) frequencies (Hz).
        moment: M0 (N·m).
        fc: corner frequency (Hz).
    Returns:
        (F,) complex: 2πi f · M0 / (1 + i f/fc)² (N·m, the far-field velocity shape).
    """
    return 2j * np.pi * freqs * moment / (1.0 + 1j * freqs / fc) ** 2


def attenuation(freqs: np.ndarray, t_star: float, f_ref: float) -> np.ndarray:
    """Constant-Q attenuation exp(-π f t*) with its minimum-phase dispersion (F,) complex.

    Frequencies below ``f_ref`` are delayed by (t*/π) ln(f_ref / f) s, keeping the pulse
    causal with its onset at the ray-theory time.
    """
    f = np.maximum(freqs, 1e-12)
    return np.exp(-np.pi * freqs * t_star + 2j * freqs * t_star * np.log(f / f_ref))


def radiation_pattern(
    strike: float, dip: float, rake: float, azimuth: float, takeoff: float
) -> tuple[float, float, float]:
    """Double-couple far-field radiation (F_P, F_SV, F_SH), Aki & Richards eq. 4.89.

    All angles in degrees; ``azimuth`` from source to station (clockwise from north),
    ``takeoff`` from the downward vertical.
    """
    s, d, r = np.radians(strike), np.radians(dip), np.radians(rake)
    phi, i = np.radians(azimuth) - s, np.radians(takeoff)
    sl, cl, sd, cd = np.sin(r), np.cos(r), np.sin(d), np.cos(d)
    fp = (
        cl * sd * np.sin(i) ** 2 * np.sin(2 * phi)
        - cl * cd * np.sin(2 * i) * np.cos(phi)
        + sl * np.sin(2 * d) * (np.cos(i) ** 2 - np.sin(i) ** 2 * np.sin(phi) ** 2)
        + sl * np.cos(2 * d) * np.sin(2 * i) * np.sin(phi)
    )
    fsv = (
        sl * np.cos(2 * d) * np.cos(2 * i) * np.sin(phi)
        - cl * cd * np.cos(2 * i) * np.cos(phi)
        + 0.5 * cl * sd * np.sin(2 * i) * np.sin(2 * phi)
        - 0.5 * sl * np.sin(2 * d) * np.sin(2 * i) * (1 + np.sin(phi) ** 2)
    )
    fsh = (
        cl * cd * np.cos(i) * np.sin(phi)
        + cl * sd * np.sin(i) * np.cos(2 * phi)
        + sl * np.cos(2 * d) * np.cos(i) * np.cos(phi)
        - 0.5 * sl * np.sin(2 * d) * np.sin(i) * np.sin(2 * phi)
    )
    return float(fp), float(fsv), float(fsh)


def geometric_spreading(hypocentral_km: float) -> float:
    """1/R (R in m) to 100 km, then 1/sqrt(R) (1/m), continuous at 100 km."""
    r = max(hypocentral_km, 1.0) * 1e3
    return 1.0 / r if r <= 1e5 else (1.0 / 1e5) * math.sqrt(1e5 / r)


# --------------------------------------------------------------------------- geometry


def destination(
    lat: float, lon: float, bearing_deg: float, distance_km: float
) -> tuple[float, float]:
    """Point ``distance_km`` from (lat, lon) along ``bearing_deg`` on a sphere (degrees)."""
    p1, l1, b = np.radians(lat), np.radians(lon), np.radians(bearing_deg)
    delta = distance_km / EARTH_RADIUS_KM
    p2 = math.asin(math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(delta) * math.cos(p1), math.cos(delta) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing (degrees clockwise from north) from point 1 to point 2."""
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def rt_to_ne(
    radial: np.ndarray, transverse: np.ndarray, back_azimuth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Radial/transverse → north/east (inverse of obspy's ``rotate_ne_rt``)."""
    ba = np.radians(back_azimuth)
    north = -radial * math.cos(ba) + transverse * math.sin(ba)
    east = -radial * math.sin(ba) - transverse * math.cos(ba)
    return north, east


# --------------------------------------------------------------------------- event draws


@dataclass(frozen=True)
class EventParams:
    """Everything that defines one synthetic trace (NaN where a class has no such thing)."""

    label: str
    station: int
    station_lat: float
    station_lon: float
    origin_time: float  # s since 1970 (UTC)
    p_onset_s: float
    snr_db: float = math.nan
    magnitude: float = math.nan
    depth_km: float = math.nan
    distance_km: float = math.nan
    back_azimuth_deg: float = math.nan
    strike: float = math.nan
    dip: float = math.nan
    rake: float = math.nan
    stress_drop_mpa: float = math.nan
    q: float = math.nan
    kappa_s: float = math.nan
    coda_decay_s: float = math.nan
    coda_ratio: float = math.nan
    s_fraction: float = math.nan
    noise_level: float = math.nan  # nm/s, noise-only traces


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _log_uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(math.exp(_uniform(rng, (math.log(bounds[0]), math.log(bounds[1])))))


def station_network(config: EventSynthConfig) -> np.ndarray:
    """(station_count, 2) latitude/longitude (deg) of the synthetic stations."""
    rng = np.random.default_rng([config.seed, 2])
    lat0, lon0 = config.region_center_deg
    out = np.empty((config.station_count, 2))
    for k in range(config.station_count):
        out[k] = destination(lat0, lon0, rng.uniform(0, 360), rng.uniform(0, 150.0))
    return out


def draw_event(
    rng: np.random.Generator, label: str, config: EventSynthConfig, stations: np.ndarray
) -> EventParams:
    """Draw the parameters of one trace of class ``label``."""
    k = int(rng.integers(len(stations)))
    origin = float(rng.uniform(1.42e9, 1.73e9))  # 2015 .. 2024
    if label == "explosion":  # blasting happens in the working day (UTC-8: 09..17 h)
        day = math.floor(origin / 86400.0) * 86400.0
        origin = day + (17.0 + rng.uniform(0.0, 8.0)) * 3600.0
    base = EventParams(
        label=label,
        station=k,
        station_lat=float(stations[k, 0]),
        station_lon=float(stations[k, 1]),
        origin_time=origin,
        p_onset_s=_uniform(rng, config.p_onset_s),
    )
    if label == "noise":
        return replace(base, noise_level=_log_uniform(rng, (10.0, 1000.0)))
    common = {
        "snr_db": _uniform(rng, config.snr_db),
        "distance_km": _uniform(rng, config.distance_km),
        "back_azimuth_deg": float(rng.uniform(0.0, 360.0)),
        "q": _uniform(rng, config.q),
        "kappa_s": _uniform(rng, config.kappa_s),
        "coda_decay_s": float(rng.uniform(3.0, 8.0)),
        "coda_ratio": float(rng.uniform(0.5, 1.5)),
    }
    if label == "earthquake":
        return replace(
            base,
            **common,
            magnitude=_uniform(rng, config.earthquake_magnitude),
            depth_km=_uniform(rng, config.earthquake_depth_km),
            strike=float(rng.uniform(0.0, 360.0)),
            dip=float(np.degrees(np.arccos(rng.uniform(0.0, 1.0)))),
            rake=float(rng.uniform(-180.0, 180.0)),
            stress_drop_mpa=_log_uniform(rng, config.stress_drop_mpa),
        )
    if label == "explosion":
        return replace(
            base,
            **common,
            magnitude=_uniform(rng, config.explosion_magnitude),
            depth_km=_uniform(rng, config.explosion_depth_km),
            stress_drop_mpa=4.0 * _log_uniform(rng, config.stress_drop_mpa),
            s_fraction=float(rng.uniform(0.05, 0.25)),
        )
    if label == "surface":
        return replace(
            base, **common, magnitude=_uniform(rng, config.surface_magnitude), depth_km=0.0
        )
    raise ValueError(f"unknown class {label!r}; expected one of {list(CLASSES)}")


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedTrace:
    """One synthetic record: (3, npts) arrays in Z, N, E order (nm/s) and its picks."""

    waveform: np.ndarray  # signal + noise, float32
    signal: np.ndarray  # event signal only, float32 (zeros for noise)
    p_sample: float
    s_sample: float
    coda_end_sample: float
    p_weight: float
    s_weight: float
    snr_db: float
    times: PhaseTimes | None


class _Grid:
    """FFT sizes and frequencies shared by every trace of one record length and rate."""

    def __init__(self, fs: float, npts: int) -> None:
        self.fs = fs
        self.npts = npts
        self.nfft = sfft.next_fast_len(self.npts + int(30 * self.fs), real=True)
        self.freqs = np.fft.rfftfreq(self.nfft, 1.0 / self.fs)
        self.time = np.arange(self.nfft) / self.fs
        low, high = SNR_BAND_HZ[0], min(SNR_BAND_HZ[1], 0.9 * self.fs / 2)
        self.band = (self.freqs >= low) & (self.freqs <= high)


@lru_cache(maxsize=4)
def _grid(fs: float, npts: int) -> _Grid:
    return _Grid(fs, npts)


def _envelope(
    grid: _Grid, onset_s: float, travel_s: float, decay_s: float, rise_s: float
) -> np.ndarray:
    """Unit-energy coda envelope (nfft,): 0 before ``onset_s``, then
    (1 - e^(-t/rise)) · (T/(T+t)) · e^(-t/decay), zero past the record end."""
    t = grid.time - onset_s
    after = (t >= 0) & (grid.time < grid.npts / grid.fs)
    tt = np.where(after, t, 0.0)
    env = np.where(
        after, (1 - np.exp(-tt / rise_s)) * travel_s / (travel_s + tt) * np.exp(-tt / decay_s), 0.0
    )
    norm = math.sqrt(float(np.sum(env**2)))
    return env / norm if norm > 0 else env


def _spindle(grid: _Grid, onset_s: float, rise_s: float, decay_s: float) -> np.ndarray:
    """Unit-energy emergent envelope: (1 - e^(-t/rise))² e^(-t/decay) after ``onset_s``."""
    t = grid.time - onset_s
    after = (t >= 0) & (grid.time < grid.npts / grid.fs)
    tt = np.where(after, t, 0.0)
    env = np.where(after, (1 - np.exp(-tt / rise_s)) ** 2 * np.exp(-tt / decay_s), 0.0)
    return env / math.sqrt(float(np.sum(env**2)))


def _shift(grid: _Grid, seconds: float) -> np.ndarray:
    """(F,) spectrum of a unit impulse at ``seconds`` (sub-sample exact)."""
    return np.exp(-2j * np.pi * grid.freqs * seconds) * grid.fs


def _radiation(
    params: EventParams, times: PhaseTimes, rng: np.random.Generator
) -> tuple[float, float, float, float, float]:
    """Direct P, SV, SH radiation and the P and S coda (mean) radiation of a source.

    Earthquakes: the double couple's patterns at the take-off angles. Explosions: P = 1
    everywhere; S only from conversions, ``s_fraction`` of the mean S radiation.
    """
    if params.label == "explosion":
        weak_s = params.s_fraction * MEAN_RADIATION_S
        sv = weak_s * float(rng.choice([-1.0, 1.0]))
        sh = 0.5 * weak_s * float(rng.choice([-1.0, 1.0]))
        return 1.0, sv, sh, MEAN_RADIATION_P, weak_s
    azimuth = (params.back_azimuth_deg + 180.0) % 360.0
    mech = (params.strike, params.dip, params.rake, azimuth)
    fp = radiation_pattern(*mech, times.p_takeoff_deg)[0]
    _, sv, sh = radiation_pattern(*mech, times.s_takeoff_deg)
    return fp, sv, sh, MEAN_RADIATION_P, MEAN_RADIATION_S


def _earthquake_like(
    params: EventParams, times: PhaseTimes, grid: _Grid, rng: np.random.Generator
) -> np.ndarray:
    """(3, F) Z/R/T velocity spectra (m/s per bin scale) of a double-couple or explosion."""
    hypo = math.hypot(params.distance_km, params.depth_km)
    spread = geometric_spreading(hypo) * FREE_SURFACE
    moment = seismic_moment(params.magnitude)
    fp, direct_sv, direct_sh, coda_p, coda_s = _radiation(params, times, rng)
    out = np.zeros((3, grid.freqs.size), dtype=complex)
    fnyq = grid.fs / 2
    onset = params.p_onset_s
    s_onset = onset + times.s_time_s - times.p_time_s
    for wave, speed, t_arr, t_travel, slowness, near in (
        ("P", ALPHA, onset, times.p_time_s, times.p_slowness_s_per_km, NEAR_SURFACE_VP),
        ("S", BETA, s_onset, times.s_time_s, times.s_slowness_s_per_km, NEAR_SURFACE_VS),
    ):
        fc = corner_frequency(params.magnitude, params.stress_drop_mpa, wave)
        path = (
            brune_velocity_spectrum(grid.freqs, moment, fc)
            * attenuation(grid.freqs, t_travel / params.q + params.kappa_s, fnyq)
            * spread
            / (4 * math.pi * RHO * speed**3)
        )
        incidence = math.asin(min(1.0, slowness * near))
        cos_i, sin_i = math.cos(incidence), math.sin(incidence)
        if wave == "P":
            direct = np.array([fp * cos_i, fp * sin_i, 0.0])
            coda_rms = coda_p
        else:
            direct = np.array([direct_sv * sin_i, direct_sv * cos_i, direct_sh])
            coda_rms = coda_s
        env = _envelope(
            grid,
            t_arr,
            t_travel,
            params.coda_decay_s * (1 + t_travel / 30.0),
            0.1 + 0.02 * t_travel,
        )
        share = rng.dirichlet([4.0, 3.0, 3.0] if wave == "P" else [2.0, 4.0, 4.0])
        noise = rng.standard_normal((3, grid.nfft)) * env
        coda = sfft.rfft(noise, axis=-1) * grid.fs
        weight = coda_rms * params.coda_ratio * (1 + params.distance_km / 100.0)
        out += path * (
            direct[:, None] * _shift(grid, t_arr) + weight * np.sqrt(3 * share)[:, None] * coda
        )
    return out


def _surface(
    params: EventParams, times: PhaseTimes, grid: _Grid, rng: np.random.Generator
) -> np.ndarray:
    """(3, F) Z/R/T spectra of an emergent 1–5 Hz surface source (rockfall, landslide)."""
    f = grid.freqs
    f1, f2 = rng.uniform(0.8, 1.5), rng.uniform(2.5, 5.0)
    band = (1j * f / f1) ** 2 / (1 + 1j * f / f1) ** 2 / (1 + 1j * f / f2) ** 4  # causal
    hypo = max(params.distance_km, 1.0)
    # level of a same-magnitude earthquake's S spectrum near 3 Hz, spread as surface waves
    amp = (
        20.0
        * seismic_moment(params.magnitude)
        / math.sqrt(hypo * 1e3)
        / (4 * math.pi * RHO * BETA**3)
    )
    path = band * amp * attenuation(f, times.s_time_s / params.q + params.kappa_s, grid.fs / 2)
    env = _spindle(grid, params.p_onset_s, rng.uniform(3.0, 15.0), rng.uniform(10.0, 40.0))
    gains = np.array([1.0, rng.uniform(1.0, 1.5), rng.uniform(1.0, 1.5)])
    noise = rng.standard_normal((3, grid.nfft)) * env
    return path * gains[:, None] * sfft.rfft(noise, axis=-1) * grid.fs


def _noise_spectrum(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Z/N/E spectra (3, F) of recorded-like noise (arbitrary scale): the ambient part
    (microseism + 1/f background) and the cultural part (2–10 Hz bump)."""
    f = np.maximum(grid.freqs, grid.freqs[1])
    f_ms = rng.uniform(0.12, 0.30)
    micro = rng.uniform(3.0, 30.0) * np.exp(-0.5 * (np.log(f / f_ms) / 0.35) ** 2)
    background = f ** (-rng.uniform(0.5, 1.5) / 2.0)
    f_cult = rng.uniform(2.0, 10.0)
    culture = rng.uniform(0.05, 1.0) * np.exp(-0.5 * (np.log(f / f_cult) / 0.5) ** 2)
    lowcut = (f / 0.02) ** 2 / (1 + (f / 0.02) ** 2)
    anti_alias = 1.0 / np.sqrt(1 + (f / (0.4 * grid.fs)) ** 16)
    gains = np.array([1.0, rng.uniform(1.0, 1.5), rng.uniform(1.0, 1.5)])[:, None]
    white = sfft.rfft(rng.standard_normal((3, grid.nfft)), axis=-1) * gains
    ambient, cultural = white * (micro + background), white * culture
    for part in (ambient, cultural):
        part *= lowcut * anti_alias
        part[:, 0] = 0.0
    return ambient, cultural


def _noise(
    grid: _Grid, ambient: np.ndarray, cultural: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(3, nfft) noise: ambient part under a slow modulation (±15 % per term, periods
    20–200 s), cultural part under a few short bursts (0.5–4 s wide, 0–2 of them)."""
    t = grid.time
    slow = np.ones_like(t)
    for _ in range(3):
        slow += (
            0.15
            * rng.uniform(-1, 1)
            * np.sin(2 * math.pi * rng.uniform(0.005, 0.05) * t + rng.uniform(0, 2 * math.pi))
        )
    bursts = np.ones_like(t)
    for _ in range(int(rng.integers(0, 3))):
        start, width = rng.uniform(0, grid.npts / grid.fs), rng.uniform(0.5, 4.0)
        bursts += rng.uniform(1.0, 4.0) * np.exp(-0.5 * ((t - start) / width) ** 2)
    parts = sfft.irfft(np.concatenate([ambient, cultural]), n=grid.nfft, axis=-1)
    return parts[:3] * np.maximum(slow, 0.2) + parts[3:] * bursts


def _band_rms(spectrum: np.ndarray, grid: _Grid) -> float:
    """RMS (over time, summed over components) of the band-limited part of (3, F) spectra."""
    power = np.abs(spectrum[:, grid.band]) ** 2
    return math.sqrt(2.0 * float(power.sum()) / grid.nfft**2)


def _moving_rms(x: np.ndarray, width: int) -> np.ndarray:
    """(n,) centred RMS over ``width`` samples of the vector sum of (3, n) ``x``."""
    power = np.concatenate([[0.0], np.cumsum((x.astype(np.float64) ** 2).sum(axis=0))])
    half = width // 2
    idx = np.arange(x.shape[1])
    lo, hi = np.clip(idx - half, 0, x.shape[1]), np.clip(idx + half + 1, 0, x.shape[1])
    return np.sqrt((power[hi] - power[lo]) / (hi - lo))


def render_event(
    params: EventParams, config: EventSynthConfig, rng: np.random.Generator
) -> RenderedTrace:
    """Synthesise one trace from ``params`` (the random parts draw from ``rng``)."""
    grid = _grid(config.sampling_rate_hz, config.npts)
    ambient, cultural = _noise_spectrum(grid, rng)
    noise = _noise(grid, ambient, cultural, rng)[:, : grid.npts]
    level = _band_rms(ambient + cultural, grid)
    if params.label == "noise":
        wave = (noise * (params.noise_level / level)).astype(np.float32)
        nan = math.nan
        return RenderedTrace(wave, np.zeros_like(wave), nan, nan, nan, nan, nan, nan, None)
    times = travel_time_table()(params.distance_km, params.depth_km)
    if params.label == "surface":
        zrt = _surface(params, times, grid, rng)
    else:
        zrt = _earthquake_like(params, times, grid, rng)
    north, east = rt_to_ne(zrt[1], zrt[2], params.back_azimuth_deg)
    spectra = np.stack([zrt[0], north, east]) * 1e9  # m/s -> nm/s
    spectra[:, -1] = 0.0  # no energy exactly at Nyquist (irfft would drop its phase)
    both = sfft.irfft(np.concatenate([spectra, spectra * grid.band]), n=grid.nfft, axis=-1)
    signal, in_band = both[:3, : grid.npts], both[3:, : grid.npts]
    envelope = _moving_rms(in_band, int(grid.fs))
    noise_rms = float(envelope.max()) / 10 ** (params.snr_db / 20.0)
    noise = noise * (noise_rms / level)
    return _finish(params, times, grid, signal, noise, envelope, noise_rms, rng)


def _finish(
    params: EventParams,
    times: PhaseTimes,
    grid: _Grid,
    signal: np.ndarray,
    noise: np.ndarray,
    envelope: np.ndarray,
    noise_rms: float,
    rng: np.random.Generator,
) -> RenderedTrace:
    """Picks, weights and coda end of an event trace."""
    p_sample = params.p_onset_s * grid.fs
    s_sample = (params.p_onset_s + times.s_time_s - times.p_time_s) * grid.fs
    above = np.flatnonzero(envelope > noise_rms)
    coda_end = float(above[-1]) if above.size else p_sample
    quality = float(np.clip((params.snr_db - 5.0) / 30.0, 0.0, 1.0))
    if params.label == "surface":
        p_weight, s_weight = rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)
    else:
        p_weight = 0.5 + 0.5 * quality * rng.uniform(0.8, 1.0)
        s_weight = 0.4 + 0.5 * quality * rng.uniform(0.7, 1.0)
        if params.label == "explosion":
            s_weight *= 0.5
    return RenderedTrace(
        waveform=(signal + noise).astype(np.float32),
        signal=signal.astype(np.float32),
        p_sample=float(round(p_sample)),
        s_sample=float(round(s_sample)),
        coda_end_sample=coda_end,
        p_weight=round(float(p_weight), 3),
        s_weight=round(float(s_weight), 3),
        snr_db=params.snr_db,
        times=times,
    )


# --------------------------------------------------------------------------- metadata rows


def _iso(epoch_s: float) -> str:
    """ISO-8601 UTC time with microseconds, as SeisBench writes it."""
    from obspy import UTCDateTime

    return str(UTCDateTime(round(epoch_s, 6)))


def metadata_row(
    index: int, params: EventParams, trace: RenderedTrace, split: str, config: EventSynthConfig
) -> dict[str, Any]:
    """The SeisBench metadata row of one rendered trace."""
    nan = math.nan
    p_time = trace.times.p_time_s if trace.times else nan
    origin = params.origin_time
    start = origin + p_time - params.p_onset_s if trace.times else origin
    row: dict[str, Any] = {
        "trace_name": f"synth_{index:08d}",
        "trace_sampling_rate_hz": config.sampling_rate_hz,
        "trace_start_time": _iso(start),
        "trace_npts": config.npts,
        "trace_p_arrival_sample": trace.p_sample,
        "trace_s_arrival_sample": trace.s_sample,
        "trace_p_weight": trace.p_weight,
        "trace_s_weight": trace.s_weight,
        "trace_coda_end_sample": trace.coda_end_sample,
        "trace_snr_db": round(trace.snr_db, 3) if trace.times else nan,
        "trace_category": params.label,
        "source_magnitude": round(params.magnitude, 3),
        "source_magnitude_type": "Mw" if trace.times else "",
        "source_depth_km": round(params.depth_km, 3),
        "source_origin_time": _iso(origin) if trace.times else "",
        "source_latitude_deg": nan,
        "source_longitude_deg": nan,
        "station_network_code": NETWORK,
        "station_code": f"S{params.station:03d}",
        "station_latitude_deg": round(params.station_lat, 5),
        "station_longitude_deg": round(params.station_lon, 5),
        "path_ep_distance_km": round(params.distance_km, 3),
        "path_back_azimuth_deg": round(params.back_azimuth_deg, 3),
        "path_travel_time_P_s": round(p_time, 4),
        "path_travel_time_S_s": round(trace.times.s_time_s, 4) if trace.times else nan,
        "source_strike_deg": round(params.strike, 2),
        "source_dip_deg": round(params.dip, 2),
        "source_rake_deg": round(params.rake, 2),
        "source_stress_drop_mpa": round(params.stress_drop_mpa, 4),
        "path_q": round(params.q, 2),
        "split": split,
    }
    if trace.times:
        lat, lon = destination(
            params.station_lat, params.station_lon, params.back_azimuth_deg, params.distance_km
        )
        row["source_latitude_deg"], row["source_longitude_deg"] = round(lat, 5), round(lon, 5)
    return row


# --------------------------------------------------------------------------- plan + driver


def _largest_remainder(total: int, shares: list[float]) -> list[int]:
    """Integer counts summing to ``total`` in proportion to ``shares``."""
    weights = np.asarray(shares, float) / float(np.sum(shares))
    raw = weights * total
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]:
        counts[k] += 1
    return counts.tolist()


def plan(config: EventSynthConfig) -> tuple[list[str], list[str]]:
    """Class and split of every trace: exact shares, shuffled by the seed, split per class."""
    rng = np.random.default_rng([config.seed, 0])
    shares = [config.class_fractions.get(c, 0.0) for c in CLASSES]
    labels = np.repeat(np.array(CLASSES, dtype=object), _largest_remainder(config.count, shares))
    labels = labels[rng.permutation(config.count)]
    splits = np.empty(config.count, dtype=object)
    for name in CLASSES:
        rows = np.flatnonzero(labels == name)
        parts = np.repeat(
            np.array(SPLITS, dtype=object),
            _largest_remainder(rows.size, list(config.split_fractions)),
        )
        splits[rows] = parts[rng.permutation(rows.size)]
    return [str(x) for x in labels], [str(x) for x in splits]


def synthesize(
    index: int, label: str, config: EventSynthConfig, stations: np.ndarray
) -> tuple[EventParams, RenderedTrace]:
    """Trace ``index`` of ``config``: its parameters and its samples (deterministic)."""
    rng = np.random.default_rng([config.seed, 1, index])
    params = draw_event(rng, label, config, stations)
    return params, render_event(params, config, rng)


def _manifest(config: EventSynthConfig) -> dict[str, Any]:
    return {
        "generator": "seislens.data.event_synth",
        "version": GENERATOR_VERSION,
        "config": config.model_dump(mode="json"),
    }


def _existing(out: Path, config: EventSynthConfig) -> bool:
    """True when ``out`` already holds this exact dataset; raises if it holds another."""
    if not out.exists() or not any(out.iterdir()):
        return False
    manifest_path = out / MANIFEST_NAME
    if not manifest_path.is_file():
        found = sorted(p.name for p in out.iterdir())[:10]
        raise FileExistsError(
            f"{out} is not empty and is not a synthetic event dataset (no {MANIFEST_NAME}; "
            f"found {found}); choose an empty folder or pass overwrite=True"
        )
    old = json.loads(manifest_path.read_text())
    new = _manifest(config)
    complete = (out / "metadata.csv").is_file() and (out / "waveforms.hdf5").is_file()
    if old == new and complete:
        return True
    if old == new:
        raise FileExistsError(
            f"{out} holds an incomplete copy of this dataset; pass overwrite=True"
        )
    old_cfg = old.get("config", {})
    diff = sorted(
        k for k in set(old_cfg) | set(new["config"]) if old_cfg.get(k) != new["config"].get(k)
    )
    raise FileExistsError(
        f"{out} holds a different synthetic dataset (generator version "
        f"{old.get('version')} vs {GENERATOR_VERSION}; differing settings: {diff}); "
        "choose another folder or pass overwrite=True"
    )


def generate_events(
    out: Path, config: EventSynthConfig, progress: bool = True, overwrite: bool = False
) -> Path:
    """Write ``config.count`` synthetic traces to the SeisBench-format folder ``out``.

    Re-running with the same config on a complete folder is a no-op; a folder holding
    anything else is refused (FileExistsError naming what differs) unless ``overwrite``,
    in which case it is regenerated. The folder appears atomically when done.

    Returns:
        ``out``.
    """
    out = Path(out)
    if not overwrite and _existing(out, config):
        return out
    labels, splits = plan(config)
    stations = station_network(config)
    travel_time_table()  # build the table before the progress bar starts
    writer = EventWriter(
        out,
        sampling_rate_hz=config.sampling_rate_hz,
        bucket_size=config.bucket_size,
        overwrite=True,
        unit="nm/s",
    )
    with (
        writer,
        tqdm(
            total=config.count, desc="synthetic events", unit="trace", disable=not progress
        ) as bar,
    ):
        for index, (label, split) in enumerate(zip(labels, splits, strict=True)):
            params, trace = synthesize(index, label, config, stations)
            writer.add_trace(metadata_row(index, params, trace, split, config), trace.waveform)
            bar.update()
        writer.add_file(MANIFEST_NAME, json.dumps(_manifest(config), indent=2, sort_keys=True))
    return out
