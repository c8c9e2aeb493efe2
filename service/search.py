"""The velocity search itself: embed a gather, find its top-k models, infer from them.

Kept apart from the route so it can be timed, tested and benchmarked on its own. All
of it is CPU-bound and runs in the server's thread pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from seislens.index.metadata import ItemRecord
from seislens.models.descriptors import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from seislens.service.estimation import similarity_weights, weighted_mean_std
from seislens.service.state import LoadedBundle

log = logging.getLogger("seislens.service")


@dataclass
class SearchOutcome:
    """The top-k of one query and what they imply.

    Attributes:
        records: the matched library items, best first.
        scores: their cosine similarities (n,), best first.
        weights: their softmax weights (n,), summing to 1 (empty when n = 0).
        descriptors: name → (mean, std) over the top-k.
        velocity: the weighted mean model (70, 70) float32 m/s, or None when n = 0.
        seconds: time per stage ('embed', 'search', 'estimate').
    """

    records: list[ItemRecord]
    scores: np.ndarray
    weights: np.ndarray
    descriptors: dict[str, tuple[float, float]]
    velocity: np.ndarray | None
    seconds: dict[str, float] = field(default_factory=dict)


def allowed_ids(bundle: LoadedBundle, family: str | None) -> np.ndarray | None:
    """Ids a search may return: all (None), or one family's."""
    if family is None:
        return None
    return bundle.library.store.ids_for_family(family, "velocity")


def search_gather(
    bundle: LoadedBundle,
    gather: np.ndarray,
    k: int,
    family: str | None,
    temperature: float,
) -> SearchOutcome:
    """Embed one gather (5, 1000, 70), search the library and infer from the top-k.

    Args:
        bundle: the bundle to use (leased by the caller).
        gather: raw amplitudes, any scale and polarity.
        k: neighbours wanted (fewer come back when the library or family is smaller).
        family: restrict the search to this family, or None.
        temperature: softmax temperature of the similarity weights.
    """
    t0 = time.perf_counter()
    vector = bundle.embedder.embed_gathers(gather[None])
    t1 = time.perf_counter()
    scores, ids = bundle.library.index.search(vector, k, allowed_ids(bundle, family))
    records, kept = _records(bundle, ids[0])
    scores = scores[0][kept]
    t2 = time.perf_counter()
    outcome = _estimate(bundle, records, scores, temperature)
    t3 = time.perf_counter()
    outcome.seconds = {"embed": t1 - t0, "search": t2 - t1, "estimate": t3 - t2}
    return outcome


def _records(bundle: LoadedBundle, ids: np.ndarray) -> tuple[list[ItemRecord], np.ndarray]:
    """The metadata of the found ids (empty slots and unknown ids dropped) and the
    positions kept."""
    valid = np.flatnonzero(ids >= 0)
    found = bundle.library.store.get_many(ids[valid])
    kept = [i for i, rec in zip(valid, found, strict=True) if rec is not None]
    if len(kept) < len(valid):
        log.warning("index of %s returned ids missing from its metadata store", bundle.name)
    return [rec for rec in found if rec is not None], np.asarray(kept, dtype=np.int64)


def _estimate(
    bundle: LoadedBundle, records: list[ItemRecord], scores: np.ndarray, temperature: float
) -> SearchOutcome:
    """Similarity-weighted descriptors and velocity model over the top-k."""
    if not records:
        return SearchOutcome([], scores, np.zeros(0), {}, None)
    weights = similarity_weights(scores, temperature)
    desc = np.array(
        [[rec.descriptors.get(name, np.nan) for name in DESCRIPTOR_NAMES] for rec in records],
        dtype=np.float64,
    )
    d_mean, d_std = weighted_mean_std(desc, weights)
    rows = np.array([rec.row for rec in records], dtype=np.int64)
    models = np.asarray(bundle.library.models[rows], dtype=np.float32)  # (n, 70, 70)
    v_mean, _ = weighted_mean_std(models, weights)
    descriptors = {
        name: (round(float(m), 4), round(float(s), 4))
        for name, m, s in zip(DESCRIPTOR_NAMES, d_mean, d_std, strict=True)
        if np.isfinite(m)
    }
    return SearchOutcome(records, scores, weights, descriptors, v_mean.astype(np.float32))


def descriptor_unit(name: str) -> str:
    """The unit of a descriptor ('' for one this version does not know)."""
    return DESCRIPTOR_UNITS.get(name, "")
