"""Upload readers: a shot gather as SEG-Y, Seismic Unix or NumPy, to OpenFWI's layout.

Every reader returns the gather as a float32 array of shape ``(5, 1000, 70)``:
source slots × time samples (dt = 1 ms, t = 0 … 999 ms) × receivers every 10 m, the
convention of OpenFWI's ``data{i}.npy`` files (the model's frame), with a shot mask
(5,) and a receiver mask (5, 70) saying which slots and grid receivers hold data.
Amplitudes are passed through unchanged (any scale and polarity; the preprocessing
normalises per gather).

Rules the readers apply:

- **Format** is decided by the file's content: ``.npy`` by its magic bytes
  (``\\x93NUMPY``), SEG-Y by a 3200-byte textual header followed by a 400-byte binary
  header with a plausible sample count and a supported sample format code (1 IBM
  float, 2 int32, 3 int16, 5 IEEE float, 8 int8), SU by 240-byte trace headers with no
  file header. The file name's suffix (``.sgy``, ``.segy``, ``.su``, ``.npy``) only
  breaks ties and picks the most useful error message.
- **Geometry** (SEG-Y, SU): any 2-D line of 1-10 shots, receivers 5-25 m apart,
  is mapped onto the frame from SourceX/GroupX (scalar applied) or offsets — see
  :mod:`seislens.data.gather_geometry` for the rules (source slots within 40 m,
  linear interpolation onto the 10 m grid, at least 35 of 70 grid receivers per shot).
  Every mapping step is a line of ``notes``.
- **Time**: t = 0 is the shot. A sample interval of 0.25-8 ms other than 1 ms is
  resampled to 1 ms with a polyphase anti-aliasing filter (``scipy.signal.resample_poly``).
  A recording delay (DelayRecordingTime) shifts the samples: a positive one is filled
  with zeros, a negative one drops the samples before the shot. Records reaching past
  1 s are cut to their first second (1000 samples); records ending 0.6-1 s after the
  shot are zero-padded to 1 s; shorter ones are refused.
- **Refused** (``UploadError``): empty files, unknown formats, truncated files, files
  with 0 traces, an acquisition that cannot be mapped (``'geometry'``), a sample
  interval outside 0.25-8 ms, records shorter than 0.6 s, NaN/Inf samples, all-zero
  gathers, ``.npy`` files of another shape than (5, 1000, 70) (arrays carry no
  geometry), a non-numeric dtype or holding pickled objects.

``write_segy`` and ``write_su`` write gathers in the same geometry as OpenFWI (5
sources at x = round(linspace(0, 69, 5)) cells, a receiver in every 10 m cell,
coordinates in metres); tests, benchmarks and the README use them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import segyio
import segyio.su
from seislens.data.gather_geometry import MAX_SHOTS, GeometryError, map_to_frame
from seislens.models.contract import GATHER_DT_MS as TARGET_DT_MS
from seislens.models.contract import GATHER_SHAPE, N_RECEIVERS, N_SHOTS, N_TIME

_TARGET_DT_US = 1000
_TEXT_HEADER_BYTES = 3200
_BINARY_HEADER_BYTES = 400
_FILE_HEADER_BYTES = _TEXT_HEADER_BYTES + _BINARY_HEADER_BYTES
_TRACE_HEADER_BYTES = 240
_NPY_MAGIC = b"\x93NUMPY"

#: SEG-Y sample format codes this reader accepts, with their names and sizes (bytes).
SEGY_FORMATS: dict[int, tuple[str, int]] = {
    1: ("4-byte IBM float", 4),
    2: ("4-byte signed integer", 4),
    3: ("2-byte signed integer", 2),
    5: ("4-byte IEEE float", 4),
    8: ("1-byte signed integer", 1),
}
_SUFFIX_HINTS = {".sgy": "segy", ".segy": "segy", ".su": "su", ".npy": "npy"}
_FORMAT_NAMES = {"segy": "SEG-Y", "su": "SU (Seismic Unix)", "npy": "NumPy .npy"}
_UINT16 = 0xFFFF
#: Accepted sample intervals (us), resampled to 1 ms.
MIN_INTERVAL_US, MAX_INTERVAL_US = 250, 8000
#: Shortest accepted record (ms after the shot); shorter records up to 1 s are zero-padded.
MIN_RECORD_MS = 600

GatherFormat = Literal["segy", "su", "npy"]


class UploadError(ValueError):
    """An uploaded gather that cannot be used; the message says what was found and
    what is expected (the API answers it with HTTP 422).

    Args:
        message: what was found and what is expected.
        reason: a short stable label of what is wrong ('empty', 'unknown_format',
            'truncated', 'geometry', ...): the API answer's ``reason`` and its metrics
            label.
    """

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class GatherUpload:
    """A gather read from an upload.

    Attributes:
        data: float32 array (5, 1000, 70) — source slot × time (dt 1 ms) × grid
            receiver (x = 0 … 690 m every 10 m); empty slots and gaps are zero.
        format: the detected file format, ``'segy'``, ``'su'`` or ``'npy'``.
        source_dt_ms: the file's own sample interval in milliseconds (1.0 for .npy).
        n_traces: traces in the file (350 for .npy).
        notes: what the reader did beyond a plain read (resampling, cutting, ordering,
            mapping the acquisition onto the frame).
        shot_mask: bool (5,) — source slots that hold a shot (all True for .npy).
        receiver_mask: bool (5, 70) — grid receivers that hold data, per slot (False
            for empty slots, gaps and beyond the spread).
    """

    data: np.ndarray
    format: GatherFormat
    source_dt_ms: float
    n_traces: int
    notes: list[str] = field(default_factory=list)
    shot_mask: np.ndarray = field(default_factory=lambda: np.ones(N_SHOTS, dtype=bool))
    receiver_mask: np.ndarray = field(
        default_factory=lambda: np.ones((N_SHOTS, N_RECEIVERS), dtype=bool)
    )

    @property
    def partial_geometry(self) -> bool:
        """Whether the frame is only partly covered: a source slot without its shot, or
        less than ``FULL_FRAME_COVERAGE`` of the (shot, receiver) grid holding data."""
        coverage = float(np.mean(self.receiver_mask))
        return not bool(np.all(self.shot_mask)) or coverage < FULL_FRAME_COVERAGE


FULL_FRAME_COVERAGE = 0.95
"""A gather filling at least this fraction of the 5 × 70 frame counts as complete (an
interpolated spread may miss its last grid point)."""


@dataclass(frozen=True)
class _TraceLayout:
    """Where the traces of a SEG-Y or SU file lie, as read from its headers."""

    endian: Literal["big", "little"]
    n_samples: int
    format_code: int
    revision: int = 0


# --------------------------------------------------------------------------- detection


def detect_format(path: Path, filename: str | None = None) -> GatherFormat:
    """Decide whether ``path`` holds a SEG-Y, SU or .npy file, from its content.

    Args:
        path: the file on disk.
        filename: the name the client gave the upload; its suffix is only a hint.

    Raises:
        UploadError: the file is empty or is none of the three formats (the message
            says why the hinted, or each, format does not fit).
    """
    path = Path(path)
    size = _file_size(path)
    head = _read_head(path, _FILE_HEADER_BYTES + _TRACE_HEADER_BYTES)
    hint = _suffix_hint(path, filename)
    name = _display_name(path, filename)
    if size == 0:
        raise UploadError(
            f"'{name}' is empty (0 bytes); expected a SEG-Y, SU or .npy gather", reason="empty"
        )
    if head.startswith(_NPY_MAGIC):
        return "npy"
    segy, segy_why = _sniff_segy(head, size)
    su, su_why = _sniff_su(head, size)
    if segy and su:
        return "su" if hint == "su" else "segy"
    if segy:
        return "segy"
    if su:
        return "su"
    raise UploadError(
        _unknown_format_message(name, head, hint, segy_why, su_why), reason="unknown_format"
    )


def _unknown_format_message(
    name: str, head: bytes, hint: str | None, segy_why: str, su_why: str
) -> str:
    """The message for a file that is none of the accepted formats."""
    text = " (it looks like a text file)" if _looks_like_text(head) else ""
    if hint == "segy":
        return f"'{name}' is not a readable SEG-Y file{text}: {segy_why}"
    if hint == "su":
        return f"'{name}' is not a readable SU file{text}: {su_why}"
    if hint == "npy":
        return (
            f"'{name}' is not a NumPy .npy file{text}: it does not start with the "
            "'\\x93NUMPY' magic bytes"
        )
    return (
        f"'{name}' is not a SEG-Y, SU or .npy gather{text}: as SEG-Y, {segy_why}; as SU, {su_why}"
    )


def _sniff_segy(head: bytes, size: int) -> tuple[_TraceLayout | None, str]:
    """Check the 400-byte binary header for a plausible SEG-Y layout, big then little
    endian. Returns the layout or None with the reason it does not fit."""
    if size < _FILE_HEADER_BYTES:
        return None, (
            f"the file is {size} bytes, shorter than the 3600-byte SEG-Y file header "
            "(3200-byte textual + 400-byte binary header)"
        )
    reasons = []
    for endian in ("big", "little"):
        layout, why = _segy_layout(head, endian)
        if layout is not None:
            return layout, ""
        reasons.append(why)
    return None, reasons[0]


def _segy_layout(head: bytes, endian: Literal["big", "little"]) -> tuple[_TraceLayout | None, str]:
    """Read sample count and format code from the binary header in one byte order."""
    order = ">" if endian == "big" else "<"
    n_samples, _, format_code = struct.unpack_from(order + "HHh", head, 3220)
    if n_samples == 0 and len(head) >= _FILE_HEADER_BYTES + _TRACE_HEADER_BYTES:
        (n_samples,) = struct.unpack_from(order + "H", head, _FILE_HEADER_BYTES + 114)
    if format_code not in SEGY_FORMATS:
        accepted = ", ".join(f"{k} ({v[0]})" for k, v in SEGY_FORMATS.items())
        return None, (
            f"the binary header's sample format code (bytes 3225-3226) is {format_code}; "
            f"expected one of {accepted}"
        )
    if n_samples == 0:
        return None, "the binary header's sample count (bytes 3221-3222) is 0"
    (revision,) = struct.unpack_from(order + "H", head, 3500)  # 0x0100 is rev 1
    return _TraceLayout(endian, int(n_samples), int(format_code), revision >> 8), ""


def _sniff_su(head: bytes, size: int) -> tuple[_TraceLayout | None, str]:
    """Check the first 240-byte trace header for a plausible SU layout (4-byte float
    samples, a whole number of equal traces), little then big endian."""
    if size < _TRACE_HEADER_BYTES:
        return None, f"the file is {size} bytes, shorter than one 240-byte trace header"
    why = ""
    for endian in ("little", "big"):
        order = "<" if endian == "little" else ">"
        n_samples, dt_us = struct.unpack_from(order + "HH", head, 114)
        trace_bytes = _TRACE_HEADER_BYTES + 4 * n_samples
        if n_samples == 0 or dt_us == 0:
            why = why or (
                f"the first trace header gives {n_samples} samples (bytes 115-116) at "
                f"{dt_us} us (bytes 117-118); expected both above 0"
            )
            continue
        if size % trace_bytes:
            why = why or (
                f"{size} bytes is not a whole number of {trace_bytes}-byte traces "
                f"(240-byte header + {n_samples} samples x 4 bytes)"
            )
            continue
        return _TraceLayout(endian, int(n_samples), 5), ""
    return None, why


def _looks_like_text(head: bytes) -> bool:
    """True when the first bytes are printable ASCII (a text file, not a gather)."""
    sample = head[:512]
    if not sample or b"\x00" in sample:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable / len(sample) > 0.95


# --------------------------------------------------------------------------- reading


def read_gather(path: Path, filename: str | None = None) -> GatherUpload:
    """Read an uploaded shot gather into OpenFWI's (5, 1000, 70) float32 layout.

    Args:
        path: the uploaded file on disk (segyio opens paths only).
        filename: the client's name for the upload; its suffix is a format hint and
            it names the file in error messages.

    Returns:
        GatherUpload with ``data`` (5, 1000, 70) float32, dt 1 ms.

    Raises:
        UploadError: for every input that cannot be used, with what was found and
            what is expected. No other exception type leaves this function.
    """
    try:
        fmt = detect_format(path, filename)
        name = _display_name(Path(path), filename)
        if fmt == "npy":
            return _read_npy(Path(path), name)
        return _read_traces_file(Path(path), name, fmt)
    except UploadError:
        raise
    except Exception as exc:  # the contract: every failure is an UploadError
        raise UploadError(
            f"could not read '{_display_name(Path(path), filename)}': {type(exc).__name__}: {exc}",
            reason="unreadable",
        ) from exc


def _read_traces_file(path: Path, name: str, fmt: Literal["segy", "su"]) -> GatherUpload:
    """Read a SEG-Y or SU file: traces, headers, shot grouping and resampling."""
    size = _file_size(path)
    head = _read_head(path, _FILE_HEADER_BYTES + _TRACE_HEADER_BYTES)
    if fmt == "segy":
        layout, _ = _sniff_segy(head, size)
        _check_segy_size(name, head, size, layout)
    else:
        layout, _ = _sniff_su(head, size)
    assert layout is not None  # detect_format accepted this format
    traces, headers, bin_interval = _load_with_segyio(path, name, fmt, layout)
    notes = [_describe_layout(fmt, layout)]
    interval_us = _sample_interval_us(name, bin_interval, headers["interval"], notes)
    _check_finite(name, traces)
    try:
        frame = map_to_frame(name, traces, headers, notes)
    except GeometryError as exc:
        raise UploadError(str(exc), reason="geometry") from exc
    delay_ms = _delay_ms(name, headers["delay"])
    data = _to_target_time(name, frame.traces, interval_us, delay_ms, notes)
    gather = np.ascontiguousarray(data.transpose(0, 2, 1), dtype=np.float32)
    _check_not_zero(name, gather)
    return GatherUpload(
        gather,
        fmt,
        interval_us / 1000.0,
        int(traces.shape[0]),
        notes,
        shot_mask=frame.shot_mask,
        receiver_mask=frame.receiver_mask,
    )


def _check_segy_size(name: str, head: bytes, size: int, layout: _TraceLayout | None) -> None:
    """Refuse SEG-Y files with 0 traces or a size that is not a whole number of traces."""
    assert layout is not None
    order = ">" if layout.endian == "big" else "<"
    (n_ext,) = struct.unpack_from(order + "h", head, 3504)
    if n_ext < 0:
        return  # a variable number of extended headers: segyio decides
    data_bytes = size - _FILE_HEADER_BYTES - n_ext * _TEXT_HEADER_BYTES
    bytes_per_sample = SEGY_FORMATS[layout.format_code][1]
    trace_bytes = _TRACE_HEADER_BYTES + layout.n_samples * bytes_per_sample
    if data_bytes < 0:
        raise UploadError(
            f"'{name}' is truncated: its binary header announces {n_ext} extended textual "
            f"headers ({n_ext * _TEXT_HEADER_BYTES} bytes) but the file ends after {size} bytes",
            reason="truncated",
        )
    if data_bytes == 0:
        raise UploadError(
            f"'{name}' is a SEG-Y file with 0 traces (headers only); expected the traces "
            f"of 1-{MAX_SHOTS} shots (the model's frame: {N_SHOTS} shots x {N_RECEIVERS} "
            "receivers)",
            reason="no_traces",
        )
    if data_bytes % trace_bytes:
        raise UploadError(
            f"'{name}' is a truncated SEG-Y file: {data_bytes} bytes of traces is "
            f"{data_bytes / trace_bytes:.2f} traces of {trace_bytes} bytes (240-byte header + "
            f"{layout.n_samples} samples x {bytes_per_sample} bytes); expected a whole number "
            "of traces",
            reason="truncated",
        )


_HEADER_FIELDS = {
    "field_record": segyio.TraceField.FieldRecord,
    "source_x": segyio.TraceField.SourceX,
    "source_y": segyio.TraceField.SourceY,
    "group_x": segyio.TraceField.GroupX,
    "offset": segyio.TraceField.offset,
    "scalar": segyio.TraceField.SourceGroupScalar,
    "interval": segyio.TraceField.TRACE_SAMPLE_INTERVAL,
    "delay": segyio.TraceField.DelayRecordingTime,
}


def _load_with_segyio(
    path: Path, name: str, fmt: Literal["segy", "su"], layout: _TraceLayout
) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Bulk-read all traces (n_traces, n_samples) and the header words the grouping
    needs (each an int array (n_traces,)); also the binary header's interval in us
    (0 for SU)."""
    opener = segyio.open if fmt == "segy" else segyio.su.open
    try:
        with opener(str(path), mode="r", ignore_geometry=True, endian=layout.endian) as f:
            f.mmap()
            traces = np.asarray(f.trace.raw[:])
            headers = {
                key: np.asarray(f.attributes(word)[:], dtype=np.int64)
                for key, word in _HEADER_FIELDS.items()
            }
            bin_interval = int(f.bin[segyio.BinField.Interval]) if fmt == "segy" else 0
        # segyio reads the 2-byte interval words as signed; SEG-Y defines them unsigned
        # (us): 32768-65535 us must not read as negative (and then as "no interval")
        bin_interval &= _UINT16
        headers["interval"] &= _UINT16
    except UploadError:
        raise
    except Exception as exc:
        raise UploadError(
            f"'{name}' could not be read as {_FORMAT_NAMES[fmt]} (segyio: {exc}); expected "
            "equal-length traces of a supported sample format",
            reason="unreadable",
        ) from exc
    if traces.ndim != 2 or traces.shape[0] == 0:
        raise UploadError(
            f"'{name}' holds 0 traces; expected the traces of 1-{MAX_SHOTS} shots",
            reason="no_traces",
        )
    return traces.astype(np.float32, copy=False), headers, bin_interval


def _describe_layout(fmt: Literal["segy", "su"], layout: _TraceLayout) -> str:
    """A one-line note on what was read, e.g. 'SEG-Y rev 1, big-endian, 4-byte IBM float'."""
    if fmt == "su":
        return f"SU, {layout.endian}-endian, 4-byte IEEE float"
    return (
        f"SEG-Y rev {layout.revision}, {layout.endian}-endian, "
        f"{SEGY_FORMATS[layout.format_code][0]}"
    )


def _sample_interval_us(
    name: str, bin_interval: int, trace_intervals: np.ndarray, notes: list[str]
) -> int:
    """The sample interval in microseconds: the binary header's when set, else the
    trace headers' (which must agree with each other)."""
    nonzero = np.unique(trace_intervals[trace_intervals > 0])
    if bin_interval <= 0 and nonzero.size > 1:
        raise UploadError(
            f"'{name}' has traces with different sample intervals ({_list_us(nonzero)} us); "
            "expected one sample interval for the whole gather",
            reason="sample_interval",
        )
    if bin_interval > 0:
        if nonzero.size and not np.all(nonzero == bin_interval):
            notes.append(
                f"binary header sample interval {bin_interval} us used; trace headers say "
                f"{_list_us(nonzero)} us"
            )
        return _accepted_interval(name, int(bin_interval))
    if nonzero.size == 0:
        raise UploadError(
            f"'{name}' gives no sample interval: it is 0 in the binary header (bytes "
            "3217-3218) and in the trace headers (bytes 117-118); expected the interval "
            "in microseconds (1000 for 1 ms)",
            reason="sample_interval",
        )
    return _accepted_interval(name, int(nonzero[0]))


def _accepted_interval(name: str, interval_us: int) -> int:
    """``interval_us`` when within 0.25-8 ms, else UploadError ('sample_interval')."""
    if MIN_INTERVAL_US <= interval_us <= MAX_INTERVAL_US:
        return interval_us
    raise UploadError(
        f"'{name}' is sampled every {interval_us / 1000:g} ms ({interval_us} us); accepted "
        f"{MIN_INTERVAL_US / 1000:g}-{MAX_INTERVAL_US / 1000:g} ms (resampled to 1 ms)",
        reason="sample_interval",
    )


def _list_us(values: np.ndarray) -> str:
    """'1000, 2000' from an int array, at most 5 values."""
    shown = ", ".join(str(int(v)) for v in values[:5])
    return shown + (", ..." if values.size > 5 else "")


def _check_finite(name: str, samples: np.ndarray) -> None:
    """Refuse NaN or Inf samples; ``samples`` has traces on its first axis."""
    finite = np.isfinite(samples)
    if finite.all():
        return
    n_nan = int(np.isnan(samples).sum())
    n_inf = int(finite.size - finite.sum()) - n_nan
    first = int(np.argwhere(~finite)[0][0])
    raise UploadError(
        f"'{name}' holds {n_nan} NaN and {n_inf} Inf samples (first in trace {first + 1}); "
        "expected finite amplitudes",
        reason="non_finite",
    )


def _check_not_zero(name: str, gather: np.ndarray) -> None:
    """Refuse a gather whose used window (first second) is zero everywhere."""
    if not np.any(gather):
        raise UploadError(
            f"'{name}' is zero everywhere in its first second; expected a recorded gather "
            "with non-zero amplitudes",
            reason="all_zero",
        )


# --------------------------------------------------------------------------- time axis


def _to_target_time(
    name: str, traces: np.ndarray, interval_us: int, delay_ms: int, notes: list[str]
) -> np.ndarray:
    """Resample (..., n_samples) at ``interval_us`` whose first sample lies at
    ``delay_ms`` after the shot to (..., 1000) at 1 ms from the shot (t = 0 … 999 ms).

    Records reaching past 1 s keep their first second; records ending between 0.6 and
    1 s after the shot are zero-padded to 1 s, shorter ones refused. A positive delay
    is filled with zeros before the first sample; a negative delay (recording started
    before the shot) drops the samples before t = 0.
    """
    n_samples = traces.shape[-1]
    end_us = delay_ms * 1000 + n_samples * interval_us
    if delay_ms >= N_TIME:
        raise UploadError(
            f"'{name}' starts recording {delay_ms} ms after the shot (DelayRecordingTime, "
            "trace header bytes 109-110); expected it to start within the first second",
            reason="recording_delay",
        )
    if end_us < MIN_RECORD_MS * _TARGET_DT_US:
        starts = f" starting at {delay_ms} ms" if delay_ms else ""
        raise UploadError(
            f"'{name}' records up to {end_us / 1e6:.3f} s ({n_samples} samples at "
            f"{interval_us / 1000:g} ms{starts}); expected at least {MIN_RECORD_MS / 1000:g} s. "
            f"Records shorter than {MIN_RECORD_MS / 1000:g} s are refused, shorter than 1 s "
            "zero-padded to 1 s, longer ones cut to their first second",
            reason="too_short",
        )
    n_out = N_TIME - delay_ms  # 1 ms samples needed from the first recorded one
    if interval_us != _TARGET_DT_US:
        traces = _resample(traces, interval_us, n_out)
        notes.append(f"resampled from {interval_us / 1000:g} ms to 1 ms")
    if end_us > N_TIME * _TARGET_DT_US:
        notes.append(f"cut from {end_us / 1e6:.3f} s to the first 1 s")
    traces = _pad_to(traces[..., :n_out], n_out)
    if end_us < N_TIME * _TARGET_DT_US:
        notes.append(f"record ends at {end_us / 1e6:.3f} s; zero-padded to 1 s")
    if delay_ms > 0:
        notes.append(f"first {delay_ms} ms before recording started filled with zeros")
        pad = np.zeros((*traces.shape[:-1], delay_ms), dtype=traces.dtype)
        return np.concatenate([pad, traces], axis=-1)
    if delay_ms < 0:
        notes.append(f"first {-delay_ms} ms recorded before the shot dropped")
        return traces[..., -delay_ms:]
    return traces


def _pad_to(traces: np.ndarray, n_out: int) -> np.ndarray:
    """Traces (..., n) zero-padded at the end to (..., n_out) when shorter."""
    missing = n_out - traces.shape[-1]
    if missing <= 0:
        return traces
    pad = np.zeros((*traces.shape[:-1], missing), dtype=traces.dtype)
    return np.concatenate([traces, pad], axis=-1)


def _resample(traces: np.ndarray, interval_us: int, n_out: int) -> np.ndarray:
    """Polyphase resampling of (..., n) samples at ``interval_us`` to 1 ms, keeping the
    first sample's time. Only the input needed for ``n_out`` output samples (plus the
    filter's reach) is used, so the output may be shorter than the full record."""
    from scipy.signal import resample_poly

    ratio = Fraction(interval_us, _TARGET_DT_US)
    up, down = ratio.numerator, ratio.denominator
    reach = -(-10 * max(up, down) // up) + 2  # filter half-length in input samples
    needed = -(-n_out * down // up) + reach
    window = np.ascontiguousarray(traces[..., :needed], dtype=np.float32)
    flat = window.reshape(-1, window.shape[-1])  # 2-D is about twice as fast as 3-D
    out = resample_poly(flat, up, down, axis=-1)
    return out.reshape(*window.shape[:-1], out.shape[-1]).astype(np.float32, copy=False)


def _delay_ms(name: str, delays: np.ndarray) -> int:
    """The one DelayRecordingTime (ms) of all traces: time of the first sample after
    the shot."""
    distinct = np.unique(delays)
    if distinct.size > 1:
        raise UploadError(
            f"'{name}' has traces with different recording delays ({_list_us(distinct)} ms, "
            "DelayRecordingTime); expected one start time for the whole gather",
            reason="recording_delay",
        )
    return int(distinct[0])


# --------------------------------------------------------------------------- .npy


def _read_npy(path: Path, name: str) -> GatherUpload:
    """Read a .npy gather of shape (5, 1000, 70) or (1, 5, 1000, 70), checking its
    header (shape, dtype, no pickled objects) before loading the data."""
    shape, dtype = npy_header(path, name, GATHER_SHAPE)
    if shape not in (GATHER_SHAPE, (1, *GATHER_SHAPE)):
        raise UploadError(
            f"'{name}' holds an array of shape {shape}; expected {GATHER_SHAPE} "
            f"(shots, time samples at 1 ms, receivers) or {(1, *GATHER_SHAPE)}. A .npy "
            "array carries no geometry, so it must be the model's frame exactly; other "
            "acquisitions (fewer shots, other receiver spacings or sample intervals) are "
            "accepted as SEG-Y or SU, whose trace headers place them",
            reason="shape",
        )
    if dtype.kind not in "fiu":
        raise UploadError(
            f"'{name}' holds dtype {dtype}; expected real numbers (float32 preferred)",
            reason="dtype",
        )
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UploadError(
            f"'{name}' is not a readable .npy file: {exc}", reason="unreadable"
        ) from exc
    data = np.ascontiguousarray(array.reshape(GATHER_SHAPE), dtype=np.float32)
    notes = [] if dtype == np.float32 else [f"converted from {dtype} to float32"]
    _check_finite(name, data.transpose(0, 2, 1).reshape(-1, N_TIME))
    _check_not_zero(name, data)
    notes.append("sample interval taken as 1 ms (.npy files carry none)")
    return GatherUpload(data, "npy", TARGET_DT_MS, N_SHOTS * N_RECEIVERS, notes)


def npy_header(
    path: Path, name: str, expected_shape: tuple[int, ...]
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, refusing pickled (object) arrays (the
    message names ``expected_shape``); the data itself is not read."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if reader is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = reader(fh)
    except Exception as exc:
        raise UploadError(
            f"'{name}' has an unreadable .npy header: {exc}", reason="unreadable"
        ) from exc
    if dtype.hasobject:
        raise UploadError(
            f"'{name}' holds Python objects (pickled data), which are not accepted; "
            f"expected a numeric array of shape {expected_shape}",
            reason="pickle",
        )
    return tuple(int(s) for s in shape), dtype


# --------------------------------------------------------------------------- writing


def write_segy(
    path: Path,
    gather: np.ndarray,
    dt_ms: float = 1.0,
    ibm: bool = False,
    dx_m: float = 10.0,
    src_x_cells: np.ndarray | None = None,
    *,
    revision: int = 1,
    endian: Literal["big", "little"] = "big",
    sample_format: int | None = None,
    delay_ms: int = 0,
    source_x_m: np.ndarray | None = None,
    receiver_x_m: np.ndarray | None = None,
) -> None:
    """Write a gather (n_shots, nt, n_rec) as SEG-Y with segyio, traces shot by shot.

    Args:
        path: output file (overwritten).
        gather: amplitudes (n_shots, nt, n_rec), OpenFWI's layout.
        dt_ms: sample interval in milliseconds (a whole number of microseconds).
        ibm: write 4-byte IBM floats (format 1) instead of IEEE floats (format 5).
        dx_m: receiver spacing in metres; receiver j sits at x = j * dx_m.
        src_x_cells: source positions in receiver cells (n_shots,); by default
            round(linspace(0, n_rec - 1, n_shots)).
        revision: SEG-Y revision written in the binary header, 0 or 1.
        endian: byte order, 'big' (the standard) or 'little'.
        sample_format: a format code (1, 2, 3, 5, 8) overriding ``ibm``; integer
            formats round the amplitudes.
        delay_ms: DelayRecordingTime, the first sample's time after the shot (ms).
        source_x_m: source x in metres (n_shots,), overriding ``src_x_cells``.
        receiver_x_m: receiver x in metres, (n_rec,) for every shot or
            (n_shots, n_rec) per shot, overriding ``dx_m``.
    """
    gather = _check_gather_to_write(gather)
    fmt = sample_format if sample_format is not None else (1 if ibm else 5)
    if fmt not in SEGY_FORMATS:
        raise ValueError(f"sample_format {fmt} is not one of {sorted(SEGY_FORMATS)}")
    if revision not in (0, 1):
        raise ValueError(f"revision is {revision}; expected 0 or 1")
    interval_us = _interval_us(dt_ms)
    n_shots, nt, n_rec = gather.shape
    spec = segyio.spec()
    spec.format = fmt
    spec.samples = delay_ms + np.arange(nt) * float(dt_ms)
    spec.tracecount = n_shots * n_rec
    spec.endian = endian
    src_x, rec_x = _write_positions(n_shots, n_rec, dx_m, src_x_cells, source_x_m, receiver_x_m)
    headers = _trace_headers(src_x, rec_x, nt, interval_us)
    for header in headers:
        header[segyio.TraceField.DelayRecordingTime] = int(delay_ms)
    samples = gather.transpose(0, 2, 1).reshape(n_shots * n_rec, nt)
    with segyio.create(str(path), spec) as f:
        f.text[0] = _text_header(revision, n_shots, n_rec, dt_ms, dx_m)
        f.bin.update(_binary_header(revision, fmt, nt, interval_us, n_rec))
        f.header = headers
        f.trace.raw[:] = _as_sample_dtype(samples, fmt)


def write_su(
    path: Path,
    gather: np.ndarray,
    dt_ms: float = 1.0,
    dx_m: float = 10.0,
    src_x_cells: np.ndarray | None = None,
    *,
    endian: Literal["big", "little"] = "little",
    source_x_m: np.ndarray | None = None,
    receiver_x_m: np.ndarray | None = None,
) -> None:
    """Write a gather (n_shots, nt, n_rec) as Seismic Unix: 240-byte SEG-Y trace
    headers and 4-byte IEEE float samples, no file header, native (little-endian)
    byte order by default. The traces are written with segyio, then the SEG-Y file
    header is dropped. Positions as for :func:`write_segy`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.segy.tmp")
    try:
        write_segy(
            tmp,
            gather,
            dt_ms,
            False,
            dx_m,
            src_x_cells,
            endian=endian,
            source_x_m=source_x_m,
            receiver_x_m=receiver_x_m,
        )
        with open(tmp, "rb") as src, open(path, "wb") as dst:
            src.seek(_FILE_HEADER_BYTES)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    finally:
        tmp.unlink(missing_ok=True)


def _check_gather_to_write(gather: np.ndarray) -> np.ndarray:
    """A finite float32 array (n_shots, nt, n_rec), or ValueError."""
    gather = np.asarray(gather)
    if gather.ndim != 3 or 0 in gather.shape:
        raise ValueError(f"gather has shape {gather.shape}; expected (n_shots, nt, n_rec)")
    return gather.astype(np.float32, copy=False)


def _interval_us(dt_ms: float) -> int:
    """dt in ms as whole microseconds (SEG-Y stores an unsigned 16-bit count)."""
    interval_us = round(dt_ms * 1000)
    if not 0 < interval_us < 65536 or abs(interval_us - dt_ms * 1000) > 1e-6:
        raise ValueError(f"dt_ms is {dt_ms}; expected a whole number of us in 1..65535")
    return interval_us


def _coordinate_scalar(values: np.ndarray) -> int:
    """SEG-Y scalar for coordinates in metres: 1 if all whole, else -100 (centimetres)."""
    return 1 if np.allclose(values, np.round(values)) else -100


def _write_positions(
    n_shots: int,
    n_rec: int,
    dx_m: float,
    src_x_cells: np.ndarray | None,
    source_x_m: np.ndarray | None,
    receiver_x_m: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Source x (n_shots,) and receiver x (n_shots, n_rec) in metres for the writers."""
    if source_x_m is None:
        cells = np.round(np.linspace(0, n_rec - 1, n_shots)) if src_x_cells is None else src_x_cells
        source_x_m = np.asarray(cells, dtype=np.float64) * dx_m
    src_x = np.asarray(source_x_m, dtype=np.float64)
    if src_x.shape != (n_shots,):
        raise ValueError(f"source positions have shape {src_x.shape}; expected ({n_shots},)")
    if receiver_x_m is None:
        receiver_x_m = np.arange(n_rec) * float(dx_m)
    rec_x = np.broadcast_to(np.asarray(receiver_x_m, dtype=np.float64), (n_shots, n_rec))
    return src_x, rec_x


def _trace_headers(
    src_x: np.ndarray, rec_x: np.ndarray, nt: int, interval_us: int
) -> list[dict[int, int]]:
    """Header words of every trace, shot by shot: record and trace numbers, source
    x (n_shots,) and receiver x (n_shots, n_rec) in metres (scaled), signed offset,
    sample count and interval."""
    n_shots, n_rec = rec_x.shape
    scalar = _coordinate_scalar(np.concatenate([src_x, rec_x.ravel()]))
    unit = 1 if scalar == 1 else 100
    tf = segyio.TraceField
    headers = []
    for s in range(n_shots):
        sx = round(src_x[s] * unit)
        for r in range(n_rec):
            gx = round(rec_x[s, r] * unit)
            headers.append(
                {
                    tf.TRACE_SEQUENCE_LINE: s * n_rec + r + 1,
                    tf.TRACE_SEQUENCE_FILE: s * n_rec + r + 1,
                    tf.FieldRecord: s + 1,
                    tf.TraceNumber: r + 1,
                    tf.EnergySourcePoint: s + 1,
                    tf.TraceIdentificationCode: 1,
                    tf.offset: round(rec_x[s, r] - src_x[s]),  # metres, unscaled
                    tf.SourceGroupScalar: scalar,
                    tf.SourceX: sx,
                    tf.GroupX: gx,
                    tf.CoordinateUnits: 1,
                    tf.TRACE_SAMPLE_COUNT: nt,
                    tf.TRACE_SAMPLE_INTERVAL: interval_us,
                }
            )
    return headers


def _binary_header(
    revision: int, fmt: int, nt: int, interval_us: int, n_rec: int
) -> dict[int, int]:
    """Binary header words: interval, sample count, format, revision, fixed length."""
    bf = segyio.BinField
    return {
        bf.Interval: interval_us,
        bf.IntervalOriginal: interval_us,
        bf.Samples: nt,
        bf.SamplesOriginal: nt,
        bf.Format: fmt,
        bf.Traces: n_rec,
        bf.SortingCode: 1,
        bf.MeasurementSystem: 1,
        bf.SEGYRevision: revision,
        bf.TraceFlag: 1 if revision else 0,
    }


def _text_header(revision: int, n_shots: int, n_rec: int, dt_ms: float, dx_m: float) -> bytes:
    """A 3200-byte textual header describing the file (40 lines of 80 characters)."""
    lines = {
        1: "SEISLENS SHOT GATHER",
        2: f"{n_shots} SHOTS X {n_rec} RECEIVERS, DT {dt_ms:g} MS, RECEIVER SPACING {dx_m:g} M",
        3: "TRACES SHOT BY SHOT; FIELDRECORD = SHOT, TRACENUMBER = RECEIVER",
        4: "SOURCEX, GROUPX IN METRES (SOURCEGROUPSCALAR APPLIES), OFFSET = GROUPX - SOURCEX",
    }
    if revision == 1:
        lines[39] = "SEG Y REV1"
    lines[40] = "END TEXTUAL HEADER"
    return segyio.tools.create_text_header(lines)


def _as_sample_dtype(samples: np.ndarray, fmt: int) -> np.ndarray:
    """Samples (n_traces, nt) cast to the dtype segyio writes for format ``fmt``."""
    int_types = {2: np.int32, 3: np.int16, 8: np.int8}
    if fmt not in int_types:
        return np.ascontiguousarray(samples, dtype=np.float32)
    info = np.iinfo(int_types[fmt])
    clipped = np.clip(np.round(samples), info.min, info.max)
    return np.ascontiguousarray(clipped, dtype=int_types[fmt])


# --------------------------------------------------------------------------- helpers


def _file_size(path: Path) -> int:
    """Size in bytes, as UploadError when the file cannot be read."""
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise UploadError(f"the upload could not be read: {exc}", reason="unreadable") from exc


def _read_head(path: Path, n_bytes: int) -> bytes:
    """The first ``n_bytes`` bytes (fewer if the file is shorter)."""
    with open(path, "rb") as fh:
        return fh.read(n_bytes)


def _suffix_hint(path: Path, filename: str | None) -> str | None:
    """The format suggested by the client's file name (else the path's suffix)."""
    suffix = Path(filename).suffix if filename else Path(path).suffix
    return _SUFFIX_HINTS.get(suffix.lower())


def _display_name(path: Path, filename: str | None) -> str:
    """The name used in messages: the client's file name, else the path's name."""
    return filename or Path(path).name
