"""miniSEED record headers checked before libmseed: ObsPy's own test files (real
recordings and its collection of odd ones), the crash reproducers of issue 11, and
mutated real files (hypothesis) — the NumPy scan and the per-record scan always agree."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import obspy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obspy import Stream, Trace, UTCDateTime
from seislens.service import recording_examples as ex
from seislens.service.mseed_records import RecordError, _scan_each, scan_records

OBSPY = Path(obspy.__file__).parent
MSEED_DATA = OBSPY / "io/mseed/tests/data"
CER = OBSPY / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"

SEEDS = {
    "cer": CER,  # a real local event: 3 × 10,650 Steim-2 samples at 150 Hz
    "gaps": MSEED_DATA / "gaps.mseed",  # Steim-1, 4 traces
    "two_channels": MSEED_DATA / "CH.BALST..LH_two_channels",
    "float64": MSEED_DATA / "encoding/float64_Float64_littleEndian.mseed",
    "timing": MSEED_DATA / "timingquality.mseed",  # blockette 1001
}


def seed_bytes() -> dict[str, bytes]:
    out = {name: path.read_bytes() for name, path in SEEDS.items()}
    buffer = io.BytesIO()
    obspy.read().write(buffer, format="MSEED", reclen=512)  # obspy's example, FLOAT32
    out["example"] = buffer.getvalue()
    return out


SEED_BYTES = seed_bytes()


def scan_both(data: bytes) -> object:
    """The scan (or the refusal's message) of both paths, checked equal."""
    results = []
    for scan in (scan_records, lambda d: _scan_each(memoryview(d))):
        try:
            results.append(scan(data))
        except RecordError as exc:
            results.append(("refused", str(exc), exc.foreign))
    assert results[0] == results[1]
    return results[0]


# --------------------------------------------------------------------------- real files


def test_real_recording_is_summed_up_from_its_headers():
    scan = scan_records(CER.read_bytes())
    assert scan.records == 9 and scan.traces == 3 and scan.stations == {".CER"}
    assert scan.encodings == {"STEIM2"}
    for comp in "ZNE":
        total = scan.channels[f".CER.00.BH{comp}"]
        assert (total.samples, total.rate_hz) == (10650, 150.0)


@pytest.mark.parametrize(
    "name",
    [
        "gaps.mseed",
        "two_channels.mseed",
        "timingquality.mseed",
        "qualityflags.mseed",
        "three_records_zero_data_in_middle.mseed",
        "rt130_sr0_cropped.mseed",
        "bizarre/endiantest.le-header.be-data.mseed",
        "encoding/int16_INT16_bigEndian.mseed",
        "SRO_encoding.mseed",
    ],
)
def test_trace_count_is_obspys(name):
    """Traces counted from the headers are the traces ObsPy builds (gaps, quality
    flags, records without samples, little-endian headers, old encodings)."""
    path = MSEED_DATA / name
    assert scan_both(path.read_bytes()).traces == len(obspy.read(str(path), format="MSEED"))


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("fullseed.mseed", "a SEED control header (type 'V')"),
        ("brokenlastrecord.mseed", "the record at byte 4096 holds no miniSEED data record"),
        ("corrupt_one_extra_byte_at_end.mseed", "the last 1 bytes (from byte 512)"),
        ("single_record_plus_noise_record.mseed", "the record at byte 512 holds no"),
        ("bizarre/mseed_no_blkt_1000.mseed", "has no blockette 1000"),
        ("infinite-loop.mseed", "has a blockette at byte 3 of the record, outside its header"),
        ("not2.mseed", "too few for a miniSEED record header"),
    ],
)
def test_odd_files_are_refused_with_what_was_found(name, found):
    result = scan_both((MSEED_DATA / name).read_bytes())
    assert result[0] == "refused" and found in result[1], result


def test_crash_reproducers_are_refused_before_libmseed():
    overfull = scan_both(ex.overfull_record())
    assert overfull[0] == "refused" and not overfull[2]
    assert "declares 65535 FLOAT64 samples (8 bytes each)" in overfull[1]
    assert "hold at most 505" in overfull[1]
    garbage = scan_both(ex.trailing_garbage(CER.read_bytes()))
    assert garbage[0] == "refused" and not garbage[2]
    assert "the record at byte 36864 holds no miniSEED data record header" in garbage[1]
    assert "67 61 72 62 61 67 65" in garbage[1]  # what was found: b"garbage"


def test_text_is_foreign_and_an_empty_file_declares_nothing():
    text = scan_both(b"This is not seismic data, just a note about it.\n" * 20)
    assert text[0] == "refused" and text[2] is True
    assert scan_records(b"").records == 0


def _record(samples: int, encoding: str, reclen: int = 512) -> bytearray:
    trace = Trace(np.arange(samples).astype(np.int32 if encoding != "FLOAT64" else np.float64))
    buffer = io.BytesIO()
    trace.write(buffer, format="MSEED", reclen=reclen, encoding=encoding)
    return bytearray(buffer.getvalue()[:reclen])


@pytest.mark.parametrize(
    ("encoding", "capacity"),
    # 512-byte records, Steim data from byte 64: 448 bytes = 7 frames of 15 words;
    # uncompressed data from byte 56: 456 bytes
    [("STEIM1", (7 * 15 - 2) * 4), ("STEIM2", (7 * 15 - 2) * 7), ("INT32", 456 // 4)],
)
def test_declared_samples_must_fit_the_record(encoding, capacity):
    record = _record(10, encoding)
    assert struct.unpack(">H", record[44:46]) == ((64,) if encoding != "INT32" else (56,))
    record[30:32] = struct.pack(">H", capacity)
    assert scan_both(bytes(record)).records == 1  # at capacity: fine (for the header)
    record[30:32] = struct.pack(">H", capacity + 1)
    refused = scan_both(bytes(record))
    assert refused[0] == "refused" and f"hold at most {capacity}" in refused[1]


def test_undecodable_encoding_and_bad_record_length_are_refused():
    record = _record(10, "STEIM2")
    record[52] = 19  # blockette 1000 at 48: encoding byte
    assert "encoding 19 (STEIM3)" in scan_both(bytes(record))[1]
    record = _record(10, "STEIM2")
    record[54] = 30  # record length 2^30
    assert "a record length of 2^30 bytes" in scan_both(bytes(record))[1]
    record = _record(10, "STEIM2")
    record[54] = 12  # 4096 bytes declared, 512 present
    assert "declares 4096 bytes but only 512 remain" in scan_both(bytes(record))[1]


def test_uniform_scan_finds_a_bad_record_deep_in_a_large_file():
    """48,000 records (12 MB) scanned with NumPy several times faster than record by
    record (0.07 s against 0.7 s on an idle core); one broken late is named by its
    offset."""
    import time

    trace = Trace((np.arange(2_400_000) % 5).astype(np.int32), {"sampling_rate": 100.0})
    buffer = io.BytesIO()
    Stream([trace]).write(buffer, format="MSEED", reclen=256, encoding="INT32")
    data = bytearray(buffer.getvalue())
    n = len(data) // 256
    t0 = time.perf_counter()
    scan = scan_records(bytes(data))
    t1 = time.perf_counter()
    assert _scan_each(memoryview(bytes(data))) == scan
    assert time.perf_counter() - t1 > 3 * (t1 - t0)
    assert scan.records == n == 48_000 and scan.traces == 1
    assert scan.channels["..."].samples == 2_400_000
    data[(n - 3) * 256 + 6] = ord("X")
    with pytest.raises(RecordError, match=f"the record at byte {(n - 3) * 256} holds no"):
        scan_records(bytes(data))


def test_contiguity_follows_start_times():
    """Records of one channel continue a trace only when their first sample is due."""
    t0 = UTCDateTime(2020, 1, 1)
    header = {"sampling_rate": 100.0}
    pieces = [Trace(np.zeros(1000, np.int32), {**header, "starttime": t0 + s}) for s in (0, 10, 30)]
    buffer = io.BytesIO()
    Stream(pieces).write(buffer, format="MSEED", reclen=512)
    assert scan_both(buffer.getvalue()).traces == 2  # 0–10 s, 10–20 s joined; 30 s apart


# --------------------------------------------------------------------------- fuzzing

_FIELDS = (30, 44, 46, 52, 54, 20, 22, 32, 34)
"""Header bytes the mutations aim at: samples, data and blockette offsets, encoding and
length (blockette 1000 at 48), year, day, rate factor and multiplier."""


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A real file with 1–4 mutations: random bytes anywhere or in a header, header
    fields set to extremes, truncation, appended bytes, a record repeated."""
    data = bytearray(SEED_BYTES[draw(st.sampled_from(sorted(SEED_BYTES)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["byte", "header", "field", "cut", "append", "repeat"]))
        if not data:
            break
        if kind == "byte":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "header":
            at = draw(st.integers(0, len(data) // 512)) * 512 + draw(st.integers(0, 63))
            if at < len(data):
                data[at] = draw(st.integers(0, 255))
        elif kind == "field":
            at = draw(st.integers(0, len(data) // 512)) * 512 + draw(st.sampled_from(_FIELDS))
            value = draw(st.sampled_from([0, 1, 7, 0x7FFF, 0xFFFF])) | 0
            if at + 2 <= len(data):
                data[at : at + 2] = struct.pack(">H", value)
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=700))
        else:
            at = draw(st.integers(0, max(0, len(data) // 512 - 1))) * 512
            data += data[at : at + 512]
    return bytes(data)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated_files())
def test_fuzzed_headers_both_scans_agree(data):
    """Whatever the bytes, the scan answers (a summary or a RecordError), and the NumPy
    scan answers exactly as the per-record reference."""
    scan_both(data)
