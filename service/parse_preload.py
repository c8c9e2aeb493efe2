"""Imported once by the parse workers' forkserver (:data:`~seislens.service.parse_pool.PRELOAD`):
the reading code, ObsPy's format detectors and the windowing path (SciPy's filters,
ObsPy's trigger) are loaded and run once there, so every worker forked from it starts
with them in memory instead of spending seconds on imports at its first upload. Not
imported by the server itself."""

from __future__ import annotations

from seislens.models.event_preprocess import stream_to_windows
from seislens.service.recordings import format_checks, warm_up_stream

FORMATS = tuple(name for name, _ in format_checks())
"""The waveform formats ObsPy detects (loaded at import: the point of this module)."""
WARM_WINDOWS = len(stream_to_windows(warm_up_stream()))
"""The windowing path run once on a synthetic record (its lazy imports done)."""
