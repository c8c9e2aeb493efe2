"""Upload readers: SEG-Y / SU / .npy round trips, resampling, regrouping, bad inputs."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
import segyio
from seislens.data.gather_files import UploadError, detect_format, read_gather, write_segy, write_su
from seislens.models.contract import GATHER_SHAPE


def _gather(seed: int = 0, nt: int = 1000, n_shots: int = 5, n_rec: int = 70) -> np.ndarray:
    """A random float32 gather (n_shots, nt, n_rec) in OpenFWI-like amplitudes."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_shots, nt, n_rec)) * 10).astype(np.float32)


def _ricker(t_ms: np.ndarray, peak_ms: float, f_hz: float = 15.0) -> np.ndarray:
    """Ricker wavelet of peak frequency f_hz centred at peak_ms, at times t_ms."""
    a = (np.pi * f_hz * (t_ms - peak_ms) / 1000.0) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float32)


def _rewrite(path: Path, order: np.ndarray | None = None, **set_words: int) -> None:
    """Rewrite a SEG-Y file in place: traces and headers permuted by ``order``, and
    the given header words (TraceField names) set to one value in every trace."""
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        traces = f.trace.raw[:]
        headers = [dict(h) for h in f.header]
        order = np.arange(len(headers)) if order is None else order
        new_headers = []
        for i in order:
            h = headers[i]
            for word, value in set_words.items():
                h[getattr(segyio.TraceField, word)] = value
            new_headers.append(h)
        f.header = new_headers
        f.trace.raw[:] = traces[order]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ibm", [False, True], ids=["ieee", "ibm"])
@pytest.mark.parametrize("revision", [0, 1])
def test_segy_round_trip(tmp_path: Path, ibm: bool, revision: int) -> None:
    gather = _gather()
    path = tmp_path / "g.sgy"
    write_segy(path, gather, ibm=ibm, revision=revision)
    up = read_gather(path)
    assert up.format == "segy"
    assert up.data.shape == GATHER_SHAPE and up.data.dtype == np.float32
    assert up.source_dt_ms == 1.0 and up.n_traces == 350
    np.testing.assert_allclose(up.data, gather, rtol=1e-6 if ibm else 0, atol=1e-5 if ibm else 0)
    assert f"rev {revision}" in up.notes[0]
    assert ("IBM" in up.notes[0]) == ibm


def test_segy_little_endian_and_int16(tmp_path: Path) -> None:
    gather = np.round(_gather() * 100)
    write_segy(tmp_path / "le.sgy", gather, endian="little")
    write_segy(tmp_path / "i16.sgy", gather, sample_format=3)
    for name in ("le.sgy", "i16.sgy"):
        np.testing.assert_array_equal(read_gather(tmp_path / name).data, gather)


@pytest.mark.parametrize("endian", ["little", "big"])
def test_su_round_trip(tmp_path: Path, endian: str) -> None:
    gather = _gather(1)
    path = tmp_path / "g.su"
    write_su(path, gather, endian=endian)
    assert path.stat().st_size == 350 * (240 + 4 * 1000)
    up = read_gather(path)
    assert up.format == "su"
    np.testing.assert_array_equal(up.data, gather)


def test_su_detected_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    write_su(path, _gather(2))
    assert detect_format(path) == "su"
    assert read_gather(path, filename="shot.su").format == "su"


@pytest.mark.parametrize("leading_one", [False, True])
def test_npy_round_trip(tmp_path: Path, leading_one: bool) -> None:
    gather = _gather(3)
    path = tmp_path / "g.npy"
    np.save(path, gather[None] if leading_one else gather.astype(np.float64))
    up = read_gather(path)
    assert up.format == "npy" and up.source_dt_ms == 1.0
    np.testing.assert_allclose(up.data, gather)


def test_suffix_is_only_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "really_segy.npy"
    write_segy(path, _gather())
    assert read_gather(path).format == "segy"


# --------------------------------------------------------------------------- time axis


@pytest.mark.parametrize("dt_ms", [2.0, 0.5])
def test_resampled_ricker_keeps_its_peak_time(tmp_path: Path, dt_ms: float) -> None:
    nt = round(1200 / dt_ms)
    t_src = np.arange(nt) * dt_ms
    peaks = np.array([101.0, 301.0, 503.0, 707.0, 901.0])
    gather = np.stack([np.repeat(_ricker(t_src, p)[:, None], 70, axis=1) for p in peaks])
    path = tmp_path / "ricker.sgy"
    write_segy(path, gather, dt_ms=dt_ms)
    up = read_gather(path)
    assert up.source_dt_ms == dt_ms
    assert any("resampled" in n for n in up.notes) and any("cut" in n for n in up.notes)
    t_out = np.arange(1000.0)
    for s, peak in enumerate(peaks):
        trace = up.data[s, :, 10]
        assert abs(t_out[np.argmax(trace)] - peak) <= 1.0
        np.testing.assert_allclose(trace, _ricker(t_out, peak), atol=0.02)


def test_long_record_cut_to_first_second(tmp_path: Path) -> None:
    gather = _gather(4, nt=1500)
    path = tmp_path / "long.sgy"
    write_segy(path, gather)
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather[:, :1000])
    assert any("cut from 1.500 s" in n for n in up.notes)


def test_short_record_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.sgy"
    write_segy(path, _gather(nt=250), dt_ms=2.0)
    with pytest.raises(
        UploadError, match=r"0\.500 s .*at least 0\.6 s.*shorter than 0\.6 s"
    ) as err:
        read_gather(path)
    assert err.value.reason == "too_short"


# --------------------------------------------------------------------------- geometry


def test_shuffled_traces_regrouped_by_headers(tmp_path: Path) -> None:
    gather = _gather(5)
    path = tmp_path / "shuffled.sgy"
    write_segy(path, gather)
    _rewrite(path, order=np.random.default_rng(0).permutation(350))
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather)
    assert "traces grouped into shots by FieldRecord" in up.notes


def test_grouped_by_source_position_with_scalar(tmp_path: Path) -> None:
    gather = _gather(6)
    path = tmp_path / "by_source.sgy"
    origin = 1000.25  # non-integer metres: scalar -100
    sources = origin + np.array([0.0, 170.0, 340.0, 520.0, 690.0])
    write_segy(path, gather, source_x_m=sources, receiver_x_m=origin + np.arange(70) * 10.0)
    _rewrite(path, order=np.random.default_rng(1).permutation(350), FieldRecord=7)
    with segyio.open(str(path), ignore_geometry=True) as f:
        assert set(f.attributes(segyio.TraceField.SourceGroupScalar)[:]) == {-100}
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather)
    assert "traces grouped into shots by source position" in up.notes
    assert "line origin x = 1000.25 m (the smallest source or receiver x)" in up.notes


def test_receivers_by_offset_then_file_order(tmp_path: Path) -> None:
    gather = _gather(7)
    path = tmp_path / "offset.sgy"
    write_segy(path, gather)
    _rewrite(path, GroupX=0)
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather)
    assert "receivers ordered by offset" in up.notes
    _rewrite(path, offset=0, FieldRecord=0, SourceX=0)
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather)
    assert any("taken as stored shot by shot" in n for n in up.notes)


def test_shots_ordered_by_source_x(tmp_path: Path) -> None:
    gather = _gather(8)
    path = tmp_path / "reversed.sgy"
    write_segy(path, gather[::-1], src_x_cells=np.round(np.linspace(69, 0, 5)))
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, gather)


def test_uneven_shots_mapped_with_masks(tmp_path: Path) -> None:
    gather = _gather(9, n_shots=3)
    path = tmp_path / "three.sgy"
    write_segy(path, gather)  # shots at x = 0, 340, 690 m
    with open(path, "r+b") as fh:  # drop the last trace: 70, 70, 69
        fh.truncate(path.stat().st_size - (240 + 4000))
    up = read_gather(path)
    assert up.shot_mask.tolist() == [True, False, True, False, True]
    assert up.receiver_mask.sum(axis=1).tolist() == [70, 0, 70, 0, 69]
    np.testing.assert_array_equal(up.data[[0, 2]], gather[:2])
    np.testing.assert_array_equal(up.data[4, :, :69], gather[2, :, :69])
    assert not up.data[[1, 3]].any() and not up.data[4, :, 69].any()
    assert (
        "3 shots mapped to source slots 1, 3, 5 of 5 (x = 0, 340, 690 m); slots 2, 4 "
        "empty, zero-filled" in up.notes
    )


def test_partial_spread_masked(tmp_path: Path) -> None:
    gather = _gather(10, n_rec=60)
    path = tmp_path / "narrow.sgy"
    write_segy(path, gather, src_x_cells=np.array([0, 17, 34, 52, 69]))
    up = read_gather(path)
    assert up.shot_mask.all() and up.receiver_mask[:, :60].all()
    assert not up.receiver_mask[:, 60:].any() and not up.data[:, :, 60:].any()
    np.testing.assert_array_equal(up.data[:, :, :60], gather)
    assert any(n.startswith("60, 60, 60, 60, 60 of 70 grid receivers covered") for n in up.notes)


# --------------------------------------------------------------------------- bad inputs


def _expect(path: Path, pattern: str, filename: str | None = None) -> UploadError:
    """read_gather must raise UploadError whose message matches ``pattern``."""
    with pytest.raises(UploadError, match=pattern) as err:
        read_gather(path, filename=filename)
    assert isinstance(err.value, ValueError)
    return err.value


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.sgy"
    path.write_bytes(b"")
    _expect(path, r"'empty.sgy' is empty \(0 bytes\)")


def test_truncated_segy(tmp_path: Path) -> None:
    path = tmp_path / "cut.sgy"
    write_segy(path, _gather())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1234])
    _expect(path, r"truncated SEG-Y.*expected a whole number of traces")


def test_segy_with_zero_traces(tmp_path: Path) -> None:
    path = tmp_path / "none.sgy"
    write_segy(path, _gather())
    path.write_bytes(path.read_bytes()[:3600])
    _expect(path, r"SEG-Y file with 0 traces")


@pytest.mark.parametrize("n_lines", [3, 200])
def test_text_file_renamed_sgy(tmp_path: Path, n_lines: int) -> None:
    path = tmp_path / "notes.sgy"
    path.write_text("shot,receiver,amplitude\n" + "1,2,0.5\n" * n_lines)
    _expect(path, r"'notes.sgy' is not a readable SEG-Y file \(it looks like a text file\)")


def test_random_bytes_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    _expect(path, r"is not a SEG-Y, SU or \.npy gather", filename="x.dat")


def test_unsupported_sample_format(tmp_path: Path) -> None:
    path = tmp_path / "fmt4.sgy"
    write_segy(path, _gather())
    with open(path, "r+b") as fh:
        fh.seek(3224)
        fh.write((4).to_bytes(2, "big"))
    _expect(path, r"sample format code \(bytes 3225-3226\) is 4; expected one of 1 \(")


def test_zero_sample_interval(tmp_path: Path) -> None:
    path = tmp_path / "nodt.sgy"
    write_segy(path, _gather())
    with open(path, "r+b") as fh:
        fh.seek(3216)
        fh.write(b"\x00\x00")
    _rewrite(path, TRACE_SAMPLE_INTERVAL=0)
    _expect(path, r"gives no sample interval")


@pytest.mark.parametrize("interval_us", [32768, 40000, 65535])
@pytest.mark.parametrize("where", ["binary", "traces"])
def test_sample_interval_above_32767_us_is_read_unsigned(
    tmp_path: Path, interval_us: int, where: str
) -> None:
    """SEG-Y's interval words are unsigned: 40000 us is 40 ms (refused as too coarse),
    not a negative number taken for 'no interval'."""
    path = tmp_path / "coarse.sgy"
    write_segy(path, _gather())
    data = bytearray(path.read_bytes())
    data[3216:3218] = (interval_us if where == "binary" else 0).to_bytes(2, "big")
    if where == "traces":
        trace_bytes = 240 + 4 * int.from_bytes(data[3220:3222], "big")
        for start in range(3600, len(data), trace_bytes):
            data[start + 116 : start + 118] = interval_us.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    err = _expect(path, rf"sampled every {interval_us / 1000:g} ms \({interval_us} us\)")
    assert err.reason == "sample_interval"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("writer", ["segy", "su", "npy"])
def test_non_finite_samples(tmp_path: Path, bad: float, writer: str) -> None:
    gather = _gather()
    gather[2, 500, 7] = bad
    path = tmp_path / f"bad.{writer}"
    {"segy": write_segy, "su": write_su, "npy": np.save}[writer](path, gather)
    _expect(path, r"holds \d NaN and \d Inf samples .*expected finite amplitudes")


@pytest.mark.parametrize("writer", ["segy", "npy"])
def test_all_zero_gather(tmp_path: Path, writer: str) -> None:
    path = tmp_path / f"zero.{writer}"
    {"segy": write_segy, "npy": np.save}[writer](path, np.zeros(GATHER_SHAPE, np.float32))
    _expect(path, r"zero everywhere in its first second")


@pytest.mark.parametrize("shape", [(5, 1000), (2, 5, 1000, 70), (70, 1000, 5)])
def test_npy_wrong_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = tmp_path / "shape.npy"
    np.save(path, np.ones(shape, np.float32))
    _expect(path, re.escape(f"shape {shape}; expected (5, 1000, 70)"))


def test_npy_with_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.npy"
    array = np.empty(GATHER_SHAPE[:1], dtype=object)
    array[:] = [{"a": 1}] * 5
    np.save(path, array, allow_pickle=True)
    _expect(path, r"holds Python objects \(pickled data\)")


def test_raw_pickle_renamed_npy(tmp_path: Path) -> None:
    path = tmp_path / "evil2.npy"
    path.write_bytes(pickle.dumps({"gather": [1, 2, 3]}))
    _expect(path, r"is not a NumPy \.npy file")


def test_npy_complex_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "complex.npy"
    np.save(path, np.ones(GATHER_SHAPE, np.complex64))
    _expect(path, r"dtype complex64; expected real numbers")
    path = tmp_path / "cut.npy"
    np.save(path, _gather())
    path.write_bytes(path.read_bytes()[:5000])
    _expect(path, r"not a readable \.npy file")


# --------------------------------------------------------------------------- speed


def test_segy_read_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "fast.sgy"
    write_segy(path, _gather())
    read_gather(path)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        read_gather(path)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.05  # about 2 ms on an idle core; loose for shared machines


@pytest.mark.parametrize("delay_ms", [20, -20])
def test_recording_delay_shifts_to_shot_time(tmp_path: Path, delay_ms: int) -> None:
    nt = 1100
    t_record = delay_ms + np.arange(nt, dtype=np.float64)  # time after the shot
    trace = _ricker(t_record, 400.0)
    gather = np.broadcast_to(trace[None, :, None], (5, nt, 70)).copy()
    path = tmp_path / "delayed.sgy"
    write_segy(path, gather, delay_ms=delay_ms)
    up = read_gather(path)
    assert np.argmax(up.data[0, :, 0]) == 400
    np.testing.assert_allclose(up.data[0, :, 0], _ricker(np.arange(1000.0), 400.0), atol=1e-6)
    if delay_ms > 0:
        assert np.all(up.data[:, :delay_ms] == 0)


def test_recording_delay_too_late_refused(tmp_path: Path) -> None:
    path = tmp_path / "late.sgy"
    write_segy(path, _gather(nt=1000), delay_ms=1500)
    _expect(path, r"starts recording 1500 ms after the shot")
