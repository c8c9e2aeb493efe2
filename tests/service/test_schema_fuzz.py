"""schemathesis over every operation of the OpenAPI document, against the app on the
committed serving fixture (both branches, lifespan run, parse workers on): a few
generated requests per operation, each answered without a 5xx and as the document
says (:data:`CHECKS`: status codes, content types, response headers and schemas). The
longer run, against a real uvicorn server, is ``python bench/schema_fuzz.py``.

Left out (:data:`LEFT_OUT`), because they cannot hold for operations that take files
whose content a JSON schema cannot express.

Marked slow (``python -m pytest -m slow tests/service/test_schema_fuzz.py``): 22
operations × 3 cases took 227 s, and the app with its document 207 s more, on the
shared 2-core machine at load 11-13."""

from __future__ import annotations

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
from seislens.service.app import create_app

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


def test_every_operation_is_fuzzed(api_schema, event_client):
    paths = event_client.get("/openapi.json").json()["paths"]
    documented = {(p, m.upper()) for p, ops in paths.items() for m in ops}
    fuzzed = {(op.ok().path, op.ok().method.upper()) for op in api_schema.get_all_operations()}
    assert fuzzed == documented and len(fuzzed) >= 20
