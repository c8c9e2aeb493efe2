"""Imported once by the parse workers' forkserver (:data:`~seislens.service.parse_pool.PRELOAD`):
the readers (ObsPy's format detectors, segyio), and the windowing path (SciPy's filters,
ObsPy's trigger) are loaded and run once there, so every worker forked from it starts
with them in memory instead of spending seconds on imports at its first upload. Not
imported by the server itself."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from seislens.data.gather_files import read_gather, write_segy
from seislens.models.contract import GATHER_SHAPE
from seislens.models.event_preprocess import stream_to_windows
from seislens.service.recordings import format_checks, warm_up_stream

FORMATS = tuple(name for name, _ in format_checks())
"""The waveform formats ObsPy detects (loaded at import: the point of this module)."""
WARM_WINDOWS = len(stream_to_windows(warm_up_stream()))
"""The windowing path run once on a synthetic record (its lazy imports done)."""


def _warm_gather() -> tuple[int, ...]:
    """Write and read one SEG-Y gather (segyio and the geometry mapping loaded)."""
    fd, name = tempfile.mkstemp(prefix="seislens-warm-", suffix=".sgy")
    os.close(fd)
    path = Path(name)
    try:
        gather = np.random.default_rng(0).standard_normal(GATHER_SHAPE).astype(np.float32)
        write_segy(path, gather, dt_ms=2.0)
        return read_gather(path, "warm.sgy").data.shape
    finally:
        path.unlink(missing_ok=True)


WARM_GATHER = _warm_gather()
"""The gather path run once on a synthetic SEG-Y file (resampled from 2 ms)."""
