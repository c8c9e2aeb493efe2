"""The events routes: classify and search miniSEED recordings (obspy's real local event,
a synthetic trace written by obspy), the bundle's event branch, and bad input — each a
4xx with a message, never a 500, with the service still answering afterwards."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from seislens.data.event_dataset import EventDataset
from seislens.index.bundle import BundleError, read_manifest, write_manifest
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.service.state import load_bundle

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
CLASSIFY = "/v1/events/classify"
SEARCH = "/v1/events/search"
T0 = UTCDateTime(2020, 1, 1)


# --------------------------------------------------------------------------- helpers


def mseed(stream: Stream) -> bytes:
    """A stream written as miniSEED by obspy."""
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED")
    return buffer.getvalue()


def cer_bytes() -> bytes:
    return CER.read_bytes()


def post(client, data: bytes, path: str = CLASSIFY, form: dict | None = None, **params):
    """POST a recording to an events route."""
    return client.post(path, files={"file": ("event.mseed", data)}, data=form or {}, params=params)


def synthetic(
    seconds: float = 90.0,
    rate: float = 100.0,
    comps: str = "ZNE",
    station: str = "STA",
    rates: dict[str, float] | None = None,
    seed: int = 0,
) -> Stream:
    """Noise with a P-like burst 20 s in, one trace per component (float32)."""
    rng = np.random.default_rng(seed)
    traces = []
    for comp in comps:
        fs = (rates or {}).get(comp, rate)
        t = np.arange(int(seconds * fs)) / fs
        burst = np.where(t > 20, np.exp(-(t - 20) / 4.0), 0.0) * np.sin(2 * np.pi * 5 * t)
        data = (rng.standard_normal(t.size) + 30 * burst).astype(np.float32)
        header = {
            "network": "XX",
            "station": station,
            "channel": f"HH{comp}",
            "sampling_rate": fs,
            "starttime": T0,
        }
        traces.append(Trace(data, header))
    return Stream(traces)


def refused(r, status: int, *words: str) -> str:
    """A refusal: its status and a JSON message naming ``words``."""
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word.lower() in detail.lower(), detail
    return detail


def assert_serves(client) -> None:
    """The service still classifies obspy's real event."""
    r = post(client, cer_bytes(), k=2)
    assert r.status_code == 200, r.text
    assert len(r.json()["stations"][0]["similar"]) == 2


def check_classification(station: dict, k: int) -> None:
    """Probabilities over the classes summing to 1, label the argmax, units, k results."""
    probs = station["probabilities"]
    assert list(probs) == list(CLASSES)
    assert abs(sum(probs.values()) - 1) < 1e-4 and all(0 <= p <= 1 for p in probs.values())
    assert station["label"] == max(probs, key=probs.get) and station["label"] in CLASSES
    assert station["distance_km"]["unit"] == "km" and station["depth_km"]["unit"] == "km"
    assert "magnitude" in station["magnitude"]["unit"]
    for key in ("distance_km", "depth_km", "magnitude"):
        assert np.isfinite(station[key]["value"])
    check_travel_time(station)
    similar = station["similar"]
    assert len(similar) == k and [s["rank"] for s in similar] == list(range(1, k + 1))
    scores = [s["score"] for s in similar]
    assert scores == sorted(scores, reverse=True) and all(-1.001 <= x <= 1.001 for x in scores)
    assert all(s["label"] in CLASSES and "trace_name" in s["metadata"] for s in similar)


def check_travel_time(station: dict) -> None:
    """The depth is the S − P depth exactly when the check applied, else the model's; an
    S pick lies after the window's P, inside the window; a reason iff not applied."""
    tt, depth = station["travel_time"], station["depth_km"]
    assert tt["applied"] == (tt["reason"] is None)
    if tt["applied"]:
        assert depth["method"] == "s_minus_p" and depth["value"] == tt["depth_km"]
        assert station["label"] == "earthquake" and station["distance_km"]["value"] <= 250
    else:
        assert depth["method"] == "heads" and depth["value"] == tt["model_depth_km"]
    probable = max(station["probabilities"], key=station["probabilities"].get)
    if tt["relabelled_from"] is not None:  # too deep for an explosion: an earthquake
        assert tt["applied"] and tt["relabelled_from"] == probable == "explosion"
        assert station["label"] == "earthquake" and tt["depth_km"] >= 60
    else:
        assert station["label"] == probable
    window = station["window"]
    if tt["s_pick"] is not None:
        s_time = UTCDateTime(tt["s_pick"]["s_time"])
        assert UTCDateTime(window["p_time"]) < s_time < UTCDateTime(window["end"])
        assert tt["s_pick"]["s_minus_p_s"] == pytest.approx(
            s_time - UTCDateTime(window["p_time"]), abs=0.02
        )
    elif window["p_time"] is None:
        assert tt["reason"] == "no P pick in the window"


# --------------------------------------------------------------------------- bundle


def test_bundle_reports_the_event_branch(event_client, tiny_event_bundle):
    body = event_client.get("/v1/bundle").json()
    manifest = read_manifest(tiny_event_bundle.bundle)
    events = body["events"]
    assert body["events_unavailable"] is None
    assert events["classes"] == list(CLASSES) and events["embed_dim"] == 256
    for key in ("spectrum", "info", "heads"):
        expected = manifest.events.encoders[key].sha256
        assert events["encoders"][key]["sha256"] == expected
    assert events["targets"]["distance"] == "km"
    assert events["execution_provider"] == "CPUExecutionProvider"
    index = events["index"]
    entry = manifest.indexes["events"]
    assert index["count"] == entry.count == 48 and index["kind"] == "flat"
    assert index["per_class"] == entry.model_extra["per_class"]
    assert index["encoder_sha256"] == manifest.events.encoders["spectrum"].sha256
    assert index["gpu_index"] is False and events["index_problem"] is None
    assert body["index"]["count"] == 24  # the velocity branch is still served
    text = event_client.get("/metrics").text
    assert 'seislens_library_items{branch="events"} 48.0' in text


def test_bundle_without_events_serves_velocity_and_says_so(client, sample):
    body = client.get("/v1/bundle").json()
    assert body["events"] is None and "no event encoders" in body["events_unavailable"]
    for path in (CLASSIFY, SEARCH):
        refused(post(client, cer_bytes(), path), 404, "this bundle has no event encoders")
    from service_helpers import assert_serves as assert_velocity_serves

    assert_velocity_serves(client, sample)


@pytest.mark.parametrize("problem", ["missing", "other_encoder", "damaged"])
def test_events_index_unusable_classification_still_served(
    make_client, tiny_event_bundle, tmp_path, problem
):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_event_bundle.bundle, bundle)
    manifest = read_manifest(bundle)
    indexes = dict(manifest.indexes)
    if problem == "missing":
        del indexes["events"]
    elif problem == "other_encoder":  # an export after the last index build
        indexes["events"] = indexes["events"].model_copy(update={"encoder_sha256": "0" * 64})
    else:
        (bundle / indexes["events"].path / "vectors.faiss").write_bytes(b"x")
    write_manifest(bundle, manifest.model_copy(update={"indexes": indexes}))
    c = make_client(bundle=bundle)
    r = post(c, cer_bytes(), k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stations"][0]["similar"] == [] and body["query"]["library_events"] == 0
    assert any("no similar events" in note for note in body["query"]["notes"])
    check_classification({**body["stations"][0], "similar": []}, 0)
    refused(post(c, cer_bytes(), SEARCH), 503, "similar-event search is unavailable")
    info = c.get("/v1/bundle").json()["events"]
    assert info["index"] is None and info["index_problem"]


def test_tampered_event_encoder_refuses_the_bundle(tiny_event_bundle, tmp_path, event_settings):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_event_bundle.bundle, bundle)
    heads = json.loads((bundle / "manifest.json").read_text())["events"]["encoders"]["heads"]
    with open(bundle / heads["file"], "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="events/heads"):
        load_bundle(bundle, event_settings)


# --------------------------------------------------------------------------- classify


def test_classify_obspy_real_local_event(event_client):
    r = post(event_client, cer_bytes(), k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    query = body["query"]
    assert query["format"] == "mseed" and query["traces"] == 3 and query["k"] == 5
    assert query["stations_in_file"] == [".CER"] and query["library_events"] == 48
    assert set(query["timing"]) == {
        "read_ms",
        "preprocess_ms",
        "embed_ms",
        "classify_ms",
        "search_ms",
        "total_ms",
    }
    assert body["skipped"] == []
    [station] = body["stations"]
    assert station["station"] == ".CER"
    assert station["channels"] == [".CER.00.BHZ", ".CER.00.BHN", ".CER.00.BHE"]
    window = station["window"]
    assert window["rule"] in ("sta_lta", "start") and window["seconds"] == 60
    assert window["input_sampling_rate_hz"] == 150.0 and window["padded_s"] == 0
    start, end = UTCDateTime(window["start"]), UTCDateTime(window["end"])
    assert end - start == pytest.approx(60.0)
    assert UTCDateTime("2005-07-23T14:52:04") <= start and end <= UTCDateTime("2005-07-23T14:53:15")
    check_classification(station, 5)
    # the spreads are the similar events' own: recompute them from the answer
    for key in ("distance_km", "depth_km", "magnitude"):
        values = [
            e["metadata"][key]
            for e in station["similar"]
            if isinstance(e["metadata"].get(key), int | float)
        ]
        spread = station[key]["spread"]
        if len(values) >= 2:
            assert spread == pytest.approx(float(np.std(values)), abs=2e-3)
        else:
            assert spread is None
    assert any(station[k]["spread"] is not None for k in ("distance_km", "magnitude"))


def test_search_shares_the_classify_path(event_client):
    classified = post(event_client, cer_bytes(), k=4).json()["stations"][0]
    r = post(event_client, cer_bytes(), SEARCH, k=4)
    assert r.status_code == 200, r.text
    [station] = r.json()["stations"]
    assert "probabilities" not in station and station["window"] == classified["window"]
    assert [s["id"] for s in station["similar"]] == [s["id"] for s in classified["similar"]]
    assert r.json()["query"]["timing"]["classify_ms"] < 1.0


def test_p_arrival_aligns_the_window(event_client):
    p = UTCDateTime("2005-07-23T14:52:15")
    r = post(event_client, cer_bytes(), p_arrival=str(p), k=1)
    assert r.status_code == 200, r.text
    window = r.json()["stations"][0]["window"]
    assert window["rule"] == "p_arrival" and window["p_offset_s"] == pytest.approx(5.0)
    assert UTCDateTime(window["p_time"]) == p
    assert UTCDateTime(window["start"]) == p - 5
    assert r.json()["query"]["p_arrival"] == str(p)


def test_dataset_trace_written_by_obspy_finds_itself(event_client, tiny_event_bundle):
    """A library trace written to miniSEED by obspy and uploaded with its catalogued P
    gets the indexed window back: its own library entry comes first."""
    ds = EventDataset(tiny_event_bundle.events, split="train")
    i = next(
        j
        for j in range(len(ds))
        if ds.labels[j] == "earthquake" and ds.p_arrival_sample(j) is not None
    )
    rate = ds.sampling_rate(i)
    wave = np.asarray(ds.waveform(i), dtype=np.float32)
    stream = Stream(
        [
            Trace(
                wave[c],
                {
                    "network": "SY",
                    "station": "TEST",
                    "channel": f"HH{comp}",
                    "sampling_rate": rate,
                    "starttime": T0,
                },
            )
            for c, comp in enumerate("ZNE")
        ]
    )
    p_time = T0 + ds.p_arrival_sample(i) / rate
    r = post(event_client, mseed(stream), p_arrival=str(p_time), k=3)
    assert r.status_code == 200, r.text
    [station] = r.json()["stations"]
    assert station["station"] == "SY.TEST" and station["window"]["rule"] == "p_arrival"
    check_classification(station, 3)
    top = station["similar"][0]
    assert top["metadata"]["trace_name"] == str(ds.metadata.iloc[i]["trace_name"])
    assert top["score"] > 0.999 and top["label"] == "earthquake"


def test_synthetic_record_written_by_obspy(event_client):
    r = post(event_client, mseed(synthetic()), k=10)
    assert r.status_code == 200, r.text
    [station] = r.json()["stations"]
    assert station["station"] == "XX.STA" and station["window"]["rule"] in ("sta_lta", "start")
    check_classification(station, 10)


def test_k_defaults_and_form_fields(event_client):
    body = post(event_client, cer_bytes()).json()
    assert body["query"]["k"] == 10 and len(body["stations"][0]["similar"]) == 10
    r = post(event_client, cer_bytes(), form={"k": "3", "station": "CER", "p_arrival": ""})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["station"] == "CER" and body["query"]["p_arrival"] is None
    assert len(body["stations"][0]["similar"]) == 3


def as_int32(stream: Stream) -> Stream:
    """Integer counts, the encoding of obspy's CER file (one encoding per file)."""
    for trace in stream:
        trace.data = np.round(trace.data * 100).astype(np.int32)
    return stream


def test_multi_station_file_skips_unusable_stations(event_client):
    stream = obspy.read(str(CER)) + as_int32(synthetic(comps="Z", station="ONE"))
    r = post(event_client, mseed(stream), k=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["stations_in_file"] == [".CER", "XX.ONE"]
    assert [s["station"] for s in body["stations"]] == [".CER"]
    [skipped] = body["skipped"]
    assert skipped["station"] == "XX.ONE" and "3 components" in skipped["reason"]
    # asked for by name, the unusable station is the request's refusal
    refused(post(event_client, mseed(stream), station="XX.ONE"), 422, "3 components")
    two = obspy.read(str(CER)) + as_int32(synthetic(station="TWO"))
    body = post(event_client, mseed(two), k=1).json()
    assert [s["station"] for s in body["stations"]] == [".CER", "XX.TWO"]


def test_openapi_documents_the_event_routes(event_client):
    doc = event_client.get("/openapi.json").json()
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    assert {"classify_events", "search_events"} <= set(ops)
    for name in ("classify_events", "search_events"):
        op = ops[name]
        assert {p["name"] for p in op["parameters"]} == {"station", "p_arrival", "k"}
        ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        body = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(body["properties"]) == {"file", "station", "p_arrival", "k"}
        assert body["required"] == ["file"]
        assert {"404", "413", "422"} <= set(op["responses"])
    assert "503" in ops["search_events"]["responses"]


# --------------------------------------------------------------------------- bad input


def test_not_miniseed(event_client):
    text = b"This is not seismic data, just a note about it.\n" * 200
    refused(post(event_client, text), 422, "not a readable miniSEED")
    refused(post(event_client, np.arange(5000, dtype=np.float32).tobytes()), 422, "miniSEED")
    assert_serves(event_client)


def test_other_format_is_named(event_client):
    buffer = io.BytesIO()
    synthetic().select(component="Z")[0].write(buffer, format="SAC")
    refused(post(event_client, buffer.getvalue()), 422, "not a readable miniSEED", "SAC")
    assert_serves(event_client)


def test_empty_file(event_client):
    refused(post(event_client, b""), 422, "empty", "0 bytes")
    assert_serves(event_client)


def test_one_component_only(event_client):
    z_only = obspy.read(str(CER)).select(component="Z")
    refused(post(event_client, mseed(z_only)), 422, "3 components are needed", "BHZ")
    assert_serves(event_client)


def test_traces_shorter_than_the_window(event_client):
    # obspy's default example: 30 s of BW.RJOB, 3 components
    refused(post(event_client, mseed(obspy.read())), 422, "30.00 s", "the window needs 60 s")
    refused(post(event_client, mseed(synthetic(seconds=59.0))), 422, "the window needs 60 s")
    assert_serves(event_client)


def test_mismatched_sampling_rates(event_client):
    stream = synthetic(rates={"N": 50.0})
    refused(post(event_client, mseed(stream)), 422, "different sampling rates", "50.0 Hz")
    assert_serves(event_client)


def test_station_not_in_the_file(event_client):
    refused(post(event_client, cer_bytes(), station="FUR"), 422, "'FUR' is not in the file")
    refused(post(event_client, cer_bytes(), form={"station": "BW.FUR"}), 422, "not in the file")
    assert_serves(event_client)


def test_gap_longer_than_the_limit(event_client):
    limit = event_client.get("/v1/bundle").json()["events"]["preprocessing"]["max_gap_s"]
    stream = synthetic()
    z = stream.select(component="Z")[0]
    first, second = z.slice(T0, T0 + 30), z.slice(T0 + 30 + limit + 4, T0 + 90)
    stream.remove(z)
    stream += Stream([first, second])
    refused(post(event_client, mseed(stream)), 422, "gap of", f"longer than {limit} s")
    # a gap within the limit is filled
    stream = synthetic()
    z = stream.select(component="Z")[0]
    short = Stream([z.slice(T0, T0 + 30), z.slice(T0 + 30 + limit / 2, T0 + 90)])
    stream.remove(z)
    r = post(event_client, mseed(stream + short))
    assert r.status_code == 200, r.text
    assert_serves(event_client)


def test_p_arrival_outside_the_data(event_client):
    refused(
        post(event_client, cer_bytes(), p_arrival="2005-07-23T15:30:00"),
        422,
        "p_arrival",
        "outside the data",
    )
    assert_serves(event_client)


def test_p_arrival_not_a_time(event_client):
    r = post(event_client, cer_bytes(), p_arrival="yesterday")
    refused(r, 422, "not a UTC time", "ISO 8601")
    assert r.json()["errors"][0]["loc"] == ["query", "p_arrival"]
    r = post(event_client, cer_bytes(), form={"p_arrival": "soon"})
    assert r.json()["errors"][0]["loc"] == ["body", "p_arrival"]
    assert_serves(event_client)


@pytest.mark.parametrize("fill", ["zeros", "nan"])
def test_all_zero_or_nan_data(event_client, fill):
    stream = synthetic()
    n = stream.select(component="N")[0]
    if fill == "zeros":
        n.data[:] = 0
        words = ("HHN", "all zeros")
    else:
        n.data[1000] = np.nan
        words = ("HHN", "NaN")
    refused(post(event_client, mseed(stream)), 422, *words)
    assert_serves(event_client)


def test_k_out_of_range_and_conflicting_parameters(event_client):
    refused(post(event_client, cer_bytes(), k=0), 422, "k")
    refused(post(event_client, cer_bytes(), k=101), 422, "less than or equal to 100")
    refused(post(event_client, cer_bytes(), form={"k": "500"}), 422, "k")
    r = post(event_client, cer_bytes(), form={"station": "CER"}, station="FUR")
    refused(r, 422, "given twice")
    assert_serves(event_client)


def test_missing_file(event_client):
    r = event_client.post(CLASSIFY, data={"station": "CER"})
    refused(r, 422, "file")
    assert_serves(event_client)


def test_upload_over_the_limit(make_client, tiny_event_bundle):
    c = make_client(bundle=tiny_event_bundle.bundle, max_upload_bytes=4096)
    refused(post(c, cer_bytes()), 413, "too large")
    r = post(c, mseed(synthetic(seconds=61.0, rate=20.0))[:4096])
    assert r.status_code in (200, 422), r.text  # within the limit: read (maybe refused)
    text = c.get("/metrics").text
    assert 'seislens_uploads_rejected_total{reason="too_large"} 1.0' in text


def test_rejections_and_stages_are_counted(make_client, tiny_event_bundle):
    c = make_client(bundle=tiny_event_bundle.bundle)
    post(c, b"not miniseed at all" * 20)
    post(c, mseed(obspy.read()))
    assert post(c, cer_bytes()).status_code == 200
    text = c.get("/metrics").text
    assert 'seislens_uploads_rejected_total{reason="unknown_format"} 1.0' in text
    assert 'seislens_uploads_rejected_total{reason="too_short"} 1.0' in text
    for stage in ("read", "preprocess", "embed", "classify", "search"):
        assert f'seislens_event_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    assert (
        'seislens_http_requests_total{method="POST",route="/v1/events/classify",status="422"} 2.0'
        in text
    )
    json.loads(c.get("/openapi.json").text)


def test_reload_adds_and_removes_the_event_branch(make_client, tiny_bundle, tiny_event_bundle):
    from service_helpers import ADMIN_TOKEN

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    c = make_client()  # the velocity-only bundle
    refused(post(c, cer_bytes()), 404, "no event encoders")
    r = c.post("/v1/admin/reload", json={"bundle": str(tiny_event_bundle.bundle)}, headers=auth)
    assert r.status_code == 200, r.text
    assert_serves(c)
    assert 'seislens_library_items{branch="events"} 48.0' in c.get("/metrics").text
    r = c.post("/v1/admin/reload", json={"bundle": str(tiny_bundle)}, headers=auth)
    assert r.status_code == 200, r.text
    refused(post(c, cer_bytes()), 404, "no event encoders")


def test_web_page_has_the_event_form(event_client):
    page = event_client.get("/").text
    assert "v1/events/classify" in page and 'id="eform"' in page


def test_too_many_stations_without_a_station_asked_for(make_client, tiny_event_bundle):
    c = make_client(bundle=tiny_event_bundle.bundle, max_event_stations=1)
    two = obspy.read(str(CER)) + as_int32(synthetic(station="TWO"))
    refused(post(c, mseed(two)), 422, "2 stations", "at most 1", "XX.TWO")
    r = post(c, mseed(two), station="TWO", k=1)
    assert r.status_code == 200 and r.json()["stations"][0]["station"] == "XX.TWO"
