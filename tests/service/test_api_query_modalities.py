"""Queries by velocity model and by descriptors, and embeddings out (``/v1/embed``), on
the committed fixture bundle, with serving-side code only (no torch)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from obspy import Stream
from seislens.index.bundle import read_manifest
from seislens.models.branches import BRANCHES, EVENTS, VELOCITY
from seislens.models.descriptors import DESCRIPTOR_NAMES, compute_descriptors
from seislens.models.event_preprocess import stream_to_windows
from seislens.service.embedding_modalities import MODALITIES
from seislens.service.event_search import warm_up_stream
from service_helpers import npy_bytes

BY_MODEL = "/v1/velocity/search/by-model"
BY_DESCRIPTORS = "/v1/velocity/search/by-descriptors"


def _descriptors(model: np.ndarray) -> dict[str, float]:
    return dict(zip(DESCRIPTOR_NAMES, compute_descriptors(model[None])[0].tolist(), strict=True))


def _embedder(bundle, branch):
    manifest = read_manifest(bundle)
    return branch.build_embedder(bundle, manifest.section(branch.name), ["CPUExecutionProvider"], 1)


def _velocity_branch(client):
    return client.app.state.holder.current.branches[VELOCITY.name]


def _library_descriptors(client) -> dict[int, dict[str, float]]:
    library = _velocity_branch(client).library
    return {r.id: r.descriptors for r in library.records(np.arange(len(library)))}


def _ids(response) -> list[int]:
    return [m["id"] for m in response.json()["results"]]


def _mseed(stream: Stream) -> bytes:
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED")
    return buffer.getvalue()


def _nan_json(key: str, value: object) -> dict:
    """A JSON body holding NaN (not valid strict JSON, but what Python clients send)."""
    return {"content": json.dumps({key: value}), "headers": {"content-type": "application/json"}}


# --------------------------------------------------------------------------- by model


def test_by_model_npy_finds_the_model_itself(client, sample):
    r = client.post(
        BY_MODEL, files={"file": ("model.npy", npy_bytes(sample.model))}, params={"k": 3}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"][0]["id"] == sample.model_id
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert body["query"]["format"] == "npy" and body["query"]["filename"] == "model.npy"
    assert body["results"][0]["family"] == sample.family
    assert set(body["results"][0]["descriptors"]) == set(DESCRIPTOR_NAMES)
    assert client.get(body["results"][0]["model_url"]).status_code == 200
    assert set(body["inferred_descriptors"]) == set(DESCRIPTOR_NAMES)
    estimate = client.get(body["estimated_model"]["url"])
    assert estimate.status_code == 200 and estimate.json()["neighbours"] == _ids(r)


def test_by_model_json_answers_as_the_npy_file(client, sample):
    as_file = client.post(BY_MODEL, files={"file": ("m.npy", npy_bytes(sample.model))})
    as_json = client.post(BY_MODEL, json={"velocity_model": sample.model.tolist()})
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["query"]["format"] == "json"
    assert as_json.json()["query"]["filename"] is None
    assert _ids(as_json) == _ids(as_file)


def test_by_model_takes_float64_and_a_leading_axis(client, sample):
    data = npy_bytes(sample.model[None].astype(np.float64))
    r = client.post(BY_MODEL, files={"file": ("m.npy", data)}, params={"k": 1})
    assert r.status_code == 200, r.text
    assert _ids(r) == [sample.model_id]
    assert "converted from float64 to float32" in r.json()["query"]["notes"]


def test_by_model_family_filter(client, sample):
    other = next(f for f in _velocity_branch(client).families if f != sample.family)
    r = client.post(
        BY_MODEL, json={"velocity_model": sample.model.tolist()}, params={"family": other}
    )
    assert r.status_code == 200, r.text
    assert {m["family"] for m in r.json()["results"]} == {other}


# --------------------------------------------------------------------------- by descriptors


def test_by_all_descriptors_embeds_and_finds_the_model(client, sample):
    wanted = _descriptors(sample.model)
    r = client.post(BY_DESCRIPTORS, json={"descriptors": wanted}, params={"k": 3})
    assert r.status_code == 200, r.text
    assert sample.model_id in _ids(r)
    query = r.json()["query"]
    assert query["method"] == "embedding"
    assert query["candidates"] == _velocity_branch(client).count


def test_by_descriptor_subset_ranks_by_distance(client, sample):
    own = _descriptors(sample.model)
    wanted = {"mean_velocity": own["mean_velocity"], "max_velocity": own["max_velocity"]}
    r = client.post(BY_DESCRIPTORS, json={"descriptors": wanted}, params={"k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["method"] == "distance"
    assert body["results"][0]["id"] == sample.model_id
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    scores = [m["score"] for m in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_tolerances_are_a_hard_filter(client, sample):
    own = _descriptors(sample.model)
    wanted = {"n_interfaces": own["n_interfaces"], "mean_velocity": own["mean_velocity"]}
    tolerances = {"n_interfaces": 0.0, "mean_velocity": 300.0}
    r = client.post(
        BY_DESCRIPTORS,
        json={"descriptors": wanted, "tolerances": tolerances},
        params={"k": 100},
    )
    assert r.status_code == 200, r.text
    inside = {
        i
        for i, d in _library_descriptors(client).items()
        if all(abs(d[n] - wanted[n]) <= tol for n, tol in tolerances.items())
    }
    assert set(_ids(r)) == inside and sample.model_id in inside
    assert r.json()["query"]["candidates"] == len(inside)
    assert r.json()["query"]["tolerances"] == tolerances


def test_all_descriptors_with_tolerances_rerank_the_filtered_models(client, sample):
    own = _descriptors(sample.model)
    r = client.post(
        BY_DESCRIPTORS,
        json={"descriptors": own, "tolerances": {"n_interfaces": 0}},
        params={"k": 100},
    )
    assert r.status_code == 200, r.text
    assert r.json()["query"]["method"] == "filter+embedding"
    assert {m["descriptors"]["n_interfaces"] for m in r.json()["results"]} == {own["n_interfaces"]}
    assert len(_ids(r)) == r.json()["query"]["candidates"]


def test_no_model_within_the_tolerances_answers_empty(client, sample):
    r = client.post(
        BY_DESCRIPTORS,
        json={"descriptors": {"mean_velocity": 99_999.0}, "tolerances": {"mean_velocity": 1.0}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [] and r.json()["estimated_model"] is None


@pytest.mark.parametrize(
    ("body", "reason", "loc"),
    [
        ({"descriptors": {"mean_speed": 1.0}}, "unknown_descriptor", "mean_speed"),
        ({"descriptors": {"fault_throw": 1.0}, "tolerances": {"x": 1}}, "unknown_descriptor", "x"),
        ({"descriptors": {"fault_throw": 1.0}, "tolerances": {"fault_throw": -1}},
         "bad_tolerance", "fault_throw"),
        ({"descriptors": {"fault_throw": 1.0}, "tolerances": {"n_interfaces": 1}},
         "tolerance_without_value", "n_interfaces"),
        ({"descriptors": {}}, "no_descriptors", "descriptors"),
    ],
)  # fmt: skip
def test_bad_descriptor_queries_name_the_field(client, body, reason, loc):
    r = client.post(BY_DESCRIPTORS, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == reason
    assert r.json()["errors"][0]["loc"][-1] == loc
    if reason == "unknown_descriptor":
        assert all(name in r.json()["detail"] for name in DESCRIPTOR_NAMES)


def test_non_finite_descriptor_is_refused(client):
    r = client.post(BY_DESCRIPTORS, **_nan_json("descriptors", {"mean_velocity": float("nan")}))
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "non_finite_descriptor"
    assert r.json()["errors"][0]["loc"] == ["body", "descriptors", "mean_velocity"]


# --------------------------------------------------------------------------- bad models


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        ("model.npy", npy_bytes(np.full((70, 69), 2000.0, np.float32)), "shape"),
        ("model.npy", npy_bytes(np.full((70, 70), np.nan, np.float32)), "non_finite"),
        ("model.npy", npy_bytes(np.array([{}], dtype=object), allow_pickle=True), "pickle"),
        ("model.npy", npy_bytes(np.full((70, 70), 2.5, np.float32)), "velocity_range"),
        ("notes.txt", b"velocity of the model: about 3 km/s\n" * 50, "unknown_format"),
        ("model.npy", b"", "empty"),
    ],
)
@pytest.mark.parametrize("path", [BY_MODEL, "/v1/embed/velocity"])
def test_bad_velocity_models_are_refused(client, path, filename, content, reason):
    r = client.post(path, files={"file": (filename, content)})
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == reason
    assert r.json()["errors"][0]["loc"] == ["body", "file"]


@pytest.mark.parametrize(
    ("rows", "reason"),
    [([[2500.0] * 70] * 69, "shape"), ([[2500.0] * 70] * 69 + [[2500.0] * 3], "shape")],
)
def test_bad_json_models_are_refused(client, rows, reason):
    r = client.post(BY_MODEL, json={"velocity_model": rows})
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == reason
    assert r.json()["errors"][0]["loc"] == ["body", "velocity_model"]
    nan = client.post(BY_MODEL, **_nan_json("velocity_model", [[float("nan")] * 70] * 70))
    assert nan.status_code == 422 and nan.json()["reason"] == "non_finite"


def test_other_content_types_are_refused(client):
    r = client.post(BY_MODEL, content=b"2500 2500", headers={"content-type": "text/plain"})
    assert r.status_code == 415, r.text
    assert r.json()["reason"] == "unsupported_media_type"


# --------------------------------------------------------------------------- embeddings


def _assert_embedding(body: dict, modality: str, expected: np.ndarray, bundle) -> None:
    vector = np.asarray(body["embedding"], dtype=np.float32)
    manifest = read_manifest(bundle)
    entry = MODALITIES[modality]
    assert body["dim"] == 256 == len(vector)
    assert body["modality"] == modality and body["encoder"] == entry.encoder
    section = manifest.section(entry.branch.name)
    assert body["encoder_sha256"] == section.encoders[entry.encoder].sha256
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_embed_gather_equals_the_embedder(client, sample, tiny_bundle):
    r = client.post("/v1/embed/gather", files={"file": ("gather.sgy", sample.segy)})
    assert r.status_code == 200, r.text
    expected = _embedder(tiny_bundle, VELOCITY).embed_gathers(sample.gather[None])[0]
    _assert_embedding(r.json(), "gather", expected, tiny_bundle)


def test_embed_velocity_equals_the_embedder(client, sample, tiny_bundle):
    r = client.post("/v1/embed/velocity", json={"velocity_model": sample.model.tolist()})
    assert r.status_code == 200, r.text
    expected = _embedder(tiny_bundle, VELOCITY).embed_velocity_models(sample.model[None])[0]
    _assert_embedding(r.json(), "velocity", expected, tiny_bundle)


def test_embed_descriptors_equals_the_embedder(client, sample, tiny_bundle):
    wanted = _descriptors(sample.model)
    r = client.post("/v1/embed/descriptors", json={"descriptors": wanted})
    assert r.status_code == 200, r.text
    vector = np.array([wanted[n] for n in DESCRIPTOR_NAMES], np.float32)
    expected = _embedder(tiny_bundle, VELOCITY).embed_descriptors(vector[None])[0]
    _assert_embedding(r.json(), "descriptors", expected, tiny_bundle)


def test_embed_descriptors_needs_all_nine(client):
    r = client.post("/v1/embed/descriptors", json={"descriptors": {"mean_velocity": 3000.0}})
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "incomplete_descriptors"
    assert "fault_throw" in r.json()["detail"]


def test_embed_recording_gives_one_embedding_per_station(event_client, tiny_event_bundle):
    stream = warm_up_stream()
    r = event_client.post("/v1/embed/recording", files={"file": ("event.mseed", _mseed(stream))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["station"] for s in body["stations"]] == ["XX.WARM"]
    embedder = _embedder(tiny_event_bundle.bundle, EVENTS)
    expected = embedder.embed_spectra(embedder.spectra(stream_to_windows(stream, embedder.pre)))
    station = body["stations"][0]
    _assert_embedding(
        {**body, "embedding": station["embedding"]},
        "recording",
        expected[0],
        tiny_event_bundle.bundle,
    )


def test_embed_recording_without_an_event_branch_is_404(client):
    r = client.post(
        "/v1/embed/recording", files={"file": ("event.mseed", _mseed(warm_up_stream()))}
    )
    assert r.status_code == 404 and r.json()["reason"] == "no_event_encoders"


@pytest.mark.parametrize("modality", ["spectrum", "model", "gathers"])
def test_unknown_modality_lists_the_accepted(client, modality):
    r = client.post(f"/v1/embed/{modality}", files={"file": ("x.npy", b"x")})
    assert r.status_code == 404, r.text
    assert r.json()["reason"] == "unknown_modality"
    assert all(name in r.json()["detail"] for name in MODALITIES)


def test_embed_gather_refuses_a_text_file(client):
    r = client.post("/v1/embed/gather", files={"file": ("notes.sgy", b"not a gather\n" * 300)})
    assert r.status_code == 422 and r.json()["reason"] == "unknown_format"


def test_every_branch_has_an_embeddable_modality():
    for modality in MODALITIES.values():
        assert modality.encoder in BRANCHES[modality.branch.name].encoders
    assert {m.branch.name for m in MODALITIES.values()} == set(BRANCHES)
    assert {m.encoder for m in MODALITIES.values() if m.branch is VELOCITY} == {
        VELOCITY.query_encoder,
        VELOCITY.library_encoder,
        "descriptor",
    }
