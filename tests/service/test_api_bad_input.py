"""Bad input, one test each: a 4xx with a message, never a 500, and the service keeps
answering good queries afterwards."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import numpy as np
import pytest
from seislens.service.uploads import MULTIPART_ALLOWANCE
from service_helpers import (
    ADMIN_TOKEN,
    assert_serves,
    metric_value,
    npy_bytes,
    search,
    segy_bytes,
)


def _refused(r, status: int, *words: str) -> str:
    """Check a refusal: its status, a JSON message naming ``words``."""
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    assert re.fullmatch(r"[a-z_]+", r.json()["reason"]), r.json()
    for word in words:
        assert word.lower() in detail.lower(), detail
    return detail


# --------------------------------------------------------------------------- uploads


def test_empty_file(client, sample):
    _refused(search(client, b"", "empty.sgy"), 422, "empty", "0 bytes")
    assert_serves(client, sample)


def test_truncated_segy(client, sample):
    _refused(search(client, sample.segy[:-1000], "cut.sgy"), 422, "truncated")
    assert_serves(client, sample)


def test_segy_with_zero_traces(client, sample):
    _refused(search(client, sample.segy[:3600], "headers.sgy"), 422, "0 traces")
    assert_serves(client, sample)


def test_text_file_renamed_sgy(client, sample):
    text = b"This is not seismic data, just a note about it.\n" * 200
    _refused(search(client, text, "notes.sgy"), 422, "not a readable SEG-Y", "text")
    assert_serves(client, sample)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_samples(client, sample, tmp_path, bad):
    gather = sample.gather.copy()
    gather[2, 500, 30] = bad
    _refused(search(client, npy_bytes(gather), "bad.npy"), 422, "expected finite")
    _refused(search(client, segy_bytes(gather, tmp_path), "bad.sgy"), 422, "expected finite")
    assert_serves(client, sample)


def test_wrong_shape_npy(client, sample):
    data = npy_bytes(np.ones((5, 999, 70), np.float32))
    _refused(search(client, data, "short.npy"), 422, "(5, 999, 70)", "expected (5, 1000, 70)")
    assert_serves(client, sample)


def test_pickle_bearing_npy(client, sample):
    data = npy_bytes(np.array([{"rm -rf": "/"}], dtype=object), allow_pickle=True)
    _refused(search(client, data, "evil.npy"), 422, "pickled")
    assert_serves(client, sample)


def test_missing_file_field(client, sample):
    r = client.post("/v1/velocity/search", data={"other": "x"})
    assert _refused(r, 422, "file")
    assert r.json()["errors"][0]["loc"] == ["body", "file"]
    assert_serves(client, sample)


# --------------------------------------------------------------------------- size limit


LIMIT = 1_000_000  # bytes: the 1.49 MB float SEG-Y is over it, an int16 one (0.79 MB) under


def _small_segy(sample, tmp_path) -> bytes:
    """The sample as a 16-bit integer SEG-Y (scaled: the preprocessing ignores scale)."""
    gather = sample.gather * (30_000 / np.abs(sample.gather).max())
    data = segy_bytes(gather, tmp_path, sample_format=3)
    assert len(data) < LIMIT
    return data


def test_upload_over_the_limit_by_content_length(make_client, sample, tmp_path):
    c = make_client(max_upload_bytes=LIMIT)
    _refused(search(c, sample.segy), 413, "too large", f"{LIMIT} bytes")
    # a file over the limit by less than the multipart allowance: caught while copying
    _refused(search(c, b"\0" * (LIMIT + 10), "g.npy"), 413, "too large")
    assert metric_value(c, 'seislens_uploads_rejected_total{reason="too_large"}') == 2
    r = search(c, _small_segy(sample, tmp_path), k=3)
    assert r.status_code == 200 and r.json()["results"][0]["id"] == sample.model_id


def test_upload_over_the_limit_is_refused_while_streaming(make_client, sample, tmp_path):
    """A chunked body with no Content-Length: the 413 comes after the limit is passed,
    long before the body ends."""
    c = make_client(max_upload_bytes=LIMIT)
    boundary = b"seislens-test-boundary"
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.sgy"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    chunks = [head] + [b"\1" * 8192] * 1000 + [b"\r\n--" + boundary + b"--\r\n"]
    pulled = 0

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": True}
        return {"type": "http.request", "body": b"", "more_body": False}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/velocity/search",
        "raw_path": b"/v1/velocity/search",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"multipart/form-data; boundary=" + boundary),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 12345),
        "server": ("testserver", 80),
    }
    asyncio.run(c.app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"too large" in b"".join(m.get("body", b"") for m in sent[1:])
    limit_chunks = (LIMIT + MULTIPART_ALLOWANCE) // 8192 + 2
    assert pulled <= limit_chunks < len(chunks)
    r = search(c, _small_segy(sample, tmp_path), k=3)
    assert r.status_code == 200 and r.json()["results"][0]["id"] == sample.model_id


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("k", ["0", "101", "-3", "ten"])
def test_k_out_of_range(client, sample, k):
    r = search(client, sample.segy, k=k)
    _refused(r, 422, "k")
    assert r.json()["errors"][0]["loc"] == ["query", "k"]
    assert_serves(client, sample)


def test_unknown_family(client, sample):
    detail = _refused(search(client, sample.segy, family="flatvel-z"), 422, "unknown family")
    assert "curvefault-b" in detail and "flatvel-a" in detail
    assert_serves(client, sample)


def test_unknown_model_id(client, sample):
    _refused(client.get("/v1/velocity/models/999999"), 404, "no velocity model with id 999999")
    _refused(client.get("/v1/velocity/models/-1"), 422, "model_id")
    _refused(client.get("/v1/velocity/models/abc"), 422, "model_id")
    assert_serves(client, sample)


def test_unknown_estimate_and_format(client, sample):
    _refused(client.get("/v1/velocity/estimates/deadbeef"), 404, "no estimate")
    r = client.get(f"/v1/velocity/models/{sample.model_id}", params={"format": "tiff"})
    _refused(r, 422, "format")
    assert_serves(client, sample)


# --------------------------------------------------------------------------- admin


def test_reload_without_token(client, sample):
    r = client.post("/v1/admin/reload")
    _refused(r, 401, "bearer token")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_serves(client, sample)


def test_reload_with_wrong_token(client, sample):
    r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer nope"})
    _refused(r, 403, "invalid admin token")
    assert_serves(client, sample)


def test_reload_disabled_without_configured_token(make_client, sample):
    c = make_client(admin_token=None)
    r = c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    _refused(r, 404, "disabled", "SEISLENS_ADMIN_TOKEN")
    assert_serves(c, sample)


def test_reload_to_bundle_whose_index_mismatches_its_encoder(
    make_client, sample, tiny_bundle, tmp_path
):
    bad = tmp_path / "mismatched"
    shutil.copytree(tiny_bundle, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["indexes"]["velocity"]["encoder_sha256"] = "0" * 64  # built by another encoder
    (bad / "manifest.json").write_text(json.dumps(manifest))
    c = make_client()
    r = c.post("/v1/admin/reload", json={"bundle": str(bad)}, headers=_auth())
    _refused(r, 409, "bundle refused", "still serving", "rebuild the index")
    assert c.get("/v1/bundle", headers=_auth()).json()["path"] == str(tiny_bundle)
    assert metric_value(c, 'seislens_bundle_reloads_total{outcome="refused"}') == 1
    assert_serves(c, sample)


def test_reload_to_missing_or_broken_bundle(make_client, sample, tiny_bundle, tmp_path):
    c = make_client()
    r = c.post("/v1/admin/reload", json={"bundle": str(tmp_path / "nowhere")}, headers=_auth())
    _refused(r, 409, "does not exist")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    seismic = json.loads((broken / "manifest.json").read_text())["velocity"]["encoders"]["seismic"]
    (broken / seismic["file"]).write_bytes(b"not onnx")
    _refused(
        c.post("/v1/admin/reload", json={"bundle": str(broken)}, headers=_auth()),
        409,
        "does not match the hash",
    )
    malformed = tmp_path / "malformed"
    shutil.copytree(tiny_bundle, malformed)
    manifest = json.loads((malformed / "manifest.json").read_text())
    manifest["velocity"]["encoders"] = "oops"
    (malformed / "manifest.json").write_text(json.dumps(manifest))
    r = c.post("/v1/admin/reload", json={"bundle": str(malformed)}, headers=_auth())
    _refused(r, 409, "bundle refused", "field 'velocity.encoders'")
    _refused(c.post("/v1/admin/reload", json={"bundel": "x"}, headers=_auth()), 422, "bundel")
    assert_serves(c, sample)


def test_reload_outside_bundle_root(make_client, sample, tiny_bundle):
    c = make_client(bundle_root=tiny_bundle.parent)
    r = c.post("/v1/admin/reload", json={"bundle": "../../etc"}, headers=_auth())
    _refused(r, 422, "outside the bundle root")
    assert_serves(c, sample)


# --------------------------------------------------------------------------- helpers


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
