"""``seislens events scan``: local files scanned with a progress bar, one output folder
per file, and a clear exit status for files that cannot be scanned."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from obspy import Stream, read, read_events
from typer.testing import CliRunner

from seislens.cli import app

sys.path.insert(0, str(Path(__file__).parent / "service"))
from scan_helpers import station_traces, write_mseed

FIXTURE_BUNDLE = Path(__file__).parent / "fixtures" / "serving" / "bundle"


def test_scan_writes_every_output_and_reports_skipped_stations(tmp_path):
    traces = station_traces("A", 600.0, seed=1) + station_traces("B", 600.0, components="Z")
    path = write_mseed(tmp_path / "ten.mseed", Stream(traces))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "events",
            "scan",
            str(path),
            "--bundle",
            str(FIXTURE_BUNDLE),
            "--stride",
            "20",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 station(s), 28 windows" in result.output  # (600 - 60) / 20 + 1
    assert "skipped XX.B" in result.output and "3 components" in result.output
    folder = out / "ten.mseed"
    document = json.loads((folder / "result.json").read_text())
    assert document["settings"]["stride_s"] == 20.0 and document["windows"] == 28
    assert (folder / "detections.csv").read_text().startswith("detection,event,station")
    assert len(read_events(str(folder / "events.quakeml"))) == len(document["events"])
    probabilities = read(str(folder / "probabilities.mseed"))
    assert len(probabilities) == 4 and probabilities[0].stats.npts == 28


def test_a_file_that_cannot_be_scanned_exits_2_after_the_others(tmp_path):
    good = write_mseed(tmp_path / "good.mseed", Stream(station_traces("A", 120.0)))
    bad = tmp_path / "bad.mseed"
    bad.write_bytes(b"not miniSEED at all\n" * 20)
    result = CliRunner().invoke(
        app,
        [
            "events",
            "scan",
            str(bad),
            str(good),
            "--bundle",
            str(FIXTURE_BUNDLE),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert "bad.mseed: not scanned" in result.output and "not a readable miniSEED" in result.output
    assert (tmp_path / "out" / "good.mseed" / "result.json").is_file()
    missing = CliRunner().invoke(app, ["events", "scan", str(tmp_path / "nope.mseed")])
    assert missing.exit_code == 2 and "no such file" in missing.output
