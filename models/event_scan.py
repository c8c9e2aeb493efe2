"""Scanning long recordings: sliding 60 s windows → class probabilities per window →
detections (NumPy, SciPy and ONNX Runtime through the bundle's
:class:`~seislens.models.event_embedders.EventEmbedder`; no file reading here).

The reader (``seislens.service.scan_reader``) hands over one station's recording as
contiguous **segments**: (3, n) Z, N, E samples at their own rate, without gaps (gaps of
up to ``max_gap_s`` already filled), a few minutes to an hour each. Per segment:

1. **Conditioning** (:func:`condition_segment`) — the shared path of
   :func:`~seislens.models.event_preprocess.condition_waveform` (linear detrend,
   Butterworth band-pass, resampling to 100 Hz) with a Hann taper of ``taper_s``
   (3 s, what a 60 s upload gets from the 5 % taper) at each end instead of 5 % of the
   segment. Segments cut at a chunk boundary (not at a data edge) overlap their
   neighbours by ``margin_s`` (30 s; with the gate on, at least the gate's LTA warm-up:
   :attr:`ScanConfig.read_margin_s`) each side, and only windows clear of that margin
   are kept, so filter transients, the taper and the warm-up never reach a window.
2. **Windows** (:func:`window_grid`) — 60 s windows whose starts lie on one grid per scan,
   ``origin + k · stride_s`` (the same instants at every station), inside the segment.
3. **Triggers and gate** (:func:`sta_lta_ratio`, :func:`trigger_onsets`,
   :func:`window_evidence`) — classic STA/LTA on the conditioned vertical (the
   preprocessing's 1 s / 10 s), once per segment: every onset with its peak ratio, the
   P times that place the class windows and feed the association. With ``gate_ratio``
   set (the default, 2.0) the scan is a **cascade**: only windows whose **event
   evidence** — the highest classic STA/LTA ratio inside the window of the 3-component
   energy, ``gate_sta_s`` / ``gate_lta_s`` (2 s / 30 s) — reaches the gate go on to the
   network; the others are called noise (P(noise) 1, estimates NaN) without inference.
   Windows that touch the LTA warm-up or the start taper (no ratio there) always go on.
   ``gate_ratio`` None sends every window, as before the gate. The 3-component ratio
   separates better than the vertical 1 s / 10 s one (noise reaches ~2 on the vertical
   within a minute): on the tuning recordings (6 h, 50 events at 5–20 dB, seeds 2 and
   3) every window that puts an inserted P 1–25 s in (the class windows) had evidence
   ≥ 2.3, and 2.0 sent 23–25 % of the windows on (the events' own windows are ~20 %
   at 200 a day). The SNR of weak events is set on the 3-C vector, as here.
4. **Batches** (:func:`classify_windows`) — ``batch_size`` of the windows that passed
   the gate at a time through the spectrum transform and the heads graph: (B, C) class
   probabilities and the heads' distance, depth and magnitude. A batch is a view of the
   conditioned segment, so memory is set by the segment, not the file. With
   ``segment_spectra`` (the default) the spectra are sliced from one STFT of the segment
   (:class:`SegmentSpectra`: the 50-sample hop divides the stride, so every window's
   frames are frames of the segment's; z-normalisation is linear, its mean only reaches
   the lowest kept frequency row of a periodic Hann frame, and the window's last,
   half-padded frame is computed per window) instead of per window; the two agree to
   float32 rounding (tests/models/test_event_scan.py).

Then :func:`find_detections` on the station's whole series (:class:`WindowScores`):

* a **run** is a maximal set of consecutive grid windows whose event probability
  (1 − P(noise)) exceeds ``threshold`` (0.5), a dip of up to ``max_dip_windows`` (1)
  windows below it included (an event's windows dip when its P leaves the trained
  positions); runs of fewer than ``min_windows`` (2) windows, or whose best window stays
  under ``peak_threshold`` (0.9), are dropped (most often a noise burst). Before the
  onset-aligned windows and the coda join below, 0.95 cut the default bundle's false
  detections from 12 to 4 a day for 2 % of recall (data/event_continuous.py, 6 h, 50
  events at 5–20 dB, seeds 2 and 3); with them (12 h days, seeds 4–9, 3 station-days)
  0.9 keeps recall at 0.975 (0.962 at 0.95) for 0.7 false detections a day (0.7 at 0.95,
  1.7 at 0.8);
* its **onset** (:func:`pick_onset`) is the first STA/LTA trigger (``trigger_on`` 2.5,
  ``trigger_off`` 1.5: lower than the single-window path's 3.5, as the run already says
  an event is there) from the run's first window start to its last window end whose
  peak ratio is at least ``onset_share`` (half) of the highest there: the P rather
  than a noise blip before it or a larger S after it (None without a trigger);
* its **class windows** are the run's windows whose start puts the onset
  ``class_offsets_s`` (1–10 s; the heads were trained on 1–25 s, but are right less
  often past 13 s, see below) into the window — windows with the P near their end, or
  past it, see an incomplete event and are the ones that disagree; without an onset, or
  without such a window, every window of the run counts (only windows the network saw:
  a bridged dip may be one the gate held back). The detection's class probabilities
  are the mean over its class windows (label: the most probable class other than
  noise);
* **source parameters**: the mean over the class windows of the heads' distance, depth
  and magnitude, and as **spread** their standard deviation over those windows (0 for
  one window): how much the estimate moves with the window's position, not a
  calibrated uncertainty;
* the **peak window**: the run's window of highest event probability.

Then, in ``seislens.service.scan_run`` (which reads the file back):

* **onset-aligned class windows** (:func:`onset_window_starts`,
  :func:`with_class_windows`): a detection with an onset is classified again, its class
  and source parameters the mean over its grid class windows (:func:`placed_windows`:
  the onset ``class_offsets_s``, 1–10 s, into them; one window at a stride of 10 s) and
  windows off the grid that put the onset ``onset_positions_s`` (1 and 10 s) into them.
  The heads are worse with the P late in the window: on 597 inserted events (12 h days,
  seeds 4–9) windows with the true P at 3–13 s were classified right 0.93–0.96 of the
  time, at 16, 20 and 25 s 0.87, 0.84 and 0.77 (explosions 0.76 at 16 s, surface events
  0.51 at 25 s), and a spread of positions makes up for onsets picked late (emergent
  onsets, an S taken for the P): on the 571 detected ones with an onset the grid's
  windows at 1–25 s gave 0.919, at 1–10 s 0.921, the grid's 1–10 s window with aligned
  ones at 1 and 10 s 0.944, five aligned ones (1, 3, 5, 7, 10 s) 0.946, one at 5 s
  0.926. Two windows cost about two grid windows per detection, and the detections of a
  chunk read their 70 s (and ``margin_s`` each side) back from the file together;
* the **event check** (:func:`is_event`): a detection whose class probabilities give an
  event probability of at most ``event_threshold`` (0.5: noise is then the likeliest
  class) is dropped. Noise bursts that a run of grid windows passes are called noise by
  the windows placed on their onset: on the tuning days it halved the false detections
  (13 → 7 a day at a peak threshold of 0.5) for 0.7 % of recall (events whose onset was
  picked several seconds late, so that the aligned windows start after the P);
* the **S − P depth** (``with_travel_time_depth``): a detection with an onset has its
  depth replaced by the one its S − P time gives at the heads' distance, where
  :func:`~seislens.data.event_travel_time.travel_time_depth`'s check applies (an
  earthquake, ≤ 250 km, a clear S pick in the 60 s from 5 s before the onset); the
  estimate's ``method`` then says ``s_minus_p``;
* the **coda join** (:func:`merge_coda`): a detection that starts at most
  ``merge_gap_s`` (60 s) after the station's previous one ends joins it. Windows in an
  event's coda pass the threshold again (4 of the 10 false detections of the tuning
  days at the old defaults started 60–130 s after a P, 0–50 s after the end of its
  detection); detections of two successive inserted events there were ≥ 80 s apart (1 %
  under 126 s; the generator spaces events ≥ 216 s), so 60 s joined no two events. Real
  sequences (aftershocks) can be closer: two events that close become one detection,
  with the first one's onset and class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import signal as sps
from seislens.models.contract import SAMPLING_RATE_HZ, WINDOW_S, WINDOW_SAMPLES
from seislens.models.event_preprocess import (
    STFT_HOP,
    STFT_NFFT,
    STFT_WINDOW,
    EventPreprocessConfig,
    filter_waveform,
    resample_to_contract,
)

NOISE_CLASS = "noise"
"""The class whose complement is a window's event probability."""


class ScanConfig(BaseModel):
    """How a long recording is scanned and its detections formed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stride_s: float = Field(10.0, ge=1.0, le=WINDOW_S, description="window step (s)")
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="event probability (1 - P(noise)) a window must pass"
    )
    min_windows: int = Field(2, ge=1, le=100, description="windows a detection needs at least")
    peak_threshold: float = Field(
        0.9, gt=0.0, lt=1.0, description="event probability its best window must reach"
    )
    max_dip_windows: int = Field(
        1, ge=0, le=10, description="windows below the threshold that do not split a run"
    )
    batch_size: int = Field(64, ge=1, le=1024, description="windows per ONNX Runtime run")
    chunk_s: float = Field(
        3600.0, ge=300.0, le=86400.0, description="seconds of window starts read at once"
    )
    margin_s: float = Field(
        30.0, ge=5.0, le=300.0, description="overlap read on each side of a chunk (s)"
    )
    taper_s: float = Field(3.0, ge=0.0, le=30.0, description="Hann taper at segment ends (s)")
    class_offsets_s: tuple[float, float] = Field(
        (1.0, 10.0),
        description="onset positions (s into a window) of the grid's class windows",
    )
    trigger_on: float = Field(2.5, gt=1.0, description="STA/LTA ratio that starts an onset")
    trigger_off: float = Field(1.5, gt=0.0, description="STA/LTA ratio that ends it")
    onset_share: float = Field(
        0.5, gt=0.0, le=1.0, description="an onset's peak ratio, as a share of the run's highest"
    )
    gate_ratio: float | None = Field(
        2.0,
        gt=0.0,
        description="highest 3-C STA/LTA ratio a window needs to reach the network (None: all do)",
    )
    gate_sta_s: float = Field(2.0, gt=0.0, description="the gate's STA length (s)")
    gate_lta_s: float = Field(30.0, gt=0.0, description="the gate's LTA length (s)")
    segment_spectra: bool = Field(
        True, description="slice the windows' spectra from one STFT per segment"
    )
    onset_positions_s: tuple[float, ...] = Field(
        (1.0, 10.0),
        description=(
            "positions (s into a window) at which a detection's onset is placed in extra "
            "windows (onset-aligned, off the grid) classified for its class and source "
            "parameters with its grid class windows; () or no onset: the grid's alone"
        ),
    )
    event_threshold: float | None = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description=(
            "event probability (1 - P(noise)) a detection's class probabilities (the mean "
            "over its class windows) must exceed, or it is dropped as noise (None: kept)"
        ),
    )
    merge_gap_s: float | None = Field(
        60.0,
        ge=0.0,
        description=(
            "a detection whose first window starts at most this long (s) after the end of "
            "the station's previous detection joins it as its coda (None: never)"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScanConfig:
        samples = self.stride_s * SAMPLING_RATE_HZ
        if abs(samples - round(samples)) > 1e-6:
            raise ValueError(f"stride_s {self.stride_s} must be a multiple of 0.01 s")
        low, high = self.class_offsets_s
        if not 0.0 <= low <= high < WINDOW_S:
            raise ValueError(
                f"class_offsets_s {self.class_offsets_s} must be 0 <= low <= high < 60"
            )
        if self.gate_sta_s >= self.gate_lta_s:
            raise ValueError(
                f"gate_sta_s {self.gate_sta_s} must be shorter than gate_lta_s {self.gate_lta_s}"
            )
        if any(not 0.0 <= p < WINDOW_S for p in self.onset_positions_s):
            raise ValueError(
                f"onset_positions_s {self.onset_positions_s} must lie in [0, {WINDOW_S:g})"
            )
        if self.segment_spectra and samples % STFT_HOP:
            raise ValueError(
                f"segment_spectra needs a stride_s that is a multiple of the STFT hop "
                f"({STFT_HOP / SAMPLING_RATE_HZ} s); got {self.stride_s}"
            )
        return self

    @property
    def read_margin_s(self) -> float:
        """The overlap read on each side of a chunk (s): ``margin_s``, or with the gate on
        at least its warm-up (``gate_lta_s`` + ``taper_s``) and a second, so that a
        chunk's first windows get the evidence they would get in one long segment."""
        if self.gate_ratio is None:
            return self.margin_s
        return max(self.margin_s, self.gate_lta_s + self.taper_s + 1.0)

    @property
    def stride_samples(self) -> int:
        """The stride in 100 Hz samples."""
        return round(self.stride_s * SAMPLING_RATE_HZ)


# --------------------------------------------------------------------------- per segment


def condition_segment(
    data: np.ndarray, sampling_rate: float, pre: EventPreprocessConfig, taper_s: float
) -> np.ndarray:
    """A gap-free segment conditioned as the event windows are: detrend, a Hann taper of
    ``taper_s`` seconds at each end, band-pass, resampling to 100 Hz.

    Args:
        data: (3, n) Z, N, E at ``sampling_rate`` Hz.
        sampling_rate: Hz.
        pre: the bundle's preprocessing (band, corners).
        taper_s: taper length per end (s).
    Returns:
        (3, round(n · 100 / sampling_rate)) float64 at 100 Hz.
    """
    n = data.shape[-1]
    fraction = min(0.5, taper_s * sampling_rate / n) if n else 0.0
    config = pre.model_copy(update={"taper_fraction": fraction})
    return resample_to_contract(filter_waveform(data, sampling_rate, config), sampling_rate)


def window_grid(
    segment_start: float,
    samples: int,
    origin: float,
    stride_s: float,
    first: float,
    last: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The grid windows that fit in a 100 Hz segment, with starts in [first, last).

    Args:
        segment_start: epoch (s) of the segment's first sample.
        samples: its length at 100 Hz.
        origin: epoch (s) of the scan's grid origin (window k starts at origin + k·stride).
        stride_s: the grid step (s).
        first, last: the half-open range of window starts this segment is responsible for.
    Returns:
        (starts (m,) float64 epochs, offsets (m,) int64 first sample of each window).
    """
    seg_end = segment_start + samples / SAMPLING_RATE_HZ
    lo = max(first, segment_start)
    hi = min(last, seg_end - WINDOW_S + 1e-6)
    if hi < lo:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    k0 = math.ceil((lo - origin) / stride_s - 1e-9)
    k1 = math.floor((hi - origin) / stride_s + 1e-9)
    ks = np.arange(k0, k1 + 1, dtype=np.int64)
    starts = origin + ks * stride_s
    starts = starts[(starts >= first - 1e-9) & (starts < last - 1e-9)]
    offsets = np.round((starts - segment_start) * SAMPLING_RATE_HZ).astype(np.int64)
    keep = (offsets >= 0) & (offsets + WINDOW_SAMPLES <= samples)
    return starts[keep], offsets[keep]


def window_batches(
    conditioned: np.ndarray, offsets: np.ndarray, batch_size: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """(slice of ``offsets``, (B, 3, 6000) float32 windows) per batch."""
    for s in range(0, len(offsets), batch_size):
        part = offsets[s : s + batch_size]
        windows = np.stack([conditioned[:, o : o + WINDOW_SAMPLES] for o in part])
        yield slice(s, s + len(part)), windows.astype(np.float32)


class SegmentSpectra:
    """The spectra of a conditioned segment's windows from one STFT of the segment.

    The window transform (:func:`~seislens.models.event_preprocess.waveform_to_spectrum`)
    z-normalises a (3, 6000) window, pads it with half a frame of zeros each side, takes
    121 Hann frames of ``STFT_WINDOW`` samples every ``STFT_HOP`` and drops the first
    frame and the DC row. Its frames 1–119 are whole frames of the window, so for windows
    whose offsets share one residue modulo the hop they are frames of the segment: the
    segment is transformed once, and each window takes its 119 frames, corrected for its
    z-normalisation (a window's mean only enters the rows where the Hann window's own
    spectrum is non-zero, for a periodic Hann the first row; its scale divides all) and
    completed by its last, half-padded frame, computed per window.

    Only the frames of the windows at ``offsets`` are transformed (the gate sends a
    minority of windows on), each once.

    Args:
        conditioned: (3, M) conditioned segment at 100 Hz.
        offsets: (m,) first samples of the windows that will be asked for, all with one
            residue modulo ``STFT_HOP``.
        log: the bundle's ``log_spectrum``.
    """

    def __init__(self, conditioned: np.ndarray, offsets: np.ndarray, log: bool) -> None:
        if STFT_WINDOW != 2 * STFT_HOP or WINDOW_SAMPLES % STFT_HOP:
            raise ValueError("segment spectra need a hop of half the frame dividing the window")
        offsets = np.asarray(offsets, dtype=np.int64)
        self.x = np.asarray(conditioned, dtype=np.float64)
        self.residue = int(offsets[0] % STFT_HOP) if len(offsets) else 0
        self._check(offsets)
        self.log = log
        self.hann = sps.get_window("hann", STFT_WINDOW)
        own = np.fft.rfft(self.hann, n=STFT_NFFT)[1:]  # rows 1.. (the DC row is dropped)
        self.mean_rows = np.flatnonzero(np.abs(own) > 1e-9 * np.abs(own).max())
        self.own = own[self.mean_rows] / self.hann.sum()  # a unit mean's part there
        self.full = WINDOW_SAMPLES // STFT_HOP - 1  # whole frames of a window (119)
        frames = sliding_window_view(self.x[:, self.residue :], STFT_WINDOW, axis=-1)
        frames = frames[:, ::STFT_HOP]  # (3, K, STFT_WINDOW), views
        needed = np.zeros(frames.shape[1] + 1, np.int64)  # the windows' frames, each once
        first = (offsets - self.residue) // STFT_HOP
        np.add.at(needed, first, 1)
        np.add.at(needed, first + self.full, -1)
        used = np.flatnonzero(np.cumsum(needed)[:-1] > 0)
        spec = np.fft.rfft(frames[:, used] * self.hann, n=STFT_NFFT, axis=-1)[..., 1:]
        spec /= self.hann.sum()
        k, self.rows = frames.shape[1], spec.shape[-1]
        # (3, F, K): a window's frames are one contiguous slice of the last axis
        self.magnitude = np.zeros((3, self.rows, k), np.float32)
        self.magnitude[:, :, used] = np.abs(spec).swapaxes(-1, -2)
        self.mean_part = np.zeros((3, len(self.mean_rows), k), complex)
        self.mean_part[:, :, used] = spec[..., self.mean_rows].swapaxes(-1, -2)
        # prefix sums for each window's mean and variance (about the segment's mean)
        self.centre = self.x.mean(axis=-1, keepdims=True)
        y = self.x - self.centre
        self.sums = np.concatenate([np.zeros((3, 1)), np.cumsum(y, axis=-1)], axis=-1)
        self.squares = np.concatenate([np.zeros((3, 1)), np.cumsum(y * y, axis=-1)], axis=-1)
        self.power = self.squares[:, -1:] / max(1, y.shape[1])  # (3, 1)

    def _check(self, offsets: np.ndarray) -> None:
        if np.any((offsets - self.residue) % STFT_HOP):
            raise ValueError("window offsets must share one residue modulo the STFT hop")
        if len(offsets) and (offsets.min() < 0 or offsets.max() + WINDOW_SAMPLES > self.x.shape[1]):
            raise ValueError("a window reaches past the segment")

    def __call__(self, offsets: np.ndarray) -> np.ndarray:
        """(B, 3, 50, 120) float32 spectra of windows at ``offsets`` (some of those given
        at construction), equal to ``waveform_to_spectrum`` of each window."""
        offsets = np.asarray(offsets, dtype=np.int64)
        self._check(offsets)
        end = offsets + WINDOW_SAMPLES
        shift = (self.sums[:, end] - self.sums[:, offsets]) / WINDOW_SAMPLES  # (3, B)
        var = (self.squares[:, end] - self.squares[:, offsets]) / WINDOW_SAMPLES - shift**2
        # where the prefix sums cancel (a flat or nearly flat window), the window itself
        small = np.argwhere(var <= 1e-9 * self.power)
        for c, b in small:
            var[c, b] = self.x[c, offsets[b] : end[b]].var()
        std = np.sqrt(np.maximum(var, 0.0))
        mean = (shift + self.centre).T  # (B, 3)
        inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0).T  # (B, 3)
        out = np.empty((len(offsets), 3, self.rows, self.full + 1), np.float32)
        firsts = (offsets - self.residue) // STFT_HOP
        for b, f in enumerate(firsts):
            out[b, :, :, : self.full] = self.magnitude[:, :, f : f + self.full]
            part = (
                self.mean_part[:, :, f : f + self.full] - mean[b, :, None, None] * self.own[:, None]
            )
            out[b, :, self.mean_rows, : self.full] = np.abs(part).swapaxes(0, 1)
        out[:, :, :, : self.full] *= inv[:, :, None, None]
        half = STFT_WINDOW - STFT_HOP  # the last frame: half data, half padding
        idx = (end - half)[:, None] + np.arange(half)  # (B, half)
        tail = np.zeros((len(offsets), 3, STFT_WINDOW))
        tail[..., :half] = (self.x[:, idx].swapaxes(0, 1) - mean[..., None]) * inv[..., None]
        last = np.abs(np.fft.rfft(tail * self.hann, n=STFT_NFFT, axis=-1))[..., 1:]
        out[..., self.full] = last / self.hann.sum()
        return np.log(out + 1e-6) if self.log else out


def classify_windows(
    embedder: Any,
    conditioned: np.ndarray,
    offsets: np.ndarray,
    batch_size: int,
    keep: np.ndarray | None = None,
    segment_spectra: bool = False,
    seconds: dict[str, float] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Class probabilities and heads' estimates of windows of a conditioned segment.

    Args:
        embedder: the bundle's :class:`~seislens.models.event_embedders.EventEmbedder`.
        conditioned: (3, M) at 100 Hz.
        offsets: (m,) first sample of each window.
        batch_size: windows per ONNX Runtime run.
        keep: (m,) bool, the windows that go to the network (the gate); the others get
            P(noise) 1 and NaN estimates. None: all go.
        segment_spectra: spectra from one STFT of the segment (:class:`SegmentSpectra`)
            rather than per window (``embedder.spectra``).
        seconds: when given, ``"segment_spectra"`` accumulates the time spent there.
    Returns:
        (m, C) float32 probabilities in ``embedder.classes`` order and name → (m,)
        float32 for each regression output (km, km, magnitude units).
    """
    m = len(offsets)
    classes = tuple(embedder.classes)
    probs = np.zeros((m, len(classes)), np.float32)
    reg = {name: np.full(m, np.nan, np.float32) for name in embedder.regression_outputs}
    chosen = np.arange(m) if keep is None else np.flatnonzero(keep)
    if keep is not None and NOISE_CLASS in classes:
        probs[:, classes.index(NOISE_CLASS)] = 1.0
    elif keep is not None:
        chosen = np.arange(m)  # no noise class to give skipped windows: classify all
    if not len(chosen):
        return probs, reg
    sliced = None
    if segment_spectra:
        t0 = time.perf_counter()
        sliced = SegmentSpectra(conditioned, offsets[chosen], embedder.pre.log_spectrum)
        if seconds is not None:
            seconds["segment_spectra"] = seconds.get("segment_spectra", 0.0) + (
                time.perf_counter() - t0
            )
    for s in range(0, len(chosen), batch_size):
        rows = chosen[s : s + batch_size]
        if sliced is not None:
            t0 = time.perf_counter()
            spectra = sliced(offsets[rows])
            if seconds is not None:
                seconds["segment_spectra"] += time.perf_counter() - t0
        else:
            windows = np.stack([conditioned[:, o : o + WINDOW_SAMPLES] for o in offsets[rows]])
            spectra = embedder.spectra(windows.astype(np.float32))
        p, r = embedder.classify(spectra, batch_size)
        probs[rows] = p
        for name in reg:
            reg[name][rows] = r[name]
    return probs, reg


def sta_lta_ratio(z: np.ndarray, pre: EventPreprocessConfig, taper_s: float) -> np.ndarray:
    """Classic STA/LTA of a conditioned 100 Hz vertical, the LTA warm-up and the start
    taper set to 0.

    Args:
        z: (M,) conditioned vertical at 100 Hz.
        pre: the STA and LTA lengths.
        taper_s: the taper at the segment's start (s).
    Returns:
        (M,) float64 ratio (all 0 when the segment is no longer than the LTA).
    """
    from obspy.signal.trigger import classic_sta_lta

    nsta, nlta = _sta_lta_samples(pre)
    if z.size <= nlta:
        return np.zeros(z.size)
    ratio = classic_sta_lta(np.ascontiguousarray(z, dtype=np.float64), nsta, nlta)
    ratio[: warm_up_samples(pre, taper_s)] = 0.0
    return ratio


def warm_up_samples(pre: EventPreprocessConfig, taper_s: float) -> int:
    """Samples at a segment's start where the STA/LTA ratio is not defined (LTA + taper)."""
    return _sta_lta_samples(pre)[1] + round(taper_s * SAMPLING_RATE_HZ)


def _sta_lta_samples(pre: EventPreprocessConfig) -> tuple[int, int]:
    nsta = max(1, round(pre.sta_s * SAMPLING_RATE_HZ))
    return nsta, max(nsta + 1, round(pre.lta_s * SAMPLING_RATE_HZ))


def trigger_onsets(
    z: np.ndarray,
    start: float,
    pre: EventPreprocessConfig,
    config: ScanConfig,
    ratio: np.ndarray | None = None,
) -> list[tuple[float, float]]:
    """Every classic STA/LTA trigger on a conditioned 100 Hz vertical.

    Triggers inside the LTA warm-up or the start taper are ignored.

    Args:
        z: (M,) conditioned vertical at 100 Hz.
        start: epoch (s) of its first sample.
        pre: the STA and LTA lengths.
        config: the on and off ratios, the taper at the segment's start.
        ratio: :func:`sta_lta_ratio` of ``z`` when already computed.
    Returns:
        (onset epoch, peak STA/LTA ratio of the trigger) per trigger, in time order.
    """
    from obspy.signal.trigger import trigger_onset

    if ratio is None:
        ratio = sta_lta_ratio(z, pre, config.taper_s)
    if not ratio.any():
        return []
    out = []
    for on, off in trigger_onset(ratio, config.trigger_on, config.trigger_off):
        peak = float(ratio[on : max(on + 1, off + 1)].max())
        out.append((start + on / SAMPLING_RATE_HZ, peak))
    return out


def window_evidence(conditioned: np.ndarray, offsets: np.ndarray, config: ScanConfig) -> np.ndarray:
    """Each window's event evidence for the gate: the highest classic STA/LTA ratio inside
    it of the 3-component energy (``gate_sta_s`` / ``gate_lta_s``); +inf for windows that
    touch the LTA warm-up or the start taper (no ratio there).

    Args:
        conditioned: (3, M) conditioned segment at 100 Hz.
        offsets: (m,) first sample of each window.
        config: the gate's STA and LTA lengths, the taper.
    Returns:
        (m,) float64.
    """
    from obspy.signal.trigger import classic_sta_lta
    from scipy.ndimage import maximum_filter1d

    offsets = np.asarray(offsets, dtype=np.int64)
    if not len(offsets):
        return np.zeros(0)
    nsta = max(1, round(config.gate_sta_s * SAMPLING_RATE_HZ))
    nlta = max(nsta + 1, round(config.gate_lta_s * SAMPLING_RATE_HZ))
    warm_up = nlta + round(config.taper_s * SAMPLING_RATE_HZ)
    x = np.asarray(conditioned, dtype=np.float64)
    if x.shape[1] <= warm_up:
        return np.full(len(offsets), np.inf)
    amplitude = np.sqrt((x * x).sum(axis=0))  # classic_sta_lta averages its square
    ratio = classic_sta_lta(amplitude, nsta, nlta)
    ratio[:warm_up] = 0.0
    # the running maximum over the WINDOW_SAMPLES samples that start at each sample
    ahead = maximum_filter1d(ratio, WINDOW_SAMPLES, mode="nearest", origin=-(WINDOW_SAMPLES // 2))
    return np.where(offsets < warm_up, np.inf, ahead[offsets])


# --------------------------------------------------------------------------- per station


@dataclass
class WindowScores:
    """One station's scanned windows, in time order.

    Attributes:
        starts: (n,) window start epochs (s), on the scan's grid.
        probabilities: (n, C) class probabilities.
        regression: name → (n,) the heads' estimates (NaN where the gate kept a window
            from the network).
        triggers: (onset epoch, peak ratio) of the STA/LTA triggers.
        classified: (n,) bool, the windows that reached the network (None: all).
    """

    starts: np.ndarray
    probabilities: np.ndarray
    regression: dict[str, np.ndarray]
    triggers: list[tuple[float, float]] = field(default_factory=list)
    classified: np.ndarray | None = None

    @classmethod
    def join(
        cls,
        parts: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray | None]],
        triggers: list[tuple[float, float]],
        classes: int,
        outputs: tuple[str, ...],
    ) -> WindowScores:
        """The series of a station from its segments' (starts, probabilities, regression,
        gate mask or None)."""
        if not parts:
            return cls(
                np.zeros(0),
                np.zeros((0, classes), np.float32),
                {n: np.zeros(0, np.float32) for n in outputs},
                sorted(triggers),
            )
        starts = np.concatenate([p[0] for p in parts])
        order = np.argsort(starts, kind="stable")
        classified = None
        if any(p[3] is not None for p in parts):
            classified = np.concatenate(
                [np.ones(len(p[0]), bool) if p[3] is None else p[3] for p in parts]
            )[order]
        return cls(
            starts=starts[order],
            probabilities=np.concatenate([p[1] for p in parts])[order],
            regression={n: np.concatenate([p[2][n] for p in parts])[order] for n in outputs},
            triggers=sorted(triggers),
            classified=classified,
        )

    @property
    def network_windows(self) -> int:
        """Windows that reached the network."""
        return len(self.starts) if self.classified is None else int(self.classified.sum())

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class Estimate:
    """A source parameter of a detection: mean and spread over its class windows, and how
    it was found (``heads``; a depth may be ``s_minus_p``:
    :mod:`~seislens.data.event_travel_time`)."""

    value: float
    spread: float
    method: str = "heads"


@dataclass(frozen=True)
class Detection:
    """Contiguous windows of one station whose event probability passed the threshold.

    Attributes:
        station: ``NET.STA``.
        start: the first window's start (epoch s); end: the last window's end.
        onset: the P onset (epoch s) from STA/LTA, or None.
        windows: windows in the run; class_windows: those whose mean gives the class.
        probabilities: class → mean probability over the class windows.
        label: the most probable class other than noise.
        estimates: name → mean and spread of the heads' estimate over the class windows.
        peak_start: start of the window of highest event probability; peak_probability:
            that probability; peak_probabilities: its class probabilities.
        relabelled_from: the label the probabilities give, where the S − P check changed
            it (an explosion too deep to be one: :mod:`~seislens.data.event_travel_time`);
            else None.
    """

    station: str
    start: float
    end: float
    onset: float | None
    windows: int
    class_windows: int
    probabilities: dict[str, float]
    label: str
    estimates: dict[str, Estimate]
    peak_start: float
    peak_probability: float
    peak_probabilities: dict[str, float]
    relabelled_from: str | None = None

    @property
    def reference_time(self) -> float:
        """The onset, or (without one) the first window's end: the P then has just
        entered the run's first window."""
        return self.onset if self.onset is not None else self.start + WINDOW_S


def event_probability(probabilities: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """(n,) 1 − P(noise) of (n, C) probabilities (1 when the bundle has no noise class)."""
    if NOISE_CLASS not in classes:
        return np.ones(len(probabilities))
    return 1.0 - probabilities[:, classes.index(NOISE_CLASS)].astype(np.float64)


def runs(
    above: np.ndarray, starts: np.ndarray, stride_s: float, max_dip: int = 0
) -> list[tuple[int, int]]:
    """Half-open index ranges of consecutive grid windows (one stride apart) above the
    threshold; two such ranges separated by at most ``max_dip`` windows below it (and no
    missing window) are one."""
    out: list[tuple[int, int]] = []
    begin: int | None = None
    for i in range(len(above)):
        contiguous = i > 0 and abs(starts[i] - starts[i - 1] - stride_s) < 1e-3
        if begin is not None and (not above[i] or not contiguous):
            out.append((begin, i))
            begin = None
        if above[i] and begin is None:
            begin = i
    if begin is not None:
        out.append((begin, len(above)))
    merged: list[tuple[int, int]] = []
    for begin, end in out:
        if merged:
            last_begin, last_end = merged[-1]
            gap = starts[begin] - starts[last_end - 1]
            if begin - last_end <= max_dip and abs(gap - (begin - last_end + 1) * stride_s) < 1e-3:
                merged[-1] = (last_begin, end)
                continue
        merged.append((begin, end))
    return merged


def find_detections(
    station: str, scores: WindowScores, classes: tuple[str, ...], config: ScanConfig
) -> list[Detection]:
    """The detections of one station's scanned windows (see the module docstring)."""
    p_event = event_probability(scores.probabilities, classes)
    triggers = np.array(scores.triggers, dtype=np.float64).reshape(-1, 2)
    found = []
    above = p_event > config.threshold
    for begin, end in runs(above, scores.starts, config.stride_s, config.max_dip_windows):
        if end - begin < config.min_windows or p_event[begin:end].max() < config.peak_threshold:
            continue
        found.append(_detection(station, scores, classes, config, p_event, triggers, begin, end))
    return found


def pick_onset(triggers: np.ndarray, first: float, last: float, share: float) -> float | None:
    """The first trigger in [first, last) whose peak ratio reaches ``share`` of the
    highest peak there (the P rather than a noise blip before it, or the larger S after
    it); None without a trigger.

    Args:
        triggers: (k, 2) onset epochs and peak ratios, in time order.
        first, last: the span (epoch s).
        share: the share of the span's highest peak (0–1].
    """
    inside = triggers[(triggers[:, 0] >= first) & (triggers[:, 0] < last)]
    if not len(inside):
        return None
    strong = inside[inside[:, 1] >= share * inside[:, 1].max()]
    return float(strong[0, 0])


def _detection(
    station: str,
    scores: WindowScores,
    classes: tuple[str, ...],
    config: ScanConfig,
    p_event: np.ndarray,
    triggers: np.ndarray,
    begin: int,
    end: int,
) -> Detection:
    starts = scores.starts[begin:end]
    first, last_end = float(starts[0]), float(starts[-1]) + WINDOW_S
    onset = pick_onset(triggers, first, last_end, config.onset_share)
    idx = np.arange(begin, end)
    if onset is not None:
        low, high = config.class_offsets_s
        placed = idx[(onset - starts >= low) & (onset - starts <= high)]
        if placed.size:
            idx = placed
    if scores.classified is not None:  # a bridged dip may be a window the gate held back
        seen = idx[scores.classified[idx]]
        idx = seen if seen.size else np.arange(begin, end)[scores.classified[begin:end]]
    probabilities, label, estimates = summarise_windows(
        scores.probabilities[idx], {n: v[idx] for n, v in scores.regression.items()}, classes
    )
    peak = begin + int(np.argmax(p_event[begin:end]))
    return Detection(
        station=station,
        start=first,
        end=last_end,
        onset=onset,
        windows=end - begin,
        class_windows=len(idx),
        probabilities=probabilities,
        label=label,
        estimates=estimates,
        peak_start=float(scores.starts[peak]),
        peak_probability=float(p_event[peak]),
        peak_probabilities={
            c: float(p) for c, p in zip(classes, scores.probabilities[peak], strict=True)
        },
    )


def summarise_windows(
    probabilities: np.ndarray, regression: dict[str, np.ndarray], classes: tuple[str, ...]
) -> tuple[dict[str, float], str, dict[str, Estimate]]:
    """A detection's class and source parameters from its class windows.

    Args:
        probabilities: (k, C) class probabilities of the class windows (k >= 1).
        regression: name → (k,) the heads' estimates there.
        classes: the bundle's classes.
    Returns:
        (class → mean probability, the most probable class other than noise, name →
        mean and standard deviation of the estimates).
    """
    probs = np.asarray(probabilities, dtype=np.float64).mean(axis=0)
    events = [i for i, c in enumerate(classes) if c != NOISE_CLASS] or list(range(len(classes)))
    label = classes[max(events, key=lambda i: probs[i])]
    estimates = {
        name: Estimate(float(np.mean(v)), float(np.std(v))) for name, v in regression.items()
    }
    return {c: float(p) for c, p in zip(classes, probs, strict=True)}, label, estimates


def onset_window_starts(onset: float, config: ScanConfig) -> np.ndarray:
    """(k,) start epochs (s) of a detection's onset-aligned windows: its onset
    ``onset_positions_s`` seconds into each (the positions the heads were trained on;
    the grid puts it anywhere in the class offsets)."""
    return onset - np.asarray(config.onset_positions_s, dtype=np.float64)


def with_class_windows(
    detection: Detection,
    probabilities: np.ndarray,
    regression: dict[str, np.ndarray],
    classes: tuple[str, ...],
) -> Detection:
    """``detection`` with its class probabilities, label and source parameters taken from
    other class windows (the onset-aligned ones): (k, C) probabilities, name → (k,)."""
    probs, label, estimates = summarise_windows(probabilities, regression, classes)
    return replace(
        detection,
        class_windows=len(probabilities),
        probabilities=probs,
        label=label,
        estimates=estimates,
    )


def placed_windows(scores: WindowScores, detection: Detection, config: ScanConfig) -> np.ndarray:
    """Indices into ``scores`` of the grid windows of ``detection`` (one station's) that
    put its onset ``class_offsets_s`` into them and reached the network (empty without
    an onset)."""
    if detection.onset is None:
        return np.zeros(0, np.int64)
    lo = int(np.searchsorted(scores.starts, detection.start - 1e-6))
    hi = int(np.searchsorted(scores.starts, detection.end - WINDOW_S + 1e-6, side="right"))
    idx = np.arange(lo, hi)
    position = detection.onset - scores.starts[idx]
    low, high = config.class_offsets_s
    keep = (position >= low) & (position <= high)
    if scores.classified is not None:
        keep &= scores.classified[idx]
    return idx[keep]


def is_event(detection: Detection, classes: tuple[str, ...], config: ScanConfig) -> bool:
    """Whether a detection's own class probabilities (its class windows' mean) give an
    event probability above ``event_threshold``: a run of windows can pass the window
    threshold on a noise burst that the windows placed on its onset call noise."""
    if config.event_threshold is None or NOISE_CLASS not in classes:
        return True
    return 1.0 - detection.probabilities[NOISE_CLASS] > config.event_threshold


def merge_coda(detections: list[Detection], config: ScanConfig) -> list[Detection]:
    """One station's detections (in time order) with each that starts at most
    ``merge_gap_s`` after the previous one's end joined to it: windows that pass the
    threshold again in an event's coda (a later phase, a scattered arrival, a burst in
    it) are not a new event. The joined detection keeps the earlier one's onset, class
    and source parameters (its P), spans both, counts both runs' windows and keeps the
    higher peak."""
    if config.merge_gap_s is None:
        return list(detections)
    out: list[Detection] = []
    for d in detections:
        if out and out[-1].station == d.station and d.start - out[-1].end <= config.merge_gap_s:
            first = out[-1]
            peak = first if first.peak_probability >= d.peak_probability else d
            out[-1] = replace(
                first,
                end=max(first.end, d.end),
                windows=first.windows + d.windows,
                peak_start=peak.peak_start,
                peak_probability=peak.peak_probability,
                peak_probabilities=peak.peak_probabilities,
            )
            continue
        out.append(d)
    return out
