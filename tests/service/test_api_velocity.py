"""Velocity routes through TestClient on the tiny bundle: search, models, estimates."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from seislens.data.gather_files import write_su
from seislens.models.descriptors import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from seislens.models.estimation import neighbour_estimate, similarity_weights, weighted_mean_std
from seislens.service.estimation import Estimate, EstimateStore
from service_helpers import npy_bytes, search


def test_segy_search_finds_the_gathers_own_model(client, sample):
    r = search(client, sample.segy, k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    results = body["results"]
    assert [m["rank"] for m in results] == [1, 2, 3, 4, 5]
    assert results[0]["id"] == sample.model_id
    assert results[0]["family"] == sample.family
    scores = [m["score"] for m in results]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    assert set(results[0]["descriptors"]) == set(DESCRIPTOR_NAMES)
    assert results[0]["model_url"].endswith(f"/v1/velocity/models/{sample.model_id}")
    query = body["query"]
    assert query["format"] == "segy" and query["traces"] == 350 and query["k"] == 5
    assert query["source_dt_ms"] == 1.0 and query["family"] is None
    assert query["timing"]["total_ms"] > 0


def test_inferred_descriptors_are_weighted_over_the_top_k(client, sample):
    body = search(client, sample.segy, k=8).json()
    inferred = body["inferred_descriptors"]
    assert set(inferred) == set(DESCRIPTOR_NAMES)
    for name, est in inferred.items():
        values = [m["descriptors"][name] for m in body["results"]]
        assert min(values) - 1e-6 <= est["mean"] <= max(values) + 1e-6
        assert est["std"] >= 0 and est["unit"] == DESCRIPTOR_UNITS[name]
    # the same numbers as the evaluation's estimator (seislens.models.estimation)
    scores = np.array([[m["score"] for m in body["results"]]])
    values = np.array([[m["descriptors"][n] for n in DESCRIPTOR_NAMES] for m in body["results"]])
    mean, std = neighbour_estimate(scores, np.arange(8)[None], values, temperature=0.05)
    got = np.array([inferred[n]["mean"] for n in DESCRIPTOR_NAMES])
    assert np.allclose(got, mean[0], rtol=1e-4, atol=1e-4)
    assert np.allclose([inferred[n]["neighbour_std"] for n in DESCRIPTOR_NAMES], std[0], atol=1e-3)


def test_estimated_model_is_served_by_link(client, sample):
    body = search(client, sample.segy, k=4).json()
    est = body["estimated_model"]
    assert est["shape"] == [70, 70] and est["unit"] == "m/s" and est["neighbours"] == 4
    assert est["method"] == "similarity-weighted mean of top-k"
    as_json = client.get(est["url"]).json()
    velocity = np.array(as_json["velocity"])
    assert velocity.shape == (70, 70)
    assert as_json["neighbours"] == [m["id"] for m in body["results"]]
    assert abs(sum(as_json["weights"]) - 1) < 1e-4
    models = [
        np.load(io.BytesIO(client.get(m["model_url"], params={"format": "npy"}).content))
        for m in body["results"]
    ]
    assert np.stack(models).min(0).min() - 0.5 <= velocity.min()
    assert velocity.max() <= np.stack(models).max() + 0.5
    npy = client.get(est["url"], params={"format": "npy"})
    assert npy.headers["content-type"] == "application/octet-stream"
    assert np.allclose(np.load(io.BytesIO(npy.content)), velocity, atol=0.06)
    png = client.get(est["url"], params={"format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_su_and_npy_uploads_find_the_same_model(client, sample, tmp_path):
    su = tmp_path / "g.su"
    write_su(su, sample.gather)
    for name, data in (("g.su", su.read_bytes()), ("g.npy", npy_bytes(sample.gather))):
        r = search(client, data, name, k=3)
        assert r.status_code == 200, r.text
        assert r.json()["query"]["format"] == name.split(".")[1]
        assert r.json()["results"][0]["id"] == sample.model_id


def test_family_filter_and_default_k(client, sample):
    r = search(client, sample.segy, family="curvefault-b")
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 10  # SEISLENS_DEFAULT_K
    assert {m["family"] for m in results} == {"curvefault-b"}
    mine = search(client, sample.segy, family=sample.family, k=100).json()["results"]
    assert len(mine) == 12 and mine[0]["id"] == sample.model_id  # the whole family


def test_library_model_as_json_npy_and_png(client, sample):
    url = f"/v1/velocity/models/{sample.model_id}"
    body = client.get(url).json()
    assert body["id"] == sample.model_id and body["family"] == sample.family
    assert body["shape"] == [70, 70] and body["unit"] == "m/s" and body["spacing_m"] == 10
    assert body["units"] == {n: DESCRIPTOR_UNITS[n] for n in body["descriptors"]}
    assert np.allclose(body["velocity"], sample.model, atol=2.5)  # stored as float16
    npy = client.get(url, params={"format": "npy"})
    array = np.load(io.BytesIO(npy.content), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (70, 70)
    assert np.allclose(array, sample.model.astype(np.float16))
    png = client.get(url, params={"format": "png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_estimates_are_bounded_lru(make_client, sample):
    c = make_client(estimate_cache_size=2)
    urls = [search(c, sample.segy, k=2).json()["estimated_model"]["url"] for _ in range(3)]
    assert c.get(urls[0]).status_code == 404
    assert "2 most recent" in c.get(urls[0]).json()["detail"]
    assert all(c.get(u).status_code == 200 for u in urls[1:])


def test_estimate_store_drops_least_recently_used():
    store = EstimateStore(2)
    make = lambda q: Estimate(q, np.zeros((70, 70), np.float32), [0], [1.0], "b", 0.05)  # noqa: E731
    store.put(make("a"))
    store.put(make("b"))
    assert store.get("a") is not None  # a is now the most recently used
    store.put(make("c"))
    assert store.get("b") is None and store.get("a") is not None and len(store) == 2


def test_served_estimate_is_the_evaluations_estimate(client, sample, tiny_bundle):
    """The evaluation's path (bundle opened by the pipeline, batched estimator over the
    library's models) gives the served estimated model on the same neighbours."""
    from seislens.pipeline import open_branch

    body = search(client, sample.segy, k=6).json()
    served = np.load(
        io.BytesIO(client.get(body["estimated_model"]["url"], params={"format": "npy"}).content)
    )
    with open_branch(tiny_bundle, "velocity", need_library=True) as opened:
        scores, ids = opened.library.search(opened.embedder.embed_gathers(sample.gather[None]), 6)
        assert ids[0].tolist() == [m["id"] for m in body["results"]]
        mean, _ = neighbour_estimate(scores, ids, opened.library.array("models"), 0.05)
    np.testing.assert_allclose(served, mean[0].astype(np.float32), atol=1e-3)


def test_similarity_weights_and_weighted_moments():
    w = similarity_weights(np.array([0.9, 0.85, 0.5]), temperature=0.05)
    assert np.isclose(w.sum(), 1) and w[0] > w[1] > w[2]
    assert np.isclose(w[1] / w[0], np.exp(-1))
    mean, std = weighted_mean_std(np.array([[1.0], [3.0]]), np.array([0.5, 0.5]))
    assert np.allclose(mean, [2.0]) and np.allclose(std, [1.0])
    with pytest.raises(ValueError, match="temperature"):
        similarity_weights(np.array([0.5]), 0)


def test_search_work_does_not_block_the_event_loop(make_client, sample, monkeypatch):
    from seislens.service import routes_velocity

    real = routes_velocity.search_gather

    def slow_search(*args, **kwargs):
        time.sleep(3.0)  # stands for a heavy embedding
        return real(*args, **kwargs)

    monkeypatch.setattr(routes_velocity, "search_gather", slow_search)
    c = make_client()
    worker = threading.Thread(target=lambda: search(c, sample.segy, k=2))
    worker.start()
    try:
        time.sleep(0.3)  # the search is now inside slow_search
        t0 = time.perf_counter()
        status = c.get("/healthz").status_code
        elapsed = time.perf_counter() - t0
    finally:  # never leave the request in flight: the client's teardown would wait on it
        worker.join(timeout=30)
    assert status == 200
    assert elapsed < 1.5  # a blocked loop would wait out the remaining 2.7 s
