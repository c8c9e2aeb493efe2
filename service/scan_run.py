"""One scan of a long recording, start to end: what the scan job, the CLI and the
benchmark run (:func:`scan_recording`).

Per station of the plan (:mod:`~seislens.service.scan_reader`), in turn: the window
starts are taken ``chunk_s`` at a time; each chunk is read with ``margin_s`` of overlap on
both sides, split into gap-free segments, conditioned, its windows classified in
batches and its STA/LTA onsets kept (:mod:`~seislens.models.event_scan`); the mapped
pages are then dropped. Memory therefore follows the chunk and the batch, not the file:
what grows with the file is 8 numbers and a flag per window (33 bytes) and one pair per onset.
Then the station's detections, and over all stations the events
(:mod:`~seislens.models.event_association`), located when station coordinates are
given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.event_travel_time import travel_time_depth
from seislens.models.contract import SAMPLING_RATE_HZ, WINDOW_S, WINDOW_SAMPLES
from seislens.models.event_association import (
    AssociationConfig,
    Location,
    PTravelTimes,
    StationPosition,
    associate,
    combine_estimates,
    combine_probabilities,
    group_label,
    locate,
)
from seislens.models.event_preprocess import STFT_HOP
from seislens.models.event_scan import (
    Detection,
    Estimate,
    ScanConfig,
    SegmentSpectra,
    WindowScores,
    classify_windows,
    condition_segment,
    find_detections,
    is_event,
    merge_coda,
    onset_window_starts,
    placed_windows,
    sta_lta_ratio,
    trigger_onsets,
    window_evidence,
    window_grid,
    with_class_windows,
)
from seislens.service.scan_reader import (
    MappedRecording,
    ScanBudgets,
    StationPlan,
    UploadPlan,
    read_ranges,
    read_segments,
)


@dataclass(frozen=True)
class ScanProgress:
    """How far a scan is: windows classified of those planned, the station at work."""

    done: int
    total: int
    station: str

    @property
    def fraction(self) -> float:
        """done / total (1 when nothing is planned)."""
        return self.done / self.total if self.total else 1.0


ProgressFn = Callable[[ScanProgress], None]


@dataclass
class ScannedEvent:
    """Detections at one or more stations taken as one event.

    Attributes:
        members: the detections, in time order.
        probabilities: the combined class probabilities; label: the event's type.
        agreement: share of the stations whose own label is ``label``.
        depth, magnitude: combined estimates (None when the heads give none).
        location: the grid-search location, or None; location_note: why not.
    """

    members: list[Detection]
    probabilities: dict[str, float]
    label: str
    agreement: float
    depth: Estimate | None
    magnitude: Estimate | None
    location: Location | None = None
    location_note: str | None = None

    @property
    def time(self) -> float:
        """The origin time when located, else the earliest member's reference time."""
        if self.location is not None:
            return self.location.origin_time
        return min(m.reference_time for m in self.members)


@dataclass
class ScanResult:
    """What a scan found, and what it needs to be written out."""

    filename: str
    classes: tuple[str, ...]
    config: ScanConfig
    association: AssociationConfig
    plan: UploadPlan
    series: list[tuple[StationPlan, WindowScores]]
    detections: list[Detection]
    events: list[ScannedEvent]
    located: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        """Windows scanned over every station."""
        return sum(len(s) for _, s in self.series)

    @property
    def network_windows(self) -> int:
        """Windows that passed the gate to the network, over every station."""
        return sum(s.network_windows for _, s in self.series)


def planned_windows(plan: UploadPlan, stride_s: float) -> int:
    """Windows a scan of ``plan`` classifies at most (gaps make it fewer)."""
    origin = plan.start
    total = 0
    for s in plan.stations:
        first = math.ceil((s.start - origin) / stride_s - 1e-9)
        last = math.floor((s.end - WINDOW_S - origin) / stride_s + 1e-9)
        total += max(0, last - first + 1)
    return total


def scan_recording(
    path: Path,
    filename: str,
    embedder: Any,
    config: ScanConfig,
    budgets: ScanBudgets,
    positions: dict[str, StationPosition] | None = None,
    association: AssociationConfig | None = None,
    progress: ProgressFn | None = None,
) -> ScanResult:
    """Scan a miniSEED recording with a bundle's event embedder.

    Args:
        path: the file.
        filename: the client's name for it.
        embedder: the bundle's :class:`~seislens.models.event_embedders.EventEmbedder`.
        config: windowing, threshold and batching.
        budgets: what the file may declare.
        positions: station coordinates (``NET.STA`` → position), to locate events.
        association: grouping and location settings (None: the defaults, with the
            bundle's distance MAE as the least distance uncertainty when it has one).
        progress: called after every chunk.
    Raises:
        EventInputError: the file cannot be scanned (not miniSEED, over a budget, no
            station with three components).
    """
    t0 = time.perf_counter()
    association = association or AssociationConfig()
    with MappedRecording(path, filename, budgets) as recording:
        plan = recording.plan(embedder.pre)
        total = planned_windows(plan, config.stride_s)
        t1 = time.perf_counter()
        series: list[tuple[StationPlan, WindowScores]] = []
        stages: dict[str, float] = {}
        detections: list[Detection] = []
        done = 0
        for station in plan.stations:

            def counted(windows: int, name: str = station.station) -> None:
                nonlocal done
                done += windows
                if progress is not None:
                    progress(ScanProgress(min(done, total), total, name))

            scores = _scan_station(
                recording, station, plan.start, embedder, config, counted, stages
            )
            series.append((station, scores))
            t = time.perf_counter()
            detections.extend(station_detections(recording, station, scores, embedder, config))
            stages["detections"] = stages.get("detections", 0.0) + time.perf_counter() - t
    t2 = time.perf_counter()
    events = group_events(detections, positions, association)
    t3 = time.perf_counter()
    return ScanResult(
        filename=filename,
        classes=tuple(embedder.classes),
        config=config,
        association=association,
        plan=plan,
        series=series,
        detections=detections,
        events=events,
        located=positions is not None,
        seconds={"read_headers": t1 - t0, "scan": t2 - t1, "associate": t3 - t2, **stages},
    )


def _scan_station(
    recording: MappedRecording,
    station: StationPlan,
    origin: float,
    embedder: Any,
    config: ScanConfig,
    counted: Callable[[int], None],
    seconds: dict[str, float],
) -> WindowScores:
    """Every grid window of one station, chunk by chunk (``counted`` is told how many
    windows each chunk scanned; ``seconds`` accumulates the gate's and the segment
    spectra's time)."""
    pre = embedder.pre
    parts: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray | None]] = []
    triggers: list[tuple[float, float]] = []
    last_start = station.end - WINDOW_S
    c0 = station.start
    while c0 <= last_start + 1e-6:
        final = c0 + config.chunk_s > last_start
        c1 = last_start + 1e-3 if final else c0 + config.chunk_s
        lo = max(station.start, c0 - config.read_margin_s)
        hi = min(station.end, c1 + WINDOW_S + config.read_margin_s)
        windows = 0
        for seg in read_segments(recording, station, lo, hi, pre.max_gap_s):
            conditioned = condition_segment(seg.data, seg.rate, pre, config.taper_s)
            starts, offsets = window_grid(
                seg.start, conditioned.shape[1], origin, config.stride_s, c0, c1
            )
            ratio = sta_lta_ratio(conditioned[0], pre, config.taper_s)
            if len(starts):
                keep = None
                if config.gate_ratio is not None:
                    t0 = time.perf_counter()
                    keep = window_evidence(conditioned, offsets, config) >= config.gate_ratio
                    seconds["gate"] = seconds.get("gate", 0.0) + time.perf_counter() - t0
                probs, reg = classify_windows(
                    embedder,
                    conditioned,
                    offsets,
                    config.batch_size,
                    keep=keep,
                    segment_spectra=config.segment_spectra,
                    seconds=seconds,
                )
                parts.append((starts, probs, reg, keep))
                windows += len(starts)
            triggers.extend(
                (t, peak)
                for t, peak in trigger_onsets(conditioned[0], seg.start, pre, config, ratio)
                if t >= c0 and (final or t < c1)
            )
        recording.release()
        counted(windows)
        c0 = c1
    return WindowScores.join(
        parts, triggers, len(embedder.classes), tuple(embedder.regression_outputs)
    )


def station_detections(
    recording: MappedRecording,
    station: StationPlan,
    scores: WindowScores,
    embedder: Any,
    config: ScanConfig,
) -> list[Detection]:
    """One station's detections: the runs of its windows
    (:func:`~seislens.models.event_scan.find_detections`), those with an onset classified
    again on their onset-aligned windows (read back from the file, conditioned as the scan
    conditions a chunk), those whose class probabilities then call them noise dropped,
    and those in the coda of the previous one joined to it."""
    classes = tuple(embedder.classes)
    found = find_detections(station.station, scores, classes, config)
    if config.onset_positions_s:
        found = _onset_aligned(recording, station, scores, found, embedder, config)
    return merge_coda([d for d in found if is_event(d, classes, config)], config)


def _onset_aligned(
    recording: MappedRecording,
    station: StationPlan,
    scores: WindowScores,
    detections: list[Detection],
    embedder: Any,
    config: ScanConfig,
) -> list[Detection]:
    """``detections`` classified on their grid class windows (those with the onset
    ``class_offsets_s`` in) and their onset-aligned windows together; the detections whose
    onsets fall in one ``chunk_s`` are read back, conditioned and classified together
    (memory: a chunk's detections' windows). A detection without an onset, or whose data
    do not hold every such window (an edge, a gap), keeps its grid class."""
    pre, classes = embedder.pre, tuple(embedder.classes)
    out = list(detections)
    pending = [i for i, d in enumerate(out) if d.onset is not None]
    while pending:
        until = (out[pending[0]].onset or 0.0) + config.chunk_s
        group = []
        while pending and (out[pending[0]].onset or 0.0) < until:
            group.append(pending.pop(0))
        starts = [onset_window_starts(out[i].onset or 0.0, config) for i in group]
        ranges = [
            (
                max(station.start, float(s.min()) - config.margin_s),  # no STA/LTA here
                min(station.end, float(s.max()) + WINDOW_S + config.margin_s),
            )
            for s in starts
        ]
        spectra, owners, p_windows = [], [], []
        segments = read_ranges(recording, station, ranges, pre.max_gap_s)
        for i, s, segs in zip(group, starts, segments, strict=True):
            for seg in segs:
                conditioned = condition_segment(seg.data, seg.rate, pre, config.taper_s)
                offsets = np.round((s - seg.start) * SAMPLING_RATE_HZ).astype(np.int64)
                if offsets.min() >= 0 and offsets.max() + WINDOW_SAMPLES <= conditioned.shape[1]:
                    spectra.append(_spectra(embedder, conditioned, offsets, config))
                    owners.append(i)
                    p_windows.append(p_window(conditioned, (out[i].onset or 0.0) - seg.start))
                    break
        recording.release()
        if not owners:
            continue
        probs, reg = embedder.classify(np.concatenate(spectra), config.batch_size)
        k = len(config.onset_positions_s)
        for j, i in enumerate(owners):
            rows = slice(j * k, (j + 1) * k)
            grid = placed_windows(scores, out[i], config)
            out[i] = with_class_windows(
                out[i],
                np.concatenate([scores.probabilities[grid], probs[rows]]),
                {
                    n: np.concatenate([scores.regression[n][grid], np.asarray(v)[rows]])
                    for n, v in reg.items()
                },
                classes,
            )
            out[i] = with_travel_time_depth(out[i], *p_windows[j])
    return out


P_LEAD_S = 5.0
"""Seconds before the onset in the window of the S − P check (an upload window's)."""


def p_window(conditioned: np.ndarray, onset_s: float) -> tuple[np.ndarray, int]:
    """The (3, ≤ 6000) stretch of a conditioned segment from ``P_LEAD_S`` before the
    onset (``onset_s`` after the segment's start) to a window's length, copied, and the
    onset's sample in it."""
    p = round(onset_s * SAMPLING_RATE_HZ)
    lo = max(0, p - round(P_LEAD_S * SAMPLING_RATE_HZ))
    hi = min(conditioned.shape[1], lo + WINDOW_SAMPLES)
    return conditioned[:, lo:hi].copy(), p - lo


def with_travel_time_depth(detection: Detection, window: np.ndarray, p_sample: int) -> Detection:
    """``detection`` with the S − P depth as its depth where the check applies
    (:func:`~seislens.data.event_travel_time.travel_time_depth`, on the heads' distance
    and the detection's label; the spread stays the heads'), and the check's label: an
    explosion too deep to be one becomes an earthquake (``relabelled_from``)."""
    distance, depth = detection.estimates.get("distance"), detection.estimates.get("depth")
    if distance is None or depth is None:
        return detection
    check = travel_time_depth(window, p_sample, distance.value, detection.label)
    value, method = check.answer(depth.value)
    found = Estimate(value, depth.spread, method)
    return replace(
        detection,
        label=check.label,
        relabelled_from=check.relabelled_from,
        estimates={**detection.estimates, "depth": found},
    )


def _spectra(
    embedder: Any, conditioned: np.ndarray, offsets: np.ndarray, config: ScanConfig
) -> np.ndarray:
    """(k, 3, 50, 120) spectra of the windows of a conditioned segment at ``offsets``:
    sliced from one STFT (:class:`~seislens.models.event_scan.SegmentSpectra`) when
    ``segment_spectra`` is on and the offsets share a residue modulo the hop (the
    onset-aligned windows do when their positions are multiples of the hop)."""
    residues = (offsets - offsets[0]) % STFT_HOP
    if config.segment_spectra and not residues.any():
        return SegmentSpectra(conditioned, offsets, embedder.pre.log_spectrum)(offsets)
    windows = np.stack([conditioned[:, o : o + WINDOW_SAMPLES] for o in offsets])
    return embedder.spectra(windows.astype(np.float32))


def group_events(
    detections: list[Detection],
    positions: dict[str, StationPosition] | None,
    config: AssociationConfig,
) -> list[ScannedEvent]:
    """The events of a scan's detections: grouped, typed, located when positions are
    known (:mod:`~seislens.models.event_association`)."""
    if not detections:
        return []
    times = PTravelTimes()
    events = []
    for members in associate(detections, positions, times, config):
        probs = combine_probabilities([m.probabilities for m in members])
        label = group_label(probs, members)
        event = ScannedEvent(
            members=members,
            probabilities=probs,
            label=label,
            agreement=sum(m.label == label for m in members) / len(members),
            depth=combine_estimates(members, "depth"),
            magnitude=combine_estimates(members, "magnitude"),
        )
        if positions is not None:
            event.location = locate(members, positions, times, config)
            if event.location is None:
                event.location_note = (
                    "not located: fewer than two of its stations have an onset and coordinates"
                )
        events.append(event)
    return events
