"""schemathesis over every operation of the OpenAPI document, against the app on the
committed serving fixture (both branches, lifespan run, parse workers on): a few
generated requests per operation, each answered without a 5xx and as the document
says (:data:`CHECKS`: status codes, content types, response headers and schemas). The
longer run, against a real uvicorn server, is ``python bench/schema_fuzz.py``.

Left out (:data:`LEFT_OUT`), because they cannot hold for operations that take files
whose content a JSON schema cannot express. So that generated requests also reach the
deep paths, every upload operation runs a second time with its file swapped for a
valid one (a SEG-Y gather, a velocity model, a real miniSEED recording).

Marked slow (``python -m pytest -m slow tests/service/test_schema_fuzz.py``): 22
operations × 3 cases took 227 s, and the app with its document 207 s more, on the
shared 2-core machine at load 11-13."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from seislens.data.gather_files import write_segy
from seislens.service.app import create_app
from service_helpers import npy_bytes

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""The checks every generated request must pass."""

LEFT_OUT = {
    "positive_data_acceptance": "a schema-valid `file` (multipart or raw body) is random "
    "bytes, rightly refused 422: no schema says what a SEG-Y, SU, .npy or miniSEED is",
    "negative_data_rejection": "a multipart body schemathesis makes invalid (a wrong type "
    "for a form field) is often still a valid form once serialised",
}
"""schemathesis checks not run, and why."""

pytestmark = pytest.mark.slow

EXAMPLES = 3
"""Generated requests per operation (the suite's run; the bench makes hundreds)."""


@pytest.fixture(scope="module")
def api_schema(event_settings):
    app = create_app(event_settings)
    with TestClient(app):  # the lifespan loads the bundle and starts the parse workers
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_every_operation(case):
    case.call_and_validate(checks=CHECKS)


CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
"""A real three-component recording obspy ships (the classify examples' file)."""


@pytest.fixture(scope="module")
def valid_files(serving_fixture, tmp_path_factory) -> dict[str, bytes]:
    """A valid upload of each kind: a SEG-Y gather, a velocity model as .npy, miniSEED."""
    stored = np.load(serving_fixture / "velocity_sample.npz")
    path = tmp_path_factory.mktemp("valid") / "shot.sgy"
    write_segy(path, stored["gather"])
    return {
        "gather": path.read_bytes(),
        "model": npy_bytes(stored["velocity_model"].astype(np.float32)),
        "recording": CER.read_bytes(),
    }


def upload_kind(path: str) -> str | None:
    """Which valid file an operation's upload takes (None: it takes none)."""
    if path.startswith(("/v1/events", "/v1/embed/recording")):
        return "recording"
    if path in ("/v1/velocity/search/by-model", "/v1/embed/velocity"):
        return "model"
    if path in ("/v1/velocity/search", "/v1/embed/gather"):
        return "gather"
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_every_upload_operation_with_a_valid_file(case, valid_files):
    """The same operations with the generated file swapped for a valid one, so the deep
    paths (embedding, search, estimation, scan jobs) meet fuzzed parameters."""
    kind = upload_kind(case.path)
    if kind is None:
        return
    data = valid_files[kind]
    if isinstance(case.body, dict) and "file" in case.body:
        case.body = {**case.body, "file": data}
    elif case.media_type == "application/octet-stream":
        case.body = data
    else:
        return  # a JSON body (descriptors): nothing to swap
    response = case.call_and_validate(checks=CHECKS)
    VALID_ANSWERS.setdefault(case.path, set()).add(response.status_code)


VALID_ANSWERS: dict[str, set[int]] = {}
"""Status codes the valid-file requests got, by path (filled by the test above)."""


def test_valid_files_reached_the_deep_paths():
    """Some fuzzed requests with a valid file were answered 200 on gather and recording
    routes alike (run after the test above, in file order; which routes depends on the
    parameters drawn, e.g. an unknown family is rightly refused)."""
    answered = {path for path, codes in VALID_ANSWERS.items() if 200 in codes or 202 in codes}
    gather_routes = {"/v1/velocity/search", "/v1/embed/gather"}
    recording_routes = {"/v1/events/classify", "/v1/events/search", "/v1/embed/recording"}
    assert answered & gather_routes and answered & recording_routes, VALID_ANSWERS
    assert len(answered) >= 4, VALID_ANSWERS


def test_every_operation_is_fuzzed(api_schema, event_client):
    paths = event_client.get("/openapi.json").json()["paths"]
    documented = {(p, m.upper()) for p, ops in paths.items() for m in ops}
    fuzzed = {(op.ok().path, op.ok().method.upper()) for op in api_schema.get_all_operations()}
    assert fuzzed == documented and len(fuzzed) >= 20
