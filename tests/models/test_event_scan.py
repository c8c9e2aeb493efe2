"""The scan's windowing and detection logic (models/event_scan.py), on arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from seislens.models.contract import EVENT_CLASSES, WINDOW_SAMPLES
from seislens.models.event_preprocess import EventPreprocessConfig, waveform_to_spectrum
from seislens.models.event_scan import (
    ScanConfig,
    SegmentSpectra,
    WindowScores,
    classify_windows,
    condition_segment,
    find_detections,
    is_event,
    merge_coda,
    onset_window_starts,
    pick_onset,
    placed_windows,
    runs,
    trigger_onsets,
    window_batches,
    window_evidence,
    window_grid,
    with_class_windows,
)

T0 = 1.7e9
CLASSES = tuple(EVENT_CLASSES)
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "artifacts" / "default"


def test_window_grid_keeps_grid_starts_inside_the_segment_and_range():
    # segment 100 s at 100 Hz starting 3.5 s after the grid origin, stride 10 s
    starts, offsets = window_grid(T0 + 3.5, 10_000, T0, 10.0, T0, T0 + 1000)
    assert list(starts - T0) == [10.0, 20.0, 30.0, 40.0]  # 50 s + 60 s passes 103.5 s
    assert list(offsets) == [650, 1650, 2650, 3650]
    # the chunk's half-open range: a start at `last` belongs to the next chunk
    starts, _ = window_grid(T0, 20_000, T0, 10.0, T0 + 20, T0 + 50)
    assert list(starts - T0) == [20.0, 30.0, 40.0]


def test_window_batches_are_views_of_the_segment_in_order():
    x = np.arange(3 * 20_000, dtype=np.float64).reshape(3, 20_000)
    offsets = np.array([0, 1000, 2000, 5000, 14_000])
    got = list(window_batches(x, offsets, 2))
    assert [b.shape for _, b in got] == [(2, 3, WINDOW_SAMPLES)] * 2 + [(1, 3, WINDOW_SAMPLES)]
    assert got[1][1][1, 2, 0] == x[2, 5000] and got[2][1].dtype == np.float32


def test_condition_segment_resamples_to_100_hz_and_tapers_its_ends():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40 * 250))  # 250 Hz, 250 s
    y = condition_segment(x, 250.0, EventPreprocessConfig(), taper_s=3.0)
    assert y.shape == (3, 40 * 100)
    middle = y[:, 1000:3000].std()
    assert middle > 0.1 and abs(y[:, :5]).max() < 0.05 * middle


def test_runs_split_on_low_windows_and_missing_windows_and_bridge_a_dip():
    starts = T0 + 10.0 * np.array([0, 1, 2, 3, 4, 5, 6, 8, 9])  # window 7 missing (a gap)
    above = np.array([1, 1, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    assert runs(above, starts, 10.0) == [(0, 2), (3, 5), (7, 9)]
    assert runs(above, starts, 10.0, max_dip=1) == [(0, 5), (7, 9)]  # the gap still splits


def _scores(p_event: list[float], triggers: list[tuple[float, float]] | None = None):
    n = len(p_event)
    probs = np.zeros((n, 4), np.float32)
    probs[:, 3] = 1 - np.asarray(p_event)
    probs[:, 1] = np.asarray(p_event)  # an explosion wherever it is an event
    reg = {
        "distance": np.linspace(50, 80, n).astype(np.float32),
        "depth": np.full(n, 1.0, np.float32),
        "magnitude": np.full(n, 2.0, np.float32),
    }
    return WindowScores(T0 + 10.0 * np.arange(n), probs, reg, triggers or [])


def test_detections_need_min_windows_and_a_peak():
    scores = _scores([0.1, 0.95, 0.1, 0.6, 0.7, 0.8, 0.1, 0.96, 0.97, 0.1])
    config = ScanConfig(min_windows=2, peak_threshold=0.9, max_dip_windows=0)
    found = find_detections("XX.A", scores, CLASSES, config)
    # lone window (1) too short; windows 3–5 never reach 0.9; windows 7–8 are one
    assert [(d.start - T0, d.end - T0, d.windows) for d in found] == [(70.0, 140.0, 2)]
    d = found[0]
    assert d.label == "explosion" and d.peak_start == T0 + 80.0
    assert d.peak_probability == pytest.approx(0.97)
    assert d.onset is None and d.class_windows == 2  # no onset: every window counts
    assert d.estimates["distance"].spread > 0 and d.estimates["depth"].spread == 0


def test_the_onset_places_the_class_windows():
    # an event whose P is at 65 s: windows starting at 40, 50, 60 see it at 25, 15, 5 s
    p = [0.1, 0.1, 0.1, 0.95, 0.97, 0.99, 0.99, 0.95, 0.9, 0.1]
    scores = _scores(p, triggers=[(T0 + 20.0, 2.6), (T0 + 65.0, 9.0), (T0 + 90.0, 12.0)])
    scores.probabilities[3] = [0.9, 0.05, 0.04, 0.01]  # P 35 s in: "earthquake"
    scores.probabilities[7] = [0.9, 0.05, 0.04, 0.01]  # P before the window
    (d,) = find_detections("XX.A", scores, CLASSES, ScanConfig())
    # onset: the first trigger in the run's span reaching half the highest (not 20 s)
    assert d.onset == T0 + 65.0
    assert d.class_windows == 1 and d.label == "explosion"  # the one at 60 s (5 s in)
    wide = ScanConfig(class_offsets_s=(1.0, 25.0))
    (d,) = find_detections("XX.A", scores, CLASSES, wide)
    assert d.class_windows == 3 and d.label == "explosion"


def test_pick_onset_takes_the_first_strong_trigger():
    triggers = np.array([[10.0, 3.0], [20.0, 8.0], [30.0, 10.0], [50.0, 30.0]])
    assert pick_onset(triggers, 0.0, 45.0, 0.5) == 20.0
    assert pick_onset(triggers, 0.0, 100.0, 0.5) == 50.0
    assert pick_onset(triggers, 60.0, 100.0, 0.5) is None


def test_trigger_onsets_find_a_burst():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(12_000)
    z[7000:7400] += 20 * rng.standard_normal(400)
    found = trigger_onsets(z, T0, EventPreprocessConfig(), ScanConfig())
    assert any(abs(t - (T0 + 70.0)) < 0.5 and peak > 5 for t, peak in found)


def test_config_is_checked():
    with pytest.raises(ValidationError, match=r"multiple of 0\.01"):
        ScanConfig(stride_s=2.345)
    with pytest.raises(ValidationError):
        ScanConfig(threshold=1.0)


# --------------------------------------------------------------------------- spectra, gate


def _segment(seconds: float, seed: int) -> np.ndarray:
    """(3, n) band-limited noise with an offset and a burst, at 100 Hz."""
    rng = np.random.default_rng(seed)
    n = round(seconds * 100)
    x = 40.0 * rng.standard_normal((3, n)) + np.array([[3.0], [-1.0], [0.5]])
    x[:, n // 2 : n // 2 + 800] += 400.0 * rng.standard_normal((3, 800))
    x[2, 1000:2000] = 0.0
    return x


@pytest.mark.parametrize("log", [False, True])
def test_segment_spectra_equal_the_window_transform(log):
    x = _segment(400.0, 0)
    offsets = np.arange(37, x.shape[1] - WINDOW_SAMPLES + 1, 1000)  # residue 37 mod the hop
    pre = EventPreprocessConfig(log_spectrum=log)
    want = np.stack([waveform_to_spectrum(x[:, o : o + WINDOW_SAMPLES], pre) for o in offsets])
    chosen = offsets[[0, 3, 4, 5, 20, -1]]  # a few, as the gate leaves them
    got = SegmentSpectra(x, chosen, log)(chosen)
    assert got.shape == (6, 3, 50, 120) and got.dtype == np.float32
    assert np.allclose(got, want[[0, 3, 4, 5, 20, -1]], rtol=1e-5, atol=1e-5 * abs(want).max())
    with pytest.raises(ValueError, match="residue"):
        SegmentSpectra(x, chosen, log)(chosen + 10)


def test_a_flat_window_gives_the_zero_spectrum_as_per_window():
    x = _segment(120.0, 1)
    x[:, 3000:9000] = 7.0  # a constant window: z-normalised to zeros
    got = SegmentSpectra(x, np.array([3000]), False)(np.array([3000]))
    assert np.array_equal(got[0], waveform_to_spectrum(x[:, 3000:9000])) and not got.any()


def test_window_evidence_is_the_highest_ratio_inside_each_window():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 60_000))
    x[:, 30_000:30_300] *= 30.0  # a burst 300 s in
    offsets = np.arange(0, 60_000 - WINDOW_SAMPLES + 1, 1000)
    evidence = window_evidence(x, offsets, ScanConfig())
    assert np.isinf(evidence[:4]).all()  # windows touching the 33 s warm-up always pass
    holds = (offsets <= 30_000) & (offsets + WINDOW_SAMPLES > 30_100)
    assert evidence[holds].min() > 10 and np.median(evidence[~holds][4:]) < 2.0
    from numpy.lib.stride_tricks import sliding_window_view
    from obspy.signal.trigger import classic_sta_lta

    ratio = classic_sta_lta(np.sqrt((x * x).sum(axis=0)), 200, 3000)
    direct = sliding_window_view(ratio, WINDOW_SAMPLES)[offsets].max(axis=1)
    assert np.array_equal(evidence[4:], direct[4:])  # to the last window, at the end


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").exists(), reason="no default bundle")
def test_gate_off_is_the_per_window_path_and_the_gate_calls_the_rest_noise():
    from seislens.index.bundle import read_manifest
    from seislens.models.event_embedders import EventEmbedder

    embedder = EventEmbedder(
        DEFAULT_BUNDLE, read_manifest(DEFAULT_BUNDLE).events, ["CPUExecutionProvider"], 1
    )
    x = _segment(300.0, 3)
    offsets = np.arange(0, x.shape[1] - WINDOW_SAMPLES + 1, 1000)
    # the path before the gate: every window, spectra per window
    old_p, old_r = [], []
    for _, windows in window_batches(x, offsets, 8):
        p, r = embedder.classify(embedder.spectra(windows), 8)
        old_p.append(p)
        old_r.append(r["distance"])
    probs, reg = classify_windows(embedder, x, offsets, 8)
    assert np.array_equal(probs, np.concatenate(old_p))
    assert np.array_equal(reg["distance"], np.concatenate(old_r))
    sliced, _ = classify_windows(embedder, x, offsets, 8, segment_spectra=True)
    assert np.allclose(sliced, probs, atol=1e-4)
    keep = np.zeros(len(offsets), bool)
    keep[[2, 3, 10]] = True
    gated, gated_reg = classify_windows(embedder, x, offsets, 8, keep=keep, segment_spectra=True)
    assert np.allclose(gated[keep], probs[keep], atol=1e-4)
    noise = embedder.classes.index("noise")
    assert (gated[~keep, noise] == 1.0).all() and (gated[~keep].sum(axis=1) == 1.0).all()
    assert np.isnan(gated_reg["depth"][~keep]).all() and np.isfinite(gated_reg["depth"][keep]).all()


def test_the_gate_keeps_every_window_of_an_inserted_event(tmp_path):
    from obspy import read
    from seislens.data.event_continuous import ContinuousConfig, write_continuous

    config = ContinuousConfig(duration_s=1800.0, events=4, snr_db=(5.0, 6.0), seed=4)
    rec = write_continuous(tmp_path / "weak.mseed", config)
    stream = read(str(rec.path))
    x = np.stack([stream.select(channel=f"HH{c}")[0].data.astype(np.float64) for c in "ZNE"])
    conditioned = condition_segment(x, 100.0, EventPreprocessConfig(), 3.0)
    offsets = np.arange(0, conditioned.shape[1] - WINDOW_SAMPLES + 1, 1000)
    starts = rec.start + offsets / 100.0
    scan = ScanConfig()
    kept = window_evidence(conditioned, offsets, scan) >= scan.gate_ratio
    for event in rec.events:
        into = event.stations["SY.S000"].p_time - starts  # the P, s into each window
        low, high = scan.class_offsets_s
        assert kept[(into >= low) & (into <= high)].all(), f"{event.label} at SNR 5–6 dB"
        assert kept[(into >= 0) & (into < 50)].all()
    assert kept.mean() < 0.6  # and most noise windows are left out


def test_a_bridged_dip_the_gate_held_back_is_not_averaged():
    scores = _scores([0.1, 0.97, 0.0, 0.96, 0.1])
    scores.probabilities[2] = [0.0, 0.0, 0.0, 1.0]  # held back: noise without inference
    scores.regression["depth"][2] = np.nan
    scores.classified = np.array([True, True, False, True, True])
    (d,) = find_detections("XX.A", scores, CLASSES, ScanConfig(max_dip_windows=1))
    assert d.windows == 3 and d.class_windows == 2
    assert d.probabilities["noise"] == pytest.approx(0.035, abs=1e-6)
    assert np.isfinite(d.estimates["depth"].value)


def _two_runs(gap_windows: int):
    """Two runs of high windows, the second starting ``gap_windows`` low windows after the
    first (a coda that passes the threshold again)."""
    p = [0.1, 0.99, 0.99, 0.99, *([0.1] * gap_windows), 0.97, 0.98, 0.1]
    trig = [(T0 + 60.0, 9.0), (T0 + (4 + gap_windows) * 10.0 + 40.0, 5.0)]
    return _scores(p, triggers=trig)


def test_a_run_in_the_coda_joins_the_previous_detection():
    scores = _two_runs(gap_windows=7)  # the second run starts 20 s after the first ends
    config = ScanConfig(onset_positions_s=())
    apart = find_detections("XX.A", scores, CLASSES, config)
    assert len(apart) == 2
    (joined,) = merge_coda(apart, config)
    first, second = apart
    assert (joined.start, joined.end, joined.onset) == (first.start, second.end, first.onset)
    assert joined.windows == first.windows + second.windows
    assert joined.probabilities == first.probabilities  # the class is the P's
    assert joined.peak_probability == pytest.approx(0.99)
    # farther than merge_gap_s, or merging off: two detections
    assert len(merge_coda(apart, config.model_copy(update={"merge_gap_s": 5.0}))) == 2
    assert len(merge_coda(apart, config.model_copy(update={"merge_gap_s": None}))) == 2
    far = find_detections("XX.A", _two_runs(gap_windows=14), CLASSES, config)
    assert len(merge_coda(far, config)) == 2  # 90 s apart


def test_a_detection_whose_class_windows_say_noise_is_not_an_event():
    scores = _scores([0.1, 0.97, 0.6, 0.6, 0.1])  # a peak on one window, the rest unsure
    (d,) = find_detections("XX.A", scores, CLASSES, ScanConfig(max_dip_windows=0))
    assert is_event(d, CLASSES, ScanConfig())  # mean event probability 0.72
    noisy = np.tile(np.array([[0.1, 0.2, 0.0, 0.7]], np.float32), (5, 1))
    reg = {n: np.full(5, 1.0, np.float32) for n in ("distance", "depth", "magnitude")}
    called = with_class_windows(d, noisy, reg, CLASSES)
    assert called.class_windows == 5 and called.label == "explosion"
    assert called.probabilities["noise"] == pytest.approx(0.7)
    assert called.estimates["distance"].value == pytest.approx(1.0)
    assert not is_event(called, CLASSES, ScanConfig())
    assert is_event(called, CLASSES, ScanConfig(event_threshold=None))


def test_onset_aligned_windows_put_the_onset_at_the_trained_positions():
    config = ScanConfig(onset_positions_s=(1.0, 5.0, 10.0))
    assert np.allclose(onset_window_starts(T0 + 100.0, config) - T0, [99.0, 95.0, 90.0])
    with pytest.raises(ValidationError):
        ScanConfig(onset_positions_s=(5.0, 60.0))


def test_placed_windows_are_the_grid_windows_with_the_onset_early_in_them():
    p = [0.1, 0.95, 0.97, 0.99, 0.99, 0.95, 0.9, 0.1]
    scores = _scores(p, triggers=[(T0 + 65.0, 9.0)])
    (d,) = find_detections("XX.A", scores, CLASSES, ScanConfig())
    assert d.onset == T0 + 65.0
    # windows start every 10 s: the one at 60 s puts the onset 5 s in (1–10 s)
    assert placed_windows(scores, d, ScanConfig()).tolist() == [6]
    wide = ScanConfig(class_offsets_s=(1.0, 25.0))
    assert placed_windows(scores, d, wide).tolist() == [4, 5, 6]
    scores.classified = np.ones(len(p), bool)
    scores.classified[6] = False  # held back by the gate: not a class window
    assert placed_windows(scores, d, ScanConfig()).tolist() == []
