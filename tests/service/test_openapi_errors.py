"""The documented error examples are the answers the service gives.

For every error example of every route in the OpenAPI document, a real bad request
that triggers it: the answer has the documented status and ``reason``, its message
the documented shape (numbers and quoted names aside) and, for a 422, the documented
invalid parameters.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from seislens.service.app import create_app
from seislens.service.error_docs import (
    GATHER_UPLOADS,
    RECORDING_UPLOADS,
    VELOCITY_MODEL_UPLOADS,
    BadUpload,
)
from service_helpers import ADMIN_TOKEN, search

Trigger = Callable[[TestClient], object]
ELSEWHERE = {"not_ready", "too_large", "store_unavailable", "no_event_encoders", "no_events_index"}
ELSEWHERE |= {"deadline", "reader_crashed", "too_much_memory", "busy", "reader_unavailable"}
"""Examples checked by tests of their own (they need another bundle or settings; the
parse workers' answers: tests/service/test_parse_pool.py)."""
BODY_ERRORS = {"malformed_multipart", "malformed_json", "upload_timeout", "too_large"}
"""Errors every operation with a body documents (test_body_errors_are_documented)."""
ELSEWHERE |= BODY_ERRORS
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _shape(message: str) -> str:
    """A message with its quoted names and numbers masked."""
    return re.sub(r"\d+(\.\d+)?", "#", re.sub(r"'[^']*'", "'…'", message))


def documented(client: TestClient, path: str, method: str) -> dict[str, tuple[int, dict]]:
    """The route's error examples: name → (status, body)."""
    doc = client.get("/openapi.json").json()
    out = {}
    for status, response in doc["paths"][path][method]["responses"].items():
        if status.startswith(("4", "5")):
            for name, example in response["content"]["application/json"]["examples"].items():
                out[name] = (int(status), example["value"])
    return out


def assert_answers_as_documented(response, status: int, example: dict, name: str) -> None:
    """The answer matches the documented example ``name``."""
    assert response.status_code == status, (name, response.text)
    body = response.json()
    assert body["reason"] == example["reason"], (name, body)
    assert _shape(body["detail"]) == _shape(example["detail"]), (name, body["detail"])
    if "errors" in example:
        found = [(e["loc"], e["type"]) for e in body["errors"]]
        assert found == [(e["loc"], e["type"]) for e in example["errors"]], (name, body)


def check_route(client: TestClient, path: str, method: str, triggers: dict[str, Trigger]):
    """Every example of the route but those needing another app (:data:`ELSEWHERE`)
    has a trigger, and each trigger gets the documented answer; a refused upload's
    example is named by its reason."""
    examples = documented(client, path, method)
    assert set(examples) - ELSEWHERE == set(triggers), path
    for name in set(GATHER_UPLOADS) | set(RECORDING_UPLOADS) | set(VELOCITY_MODEL_UPLOADS):
        assert name not in examples or examples[name][1]["reason"] == name, name
    for name, trigger in triggers.items():
        status, example = examples[name]
        assert_answers_as_documented(trigger(client), status, example, name)


def _upload(path: str, upload: BadUpload) -> Trigger:
    files = {"file": (upload.filename, upload.content())}
    return lambda c: c.post(path, files=files, params=upload.params)


# --------------------------------------------------------------------------- velocity

SEARCH = "/v1/velocity/search"


def test_velocity_search_errors_are_documented(event_client, sample):
    triggers: dict[str, Trigger] = {n: _upload(SEARCH, u) for n, u in GATHER_UPLOADS.items()}
    triggers |= {
        "k_out_of_range": lambda c: search(c, sample.segy, k=101),
        "unknown_family": lambda c: search(c, sample.segy, family="flatvel-c"),
        "missing_file": lambda c: c.post(SEARCH, data={"other": "x"}),
        "unsupported_media_type": lambda c: c.post(
            SEARCH, content=b"x", headers={"content-type": "text/plain"}
        ),
    }
    check_route(event_client, SEARCH, "post", triggers)


def test_velocity_model_and_estimate_errors_are_documented(event_client):
    check_route(
        event_client,
        "/v1/velocity/models/{model_id}",
        "get",
        {
            "unknown_model": lambda c: c.get("/v1/velocity/models/123456"),
            "bad_model_id": lambda c: c.get("/v1/velocity/models/abc"),
            "model_id_out_of_range": lambda c: c.get(f"/v1/velocity/models/{2**63}"),
            "bad_format": lambda c: c.get("/v1/velocity/models/0", params={"format": "tiff"}),
        },
    )
    check_route(
        event_client,
        "/v1/velocity/estimates/{query_id}",
        "get",
        {
            "unknown_estimate": lambda c: c.get(
                "/v1/velocity/estimates/0f3c9a0e6d2b4f7e8a1c5b3d9e7f6a2c"
            ),
            "bad_format": lambda c: c.get("/v1/velocity/estimates/x", params={"format": "tiff"}),
        },
    )


# --------------------------------------------------------------------------- other modalities

BY_MODEL = "/v1/velocity/search/by-model"
BY_DESCRIPTORS = "/v1/velocity/search/by-descriptors"
_NAN_MODEL = json.dumps({"velocity_model": [[float("nan")] * 70] * 70})


def _json(path: str, text: str) -> Trigger:
    """POST ``text`` as a JSON body (it may hold NaN, which strict encoders refuse)."""
    return lambda c: c.post(path, content=text, headers={"content-type": "application/json"})


def _velocity_model_triggers(path: str) -> dict[str, Trigger]:
    triggers = {n: _upload(path, u) for n, u in VELOCITY_MODEL_UPLOADS.items()}
    return triggers | {
        "json_shape": lambda c: c.post(path, json={"velocity_model": [[2500.0, 2600.0]]}),
        "json_non_finite": _json(path, _NAN_MODEL),
        "bad_json": lambda c: c.post(path, json={"velocity": [[2500.0]]}),
        "unsupported_media_type": lambda c: c.post(
            path, content=b"2500", headers={"content-type": "text/plain"}
        ),
        "missing_file": lambda c: c.post(path, data={"other": "x"}),
    }


def _descriptor_triggers(path: str) -> dict[str, Trigger]:
    nan = json.dumps({"descriptors": {"mean_velocity": float("nan")}})
    return {
        "unknown_descriptor": lambda c: c.post(path, json={"descriptors": {"mean_speed": 1.0}}),
        "non_finite_descriptor": _json(path, nan),
        "no_descriptors": lambda c: c.post(path, json={"descriptors": {}}),
        "bad_body": lambda c: c.post(path, json={"mean_velocity": 3000.0}),
    }


def test_velocity_model_errors_are_documented(event_client, sample):
    model = {"velocity_model": sample.model.tolist()}
    triggers = _velocity_model_triggers(BY_MODEL) | {
        "k_out_of_range": lambda c: c.post(BY_MODEL, json=model, params={"k": 101}),
        "unknown_family": lambda c: c.post(BY_MODEL, json=model, params={"family": "flatvel-c"}),
    }
    check_route(event_client, BY_MODEL, "post", triggers)
    check_route(
        event_client, "/v1/embed/velocity", "post", _velocity_model_triggers("/v1/embed/velocity")
    )


def test_descriptor_errors_are_documented(event_client):
    one = {"descriptors": {"n_interfaces": 3.0}}
    triggers = _descriptor_triggers(BY_DESCRIPTORS) | {
        "bad_tolerance": lambda c: c.post(
            BY_DESCRIPTORS, json={**one, "tolerances": {"n_interfaces": -1.0}}
        ),
        "tolerance_without_value": lambda c: c.post(
            BY_DESCRIPTORS, json={**one, "tolerances": {"fault_throw": 10.0}}
        ),
        "k_out_of_range": lambda c: c.post(BY_DESCRIPTORS, json=one, params={"k": 101}),
        "unknown_family": lambda c: c.post(
            BY_DESCRIPTORS, json=one, params={"family": "flatvel-c"}
        ),
    }
    check_route(event_client, BY_DESCRIPTORS, "post", triggers)
    embed = "/v1/embed/descriptors"
    triggers = _descriptor_triggers(embed) | {
        "incomplete_descriptors": lambda c: c.post(
            embed, json={"descriptors": {"mean_velocity": 3000.0}}
        ),
    }
    check_route(event_client, embed, "post", triggers)


def test_embed_gather_and_unknown_modality_errors_are_documented(event_client):
    path = "/v1/embed/gather"
    triggers: dict[str, Trigger] = {n: _upload(path, u) for n, u in GATHER_UPLOADS.items()}
    triggers["missing_file"] = lambda c: c.post(path, data={"other": "x"})
    check_route(event_client, path, "post", triggers)
    check_route(
        event_client,
        "/v1/embed/{modality}",
        "post",
        {
            "unknown_modality": lambda c: c.post("/v1/embed/spectrum"),
            "bad_modality": lambda c: c.post("/v1/embed/" + "x" * 65),
        },
    )


# --------------------------------------------------------------------------- events


EVENT_QUERIES = ["/v1/events/classify", "/v1/events/search", "/v1/embed/recording"]


@pytest.mark.parametrize("path", EVENT_QUERIES)
def test_event_errors_are_documented(event_client, path):
    triggers: dict[str, Trigger] = {n: _upload(path, u) for n, u in RECORDING_UPLOADS.items()}
    cer = RECORDING_UPLOADS["components"].content()  # any readable upload
    files = {"file": ("event.mseed", cer)}
    triggers |= {
        "bad_p_arrival": lambda c: c.post(path, files=files, params={"p_arrival": "yesterday"}),
        "conflict": lambda c: c.post(
            path, files=files, params={"station": "CER"}, data={"station": "FUR"}
        ),
        "k_out_of_range": lambda c: c.post(path, files=files, params={"k": 101}),
        "missing_file": lambda c: c.post(path, data={"station": "CER"}),
    }
    check_route(event_client, path, "post", triggers)


# --------------------------------------------------------------------------- bundles


def test_missing_branch_and_index_answer_as_documented(
    make_client, tiny_event_bundle, tmp_path, event_client
):
    files = {"file": ("event.mseed", RECORDING_UPLOADS["components"].content())}
    velocity_only = make_client()
    for path in ("/v1/events/classify", "/v1/events/search"):
        status, example = documented(event_client, path, "post")["no_event_encoders"]
        r = velocity_only.post(path, files=files)
        assert_answers_as_documented(r, status, example, "no_event_encoders")
    no_index = tmp_path / "no-events-index"
    shutil.copytree(tiny_event_bundle.bundle, no_index)
    manifest = json.loads((no_index / "manifest.json").read_text())
    del manifest["indexes"]["events"]
    (no_index / "manifest.json").write_text(json.dumps(manifest))
    c = make_client(bundle=no_index)
    status, example = documented(c, "/v1/events/search", "post")["no_events_index"]
    r = c.post("/v1/events/search", files=files)
    assert_answers_as_documented(r, status, example, "no_events_index")


def test_not_ready_answers_as_documented(event_settings, sample):
    app = create_app(event_settings)
    with TestClient(app) as c:
        app.state.holder.close()
        calls = {
            ("/readyz", "get"): lambda: c.get("/readyz"),
            ("/v1/bundle", "get"): lambda: c.get("/v1/bundle"),
            ("/v1/velocity/models/{model_id}", "get"): lambda: c.get("/v1/velocity/models/0"),
            (SEARCH, "post"): lambda: search(c, sample.segy),
            (BY_MODEL, "post"): lambda: c.post(BY_MODEL, json={"velocity_model": [[1.0]]}),
            ("/v1/events/classify", "post"): lambda: c.post(
                "/v1/events/classify", files={"file": ("event.mseed", b"x")}
            ),
        }
        for (path, method), call in calls.items():
            status, example = documented(c, path, method)["not_ready"]
            r = call()
            assert_answers_as_documented(r, status, example, f"not_ready {path}")
            assert r.headers["retry-after"] == "5"


def test_store_unavailable_answers_as_documented(make_client, sample, monkeypatch):
    c = make_client()
    store = c.app.state.holder.current.branches["velocity"].library.store

    def gone(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store, "get", gone)
    monkeypatch.setattr(store, "get_many", gone)
    model = sample.model.tolist()
    for path, method, call in (
        ("/v1/velocity/models/{model_id}", "get", lambda: c.get("/v1/velocity/models/0")),
        (SEARCH, "post", lambda: search(c, sample.segy)),
        (BY_MODEL, "post", lambda: c.post(BY_MODEL, json={"velocity_model": model})),
    ):
        status, example = documented(c, path, method)["store_unavailable"]
        assert_answers_as_documented(call(), status, example, "store_unavailable")


@pytest.mark.parametrize("path", [SEARCH, "/v1/events/classify", BY_MODEL])
def test_too_large_answers_as_documented(make_client, sample, tiny_event_bundle, path):
    c = make_client(bundle=tiny_event_bundle.bundle, max_upload_bytes=100_000)
    status, example = documented(c, path, "post")["too_large"]
    r = c.post(path, files={"file": ("shot.sgy", sample.segy)})
    assert_answers_as_documented(r, status, example, "too_large")


# --------------------------------------------------------------------------- admin


def test_admin_errors_are_documented(make_client, event_client):
    busy = make_client()
    lock = busy.app.state.holder._reload_lock

    def reload_while_busy(c: TestClient):
        with lock:
            return busy.post("/v1/admin/reload", headers=AUTH)

    check_route(
        event_client,
        "/v1/admin/reload",
        "post",
        {
            "token_missing": lambda c: c.post("/v1/admin/reload"),
            "token_wrong": lambda c: c.post(
                "/v1/admin/reload", headers={"Authorization": "Bearer x"}
            ),
            "admin_disabled": lambda c: make_client(admin_token=None).post(
                "/v1/admin/reload", headers=AUTH
            ),
            "bundle_refused": lambda c: c.post(
                "/v1/admin/reload", json={"bundle": "/bundles/next"}, headers=AUTH
            ),
            "reload_in_progress": reload_while_busy,
            "outside_bundle_root": lambda c: make_client(bundle_root=Path("/bundles")).post(
                "/v1/admin/reload", json={"bundle": "../etc"}, headers=AUTH
            ),
            "invalid_request": lambda c: c.post(
                "/v1/admin/reload", content=b"{bundle", headers=AUTH
            ),
        },
    )
