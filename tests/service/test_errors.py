"""Errors carry their reason: every reader refusal names one, the answers and the
metrics use it."""

from __future__ import annotations

import ast
import inspect

import pytest
from seislens.data import gather_files
from seislens.models import event_preprocess
from seislens.service import recordings, scan_reader
from seislens.service.error_docs import GATHER_UPLOADS
from seislens.service.errors import ApiError, InvalidUploadError, as_api_error
from service_helpers import assert_serves, metric_value

READER_ERRORS = {"UploadError", "EventInputError"}


@pytest.mark.parametrize("module", [gather_files, event_preprocess, recordings, scan_reader])
def test_every_reader_refusal_names_its_reason(module):
    tree = ast.parse(inspect.getsource(module))
    raised = [
        node.exc
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", None) in READER_ERRORS
    ]
    assert raised
    for call in raised:
        reason = next((k.value for k in call.keywords if k.arg == "reason"), None)
        assert isinstance(reason, ast.Constant) and isinstance(reason.value, str), (
            f"{module.__name__} line {call.lineno}: raise without a reason"
        )


def test_reader_errors_are_answered_with_their_reason():
    error = as_api_error(gather_files.UploadError("'x.sgy' is empty", reason="empty"))
    assert isinstance(error, InvalidUploadError) and error.upload
    assert error.body() == {
        "detail": "'x.sgy' is empty",
        "reason": "empty",
        "errors": [{"loc": ["body", "file"], "msg": "'x.sgy' is empty", "type": "empty"}],
    }
    unforeseen = as_api_error(KeyError("x"))
    assert (unforeseen.status, unforeseen.reason) == (500, "internal_error")
    assert isinstance(unforeseen, ApiError)


def test_bad_upload_is_counted_with_its_reason(make_client, sample):
    c = make_client()
    bad = GATHER_UPLOADS["truncated"]
    r = c.post("/v1/velocity/search", files={"file": (bad.filename, bad.content())})
    assert r.status_code == 422 and r.json()["reason"] == "truncated"
    assert metric_value(c, 'seislens_uploads_rejected_total{reason="truncated"}') == 1
    errors = 'seislens_http_errors_total{reason="truncated",route="/v1/velocity/search",'
    assert metric_value(c, errors + 'status="422"}') == 1
    assert_serves(c, sample)
    assert metric_value(c, 'seislens_uploads_rejected_total{reason="truncated"}') == 1


def test_other_errors_are_counted_by_reason_not_as_uploads(make_client):
    c = make_client()
    assert c.get("/v1/velocity/models/999999").json()["reason"] == "unknown_model"
    r = c.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found", "reason": "not_found"}
    r = c.delete("/v1/velocity/search")
    assert r.status_code == 405 and r.json()["reason"] == "method_not_allowed"
    route = 'route="/v1/velocity/models/{model_id}",status="404"'
    assert metric_value(c, f'seislens_http_errors_total{{reason="unknown_model",{route}}}') == 1
    unmatched = 'seislens_http_errors_total{reason="not_found",route="<unmatched>",status="404"}'
    assert metric_value(c, unmatched) == 1
    assert "seislens_uploads_rejected_total{" not in c.get("/metrics").text
