"""The synthetic event generator: physics checks, metadata, determinism, folder rules."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from obspy.taup import TauPyModel
from pydantic import ValidationError
from scipy.signal import butter, sosfiltfilt
from seislens.data.event_dataset import EventDataset
from seislens.data.event_synth import (
    KM_PER_DEG,
    MANIFEST_NAME,
    EventSynthConfig,
    corner_frequency,
    draw_event,
    generate_events,
    plan,
    radiation_pattern,
    render_event,
    station_network,
    travel_time_table,
)

SMALL = EventSynthConfig(count=24, seed=7, split_fractions=(0.6, 0.2, 0.2))
PHYSICS = EventSynthConfig(
    count=1,
    snr_db=(40.0, 40.0),
    amplitude="snr",
    sampling_rate_hz=100.0,
    instruments={"broadband": 1.0},
)
"""One rate, one sensor, a fixed SNR: the physics checks look at the ground motion."""


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate_events(tmp_path_factory.mktemp("synth") / "set", SMALL, progress=False)


def _event(label: str, seed: int = 0, config: EventSynthConfig = PHYSICS, **fixed) -> tuple:
    """Parameters of one event of ``label`` with some fields fixed, and its rendering."""
    config = config.model_copy(update={"snr_db": (fixed.pop("snr_db", 40.0),) * 2})
    params = draw_event(np.random.default_rng(seed), label, config, station_network(config))
    params = replace(params, **fixed)
    return params, render_event(params, config, np.random.default_rng(seed))


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("metadata.csv", "waveforms.hdf5")
    }


def test_travel_times_match_taup():
    table = travel_time_table()
    model = TauPyModel("iasp91")
    cases = [(15.0, 3.0), (95.0, 11.0), (180.0, 22.0), (290.0, 0.7), (620.0, 80.0)]
    for distance, depth in [*cases, (950.0, 15.0), (40.0, 150.0), (800.0, 199.0)]:
        times = table(distance, depth)
        deg = distance / KM_PER_DEG
        p = model.get_travel_times(depth, deg, phase_list=["p", "P", "Pn", "Pg"])[0]
        s = model.get_travel_times(depth, deg, phase_list=["s", "S", "Sn", "Sg"])[0]
        assert times.p_time_s == pytest.approx(p.time, abs=0.06)
        assert times.s_time_s == pytest.approx(s.time, abs=0.06)
    with pytest.raises(ValueError, match="outside the travel-time table"):
        table(1500.0, 10.0)


def test_s_minus_p_grows_with_distance(small_set):
    table = travel_time_table()
    sp = [table(d, 10.0).s_time_s - table(d, 10.0).p_time_s for d in range(10, 1000, 10)]
    assert np.all(np.diff(sp) > 0)
    meta = EventDataset(small_set).metadata
    events = meta[meta["trace_category"].isin(["earthquake", "explosion"])]
    lag = events["trace_s_arrival_sample"] - events["trace_p_arrival_sample"]
    lag = lag / events["trace_sampling_rate_hz"]
    assert np.corrcoef(lag, events["path_ep_distance_km"])[0, 1] > 0.95
    # "distance ≈ 8 × (S-P)" in the crust (1/3.36 - 1/5.8 = 0.125 s/km), 0.097 s/km for
    # Sn - Pn (1/4.47 - 1/8.04): the slope over 0-1,000 km lies between
    slope = np.polyfit(events["path_ep_distance_km"], lag, 1)[0]
    assert 0.09 < slope < 0.13


def test_corner_frequency_falls_with_magnitude():
    fcs = [corner_frequency(m, 3.0) for m in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert np.all(np.diff(fcs) < 0)
    assert fcs[0] / fcs[1] == pytest.approx(10**0.5, rel=1e-6)  # fc ∝ M0^(-1/3)
    assert 2.0 < corner_frequency(3.0, 3.0) < 10.0  # a few Hz for M3
    assert corner_frequency(3.0, 3.0, "P") > corner_frequency(3.0, 3.0, "S")
    # and in the rendered records: the P-wave spectrum of a large event is lower
    centroids = {}
    for mag in (1.5, 4.5):
        values = []
        for seed in range(4):
            _, trace = _event(
                "earthquake",
                seed,
                magnitude=mag,
                distance_km=40.0,
                depth_km=8.0,
                stress_drop_mpa=3.0,
                q=400.0,
                kappa_s=0.01,
            )
            p, s = int(trace.p_sample), int(trace.s_sample)
            segment = trace.signal[0, p:s] * np.hanning(s - p)
            power = np.abs(np.fft.rfft(segment)) ** 2
            freqs = np.fft.rfftfreq(s - p, 0.01)
            values.append((freqs * power).sum() / power.sum())
        centroids[mag] = np.mean(values)
    assert centroids[4.5] < 0.6 * centroids[1.5]


def test_double_couple_radiation_pattern():
    # vertical strike-slip: P nodal along strike, maximal at 45 degrees (horizontal ray)
    assert abs(radiation_pattern(0, 90, 0, 0, 90)[0]) < 1e-12
    assert radiation_pattern(0, 90, 0, 45, 90)[0] == pytest.approx(1.0)
    assert abs(radiation_pattern(0, 90, 0, 0, 90)[2]) == pytest.approx(1.0)  # SH max
    rng = np.random.default_rng(0)
    az = rng.uniform(0, 360, 4000)
    takeoff = np.degrees(np.arccos(rng.uniform(-1, 1, 4000)))  # uniform on the sphere
    mech = (30.0, 60.0, -70.0)
    pats = np.array([radiation_pattern(*mech, a, t) for a, t in zip(az, takeoff)])
    assert np.sqrt(np.mean(pats[:, 0] ** 2)) == pytest.approx(np.sqrt(4 / 15), rel=0.05)
    s_rms = np.sqrt(np.mean(pats[:, 1] ** 2 + pats[:, 2] ** 2))
    assert s_rms == pytest.approx(np.sqrt(2 / 5), rel=0.05)


def _p_over_s(label: str, seed: int) -> float:
    _, trace = _event(label, seed, distance_km=60.0)
    sos = butter(4, [1.0, 20.0], btype="band", fs=100.0, output="sos")
    vector = np.sqrt((sosfiltfilt(sos, trace.waveform) ** 2).sum(axis=0))
    p, s = int(trace.p_sample), int(trace.s_sample)
    return float(np.log10(vector[p : min(p + 200, s)].max() / vector[s : s + 300].max()))


def test_explosions_have_higher_p_to_s_ratio_than_earthquakes():
    quakes = [_p_over_s("earthquake", seed) for seed in range(12)]
    blasts = [_p_over_s("explosion", seed) for seed in range(12)]
    assert np.mean(blasts) > np.mean(quakes) + 0.5  # > 3x in amplitude on average
    assert np.median(blasts) > 0.0 > np.median(quakes)


def test_attenuation_and_spreading_with_distance():
    physical = PHYSICS.model_copy(update={"amplitude": "physical"})
    peaks = []
    for distance in (20.0, 80.0, 250.0):
        values = [
            np.abs(
                _event(
                    "earthquake", seed, physical, distance_km=distance, magnitude=3.0, depth_km=10.0
                )[1].signal
            ).max()
            for seed in range(4)
        ]
        peaks.append(np.median(values))
    assert peaks[0] > peaks[1] > peaks[2]
    assert peaks[0] / peaks[2] > 20.0


def test_surface_events_are_emergent_and_low_frequency():
    for seed in range(3):
        _, trace = _event("surface", seed)
        p = int(trace.p_sample)
        envelope = np.sqrt((trace.signal**2).sum(axis=0))
        smooth = np.convolve(envelope, np.ones(100) / 100, mode="same")
        assert (np.argmax(smooth) - p) / 100.0 > 2.5  # seconds from onset to the peak
        power = np.abs(np.fft.rfft(trace.signal[0])) ** 2
        freqs = np.fft.rfftfreq(trace.signal.shape[1], 0.01)
        assert 1.0 < (freqs * power).sum() / power.sum() < 5.0
        assert trace.p_weight <= 0.2 and trace.s_weight <= 0.2
        before = np.abs(trace.signal[:, : p - 1]).max()
        assert before < 1e-4 * np.abs(trace.signal).max()  # nothing before the onset (causal)


def test_snr_is_what_was_drawn():
    for label in ("earthquake", "explosion", "surface"):
        _, trace = _event(label, 5, snr_db=12.0)
        sos = butter(8, [1.0, 45.0], btype="band", fs=100.0, output="sos")
        sig = sosfiltfilt(sos, trace.signal)
        noise = sosfiltfilt(sos, trace.waveform - trace.signal)
        rms = np.sqrt(np.convolve((sig**2).sum(axis=0), np.ones(100) / 100, mode="same"))
        measured = 20 * np.log10(rms.max() / np.sqrt((noise**2).sum(axis=0).mean()))
        assert measured == pytest.approx(12.0, abs=2.0), label


def test_metadata_classes_ranges_and_noise_rows(small_set):
    ds = EventDataset(small_set)
    meta = ds.metadata
    assert len(ds) == 24
    assert (meta["trace_category"].value_counts() == 6).all()
    assert set(meta["split"]) == {"train", "dev", "test"}
    assert (meta["split"] == "train").sum() == 4 * round(0.6 * 6)
    blasts = meta[meta["trace_category"] == "explosion"]
    assert blasts["source_depth_km"].between(0, 2).all()
    assert blasts["source_magnitude"].between(-1, 4.5).all()
    quakes = meta[meta["trace_category"] == "earthquake"]
    assert quakes["source_magnitude"].between(-1, 7).all()
    assert quakes["source_depth_km"].between(0, 200).all()
    events = meta[meta["trace_category"] != "noise"]
    assert events["path_ep_distance_km"].between(0, 1000).all()
    assert (events["trace_snr_db"] >= SMALL.snr_db[0] - 1e-6).all()
    assert (
        events[
            [
                "trace_p_arrival_sample",
                "trace_coda_end_sample",
                "path_travel_time_P_s",
                "path_back_azimuth_deg",
            ]
        ]
        .notna()
        .all()
        .all()
    )
    assert (events["trace_coda_end_sample"] > events["trace_p_arrival_sample"]).all()
    noise = np.flatnonzero(ds.labels == "noise")
    rows = meta.iloc[noise]
    assert (
        rows[
            [
                "trace_p_arrival_sample",
                "trace_s_arrival_sample",
                "source_magnitude",
                "path_ep_distance_km",
                "trace_coda_end_sample",
            ]
        ]
        .isna()
        .all()
        .all()
    )
    assert all(np.all(ds.info_vector(i) == 0) for i in noise)
    wave = ds.waveform(0)
    npts = round(90 * ds.sampling_rate(0))
    assert wave.shape == (3, npts) and wave.dtype == np.float32 and np.isfinite(wave).all()
    assert np.array_equal(wave, np.rint(wave))  # whole counts


def test_same_seed_same_bytes_and_rerun_rules(tmp_path, small_set):
    again = generate_events(tmp_path / "again", SMALL, progress=False)
    assert _file_hashes(again) == _file_hashes(small_set)
    before = (again / "waveforms.hdf5").stat().st_mtime_ns
    generate_events(again, SMALL, progress=False)  # same config: no-op
    assert (again / "waveforms.hdf5").stat().st_mtime_ns == before
    other = SMALL.model_copy(update={"seed": 8, "count": 6})
    with pytest.raises(FileExistsError, match=r"different synthetic dataset.*seed"):
        generate_events(again, other, progress=False)
    generate_events(again, other, progress=False, overwrite=True)
    assert _file_hashes(again) != _file_hashes(small_set)
    assert (again / MANIFEST_NAME).is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_text("x")
    with pytest.raises(FileExistsError, match="not a synthetic event dataset"):
        generate_events(foreign, SMALL, progress=False)


def test_plan_is_exact_and_seeded():
    config = EventSynthConfig(count=103, seed=1, class_fractions={"earthquake": 3, "noise": 1})
    labels, splits = plan(config)
    assert labels.count("earthquake") == 77 and labels.count("noise") == 26
    assert plan(config) == (labels, splits)
    assert plan(config.model_copy(update={"seed": 2}))[0] != labels


def test_config_validation():
    with pytest.raises(ValidationError, match="unknown classes"):
        EventSynthConfig(class_fractions={"tremor": 1.0})
    with pytest.raises(ValidationError, match="sum to 1"):
        EventSynthConfig(split_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValidationError, match="travel-time table"):
        EventSynthConfig(distance_km=(10.0, 1500.0))
    with pytest.raises(ValidationError, match="travel-time table"):
        EventSynthConfig(earthquake_depth_km=(0.0, 300.0))
    with pytest.raises(ValidationError, match="unknown instruments"):
        EventSynthConfig(instruments={"seismoscope": 1.0})
    with pytest.raises(ValidationError, match="outside 20"):
        EventSynthConfig(sampling_rates_hz={10.0: 1.0})
    with pytest.raises(ValidationError, match="low <= high"):
        EventSynthConfig(snr_db=(30.0, 5.0))
    with pytest.raises(ValidationError):
        EventSynthConfig(record_length_s=30.0)


def test_generator_speed(tmp_path):
    config = EventSynthConfig(count=12, seed=3)
    travel_time_table()
    start = time.perf_counter()
    generate_events(tmp_path / "speed", config, progress=False)
    rate = config.count / (time.perf_counter() - start)
    print(f"generator: {rate:.0f} traces/s")
    # ~20/s measured on one core of a loaded 2-core machine (up to 3 renderings per
    # event to meet the detection threshold); generous for shared CI machines
    assert rate > 2.0
