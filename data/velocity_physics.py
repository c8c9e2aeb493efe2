"""Randomised physics of the velocity generator: one :class:`ForwardConfig` drawn per sample.

What changes the wavefield itself is drawn here, at generation time (what is cheap —
trigger delay, trace gains and statics, dead, noisy and reversed traces, noise,
band-pass, decay corrections, missing shots and receivers — is drawn again every
epoch by ``seislens.training.velocity_augment``):

* the source wavelet: family (Ricker, Ormsby, Berlage), peak frequency and constant
  phase rotation;
* source and receiver depths (grid rows below the surface);
* a free surface (reflecting top) or an absorbing one;
* the PML width (absorbing boundary cells) and the finite-difference order.

A fraction ``openfwi_fraction`` of samples keeps OpenFWI's exact setting, so the
as-generated gathers stay in the training distribution. Draws come from a generator
seeded by ``(seed, family, sample index)``, so sample ``i`` gets the same physics
whatever the number of workers. The ranges are data (:class:`PhysicsRanges`) and are
recorded in the dataset manifest; the draws of each shard in ``physics{k}.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from seislens.data.velocity_families import FAMILIES, check_family
from seislens.data.velocity_forward import ForwardConfig
from seislens.data.wavelets import WAVELET_KINDS, WaveletKind

#: Salt that separates physics draws from the velocity-model draws of the same sample.
_PHYSICS_STREAM = 7919


class PhysicsRanges(BaseModel):
    """Ranges the per-sample physics is drawn from (uniform unless stated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    openfwi_fraction: float = Field(0.2, ge=0, le=1, description="samples kept as OpenFWI")
    wavelets: tuple[WaveletKind, ...] = Field(WAVELET_KINDS, min_length=1)
    peak_hz: tuple[float, float] = Field((6.0, 30.0), description="log-uniform, Hz")
    phase_deg: tuple[float, float] = (-90.0, 90.0)
    source_depth_cells: tuple[int, int] = (1, 3)
    receiver_depth_cells: tuple[int, int] = (0, 3)
    free_surface_prob: float = Field(0.3, ge=0, le=1)
    pml_width_cells: tuple[int, int] = (10, 30)
    accuracy: tuple[int, ...] = Field((2, 4, 8), min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> PhysicsRanges:
        for name in ("peak_hz", "phase_deg", "source_depth_cells", "receiver_depth_cells"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} is ({lo}, {hi}); expected low <= high")
        if self.peak_hz[0] <= 0:
            raise ValueError(f"peak_hz must be positive; got {self.peak_hz}")
        if self.pml_width_cells[0] < 1 or self.pml_width_cells[0] > self.pml_width_cells[1]:
            raise ValueError(f"pml_width_cells is {self.pml_width_cells}; expected 1 <= lo <= hi")
        if bad := [a for a in self.accuracy if a not in (2, 4, 6, 8)]:
            raise ValueError(f"accuracy orders {bad} are not among 2, 4, 6, 8")
        return self


def physics_rng(family: str, seed: int, index: int) -> np.random.Generator:
    """The physics generator of sample ``index`` of dataset ``(family, seed)``."""
    fam_id = FAMILIES.index(check_family(family))
    return np.random.default_rng([int(seed), fam_id, int(index), _PHYSICS_STREAM])


def draw_forward(
    ranges: PhysicsRanges, rng: np.random.Generator, base: ForwardConfig | None = None
) -> ForwardConfig:
    """One sample's propagator settings: ``base`` (OpenFWI's) with drawn physics."""
    base = base or ForwardConfig()
    if rng.random() < ranges.openfwi_fraction:
        return base
    lo, hi = np.log(ranges.peak_hz)
    free = bool(rng.random() < ranges.free_surface_prob)
    src_lo = max(ranges.source_depth_cells[0], 1 if free else 0)
    rec_lo = max(ranges.receiver_depth_cells[0], 1 if free else 0)  # p = 0 on a free surface
    src_hi = max(src_lo, ranges.source_depth_cells[1])
    rec_hi = max(rec_lo, ranges.receiver_depth_cells[1])
    update: dict[str, Any] = {
        "wavelet": str(rng.choice(ranges.wavelets)),
        "freq": round(float(np.exp(rng.uniform(lo, hi))), 3),
        "phase_deg": round(float(rng.uniform(*ranges.phase_deg)), 2),
        "source_depth": int(rng.integers(src_lo, src_hi + 1)),
        "receiver_depth": int(rng.integers(rec_lo, rec_hi + 1)),
        "free_surface": free,
        "pml_width": int(rng.integers(ranges.pml_width_cells[0], ranges.pml_width_cells[1] + 1)),
        "accuracy": int(rng.choice(ranges.accuracy)),
    }
    return base.model_copy(update=update)


def sample_forward(
    family: str, seed: int, index: int, ranges: PhysicsRanges | None, base: ForwardConfig
) -> ForwardConfig:
    """Settings of sample ``index``: ``base`` itself when ``ranges`` is None (OpenFWI)."""
    if ranges is None:
        return base
    return draw_forward(ranges, physics_rng(family, seed, index), base)
