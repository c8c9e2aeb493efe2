"""Model inputs from SeisBench-format event folders (NumPy; no torch).

Every spectrum here is cut and transformed by the serving code path
(:mod:`seislens.models.event_preprocess`): condition the whole trace (detrend, taper,
band-pass, resample to 100 Hz), place a 60 s window, z-normalise, STFT. A trace can be
seen through several *views* — windows placed differently:

* ``"catalog"`` — P at ``p_offset_s`` (5 s) when the trace has a catalogued P pick, else
  the service's fallbacks (STA/LTA trigger, else the first 60 s): what an upload with a
  ``p_arrival`` gets;
* ``"auto"`` — the catalogued pick ignored: STA/LTA, else the start — what an upload
  without a pick gets;
* a shift ``u`` in [0, 1) — P at ``lo + u (hi - lo)`` seconds into the window (``lo, hi``
  the configured range), or for a trace without a pick the window starting at ``u`` of
  the room the record leaves. The training's augmentation.

The info vector of each view is SeisCLIP's 8 fields with the sample fields counted in
the view's own window (:meth:`EventDataset.info_vector` with ``window_start_s``).

Regression targets (:func:`event_targets`): epicentral distance (km), source depth (km)
and magnitude, NaN where the metadata lacks them and for every noise trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from seislens.data.event_dataset import INFO_COLUMNS, EventDataset, _as_float, find_column
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGETS, INFO_FIELDS, SAMPLING_RATE_HZ, WINDOW_SAMPLES
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    choose_window,
    condition_waveform,
    cut_window,
    waveform_to_spectrum,
)
from tqdm import tqdm

TARGET_NAMES = EVENT_TARGETS
"""Regression targets, in the order of :func:`event_targets`' columns."""

TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    "distance": INFO_COLUMNS["distance_km"],
    "depth": ("source_depth_km",),
    "magnitude": ("source_magnitude",),
}
"""Accepted metadata columns for each target (case-insensitive, first match wins).

The synthetic generator's magnitude is the moment magnitude Mw it drew; its
``source_magnitude_ml`` (measured on its own Wood-Anderson record after the noise is
scaled to the drawn SNR) scatters by about 1.1 units around it and is not a target."""

WindowMode = Literal["catalog", "auto"]
View = WindowMode | float
NOISE = CLASSES.index("noise")


@dataclass(frozen=True)
class ViewWindow:
    """One view of a trace: its spectrum, info vector and where the window sits."""

    spectrum: np.ndarray  # (3, 50, 120) float32
    info: np.ndarray  # (8,) float32, raw units, samples counted in this window
    start_s: float  # window start, seconds after the trace start
    rule: str  # "p_arrival", "sta_lta", "start" or "shift"


def event_targets(ds: EventDataset) -> np.ndarray:
    """(N, 3) float64 distance (km), depth (km), magnitude; NaN where missing or noise."""
    out = np.full((len(ds), len(TARGET_NAMES)), np.nan)
    for j, name in enumerate(TARGET_NAMES):
        column = find_column(ds.metadata, TARGET_COLUMNS[name])
        if column is not None:
            out[:, j] = _as_float(ds.metadata[column])
    out[ds.label_ids == NOISE] = np.nan
    return out


def trace_views(
    ds: EventDataset,
    i: int,
    views: Sequence[View],
    config: EventPreprocessConfig,
    shift_range_s: tuple[float, float] = (1.0, 25.0),
) -> list[ViewWindow]:
    """Spectra and info vectors of trace ``i`` seen through each of ``views``.

    The trace is conditioned once; each view then places its own window (see the
    module docstring). Raises EventInputError for a trace that cannot be used.
    """
    waveform = ds.waveform(i)
    if not np.isfinite(waveform).all():
        raise EventInputError(f"trace {i} holds NaN or infinite samples")
    if np.ptp(waveform[0]) == 0:
        raise EventInputError(f"trace {i}: the vertical component is constant (dead)")
    rate = ds.sampling_rate(i)
    p_sample = ds.p_arrival_sample(i)
    conditioned = condition_waveform(waveform, rate, config)
    z = conditioned[0]
    p100 = None if p_sample is None else p_sample * SAMPLING_RATE_HZ / rate
    room = max(0, conditioned.shape[1] - WINDOW_SAMPLES)
    out = []
    for view in views:
        if view == "catalog":
            start, rule, _ = choose_window(z, p100, config)
        elif view == "auto":
            start, rule, _ = choose_window(z, None, config)
        else:
            u = float(view)
            if p100 is None:
                start = round(u * room)
            else:
                lo, hi = shift_range_s
                offset = (lo + u * (hi - lo)) * SAMPLING_RATE_HZ
                start = int(np.clip(round(p100 - offset), 0, room))
            rule = "shift"
        spectrum = waveform_to_spectrum(cut_window(conditioned, start), config)
        start_s = start / SAMPLING_RATE_HZ
        out.append(ViewWindow(spectrum, ds.info_vector(i, window_start_s=start_s), start_s, rule))
    return out


def dataset_spectra(
    ds: EventDataset,
    rows: np.ndarray,
    config: EventPreprocessConfig,
    window: WindowMode = "catalog",
    progress: bool = False,
    desc: str = "spectra",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra of some rows of a dataset, as the service would cut them.

    Args:
        ds: the dataset.
        rows: (n,) row indices.
        config: preprocessing settings.
        window: "catalog" (use catalogued P picks) or "auto" (ignore them).
    Returns:
        spectra (m, 3, 50, 120) float32, info (m, 8) float32, and the (m,) rows that
        could be used (traces raising EventInputError — dead or NaN data — are left out).
    """
    spectra, info, kept = [], [], []
    for i in tqdm(rows, desc=desc, unit="trace", disable=not progress):
        try:
            (view,) = trace_views(ds, int(i), [window], config)
        except EventInputError:
            continue
        spectra.append(view.spectrum)
        info.append(view.info)
        kept.append(int(i))
    if not kept:
        return (
            np.zeros((0, 3, 50, 120), np.float32),
            np.zeros((0, len(INFO_FIELDS)), np.float32),
            np.zeros(0, np.int64),
        )
    return np.stack(spectra), np.stack(info), np.asarray(kept, np.int64)
