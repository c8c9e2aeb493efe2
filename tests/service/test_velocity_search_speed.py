"""The gather search's serving shortcut answers exactly what the slow path answered: the
answer serialised in the handler (``json_answer``); multipart and raw bodies agree, and
the served SNR estimate is the gather's own."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter
from seislens.data.gather_files import read_gather
from seislens.models.gather_quality import lateral_snr_db
from seislens.service.routes_velocity import json_answer
from seislens.service.schemas import VelocitySearchResponse

SEARCH = "/v1/velocity/search"


def _stable(answer: dict) -> dict:
    """An answer without what differs between two searches of the same file."""
    query = {k: v for k, v in answer["query"].items() if k not in ("query_id", "timing")}
    estimated = {k: v for k, v in answer["estimated_model"].items() if k not in ("query_id", "url")}
    return {**answer, "query": query, "estimated_model": estimated}


def test_json_answer_writes_the_bytes_fastapi_would(client, sample):
    r = client.post(SEARCH, files={"file": ("shot.sgy", sample.segy)}, params={"k": 3})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    model = VelocitySearchResponse.model_validate_json(r.content)
    fastapi_bytes = TypeAdapter(VelocitySearchResponse).dump_json(model, by_alias=True)
    assert json_answer(model).body == fastapi_bytes
    assert json.loads(r.content) == json.loads(fastapi_bytes)


def test_multipart_and_raw_body_answer_the_same(client, sample):
    multipart = client.post(SEARCH, files={"file": ("shot.sgy", sample.segy)}, params={"k": 3})
    raw = client.post(
        SEARCH,
        content=sample.segy,
        headers={"content-type": "application/octet-stream"},
        params={"k": 3, "filename": "shot.sgy"},
    )
    assert multipart.status_code == raw.status_code == 200
    assert _stable(multipart.json()) == _stable(raw.json())


def test_the_served_snr_is_the_gathers_own(client, sample, tmp_path):
    path = tmp_path / "shot.sgy"
    path.write_bytes(sample.segy)
    expected = lateral_snr_db(read_gather(path, path.name).data)
    r = client.post(SEARCH, files={"file": ("shot.sgy", sample.segy)}, params={"k": 3})
    assert r.status_code == 200
    assert expected is not None
    assert r.json()["familiarity"]["snr_db"] == pytest.approx(expected)
