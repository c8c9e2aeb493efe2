"""The bundle, probes, metrics, OpenAPI document and reloads."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from seislens.index.builder import build
from seislens.index.bundle import BundleError, read_manifest, update_manifest
from seislens.models.branches import VELOCITY
from seislens.service.app import create_app
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, ReloadInProgressError, load_bundle
from service_helpers import ADMIN_TOKEN, assert_serves, search

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_bundle_summary(client, tiny_bundle):
    body = client.get("/v1/bundle").json()
    manifest = read_manifest(tiny_bundle)
    assert body["path"] is None and body["name"] == manifest.name  # paths: admin only
    assert body["embed_dim"] == 256
    for key in ("seismic", "velocity", "descriptor"):
        expected = manifest.velocity.encoders[key].sha256
        assert body["encoders"][key]["sha256"] == expected
    assert body["preprocessing"] == manifest.velocity.preprocessing
    assert body["training_metrics"]["epoch"] == 30
    index = body["index"]
    assert index["kind"] == "flat" and index["count"] == 24
    assert index["families"] == {"curvefault-b": 12, "flatvel-a": 12}
    assert index["encoder_sha256"] == manifest.velocity.encoders["velocity"].sha256
    runtime = body["runtime"]
    assert runtime["execution_provider"] == "CPUExecutionProvider"
    assert runtime["gpu_index"] is False and "PREFER_GPU" in runtime["gpu_index_reason"]
    assert runtime["onnx_threads"] == 1 and runtime["faiss_threads"] == 1


def test_probes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "bundle": "tiny", "models": 24}


def test_readyz_is_503_without_a_bundle(settings):
    app = create_app(settings)  # lifespan not run: nothing loaded
    with TestClient(app) as c:
        app.state.holder.close()
        r = c.get("/readyz")
        assert r.status_code == 503 and "not ready" in r.json()["detail"]
        r = c.get("/v1/bundle")
        assert r.status_code == 503 and "no bundle is loaded" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_metrics_count_requests_and_rejections(make_client, sample):
    c = make_client()
    search(c, sample.segy, k=2)
    search(c, b"", "empty.sgy")
    text = c.get("/metrics").text
    assert (
        'seislens_http_requests_total{method="POST",route="/v1/velocity/search",status="200"} 1.0'
        in text
    )
    assert 'seislens_uploads_rejected_total{reason="empty"} 1.0' in text
    assert 'seislens_http_request_duration_seconds_count{method="POST",' in text
    assert 'seislens_search_stage_seconds_count{stage="embed"} 1.0' in text
    assert 'seislens_library_items{branch="velocity"} 24.0' in text
    assert "process_resident_memory_bytes" in text


def test_openapi_document(client):
    doc = client.get("/openapi.json").json()
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    assert {
        "search_velocity",
        "get_velocity_model",
        "get_velocity_estimate",
        "get_bundle",
        "reload_bundle",
        "get_health",
        "get_readiness",
        "get_metrics",
    } <= set(ops)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for name, op in ops.items():
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                examples = response["content"]["application/json"]["examples"]
                assert examples, f"{name} {code} has no example"
                assert all(isinstance(e["value"]["detail"], str) for e in examples.values())
    search_errors = ops["search_velocity"]["responses"]
    assert {"413", "422", "503"} <= set(search_errors)
    assert {"401", "403", "404", "409"} <= set(ops["reload_bundle"]["responses"])
    assert "multipart/form-data" in ops["search_velocity"]["requestBody"]["content"]


def test_index_page(client):
    r = client.get("/")
    assert r.status_code == 200 and "<form" in r.text


# --------------------------------------------------------------------------- reload


def test_reload_swaps_to_a_new_bundle(make_client, sample, tiny_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    c = make_client()
    before = search(c, sample.segy, k=3).json()["results"]
    r = c.post("/v1/admin/reload", json={"bundle": str(copy)}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previous"]["path"] == str(tiny_bundle)
    assert body["current"]["path"] == str(copy) and body["current"]["models"] == 24
    assert c.get("/v1/bundle", headers=AUTH).json()["path"] == str(copy)
    assert search(c, sample.segy, k=3).json()["results"] == before
    # no body: re-read the current bundle from disk (e.g. after `seislens index build`)
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 200 and r.json()["current"]["path"] == str(copy)
    assert 'seislens_bundle_reloads_total{outcome="success"} 2.0' in c.get("/metrics").text


def test_reload_keeps_in_flight_requests_on_their_bundle(settings, tiny_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    holder = BundleHolder()
    holder.replace(load_bundle(tiny_bundle, settings))
    with holder.lease() as old:  # a request in flight
        previous, new = holder.reload(copy, settings)
        assert previous is old and holder.current is new
        assert not old.closed  # still usable by the request that holds it
        assert old.branches["velocity"].library.store.count() == 24
    assert old.closed and old.leases == 0  # closed when its last lease ended
    with holder.lease() as current:
        assert current is new
    holder.close()
    assert new.closed


def test_one_reload_at_a_time(settings, tiny_bundle):
    holder = BundleHolder()
    holder._reload_lock.acquire()  # a reload is running
    try:
        with pytest.raises(ReloadInProgressError):
            holder.reload(tiny_bundle, settings)
    finally:
        holder._reload_lock.release()


def test_concurrent_searches_during_reload(make_client, sample, tiny_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    c = make_client()
    statuses: list[int] = []

    def searches() -> None:
        for _ in range(6):
            statuses.append(search(c, sample.segy, k=2).status_code)

    worker = threading.Thread(target=searches)
    worker.start()
    for path in (copy, tiny_bundle):
        assert c.post("/v1/admin/reload", json={"bundle": str(path)}, headers=AUTH).is_success
    worker.join(timeout=60)
    assert statuses == [200] * 6
    assert_serves(c, sample)


def test_startup_fails_loudly_on_a_bad_bundle(tmp_path):
    app = create_app(Settings(bundle=tmp_path / "missing"))
    with pytest.raises(BundleError, match="does not exist"), TestClient(app):
        pass


def test_watch_reloads_after_an_index_rebuild(
    make_client, sample, tiny_bundle, tiny_velocity_data, tmp_path
):
    copy = tmp_path / "watched"
    shutil.copytree(tiny_bundle, copy)
    c = make_client(bundle=copy, watch_interval_s=0.1)
    old_index = c.get("/v1/bundle").json()["index"]["path"]
    build(copy, VELOCITY, [tiny_velocity_data / "flatvel-a"], progress=False)  # the job
    deadline = time.monotonic() + 30
    while (index := c.get("/v1/bundle").json()["index"])["path"] == old_index:
        assert time.monotonic() < deadline, "the changed bundle was not reloaded"
        time.sleep(0.1)
    assert index["count"] == 12 and index["families"] == {"flatvel-a": 12}
    r = search(c, sample.segy, k=3)
    assert r.status_code == 200 and r.json()["results"][0]["family"] == "flatvel-a"
    assert 'seislens_bundle_reloads_total{outcome="success"} 1.0' in c.get("/metrics").text


def test_watch_reloads_a_bundle_rewritten_right_after_a_reload_to_it(
    make_client, tiny_bundle, tmp_path
):
    """A manifest switched between an admin reload to a bundle and the watch's next poll
    is not taken for the state the reload loaded."""
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(tiny_bundle, first)
    shutil.copytree(tiny_bundle, second)
    c = make_client(bundle=first, watch_interval_s=1.0)
    assert c.post("/v1/admin/reload", json={"bundle": str(second)}, headers=AUTH).is_success
    update_manifest(second, lambda m: m.model_copy(update={"name": "switched"}))
    deadline = time.monotonic() + 30
    while c.get("/v1/bundle").json()["name"] != "switched":
        assert time.monotonic() < deadline, "the rewritten manifest was never loaded"
        time.sleep(0.1)
    assert c.get("/v1/bundle", headers=AUTH).json()["path"] == str(second)


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEISLENS_BUNDLE", str(tmp_path / "b"))
    monkeypatch.setenv("SEISLENS_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("SEISLENS_ADMIN_TOKEN", "")
    monkeypatch.setenv("SEISLENS_CORS_ORIGINS", '["http://localhost:3000"]')
    s = Settings()
    assert s.bundle == tmp_path / "b" and s.max_upload_bytes == 1234
    assert s.admin_token is None and not s.admin_enabled
    assert s.cors_origins == ["http://localhost:3000"]
    monkeypatch.setenv("SEISLENS_ADMIN_TOKEN", "secret")
    assert Settings().admin_token.get_secret_value() == "secret"
    assert "secret" not in repr(Settings())


def test_unreadable_metadata_store_answers_503(make_client, sample, monkeypatch):
    """An index folder removed under the service (by hand: `seislens index build` keeps
    the previous one): until the service reloads, a thread with no SQLite connection
    open yet cannot open it: a 503 that says so, not a 500."""
    c = make_client()
    store = c.app.state.holder.current.branches["velocity"].library.store

    def gone(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store, "get", gone)
    r = c.get("/v1/velocity/models/0")
    assert r.status_code == 503 and "reload the bundle" in r.json()["detail"]
    monkeypatch.undo()
    assert_serves(c, sample)
