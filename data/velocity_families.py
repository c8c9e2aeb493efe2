"""Velocity-model families in the style of OpenFWI (FlatVel, CurveVel, FlatFault, CurveFault).

OpenFWI's own generator is not public; these rules are ours. Every model is a 70 × 70
grid (depth z × distance x, 10 m cells) of P-wave velocities in m/s within
[1500, 4500] m/s.

Layering (all families):
    * A variants ("easier"): 2–4 layers, each at least 8 cells (80 m) thick; the
      velocity increases with depth, the top layer drawn from U(1500, 3000) m/s and
      each deeper layer faster by U(150, 700) m/s (clipped at 4500 m/s).
    * B variants ("harder"): 3–7 layers, each at least 4 cells (40 m) thick; every
      layer's velocity drawn independently from U(1500, 4500) m/s, so low-velocity
      layers occur, with neighbouring layers differing by at least 150 m/s.

Geometry:
    * FlatVel: horizontal interfaces.
    * CurveVel: every interface follows one shared smooth curve
      ``z(x) = z0 + a·sin(2πx/λ + φ)`` with ``a`` ~ U(2, 8) cells (A) or U(3, 10) (B)
      and ``λ`` ~ U(110, 170) cells (A) or U(130, 190) (B), so the slope stays below
      0.5 (an interface never climbs a cell in two neighbouring columns running);
      interfaces stay parallel and never cross.
    * FlatFault / CurveFault: a flat / curved layering cut by one straight fault through
      the model's centre (x = 25–45 cells at mid-depth) with dip U(45°, 85°) (A) or
      U(45°, 89°) (B), dipping left or right;
      the hanging wall is moved down by a throw of U(5, 15) cells (A) or U(5, 25) (B),
      i.e. 50–150 m or 50–250 m. Rows exposed at the top are filled with the top layer.

Each model is a pure function of ``(family, seed, index)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from seislens.models.contract import NX, NZ

V_MIN, V_MAX = 1500.0, 4500.0

FAMILIES: tuple[str, ...] = (
    "flatvel-a",
    "flatvel-b",
    "curvevel-a",
    "curvevel-b",
    "flatfault-a",
    "flatfault-b",
    "curvefault-a",
    "curvefault-b",
)


@dataclass(frozen=True)
class LayerRule:
    """Layer counts, thicknesses (cells) and velocity rule of one variant."""

    min_layers: int
    max_layers: int
    min_thickness: int
    increasing: bool


_RULES = {
    "a": LayerRule(min_layers=2, max_layers=4, min_thickness=8, increasing=True),
    "b": LayerRule(min_layers=3, max_layers=7, min_thickness=4, increasing=False),
}


def check_family(family: str) -> str:
    """Return ``family`` normalised to lower case, or raise ValueError naming the choices."""
    name = family.strip().lower()
    if name not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    return name


def _interface_depths(rng: np.random.Generator, rule: LayerRule) -> np.ndarray:
    """Sorted depths (cells) of the interfaces between layers."""
    n_layers = int(rng.integers(rule.min_layers, rule.max_layers + 1))
    n_int = n_layers - 1
    top, bottom = rule.min_thickness, NZ - rule.min_thickness
    slack = (bottom - top) - (n_int - 1) * rule.min_thickness
    gaps = np.sort(rng.uniform(0, slack, size=n_int))
    return top + gaps + np.arange(n_int) * rule.min_thickness


def _layer_velocities(rng: np.random.Generator, rule: LayerRule, n_layers: int) -> np.ndarray:
    """Velocities (m/s) of ``n_layers`` layers from top to bottom."""
    if rule.increasing:
        v0 = rng.uniform(1500.0, 3000.0)
        steps = rng.uniform(150.0, 700.0, size=n_layers - 1)
        return np.clip(np.concatenate([[v0], v0 + np.cumsum(steps)]), V_MIN, V_MAX)
    vel = [rng.uniform(V_MIN, V_MAX)]
    while len(vel) < n_layers:
        cand = rng.uniform(V_MIN, V_MAX)
        if abs(cand - vel[-1]) >= 150.0:
            vel.append(cand)
    return np.asarray(vel)


def _curve(rng: np.random.Generator, variant: str) -> np.ndarray:
    """Shared interface undulation (cells) as a function of x, shape (NX,)."""
    amp = rng.uniform(2.0, 8.0) if variant == "a" else rng.uniform(3.0, 10.0)
    wavelength = rng.uniform(110.0, 170.0) if variant == "a" else rng.uniform(130.0, 190.0)
    phase = rng.uniform(0.0, 2 * np.pi)
    x = np.arange(NX)
    return amp * np.sin(2 * np.pi * x / wavelength + phase)


def _layered(depths: np.ndarray, velocities: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Paint layers: cell (z, x) takes the velocity of the layer its depth falls in."""
    z = np.arange(NZ)[:, None] + 0.5
    surfaces = depths[:, None] + shift[None, :]  # (n_int, NX)
    layer = (z[None, :, :] >= surfaces[:, None, :]).sum(axis=0)  # (NZ, NX)
    return velocities[layer]


def _fault(rng: np.random.Generator, v: np.ndarray, variant: str) -> tuple[np.ndarray, int]:
    """Cut ``v`` with one straight fault and drop the hanging wall; returns (model, throw)."""
    lo_dip, hi_dip = (45.0, 85.0) if variant == "a" else (45.0, 89.0)
    dip = np.deg2rad(rng.uniform(lo_dip, hi_dip))
    throw = int(rng.integers(5, 16 if variant == "a" else 26))
    x_mid = rng.uniform(25.0, 45.0)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    z = np.arange(NZ)[:, None] + 0.5
    x = np.arange(NX)[None, :] + 0.5
    # Fault trace x_f(z) = x_mid + direction * (z - 35) / tan(dip), crossing the middle of
    # the model at mid-depth; the hanging wall lies on its far side.
    x_fault = x_mid + direction * (z - NZ / 2) / np.tan(dip)
    hanging = (x - x_fault) * direction > 0
    src_rows = np.clip(np.arange(NZ) - throw, 0, NZ - 1)
    dropped = v[src_rows, :]
    return np.where(hanging, dropped, v), throw


def velocity_model(family: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one velocity model of ``family``: (70, 70) float32 in m/s, depth first."""
    return draw_model(family, rng)[0]


def draw_model(family: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """Draw one velocity model of ``family`` with the parameters it was drawn with.

    Args:
        family: one of :data:`FAMILIES`.
        rng: the random generator to draw from.

    Returns:
        The (70, 70) float32 model in m/s (depth first) and a dict with ``n_layers``
        and ``throw_m`` (0 without a fault), for checking descriptors against truth.
    """
    family = check_family(family)
    geometry, variant = family.split("-")
    rule = _RULES[variant]
    depths = _interface_depths(rng, rule)
    velocities = _layer_velocities(rng, rule, len(depths) + 1)
    shift = _curve(rng, variant) if geometry.startswith("curve") else np.zeros(NX)
    v = _layered(depths, velocities, shift)
    throw = 0
    if geometry.endswith("fault"):
        v, throw = _fault(rng, v, variant)
    return v.astype(np.float32), {"n_layers": len(depths) + 1, "throw_m": throw * 10.0}


def sample_rng(family: str, seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a dataset: independent of how work is split."""
    fam_id = FAMILIES.index(check_family(family))
    return np.random.default_rng([int(seed), fam_id, int(index)])


def velocity_models(family: str, seed: int, start: int, count: int) -> np.ndarray:
    """Models ``start .. start+count-1`` of the dataset ``(family, seed)``: (count, 70, 70)."""
    make: Callable[[int], np.ndarray] = lambda i: velocity_model(  # noqa: E731
        family, sample_rng(family, seed, i)
    )
    return np.stack([make(i) for i in range(start, start + count)])
