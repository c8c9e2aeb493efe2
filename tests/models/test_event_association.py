"""One answer per event (models/event_association.py): grouping, combined types, location."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from obspy.taup import TauPyModel
from seislens.models.event_association import (
    KM_PER_DEG,
    AssociationConfig,
    PTravelTimes,
    StationPosition,
    associate,
    combine_estimates,
    combine_probabilities,
    epicentral_km,
    event_label,
    group_label,
    locate,
)
from seislens.models.event_scan import Detection, Estimate

T0 = 1.7e9
TIMES = PTravelTimes()


def det(
    station: str,
    onset: float | None,
    label: str = "earthquake",
    distance: float = 50.0,
    depth: float = 10.0,
    start: float | None = None,
    probabilities: dict[str, float] | None = None,
) -> Detection:
    probs = probabilities or {
        "earthquake": 0.8 if label == "earthquake" else 0.1,
        "explosion": 0.8 if label == "explosion" else 0.1,
        "surface": 0.05,
        "noise": 0.05,
    }
    first = start if start is not None else (onset or T0) - 50.0
    return Detection(
        station=station,
        start=first,
        end=first + 120.0,
        onset=onset,
        windows=7,
        class_windows=3,
        probabilities=probs,
        label=label,
        estimates={
            "distance": Estimate(distance, 5.0),
            "depth": Estimate(depth, 1.0),
            "magnitude": Estimate(2.0, 0.2),
        },
        peak_start=first + 20.0,
        peak_probability=0.99,
        peak_probabilities=probs,
    )


def test_p_times_match_taup():
    model = TauPyModel("iasp91")
    for dist, depth in ((10.0, 5.0), (120.0, 10.0), (700.0, 33.0)):
        arrivals = model.get_travel_times(depth, dist / KM_PER_DEG, ["p", "P", "Pn"])
        assert TIMES(dist, depth) == pytest.approx(min(a.time for a in arrivals), abs=0.05)


def _station(lat0: float, lon0: float, north: float, east: float) -> StationPosition:
    return StationPosition(
        lat0 + north / KM_PER_DEG, lon0 + east / (KM_PER_DEG * math.cos(math.radians(lat0)))
    )


def test_moveout_groups_with_coordinates():
    pos = {"XX.A": _station(46, -121, 0, 0), "XX.B": _station(46, -121, 0, 30)}
    # 30 km apart: P moveout at most ~5 s (+ 2 × 2 s onset tolerance)
    near = [det("XX.A", T0), det("XX.B", T0 + 6.0)]
    far = [det("XX.A", T0), det("XX.B", T0 + 40.0)]
    cfg = AssociationConfig()
    assert [len(g) for g in associate(near, pos, TIMES, cfg)] == [2]
    assert [len(g) for g in associate(far, pos, TIMES, cfg)] == [1, 1]


def test_model_distances_group_without_coordinates():
    # an origin at T0: stations at 40 and 200 km see P 7 and 32 s later — 25 s apart,
    # consistent with the distances; the same gap with equal distances is not
    cfg = AssociationConfig(distance_error_km=10.0)
    consistent = [
        det("XX.A", T0 + float(TIMES(40.0, 10.0)), distance=40.0),
        det("XX.B", T0 + float(TIMES(200.0, 10.0)), distance=200.0),
    ]
    inconsistent = [
        det("XX.A", T0 + float(TIMES(40.0, 10.0)), distance=40.0, start=T0 - 200),
        det("XX.B", T0 + float(TIMES(200.0, 10.0)), distance=40.0, start=T0),
    ]
    assert [len(g) for g in associate(consistent, None, TIMES, cfg)] == [2]
    assert [len(g) for g in associate(inconsistent, None, TIMES, cfg)] == [1, 1]


def test_one_detection_per_station_per_event():
    groups = associate([det("XX.A", T0), det("XX.A", T0 + 3.0)], None, TIMES, AssociationConfig())
    assert [len(g) for g in groups] == [1, 1]


def test_combined_type_is_the_normalised_geometric_mean():
    a = {"earthquake": 0.6, "explosion": 0.3, "surface": 0.05, "noise": 0.05}
    b = {"earthquake": 0.2, "explosion": 0.7, "surface": 0.05, "noise": 0.05}
    c = combine_probabilities([a, b])
    raw = {k: math.sqrt(a[k] * b[k]) for k in a}
    total = sum(raw.values())
    assert c == pytest.approx({k: v / total for k, v in raw.items()})
    assert sum(c.values()) == pytest.approx(1.0)
    assert event_label(c) == "explosion"  # sqrt(.21) > sqrt(.12)
    assert event_label({"earthquake": 0.1, "explosion": 0.1, "surface": 0.2, "noise": 0.6}) == (
        "surface"
    )


def test_an_explosion_found_too_deep_at_a_station_makes_the_event_an_earthquake():
    blast = {"earthquake": 0.2, "explosion": 0.7, "surface": 0.05, "noise": 0.05}
    a = det("XX.A", T0, "explosion", probabilities=blast)
    b = det("XX.B", T0, "explosion", probabilities=blast)
    assert group_label(blast, [a, b]) == "explosion"
    deep = replace(b, label="earthquake", relabelled_from="explosion")
    assert group_label(blast, [a, deep]) == "earthquake"
    quake = {"earthquake": 0.7, "explosion": 0.2, "surface": 0.05, "noise": 0.05}
    assert group_label(quake, [a, deep]) == "earthquake"  # nothing to change


def test_combined_estimates_take_the_median_and_the_spread_between_stations():
    members = [det("XX.A", T0, depth=5.0), det("XX.B", T0, depth=9.0), det("XX.C", T0, depth=10.0)]
    depth = combine_estimates(members, "depth")
    assert depth is not None and depth.value == 9.0
    assert depth.spread == pytest.approx(math.sqrt(1.0 + np.var([5.0, 9.0, 10.0])))


def test_locate_recovers_a_synthetic_epicentre():
    lat0, lon0 = 46.5, -121.5
    pos = {
        "XX.A": _station(lat0, lon0, 0, 0),
        "XX.B": _station(lat0, lon0, 40, 10),
        "XX.C": _station(lat0, lon0, -10, 45),
        "XX.D": _station(lat0, lon0, 30, -35),
    }
    src = _station(lat0, lon0, 70, 60)
    origin, depth = T0 + 12.3, 10.0
    members = []
    for name, p in pos.items():
        dist = float(epicentral_km(src.latitude, src.longitude, p.latitude, p.longitude))
        members.append(det(name, origin + float(TIMES(dist, depth)), distance=dist, depth=depth))
    loc = locate(members, pos, TIMES, AssociationConfig(distance_error_km=20.0))
    assert loc is not None
    err = float(epicentral_km(loc.latitude, loc.longitude, src.latitude, src.longitude))
    assert err < 3.0
    assert loc.origin_time == pytest.approx(origin, abs=0.5)
    assert loc.rms_time_s < 0.3 and loc.stations == list(pos)
    # one station without coordinates or onset: fewer than two left, no location
    assert locate(members[:1], pos, TIMES, AssociationConfig()) is None


def test_combined_depth_says_how_its_stations_found_it():
    a, b = det("XX.A", T0, depth=80.0), det("XX.B", T0, depth=90.0)
    s_minus_p = {"depth": Estimate(85.0, 1.0, "s_minus_p")}
    by_s = replace(a, estimates={**a.estimates, **s_minus_p})
    assert combine_estimates([a, b], "depth").method == "heads"
    assert combine_estimates([by_s, by_s], "depth").method == "s_minus_p"
    assert combine_estimates([by_s, b], "depth").method == "mixed"
