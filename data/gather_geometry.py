"""Map a 2-D line acquisition's traces onto the velocity model's frame.

The frame is OpenFWI's (``seislens.models.contract``): 5 source slots at
x = ``source_columns(5, 70)`` × 10 m = 0, 170, 340, 520, 690 m and 70 receivers every
10 m from x = 0 to 690 m, all at the surface. An upload's traces are placed in it:

- **Shots** are told apart by FieldRecord when it gives every shot at least 2 traces,
  else by source position (SourceX, SourceY with SourceGroupScalar applied); when
  neither tells traces apart the file is one shot. 1 to ``MAX_SHOTS`` = 10 shots are
  accepted.
- **Positions** come from SourceX/GroupX (scalar applied) when GroupX is distinct within
  every shot (a missing SourceX is taken as GroupX − offset); else from the ``offset``
  header, with SourceX when it tells shots apart, else each shot at x = 0 (a split
  spread puts its most negative offset at x = 0). Coordinates are relative to the
  line's origin, the smallest source or receiver x in the file.
- **Source slots**: each shot goes to the nearest slot when within
  ``SLOT_TOLERANCE_M`` = 40 m (4 receiver cells); a shot inside the line but farther
  from every slot is dropped, a shot beyond 40 m outside 0–690 m is refused; of two
  shots on one slot the nearer is kept. Empty slots are zero-filled and masked.
- **Receivers** 5–25 m apart (the median spacing of a shot) are linearly interpolated
  in x onto the 10 m grid. A grid point is filled when it coincides (within 1 cm) with a
  receiver or lies between two receivers at most 1.5 spacings apart; every other point
  (a gap, beyond the spread's ends) is zero and masked — nothing is extrapolated. Each
  mapped shot must cover at least ``MIN_COVERED_RECEIVERS`` = 35 of the 70 points (half
  the 700 m aperture).
- **No usable positions** (no distinct GroupX or offset within shots): a file of exactly
  350 traces is taken as the frame itself, shot by shot in file order (as OpenFWI
  writes it); anything else is refused.

Every refusal is a :class:`GeometryError` saying what was found and what is accepted
(the upload readers raise it as an ``UploadError`` with reason ``'geometry'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from seislens.data.velocity_forward import source_columns
from seislens.models.contract import CELL_M, N_RECEIVERS, N_SHOTS

#: Receiver grid of the frame, x in metres (70,).
FRAME_X_M: np.ndarray = np.arange(N_RECEIVERS) * CELL_M
#: Source slots of the frame, x in metres (5,).
SOURCE_SLOTS_M: np.ndarray = source_columns(N_SHOTS, N_RECEIVERS) * CELL_M
#: Largest distance (m) between a shot and the slot it is mapped to.
SLOT_TOLERANCE_M = 40.0
#: Most shots one upload may hold.
MAX_SHOTS = 10
#: Accepted receiver spacing (m), the median spacing within a shot.
MIN_SPACING_M, MAX_SPACING_M = 5.0, 25.0
#: Grid receivers each mapped shot must cover: half the aperture.
MIN_COVERED_RECEIVERS = N_RECEIVERS // 2
_ON_GRID_M = 0.01
_MAX_GAP_SPACINGS = 1.5
_LINE_END_M = float(FRAME_X_M[-1])
_ACCEPTED = (
    f"accepted: 1-{MAX_SHOTS} shots within {SLOT_TOLERANCE_M:g} m of a source slot "
    f"(x = {', '.join(f'{x:g}' for x in SOURCE_SLOTS_M)} m), receivers {MIN_SPACING_M:g}-"
    f"{MAX_SPACING_M:g} m apart covering at least {MIN_COVERED_RECEIVERS} of the "
    f"{N_RECEIVERS} grid points (0-{_LINE_END_M:g} m every {CELL_M:g} m)"
)


class GeometryError(ValueError):
    """An acquisition that cannot be mapped onto the frame; the message says what was
    found and what is accepted."""


@dataclass
class FrameGather:
    """Traces placed in the model's frame.

    Attributes:
        traces: float32 (5, 70, n_samples) — source slot × grid receiver × the file's
            own samples; empty slots and gaps are zero.
        shot_mask: bool (5,) — slots that hold a shot.
        receiver_mask: bool (5, 70) — grid receivers that hold data, per slot.
    """

    traces: np.ndarray
    shot_mask: np.ndarray
    receiver_mask: np.ndarray


@dataclass(frozen=True)
class _LineGeometry:
    """Where each shot and trace lies on the line, x in metres from its origin."""

    shot_of_trace: np.ndarray  # (n_traces,) int
    source_x: np.ndarray  # (n_shots,)
    receiver_x: np.ndarray  # (n_traces,)


def map_to_frame(
    name: str, traces: np.ndarray, headers: dict[str, np.ndarray], notes: list[str]
) -> FrameGather:
    """Place traces (n_traces, n_samples) in the frame from their headers.

    Args:
        name: the upload's name, for messages.
        traces: the file's traces (n_traces, n_samples).
        headers: header words, each an int array (n_traces,): ``field_record``,
            ``source_x``, ``source_y``, ``group_x``, ``offset``, ``scalar``.
        notes: appended with a plain line per mapping step.

    Raises:
        GeometryError: saying what was found and what is accepted.
    """
    n = traces.shape[0]
    shot_of_trace, how = _assign_shots(headers)
    geometry_notes: list[str] = [how]
    geometry = _line_geometry(headers, shot_of_trace, geometry_notes)
    if geometry is None:
        if n == N_SHOTS * N_RECEIVERS:
            return _stored_frame(traces, headers, notes)
        raise GeometryError(
            f"'{name}' has {n} traces in {shot_of_trace.max() + 1} shot(s) whose receivers "
            "cannot be placed: neither GroupX nor offset differs between the traces of a "
            f"shot; {_ACCEPTED}, positioned by SourceX/GroupX or offset headers"
        )
    notes.extend(geometry_notes)
    return _fill_slots(name, traces, geometry, notes)


# --------------------------------------------------------------------------- shots


def scaled(values: np.ndarray, scalar: np.ndarray) -> np.ndarray:
    """Apply SEG-Y's coordinate scalar: > 0 multiplies, < 0 divides, 0 means 1."""
    factor = np.where(scalar > 0, scalar, 1.0) / np.where(scalar < 0, -scalar, 1.0)
    return values.astype(np.float64) * factor


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group labels: (distinct keys, index of each trace's group (n_traces,))."""
    if keys.ndim == 1:
        distinct, inverse = np.unique(keys, return_inverse=True)
    else:
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _assign_shots(headers: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """Each trace's shot index (n_traces,) and a note on how shots were found."""
    scalar = headers["scalar"]
    source = np.stack(
        [scaled(headers["source_x"], scalar), scaled(headers["source_y"], scalar)], axis=1
    )
    for label, keys in (("FieldRecord", headers["field_record"]), ("source position", source)):
        distinct, inverse = _group(keys)
        if len(distinct) > 1 and np.bincount(inverse).min() >= 2:
            return inverse, f"traces grouped into shots by {label}"
    n = headers["field_record"].size
    return np.zeros(n, dtype=np.int64), "one shot (FieldRecord and source position do not vary)"


def _distinct_within_shots(values: np.ndarray, shot_of_trace: np.ndarray) -> bool:
    """True when no two traces of one shot share a value."""
    order = np.lexsort((values, shot_of_trace))
    same_shot = shot_of_trace[order][1:] == shot_of_trace[order][:-1]
    return not np.any(same_shot & (values[order][1:] == values[order][:-1]))


def _shot_mean(values: np.ndarray, shot_of_trace: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (n_traces,) per shot (n_shots,)."""
    return np.bincount(shot_of_trace, weights=values) / np.bincount(shot_of_trace)


def _line_geometry(
    headers: dict[str, np.ndarray], shot_of_trace: np.ndarray, notes: list[str]
) -> _LineGeometry | None:
    """Source and receiver x from the headers, relative to the line's origin; None
    when neither GroupX nor offset places the receivers of every shot."""
    scalar = headers["scalar"]
    source_x = scaled(headers["source_x"], scalar)
    group_x = scaled(headers["group_x"], scalar)
    offset = headers["offset"].astype(np.float64)
    has_offsets = _distinct_within_shots(offset, shot_of_trace)
    if _distinct_within_shots(group_x, shot_of_trace):
        notes.append("receivers ordered by GroupX")
        from_offsets = group_x - offset
        if not np.any(source_x) and has_offsets and np.any(np.abs(from_offsets) > 1.0):
            source_x = from_offsets
            notes.append("SourceX absent: source x taken as GroupX - offset")
        return _relative(shot_of_trace, _shot_mean(source_x, shot_of_trace), group_x, notes)
    if not has_offsets:
        return None
    notes.append("receivers ordered by offset")
    shot_x = _shot_mean(source_x, shot_of_trace)
    if shot_x.size > 1 and np.unique(shot_x).size == shot_x.size:
        return _relative(shot_of_trace, shot_x, shot_x[shot_of_trace] + offset, notes)
    lowest = np.full(shot_x.size, np.inf)
    np.minimum.at(lowest, shot_of_trace, offset)
    shot_x = np.maximum(0.0, -lowest)
    notes.append(
        "no receiver coordinates: positions from offsets, each shot at x = 0 "
        "(a split spread's most negative offset at x = 0)"
    )
    return _LineGeometry(shot_of_trace, shot_x, shot_x[shot_of_trace] + offset)


def _relative(
    shot_of_trace: np.ndarray, source_x: np.ndarray, receiver_x: np.ndarray, notes: list[str]
) -> _LineGeometry:
    """Shift coordinates so that the smallest source or receiver x is 0."""
    origin = float(min(source_x.min(), receiver_x.min()))
    if origin != 0.0:
        notes.append(f"line origin x = {origin:g} m (the smallest source or receiver x)")
    return _LineGeometry(shot_of_trace, source_x - origin, receiver_x - origin)


def _stored_frame(
    traces: np.ndarray, headers: dict[str, np.ndarray], notes: list[str]
) -> FrameGather:
    """350 traces without positions: the frame itself, 70 per shot in file order."""
    notes.append(
        "headers do not tell shots apart; traces taken as stored shot by shot, "
        f"{N_RECEIVERS} per shot"
    )
    shot_of_trace = np.repeat(np.arange(N_SHOTS), N_RECEIVERS)
    key = np.arange(traces.shape[0], dtype=np.float64)
    for label, words in (("GroupX", headers["group_x"]), ("offset", headers["offset"])):
        if _distinct_within_shots(words.astype(np.float64), shot_of_trace):
            notes.append(f"receivers ordered by {label}")
            key = words.astype(np.float64)
            break
    else:
        notes.append("receivers kept in file order (GroupX and offset do not tell them apart)")
    order = np.lexsort((np.arange(key.size), key, shot_of_trace))
    frame = traces[order].reshape(N_SHOTS, N_RECEIVERS, traces.shape[1])
    full = np.ones((N_SHOTS, N_RECEIVERS), dtype=bool)
    return FrameGather(frame, full[:, 0].copy(), full)


# --------------------------------------------------------------------------- slots


def _fill_slots(
    name: str, traces: np.ndarray, geometry: _LineGeometry, notes: list[str]
) -> FrameGather:
    """Put each kept shot on its slot, its receivers resampled onto the grid."""
    slot_of_shot = _slots(name, geometry.source_x, notes)
    frame = np.zeros((N_SHOTS, N_RECEIVERS, traces.shape[1]), dtype=np.float32)
    receiver_mask = np.zeros((N_SHOTS, N_RECEIVERS), dtype=bool)
    spacings = []
    for shot, slot in enumerate(slot_of_shot):
        if slot < 0:
            continue
        mine = np.flatnonzero(geometry.shot_of_trace == shot)
        x = geometry.receiver_x[mine]
        spacing = _spacing(name, geometry.source_x[shot], x)
        receiver_mask[slot] = _onto_grid(x, traces, mine, spacing, out=frame[slot])
        _check_coverage(name, geometry.source_x[shot], x, int(receiver_mask[slot].sum()))
        spacings.append((int(mine.size), spacing, bool(np.all(_on_grid(x)))))
    shot_mask = receiver_mask.any(axis=1)
    _note_receivers(spacings, receiver_mask[shot_mask], notes)
    return FrameGather(frame, shot_mask, receiver_mask)


def _slots(name: str, source_x: np.ndarray, notes: list[str]) -> np.ndarray:
    """The slot of each shot (n_shots,), -1 for a dropped shot."""
    n_shots = source_x.size
    shown = _list_m(source_x)
    if n_shots > MAX_SHOTS:
        raise GeometryError(f"'{name}' holds {n_shots} shots (at x = {shown} m); {_ACCEPTED}")
    outside = (source_x < -SLOT_TOLERANCE_M) | (source_x > _LINE_END_M + SLOT_TOLERANCE_M)
    if outside.any():
        raise GeometryError(
            f"'{name}' has shots at x = {_list_m(source_x[outside])} m, outside the model's "
            f"0-{_LINE_END_M:g} m line (shots at x = {shown} m, relative to the line origin); "
            f"{_ACCEPTED}"
        )
    distance = np.abs(source_x[:, None] - SOURCE_SLOTS_M[None, :])
    slot = distance.argmin(axis=1)
    gap = distance[np.arange(n_shots), slot]
    slot[gap > SLOT_TOLERANCE_M] = -1
    for s in np.flatnonzero(gap > SLOT_TOLERANCE_M):
        notes.append(
            f"shot at x = {source_x[s]:g} m is {gap[s]:.0f} m from the nearest source slot; "
            f"dropped (accepted within {SLOT_TOLERANCE_M:g} m)"
        )
    _keep_nearest(source_x, slot, gap, notes)
    if np.all(slot < 0):
        raise GeometryError(
            f"'{name}' has no shot within {SLOT_TOLERANCE_M:g} m of a source slot (shots at "
            f"x = {shown} m); {_ACCEPTED}"
        )
    _note_slots(source_x, slot, gap, notes)
    return slot


def _keep_nearest(
    source_x: np.ndarray, slot: np.ndarray, gap: np.ndarray, notes: list[str]
) -> None:
    """Of several shots on one slot keep the nearest; the others get slot -1."""
    for k in np.unique(slot[slot >= 0]):
        on_slot = np.flatnonzero(slot == k)
        if on_slot.size < 2:
            continue
        keep = on_slot[np.argmin(gap[on_slot])]
        dropped = [s for s in on_slot if s != keep]
        slot[dropped] = -1
        notes.append(
            f"{on_slot.size} shots on source slot {k + 1} (x = {SOURCE_SLOTS_M[k]:g} m): kept "
            f"the nearest at x = {source_x[keep]:g} m, dropped x = {_list_m(source_x[dropped])} m"
        )


def _note_slots(source_x: np.ndarray, slot: np.ndarray, gap: np.ndarray, notes: list[str]) -> None:
    """Say where the shots went, when the frame is not simply full."""
    kept = np.flatnonzero(slot >= 0)
    for s in kept:
        if gap[s] > CELL_M / 2:
            notes.append(
                f"shot at x = {source_x[s]:g} m placed on source slot {slot[s] + 1} "
                f"(x = {SOURCE_SLOTS_M[slot[s]]:g} m), {gap[s]:.0f} m away"
            )
    if kept.size == N_SHOTS:
        return
    used = sorted(int(slot[s]) for s in kept)
    empty = [k + 1 for k in range(N_SHOTS) if k not in used]
    noun = "shot" if kept.size == 1 else "shots"
    where = ", ".join(f"{SOURCE_SLOTS_M[k]:g}" for k in used)
    notes.append(
        f"{kept.size} {noun} mapped to source slot{'s' if kept.size > 1 else ''} "
        f"{_list_slots([k + 1 for k in used])} of {N_SHOTS} (x = {where} m); "
        f"slot{'s' if len(empty) > 1 else ''} {_list_slots(empty)} empty, zero-filled"
    )


# --------------------------------------------------------------------------- receivers


def _spacing(name: str, shot_x: float, x: np.ndarray) -> float:
    """The median receiver spacing of one shot (m), refused outside 5-25 m."""
    diffs = np.diff(np.sort(x))
    spacing = float(np.median(diffs)) if diffs.size else 0.0
    if not MIN_SPACING_M - _ON_GRID_M <= spacing <= MAX_SPACING_M + _ON_GRID_M:
        raise GeometryError(
            f"'{name}': the shot at x = {shot_x:g} m has {x.size} receivers "
            f"{spacing:g} m apart (median); {_ACCEPTED}"
        )
    return spacing


def _on_grid(x: np.ndarray) -> np.ndarray:
    """True where x (m) lies within 1 cm of a 10 m grid point."""
    return np.abs(x - np.round(x / CELL_M) * CELL_M) <= _ON_GRID_M


def _onto_grid(
    x: np.ndarray, traces: np.ndarray, rows: np.ndarray, spacing: float, out: np.ndarray
) -> np.ndarray:
    """Linear interpolation in x of the traces ``traces[rows]`` (m, n_samples) at
    receivers x (m,) onto the 70-point grid, written into ``out`` (70, n_samples; zero
    on entry); returns which grid points are covered (70,) bool. Points on a receiver
    take its trace exactly; points in a gap or beyond the ends stay zero."""
    order = np.argsort(x, kind="stable")
    x, rows = x[order], rows[order]
    hi = np.searchsorted(x, FRAME_X_M)
    inside = (hi > 0) & (hi < x.size)
    hi_c, lo_c = np.clip(hi, 0, x.size - 1), np.clip(hi - 1, 0, x.size - 1)
    width = x[hi_c] - x[lo_c]
    between = inside & (width <= _MAX_GAP_SPACINGS * spacing)
    on_hi = np.abs(x[hi_c] - FRAME_X_M) <= _ON_GRID_M
    on_lo = np.abs(x[lo_c] - FRAME_X_M) <= _ON_GRID_M
    on = on_hi | on_lo
    out[on] = traces[rows[np.where(on_hi, hi_c, lo_c)[on]]]
    b = np.flatnonzero(between & ~on)  # interpolated only where no receiver sits
    if b.size:
        w = ((FRAME_X_M[b] - x[lo_c[b]]) / width[b])[:, None]
        out[b] = (1 - w) * traces[rows[lo_c[b]]] + w * traces[rows[hi_c[b]]]
    return between | on


def _check_coverage(name: str, shot_x: float, x: np.ndarray, covered: int) -> None:
    """Refuse a shot covering fewer than half the grid points."""
    if covered >= MIN_COVERED_RECEIVERS:
        return
    raise GeometryError(
        f"'{name}': the shot at x = {shot_x:g} m has {x.size} receivers at x = "
        f"{x.min():g}-{x.max():g} m covering {covered} of the {N_RECEIVERS} grid points; "
        f"{_ACCEPTED}"
    )


def _note_receivers(
    spacings: list[tuple[int, float, bool]], receiver_mask: np.ndarray, notes: list[str]
) -> None:
    """Say how the receivers were resampled and what the grid is missing."""
    for n_rec, spacing, on_grid in dict.fromkeys(spacings):
        if on_grid and abs(spacing - CELL_M) <= _ON_GRID_M:
            continue
        notes.append(
            f"{n_rec} receivers at {spacing:g} m resampled onto the {CELL_M:g} m grid (linear in x)"
        )
    covered = receiver_mask.sum(axis=1)
    if np.any(covered < N_RECEIVERS):
        notes.append(
            f"{', '.join(str(int(c)) for c in covered)} of {N_RECEIVERS} grid receivers "
            "covered per shot; the rest (gaps, beyond the spread) zero-filled"
        )


def _list_m(values: np.ndarray) -> str:
    """'0, 170, 340' from metres, at most 10 values."""
    shown = ", ".join(f"{v:g}" for v in values[:10])
    return shown + (", ..." if values.size > 10 else "")


def _list_slots(slots: list[int]) -> str:
    """'2-5' for a run of slot numbers, else '1, 3'."""
    if len(slots) > 2 and slots == list(range(slots[0], slots[-1] + 1)):
        return f"{slots[0]}-{slots[-1]}"
    return ", ".join(str(s) for s in slots)
