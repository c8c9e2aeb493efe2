"""Whole scans (service/scan_run.py): inserted events found in a multi-hour synthetic
recording, and chunk boundaries that change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream
from scan_helpers import DEFAULT_BUNDLE, START, station_traces, write_mseed
from seislens.data.event_continuous import ContinuousConfig, write_continuous
from seislens.index.bundle import read_manifest
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_scan import ScanConfig
from seislens.service.scan_outputs import probability_stream
from seislens.service.scan_reader import ScanBudgets
from seislens.service.scan_run import scan_recording

BUDGETS = ScanBudgets(max_stations=10, max_traces=10_000, max_channel_samples=10**8)


def embedder_of(bundle):
    return EventEmbedder(bundle, read_manifest(bundle).events, ["CPUExecutionProvider"], 1)


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").exists(), reason="no default bundle")
def test_scan_of_a_two_hour_recording_finds_the_inserted_events(tmp_path):
    config = ContinuousConfig(duration_s=7200.0, events=4, snr_db=(15.0, 25.0), seed=5)
    rec = write_continuous(tmp_path / "two-hours.mseed", config)
    progress = []
    result = scan_recording(
        rec.path,
        "two-hours.mseed",
        embedder_of(DEFAULT_BUNDLE),
        ScanConfig(),
        BUDGETS,
        progress=progress.append,
    )
    assert result.windows == 715  # (7200 - 60) / 10 + 1 windows on one station
    assert progress[-1].done == progress[-1].total == 715 and len(progress) == 2  # per chunk
    found = 0
    for event in rec.events:
        p = event.stations["SY.S000"].p_time
        covering = [d for d in result.detections if d.start <= p <= d.end]
        assert covering, f"the {event.label} with P at {p} was not detected"
        found += covering[0].label == event.label
        if covering[0].onset is not None:
            assert abs(covering[0].onset - p) < 3.0
            # classified on the onset-aligned windows with the grid's 1–10 s one(s)
            aligned = len(ScanConfig().onset_positions_s)
            assert aligned <= covering[0].class_windows <= aligned + 2
    # the class of at least two of the four: the surface event and the explosion; the two
    # earthquakes are near the bundle's earthquake/explosion boundary (0.44/0.51 and
    # 0.37/0.59 on the aligned windows; its held-out confusion of the two is 27 %), and
    # bench/event_scan.py measures the class accuracy on hundreds of events
    assert found >= 2
    false = [
        d
        for d in result.detections
        if not any(d.start <= e.stations["SY.S000"].p_time <= d.end for e in rec.events)
    ]
    assert len(false) <= 2  # the default bundle's rate: about 4 a day (bench/event_scan.py)
    assert len(result.events) == len(result.detections)  # one station: one event each


def test_chunk_boundaries_change_no_window(tiny_event_bundle, tmp_path):
    traces = station_traces("A", 1500.0, seed=3)
    rng = np.random.default_rng(4)
    for k, tr in enumerate(traces):  # a burst 700 s in
        tr.data[70_000:72_000] += (3000 * rng.standard_normal(2000) * (k + 1)).astype(np.int32)
    path = write_mseed(tmp_path / "burst.mseed", Stream(traces))
    embedder = embedder_of(tiny_event_bundle.bundle)
    whole = scan_recording(path, "burst.mseed", embedder, ScanConfig(chunk_s=3600.0), BUDGETS)
    chunked = scan_recording(path, "burst.mseed", embedder, ScanConfig(chunk_s=300.0), BUDGETS)
    (_, a), (_, b) = whole.series[0], chunked.series[0]
    assert len(a) == len(b) == 145
    assert np.array_equal(a.starts, b.starts)
    assert np.allclose(a.probabilities, b.probabilities, atol=0.01)
    assert [round(t, 2) for t, _ in a.triggers] == [round(t, 2) for t, _ in b.triggers]
    # the probability traces: one per class, a sample per window at its centre
    stream = probability_stream(whole, seisbench_names=True)
    assert sorted(t.stats.channel for t in stream) == sorted(
        f"SeisLens_{c}" for c in embedder.classes
    )
    assert stream[0].stats.starttime == START + 30.0 and stream[0].stats.npts == 145


def test_s_minus_p_depth_replaces_the_heads_depth_of_a_near_earthquake():
    """A detection whose window holds a clear S after its onset takes the depth of that
    S − P time (spread kept, method ``s_minus_p``); an explosion, or no S, keeps its own."""
    from dataclasses import replace

    from seislens.data.event_phases import travel_time_table
    from seislens.models.event_scan import Detection, Estimate
    from seislens.service.scan_run import p_window, with_travel_time_depth

    times = travel_time_table("iasp91")(60.0, 100.0)
    onset_s, lag = 70.0, times.s_time_s - times.p_time_s
    rng = np.random.default_rng(1)
    segment = rng.standard_normal((3, 20_000))  # 200 s at 100 Hz
    t = np.arange(segment.shape[1]) / 100.0
    for comp, at, amp in ((0, onset_s, 10.0), (1, onset_s + lag, 20.0), (2, onset_s + lag, 20.0)):
        after = t >= at
        segment[comp, after] += (
            amp * np.sin(2 * np.pi * 2.0 * (t[after] - at)) * np.exp(-(t[after] - at) / 4.0)
        )
    window, p = p_window(segment, onset_s)
    assert window.shape == (3, 6000) and p == 500
    estimates = {
        "distance": Estimate(60.0, 5.0),
        "depth": Estimate(15.0, 2.0),
        "magnitude": Estimate(2.0, 0.1),
    }
    probs = {"earthquake": 0.9, "explosion": 0.05, "surface": 0.03, "noise": 0.02}
    quake = Detection(
        "SY.S000", 0.0, 130.0, onset_s, 8, 3, probs, "earthquake", estimates, 10.0, 0.99, probs
    )
    found = with_travel_time_depth(quake, window, p)
    assert found.estimates["depth"].method == "s_minus_p"
    assert found.estimates["depth"].value == pytest.approx(100.0, abs=5.0)
    assert found.estimates["depth"].spread == 2.0 and found.estimates["distance"].value == 60.0
    # an explosion answer with that S (100 km deep) is an earthquake with that depth
    blast = replace(quake, label="explosion")
    deep = with_travel_time_depth(blast, window, p)
    assert deep.label == "earthquake" and deep.relabelled_from == "explosion"
    assert deep.estimates["depth"] == found.estimates["depth"]
    assert deep.probabilities == blast.probabilities  # the model's own stay
    surface = replace(quake, label="surface")
    assert with_travel_time_depth(surface, window, p) == surface
    quiet = rng.standard_normal((3, 6000))
    assert with_travel_time_depth(quake, quiet, 500) == quake


def test_outputs_say_when_the_check_changed_a_detections_type():
    from seislens.models.contract import EVENT_CLASSES
    from seislens.models.event_scan import Detection, Estimate
    from seislens.service.scan_outputs import detection_document, detections_csv

    probs = {"earthquake": 0.2, "explosion": 0.7, "surface": 0.05, "noise": 0.05}
    estimates = {"distance": Estimate(60.0, 5.0), "depth": Estimate(100.0, 2.0, "s_minus_p")}
    deep = Detection(
        "SY.S000", 0.0, 130.0, 70.0, 8, 3, probs, "earthquake", estimates, 10.0, 0.99, probs,
        relabelled_from="explosion",
    )  # fmt: skip
    doc = detection_document(0, deep, "E0001")
    assert doc["label"] == "earthquake" and doc["label_changed_from"] == "explosion"
    plain = detection_document(1, replace_label(deep), None)
    assert plain["label_changed_from"] is None
    text = detections_csv({"classes": list(EVENT_CLASSES), "detections": [doc, plain]})
    header, *rows = [r.split(",") for r in text.strip().splitlines()]
    assert len(header) == len(rows[0]) == len(rows[1])
    row = dict(zip(header, rows[0], strict=True))
    assert row["label"] == "earthquake" and row["label_changed_from"] == "explosion"
    assert row["p_explosion"] == "0.7" and row["depth_method"] == "s_minus_p"
    assert dict(zip(header, rows[1], strict=True))["label_changed_from"] == ""


def replace_label(d):
    from dataclasses import replace

    return replace(d, label="explosion", relabelled_from=None)
