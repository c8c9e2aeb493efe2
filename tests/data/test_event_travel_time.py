"""The S − P depth check (seislens.data.event_travel_time): picks on windows with a
known S, depths that invert the travel-time table, and every gate."""

from __future__ import annotations

import numpy as np
import pytest
from seislens.data.event_phases import travel_time_table
from seislens.data.event_travel_time import (
    TravelTimeConfig,
    depth_from_s_minus_p,
    pick_s,
    travel_time_depth,
)
from seislens.models.contract import SAMPLING_RATE_HZ, WINDOW_SAMPLES

FS = SAMPLING_RATE_HZ


def window(p_s: float, s_s: float, seed: int = 0, s_amp: float = 20.0) -> np.ndarray:
    """(3, 6000) noise with a 3 Hz P burst on Z at ``p_s`` and a 2 Hz S burst ``s_amp``
    times the noise on the horizontals at ``s_s`` (seconds into the window)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, WINDOW_SAMPLES))
    t = np.arange(WINDOW_SAMPLES) / FS
    for comp, onset, freq, amp in ((0, p_s, 3.0, 10.0), (1, s_s, 2.0, s_amp), (2, s_s, 2.0, s_amp)):
        after = t >= onset
        x[comp, after] += (
            amp * np.sin(2 * np.pi * freq * (t[after] - onset)) * np.exp(-(t[after] - onset) / 4.0)
        )
    return x


@pytest.mark.parametrize(("p_s", "s_s"), [(5.0, 9.0), (5.0, 20.5), (3.0, 40.0)])
def test_pick_finds_the_s(p_s, s_s):
    pick = pick_s(window(p_s, s_s), round(p_s * FS))
    assert pick is not None
    assert pick.s_minus_p_s == pytest.approx(s_s - p_s, abs=0.15)
    assert pick.ratio > 30


def test_pick_needs_room_after_the_p():
    x = window(5.0, 9.0)
    assert pick_s(x, WINDOW_SAMPLES - 50) is None
    with pytest.raises(ValueError, match="expected \\(3, n_samples\\)"):
        pick_s(x[:2], 500)


def test_noise_alone_gives_a_weak_pick():
    x = np.random.default_rng(3).standard_normal((3, WINDOW_SAMPLES))
    pick = pick_s(x, 500)
    assert pick is not None and pick.ratio < TravelTimeConfig().min_ratio


@pytest.mark.parametrize(("distance", "depth"), [(60.0, 100.0), (30.0, 10.0), (150.0, 40.0)])
def test_depth_inverts_the_table(distance, depth):
    times = travel_time_table("iasp91")(distance, depth)
    found = depth_from_s_minus_p(times.s_time_s - times.p_time_s, distance)
    assert found == pytest.approx(depth, abs=2.5)


def test_depth_outside_the_table_is_none():
    assert depth_from_s_minus_p(200.0, 50.0) is None  # far deeper than 200 km
    assert depth_from_s_minus_p(0.1, 300.0) is None  # too short for this distance


def test_gate_applies_to_a_near_earthquake_with_a_clear_s():
    t = travel_time_table("iasp91")(60.0, 100.0)
    x = window(5.0, 5.0 + t.s_time_s - t.p_time_s)
    check = travel_time_depth(x, 500, 60.0, "earthquake")
    assert check.applied and check.reason is None
    assert check.depth_km == pytest.approx(100.0, abs=5.0)
    assert check.answer(15.0) == (check.depth_km, "s_minus_p")


@pytest.mark.parametrize(
    ("p_sample", "distance", "label", "s_amp", "reason"),
    [
        (None, 60.0, "earthquake", 20.0, "no P pick"),
        (500, 60.0, "surface", 20.0, "not earthquake"),
        (500, 400.0, "earthquake", 20.0, "past 250 km"),
        (500, 60.0, "earthquake", 0.3, "below 30"),
    ],
)
def test_gate_refuses_with_a_reason(p_sample, distance, label, s_amp, reason):
    check = travel_time_depth(window(5.0, 18.0, s_amp=s_amp), p_sample, distance, label)
    assert not check.applied and reason in (check.reason or "")
    assert check.answer(15.0) == (15.0, "heads")


@pytest.mark.parametrize(("depth", "changed"), [(100.0, True), (30.0, False)])
def test_an_explosion_too_deep_for_one_becomes_an_earthquake(depth, changed):
    t = travel_time_table("iasp91")(60.0, depth)
    x = window(5.0, 5.0 + t.s_time_s - t.p_time_s)
    check = travel_time_depth(x, 500, 60.0, "explosion")
    assert check.depth_km == pytest.approx(depth, abs=5.0)
    assert check.applied is changed
    if changed:  # 60 km and deeper: the S says the source is far below any blast
        assert check.label == "earthquake" and check.relabelled_from == "explosion"
        assert check.reason is None and check.answer(2.0) == (check.depth_km, "s_minus_p")
    else:
        assert check.label == "explosion" and check.relabelled_from is None
        assert "shallower than 60 km" in check.reason and check.answer(2.0) == (2.0, "heads")
    deeper = TravelTimeConfig(min_quake_depth_km=depth + 10.0)
    assert not travel_time_depth(x, 500, 60.0, "explosion", deeper).applied


def test_silent_horizontals_and_nan_inputs_give_no_depth():
    x = window(5.0, 18.0)
    x[1:] = 0.0  # dead horizontals: no evidence at all (not a ratio over zero)
    pick = pick_s(x, 500)
    assert pick is not None and pick.ratio == 0.0
    assert depth_from_s_minus_p(float("nan"), 60.0) is None
    assert depth_from_s_minus_p(10.0, float("nan")) is None
    check = travel_time_depth(window(5.0, 18.0), 500, float("nan"), "earthquake")
    assert not check.applied and check.depth_km is None
