"""Scan jobs over real HTTP (uvicorn in a subprocess): submit, progress, results and
downloads, the bad inputs, the job limit, and results that survive a restart."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from obspy import Stream, read, read_events
from scan_helpers import DEFAULT_BUNDLE, station_traces, station_xml
from seislens.data.event_continuous import ContinuousConfig, write_continuous

from seislens.server_process import running_server

SCANS = "/v1/events/scans"
RAW = {"content-type": "application/octet-stream"}
LIMIT = 8_000_000
pytestmark = pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").exists(), reason="needs the default bundle"
)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scan-jobs")


@pytest.fixture(scope="module")
def server(jobs_dir, tmp_path_factory):
    env = {
        "SEISLENS_SCAN_JOBS_DIR": str(jobs_dir),
        "SEISLENS_MAX_SCAN_JOBS": "1",
        "SEISLENS_MAX_SCAN_UPLOAD_BYTES": str(LIMIT),
        "SEISLENS_PREFER_GPU": "false",
        "SEISLENS_LEASE_TTL_S": "0",
    }
    log = tmp_path_factory.mktemp("scan-server") / "server.log"
    with running_server(DEFAULT_BUNDLE, log, env=env, log_level="warning") as running:
        yield running.url


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """20 min at SY.S000 and SY.S001 with two strong events, plus SY.S009 with Z only."""
    root = tmp_path_factory.mktemp("scan-recording")
    config = ContinuousConfig(duration_s=1200.0, stations=2, events=2, snr_db=(20.0, 25.0), seed=9)
    rec = write_continuous(root / "two.mseed", config)
    z_only = station_traces("S009", 1200.0, components="Z", network="SY", seed=1)
    buffer = io.BytesIO()
    Stream(z_only).write(buffer, format="MSEED", encoding="STEIM2", reclen=4096)
    data = rec.path.read_bytes() + buffer.getvalue()
    return rec, data, root


def wait_done(http: httpx.Client, url: str, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = http.get(url).json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"the scan at {url} did not finish in {timeout_s} s: {body}")


def test_scan_job_with_stationxml_locates_one_event_per_event(server, recording, jobs_dir):
    rec, data, root = recording
    xml = station_xml(root / "stations.xml", rec.stations).read_bytes()
    with httpx.Client(base_url=server, timeout=60) as http:
        r = http.post(
            SCANS,
            files={"file": ("two.mseed", data), "stationxml": ("stations.xml", xml)},
            params={"stride_s": 10},
        )
        assert r.status_code == 202, r.text
        submitted = r.json()
        job = submitted["id"]
        assert r.headers["location"].endswith(f"{SCANS}/{job}")
        assert submitted["state"] in ("queued", "running")
        assert submitted["stations"] == ["SY.S000", "SY.S001"] and submitted["located"]
        (skip,) = submitted["skipped"]
        assert skip["station"] == "SY.S009" and "3 components are needed" in skip["reason"]
        early = http.get(submitted["links"]["csv"])  # not finished yet: nothing to download
        assert early.status_code == 409 and early.json()["reason"] == "scan_not_finished"
    # the submitting client is gone; the job goes on
    with httpx.Client(base_url=server, timeout=60) as http:
        body = wait_done(http, r.headers["location"])
        assert body["state"] == "done", body
        result = body["result"]
        assert result["windows"] == 2 * 115 and body["progress"]["fraction"] == 1.0
        assert result["skipped"][0]["station"] == "SY.S009"
        events = result["events"]
        assert len(events) == 2  # each inserted event seen at both stations is one answer
        for event, truth in zip(events, rec.events, strict=True):
            assert sorted(event["stations"]) == ["SY.S000", "SY.S001"]
            assert abs(json_time(event["time"]) - truth.origin_time) < 30.0
            loc = event["location"]
            assert loc is not None and loc["stations"] and loc["rms_time_s"] < 3.0
        detections = result["detections"]
        assert {d["event"] for d in detections} == {"E0001", "E0002"}
        d = detections[0]
        assert set(d["probabilities"]) == {"earthquake", "explosion", "surface", "noise"}
        assert d["distance_km"]["unit"] == "km" and d["distance_km"]["spread"] >= 0
        assert all(x["depth_km"]["method"] in ("heads", "s_minus_p") for x in detections)
        assert d["start"] <= d["peak"]["start"] < d["end"]
        csv = http.get(body["links"]["csv"])
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        rows = csv.text.strip().splitlines()
        assert rows[0].startswith("detection,event,station,start,end,onset")
        assert len(rows) == 1 + len(detections)
        header = rows[0].split(",")
        methods = [r.split(",")[header.index("depth_method")] for r in rows[1:]]
        assert methods == [x["depth_km"]["method"] for x in detections]
        quakeml = http.get(body["links"]["quakeml"])
        catalog = read_events(io.BytesIO(quakeml.content))
        assert len(catalog) == 2
        assert {e.event_type for e in catalog} <= {"earthquake", "explosion", "other event"}
        assert all(e.origins and e.magnitudes and len(e.picks) == 2 for e in catalog)
        traces = read(io.BytesIO(http.get(body["links"]["mseed"]).content))
        assert sorted({t.id for t in traces}) == [
            f"SY.{s}.SL.{c}" for s in ("S000", "S001") for c in ("EAR", "EXP", "NOI", "SUR")
        ]
        assert traces[0].stats.sampling_rate == pytest.approx(0.1)
    assert not (jobs_dir / job / "upload.mseed").exists()  # the upload goes with the job


def json_time(text: str) -> float:
    from obspy import UTCDateTime

    return UTCDateTime(text).timestamp


def test_raw_body_and_too_many_jobs(server, recording):
    rec, _, _ = recording
    with httpx.Client(base_url=server, timeout=60) as http:
        first = http.post(
            SCANS, content=rec.path.read_bytes(), headers=RAW, params={"filename": "x.mseed"}
        )
        assert first.status_code == 202, first.text
        assert first.json()["filename"] == "x.mseed"
        second = http.post(SCANS, content=rec.path.read_bytes(), headers=RAW)
        assert second.status_code == 429
        assert second.json()["reason"] == "too_many_scans"
        assert int(second.headers["retry-after"]) > 0
        body = wait_done(http, first.headers["location"])
        assert body["state"] == "done" and body["result"]["located"] is False
        assert all(e["location"] is None for e in body["result"]["events"])


def test_a_worker_that_dies_fails_its_job_not_the_server(server, recording, jobs_dir):
    rec, _, _ = recording
    with httpx.Client(base_url=server, timeout=60) as http:
        r = http.post(SCANS, content=rec.path.read_bytes(), headers=RAW)
        assert r.status_code == 202, r.text
        status_file = jobs_dir / r.json()["id"] / "status.json"
        deadline = time.monotonic() + 120
        while "worker_start_ticks" not in (status := json.loads(status_file.read_text())):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        os.kill(status["worker_pid"], signal.SIGKILL)  # as the kernel would on a crash
        body = wait_done(http, r.headers["location"])
        assert body["state"] == "failed" and body["error"]["reason"] == "worker_crashed"
        assert "SIGKILL" in body["error"]["detail"]
        assert http.get("/healthz").status_code == 200


def test_bad_inputs(server, recording, tmp_path, jobs_dir):
    rec, data, _ = recording
    before = set(jobs_dir.iterdir())
    with httpx.Client(base_url=server, timeout=60) as http:
        text = http.post(SCANS, files={"file": ("notes.mseed", b"no seismic data here\n" * 100)})
        assert text.status_code == 422 and text.json()["reason"] == "unknown_format"
        assert "not a readable miniSEED" in text.json()["detail"]
        big = b"\0" * (LIMIT + 1)
        announced = http.post(SCANS, content=big, headers=RAW)
        assert announced.status_code == 413 and announced.json()["reason"] == "too_large"
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))  # no Content-Length
        streamed = http.post(SCANS, content=chunks, headers=RAW)
        assert streamed.status_code == 413 and "SEISLENS_MAX_SCAN_UPLOAD_BYTES" in streamed.text
        partial = station_xml(tmp_path / "one.xml", {"SY.S000": rec.stations["SY.S000"]})
        uncovered = http.post(
            SCANS,
            files={"file": ("two.mseed", data), "stationxml": ("one.xml", partial.read_bytes())},
        )
        assert uncovered.status_code == 422, uncovered.text
        assert uncovered.json()["reason"] == "stationxml_coverage"
        assert "SY.S001" in uncovered.json()["detail"]
        bad_xml = http.post(
            SCANS, files={"file": ("two.mseed", data), "stationxml": ("s.xml", b"<nope")}
        )
        assert bad_xml.status_code == 422 and bad_xml.json()["reason"] == "bad_stationxml"
        only_z = http.post(
            SCANS, content=data[len(rec.path.read_bytes()) :], headers=RAW
        )  # SY.S009 alone: nothing to scan
        assert only_z.status_code == 422 and only_z.json()["reason"] == "no_usable_station"
        stride = http.post(SCANS, content=data, headers=RAW, params={"stride_s": 0.5})
        assert stride.status_code == 422
        missing = http.get(f"{SCANS}/{'0' * 32}")
        assert missing.status_code == 404 and missing.json()["reason"] == "unknown_scan"
        malformed = http.get(f"{SCANS}/not-an-id")
        assert malformed.status_code == 422 and "job_id" in malformed.json()["detail"]
        assert http.get(f"{SCANS}/{'0' * 32}/events.quakeml").status_code == 404
    assert set(jobs_dir.iterdir()) == before  # refused uploads leave no job behind


def test_restart_keeps_finished_results_and_fails_interrupted_jobs(server, jobs_dir, tmp_path):
    done = [
        p
        for p in jobs_dir.iterdir()
        if json.loads((p / "status.json").read_text())["state"] == "done"
    ]
    assert done, "run after the scan tests"
    running = jobs_dir / ("f" * 32)
    running.mkdir()
    (running / "status.json").write_text(
        json.dumps(
            {"id": "f" * 32, "state": "running", "created": time.time(), "worker_pid": 2**22 + 7}
        )
    )
    env = {"SEISLENS_SCAN_JOBS_DIR": str(jobs_dir), "SEISLENS_LEASE_TTL_S": "0"}
    with (
        running_server(
            DEFAULT_BUNDLE, tmp_path / "again.log", env=env, log_level="warning"
        ) as again,
        httpx.Client(base_url=again.url, timeout=60) as http,
    ):
        old = http.get(f"{SCANS}/{done[0].name}").json()
        assert old["state"] == "done" and old["result"]["detections"] is not None
        assert http.get(old["links"]["csv"]).status_code == 200
        lost = http.get(f"{SCANS}/{'f' * 32}").json()
        assert lost["state"] == "failed" and lost["error"]["reason"] == "interrupted"
        failed = http.get(f"{SCANS}/{'f' * 32}/detections.csv")
        assert failed.status_code == 409 and failed.json()["reason"] == "scan_failed"
