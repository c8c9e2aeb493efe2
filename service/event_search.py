"""The event path: a miniSEED upload → one 60 s window per station → class
probabilities, source parameters and the most similar library events.

Kept apart from the routes so it can be timed and tested on its own; the classify and
search routes share it (search skips the heads). All of it is CPU-bound and runs in the
server's thread pool.

Every refusal of a recording is an :class:`~seislens.models.event_preprocess.EventInputError`
(answered 422 with its message). A file with several stations and no ``station``
asked for is classified station by station: the stations that cannot be used are
listed as skipped with their reason, and only when none can be used is the request
refused.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from seislens.index.metadata import ItemRecord
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    EventWindow,
    stream_to_windows,
)
from seislens.service.library_search import Neighbours, search_library

if TYPE_CHECKING:
    from seislens.service.state import LoadedBranch

log = logging.getLogger("seislens.service")

MAX_NOTES = 5


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
class StationOutcome:
    """One station's window and what the bundle makes of it.

    Attributes:
        window: the 60 s window used.
        probabilities: (C,) class probabilities (None for a search only).
        regression: name → value of the heads' regression outputs (None for a search).
        records: the similar library events, best first.
        scores: their cosine similarities.
    """

    window: EventWindow
    probabilities: np.ndarray | None
    regression: dict[str, float] | None
    records: list[ItemRecord]
    scores: np.ndarray


@dataclass
class EventOutcome:
    """The stations of one upload, those skipped (station, reason), time per stage
    ('preprocess', 'embed', 'classify', 'search')."""

    stations: list[StationOutcome]
    skipped: list[tuple[str, str]]
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_miniseed(path: Path, filename: str) -> RecordingUpload:
    """Read an uploaded file as miniSEED (and nothing else).

    Raises:
        EventInputError: empty, not miniSEED (with a hint when ObsPy recognises another
            format), or no traces.
    """
    size = path.stat().st_size
    if size == 0:
        raise EventInputError(
            f"{filename!r} is empty (0 bytes); expected a miniSEED file", reason="empty"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from obspy import read

            stream = read(str(path), format="MSEED")
        except Exception as exc:  # ObsPy and libmseed raise many types for bad bytes
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            hint = _other_format(path)
            raise EventInputError(
                f"{filename!r} is not a readable miniSEED file ({type(exc).__name__}"
                + (f": {why}" if why else "")
                + ")"
                + (f"; it looks like {hint} data: convert it to miniSEED" if hint else "")
                + "; expected miniSEED with 3-component (Z, N, E or Z, 1, 2) traces",
                reason="unknown_format",
            ) from exc
    if len(stream) == 0:
        raise EventInputError(
            f"{filename!r} holds no miniSEED traces ({size} bytes)", reason="no_traces"
        )
    notes: list[str] = []
    for w in caught:
        text = str(w.message).strip().splitlines()[0][:200] if str(w.message).strip() else ""
        if text and text not in notes and len(notes) < MAX_NOTES:
            notes.append(f"ObsPy: {text}")
    stations = sorted({f"{t.stats.network}.{t.stats.station}" for t in stream})
    return RecordingUpload(stream, stations, notes)


def _other_format(path: Path) -> str | None:
    """The format ObsPy auto-detects for a file that is not miniSEED, if any."""
    try:
        from obspy import read

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stream = read(str(path), headonly=True)
        fmt = stream[0].stats._format if len(stream) else None
    except Exception:  # not a format ObsPy knows either
        return None
    return str(fmt) if fmt and str(fmt).upper() != "MSEED" else None


def parse_p_arrival(text: str) -> UTCDateTime:
    """A UTC time from ISO 8601 text (``2005-07-23T14:52:10.5Z``).

    Raises:
        ValueError: with a message saying what is expected.
    """
    try:
        return UTCDateTime(text.strip())
    except Exception as exc:
        raise ValueError(
            f"{text!r} is not a UTC time; expected ISO 8601, e.g. 2005-07-23T14:52:10.5Z"
        ) from exc


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


# --------------------------------------------------------------------------- the models


def run_events(
    branch: LoadedBranch,
    upload: RecordingUpload,
    station: str | None,
    p_arrival: UTCDateTime | None,
    k: int,
    classify: bool,
    max_stations: int,
) -> EventOutcome:
    """Windows, spectra, encoders and library search for one upload.

    Args:
        branch: the bundle's event branch (leased by the caller).
        upload: the recording.
        station: one station to use (``STA`` or ``NET.STA``), or None for all.
        p_arrival: a known P time to align windows on, or None.
        k: similar events wanted per station (fewer when the library is smaller; none
            without a library).
        classify: run the heads (class probabilities, distance, depth, magnitude).
        max_stations: refuse files with more stations than this unless one is asked for.
    """
    embedder = branch.embedder
    t0 = time.perf_counter()
    windows, skipped = select_windows(upload, embedder.pre, station, p_arrival, max_stations)
    spectra = embedder.spectra(windows)
    t1 = time.perf_counter()
    library = branch.library
    vectors = embedder.embed_spectra(spectra) if library is not None else None
    t2 = time.perf_counter()
    probs: np.ndarray | None = None
    reg: dict[str, np.ndarray] = {}
    if classify:
        probs, reg = embedder.classify(spectra)
    t3 = time.perf_counter()
    found = [Neighbours.none()] * len(windows)
    if library is not None and vectors is not None and len(library):
        found = search_library(library, vectors, k)
    t4 = time.perf_counter()
    stations = [
        StationOutcome(
            window=w,
            probabilities=None if probs is None else probs[i],
            regression=None if probs is None else {n: float(v[i]) for n, v in reg.items()},
            records=found[i].records,
            scores=found[i].scores,
        )
        for i, w in enumerate(windows)
    ]
    seconds = {"preprocess": t1 - t0, "embed": t2 - t1, "classify": t3 - t2, "search": t4 - t3}
    return EventOutcome(stations, skipped, seconds)


# --------------------------------------------------------------------------- warm-up


def warm_up_stream(seconds: float = 70.0, rate: float = 100.0) -> Stream:
    """A synthetic 3-component record (coloured noise and a P-like burst) that the
    event path accepts: the bundle's warm-up query."""
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


def warm_up_events(branch: LoadedBranch) -> None:
    """The whole event path once on a synthetic record (miniSEED-like stream →
    windows → spectra → encoders → search): lazy imports and graph set-up happen
    here, and graphs that cannot run here fail at load."""
    spectra = branch.embedder.spectra(stream_to_windows(warm_up_stream(), branch.embedder.pre))
    vectors = branch.embedder.embed_spectra(spectra)
    branch.embedder.classify(spectra)
    if branch.library is not None and len(branch.library):
        branch.library.search(vectors, 1)
