"""The velocity search itself: embed a query (a gather, a velocity model), find its
top-k models, infer from them (one path, :func:`search_embedded`, for every query kind).

Kept apart from the route so it can be timed, tested and benchmarked on its own. All
of it is CPU-bound and runs in the server's thread pool.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from seislens.index.library import LoadedLibrary
from seislens.index.metadata import ItemRecord
from seislens.models.contract import GATHER_SHAPE
from seislens.models.descriptors import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from seislens.models.estimation import neighbour_estimate, similarity_weights
from seislens.service.library_search import Neighbours, search_library

if TYPE_CHECKING:
    from seislens.service.state import LoadedBranch

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
        predicted: name → (mean, std) from the bundle's descriptor head (gather queries
            of a bundle with one), else None.
        query: the query's embedding (D,) float32.
    """

    records: list[ItemRecord]
    scores: np.ndarray
    weights: np.ndarray
    descriptors: dict[str, tuple[float, float]]
    velocity: np.ndarray | None
    seconds: dict[str, float] = field(default_factory=dict)
    predicted: dict[str, tuple[float, float]] | None = None
    query: np.ndarray | None = None


def allowed_ids(branch: LoadedBranch, family: str | None) -> np.ndarray | None:
    """Ids a search may return: all (None), or one family's."""
    if family is None or branch.library is None:
        return None
    return branch.library.ids_for_family(family)


def search_gather(
    branch: LoadedBranch,
    gather: np.ndarray,
    k: int,
    family: str | None,
    temperature: float,
) -> SearchOutcome:
    """Embed one gather (5, 1000, 70) with the seismic encoder, search the library and
    infer from the top-k.

    Args:
        branch: the bundle's velocity branch (of a bundle leased by the caller); it
            always has a library (the velocity branch is required with its index).
        gather: raw amplitudes, any scale and polarity.
        k: neighbours wanted (fewer come back when the library or family is smaller).
        family: restrict the search to this family, or None.
        temperature: softmax temperature of the similarity weights.
    """
    head: dict[str, tuple[float, float]] = {}

    def embed() -> np.ndarray:
        vector, mean, std = branch.embedder.embed_gathers_with_head(gather[None])
        if mean is not None and std is not None:
            head.update(
                (name, (round(float(m), 4), round(float(s), 4)))
                for name, m, s in zip(DESCRIPTOR_NAMES, mean[0], std[0], strict=True)
            )
        return vector

    outcome = search_embedded(branch, embed, k, allowed_ids(branch, family), temperature)
    outcome.predicted = head or None
    return outcome


def search_velocity_model(
    branch: LoadedBranch,
    velocity: np.ndarray,
    k: int,
    family: str | None,
    temperature: float,
) -> SearchOutcome:
    """Embed one velocity model (70, 70) m/s with the velocity encoder (the library's
    own), search the library and infer from the top-k; arguments as
    :func:`search_gather`."""
    embed = functools.partial(branch.embedder.embed_velocity_models, velocity[None])
    return search_embedded(branch, embed, k, allowed_ids(branch, family), temperature)


def search_embedded(
    branch: LoadedBranch,
    embed: Callable[[], np.ndarray],
    k: int,
    allowed: np.ndarray | None,
    temperature: float,
) -> SearchOutcome:
    """The path every velocity search shares: embed the query, search the library,
    estimate from the top-k, each stage timed ('embed', 'search', 'estimate').

    Args:
        branch: the bundle's velocity branch (leased by the caller).
        embed: makes the (1, D) query embedding.
        k: neighbours wanted.
        allowed: ids the search may return (None: all).
        temperature: softmax temperature of the similarity weights.
    """
    assert branch.library is not None
    t0 = time.perf_counter()
    vector = embed()
    t1 = time.perf_counter()
    (found,) = search_library(branch.library, vector, k, allowed)
    t2 = time.perf_counter()
    outcome = estimate_outcome(branch.library, found, temperature)
    t3 = time.perf_counter()
    outcome.seconds = {"embed": t1 - t0, "search": t2 - t1, "estimate": t3 - t2}
    outcome.query = np.asarray(vector)[0]
    return outcome


def estimate_outcome(
    library: LoadedLibrary, found: Neighbours, temperature: float
) -> SearchOutcome:
    """Similarity-weighted descriptors and velocity model over the top-k ``found``
    (scores best first; any score that grows with the match serves as the similarity)."""
    records, scores = found.records, found.scores
    if not records:
        return SearchOutcome([], scores, np.zeros(0), {}, None)
    weights = similarity_weights(scores, temperature)
    desc = np.array(
        [[rec.descriptors.get(name, np.nan) for name in DESCRIPTOR_NAMES] for rec in records],
        dtype=np.float64,
    )
    # the estimator the evaluation uses: one query, neighbours in score order
    order = np.arange(len(desc))[None]
    d_mean, d_std = (a[0] for a in neighbour_estimate(scores[None], order, desc, temperature))
    rows = np.array([[rec.row for rec in records]], dtype=np.int64)
    v_mean = neighbour_estimate(scores[None], rows, library.array("models"), temperature)[0][0]
    descriptors = {
        name: (round(float(m), 4), round(float(s), 4))
        for name, m, s in zip(DESCRIPTOR_NAMES, d_mean, d_std, strict=True)
        if np.isfinite(m)
    }
    return SearchOutcome(records, scores, weights, descriptors, v_mean.astype(np.float32))


def descriptor_unit(name: str) -> str:
    """The unit of a descriptor ('' for one this version does not know)."""
    return DESCRIPTOR_UNITS.get(name, "")


def warm_up_velocity(branch: LoadedBranch) -> None:
    """One embedding and one search, so the first request is not the slow one and an
    encoder that cannot run here fails at load, not at the first query."""
    rng = np.random.default_rng(0)
    gather = rng.standard_normal((1, *GATHER_SHAPE)).astype(np.float32)
    vector = branch.embedder.embed_gathers(gather)
    if branch.library is not None and len(branch.library):
        branch.library.search(vector, 1)
