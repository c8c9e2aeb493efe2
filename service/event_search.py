"""The event path: a miniSEED upload → one 60 s window per station → class
probabilities, source parameters and the most similar library events.

Kept apart from the routes so it can be timed and tested on its own; the classify and
search routes share it (search skips the heads). Reading the file and cutting its
windows (:mod:`~seislens.service.recordings`: record headers and budgets checked first)
runs in a parse worker process (:func:`read_recording`), so a reader crash or a file
that would take too long costs a worker, not the server; the spectra, encoders and
search run in the server's thread pool (:func:`run_events`).

Every refusal of a recording is an :class:`~seislens.models.event_preprocess.EventInputError`
(answered 422 with its message), or one of the worker's own answers below (deadline,
crash, memory: 422; busy: 503). A file with several stations and no ``station`` asked
for is classified station by station: the stations that cannot be used are listed as
skipped with their reason, and only when none can be used is the request refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from obspy import UTCDateTime
from seislens.index.metadata import ItemRecord
from seislens.models.event_preprocess import (
    EventPreprocessConfig,
    EventWindow,
    stream_to_windows,
)
from seislens.service.library_search import Neighbours, search_library
from seislens.service.parse_jobs import (
    MINISEED,
    ParseBusyError,
    ParseDeadlineError,
    ParseMemoryError,
    ParseUnavailableError,
    ReaderCrashedError,
    run_parse_job,
    start_parse_workers,
)
from seislens.service.recordings import (
    RecordingBudgets,
    RecordingUpload,
    RecordingWindows,
    read_miniseed,
    select_windows,
    warm_up_stream,
)
from seislens.service.settings import Settings

if TYPE_CHECKING:
    from seislens.service.state import LoadedBranch

log = logging.getLogger("seislens.service")

__all__ = [
    "EventOutcome",
    "ParseBusyError",
    "ParseDeadlineError",
    "ParseMemoryError",
    "ParseUnavailableError",
    "ReaderCrashedError",
    "RecordingUpload",
    "RecordingWindows",
    "StationOutcome",
    "parse_p_arrival",
    "read_miniseed",
    "read_recording",
    "run_events",
    "select_windows",
    "start_parse_workers",
    "warm_up_stream",
]


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


_JOB = "seislens.service.recordings:window_recording"


def read_recording(
    path: Path,
    filename: str,
    pre: EventPreprocessConfig,
    station: str | None,
    p_arrival: UTCDateTime | None,
    settings: Settings,
) -> RecordingWindows:
    """Read a miniSEED upload and cut its station windows in a parse worker
    (:func:`~seislens.service.parse_jobs.run_parse_job`), within the settings' budgets
    and deadline.

    With ``parse_workers = 0`` the same work runs in this process, libmseed serialised
    by :data:`~seislens.service.recordings.MSEED_LOCK` (no deadline, no crash isolation).

    Raises:
        EventInputError: the file's own refusal (422).
        ApiError: deadline, crash or memory (422), all workers busy or none started (503).
    """
    args = (
        str(path),
        filename,
        pre,
        station,
        p_arrival,
        settings.max_event_stations,
        RecordingBudgets.from_settings(settings),
    )
    return run_parse_job(MINISEED, _JOB, args, filename, settings)


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


# --------------------------------------------------------------------------- the models


def run_events(
    branch: LoadedBranch,
    recording: RecordingWindows,
    k: int,
    classify: bool,
) -> EventOutcome:
    """Spectra, encoders and library search for the windows of one upload.

    Args:
        branch: the bundle's event branch (leased by the caller).
        recording: the upload's windows (:func:`read_recording`).
        k: similar events wanted per station (fewer when the library is smaller; none
            without a library).
        classify: run the heads (class probabilities, distance, depth, magnitude).
    Returns:
        The stations' outcomes; ``seconds['preprocess']`` counts the worker's windowing
        and the spectra.
    """
    embedder = branch.embedder
    windows = recording.windows
    t0 = time.perf_counter()
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
    seconds = {
        "preprocess": recording.seconds.get("preprocess", 0.0) + t1 - t0,
        "embed": t2 - t1,
        "classify": t3 - t2,
        "search": t4 - t3,
    }
    return EventOutcome(stations, list(recording.skipped), seconds)


# --------------------------------------------------------------------------- warm-up


def warm_up_events(branch: LoadedBranch) -> None:
    """The whole event path once on a synthetic record (miniSEED-like stream →
    windows → spectra → encoders → search): lazy imports and graph set-up happen
    here, and graphs that cannot run here fail at load."""
    spectra = branch.embedder.spectra(stream_to_windows(warm_up_stream(), branch.embedder.pre))
    vectors = branch.embedder.embed_spectra(spectra)
    branch.embedder.classify(spectra)
    if branch.library is not None and len(branch.library):
        branch.library.search(vectors, 1)
