"""Reading miniSEED uploads: header checks and budgets before decoding (each refusal
says what it found and what is accepted), the messages never naming the server's paths,
and the windows a parse worker hands back."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from seislens.models.event_preprocess import EventInputError, EventPreprocessConfig
from seislens.service import recording_examples as ex
from seislens.service.recordings import (
    RecordingBudgets,
    read_miniseed,
    window_recording,
)
from seislens.service.settings import Settings

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
T0 = UTCDateTime(2020, 1, 1)
DEFAULTS = RecordingBudgets.from_settings()


def write(stream: Stream, reclen: int = 4096) -> bytes:
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED", reclen=reclen)
    return buffer.getvalue()


def refusal(
    tmp_path: Path, data: bytes, budgets: RecordingBudgets | None = None
) -> EventInputError:
    path = tmp_path / "upload-7f3a"
    path.write_bytes(data)
    with pytest.raises(EventInputError) as info:
        read_miniseed(path, "event.mseed", budgets)
    assert str(path) not in str(info.value) and "upload-7f3a" not in str(info.value)
    return info.value


def channel(n: int, rate: float, station: str = "STA", comp: str = "Z") -> Trace:
    data = (np.arange(n) % 11).astype(np.int32)
    header = {"network": "XX", "station": station, "channel": f"HH{comp}"}
    return Trace(data, {**header, "sampling_rate": rate, "starttime": T0})


def test_defaults_come_from_the_settings():
    s = Settings()
    assert (
        RecordingBudgets(
            s.max_event_file_stations,
            s.max_event_traces,
            s.max_event_channel_samples,
            s.max_event_total_samples,
        )
        == DEFAULTS
    )
    tight = RecordingBudgets.from_settings(Settings(max_event_traces=7))
    assert tight.max_traces == 7


def test_issue_low_rate_file_is_refused_from_its_headers(tmp_path):
    """The issue's 1.8 MB of 2.5 Hz data (10^6 samples a channel: 111 h, 4 × 10^7 at
    100 Hz) took 2.46 GB to resample; it is refused before a sample is decoded."""
    stream = Stream([channel(1_000_000, 2.5, comp=c) for c in "ZNE"])
    data = write(stream)
    t0 = time.perf_counter()
    exc = refusal(tmp_path, data)
    assert time.perf_counter() - t0 < 1.0
    assert exc.reason == "too_many_samples"
    text = str(exc)
    assert "declares 40,000,000 samples at 100 Hz (1,000,000 at 2.5 Hz, 111.1 h)" in text
    assert "accepted at most 2,160,000 per channel" in text


def test_issue_many_traces_file_is_refused_from_its_headers(tmp_path):
    """40,002 two-sample traces took 16.5 s of a core; refused at the trace budget."""
    data = ex.many_short_traces(40_002)
    t0 = time.perf_counter()
    exc = refusal(tmp_path, data)
    assert time.perf_counter() - t0 < 1.0
    assert exc.reason == "too_many_traces"
    assert "holds 40,002 traces" in str(exc) and "accepted at most 2,000" in str(exc)


@pytest.mark.parametrize(
    ("make", "reason", "words"),
    [
        (ex.too_many_traces, "too_many_traces", ("2,001 traces", "at most 2,000")),
        (ex.too_many_samples, "too_many_samples", ("2,160,040 samples at 100 Hz", "54,001")),
        (ex.too_many_stations, "too_many_stations", ("501 stations", "at most 500 per file")),
        (ex.overfull_record, "bad_record", ("declares 65535 FLOAT64 samples",)),
    ],
)
def test_documented_examples_sit_one_past_the_defaults(tmp_path, make, reason, words):
    exc = refusal(tmp_path, make())
    assert exc.reason == reason
    for word in words:
        assert word in str(exc), str(exc)


def test_total_budget_counts_every_channel(tmp_path):
    stream = Stream([channel(60_000, 100.0, comp=c) for c in "ZNE"])
    budgets = RecordingBudgets(10, 10, 60_000, 150_000)
    exc = refusal(tmp_path, write(stream), budgets)
    assert exc.reason == "too_many_samples"
    assert "declares 180,000 samples at 100 Hz over its 3 channels" in str(exc)
    assert "accepted at most 150,000 in total" in str(exc)


def test_faster_channels_count_their_own_samples(tmp_path):
    """200 Hz data is held at 200 Hz before it is resampled down: its own count."""
    stream = Stream([channel(13_000, 200.0)])
    exc = refusal(tmp_path, write(stream), RecordingBudgets(10, 10, 12_000, 10**9))
    assert "declares 13,000 samples at 100 Hz (13,000 at 200 Hz" in str(exc)


def test_trailing_garbage_is_a_bad_record_and_text_is_not_miniseed(tmp_path):
    exc = refusal(tmp_path, ex.trailing_garbage(CER.read_bytes()))
    assert exc.reason == "bad_record" and "the record at byte 36864" in str(exc)
    exc = refusal(tmp_path, b"This is not seismic data.\n" * 100)
    assert exc.reason == "unknown_format" and "not a readable miniSEED file" in str(exc)


def test_sac_is_named_as_another_format(tmp_path):
    buffer = io.BytesIO()
    channel(9000, 100.0).write(buffer, format="SAC")
    exc = refusal(tmp_path, buffer.getvalue())
    assert exc.reason == "unknown_format" and "it looks like SAC data" in str(exc)


def test_window_recording_is_what_a_worker_returns(tmp_path):
    result = window_recording(
        str(CER), "cer.mseed", EventPreprocessConfig(), None, None, 50, DEFAULTS
    )
    assert result.stations == [".CER"] and result.traces == 3 and result.skipped == []
    [window] = result.windows
    assert window.waveform.shape == (3, 6000) and window.input_sampling_rate_hz == 150.0
    assert set(result.seconds) == {"read", "preprocess"}
