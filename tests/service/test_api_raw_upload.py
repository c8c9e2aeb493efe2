"""The gather search takes the file as a raw application/octet-stream body too: the same
answers, readers, limits and errors as the multipart upload."""

from __future__ import annotations

import numpy as np
from service_helpers import npy_bytes, search

SEARCH = "/v1/velocity/search"
RAW = {"content-type": "application/octet-stream"}


def raw_search(client, data: bytes, **params):
    """POST ``data`` as the whole body of a gather search."""
    return client.post(SEARCH, content=data, headers=RAW, params=params)


def _top(body: dict) -> list[tuple[int, float]]:
    return [(r["id"], r["score"]) for r in body["results"]]


def test_raw_segy_answers_as_the_multipart_upload(client, sample):
    multipart = search(client, sample.segy, k=5)
    raw = raw_search(client, sample.segy, k=5, filename="shot.sgy")
    assert multipart.status_code == raw.status_code == 200, raw.text
    assert _top(raw.json()) == _top(multipart.json())
    assert raw.json()["results"][0]["id"] == sample.model_id
    query = raw.json()["query"]
    assert (query["filename"], query["format"]) == ("shot.sgy", "segy")


def test_raw_body_without_a_filename_is_detected_from_its_content(client, sample):
    r = raw_search(client, sample.segy, k=3)
    assert r.status_code == 200, r.text
    assert r.json()["query"]["filename"] == "upload"
    assert r.json()["results"][0]["id"] == sample.model_id


def test_raw_npy_is_read(client, sample):
    r = raw_search(client, npy_bytes(sample.gather), k=3, filename="shot.npy")
    assert r.status_code == 200, r.text
    assert r.json()["query"]["format"] == "npy"
    assert r.json()["results"][0]["id"] == sample.model_id


def test_empty_raw_body_is_refused(client):
    r = raw_search(client, b"")
    assert r.status_code == 422
    assert r.json()["reason"] == "empty"


def test_no_body_says_what_is_expected(client):
    r = client.post(SEARCH)
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "missing_file"
    assert "multipart/form-data" in body["detail"]
    assert "application/octet-stream" in body["detail"]


def test_raw_body_over_the_limit_is_refused(make_client, sample):
    c = make_client(max_upload_bytes=4096)
    r = raw_search(c, sample.segy)
    assert r.status_code == 413
    assert r.json()["reason"] == "too_large"


def test_raw_body_over_the_limit_without_content_length_is_refused(make_client, sample):
    c = make_client(max_upload_bytes=4096)
    chunks = (sample.segy[i : i + 1000] for i in range(0, len(sample.segy), 1000))
    r = c.post(SEARCH, content=chunks, headers=RAW)
    assert r.status_code == 413
    assert r.json()["reason"] == "too_large"


def test_another_content_type_names_the_accepted_ones(client, sample):
    r = client.post(SEARCH, content=sample.segy, headers={"content-type": "text/plain"})
    assert r.status_code == 415
    body = r.json()
    assert body["reason"] == "unsupported_media_type"
    assert "multipart/form-data" in body["detail"]
    assert "application/octet-stream" in body["detail"]


def test_pickled_raw_npy_is_refused(client):
    pickled = npy_bytes(np.array([{}], dtype=object), allow_pickle=True)
    r = raw_search(client, pickled, filename="shot.npy")
    assert r.status_code == 422
    assert r.json()["reason"] == "pickle"


def test_openapi_documents_both_body_types(client):
    op = client.get("/openapi.json").json()["paths"][SEARCH]["post"]
    content = op["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(content)
    assert "filename" in {p["name"] for p in op["parameters"]}
