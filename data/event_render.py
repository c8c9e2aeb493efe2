"""Rendering one synthetic event record: phases → ground velocity → instrument → counts.

The physics is documented in :mod:`seislens.data.event_synth` (overview),
:mod:`~seislens.data.event_phases` (travel times), :mod:`~seislens.data.event_sources`
(source and path), :mod:`~seislens.data.event_noise` (noise) and
:mod:`~seislens.data.event_instruments` (recording chain). Everything is built in the
frequency domain on a grid ``record + 30 s`` long (so nothing wraps around) at the
trace's native rate, then cut to the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import fft as sfft
from seislens.data.event_instruments import Instrument, anti_alias, band_limit_hz, digitize
from seislens.data.event_noise import (
    acceleration_to_velocity_psd,
    ground_noise_spectra,
    modulate,
    psd_amplitude,
)
from seislens.data.event_phases import (
    EARTH_RADIUS_KM,
    LG_GROUP_KM_S,
    Arrivals,
    source_velocities,
    travel_time_table,
)
from seislens.data.event_sources import (
    MEAN_RADIATION_P,
    MEAN_RADIATION_S,
    attenuation,
    body_spreading,
    brune_velocity_spectrum,
    corner_frequency,
    far_field_level,
    geometric_spreading,
    lg_excitation,
    local_magnitude,
    radiation_pattern,
    seismic_moment,
    wood_anderson_mm,
)

if TYPE_CHECKING:
    from seislens.data.event_synth_config import EventSynthConfig

NEAR_SURFACE_VP = 3.0  # km/s
NEAR_SURFACE_VS = 1.7  # km/s
RHO_CRUST = 2700.0  # kg/m³, Lg and surface sources
BETA_CRUST = 3500.0  # m/s
SNR_BAND_HZ = (1.0, 45.0)
CODA_DISTANCE_CAP_KM = 200.0  # the coda-to-direct ratio stops growing here


@dataclass(frozen=True)
class EventParams:
    """Everything that defines one synthetic trace (NaN where a class has no such thing)."""

    label: str
    station: int
    station_lat: float
    station_lon: float
    origin_time: float  # s since 1970 (UTC)
    p_onset_s: float
    sampling_rate_hz: float
    instrument: Instrument
    noise_position: float
    snr_db: float = math.nan  # the target in "snr" amplitude mode
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
    head_ratio: float = math.nan
    lg_ratio: float = math.nan


@dataclass(frozen=True)
class RenderedTrace:
    """One synthetic record: (3, npts) arrays in Z, N, E order (counts) and its picks."""

    waveform: np.ndarray  # signal + noise, digitised (whole counts, clipped), float32
    signal: np.ndarray  # the event's part alone, counts before digitising, float32
    p_sample: float
    s_sample: float
    coda_end_sample: float
    p_weight: float
    s_weight: float
    snr_db: float  # measured (physical mode) or imposed (snr mode); NaN for noise
    times: Arrivals | None
    clip_fraction: float = 0.0
    noise_rescaled: bool = False  # physical mode: noise lowered to reach the SNR floor
    local_magnitude: float = math.nan  # ML (Hutton & Boore) of the synthetic WA record


@dataclass(frozen=True)
class _Phase:
    """One arrival to render (times in s after the origin)."""

    wave: str  # "P" or "S"
    travel_s: float
    takeoff_deg: float
    slowness_s_per_km: float
    spreading: float  # 1/m, ratios included
    name: str  # "P", "Pg", "Pn", "S", "Sg", "Sn", "Lg"
    end_s: float = math.nan  # Lg: the end of its group-velocity window


class _Grid:
    """FFT sizes and frequencies shared by every trace of one record length and rate."""

    def __init__(self, fs: float, npts: int) -> None:
        self.fs = fs
        self.npts = npts
        self.nfft = sfft.next_fast_len(self.npts + int(30 * self.fs), real=True)
        self.freqs = np.fft.rfftfreq(self.nfft, 1.0 / self.fs)
        self.time = np.arange(self.nfft) / self.fs
        low, high = SNR_BAND_HZ[0], min(SNR_BAND_HZ[1], band_limit_hz(fs))
        self.band = (self.freqs >= low) & (self.freqs <= high)
        self.anti_alias = anti_alias(self.freqs, fs)


@lru_cache(maxsize=16)
def _grid(fs: float, npts: int) -> _Grid:
    return _Grid(fs, npts)


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


# --------------------------------------------------------------------------- envelopes


def _unit_energy(env: np.ndarray) -> np.ndarray:
    norm = math.sqrt(float(np.sum(env**2)))
    return env / norm if norm > 0 else env


def _envelope(
    grid: _Grid, onset_s: float, travel_s: float, decay_s: float, rise_s: float
) -> np.ndarray:
    """Unit-energy coda envelope (nfft,): 0 before ``onset_s``, then
    (1 - e^(-t/rise)) · (T/(T+t)) · e^(-t/decay), zero past the record end."""
    t = grid.time - onset_s
    after = (t >= 0) & (grid.time < grid.npts / grid.fs)
    tt = np.where(after, t, 0.0)
    env = (1 - np.exp(-tt / rise_s)) * travel_s / (travel_s + tt) * np.exp(-tt / decay_s)
    return _unit_energy(np.where(after, env, 0.0))


def _lg_envelope(grid: _Grid, front_s: float, end_s: float, decay_s: float) -> np.ndarray:
    """Unit-energy Lg envelope (record times, s): rising over the first quarter of its
    group-velocity window [front, end], flat to its end, then decaying as e^(-t/decay)."""
    t = grid.time - front_s
    after = (t >= 0) & (grid.time < grid.npts / grid.fs)
    tt = np.where(after, t, 0.0)
    rise = 0.25 * (end_s - front_s) + 0.5
    tail = np.exp(-np.maximum(grid.time - end_s, 0.0) / decay_s)
    return _unit_energy(np.where(after, (1 - np.exp(-tt / rise)) * tail, 0.0))


def _spindle(grid: _Grid, onset_s: float, rise_s: float, decay_s: float) -> np.ndarray:
    """Unit-energy emergent envelope: (1 - e^(-t/rise))² e^(-t/decay) after ``onset_s``."""
    t = grid.time - onset_s
    after = (t >= 0) & (grid.time < grid.npts / grid.fs)
    tt = np.where(after, t, 0.0)
    return _unit_energy(
        np.where(after, (1 - np.exp(-tt / rise_s)) ** 2 * np.exp(-tt / decay_s), 0.0)
    )


def _shift(grid: _Grid, seconds: float) -> np.ndarray:
    """(F,) spectrum of a unit impulse at ``seconds`` (sub-sample exact)."""
    return np.exp(-2j * np.pi * grid.freqs * seconds) * grid.fs


# --------------------------------------------------------------------------- phases


def phase_list(params: EventParams, arrivals: Arrivals) -> list[_Phase]:
    """The arrivals to render: direct waves (and refracted ones ahead of them) of the
    source's depth, and Lg (see :mod:`seislens.data.event_sources` for the spreading)."""
    first, crust = arrivals.first, arrivals.crustal
    hypo = math.hypot(params.distance_km, params.depth_km)
    out: list[_Phase] = []
    if crust is None:  # below the Moho: direct body waves
        spread = body_spreading(hypo)
        out.append(
            _Phase("P", first.p_time_s, first.p_takeoff_deg, first.p_slowness_s_per_km, spread, "P")
        )
        out.append(
            _Phase("S", first.s_time_s, first.s_takeoff_deg, first.s_slowness_s_per_km, spread, "S")
        )
    else:
        spread = geometric_spreading(hypo)
        out.append(
            _Phase(
                "P", crust.p_time_s, crust.p_takeoff_deg, crust.p_slowness_s_per_km, spread, "Pg"
            )
        )
        out.append(
            _Phase(
                "S", crust.s_time_s, crust.s_takeoff_deg, crust.s_slowness_s_per_km, spread, "Sg"
            )
        )
        head = params.head_ratio * body_spreading(hypo)
        if arrivals.refracted_p:
            out.append(
                _Phase(
                    "P", first.p_time_s, first.p_takeoff_deg, first.p_slowness_s_per_km, head, "Pn"
                )
            )
        if arrivals.refracted_s:
            out.append(
                _Phase(
                    "S", first.s_time_s, first.s_takeoff_deg, first.s_slowness_s_per_km, head, "Sn"
                )
            )
    lg = lg_excitation(params.distance_km, params.depth_km, arrivals.moho_km)
    if lg > 0:
        front = max(params.distance_km / LG_GROUP_KM_S[0], first.s_time_s)
        end = max(params.distance_km / LG_GROUP_KM_S[1], front + 1.0)
        spread = params.lg_ratio * lg * geometric_spreading(hypo)
        out.append(_Phase("S", front, 90.0, 1.0 / LG_GROUP_KM_S[0], spread, "Lg", end))
    return out


def _radiation(
    params: EventParams, phase: _Phase, signs: tuple[float, float]
) -> tuple[float, float, float, float]:
    """Direct P, SV, SH radiation of one phase and the rms radiation of its coda.

    Earthquakes: the double couple's patterns at the phase's take-off. Explosions: P = 1
    everywhere; S only from conversions, ``s_fraction`` of the mean S radiation, with
    the trace's fixed ``signs``.
    """
    if params.label == "explosion":
        weak_s = params.s_fraction * MEAN_RADIATION_S
        if phase.wave == "P":
            return 1.0, 0.0, 0.0, MEAN_RADIATION_P
        return 0.0, weak_s * signs[0], 0.5 * weak_s * signs[1], weak_s
    azimuth = (params.back_azimuth_deg + 180.0) % 360.0
    fp, sv, sh = radiation_pattern(
        params.strike, params.dip, params.rake, azimuth, phase.takeoff_deg
    )
    return fp, sv, sh, MEAN_RADIATION_P if phase.wave == "P" else MEAN_RADIATION_S


def _phase_spectrum(
    params: EventParams,
    phase: _Phase,
    origin_s: float,
    grid: _Grid,
    rng: np.random.Generator,
    signs: tuple[float, float],
    medium: tuple[float, ...],
) -> np.ndarray:
    """(3, F) Z/R/T ground-velocity spectra (m/s scale) of one phase: its pulse and coda.
    ``medium`` is (α, β, ρ) at the source (m/s, m/s, kg/m³)."""
    alpha, beta, rho = medium
    if phase.name == "Lg":
        beta, rho = BETA_CRUST, RHO_CRUST
    speed = alpha if phase.wave == "P" else beta
    fc = corner_frequency(params.magnitude, params.stress_drop_mpa, phase.wave)
    moment = brune_velocity_spectrum(grid.freqs, seismic_moment(params.magnitude), fc)
    t_star = phase.travel_s / params.q + params.kappa_s
    path = far_field_level(moment, rho, speed) * attenuation(grid.freqs, t_star, grid.fs / 2)
    path = path * phase.spreading
    fp, sv, sh, coda_rms = _radiation(params, phase, signs)
    onset = origin_s + phase.travel_s
    noise = rng.standard_normal((3, grid.nfft))
    if phase.name == "Lg":
        env = _lg_envelope(grid, onset, origin_s + phase.end_s, params.coda_decay_s * 3.0)
        share = rng.dirichlet([1.0, 4.5, 4.5])
        weight = coda_rms * math.sqrt(max(phase.end_s - phase.travel_s, 1.0))
        return (
            path * weight * np.sqrt(3 * share)[:, None] * sfft.rfft(noise * env, axis=-1) * grid.fs
        )
    near = NEAR_SURFACE_VP if phase.wave == "P" else NEAR_SURFACE_VS
    incidence = math.asin(min(1.0, phase.slowness_s_per_km * near))
    cos_i, sin_i = math.cos(incidence), math.sin(incidence)
    if phase.wave == "P":
        direct = np.array([fp * cos_i, fp * sin_i, 0.0])
        share = rng.dirichlet([4.0, 3.0, 3.0])
    else:
        direct = np.array([sv * sin_i, sv * cos_i, sh])
        share = rng.dirichlet([2.0, 4.0, 4.0])
    t = phase.travel_s
    env = _envelope(grid, onset, t, params.coda_decay_s * (1 + t / 30.0), 0.1 + 0.02 * t)
    coda = sfft.rfft(noise * env, axis=-1) * grid.fs
    weight = (
        coda_rms * params.coda_ratio * (1 + min(params.distance_km, CODA_DISTANCE_CAP_KM) / 100.0)
    )
    return path * (
        direct[:, None] * _shift(grid, onset) + weight * np.sqrt(3 * share)[:, None] * coda
    )


def _earthquake_like(
    params: EventParams,
    arrivals: Arrivals,
    grid: _Grid,
    rng: np.random.Generator,
    medium: tuple[float, ...],
) -> np.ndarray:
    """(3, F) Z/R/T velocity spectra of a double couple or an explosion, all phases;
    ``medium`` is (α, β, ρ) at the source."""
    origin = params.p_onset_s - arrivals.first.p_time_s
    signs = (float(rng.choice([-1.0, 1.0])), float(rng.choice([-1.0, 1.0])))
    out = np.zeros((3, grid.freqs.size), dtype=complex)
    for phase in phase_list(params, arrivals):
        out += _phase_spectrum(params, phase, origin, grid, rng, signs, medium)
    return out


def _surface(
    params: EventParams, arrivals: Arrivals, grid: _Grid, rng: np.random.Generator
) -> np.ndarray:
    """(3, F) Z/R/T spectra of an emergent 1–5 Hz surface source (rockfall, landslide)."""
    f = grid.freqs
    f1, f2 = rng.uniform(0.8, 1.5), rng.uniform(2.5, 5.0)
    band = (1j * f / f1) ** 2 / (1 + 1j * f / f1) ** 2 / (1 + 1j * f / f2) ** 4  # causal
    hypo = max(params.distance_km, 1.0)
    # level of a same-magnitude earthquake's S spectrum near 3 Hz, spread as surface waves
    amp = 20.0 * seismic_moment(params.magnitude) / math.sqrt(hypo * 1e3)
    amp /= 4 * math.pi * RHO_CRUST * BETA_CRUST**3
    t_star = arrivals.first.s_time_s / params.q + params.kappa_s
    path = band * amp * attenuation(f, t_star, grid.fs / 2)
    env = _spindle(grid, params.p_onset_s, rng.uniform(3.0, 15.0), rng.uniform(10.0, 40.0))
    gains = np.array([1.0, rng.uniform(1.0, 1.5), rng.uniform(1.0, 1.5)])
    noise = rng.standard_normal((3, grid.nfft)) * env
    return path * gains[:, None] * sfft.rfft(noise, axis=-1) * grid.fs


# --------------------------------------------------------------------------- noise, SNR


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


def recorded_noise(
    instrument: Instrument, position: float, grid: _Grid, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """(3, npts) noise in counts as the instrument records it, and its in-band rms
    (counts, vector over components): ground noise through the response, the sensor's
    self-noise, the digitiser's white noise."""
    response = instrument.velocity_response(grid.freqs) * grid.anti_alias
    ambient, cultural = ground_noise_spectra(grid.freqs, grid.nfft, grid.fs, position, rng)
    ambient, cultural = ambient * response, cultural * response
    own = np.random.default_rng(rng.integers(2**63))  # drawn for every kind: the ground
    if instrument.self_noise_psd > 0:  # motion does not depend on the instrument drawn
        level = np.full(grid.freqs.size, instrument.self_noise_psd)
        psd = acceleration_to_velocity_psd(grid.freqs, level)
        white = sfft.rfft(own.standard_normal((3, grid.nfft)), axis=-1)
        ambient = ambient + white * psd_amplitude(psd, grid.fs) * response
    level_sq = _band_rms(ambient + cultural, grid) ** 2
    series = sfft.irfft(np.concatenate([ambient, cultural]), n=grid.nfft, axis=-1)
    noise = modulate(grid.time, series[:3], series[3:], grid.npts / grid.fs, rng)[:, : grid.npts]
    digital = instrument.digitizer_noise_counts
    noise = noise + digital * own.standard_normal(noise.shape)
    level_sq += 3 * digital**2 * float(grid.band.sum()) / grid.freqs.size
    return noise, math.sqrt(level_sq)


def record_noise(
    params: EventParams, config: EventSynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """The noise of ``params``'s record: (3, npts) counts and its in-band rms."""
    grid = _grid(params.sampling_rate_hz, config.npts_at(params.sampling_rate_hz))
    return recorded_noise(params.instrument, params.noise_position, grid, rng)


def render_event(
    params: EventParams,
    config: EventSynthConfig,
    rng: np.random.Generator,
    min_snr_db: float | None = None,
    noise: tuple[np.ndarray, float] | None = None,
) -> RenderedTrace:
    """Synthesise one trace from ``params`` (the random parts draw from ``rng``).

    In the physical amplitude mode an event whose SNR falls below ``min_snr_db`` (when
    given) has its noise lowered to reach it, and says so (``noise_rescaled``). ``noise``
    is :func:`record_noise`'s output for this trace, when already made (re-renderings of
    one event at another magnitude keep their noise).
    """
    grid = _grid(params.sampling_rate_hz, config.npts_at(params.sampling_rate_hz))
    noise, level = noise if noise is not None else record_noise(params, config, rng)
    if params.label == "noise":
        wave, clip = digitize(noise)
        nan = math.nan
        return RenderedTrace(wave, np.zeros_like(wave), nan, nan, nan, nan, nan, nan, None, clip)
    arrivals = travel_time_table(config.earth_model).arrivals(params.distance_km, params.depth_km)
    if params.label == "surface":
        zrt = _surface(params, arrivals, grid, rng)
    else:
        medium = source_velocities(params.depth_km, config.earth_model)
        zrt = _earthquake_like(params, arrivals, grid, rng, medium)
    north, east = rt_to_ne(zrt[1], zrt[2], params.back_azimuth_deg)
    wa_mm = wood_anderson_mm(np.stack([north, east]), grid.freqs, grid.nfft)
    ml = local_magnitude(wa_mm, math.hypot(params.distance_km, params.depth_km))
    response = params.instrument.velocity_response(grid.freqs) * grid.anti_alias
    spectra = np.stack([zrt[0], north, east]) * response
    spectra[:, -1] = 0.0  # no energy exactly at Nyquist (irfft would drop its phase)
    both = sfft.irfft(np.concatenate([spectra, spectra * grid.band]), n=grid.nfft, axis=-1)
    signal, in_band = both[:3, : grid.npts], both[3:, : grid.npts]
    envelope = _moving_rms(in_band, int(grid.fs))
    peak = float(envelope.max())
    if config.amplitude == "snr":  # the noise keeps its level, the signal is scaled
        gain = level * 10 ** (params.snr_db / 20.0) / max(peak, 1e-30)
        signal, envelope = signal * gain, envelope * gain
        noise_rms, snr = level, params.snr_db
    else:
        noise_rms, snr = level, 20.0 * math.log10(max(peak, 1e-30) / level)
    rescaled = min_snr_db is not None and snr < min_snr_db
    if rescaled:
        noise_rms = peak / 10 ** (min_snr_db / 20.0)
        noise, snr = noise * (noise_rms / level), float(min_snr_db)
    trace = _finish(params, arrivals, grid, signal, noise, envelope, noise_rms, snr, rng)
    return replace(trace, noise_rescaled=rescaled, local_magnitude=round(ml, 3))


def _finish(
    params: EventParams,
    arrivals: Arrivals,
    grid: _Grid,
    signal: np.ndarray,
    noise: np.ndarray,
    envelope: np.ndarray,
    noise_rms: float,
    snr: float,
    rng: np.random.Generator,
) -> RenderedTrace:
    """Picks, weights, coda end and the digitised record of an event trace."""
    times = arrivals.first
    p_sample = params.p_onset_s * grid.fs
    s_sample = (params.p_onset_s + times.s_time_s - times.p_time_s) * grid.fs
    above = np.flatnonzero(envelope > noise_rms)
    coda_end = float(above[-1]) if above.size else p_sample
    quality = float(np.clip((snr - 5.0) / 30.0, 0.0, 1.0))
    if params.label == "surface":
        p_weight, s_weight = rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)
    else:
        p_weight = 0.5 + 0.5 * quality * rng.uniform(0.8, 1.0)
        s_weight = 0.4 + 0.5 * quality * rng.uniform(0.7, 1.0)
        if params.label == "explosion":
            s_weight *= 0.5
    wave, clip = digitize(signal + noise)
    return RenderedTrace(
        waveform=wave,
        signal=signal.astype(np.float32),
        p_sample=float(round(p_sample)),
        s_sample=float(round(s_sample)),
        coda_end_sample=coda_end,
        p_weight=round(float(p_weight), 3),
        s_weight=round(float(s_weight), 3),
        snr_db=snr,
        times=arrivals,
        clip_fraction=clip,
    )
