"""Physical descriptors of 2-D velocity models (NumPy only; used by training and serving).

Every descriptor is computed from the model itself, never hand-entered. Models are
arrays of shape (N, 70, 70) — (samples, depth z, distance x) — in m/s on a grid with
spacing ``dx = dz = 10 m`` (OpenFWI's convention). A (N, 1, 70, 70) array is accepted too.

The descriptor vector, in the order of :data:`DESCRIPTOR_NAMES`:

========================  =====  ==============================================================
name                      unit   formula
========================  =====  ==============================================================
mean_velocity             m/s    mean of v over the grid
vertical_gradient         1/s    least-squares slope of the row-mean profile v̄(z) against depth
horizontal_gradient       1/s    mean |∂v/∂x| over the grid (forward differences / dx)
min_velocity              m/s    min of v
max_velocity              m/s    max of v
std_velocity              m/s    standard deviation of v over the grid
n_interfaces              count  median over columns of the number of depth steps |Δv| > 50 m/s
first_interface_depth     m      median over columns of the depth of the first such step
                                 (the top of the cell below it); the model depth if none
fault_throw               m      largest vertical offset of a layer interface across
                                 columns (see :func:`fault_throw`); 0 without a fault
========================  =====  ==============================================================
"""

from __future__ import annotations

import numpy as np

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "mean_velocity",
    "vertical_gradient",
    "horizontal_gradient",
    "min_velocity",
    "max_velocity",
    "std_velocity",
    "n_interfaces",
    "first_interface_depth",
    "fault_throw",
)
DESCRIPTOR_UNITS: dict[str, str] = {
    "mean_velocity": "m/s",
    "vertical_gradient": "1/s",
    "horizontal_gradient": "1/s",
    "min_velocity": "m/s",
    "max_velocity": "m/s",
    "std_velocity": "m/s",
    "n_interfaces": "count",
    "first_interface_depth": "m",
    "fault_throw": "m",
}
#: A physical floor per descriptor for relative errors, so that a descriptor whose true
#: value is 0 (no fault, no lateral change) does not divide by zero: the relative error
#: of a prediction p against truth t is |p - t| / max(|t|, floor).
DESCRIPTOR_FLOORS: dict[str, float] = {
    "mean_velocity": 100.0,
    "vertical_gradient": 0.5,
    "horizontal_gradient": 0.5,
    "min_velocity": 100.0,
    "max_velocity": 100.0,
    "std_velocity": 50.0,
    "n_interfaces": 1.0,
    "first_interface_depth": 50.0,
    "fault_throw": 50.0,
}

INTERFACE_THRESHOLD = 50.0  # m/s: a depth step larger than this is a layer interface
_MIN_RUN = 3  # columns: the shortest piece of an interface that counts
_MIN_THROW_CELLS = 2  # offsets of one cell are the staircase of a curved interface


def _as_batch(models: np.ndarray) -> np.ndarray:
    """Return models as a float64 (N, nz, nx) array, checking shape and values."""
    v = np.asarray(models)
    if v.ndim == 4 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise ValueError(f"models must have shape (N, nz, nx) or (N, 1, nz, nx); got {v.shape}")
    if v.shape[1] < 2 or v.shape[2] < 2:
        raise ValueError(f"models need at least 2x2 cells; got {v.shape[1:]}")
    if not np.isfinite(v).all():
        raise ValueError("models contain NaN or Inf values")
    return v.astype(np.float64, copy=False)


def interface_mask(models: np.ndarray, threshold: float = INTERFACE_THRESHOLD) -> np.ndarray:
    """Boolean (N, nz-1, nx) mask of depth steps ``|v[z+1] - v[z]| > threshold`` (m/s)."""
    v = _as_batch(models)
    return np.abs(np.diff(v, axis=1)) > threshold


def count_interfaces(models: np.ndarray) -> np.ndarray:
    """Number of layer interfaces, (N,) float: median over columns of the step count."""
    steps = interface_mask(models).sum(axis=1)  # (N, nx)
    return np.median(steps, axis=1)


def first_interface_depth(models: np.ndarray, dz: float = 10.0) -> np.ndarray:
    """Depth (m) of the first interface, (N,): median over columns; model depth if none."""
    mask = interface_mask(models)
    nz = mask.shape[1] + 1
    has = mask.any(axis=1)
    first = np.where(has, mask.argmax(axis=1) + 1, nz)  # index of the cell below the step
    return np.median(first, axis=1) * dz


def _largest_move(x: np.ndarray, z: np.ndarray) -> int:
    """Largest vertical move (cells) of one interface followed along x (points sorted by x).

    Consecutive depth changes of one sign form a move; a lone one-cell change is the
    staircase of a gently curved interface and does not count.
    """
    best, run, length = 0, 0, 0
    for step in np.diff(z.astype(np.int64)).tolist():  # Python ints: a fast loop
        if step != 0 and (run == 0 or (step > 0) == (run > 0)):
            run += step
            length += 1
        else:
            if length >= 2 or abs(run) >= 2:
                best = max(best, abs(run))
            run, length = step, int(step != 0)
    if length >= 2 or abs(run) >= 2:
        best = max(best, abs(run))
    return best


def _throw_cells(v: np.ndarray, threshold: float) -> int:
    """Fault throw (cells) of one (nz, nx) model; see :func:`fault_throw`."""
    steps = np.abs(np.diff(v, axis=0)) > threshold
    z, x = np.nonzero(steps)
    if z.size == 0:
        return 0
    above = np.round(v[z, x]).astype(np.int64)
    below = np.round(v[z + 1, x]).astype(np.int64)
    key = above * 100_000 + below
    order = np.lexsort((x, key))
    key, x, z = key[order], x[order], z[order]
    bounds = np.flatnonzero(np.diff(key)) + 1
    moves = [
        _largest_move(xs, zs)
        for xs, zs in zip(np.split(x, bounds), np.split(z, bounds), strict=True)
        if xs.size >= _MIN_RUN
    ]
    best = max(moves, default=0)
    return best if best >= _MIN_THROW_CELLS else 0


def fault_throw(models: np.ndarray, dz: float = 10.0) -> np.ndarray:
    """Fault throw (m), (N,): the largest vertical offset of one interface.

    An interface is identified by the velocities above and below it (rounded to 1 m/s)
    and followed column by column. A gently curved interface (slope ≤ 0.5, as in the
    generated families) climbs in lone one-cell steps; a fault moves it either by a
    jump of two or more cells (a steep fault) or along a ramp of one-cell steps in
    consecutive columns (a dipping fault, where the fault plane joins the two pieces).
    The throw is the largest such move, in cells, times ``dz``; 0 when there is none.
    """
    v = _as_batch(models)
    cells = [_throw_cells(m, INTERFACE_THRESHOLD) for m in v]
    return np.asarray(cells, dtype=np.float64) * dz


def compute_descriptors(models: np.ndarray, dx: float = 10.0) -> np.ndarray:
    """Descriptor vectors of velocity models.

    Args:
        models: (N, nz, nx) or (N, 1, nz, nx) velocities in m/s, grid spacing ``dx``.
        dx: grid spacing in metres (the same in depth and distance).

    Returns:
        (N, 9) float32 in the order and units of :data:`DESCRIPTOR_NAMES`.
    """
    v = _as_batch(models)
    nz = v.shape[1]
    depth = np.arange(nz) * dx
    profile = v.mean(axis=2)  # (N, nz)
    dc = depth - depth.mean()
    vgrad = (profile - profile.mean(axis=1, keepdims=True)) @ dc / (dc @ dc)
    hgrad = np.abs(np.diff(v, axis=2)).mean(axis=(1, 2)) / dx
    out = np.stack(
        [
            v.mean(axis=(1, 2)),
            vgrad,
            hgrad,
            v.min(axis=(1, 2)),
            v.max(axis=(1, 2)),
            v.std(axis=(1, 2)),
            count_interfaces(v),
            first_interface_depth(v, dz=dx),
            fault_throw(v, dz=dx),
        ],
        axis=1,
    )
    return out.astype(np.float32)


def descriptors_as_dict(vector: np.ndarray) -> dict[str, float]:
    """Map one (9,) descriptor vector to ``{name: value}``."""
    vec = np.asarray(vector, dtype=np.float64).reshape(-1)
    if vec.shape[0] != len(DESCRIPTOR_NAMES):
        raise ValueError(f"expected {len(DESCRIPTOR_NAMES)} descriptors; got {vec.shape[0]}")
    return {name: float(x) for name, x in zip(DESCRIPTOR_NAMES, vec, strict=True)}


def relative_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample relative errors (N, 9): |pred - true| / max(|true|, floor)."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    floors = np.array([DESCRIPTOR_FLOORS[k] for k in DESCRIPTOR_NAMES])
    return np.abs(p - t) / np.maximum(np.abs(t), floors)
