"""Travel times of local and regional phases for the synthetic event generator.

One table per 1-D Earth model (``iasp91`` or ``ak135``, both shipped with
:mod:`obspy.taup`, so nothing is downloaded), built once per process on a (source depth ×
epicentral distance) grid — 0–200 km deep, 0–1,000 km away — and interpolated bilinearly
(within about 0.05 s of ``TauPyModel.get_travel_times`` off the grid's discontinuities).
Both models have a two-layer crust (5.8/6.5 km/s P over the Conrad at 20 km) over a
mantle of 8.04 km/s below the Moho at 35 km: the simple layered crust the regional
phases need.

Four phase groups, each the earliest arrival over taup's phases of that kind:

* ``first P`` — p, P, Pg, Pn: the first-arriving P, the pick;
* ``first S`` — s, S, Sg, Sn;
* ``crustal P`` — p, Pg: the direct P inside the crust (Pg), for sources above the Moho
  only (NaN below);
* ``crustal S`` — s, Sg.

For a source in the crust, where the first P arrives before the crustal P, it is a
refracted wave (P* along the Conrad, Pn along and below the Moho): taup's P and Pn. Deep
sources (below the Moho) have only the direct body waves (first P, first S). Each entry
also gives the ray's take-off angle at the source and its horizontal slowness, hence the
incidence at the station. Lg — the crust-guided S wave train — has no ray: the renderer
places it between the group velocities ``LG_GROUP_KM_S``.

Limits: laterally homogeneous Earth, no topography or station elevation, no PmP/SmS
reflections as separate pulses (their energy is in the coda), no surface waves (Rg).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

CACHE_ENV = "SEISLENS_CACHE_DIR"
"""Where built tables are kept (default ``~/.cache/seislens``); delete to rebuild."""

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0

EarthModel = Literal["iasp91", "ak135"]

LG_GROUP_KM_S: tuple[float, float] = (3.6, 3.0)
"""Group velocities (km/s) between which the Lg wave train arrives (its front, its end)."""

_DEPTHS_KM = np.array(
    [
        *(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 19.9, 20.1),
        *(22.5, 25.0, 27.5, 30.0, 32.5, 34.9, 35.1, 37.5, 40.0, 45.0, 50.0, 60.0, 70.0),
        *(80.0, 90.0, 100.0, 110.0, 120.0, 135.0, 150.0, 165.0, 180.0, 200.0),
    ]
)
_DISTANCES_KM = np.concatenate([[0.5], np.arange(2.0, 100.0, 2.0), np.arange(100.0, 1001.0, 4.0)])
PROFILE_KM = np.arange(0.0, 200.5, 0.5)
"""Depths (km) of the tabulated source medium."""
TABLE_LIMITS = {
    "distance_km": (0.0, float(_DISTANCES_KM[-1])),
    "depth_km": (float(_DEPTHS_KM[0]), float(_DEPTHS_KM[-1])),
}
"""What the tables cover; distances below the first grid node (0.5 km) use its values."""

GROUPS: dict[str, tuple[str, ...]] = {
    "first_p": ("p", "P", "Pn", "Pg"),
    "first_s": ("s", "S", "Sn", "Sg"),
    "crustal_p": ("p", "Pg"),
    "crustal_s": ("s", "Sg"),
}
"""Phase groups and the taup phases each is the earliest of."""


@dataclass(frozen=True)
class PhaseTimes:
    """First arrivals for one source–station pair (s, degrees from down, s/km)."""

    p_time_s: float
    s_time_s: float
    p_takeoff_deg: float
    s_takeoff_deg: float
    p_slowness_s_per_km: float
    s_slowness_s_per_km: float


@dataclass(frozen=True)
class Arrivals:
    """The phases of one source–station pair.

    ``first`` holds the first P and S (the picks); ``crustal`` the direct crustal P and
    S (Pg, Sg), None for a source below the Moho; ``moho_km`` the model's Moho depth.
    """

    first: PhaseTimes
    crustal: PhaseTimes | None
    moho_km: float

    @property
    def refracted_p(self) -> bool:
        """True where the first P is a refracted wave (P*, Pn) ahead of Pg."""
        return self.crustal is not None and self.first.p_time_s < self.crustal.p_time_s - 0.1

    @property
    def refracted_s(self) -> bool:
        """True where the first S is a refracted wave (S*, Sn) ahead of Sg."""
        return self.crustal is not None and self.first.s_time_s < self.crustal.s_time_s - 0.1


@dataclass(frozen=True)
class TravelTimeTable:
    """Phase groups on a (depth, distance) grid.

    ``values`` is (len(GROUPS) // 2, 6, H, D): per P/S group pair (first, crustal), the
    P time (s), S time (s), P and S take-off (deg from down), P and S horizontal slowness
    (s/km) at ``depths_km`` (H,) × ``distances_km`` (D,); NaN where a group does not exist.
    """

    depths_km: np.ndarray
    distances_km: np.ndarray
    values: np.ndarray
    moho_km: float
    model: str
    medium: np.ndarray  # (3, K) α (m/s), β (m/s), ρ (kg/m³) just below PROFILE_KM

    def source_medium(self, depth_km: float) -> tuple[float, float, float]:
        """(α, β, ρ) just below ``depth_km`` (m/s, m/s, kg/m³), from a 0.5 km profile."""
        k = int(
            np.clip(np.searchsorted(PROFILE_KM, depth_km, side="right") - 1, 0, PROFILE_KM.size - 1)
        )
        a, b, r = self.medium[:, k]
        return float(a), float(b), float(r)

    def __call__(self, distance_km: float, depth_km: float) -> PhaseTimes:
        """First P and S at one epicentral distance (km) and depth (km)."""
        return self._group(0, distance_km, depth_km)

    def arrivals(self, distance_km: float, depth_km: float) -> Arrivals:
        """Every phase group at one epicentral distance (km) and source depth (km)."""
        crustal = self._group(1, distance_km, depth_km)
        ok = depth_km < self.moho_km and math.isfinite(crustal.p_time_s)
        ok = ok and math.isfinite(crustal.s_time_s)
        return Arrivals(
            self._group(0, distance_km, depth_km), crustal if ok else None, self.moho_km
        )

    def _group(self, g: int, distance_km: float, depth_km: float) -> PhaseTimes:
        i, wi = _bracket(self.depths_km, depth_km, "depth_km")
        j, wj = _bracket(self.distances_km, max(distance_km, self.distances_km[0]), "distance_km")
        v = self.values[g]
        out = (1 - wi) * ((1 - wj) * v[:, i, j] + wj * v[:, i, j + 1]) + wi * (
            (1 - wj) * v[:, i + 1, j] + wj * v[:, i + 1, j + 1]
        )
        return PhaseTimes(*(float(x) for x in out))


def _bracket(grid: np.ndarray, x: float, name: str) -> tuple[int, float]:
    """Left index and weight of ``x`` on an increasing ``grid``."""
    if not grid[0] <= x <= grid[-1]:
        raise ValueError(f"{name} {x} outside the travel-time table [{grid[0]}, {grid[-1]}]")
    i = int(min(np.searchsorted(grid, x, side="right") - 1, len(grid) - 2))
    return i, float((x - grid[i]) / (grid[i + 1] - grid[i]))


def _phase_curve(phase: Any, radians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earliest time (s) and its ray parameter (s/rad) of one taup phase at ``radians``.

    Works on the phase's sampled travel-time curve (taup's own ray sampling), taking the
    minimum over every curve segment that brackets the distance (triplications
    included); inf where the phase does not reach.
    """
    d, t, p = phase.dist, phase.time, phase.ray_param
    d0, d1 = d[:-1, None], d[1:, None]
    span = d1 - d0
    inside = (radians >= np.minimum(d0, d1)) & (radians <= np.maximum(d0, d1)) & (span != 0)
    w = (radians - d0) / np.where(span == 0, 1.0, span)
    times = np.where(inside, t[:-1, None] + w * (t[1:] - t[:-1])[:, None], np.inf)
    seg = np.argmin(times, axis=0)
    cols = np.arange(radians.size)
    rays = p[:-1][seg] + w[seg, cols] * (p[1:] - p[:-1])[seg]
    return times[seg, cols], rays


def _takeoff(phase: Any, ray: np.ndarray, depth: float, model: Any) -> np.ndarray:
    """Take-off angles (deg from the downward vertical) of ``phase``'s rays."""
    down = bool(phase.down_going[0])
    v_mod = model.s_mod.v_mod
    speed = (v_mod.evaluate_below if down else v_mod.evaluate_above)(depth, phase.name[0].upper())
    angle = np.degrees(
        np.arcsin(np.clip(speed.item() * ray / (model.radius_of_planet - depth), -1, 1))
    )
    return angle if down else 180.0 - angle


def _phase(cls: Any, name: str, model: Any) -> Any | None:
    """A taup phase, or None where it does not exist (e.g. up-going 'p' from 0 km)."""
    try:
        phase = cls(name, model)
    except Exception:  # taup raises assorted errors for impossible phases
        return None
    return phase if len(phase.dist) >= 2 else None


def _group_values(curves: list[np.ndarray]) -> np.ndarray:
    """(3, D) time, take-off and slowness of the earliest of some phases' (3, D) curves."""
    if not curves:
        return np.full((3, _DISTANCES_KM.size), np.nan)
    stack = np.stack(curves)
    best = np.argmin(stack[:, 0], axis=0)
    out = stack[best, :, np.arange(_DISTANCES_KM.size)].T
    out[:, ~np.isfinite(out[0])] = np.nan
    return out


def _curves(phases: dict[str, Any], model: Any, depth: float) -> dict[str, np.ndarray]:
    """(3, D) time (s), take-off (deg) and slowness (s/km) of each existing phase."""
    radians = np.radians(_DISTANCES_KM / KM_PER_DEG)
    out = {}
    for name, phase in phases.items():
        if phase is None:
            continue
        time, ray = _phase_curve(phase, radians)
        out[name] = np.stack([time, _takeoff(phase, ray, depth, model), ray / EARTH_RADIUS_KM])
    return out


def _extend_guided(rows: np.ndarray) -> np.ndarray:
    """Continue a crustal group past the last distance taup's direct ray reaches.

    In a crust of constant-velocity layers the direct ray stops short (Earth curvature);
    the crust-guided Pg/Sg goes on. Beyond the last valid node its time grows at that
    node's slowness, keeping its take-off angle. (3, D) in, (3, D) out.
    """
    valid = np.flatnonzero(np.isfinite(rows[0]))
    if valid.size == 0 or valid[-1] == rows.shape[1] - 1:
        return rows
    last = valid[-1]
    out = rows.copy()
    beyond = np.arange(last + 1, rows.shape[1])
    out[0, beyond] = rows[0, last] + (_DISTANCES_KM[beyond] - _DISTANCES_KM[last]) * rows[2, last]
    out[1:, beyond] = rows[1:, last : last + 1]
    return out


@lru_cache(maxsize=2)
def travel_time_table(model_name: EarthModel = "iasp91") -> TravelTimeTable:
    """The phase-group table of one taup model: read from the cache folder, else built
    (about 5 s) and cached there (written aside, then renamed); once per process."""
    path = _cache_path(model_name)
    try:
        with np.load(path) as stored:
            return TravelTimeTable(
                _DEPTHS_KM.copy(),
                _DISTANCES_KM.copy(),
                stored["values"],
                float(stored["moho_km"]),
                model_name,
                stored["medium"],
            )
    except (OSError, KeyError, ValueError):
        pass
    table = _build_table(model_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, values=table.values, moho_km=table.moho_km, medium=table.medium)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the table is simply rebuilt next time
    return table


def _cache_path(model_name: str) -> Path:
    """Cache file of one model's table, named by everything that shapes it."""
    import obspy

    key = repr((_DEPTHS_KM.tolist(), _DISTANCES_KM.tolist(), GROUPS, obspy.__version__, 2))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "seislens")
    return root / f"traveltimes-{model_name}-{digest}.npz"


def _build_table(model_name: str) -> TravelTimeTable:
    """Build the table of ``model_name`` with taup (see :func:`travel_time_table`)."""
    from obspy.taup import TauPyModel
    from obspy.taup.seismic_phase import SeismicPhase

    model = TauPyModel(model_name).model
    moho = float(model.s_mod.v_mod.moho_depth)
    names = list(GROUPS)
    values = np.full((len(names) // 2, 6, len(_DEPTHS_KM), len(_DISTANCES_KM)), np.nan)
    for h, depth in enumerate(_DEPTHS_KM):
        corrected = model.depth_correct(float(depth))
        phases = {n: _phase(SeismicPhase, n, corrected) for n in GROUPS["first_p"]}
        phases.update({n: _phase(SeismicPhase, n, corrected) for n in GROUPS["first_s"]})
        curves = _curves(phases, model, float(depth))
        for k, name in enumerate(names):
            g, wave = divmod(k, 2)
            rows = _group_values([curves[n] for n in GROUPS[name] if n in curves])
            if g == 1 and depth < moho:
                rows = _extend_guided(rows)
            values[g, wave::2, h] = rows
    if not np.isfinite(values[0]).all():
        raise RuntimeError(f"{model_name} first-arrival table has gaps; the grid needs adjusting")
    v_mod = model.s_mod.v_mod
    medium = np.array(
        [
            [float(v_mod.evaluate_below(float(d), key).item()) * 1e3 for d in PROFILE_KM]
            for key in "PSD"
        ]
    )
    return TravelTimeTable(
        _DEPTHS_KM.copy(), _DISTANCES_KM.copy(), values, moho, model_name, medium
    )


def source_velocities(depth_km: float, model_name: EarthModel = "iasp91") -> tuple[float, ...]:
    """(α, β, ρ) at the source: P and S velocity (m/s) and density (kg/m³) of the model
    just below ``depth_km`` (from the cached table: no taup import)."""
    return travel_time_table(model_name).source_medium(depth_km)
