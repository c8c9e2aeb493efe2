"""Gather uploads (SEG-Y, SU, .npy) are read in the parse workers, as miniSEED is: the
same deadline, crash and memory answers; crafted files that make a reader misbehave get
a 4xx and the service keeps answering."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from seislens.data.gather_files import GatherUpload, UploadError, read_gather, write_su
from seislens.service.parse_jobs import (
    GATHER,
    GATHER_JOB,
    ParseDeadlineError,
    ParseMemoryError,
    ReaderCrashedError,
    run_parse_job,
)
from seislens.service.parse_pool import shared_pool
from service_helpers import assert_serves, search
from test_openapi_errors import assert_answers_as_documented, documented

_BIN_SAMPLES = 3220  # SEG-Y binary header: samples per trace (2 bytes)
_TRACE_SAMPLES = 114  # trace header: samples in this trace (2 bytes)
_EXT_HEADERS = 3504  # SEG-Y binary header: extended textual headers (2 bytes, signed)


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _many_tiny_traces(template: bytes, n_traces: int) -> bytes:
    """A SEG-Y of ``n_traces`` two-sample traces (about 250 bytes each)."""
    head = _patched(template[:3600], _BIN_SAMPLES, ">H", 2)
    trace = _patched(template[3600:3840], _TRACE_SAMPLES, ">H", 2)
    one = trace + struct.pack(">2f", 1.0, -1.0)
    return head + one * n_traces


def crafted(segy: bytes, su: bytes) -> dict[str, tuple[str, bytes]]:
    """Name → (filename, bytes) of files that make a gather reader misbehave."""
    half = len(segy) // 2 + 7
    return {
        "segy_declares_65535_samples": ("a.sgy", _patched(segy, _BIN_SAMPLES, ">H", 65535)),
        "segy_declares_32767_extended_headers": (
            "b.sgy",
            _patched(segy, _EXT_HEADERS, ">h", 32767),
        ),
        "segy_truncated": ("c.sgy", segy[:half]),
        "segy_headers_only": ("d.sgy", segy[:3600]),
        "segy_40000_two_sample_traces": ("e.sgy", _many_tiny_traces(segy, 40_000)),
        "su_declares_65535_samples": ("f.su", _patched(su, _TRACE_SAMPLES, ">H", 65535)),
        "su_truncated": ("g.su", su[: len(su) // 3 + 5]),
    }


@pytest.fixture(scope="module")
def files(sample, tmp_path_factory) -> dict[str, tuple[str, bytes]]:
    folder = tmp_path_factory.mktemp("crafted")
    write_su(folder / "ok.su", sample.gather)
    return crafted(sample.segy, (folder / "ok.su").read_bytes())


def test_a_gather_read_in_a_worker_equals_the_in_process_read(sample, settings, tmp_path):
    path = tmp_path / "shot.sgy"
    path.write_bytes(sample.segy)
    upload = run_parse_job(GATHER, GATHER_JOB, (str(path), "shot.sgy"), "shot.sgy", settings)
    local = read_gather(path, "shot.sgy")
    assert isinstance(upload, GatherUpload) and upload.format == "segy"
    np.testing.assert_array_equal(upload.data, local.data)
    np.testing.assert_array_equal(upload.receiver_mask, local.receiver_mask)
    assert upload.notes == local.notes


def test_crafted_gathers_are_refused_and_the_service_keeps_answering(client, sample, files):
    for name, (filename, data) in files.items():
        r = search(client, data, filename)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert r.json()["reason"] in {"truncated", "no_traces", "unknown_format", "geometry"}, (
            name,
            r.json(),
        )
    assert_serves(client, sample)


def test_a_refusal_from_the_worker_is_the_readers_own(settings, files, tmp_path):
    filename, data = files["segy_truncated"]
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(UploadError) as info:
        run_parse_job(GATHER, GATHER_JOB, (str(path), filename), filename, settings)
    assert info.value.reason == "truncated" and f"'{filename}'" in str(info.value)


def test_a_gather_past_the_deadline_is_a_422_as_documented(make_client, sample, client):
    slow = make_client(parse_deadline_s=0.001)
    r = search(slow, sample.segy, "shot.sgy")
    status, example = documented(client, "/v1/velocity/search", "post")["deadline"]
    assert_answers_as_documented(r, status, example, "deadline")
    assert "'shot.sgy'" in r.json()["detail"] and "fewer or shorter traces" in r.json()["detail"]
    assert_serves(client, sample)


def test_a_crash_and_a_memory_error_answer_for_the_gather_reader(settings):
    with pytest.raises(ReaderCrashedError) as crash:
        run_parse_job(GATHER, "os:abort", (), "shot.sgy", settings)
    assert crash.value.status == 422 and crash.value.reason == "reader_crashed"
    assert "gather reader (segyio) crashed on 'shot.sgy' (signal SIGABRT)" in str(crash.value)
    with pytest.raises(ParseMemoryError) as memory:
        run_parse_job(GATHER, "numpy:ones", ((2**22, 2**22),), "shot.sgy", settings)
    assert memory.value.reason == "too_much_memory"
    quick = settings.model_copy(update={"parse_deadline_s": 0.2})
    with pytest.raises(ParseDeadlineError):
        run_parse_job(GATHER, "time:sleep", (5,), "shot.sgy", quick)
    pool = shared_pool(settings.parse_workers, settings.parse_worker_memory_mib)
    assert pool.call("os:getpid", (), 30) in pool.pids()


def test_the_gather_routes_document_the_workers_answers(client):
    for path in ("/v1/velocity/search", "/v1/embed/gather"):
        examples = documented(client, path, "post")
        assert {"deadline", "reader_crashed", "too_much_memory", "busy"} <= set(examples), path
        assert "gather reader (segyio)" in examples["reader_crashed"][1]["detail"]


def test_embed_gather_reads_in_a_worker(make_client, sample):
    slow = make_client(parse_deadline_s=0.001)
    r = slow.post("/v1/embed/gather", files={"file": ("shot.sgy", sample.segy)})
    assert r.status_code == 422 and r.json()["reason"] == "deadline", r.text
