"""Continuous synthetic recordings with inserted events: what the scan tests and
``bench/event_scan.py`` score the scanner on.

A recording is ``duration_s`` of 3-component (HHZ, HHN, HHE) data at
``sampling_rate_hz`` for ``stations`` stations of network ``SY``, written as miniSEED
(Steim-2 integer counts), with these parts:

* **Noise** — the generator's own noise (:mod:`seislens.data.event_synth`, class
  "noise"), through one broadband sensor and at one noise level per station (drawn once),
  rendered in 600 s pieces, each scaled to unit RMS in the 1–45 Hz band and cross-faded
  into the next over 10 s, times ``noise_rms`` (counts RMS in that band).
* **Events** — ``events`` sources at origin times spread over the recording (one per
  equal slot, at a random point of the slot's middle half, so two events never overlap),
  classes in turn from ``classes``. Each is drawn by the generator (magnitude, depth,
  mechanism, attenuation, …) and placed at a random epicentre ``source_distance_km``
  from the network's centre; every station records it at its own epicentral distance
  and back-azimuth, with its P at the origin time plus the iasp91 P time
  (:class:`~seislens.models.event_association.PTravelTimes`). The generator renders the
  station's signal; it is scaled so that its SNR (the generator's definition: peak 1 s
  RMS of the 3-component signal over the noise RMS, both in 1–45 Hz) is drawn uniformly
  from ``snr_db`` — per station: amplitudes between stations are not physical.
* **Stations** — one at the network's centre, or several on a ring around it,
  neighbours ``station_spacing_km`` apart.

The truth (:class:`InsertedEvent`: class, origin, epicentre, and per station the P time,
distance and SNR) is returned with the file's station coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import signal as sps
from seislens.data.event_render import EventParams
from seislens.data.event_synth import EventSynthConfig, draw_event, render_event
from seislens.models.contract import EVENT_CLASSES
from seislens.models.event_association import (
    KM_PER_DEG,
    PTravelTimes,
    epicentral_km,
)

NETWORK = "SY"
_PIECE_S = 600.0
_FADE_S = 10.0
_EVENT_RECORD_S = 180.0
_P_AT_S = 10.0
_BAND_HZ = (1.0, 45.0)


class ContinuousConfig(BaseModel):
    """What :func:`write_continuous` writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float = Field(3600.0, ge=600.0, description="length of the recording (s)")
    sampling_rate_hz: float = Field(100.0, ge=20.0, le=200.0)
    stations: int = Field(1, ge=1, le=20)
    events: int = Field(10, ge=0, description="events inserted")
    classes: tuple[str, ...] = Field(
        ("earthquake", "explosion", "surface"), description="classes, in turn"
    )
    snr_db: tuple[float, float] = Field((5.0, 20.0), description="SNR per station (dB)")
    noise_rms: float = Field(100.0, gt=0.0, description="noise RMS in 1–45 Hz (counts)")
    source_distance_km: tuple[float, float] = Field((20.0, 150.0))
    station_spacing_km: float = Field(30.0, gt=0.0)
    centre_deg: tuple[float, float] = Field((46.5, -121.5))
    start: str = Field("2024-03-01T00:00:00", description="UTC of the first sample")
    seed: int = Field(0, ge=0)


@dataclass(frozen=True)
class StationTruth:
    """One station's record of an inserted event."""

    p_time: float
    distance_km: float
    snr_db: float


@dataclass(frozen=True)
class InsertedEvent:
    """An inserted event: class, origin epoch (s), epicentre, depth, magnitude and what
    each station (``NET.STA``) recorded."""

    label: str
    origin_time: float
    latitude: float
    longitude: float
    depth_km: float
    magnitude: float
    stations: dict[str, StationTruth] = field(default_factory=dict)


@dataclass(frozen=True)
class ContinuousRecording:
    """A written recording: its file, stations (``NET.STA`` → (lat, lon)) and events."""

    path: Path
    stations: dict[str, tuple[float, float]]
    events: list[InsertedEvent]
    start: float
    duration_s: float


def station_positions(config: ContinuousConfig) -> dict[str, tuple[float, float]]:
    """``NET.STA`` → (latitude, longitude): the centre, or a ring around it."""
    lat0, lon0 = config.centre_deg
    if config.stations == 1:
        return {f"{NETWORK}.S000": (lat0, lon0)}
    radius = config.station_spacing_km / (2 * math.sin(math.pi / config.stations))
    out = {}
    for k in range(config.stations):
        azimuth = 2 * math.pi * k / config.stations + 0.3
        out[f"{NETWORK}.S{k:03d}"] = _offset(
            lat0, lon0, radius * math.cos(azimuth), radius * math.sin(azimuth)
        )
    return out


def _offset(lat: float, lon: float, north_km: float, east_km: float) -> tuple[float, float]:
    return (
        lat + north_km / KM_PER_DEG,
        lon + east_km / (KM_PER_DEG * math.cos(math.radians(lat))),
    )


def _back_azimuth(slat: float, slon: float, elat: float, elon: float) -> float:
    """Degrees clockwise from north, from the station towards the epicentre."""
    p1, p2, dl = math.radians(slat), math.radians(elat), math.radians(elon - slon)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


_SOS: dict[float, np.ndarray] = {}


def band_rms(x: np.ndarray, rate: float) -> np.ndarray:
    """(3, n) → (n,) vector amplitude of the 1–45 Hz band-pass (zero-phase, 4 poles)."""
    sos = _SOS.get(rate)
    if sos is None:
        high = min(_BAND_HZ[1], 0.9 * rate / 2)
        sos = _SOS[rate] = sps.butter(4, [_BAND_HZ[0], high], "bandpass", fs=rate, output="sos")
    return np.sqrt((sps.sosfiltfilt(sos, x, axis=-1) ** 2).sum(axis=0))


def peak_rms(x: np.ndarray, rate: float) -> float:
    """The peak 1 s RMS of the 1–45 Hz band-passed 3-component vector of (3, n) ``x``."""
    power = band_rms(x, rate) ** 2
    width = max(1, round(rate))
    return float(np.sqrt(np.convolve(power, np.ones(width) / width, mode="valid").max()))


def _synth_config(config: ContinuousConfig, seconds: float) -> EventSynthConfig:
    """The generator's settings for a piece: one rate, broadband sensors."""
    return EventSynthConfig(
        record_length_s=seconds,
        sampling_rate_hz=config.sampling_rate_hz,
        instruments={"broadband": 1.0},
    )


def _noise(
    config: ContinuousConfig, n: int, station: EventParams, rng: np.random.Generator
) -> np.ndarray:
    """(3, n) float32 noise of the station's sensor, of unit band RMS × ``noise_rms``."""
    rate = config.sampling_rate_hz
    piece = _synth_config(config, _PIECE_S)
    stations = np.array([[config.centre_deg[0], config.centre_deg[1]]])
    out = np.zeros((3, n), np.float32)
    length, fade = round(_PIECE_S * rate), round(_FADE_S * rate)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    pos = 0
    while pos < n:
        params = _as_station(draw_event(rng, "noise", piece, stations), station)
        wave = render_event(params, piece, rng).waveform.astype(np.float64)
        wave *= config.noise_rms / float(np.sqrt(np.mean(band_rms(wave, rate) ** 2)))
        wave = wave.astype(np.float32)
        m = min(length, n - pos)
        if pos:
            k = min(fade, m)
            out[:, pos : pos + k] = out[:, pos : pos + k] * (1 - ramp[:k]) + wave[:, :k] * ramp[:k]
            out[:, pos + k : pos + m] = wave[:, k:m]
        else:
            out[:, :m] = wave[:, :m]
        pos += length - fade
    return out


def _as_station(params: EventParams, station: EventParams) -> EventParams:
    """``params`` recorded by the station's sensor at its noise level and rate."""
    return replace(
        params,
        instrument=station.instrument,
        noise_position=station.noise_position,
        sampling_rate_hz=station.sampling_rate_hz,
    )


def _draw_events(
    config: ContinuousConfig, positions: dict[str, tuple[float, float]], start: float
) -> list[tuple[InsertedEvent, EventParams]]:
    """The events (truth without station SNRs yet) and their generator parameters."""
    rng = np.random.default_rng([config.seed, 7])
    draw = EventSynthConfig(
        record_length_s=_EVENT_RECORD_S, sampling_rate_hz=config.sampling_rate_hz
    )
    times = PTravelTimes()
    slot = config.duration_s / max(config.events, 1)
    lat0, lon0 = config.centre_deg
    out = []
    for k in range(config.events):
        label = config.classes[k % len(config.classes)]
        if label not in EVENT_CLASSES:
            raise ValueError(f"unknown class {label!r}; expected one of {list(EVENT_CLASSES)}")
        params = draw_event(rng, label, draw, np.array([[lat0, lon0]]))
        origin = start + slot * (k + rng.uniform(0.25, 0.75))
        azimuth = rng.uniform(0.0, 2 * math.pi)
        r = rng.uniform(*config.source_distance_km)
        elat, elon = _offset(lat0, lon0, r * math.cos(azimuth), r * math.sin(azimuth))
        depth = float(params.depth_km)
        truth = InsertedEvent(label, origin, elat, elon, depth, float(params.magnitude))
        for name, (slat, slon) in positions.items():
            dist = float(epicentral_km(slat, slon, elat, elon))
            p_time = origin + float(times(dist, depth))
            truth.stations[name] = StationTruth(p_time, dist, float(rng.uniform(*config.snr_db)))
        out.append((truth, params))
    return out


def _insert(
    data: np.ndarray,
    config: ContinuousConfig,
    start: float,
    station: str,
    position: tuple[float, float],
    event: InsertedEvent,
    params: EventParams,
    recorder: EventParams,
    rng: np.random.Generator,
) -> None:
    """Render one event at one station and add it to the station's (3, n) data."""
    rate = config.sampling_rate_hz
    truth = event.stations[station]
    draw = _synth_config(config, _EVENT_RECORD_S)
    placed = replace(
        _as_station(params, recorder),
        distance_km=max(truth.distance_km, 1.0),
        back_azimuth_deg=_back_azimuth(*position, event.latitude, event.longitude),
        p_onset_s=_P_AT_S,
    )
    sig = render_event(placed, draw, rng).signal.astype(np.float64)
    sig *= config.noise_rms * 10 ** (truth.snr_db / 20.0) / peak_rms(sig, rate)
    first = round((truth.p_time - _P_AT_S - start) * rate)
    lo, hi = max(0, first), min(data.shape[1], first + sig.shape[1])
    if hi > lo:
        data[:, lo:hi] += sig[:, lo - first : hi - first].astype(np.float32)


def write_continuous(path: Path, config: ContinuousConfig) -> ContinuousRecording:
    """Write the recording of ``config`` to ``path`` (miniSEED) and return its truth.

    Stations are synthesised and written one after another (memory: one station's
    samples, 12 bytes per 3-component sample).
    """
    from obspy import Stream, Trace, UTCDateTime

    start = UTCDateTime(config.start)
    n = round(config.duration_s * config.sampling_rate_hz)
    positions = station_positions(config)
    events = _draw_events(config, positions, start.timestamp)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as out:
        for s, (station, position) in enumerate(positions.items()):
            rng = np.random.default_rng([config.seed, 11, s])
            recorder = draw_event(rng, "noise", _synth_config(config, _PIECE_S), np.zeros((1, 2)))
            data = _noise(config, n, recorder, rng)
            for truth, params in events:
                _insert(
                    data, config, start.timestamp, station, position, truth, params, recorder, rng
                )
            traces = [
                Trace(
                    np.round(row).astype(np.int32),
                    {
                        "network": NETWORK,
                        "station": station.split(".")[1],
                        "channel": f"HH{comp}",
                        "sampling_rate": config.sampling_rate_hz,
                        "starttime": start,
                    },
                )
                for row, comp in zip(data, "ZNE", strict=True)
            ]
            del data
            Stream(traces).write(out, format="MSEED", encoding="STEIM2", reclen=4096)
    tmp.replace(path)
    return ContinuousRecording(
        path, positions, [t for t, _ in events], start.timestamp, config.duration_s
    )
