"""Reading a miniSEED upload and cutting its station windows: the work a parse worker
does (:mod:`seislens.service.parse_pool`), kept free of the service's heavier imports
(FAISS, ONNX Runtime) so a worker starts on NumPy, SciPy and ObsPy alone.

In order, each step before anything is allocated for the next:

1. the record headers are checked (:func:`~seislens.service.mseed_records.scan_records`):
   a record libmseed would read past, or bytes that are no record, are refused;
2. the budgets (:class:`RecordingBudgets`) are checked on what the headers declare:
   stations and traces in the file, samples per channel and in total at 100 Hz;
3. ObsPy decodes the file, under :data:`MSEED_LOCK` (libmseed's logging hooks are
   process-wide, so two reads at once in one process can crash it);
4. one 60 s window per station (:func:`select_windows`).

Every refusal is an :class:`~seislens.models.event_preprocess.EventInputError` with a
reason (answered 422).
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from seislens.models.contract import SAMPLING_RATE_HZ
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    EventWindow,
    resampled_samples,
    stream_to_windows,
)
from seislens.service.mseed_records import RecordError, RecordScan, scan_records
from seislens.service.settings import Settings

log = logging.getLogger("seislens.service")

MAX_NOTES = 5
MSEED_LOCK = threading.Lock()
"""Held around every libmseed call in this process (ObsPy's miniSEED reader and format
detection): the fallback for reads outside the worker pool, and harmless inside it."""

_DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}
_EXPECTED = "expected miniSEED with 3-component (Z, N, E or Z, 1, 2) traces"


@dataclass(frozen=True)
class RecordingBudgets:
    """What one miniSEED upload may declare (checked on its headers, before decoding).

    Attributes:
        max_stations: stations (``NET.STA``) in the file.
        max_traces: traces (contiguous runs of one channel's records).
        max_channel_samples: samples of one channel at 100 Hz (its own count when
            recorded faster: :func:`~seislens.models.event_preprocess.resampled_samples`).
        max_total_samples: the same over every channel of the file.
    """

    max_stations: int
    max_traces: int
    max_channel_samples: int
    max_total_samples: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RecordingBudgets:
        """The budgets of ``settings`` (None: the defaults of :class:`Settings`)."""
        values = settings.model_dump() if settings is not None else _DEFAULTS
        return cls(
            max_stations=values["max_event_file_stations"],
            max_traces=values["max_event_traces"],
            max_channel_samples=values["max_event_channel_samples"],
            max_total_samples=values["max_event_total_samples"],
        )


@dataclass
class RecordingUpload:
    """A miniSEED upload read by ObsPy.

    Attributes:
        stream: its traces, as read (not merged).
        stations: ``NET.STA`` of every station in it, sorted.
        notes: ObsPy's warnings while reading (deduplicated, at most five).
    """

    stream: Stream
    stations: list[str]
    notes: list[str]

    @property
    def traces(self) -> int:
        return len(self.stream)


@dataclass
class RecordingWindows:
    """What the event routes need of an upload, as a parse worker returns it.

    Attributes:
        stations: ``NET.STA`` of every station in the file, sorted.
        traces: traces in the file.
        notes: ObsPy's warnings while reading.
        windows: the station windows to use.
        skipped: (station, reason) of the stations that cannot be used.
        seconds: wall time of 'read' and 'preprocess' (the windows), in the worker.
    """

    stations: list[str]
    traces: int
    notes: list[str]
    windows: list[EventWindow]
    skipped: list[tuple[str, str]]
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_miniseed(
    path: Path, filename: str, budgets: RecordingBudgets | None = None
) -> RecordingUpload:
    """Read an uploaded file as miniSEED (and nothing else), headers and budgets first.

    Args:
        path: the uploaded file.
        filename: the client's name for it (the only name messages use).
        budgets: what the file may declare (None: the default settings' budgets).
    Raises:
        EventInputError: empty, not miniSEED (with a hint when ObsPy recognises another
            format), a record that fails its header check, over a budget, or no traces.
    """
    data = path.read_bytes()
    if not data:
        raise EventInputError(
            f"{filename!r} is empty (0 bytes); expected a miniSEED file", reason="empty"
        )
    budgets = budgets or RecordingBudgets.from_settings()
    scan = _scan(data, path, filename)
    check_budgets(scan, budgets, filename)
    if scan.records == 0:
        raise EventInputError(
            f"{filename!r} holds no miniSEED traces ({len(data)} bytes)", reason="no_traces"
        )
    stream, notes = _decode(data, path, filename)
    if len(stream) == 0:
        raise EventInputError(
            f"{filename!r} holds no miniSEED traces ({len(data)} bytes)", reason="no_traces"
        )
    if len(stream) > budgets.max_traces:
        raise _too_many_traces(filename, len(stream), budgets.max_traces)
    stations = sorted({f"{t.stats.network}.{t.stats.station}" for t in stream})
    return RecordingUpload(stream, stations, notes)


def _scan(data: bytes, path: Path, filename: str) -> RecordScan:
    """The headers' scan; bytes that start with no record header read as "not miniSEED"
    (with a hint at the format they may be), any other failed check as a bad record."""
    try:
        return scan_records(data)
    except RecordError as exc:
        if exc.foreign:
            hint = _other_format(path)
            raise EventInputError(
                f"{filename!r} is not a readable miniSEED file ({exc})"
                + (f"; it looks like {hint} data: convert it to miniSEED" if hint else "")
                + f"; {_EXPECTED}",
                reason="unknown_format",
            ) from exc
        raise EventInputError(
            f"{filename!r} is not a readable miniSEED file: {exc}; every part of the file "
            "must be a miniSEED record whose samples fit in it",
            reason="bad_record",
        ) from exc


def _decode(data: bytes, path: Path, filename: str) -> tuple[Stream, list[str]]:
    """ObsPy's reading of checked bytes, and its warnings as notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from obspy import read

            with MSEED_LOCK:
                stream = read(io.BytesIO(data), format="MSEED")
        except Exception as exc:  # ObsPy and libmseed raise many types for bad bytes
            why = _first_line(str(exc).replace(str(path), filename))
            raise EventInputError(
                f"{filename!r} is not a readable miniSEED file ({type(exc).__name__}"
                + (f": {why}" if why else "")
                + f"); {_EXPECTED}",
                reason="unknown_format",
            ) from exc
    notes: list[str] = []
    for w in caught:
        text = _first_line(str(w.message).replace(str(path), filename))
        if text and f"ObsPy: {text}" not in notes and len(notes) < MAX_NOTES:
            notes.append(f"ObsPy: {text}")
    return stream, notes


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _other_format(path: Path) -> str | None:
    """The waveform format ObsPy's detection finds for a file that is not miniSEED (its
    plugins' ``isFormat`` in ObsPy's order, as ``obspy.read`` tries them), if any."""
    with warnings.catch_warnings(), MSEED_LOCK:
        warnings.simplefilter("ignore")
        for name, is_format in format_checks():
            try:
                if name != "MSEED" and is_format(str(path)):
                    return name
            except Exception:  # a detector that chokes on the bytes: not its format
                continue
    return None


@functools.cache
def format_checks() -> tuple[tuple[str, Callable[[str], bool]], ...]:
    """ObsPy's waveform format detectors, loaded once: ``obspy.read`` looks each up
    again per call (a quarter of a second, five the first time)."""
    from obspy.core.util.base import ENTRY_POINTS, buffered_load_entry_point

    checks = []
    for ep in ENTRY_POINTS["waveform"].values():
        try:
            group = f"obspy.plugin.waveform.{ep.name}"
            checks.append((ep.name, buffered_load_entry_point(ep.dist.name, group, "isFormat")))
        except Exception:  # a plugin that cannot load is a format nobody can read here
            continue
    return tuple(checks)


# --------------------------------------------------------------------------- budgets


def check_budgets(scan: RecordScan, budgets: RecordingBudgets, filename: str) -> None:
    """Refuse a file whose headers declare more than ``budgets`` allow.

    Raises:
        EventInputError: 'too_many_stations', 'too_many_traces' or 'too_many_samples',
            saying what was found and what is accepted.
    """
    if len(scan.stations) > budgets.max_stations:
        names = ", ".join(sorted(scan.stations)[:10])
        raise EventInputError(
            f"{filename!r} holds {len(scan.stations)} stations ({names}, …); accepted at "
            f"most {budgets.max_stations} per file (SEISLENS_MAX_EVENT_FILE_STATIONS)",
            reason="too_many_stations",
        )
    if scan.traces > budgets.max_traces:
        raise _too_many_traces(filename, scan.traces, budgets.max_traces)
    total = 0
    for channel, declared in sorted(scan.channels.items()):
        held = resampled_samples(declared.samples, declared.rate_hz)
        total += held
        if held > budgets.max_channel_samples:
            raise EventInputError(
                f"{filename!r}: channel {channel} declares {held:,} samples at 100 Hz "
                f"({declared.samples:,} at {declared.rate_hz:g} Hz, "
                f"{_hours(declared.samples, declared.rate_hz)}); accepted at most "
                f"{budgets.max_channel_samples:,} per channel "
                f"({budgets.max_channel_samples / SAMPLING_RATE_HZ / 3600:g} h at 100 Hz, "
                "SEISLENS_MAX_EVENT_CHANNEL_SAMPLES): cut the recording around the event",
                reason="too_many_samples",
            )
    if total > budgets.max_total_samples:
        raise EventInputError(
            f"{filename!r} declares {total:,} samples at 100 Hz over its "
            f"{len(scan.channels)} channels; accepted at most {budgets.max_total_samples:,} "
            "in total (SEISLENS_MAX_EVENT_TOTAL_SAMPLES): send fewer channels or a shorter "
            "recording",
            reason="too_many_samples",
        )


def _too_many_traces(filename: str, found: int, limit: int) -> EventInputError:
    return EventInputError(
        f"{filename!r} holds {found:,} traces (runs of contiguous records); accepted at "
        f"most {limit:,} (SEISLENS_MAX_EVENT_TRACES): merge gappy channels or send fewer",
        reason="too_many_traces",
    )


def _hours(samples: int, rate_hz: float) -> str:
    return f"{samples / rate_hz / 3600:.1f} h" if rate_hz > 0 else "no sampling rate"


# --------------------------------------------------------------------------- windows


def select_windows(
    upload: RecordingUpload,
    pre: EventPreprocessConfig,
    station: str | None,
    p_arrival: UTCDateTime | None,
    max_stations: int,
) -> tuple[list[EventWindow], list[tuple[str, str]]]:
    """The windows to classify and the stations skipped, with why.

    One station asked for (or only one in the file): its refusal is the request's.
    Several stations: each is tried; the request is refused only when none can be used.
    """
    if station is not None or len(upload.stations) == 1:
        return _windows(upload.stream, pre, station, p_arrival), []
    if len(upload.stations) > max_stations:
        raise EventInputError(
            f"the file holds {len(upload.stations)} stations; at most {max_stations} are "
            "classified per request (SEISLENS_MAX_EVENT_STATIONS): pass `station` to pick "
            f"one of {', '.join(upload.stations[:20])}"
            + (", …" if len(upload.stations) > 20 else ""),
            reason="too_many_stations",
        )
    windows: list[EventWindow] = []
    skipped: list[tuple[str, str]] = []
    for key in upload.stations:
        try:
            windows.extend(_windows(upload.stream, pre, key, p_arrival))
        except EventInputError as exc:
            skipped.append((key, str(exc)))
    if not windows:
        reasons = "; ".join(f"{key}: {why}" for key, why in skipped)
        raise EventInputError(
            f"no station of the file can be used — {reasons}", reason="no_usable_station"
        )
    return windows, skipped


def _windows(
    stream: Stream,
    pre: EventPreprocessConfig,
    station: str | None,
    p_arrival: UTCDateTime | None,
) -> list[EventWindow]:
    """``stream_to_windows``, with any failure on odd data (bad headers that ObsPy
    read anyway) turned into a refusal of the recording rather than a server error."""
    try:
        return stream_to_windows(stream, pre, station=station, p_arrival=p_arrival)
    except EventInputError:
        raise
    except Exception as exc:
        log.warning("recording could not be preprocessed", exc_info=True)
        raise EventInputError(
            f"the recording could not be preprocessed ({type(exc).__name__}: {exc}); check "
            "its headers (sampling rate, start times, channel codes)",
            reason="unusable_recording",
        ) from exc


def window_recording(
    path: str,
    filename: str,
    pre: EventPreprocessConfig,
    station: str | None,
    p_arrival: UTCDateTime | None,
    max_stations: int,
    budgets: RecordingBudgets,
) -> RecordingWindows:
    """Read an upload and cut its windows: the job a parse worker runs per request.

    Args:
        path: the uploaded file.
        filename: the client's name for it.
        pre: the bundle's event preprocessing.
        station: one station to use (``STA`` or ``NET.STA``), or None for all.
        p_arrival: a known P time to align windows on, or None.
        max_stations: stations classified when none is asked for.
        budgets: what the file may declare.
    Raises:
        EventInputError: the file cannot be used (the message says why).
    """
    t0 = time.perf_counter()
    upload = read_miniseed(Path(path), filename, budgets)
    t1 = time.perf_counter()
    windows, skipped = select_windows(upload, pre, station, p_arrival, max_stations)
    t2 = time.perf_counter()
    return RecordingWindows(
        stations=upload.stations,
        traces=upload.traces,
        notes=upload.notes,
        windows=windows,
        skipped=skipped,
        seconds={"read": t1 - t0, "preprocess": t2 - t1},
    )


def warm_up_stream(seconds: float = 70.0, rate: float = 100.0) -> Stream:
    """A synthetic 3-component record (coloured noise and a P-like burst) that the
    event path accepts: the bundle's warm-up query, and the parse workers'."""
    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    burst = np.where(t > 20, np.exp(-(t - 20) / 4.0), 0.0) * np.sin(2 * np.pi * 6 * t)
    traces = []
    for comp in "ZNE":
        data = np.cumsum(rng.standard_normal(n)) * 0.01 + rng.standard_normal(n) + 20 * burst
        header = {
            "network": "XX",
            "station": "WARM",
            "channel": f"HH{comp}",
            "sampling_rate": rate,
            "starttime": UTCDateTime(2020, 1, 1),
        }
        traces.append(Trace(data.astype(np.float32), header))
    return Stream(traces)
