"""Reading long recordings chunk by chunk (service/scan_reader.py): the record table, the
station plan with its skipped stations, gap-free segments, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, read
from scan_helpers import START, station_traces, write_mseed
from seislens.models.event_preprocess import EventInputError, EventPreprocessConfig
from seislens.service.scan_reader import (
    MappedRecording,
    ScanBudgets,
    read_ranges,
    read_segments,
)

BUDGETS = ScanBudgets(max_stations=10, max_traces=1000, max_channel_samples=10**8)
PRE = EventPreprocessConfig()


def _cut(trace, t0: float, t1: float):
    """Samples [t0, t1) s of ``trace`` as a trace of their own."""
    rate = trace.stats.sampling_rate
    part = trace.copy()
    part.data = trace.data[round(t0 * rate) : round(t1 * rate)].copy()
    part.stats.starttime = trace.stats.starttime + t0
    return part


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A: 3-C 100 Hz 600 s, N missing 0.5 s at 200 s, Z missing 30 s at 300 s;
    B: Z only; C: 3-C at 40 Hz; D: 3-C but 50 s."""
    z, n, e = station_traces("A", 600.0, seed=1)
    traces = [_cut(z, 0, 300), _cut(z, 330, 600), _cut(n, 0, 200), _cut(n, 200.5, 600), e]
    traces += station_traces("B", 600.0, components="Z", seed=2)
    traces += station_traces("C", 120.0, rate=40.0, seed=3)
    traces += station_traces("D", 50.0, seed=4)
    path = write_mseed(tmp_path_factory.mktemp("scan") / "multi.mseed", Stream(traces))
    return path, (z, n, e)


def test_plan_keeps_three_component_stations_and_says_why_not_the_others(recording):
    path, _ = recording
    with MappedRecording(path, "multi.mseed", BUDGETS) as rec:
        plan = rec.plan(PRE)
        assert len(rec.table.offset) == rec.scan.records
    assert [s.station for s in plan.stations] == ["XX.A", "XX.C"]
    a, c = plan.stations
    assert a.channels == ("XX.A..HHZ", "XX.A..HHN", "XX.A..HHE")
    assert (a.rate, a.end - a.start) == (100.0, pytest.approx(600.0))
    assert c.rate == 40.0
    skipped = dict(plan.skipped)
    assert set(skipped) == {"XX.B", "XX.D"}
    assert "3 components are needed" in skipped["XX.B"] and "XX.B..HHZ" in skipped["XX.B"]
    assert "50.0 s" in skipped["XX.D"] and "60 s window" in skipped["XX.D"]
    assert plan.all_stations == ["XX.A", "XX.B", "XX.C", "XX.D"]


def test_segments_fill_short_gaps_and_split_at_long_ones(recording):
    path, (z, n, e) = recording
    with MappedRecording(path, "multi.mseed", BUDGETS) as rec:
        a = rec.plan(PRE).stations[0]
        segments = read_segments(rec, a, a.start, a.end, PRE.max_gap_s)
    assert [
        (round(s.start - START.timestamp), round(s.end - START.timestamp)) for s in segments
    ] == [
        (0, 300),
        (330, 600),
    ]
    first = segments[0].data
    assert np.isfinite(first).all()
    assert np.array_equal(first[0], z.data[:30_000])  # samples as written
    assert np.array_equal(first[2], e.data[:30_000])
    gap = first[1, 20_000:20_050]  # N's 0.5 s gap, interpolated between its edges
    assert np.allclose(gap, np.linspace(n.data[19_999], n.data[20_050], 52)[1:-1])


def test_chunks_read_what_the_file_holds(recording):
    path, (z, _, _) = recording
    with MappedRecording(path, "multi.mseed", BUDGETS) as rec:
        a = rec.plan(PRE).stations[0]
        parts = [read_segments(rec, a, a.start + t0, a.start + t0 + 150.0, 1.0) for t0 in (0, 150)]
    got = np.concatenate([p[0].data[0] for p in parts])
    assert np.array_equal(got, z.data[:30_000])


def test_ranges_read_together_equal_each_read_alone(recording):
    path, _ = recording
    with MappedRecording(path, "multi.mseed", BUDGETS) as rec:
        a = rec.plan(PRE).stations[0]
        ranges = [(a.start + t0, a.start + t1) for t0, t1 in [(10, 130), (200, 400), (500, 520)]]
        together = read_ranges(rec, a, ranges, PRE.max_gap_s)
        alone = [read_segments(rec, a, t0, t1, PRE.max_gap_s) for t0, t1 in ranges]
    assert [len(s) for s in together] == [1, 2, 0]  # Z's gap at 300–330 s splits; 20 s: none
    for mine, theirs in zip(together, alone, strict=True):
        assert [s.start for s in mine] == [s.start for s in theirs]
        for x, y in zip(mine, theirs, strict=True):
            assert np.array_equal(x.data, y.data)


def test_not_miniseed_and_empty_files_are_refused(tmp_path):
    text = tmp_path / "notes.mseed"
    text.write_bytes(b"just a text file, not seismic data\n" * 50)
    with pytest.raises(EventInputError, match="not a readable miniSEED") as info:
        MappedRecording(text, "notes.mseed", BUDGETS)
    assert info.value.reason == "unknown_format"
    empty = tmp_path / "empty.mseed"
    empty.write_bytes(b"")
    with pytest.raises(EventInputError, match="empty") as info:
        MappedRecording(empty, "empty.mseed", BUDGETS)
    assert info.value.reason == "empty"


def test_budgets_are_checked_on_the_headers(recording):
    path, _ = recording
    with pytest.raises(EventInputError, match="4 stations") as info:
        MappedRecording(path, "multi.mseed", ScanBudgets(2, 1000, 10**8))
    assert info.value.reason == "too_many_stations"
    with pytest.raises(EventInputError, match="samples") as info:
        MappedRecording(path, "multi.mseed", ScanBudgets(10, 1000, 50_000))
    assert info.value.reason == "too_many_samples"


def test_record_table_matches_obspy(recording):
    path, _ = recording
    with MappedRecording(path, "multi.mseed", BUDGETS) as rec:
        table = rec.table
        rows = table.of_channel("XX.C..HHZ")
        assert table.rate[rows].tolist() == [40.0] * len(rows)
        start, end = table.start[rows].min(), table.end[rows].max()
    trace = read(str(path), format="MSEED").select(station="C", channel="HHZ")[0]
    assert start == pytest.approx(trace.stats.starttime.timestamp)
    assert end == pytest.approx(trace.stats.endtime.timestamp + trace.stats.delta)
