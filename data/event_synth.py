"""A physically grounded synthetic generator of 3-component local and regional event records.

Each trace is ``record_length_s`` (default 90 s) of Z, N, E **counts** as a real station
writes them — ground velocity through a drawn sensor and 24-bit digitiser — at a native
rate drawn per trace (20–200 Hz), one of four classes, written in SeisBench's format by
:class:`~seislens.data.event_dataset.EventWriter`. The configuration
(:class:`~seislens.data.event_synth_config.EventSynthConfig`) holds every range; trace
``i`` draws from its own generator seeded by (seed, i). The physics, with its limits in
each module's docstring:

* **Travel times** (:mod:`~seislens.data.event_phases`) — ``iasp91`` (or ``ak135``) from
  :mod:`obspy.taup`, a two-layer crust over the mantle (Moho 35 km), tabulated on 0–200 km
  depth × 0–1,000 km distance: the first P and S (picks) and the crustal Pg/Sg. A crustal
  source gives Pg and Sg, plus the refracted P*/Pn and S*/Sn where they arrive first, plus
  Lg (group velocities 3.6–3.0 km/s); a source below the Moho gives direct P and S (and
  an Lg that fades with depth).
* **Source, radiation, spreading, attenuation** (:mod:`~seislens.data.event_sources`) —
  Brune ω² sources (fc ∝ M0^(-1/3)) with M0 from Mw; double-couple patterns at each
  ray's take-off for earthquakes; isotropic explosions (0–2 km deep, corner × 4, S only
  from conversions: 5–25 % of a double couple's) with weak Lg; 1/R body waves, 1/R then
  1/sqrt(R) for crustal Pg/Sg/Lg; exp(-π f t*) with t* = T/Q + κ and its dispersion;
  scattered codas (single-scattering envelopes) after every phase.
* **Surface events** (rockfalls, landslides, avalanches) — no impulsive phase: 1–5 Hz
  noise under a spindle envelope rising over 3–15 s and decaying over 10–40 s from the P
  time of a surface source, spreading 1/sqrt(R); pick weights 0.05–0.2.
* **Amplitude** — in the default ``physical`` mode nothing sets the SNR: the event's
  amplitude follows from its moment, path and instrument, the noise from Peterson's
  models (:mod:`~seislens.data.event_noise`, a PSD between the NLNM and NHNM) and the
  instrument's self-noise, so Mw −1 is seen only a few km away and Mw 7 clips a nearby
  broadband. Magnitudes are drawn uniformly over the class's range; then a
  ``catalogue_fraction`` (70 %) of events is moved to the magnitude the station just
  detects — the SNR floor ``snr_db[0]``, aimed from the first rendering's SNR at 10–30 dB
  per magnitude unit by the corner frequency — plus a Gutenberg–Richter (b = 1) excess,
  as catalogues are dominated by events near their completeness magnitude; any event
  then below the floor is raised the same way, within its class's range, at most
  ``max_redraws`` times (``source_magnitude_changes``); one still too faint at the top of
  the range has its noise lowered to the floor (``trace_noise_rescaled``). So small events are seen
  near the station only, and large ones at every distance. The ``snr`` mode instead
  scales the signal to an SNR drawn from ``snr_db`` over the noise (a benchmark's
  control: amplitudes then no longer follow the magnitude).
* **Instruments** (:mod:`~seislens.data.event_instruments`) — broadband velocity sensors,
  short-period geophones and accelerometers as poles and zeros (the record of an
  accelerometer is the derivative of a velocity sensor's in their common band); a
  24-bit digitiser with its noise, rounding and saturation (``trace_clipped``); a
  zero-phase anti-alias filter flat to 0.4 × the rate, so a 20 Hz record is empty above
  8–10 Hz — the 100 Hz model sees that band limit (``trace_band_limit_hz``).

SNR (dB) is 20 log10(A_s / A_n): A_s the peak 1 s RMS of the 3-component signal vector,
A_n the RMS of the noise vector, both in counts and band-limited to 1–45 Hz (at most the
record's band limit), recorded in ``trace_snr_db``. The coda end is the last sample where
the signal's 1 s RMS stays above the noise RMS. Pick weights of events grow with SNR.

Metadata per row (SeisBench names): the picks, weights and coda end in samples at the
trace's own rate, the travel times (first P and S, Pg, Sg, Lg front), which phases come
first, distance, back-azimuth, magnitude (Mw), depth, origin time, source and station
coordinates, the mechanism of earthquakes, the instrument and its response (poles and
zeros as JSON), clipping, the class in ``trace_category`` and ``split`` (train/dev/test,
stratified by class with ``split_fractions``). A noise row leaves every source, path and
pick column empty (NaN).

Not modelled: finite faults, 3-D structure, surface waves (Rg) and site resonances,
recorded noise (see :mod:`~seislens.data.event_noise`), station elevation, timing errors.

Determinism: the class/split plan comes from ``seed``; trace ``i`` uses its own generator
seeded by (seed, i), so the same config writes byte-identical files.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.event_dataset import SPLITS, EventWriter
from seislens.data.event_instruments import band_limit_hz, draw_instrument
from seislens.data.event_phases import KM_PER_DEG, TABLE_LIMITS, PhaseTimes, travel_time_table
from seislens.data.event_render import (
    EventParams,
    RenderedTrace,
    destination,
    record_noise,
    render_event,
    rt_to_ne,
)
from seislens.data.event_sources import corner_frequency, radiation_pattern, seismic_moment
from seislens.data.event_synth_config import EventSynthConfig
from seislens.models.contract import EVENT_CLASSES as CLASSES
from tqdm import tqdm

__all__ = [
    "GENERATOR_VERSION",
    "KM_PER_DEG",
    "MANIFEST_NAME",
    "TABLE_LIMITS",
    "EventParams",
    "EventSynthConfig",
    "PhaseTimes",
    "RenderedTrace",
    "corner_frequency",
    "draw_event",
    "generate_events",
    "metadata_row",
    "plan",
    "radiation_pattern",
    "render_event",
    "rt_to_ne",
    "seismic_moment",
    "station_network",
    "synthesize",
    "travel_time_table",
]

GENERATOR_VERSION = 2
MANIFEST_NAME = "seislens_synth.json"
NETWORK = "SY"
GUTENBERG_RICHTER_B = 1.0


# --------------------------------------------------------------------------- draws


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(_uniform(rng, (math.log(bounds[0]), math.log(bounds[1])))))


def _weighted(rng: np.random.Generator, shares: dict) -> Any:
    """One key of ``shares`` drawn with probability proportional to its value."""
    keys = list(shares)
    weights = np.asarray([shares[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def station_network(config: EventSynthConfig) -> np.ndarray:
    """(station_count, 2) latitude/longitude (deg) of the synthetic stations."""
    rng = np.random.default_rng([config.seed, 2])
    lat0, lon0 = config.region_center_deg
    out = np.empty((config.station_count, 2))
    for k in range(config.station_count):
        out[k] = destination(lat0, lon0, rng.uniform(0, 360), rng.uniform(0, 150.0))
    return out


def _distance(rng: np.random.Generator, config: EventSynthConfig) -> float:
    """Epicentral distance (km): log-uniform from 1 km with ``distance_log_fraction``,
    else uniform, within ``distance_km``."""
    low, high = config.distance_km
    if rng.uniform() < config.distance_log_fraction and high > max(low, 1.0):
        return _log_uniform(rng, (max(low, 1.0), high))
    return _uniform(rng, config.distance_km)


def _earthquake_depth(rng: np.random.Generator, config: EventSynthConfig) -> float:
    if rng.uniform() < config.earthquake_shallow_fraction:
        return _uniform(rng, config.earthquake_shallow_depth_km)
    return _uniform(rng, config.earthquake_depth_km)


def magnitude_range(label: str, config: EventSynthConfig) -> tuple[float, float]:
    """The Mw range of a class."""
    return {
        "earthquake": config.earthquake_magnitude,
        "explosion": config.explosion_magnitude,
        "surface": config.surface_magnitude,
    }[label]


def _base(
    rng: np.random.Generator, label: str, config: EventSynthConfig, stations: np.ndarray
) -> EventParams:
    """Station, time, recording chain and noise level of a trace of any class."""
    k = int(rng.integers(len(stations)))
    origin = float(rng.uniform(1.42e9, 1.73e9))  # 2015 .. 2024
    if label == "explosion":  # blasting happens in the working day (UTC-8: 09..17 h)
        day = math.floor(origin / 86400.0) * 86400.0
        origin = day + (17.0 + rng.uniform(0.0, 8.0)) * 3600.0
    kind = _weighted(rng, config.instruments)
    return EventParams(
        label=label,
        station=k,
        station_lat=float(stations[k, 0]),
        station_lon=float(stations[k, 1]),
        origin_time=origin,
        p_onset_s=_uniform(rng, config.p_onset_s),
        sampling_rate_hz=float(_weighted(rng, config.rates)),
        instrument=draw_instrument(rng, kind, config.instrument_ranges),
        noise_position=_uniform(rng, config.noise_position),
    )


def draw_event(
    rng: np.random.Generator, label: str, config: EventSynthConfig, stations: np.ndarray
) -> EventParams:
    """Draw the parameters of one trace of class ``label``."""
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {list(CLASSES)}")
    base = _base(rng, label, config, stations)
    if label == "noise":
        return base
    common = {
        "snr_db": _uniform(rng, config.snr_db),
        "distance_km": _distance(rng, config),
        "back_azimuth_deg": float(rng.uniform(0.0, 360.0)),
        "q": _uniform(rng, config.q),
        "kappa_s": _uniform(rng, config.kappa_s),
        "coda_decay_s": float(rng.uniform(3.0, 8.0)),
        "coda_ratio": float(rng.uniform(0.5, 1.5)),
        "head_ratio": _uniform(rng, config.head_wave_ratio),
        "lg_ratio": _uniform(rng, config.lg_ratio),
        "magnitude": _uniform(rng, magnitude_range(label, config)),
    }
    if label == "earthquake":
        return replace(
            base,
            **common,
            depth_km=_earthquake_depth(rng, config),
            strike=float(rng.uniform(0.0, 360.0)),
            dip=float(np.degrees(np.arccos(rng.uniform(0.0, 1.0)))),
            rake=float(rng.uniform(-180.0, 180.0)),
            stress_drop_mpa=_log_uniform(rng, config.stress_drop_mpa),
        )
    if label == "explosion":
        return replace(
            base,
            **common,
            depth_km=_uniform(rng, config.explosion_depth_km),
            stress_drop_mpa=4.0 * _log_uniform(rng, config.stress_drop_mpa),
            s_fraction=float(rng.uniform(0.05, 0.25)),
        )
    return replace(base, **common, depth_km=0.0)


def _gutenberg_richter_excess(rng: np.random.Generator) -> float:
    """A magnitude excess above a threshold under Gutenberg–Richter with b = 1."""
    return float(rng.exponential(1.0 / (GUTENBERG_RICHTER_B * math.log(10.0))))


def snr_growth_db(magnitude: float, stress_drop_mpa: float) -> float:
    """Assumed SNR growth (dB per magnitude unit) of an event, from its S corner: 30 (the
    band's velocity ∝ M0) with the corner above 10 Hz, 10 (∝ M0^(1/3)) below 1 Hz, log-
    linear between; 30 for surface events (no corner: their level ∝ M0). Only to aim the
    magnitude re-sets; the SNR is always measured."""
    if not math.isfinite(stress_drop_mpa):
        return 30.0
    fc = corner_frequency(magnitude, stress_drop_mpa, "S")
    return 10.0 + 20.0 * float(np.clip(math.log10(fc), 0.0, 1.0))


def detection_magnitude(
    magnitude: float, snr_db: float, floor_db: float, stress_drop_mpa: float
) -> float:
    """The magnitude at which an event seen at ``snr_db`` would reach ``floor_db``, along
    :func:`snr_growth_db` in steps of 0.05."""
    step = 0.05 if snr_db < floor_db else -0.05
    m, snr = magnitude, snr_db
    for _ in range(400):
        if (snr - floor_db) * (1 if step > 0 else -1) >= 0:
            break
        snr += snr_growth_db(m + step / 2, stress_drop_mpa) * step
        m += step
    return m


def synthesize(
    index: int, label: str, config: EventSynthConfig, stations: np.ndarray
) -> tuple[EventParams, RenderedTrace, int]:
    """Trace ``index`` of ``config``: its parameters, its samples and how many times its
    magnitude was re-set to meet the station's detection threshold (deterministic).

    Physical mode: a ``catalogue_fraction`` of events is moved to the magnitude this
    station just detects (:func:`detection_magnitude`) plus a Gutenberg–Richter excess;
    any event then below the SNR floor is raised to its detection magnitude plus such an
    excess, within its class's range, at most ``max_redraws`` times in all; the last
    attempt lowers the noise if it must. Every rendering of one trace shares its noise
    and its random parts: only the size of the event changes.
    """
    rng = np.random.default_rng([config.seed, 1, index])
    params = draw_event(rng, label, config, stations)
    if label == "noise" or config.amplitude == "snr":
        return params, render_event(params, config, rng), 0
    floor = config.snr_db[0]
    low, top = magnitude_range(label, config)
    catalogue = bool(rng.uniform() < config.catalogue_fraction)
    noise = record_noise(params, config, rng)
    state = rng.bit_generator.state

    def attempt(p: EventParams, last: bool = False) -> RenderedTrace:
        rng.bit_generator.state = state
        return render_event(p, config, rng, floor if last else None, noise)

    trace, changes = attempt(params), 0
    excess = np.random.default_rng([config.seed, 3, index])  # the re-sets' own draws
    while changes < config.max_redraws and (trace.snr_db < floor or (catalogue and changes == 0)):
        if trace.snr_db < floor and params.magnitude >= top:
            break
        aim = detection_magnitude(params.magnitude, trace.snr_db, floor, params.stress_drop_mpa)
        aim += _gutenberg_richter_excess(excess)
        params = replace(params, magnitude=float(np.clip(aim, low, top)))
        changes += 1
        trace = attempt(params)
    if trace.snr_db < floor:
        trace = attempt(params, last=True)
    return params, trace, changes


# --------------------------------------------------------------------------- metadata rows


def _iso(epoch_s: float) -> str:
    """ISO-8601 UTC time with microseconds, as SeisBench writes it."""
    from obspy import UTCDateTime

    return str(UTCDateTime(round(epoch_s, 6)))


def _phase_columns(params: EventParams, trace: RenderedTrace) -> dict[str, Any]:
    """Which phases arrive first, and the crustal and Lg travel times (s)."""
    nan = math.nan
    arrivals = trace.times
    if arrivals is None or params.label == "surface":
        return {
            "path_first_p_phase": "",
            "path_first_s_phase": "",
            "path_travel_time_Pg_s": nan,
            "path_travel_time_Sg_s": nan,
            "path_travel_time_Lg_s": nan,
        }
    crust = arrivals.crustal
    deep = crust is None
    return {
        "path_first_p_phase": "P" if deep else ("Pn" if arrivals.refracted_p else "Pg"),
        "path_first_s_phase": "S" if deep else ("Sn" if arrivals.refracted_s else "Sg"),
        "path_travel_time_Pg_s": nan if deep else round(crust.p_time_s, 4),
        "path_travel_time_Sg_s": nan if deep else round(crust.s_time_s, 4),
        "path_travel_time_Lg_s": round(max(params.distance_km / 3.6, arrivals.first.s_time_s), 4),
    }


def _recording_columns(params: EventParams, trace: RenderedTrace) -> dict[str, Any]:
    """Native rate, band limit, instrument, response and clipping of one record."""
    inst = params.instrument
    fs = params.sampling_rate_hz
    return {
        "trace_sampling_rate_hz": fs,
        "trace_band_limit_hz": round(band_limit_hz(fs), 3),
        "trace_channel_prefix": inst.channel_prefix(fs),
        "trace_clipped": bool(trace.clip_fraction > 0),
        "trace_clip_fraction": round(trace.clip_fraction, 6),
        "trace_noise_position": round(params.noise_position, 4),
        "trace_noise_rescaled": bool(trace.noise_rescaled),
        "station_instrument": inst.kind,
        "station_counts_per_m_s_1hz": round(inst.counts_per_m_s(1.0), 3),
        "station_response": json.dumps(inst.describe(), sort_keys=True),
    }


def metadata_row(
    index: int,
    params: EventParams,
    trace: RenderedTrace,
    split: str,
    config: EventSynthConfig,
    changes: int = 0,
) -> dict[str, Any]:
    """The SeisBench metadata row of one rendered trace."""
    nan = math.nan
    event = trace.times is not None
    first = trace.times.first if trace.times else None
    p_time = first.p_time_s if first else nan
    origin = params.origin_time
    start = origin + p_time - params.p_onset_s if event else origin
    row: dict[str, Any] = {
        "trace_name": f"synth_{index:08d}",
        "trace_start_time": _iso(start),
        "trace_npts": config.npts_at(params.sampling_rate_hz),
        "trace_p_arrival_sample": trace.p_sample,
        "trace_s_arrival_sample": trace.s_sample,
        "trace_p_weight": trace.p_weight,
        "trace_s_weight": trace.s_weight,
        "trace_coda_end_sample": trace.coda_end_sample,
        "trace_snr_db": round(trace.snr_db, 3) if event else nan,
        "trace_category": params.label,
        "source_magnitude": round(params.magnitude, 3),
        "source_magnitude_type": "Mw" if event else "",
        "source_magnitude_changes": changes if event else 0,
        "source_magnitude_ml": trace.local_magnitude,
        "source_depth_km": round(params.depth_km, 3),
        "source_origin_time": _iso(origin) if event else "",
        "source_latitude_deg": nan,
        "source_longitude_deg": nan,
        "station_network_code": NETWORK,
        "station_code": f"S{params.station:03d}",
        "station_latitude_deg": round(params.station_lat, 5),
        "station_longitude_deg": round(params.station_lon, 5),
        "path_ep_distance_km": round(params.distance_km, 3),
        "path_back_azimuth_deg": round(params.back_azimuth_deg, 3),
        "path_travel_time_P_s": round(p_time, 4),
        "path_travel_time_S_s": round(first.s_time_s, 4) if first else nan,
        "source_strike_deg": round(params.strike, 2),
        "source_dip_deg": round(params.dip, 2),
        "source_rake_deg": round(params.rake, 2),
        "source_stress_drop_mpa": round(params.stress_drop_mpa, 4),
        "path_q": round(params.q, 2),
        "split": split,
        **_recording_columns(params, trace),
        **_phase_columns(params, trace),
    }
    if event:
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


def _manifest(config: EventSynthConfig) -> dict[str, Any]:
    return {
        "generator": "seislens.data.event_synth",
        "version": GENERATOR_VERSION,
        "config": config.model_dump(mode="json"),
    }


def _measurement(config: EventSynthConfig) -> str:
    """``data_format/measurement``: what the sensors of this dataset respond to."""
    kinds = {k for k, share in config.instruments.items() if share > 0}
    if kinds == {"accelerometer"}:
        return "acceleration"
    return "velocity" if "accelerometer" not in kinds else "velocity or acceleration (per row)"


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
    travel_time_table(config.earth_model)  # build the table before the progress bar starts
    writer = EventWriter(
        out,
        sampling_rate_hz=max(config.rates, key=config.rates.get),
        bucket_size=config.bucket_size,
        overwrite=True,
        measurement=_measurement(config),
        unit="counts",
    )
    with (
        writer,
        tqdm(
            total=config.count, desc="synthetic events", unit="trace", disable=not progress
        ) as bar,
    ):
        for index, (label, split) in enumerate(zip(labels, splits, strict=True)):
            params, trace, changes = synthesize(index, label, config, stations)
            row = metadata_row(index, params, trace, split, config, changes)
            writer.add_trace(row, trace.waveform)
            bar.update()
        writer.add_file(MANIFEST_NAME, json.dumps(_manifest(config), indent=2, sort_keys=True))
    return out
