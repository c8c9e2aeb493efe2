"""The page-data routes (service/routes_page_data.py): what the page draws, read with
the API's own readers, so they refuse what the API refuses, with the same message."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import obspy

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
GATHER = "/v1/page/gather-preview"
RECORDING = "/v1/page/recording-preview"


def decoded(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.int8)


def test_gather_preview_is_the_gather_as_read(client, sample):
    r = client.post(GATHER, files={"file": ("shot.sgy", sample.segy)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["shots"], body["samples"], body["receivers"]) == (5, 500, 70)
    assert body["format"] == "segy" and body["dt_ms"] == 2.0 and all(body["shot_mask"])
    data = decoded(body["data"]).reshape(5, 500, 70).astype(np.float64) / 127 * body["clip"]
    expected = np.clip(sample.gather[:, ::2, :], -body["clip"], body["clip"])
    assert np.abs(data - expected).max() <= body["clip"] / 127
    raw = client.post(
        GATHER, content=sample.segy, headers={"content-type": "application/octet-stream"}
    )
    assert raw.status_code == 200 and raw.json()["data"] == body["data"]


def test_gather_preview_refuses_what_the_search_refuses(client, make_client, sample):
    text = b"This is not seismic data.\n" * 200
    for files in ({"file": ("notes.sgy", text)}, {"file": ("x.sgy", b"")}):
        page = client.post(GATHER, files=files)
        api = client.post("/v1/velocity/search", files=files)
        assert page.status_code == api.status_code and 400 <= page.status_code < 500
        assert page.json() == api.json()
    small = make_client(max_upload_bytes=1000)
    r = small.post(GATHER, files={"file": ("shot.sgy", sample.segy)})
    assert r.status_code == 413 and r.json()["reason"] == "too_large"


def test_recording_preview_is_the_classified_window(event_client):
    data = CER.read_bytes()
    classify = event_client.post("/v1/events/classify", files={"file": ("e.mseed", data)}).json()
    r = event_client.post(RECORDING, files={"file": ("e.mseed", data)})
    assert r.status_code == 200, r.text
    (station,) = r.json()["stations"]
    (classified,) = classify["stations"]
    assert station["station"] == classified["station"]
    assert station["channels"] == classified["channels"]
    assert station["start"] == classified["window"]["start"]
    assert station["p_offset_s"] == classified["window"]["p_offset_s"]
    envelope = decoded(station["waveform"]).reshape(3, station["buckets"], 2)
    assert station["buckets"] == 600 and (envelope[:, :, 0] <= envelope[:, :, 1]).all()
    assert np.abs(envelope).max(axis=(1, 2)).tolist() == [127, 127, 127]  # each at its peak
    assert station["spectrogram_shape"] == [3, 50, 120]
    spectrum = decoded(station["spectrogram"])
    assert spectrum.size == 3 * 50 * 120 and spectrum.min() == -127 and spectrum.max() == 127


def test_recording_preview_refuses_what_classify_refuses(event_client, client):
    files = {"file": ("e.mseed", b"not miniseed at all" * 50)}
    page = event_client.post(RECORDING, files=files)
    api = event_client.post("/v1/events/classify", files=files)
    assert page.status_code == api.status_code == 422 and page.json() == api.json()
    no_events = client.post(RECORDING, files={"file": ("e.mseed", CER.read_bytes())})
    assert no_events.status_code == 404 and no_events.json()["reason"] == "no_event_encoders"
