"""The scan's windowing and detection logic (models/event_scan.py), on arrays."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from seislens.models.contract import EVENT_CLASSES, WINDOW_SAMPLES
from seislens.models.event_preprocess import EventPreprocessConfig
from seislens.models.event_scan import (
    ScanConfig,
    WindowScores,
    condition_segment,
    find_detections,
    pick_onset,
    runs,
    trigger_onsets,
    window_batches,
    window_grid,
)

T0 = 1.7e9
CLASSES = tuple(EVENT_CLASSES)


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
    scores.probabilities[6] = [0.9, 0.05, 0.04, 0.01]  # P before the window: "earthquake"
    scores.probabilities[7] = [0.9, 0.05, 0.04, 0.01]
    (d,) = find_detections("XX.A", scores, CLASSES, ScanConfig())
    # onset: the first trigger in the run's span reaching half the highest (not 20 s)
    assert d.onset == T0 + 65.0
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
