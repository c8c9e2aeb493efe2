"""One answer per event: the detections of several stations of one recording grouped into
events, their types combined, and — with station coordinates — the event located.

**Travel times** (:class:`PTravelTimes`): first-arriving P (phases p, P, Pn) in iasp91
from :mod:`obspy.taup` (offline: ObsPy ships the model), read off taup's own sampled
travel-time curves for 0–2,000 km and tabulated per source depth (rounded to 1 km);
between table points linear interpolation (2 km steps).

**Grouping** (:func:`associate`). Two detections at different stations can be one event
when their onsets (the detection's STA/LTA onset; without one, the end of its first
window, uncertain by ``coarse_onset_s``) are consistent:

* with coordinates of both stations: the P moveout between them cannot exceed the P time
  across their separation from a surface source at one of them,
  ``|t_i − t_j| ≤ T_P(Δ_ij, 0) + u_i + u_j`` (``u``: the onset uncertainty,
  ``pick_tolerance_s`` = 2 s or ``coarse_onset_s``);
* without: the origin times the model's distances imply must agree,
  ``|(t_i − T_P(d_i, z)) − (t_j − T_P(d_j, z))| ≤ u_i + u_j + s_max (σ_i + σ_j)``, with
  ``z`` the detections' mean depth, ``σ`` a distance's uncertainty (its spread, at least
  ``distance_error_km``: the bundle's distance MAE when it has one) and ``s_max`` the
  steepest P slowness of the table.

Onsets can be wrong (a noise blip, the S): the test is also made on the detections'
window times (the end of each first window, uncertain by ``coarse_onset_s`` each), and
either passing is enough.

Detections are taken in time order; one joins the open group whose members it is
consistent with, every one (complete linkage) and which has no detection of its station
yet (the nearest in time when several); otherwise it opens a group of its own.

**One type per event** (:func:`combine_probabilities`): the normalised geometric mean of
the stations' class probabilities (the mean of their log-probabilities, then a
softmax). Unlike a product of experts it does not grow more confident with every
station: the stations see one source through one model, so their errors are not
independent. The event's label is its most probable class other than noise;
``agreement`` is the share of its stations whose own label is that label.

**Location** (:func:`locate`): a grid search for the epicentre, the depth fixed at the
stations' median depth estimate, minimising
``Σ ((t_i − t0 − T_P(Δ_i, z)) / σ_t)² + Σ ((Δ_i − d_i) / σ_i)²`` with the origin time
``t0`` the mean of ``t_i − T_P(Δ_i, z)`` (its least-squares value at each node),
``σ_t`` = ``time_sigma_s``. The grid: ``grid_nodes``² points over a square around the
stations' centroid, as wide as the largest model distance plus two uncertainties
(at most ``max_radius_km``), refined three times around the best node. The misfit
reported is the RMS of the time residuals (s), of the distance residuals (km) and
``sqrt(objective / stations)``. It needs two stations with coordinates and onsets; with
two the answer can be one of two mirror images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from seislens.models.contract import WINDOW_S
from seislens.models.event_scan import NOISE_CLASS, Detection, Estimate

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0
_TABLE_KM = np.arange(0.0, 2000.0 + 1e-9, 2.0)
_P_PHASES = ("p", "P", "Pn")


class AssociationConfig(BaseModel):
    """How detections are grouped into events and located."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pick_tolerance_s: float = Field(2.0, ge=0.0, description="uncertainty of an onset (s)")
    coarse_onset_s: float = Field(
        15.0, ge=0.0, description="uncertainty of a detection's time without an onset (s)"
    )
    distance_error_km: float = Field(
        50.0, gt=0.0, description="least uncertainty of a model distance (km)"
    )
    time_sigma_s: float = Field(1.0, gt=0.0, description="onset weight of the location (s)")
    grid_nodes: int = Field(41, ge=5, le=201, description="grid points per side")
    max_radius_km: float = Field(1000.0, gt=0.0, description="half-width of the search (km)")
    close_after_s: float = Field(
        300.0, gt=0.0, description="a group takes no detection this long after its last (s)"
    )


# --------------------------------------------------------------------------- travel times


class PTravelTimes:
    """First-arrival P times (s) of iasp91 by epicentral distance (km) and depth (km)."""

    def __call__(self, distance_km: np.ndarray | float, depth_km: float) -> np.ndarray:
        """P times at ``distance_km`` (any shape, 0–2,000 km) from a source ``depth_km``
        deep (0–700 km, rounded to 1 km)."""
        table = _p_table(_depth_key(depth_km))
        return np.interp(np.asarray(distance_km, dtype=np.float64), _TABLE_KM, table)

    def max_slowness(self, depth_km: float) -> float:
        """The steepest slope of the P curve (s/km) at a depth."""
        table = _p_table(_depth_key(depth_km))
        return float(np.max(np.diff(table) / np.diff(_TABLE_KM)))


def _depth_key(depth_km: float) -> int:
    """The table's depth (km, 0–700) for a source depth."""
    return round(min(max(float(depth_km), 0.0), 700.0))


@lru_cache(maxsize=64)
def _p_table(depth_km: int) -> np.ndarray:
    """(D,) first P times on ``_TABLE_KM`` for one depth, from taup's sampled curves."""
    from obspy.taup import TauPyModel
    from obspy.taup.seismic_phase import SeismicPhase

    model = _taup_model(TauPyModel).model.depth_correct(float(depth_km))
    radians = np.radians(_TABLE_KM / KM_PER_DEG)
    best = np.full(radians.shape, np.inf)
    for name in _P_PHASES:
        try:
            phase = SeismicPhase(name, model)
        except Exception:  # taup raises assorted errors for impossible phases
            continue
        d, t = np.asarray(phase.dist), np.asarray(phase.time)
        if len(d) < 2:
            continue
        d0, d1 = d[:-1, None], d[1:, None]
        span = d1 - d0
        inside = (radians >= np.minimum(d0, d1)) & (radians <= np.maximum(d0, d1)) & (span != 0)
        w = (radians - d0) / np.where(span == 0, 1.0, span)
        times = np.where(inside, t[:-1, None] + w * (t[1:] - t[:-1])[:, None], np.inf)
        best = np.minimum(best, times.min(axis=0))
    finite = np.isfinite(best)
    if finite.sum() < 2:
        raise RuntimeError(f"no iasp91 P curve for a source at {depth_km} km")
    return np.interp(_TABLE_KM, _TABLE_KM[finite], best[finite])


@lru_cache(maxsize=1)
def _taup_model(cls: Any) -> Any:
    return cls("iasp91")


def epicentral_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distances (km) on a sphere of 6,371 km (broadcasting, degrees in)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class StationPosition:
    """Where a station is: latitude, longitude (degrees), elevation (m)."""

    latitude: float
    longitude: float
    elevation_m: float = 0.0


def _uncertainty(d: Detection, config: AssociationConfig) -> float:
    return config.pick_tolerance_s if d.onset is not None else config.coarse_onset_s


def _sigma_km(d: Detection, config: AssociationConfig) -> float:
    spread = d.estimates["distance"].spread if "distance" in d.estimates else 0.0
    return max(spread, config.distance_error_km)


def _value(d: Detection, name: str, default: float = 0.0) -> float:
    return d.estimates[name].value if name in d.estimates else default


def consistent(
    a: Detection,
    b: Detection,
    positions: dict[str, StationPosition] | None,
    times: PTravelTimes,
    config: AssociationConfig,
) -> bool:
    """Whether detections at two stations can be P arrivals of one event (see the
    module docstring)."""
    pairs = [
        (a.reference_time, b.reference_time, _uncertainty(a, config) + _uncertainty(b, config))
    ]
    if a.onset is not None or b.onset is not None:  # the windows' times, if an onset is off
        pairs.append((a.start + WINDOW_S, b.start + WINDOW_S, 2 * config.coarse_onset_s))
    pa = positions.get(a.station) if positions else None
    pb = positions.get(b.station) if positions else None
    if pa is not None and pb is not None:
        sep = float(epicentral_km(pa.latitude, pa.longitude, pb.latitude, pb.longitude))
        bound = float(times(sep, 0.0))
        return any(abs(ta - tb) <= bound + slack for ta, tb, slack in pairs)
    depth = 0.5 * (_value(a, "depth") + _value(b, "depth"))
    ta_p = float(times(max(_value(a, "distance"), 0.0), depth))
    tb_p = float(times(max(_value(b, "distance"), 0.0), depth))
    room = times.max_slowness(depth) * (_sigma_km(a, config) + _sigma_km(b, config))
    return any(abs((ta - ta_p) - (tb - tb_p)) <= slack + room for ta, tb, slack in pairs)


def associate(
    detections: list[Detection],
    positions: dict[str, StationPosition] | None,
    times: PTravelTimes,
    config: AssociationConfig,
) -> list[list[Detection]]:
    """Detections grouped into events (each group: at most one detection per station),
    in time order."""
    groups: list[list[Detection]] = []
    open_groups: list[list[Detection]] = []
    for d in sorted(detections, key=lambda x: (x.reference_time, x.station)):
        t = d.reference_time
        open_groups = [g for g in open_groups if t - g[-1].reference_time <= config.close_after_s]
        fits = [
            g
            for g in open_groups
            if all(m.station != d.station for m in g)
            and all(consistent(d, m, positions, times, config) for m in g)
        ]
        if fits:
            best = min(fits, key=lambda g: abs(np.mean([m.reference_time for m in g]) - t))
            best.append(d)
        else:
            group = [d]
            groups.append(group)
            open_groups.append(group)
    return groups


def combine_probabilities(probabilities: list[dict[str, float]]) -> dict[str, float]:
    """The normalised geometric mean of several stations' class probabilities."""
    classes = list(probabilities[0])
    logs = np.array([[math.log(max(p[c], 1e-12)) for c in classes] for p in probabilities])
    mean = logs.mean(axis=0)
    weights = np.exp(mean - mean.max())
    weights /= weights.sum()
    return {c: float(w) for c, w in zip(classes, weights, strict=True)}


def event_label(probabilities: dict[str, float]) -> str:
    """The most probable class other than noise."""
    events = {c: p for c, p in probabilities.items() if c != NOISE_CLASS} or probabilities
    return max(events, key=lambda c: events[c])


def group_label(probabilities: dict[str, float], members: list[Detection]) -> str:
    """An event's type: the combined probabilities' (:func:`event_label`), unless that is
    the type the S − P check took away from one of its stations (an explosion whose S
    says the source is too deep for one): then that station's new type."""
    label = event_label(probabilities)
    changed = [m.label for m in members if m.relabelled_from == label]
    return changed[0] if changed else label


def combine_estimates(members: list[Detection], name: str) -> Estimate | None:
    """A source parameter of an event from its stations: the median, and as spread the
    root of the mean squared station spread plus the variance between stations; its
    method the stations' one, or ``mixed``."""
    values = [m.estimates[name] for m in members if name in m.estimates]
    if not values:
        return None
    v = np.array([e.value for e in values])
    s = np.array([e.spread for e in values])
    methods = sorted({e.method for e in values})
    method = methods[0] if len(methods) == 1 else "mixed"
    return Estimate(float(np.median(v)), float(math.sqrt(np.mean(s**2) + v.var())), method)


# --------------------------------------------------------------------------- location


@dataclass(frozen=True)
class Location:
    """An event's grid-search location.

    Attributes:
        latitude, longitude: the epicentre (degrees).
        depth_km: the depth (fixed at the stations' median estimate).
        origin_time: epoch (s).
        rms_time_s: RMS of the onset residuals; rms_distance_km: of the distance
            residuals (epicentral distance − model distance); misfit: sqrt(objective / N).
        stations: the stations used; residuals: station → (onset residual s, distance
            residual km, epicentral distance km).
    """

    latitude: float
    longitude: float
    depth_km: float
    origin_time: float
    rms_time_s: float
    rms_distance_km: float
    misfit: float
    stations: list[str]
    residuals: dict[str, tuple[float, float, float]]


def locate(
    members: list[Detection],
    positions: dict[str, StationPosition],
    times: PTravelTimes,
    config: AssociationConfig,
) -> Location | None:
    """The epicentre of a group by grid search (see the module docstring); None with
    fewer than two stations having coordinates and an onset."""
    used = [m for m in members if m.onset is not None and m.station in positions]
    if len(used) < 2:
        return None
    lat = np.array([positions[m.station].latitude for m in used])
    lon = np.array([positions[m.station].longitude for m in used])
    onset = np.array([m.onset for m in used], dtype=np.float64)
    dist = np.array([max(_value(m, "distance"), 0.0) for m in used])
    sigma = np.array([_sigma_km(m, config) for m in used])
    depth = float(np.median([_value(m, "depth") for m in used]))
    t_ref = float(onset.min())
    centre = (float(lat.mean()), float(np.degrees(np.arctan2(*_mean_dir(lon)))))
    half = min(config.max_radius_km, float(dist.max() + 2 * sigma.max()) + 10.0)
    best = centre
    for _ in range(4):
        best, cost = _grid_step(
            best, half, lat, lon, onset - t_ref, dist, sigma, depth, times, config
        )
        half *= 4.0 / (config.grid_nodes - 1)
    epi = epicentral_km(best[0], best[1], lat, lon)
    tt = times(epi, depth)
    t0 = float(np.mean(onset - t_ref - tt))
    res_t = onset - t_ref - tt - t0
    res_d = epi - dist
    return Location(
        latitude=float(best[0]),
        longitude=float(_wrap(best[1])),
        depth_km=depth,
        origin_time=t_ref + t0,
        rms_time_s=float(np.sqrt(np.mean(res_t**2))),
        rms_distance_km=float(np.sqrt(np.mean(res_d**2))),
        misfit=float(math.sqrt(cost / len(used))),
        stations=[m.station for m in used],
        residuals={
            m.station: (float(a), float(b), float(c))
            for m, a, b, c in zip(used, res_t, res_d, epi, strict=True)
        },
    )


def _mean_dir(lon: np.ndarray) -> tuple[float, float]:
    """(mean sin, mean cos) of longitudes, for a centroid across the antimeridian."""
    r = np.radians(lon)
    return float(np.sin(r).mean()), float(np.cos(r).mean())


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def _grid_step(
    centre: tuple[float, float],
    half_km: float,
    lat: np.ndarray,
    lon: np.ndarray,
    onset: np.ndarray,
    dist: np.ndarray,
    sigma: np.ndarray,
    depth: float,
    times: PTravelTimes,
    config: AssociationConfig,
) -> tuple[tuple[float, float], float]:
    """The best node of one square grid around ``centre`` and its objective."""
    axis = np.linspace(-half_km, half_km, config.grid_nodes)
    north, east = np.meshgrid(axis, axis, indexing="ij")
    glat = np.clip(centre[0] + north / KM_PER_DEG, -89.9, 89.9)
    glon = centre[1] + east / (KM_PER_DEG * max(math.cos(math.radians(centre[0])), 0.05))
    epi = epicentral_km(glat[..., None], glon[..., None], lat, lon)  # (G, G, N)
    tt = times(epi, depth)
    r = onset - tt
    r = r - r.mean(axis=-1, keepdims=True)
    cost = ((r / config.time_sigma_s) ** 2).sum(-1) + (((epi - dist) / sigma) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return (float(glat[i, j]), float(glon[i, j])), float(cost[i, j])
