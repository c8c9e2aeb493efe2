"""The generator's regional ranges, recording chains, noise, clipping and band limits."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from obspy.taup import TauPyModel
from scipy.signal import butter, sosfiltfilt
from seislens.data.event_instruments import (
    FULL_SCALE_COUNTS,
    InstrumentRanges,
    anti_alias,
    draw_instrument,
)
from seislens.data.event_noise import peterson_psd_db
from seislens.data.event_phases import KM_PER_DEG
from seislens.data.event_synth import (
    EventSynthConfig,
    draw_event,
    render_event,
    station_network,
    synthesize,
    travel_time_table,
)
from seislens.models.contract import (
    EVENT_DEPTH_RANGE_KM,
    EVENT_DISTANCE_RANGE_KM,
    EVENT_MAGNITUDE_RANGE,
    INFO_SCALES,
)
from seislens.models.event_preprocess import EventPreprocessConfig, condition_waveform

BROADBAND = EventSynthConfig(count=1, sampling_rate_hz=100.0, instruments={"broadband": 1.0})
RANGES = InstrumentRanges()


def _params(label: str = "earthquake", seed: int = 0, config=BROADBAND, **fixed):
    params = draw_event(np.random.default_rng(seed), label, config, station_network(config))
    return replace(params, **fixed)


def _render(params, config=BROADBAND, seed: int = 0):
    return render_event(params, config, np.random.default_rng(seed))


def test_draws_cover_the_regional_ranges_and_contract():
    config = EventSynthConfig(count=1)
    stations = station_network(config)
    rng = np.random.default_rng(5)
    draws = [draw_event(rng, "earthquake", config, stations) for _ in range(1500)]
    distance = np.array([p.distance_km for p in draws])
    depth = np.array([p.depth_km for p in draws])
    magnitude = np.array([p.magnitude for p in draws])
    for values, (low, high) in [
        (distance, EVENT_DISTANCE_RANGE_KM),
        (depth, EVENT_DEPTH_RANGE_KM),
        (magnitude, EVENT_MAGNITUDE_RANGE),
    ]:
        assert values.min() >= low and values.max() <= high
        span = high - low
        assert values.min() < low + 0.05 * span and values.max() > high - 0.05 * span
    assert (distance < 30).mean() > 0.15 and (distance > 500).mean() > 0.2  # both regimes
    assert 0.2 < (depth > 40).mean() < 0.6  # intermediate-depth events are not rare
    rates = {p.sampling_rate_hz for p in draws}
    assert rates == {20.0, 40.0, 50.0, 100.0, 200.0}
    kinds = {p.instrument.kind for p in draws}
    assert kinds == {"broadband", "short_period", "accelerometer"}
    # the info encoder's divisors span the new range
    assert INFO_SCALES[5] == EVENT_DISTANCE_RANGE_KM[1]
    assert travel_time_table()(EVENT_DISTANCE_RANGE_KM[1], 0.0).p_time_s / INFO_SCALES[4] < 1


def test_trace_is_reproducible_and_own_seeded():
    config = EventSynthConfig(count=3, seed=11)
    stations = station_network(config)
    p1, t1, _ = synthesize(2, "earthquake", config, stations)
    p2, t2, _ = synthesize(2, "earthquake", config, stations)
    assert p1 == p2 and np.array_equal(t1.waveform, t2.waveform)
    p3, _, _ = synthesize(1, "earthquake", config, stations)
    assert p3.distance_km != p1.distance_km


def test_regional_phases_match_taup():
    table = travel_time_table()
    model = TauPyModel("iasp91")
    far = table.arrivals(450.0, 10.0)  # crustal source beyond the Pn crossover
    assert far.refracted_p and far.refracted_s and far.crustal is not None
    deg = 450.0 / KM_PER_DEG
    pn = model.get_travel_times(10.0, deg, phase_list=["Pn"])[0].time
    pg = model.get_travel_times(10.0, deg, phase_list=["Pg"])[0].time
    assert far.first.p_time_s == pytest.approx(pn, abs=0.1)
    assert far.crustal.p_time_s == pytest.approx(pg, abs=0.1)
    near = table.arrivals(40.0, 10.0)
    assert not near.refracted_p  # Pg first near the source
    deep = table.arrivals(100.0, 150.0)
    assert deep.crustal is None  # below the Moho: no Pg/Sg
    # crust-guided Pg continues at crustal speed where the direct ray stops
    guided = table.arrivals(900.0, 30.0).crustal
    assert guided is not None and 5.8 < 900.0 / guided.p_time_s < 6.6


def test_lg_dominates_a_regional_crustal_record_but_not_a_deep_one():
    def lg_over_s(depth: float) -> float:
        params = _params(
            distance_km=400.0, depth_km=depth, magnitude=4.5, p_onset_s=5.0, noise_position=0.0
        )
        cfg = BROADBAND.model_copy(update={"record_length_s": 150.0})
        trace = _render(params, cfg)
        power = (trace.signal.astype(float) ** 2).sum(axis=0)
        first = trace.times.first
        origin = params.p_onset_s - first.p_time_s
        s_at = round((origin + first.s_time_s) * 100)
        lg = slice(round((origin + 400.0 / 3.6) * 100), round((origin + 400.0 / 3.0) * 100))
        return float(power[lg].mean() / power[s_at : s_at + 500].mean())

    crustal, deep = lg_over_s(10.0), lg_over_s(150.0)
    assert crustal > 1.0  # Lg outweighs the first S (Sn) of a crustal source
    assert crustal > 3.0 * deep  # a deep source excites little Lg


def test_instrument_responses_against_obspy_and_each_other():
    rng = np.random.default_rng(3)
    freqs = np.array([0.05, 0.5, 1.0, 5.0, 20.0])
    for kind in ("broadband", "short_period", "accelerometer"):
        inst = draw_instrument(rng, kind, RANGES)
        ours = inst.velocity_response(freqs)
        theirs = inst.to_obspy().get_evalresp_response_for_frequencies(freqs, output="VEL")
        assert np.allclose(ours, theirs, rtol=1e-6), kind
    bb = draw_instrument(rng, "broadband", RANGES)
    gp = draw_instrument(rng, "short_period", RANGES)
    assert abs(bb.velocity_response(np.array([0.05]))[0]) > 0.9 * bb.counts_per_m_s(1.0)
    corner = -gp.poles[0].real / (2 * math.pi) / 0.7  # ~ the geophone's natural frequency
    low = abs(gp.velocity_response(np.array([corner / 10]))[0])
    assert low < 0.02 * abs(gp.velocity_response(np.array([15.0]))[0])  # 2nd-order high-pass


def test_accelerometer_record_is_the_derivative_of_the_velocity_record():
    rng = np.random.default_rng(8)
    velocity, accel = (draw_instrument(rng, k, RANGES) for k in ("broadband", "accelerometer"))
    base = _params(distance_km=30.0, depth_km=8.0, magnitude=3.5, noise_position=0.0)
    v = _render(replace(base, instrument=velocity)).signal.astype(float)
    a = _render(replace(base, instrument=accel)).signal.astype(float)
    v /= velocity.counts_per_m_s(1.0)  # m/s
    a /= accel.sensitivity * accel.counts_per_volt  # m/s²
    sos = butter(4, [0.5, 10.0], btype="band", fs=100.0, output="sos")
    freqs = np.fft.rfftfreq(v.shape[1], 0.01)
    dv = np.fft.irfft(np.fft.rfft(v, axis=1) * 2j * np.pi * freqs, n=v.shape[1], axis=1)
    dv = sosfiltfilt(sos, dv)
    a = sosfiltfilt(sos, a)
    assert np.corrcoef(dv[0], a[0])[0, 1] > 0.99
    assert np.abs(a).max() == pytest.approx(np.abs(dv).max(), rel=0.05)


def test_noise_lies_between_the_peterson_models():
    for position in (0.2, 0.8):
        params = _params("noise", noise_position=position)
        trace = _render(params, BROADBAND.model_copy(update={"record_length_s": 300.0}))
        z = trace.waveform[0].astype(float) / params.instrument.counts_per_m_s(1.0)
        freqs = np.fft.rfftfreq(z.size, 0.01)
        psd_v = (
            2
            * np.abs(np.fft.rfft(z * np.hanning(z.size))) ** 2
            / (100.0 * (np.hanning(z.size) ** 2).sum())
        )
        psd_a = psd_v * (2 * np.pi * freqs) ** 2
        band = (freqs > 0.5) & (freqs < 2.0)  # around 1 Hz: below the cultural bump
        measured = 10 * np.log10(np.median(psd_a[band]))
        low, high = (
            peterson_psd_db(np.array([1.0]), 0.0)[0],
            peterson_psd_db(np.array([1.0]), 1.0)[0],
        )
        expected = low + position * (high - low)
        assert low - 3 < measured < high + 3
        assert measured == pytest.approx(expected, abs=6.0)


def test_large_near_events_clip_and_small_ones_do_not():
    big = _params(distance_km=8.0, depth_km=6.0, magnitude=6.5)
    trace = _render(big)
    assert trace.clip_fraction > 0
    assert np.abs(trace.waveform).max() == FULL_SCALE_COUNTS
    small = _render(replace(big, magnitude=2.0))
    assert small.clip_fraction == 0 and np.abs(small.waveform).max() < FULL_SCALE_COUNTS


def test_low_rates_are_band_limited_through_the_preprocessing():
    cfg = EventSynthConfig(count=1, sampling_rate_hz=20.0, instruments={"broadband": 1.0})
    params = _params(config=cfg, distance_km=20.0, depth_km=5.0, magnitude=2.5)
    trace = render_event(params, cfg, np.random.default_rng(0))
    assert trace.waveform.shape == (3, 90 * 20)
    assert anti_alias(np.array([8.0, 10.0]), 20.0).tolist() == [1.0, 0.0]
    at_100 = condition_waveform(trace.waveform, 20.0, EventPreprocessConfig())
    power = np.abs(np.fft.rfft(at_100[0])) ** 2
    freqs = np.fft.rfftfreq(at_100.shape[1], 0.01)
    assert power[freqs > 10.5].sum() < 1e-3 * power[(freqs > 1) & (freqs < 8)].sum()
    fast = replace(params, sampling_rate_hz=100.0)
    power = (
        np.abs(np.fft.rfft(render_event(fast, BROADBAND, np.random.default_rng(0)).signal[0])) ** 2
    )
    freqs = np.fft.rfftfreq(9000, 0.01)
    assert power[(freqs > 12) & (freqs < 30)].sum() > 1e-2 * power[(freqs > 1) & (freqs < 8)].sum()


def test_local_magnitude_tracks_moment_magnitude():
    values = {}
    for mag in (2.0, 3.0, 4.0):
        ml = [
            _render(
                _params(seed=s, distance_km=d, depth_km=8.0, magnitude=mag, stress_drop_mpa=3.0)
            ).local_magnitude
            for s, d in ((0, 20.0), (1, 80.0), (2, 250.0))
        ]
        values[mag] = np.median(ml)
        assert abs(values[mag] - mag) < 1.0
    assert 0.7 < (values[4.0] - values[2.0]) / 2 < 1.6


def test_physical_snr_meets_the_floor_and_magnitudes_follow_distance():
    config = EventSynthConfig(count=1, seed=4)
    stations = station_network(config)
    rows = [synthesize(i, "earthquake", config, stations) for i in range(16)]
    snr = np.array([t.snr_db for _, t, _ in rows])
    assert (snr >= config.snr_db[0] - 1e-6).all()
    far = [p.magnitude for p, _, _ in rows if p.distance_km > 300]
    near = [p.magnitude for p, _, _ in rows if p.distance_km < 50]
    assert far and near and min(far) > min(near)  # faint events are seen near only
