"""Crafted miniSEED files that the upload checks refuse: the documented examples of
those refusals (:mod:`~seislens.service.error_docs`), the crash reproducers of the
tests and of ``bench/fuzz_uploads.py``.

Each function returns a file's bytes, written by ObsPy (and, for the reproducers,
patched the way the attacks found in issue 11 patched them). The budget examples sit
one step past the :class:`~seislens.service.settings.Settings` defaults.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from seislens.service.settings import Settings

_T0 = UTCDateTime(2020, 1, 1)
_DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}


def _write(stream: Stream, reclen: int = 512, encoding: str | None = None) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"encoding": encoding} if encoding else {}
    stream.write(buffer, format="MSEED", reclen=reclen, **kwargs)
    return buffer.getvalue()


def _trace(n: int, rate: float = 100.0, station: str = "STA", start: UTCDateTime = _T0) -> Trace:
    header = {"network": "XX", "station": station, "channel": "HHZ", "location": ""}
    data = (np.arange(n) % 7).astype(np.int32)
    return Trace(data, {**header, "sampling_rate": rate, "starttime": start})


def overfull_record() -> bytes:
    """One 4 KiB FLOAT64 record whose header declares 65,535 samples (it holds 505):
    libmseed decodes 512 KiB of whatever memory follows (a SIGBUS when read alone)."""
    trace = Trace(np.arange(100, dtype=np.float64), {"network": "XX", "station": "STA"})
    record = bytearray(_write(Stream([trace]), reclen=4096, encoding="FLOAT64"))
    record[30:32] = struct.pack(">H", 65535)
    return bytes(record)


def trailing_garbage(valid: bytes) -> bytes:
    """A valid file followed by bytes that are no record (libmseed logs, and two such
    reads at once in one process crashed the server)."""
    return valid + b"\x00garbage!" * 300


def too_many_traces() -> bytes:
    """One channel cut by gaps into one trace more than ``max_event_traces`` allows."""
    count = _DEFAULTS["max_event_traces"] + 1
    return _write(Stream([_trace(1, start=_T0 + 10.0 * i) for i in range(count)]), reclen=256)


def too_many_samples() -> bytes:
    """A 2.5 Hz channel declaring one sample past ``max_event_channel_samples`` at
    100 Hz (the rate windows are cut at): 54,001 samples, a few kilobytes."""
    limit = _DEFAULTS["max_event_channel_samples"]
    n = limit * 25 // 1000 + 1
    return _write(Stream([_trace(n, rate=2.5)]), reclen=4096, encoding="STEIM2")


def too_many_stations() -> bytes:
    """One more one-sample station than ``max_event_file_stations`` allows."""
    count = _DEFAULTS["max_event_file_stations"] + 1
    return _write(Stream([_trace(1, station=f"S{i:04d}") for i in range(count)]), reclen=256)


def many_short_traces(count: int = 40_002, samples: int = 2) -> bytes:
    """``count`` traces of ``samples`` samples each, 10 s apart, one 256-byte record
    apiece (issue 11's CPU blow-up: 40,002 of them took 16.5 s of a core). Built from
    one record written by ObsPy, its start time patched per copy (writing 40,002
    traces with ObsPy takes longer than the reading did)."""
    record = np.frombuffer(_write(Stream([_trace(samples)]), reclen=256), np.uint8)
    rows = np.tile(record, (count, 1))
    at = np.arange(count, dtype=np.int64) * 10  # seconds after _T0 (2020-01-01, day 1)
    day, second = 1 + at // 86400, at % 86400
    rows[:, 22:24] = day.astype(">u2").view(np.uint8).reshape(count, 2)
    rows[:, 24] = second // 3600
    rows[:, 25] = second // 60 % 60
    rows[:, 26] = second % 60
    return rows.tobytes()
