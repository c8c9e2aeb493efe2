"""The low findings of the hardening review, each fixed and kept fixed: the lease a
served bundle holds, model ids past SQLite's range, the admin token checked before the
body is read, server paths only for the admin, links never built from an arbitrary
Host, no temporary path in an answer, body errors documented."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from seislens.data.gather_files import UploadError
from seislens.index.leases import read_leases
from seislens.service.app import create_app
from seislens.service.errors import TEMP_FILE_TEXT, as_api_error
from seislens.service.server import uvicorn_options
from seislens.service.settings import Settings
from service_helpers import ADMIN_TOKEN, search
from test_openapi_errors import BODY_ERRORS, assert_answers_as_documented, documented

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def bundle_copy(tiny_event_bundle, tmp_path):
    """A copy of the two-branch bundle, without the leases of the session's clients
    that serve the original (a copy inherits them until they expire)."""
    copy = tmp_path / "served"
    shutil.copytree(tiny_event_bundle.bundle, copy, ignore=shutil.ignore_patterns("leases"))
    return copy


# --------------------------------------------------------------------------- leases


def test_a_served_bundle_is_leased_until_shutdown(settings, bundle_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(bundle_copy, other)
    with TestClient(create_app(settings.model_copy(update={"bundle": bundle_copy}))) as c:
        [lease] = read_leases(bundle_copy)
        assert lease.paths == c.app.state.holder.current.held_files()
        assert any(p.startswith("index/events-") for p in lease.paths)
        assert any(p.startswith("encoders/") for p in lease.paths)
        r = c.post("/v1/admin/reload", json={"bundle": str(other)}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert read_leases(bundle_copy) == []  # the old bundle closed: let go of
        [moved] = read_leases(other)
        assert moved.owner == lease.owner and moved.live()
    assert read_leases(other) == []


def test_lease_ttl_zero_writes_no_lease(settings, bundle_copy):
    with TestClient(
        create_app(settings.model_copy(update={"bundle": bundle_copy, "lease_ttl_s": 0}))
    ):
        assert read_leases(bundle_copy) == [] and not (bundle_copy / "leases").exists()


# --------------------------------------------------------------------------- small findings


def test_model_ids_past_sqlite_range_are_refused_not_500(client):
    r = client.get(f"/v1/velocity/models/{2**63}")
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["path", "model_id"]
    r = client.get(f"/v1/velocity/models/{2**63 - 1}")
    assert r.status_code == 404 and r.json()["reason"] == "unknown_model"


def test_admin_token_is_checked_before_the_body_is_read(client):
    bad = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    r = client.post("/v1/admin/reload", **bad)
    assert r.status_code == 401 and r.json()["reason"] == "token_missing"
    r = client.post(
        "/v1/admin/reload", content=bad["content"], headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 403
    r = client.post("/v1/admin/reload", content=bad["content"], headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][0] == "body"
    r = client.post("/v1/admin/reload", json={"bundle": 5}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "bundle"]
    r = client.post("/v1/admin/reload", json={"other": "x"}, headers=AUTH)
    assert r.status_code == 422


def test_bundle_shows_server_paths_only_to_the_admin(event_client, tiny_event_bundle):
    public = event_client.get("/v1/bundle")
    admin = event_client.get("/v1/bundle", headers=AUTH).json()
    wrong = event_client.get("/v1/bundle", headers={"Authorization": "Bearer nope"}).json()
    body = public.json()
    root = str(tiny_event_bundle.bundle)
    assert body["path"] is None and wrong["path"] is None and admin["path"] == root
    assert tempfile.gettempdir() not in public.text  # no absolute path of this server
    assert admin["index"]["sources"] and all("/" in s for s in admin["index"]["sources"])
    assert body["index"]["sources"] == [s.rsplit("/", 1)[-1] for s in admin["index"]["sources"]]
    folders = [s["folder"] for s in body["events"]["index"]["sources"]]
    assert folders == ["events"] and admin["events"]["index"]["sources"][0]["folder"].startswith(
        tempfile.gettempdir()
    )
    assert body["encoders"] == admin["encoders"]  # names and hashes for everyone
    assert body["index"]["path"] == admin["index"]["path"]  # bundle-relative


def _model_url(c: TestClient, sample, **headers: str) -> str:
    r = c.post(
        "/v1/velocity/search",
        files={"file": ("g.sgy", sample.segy)},
        params={"k": 1},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["model_url"]


def test_links_are_never_built_from_an_arbitrary_host(make_client, client, sample):
    path = f"/v1/velocity/models/{sample.model_id}"
    assert _model_url(client, sample) == path  # Host: testserver (not a link host)
    assert _model_url(client, sample, host="evil.example") == path
    assert _model_url(client, sample, host="evil.example/x:1") == path
    assert client.get(path).status_code == 200  # the relative link works
    assert _model_url(client, sample, host="127.0.0.1:8000") == "http://127.0.0.1:8000" + path
    assert _model_url(client, sample, host="[::1]:8000") == "http://[::1]:8000" + path
    public = make_client(public_base_url="https://seislens.example.org/api/")
    expected = "https://seislens.example.org/api" + path
    assert _model_url(public, sample, host="evil.example") == expected
    anyhost = make_client(link_hosts=["*"])
    assert _model_url(anyhost, sample, host="seislens.lan") == "http://seislens.lan" + path


@pytest.mark.parametrize(
    "url", ["ftp://x.org", "https://x.org/api?a=1", "seislens.org", "https://"]
)
def test_a_public_base_url_must_be_an_http_url(url):
    with pytest.raises(ValidationError, match="public_base_url"):
        Settings(public_base_url=url)


def test_proxy_headers_are_trusted_only_from_configured_addresses():
    assert uvicorn_options(Settings())["proxy_headers"] is False
    options = uvicorn_options(Settings(forwarded_allow_ips=["10.0.0.2"], keep_alive_timeout_s=2))
    assert {
        k: options[k] for k in ("proxy_headers", "forwarded_allow_ips", "timeout_keep_alive")
    } == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.2"],
        "timeout_keep_alive": 2.0,
    }


def test_answers_never_show_a_temporary_path(client):
    temp = f"{tempfile.gettempdir()}/seislens-upload-k2j3h4.sgy"
    error = as_api_error(UploadError(f"could not read 'shot.sgy': OSError: {temp}", "unreadable"))
    body = error.body()
    assert temp not in str(body) and TEMP_FILE_TEXT in body["detail"]
    assert TEMP_FILE_TEXT in body["errors"][0]["msg"]
    for data in (b"", b"\x00" * 3600, b"x" * 4000, b"\x93NUMPY\x01\x00v\x00{'descr'"):
        for name in ("g.sgy", "g.su", "g.npy", "g"):
            r = search(client, data, filename=name)
            assert r.status_code == 422 and "seislens-upload" not in r.text, r.text


# --------------------------------------------------------------------------- documented bodies


def test_every_operation_with_a_body_documents_its_body_errors(client):
    doc = client.get("/openapi.json").json()
    operations = [
        op for item in doc["paths"].values() for op in item.values() if "requestBody" in op
    ]
    assert len(operations) >= 10
    for op in operations:
        assert {"400", "408", "413"} <= set(op["responses"]), op["operationId"]
    for name, schema in doc["components"]["schemas"].items():
        for prop in schema.get("properties", {}).values():
            for alt in [prop, *prop.get("anyOf", [])]:
                if "contentMediaType" in alt or alt.get("format") == "binary":
                    assert alt.get("minLength") == 1, name  # the empty file is refused


def test_malformed_bodies_answer_as_documented(client):
    examples = documented(client, "/v1/velocity/search", "post")
    assert BODY_ERRORS - {"malformed_json"} <= set(examples)
    r = client.post(
        "/v1/velocity/search", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert_answers_as_documented(r, *examples["malformed_multipart"], "malformed_multipart")
    path = "/v1/velocity/search/by-descriptors"
    status, example = documented(client, path, "post")["malformed_json"]
    r = client.post(path, content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert_answers_as_documented(r, status, example, "malformed_json")
