"""The parse workers: a crashed, killed, stuck or bloated worker costs its job, never the
caller; the event routes answer those cases as documented; fuzzed real miniSEED files
read in workers never crash one."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import obspy
import pytest
from hypothesis import HealthCheck, given, settings
from seislens.models.event_preprocess import EventInputError, EventPreprocessConfig
from seislens.service.parse_pool import (
    ParsePool,
    PoolBusyError,
    WorkerCrashedError,
    WorkerMemoryError,
    WorkerTimeoutError,
    shared_pool,
)
from seislens.service.recordings import RecordingBudgets, RecordingWindows
from test_mseed_records import mutated_files
from test_openapi_errors import assert_answers_as_documented, documented

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
JOB = "seislens.service.recordings:window_recording"


def job_args(path: Path | str, filename: str = "event.mseed") -> tuple:
    pre = EventPreprocessConfig()
    return (str(path), filename, pre, None, None, 50, RecordingBudgets.from_settings())


@pytest.fixture(scope="module")
def pool():
    pool = ParsePool(workers=2, memory_mib=1536)
    yield pool
    pool.close()


def test_a_recording_is_read_in_a_worker(pool):
    result = pool.call(JOB, job_args(CER), deadline_s=60)
    assert isinstance(result, RecordingWindows) and result.stations == [".CER"]
    assert result.windows[0].waveform.shape == (3, 6000)
    assert os.getpid() not in pool.pids() and pool.pids()


def test_a_refusal_comes_back_with_its_reason(pool, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not miniSEED at all\n" * 50)
    with pytest.raises(EventInputError) as info:
        pool.call(JOB, job_args(path, "notes.txt"), deadline_s=60)
    assert info.value.reason == "unknown_format" and "'notes.txt'" in str(info.value)


def test_a_crashed_worker_is_replaced(pool):
    started = pool.started
    with pytest.raises(WorkerCrashedError) as info:
        pool.call("os:abort", (), deadline_s=30)
    assert info.value.cause == "signal SIGABRT"
    assert pool.call(JOB, job_args(CER), deadline_s=60).stations == [".CER"]
    assert pool.started >= started + 1


def test_a_killed_idle_worker_is_replaced(pool):
    pool.call(JOB, job_args(CER), deadline_s=60)
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert pool.call(JOB, job_args(CER), deadline_s=60).stations == [".CER"]


def test_a_job_past_its_deadline_has_its_worker_killed(pool):
    t0 = time.perf_counter()
    with pytest.raises(WorkerTimeoutError):
        pool.call("time:sleep", (30,), deadline_s=0.5)
    assert time.perf_counter() - t0 < 5.0
    assert pool.call(JOB, job_args(CER), deadline_s=60).stations == [".CER"]


def test_a_job_needing_too_much_memory_is_refused(pool):
    with pytest.raises(WorkerMemoryError) as info:
        pool.call("numpy:ones", ((4 * 2**30,),), deadline_s=30)  # 32 GiB of float64
    assert info.value.limit_mib == 1536
    assert pool.call(JOB, job_args(CER), deadline_s=60).stations == [".CER"]


def test_a_full_pool_answers_busy():
    one = ParsePool(workers=1, memory_mib=0)
    try:
        long_job = threading.Thread(target=one.call, args=("time:sleep", (2,), 10))
        long_job.start()
        time.sleep(0.5)
        with pytest.raises(PoolBusyError) as info:
            one.call("time:sleep", (0,), deadline_s=0.3)
        assert info.value.workers == 1 and info.value.waited_s >= 0.3
        long_job.join()
    finally:
        one.close()


def test_the_shared_pool_follows_the_settings():
    a = shared_pool(2, 1536)
    assert shared_pool(2, 1536) is a
    b = shared_pool(3, 1536)
    assert b is not a and b.workers == 3
    shared_pool(2, 1536)  # back to the default the other tests use


# --------------------------------------------------------------------------- fuzzing


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_files())
def test_fuzzed_real_files_never_crash_a_worker(pool, tmp_path, data):
    """A mutated real file read in a worker is read or refused with a reason; never a
    crash, an unforeseen failure or a stuck worker."""
    path = tmp_path / "fuzzed.mseed"
    path.write_bytes(data)
    try:
        result = pool.call(JOB, job_args(path), deadline_s=30)
    except EventInputError as exc:
        assert exc.reason and str(exc)
    else:
        assert isinstance(result, RecordingWindows)


# --------------------------------------------------------------------------- HTTP answers


def test_deadline_answers_as_documented(make_client, tiny_event_bundle):
    c = make_client(bundle=tiny_event_bundle.bundle, parse_deadline_s=0.001)
    status, example = documented(c, "/v1/events/classify", "post")["deadline"]
    r = c.post("/v1/events/classify", files={"file": ("event.mseed", CER.read_bytes())})
    assert_answers_as_documented(r, status, example, "deadline")
    assert "0.001 s" in r.json()["detail"]


def test_reader_crash_answers_as_documented(make_client, tiny_event_bundle, monkeypatch):
    """The route's answer when its worker dies mid-job (the job turned into a read of
    address 0 in a real worker: a SIGSEGV), and a fresh worker serves the next upload."""
    c = make_client(bundle=tiny_event_bundle.bundle, parse_workers=1)
    status, example = documented(c, "/v1/events/classify", "post")["reader_crashed"]
    pool = shared_pool(1, 1536)
    call = pool.call
    monkeypatch.setattr(
        pool, "call", lambda target, args, deadline: call("ctypes:string_at", (0,), 30)
    )
    r = c.post("/v1/events/classify", files={"file": ("event.mseed", CER.read_bytes())})
    assert_answers_as_documented(r, status, example, "reader_crashed")
    assert "signal SIGSEGV" in r.json()["detail"]
    monkeypatch.undo()
    r = c.post("/v1/events/classify", files={"file": ("event.mseed", CER.read_bytes())})
    assert r.status_code == 200, r.text


def test_busy_answers_as_documented(make_client, tiny_event_bundle):
    """One worker, held by a sleeping job: an upload waits its deadline, then 503."""
    c = make_client(bundle=tiny_event_bundle.bundle, parse_workers=1, parse_deadline_s=0.3)
    status, example = documented(c, "/v1/events/classify", "post")["busy"]
    holder = threading.Thread(target=shared_pool(1, 1536).call, args=("time:sleep", (2,), 10))
    holder.start()
    time.sleep(0.5)
    try:
        r = c.post("/v1/events/classify", files={"file": ("event.mseed", CER.read_bytes())})
        assert_answers_as_documented(r, status, example, "busy")
        assert r.headers["Retry-After"] == "2"
    finally:
        holder.join()


def test_in_process_fallback_reads_under_the_lock(make_client, tiny_event_bundle):
    c = make_client(bundle=tiny_event_bundle.bundle, parse_workers=0)
    r = c.post("/v1/events/classify", files={"file": ("event.mseed", CER.read_bytes())})
    assert r.status_code == 200 and r.json()["stations"][0]["station"] == ".CER"
