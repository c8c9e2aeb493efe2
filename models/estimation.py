"""Estimates from the top-k neighbours (NumPy only): the one estimator of SeisLens.

The inferred descriptors and the estimated velocity model are similarity-weighted
averages over the top-k library items: weights are a softmax of the cosine scores at
a temperature (``DEFAULT_TEMPERATURE`` = 0.05, what the service and the evaluation
use), so a neighbour 0.05 less similar than the best counts e⁻¹ as much. The spread is
the weighted standard deviation around that mean.

Serving (one query: ``similarity_weights`` + ``weighted_mean_std`` on (k,) scores) and
evaluation (many queries: ``neighbour_estimate`` on (Q, k) scores) run the same code.
"""

from __future__ import annotations

import numpy as np

ESTIMATE_METHOD = "similarity-weighted mean of top-k"
"""How an estimate is made, in words (reported by the service)."""

DEFAULT_TEMPERATURE = 0.05
"""Softmax temperature on the cosine scores (dimensionless)."""

CHUNK_QUERIES = 256
"""Queries estimated at a time by :func:`neighbour_estimate` (keeps memory flat)."""


def similarity_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax weights summing to 1 along the last axis, from cosine scores.

    Args:
        scores: (k,) or (Q, k) finite cosine similarities of the neighbours.
        temperature: softmax temperature (> 0); smaller favours the best match.

    Returns:
        float64 weights of the shape of ``scores``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[-1] == 0:
        raise ValueError(f"scores have shape {scores.shape}; expected (k,) or (Q, k), k >= 1")
    if temperature <= 0:
        raise ValueError(f"temperature is {temperature}; expected > 0")
    w = np.exp((scores - scores.max(axis=-1, keepdims=True)) / temperature)
    return w / w.sum(axis=-1, keepdims=True)


def weighted_mean_std(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation over the neighbour axis.

    Args:
        values: (k, ...) neighbour values (descriptors (k, 9), models (k, 70, 70) m/s),
            or (Q, k, ...) for a batch of queries.
        weights: (k,) or (Q, k) non-negative weights summing to 1 along k.

    Returns:
        mean (...) or (Q, ...) and std of the same shape, float64.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if v.shape[: w.ndim] != w.shape:
        raise ValueError(f"values {v.shape} do not start with the weights' shape {w.shape}")
    axis = w.ndim - 1
    w = w.reshape(w.shape + (1,) * (v.ndim - w.ndim))
    mean = (w * v).sum(axis=axis)
    var = (w * (v - np.expand_dims(mean, axis)) ** 2).sum(axis=axis)
    return mean, np.sqrt(np.maximum(var, 0.0))


def neighbour_estimate(
    scores: np.ndarray,
    ids: np.ndarray,
    values: np.ndarray,
    temperature: float = DEFAULT_TEMPERATURE,
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted mean and std of each query's neighbours' values.

    Args:
        scores: (Q, k) cosine similarities of the neighbours, best first.
        ids: (Q, k) neighbour rows into ``values`` (>= 0).
        values: (N, ...) per-item values (descriptors (N, 9), models (N, 70, 70)); an
            array or a memory map.
        temperature: softmax temperature on the cosines.

    Returns:
        mean (Q, ...) and std (Q, ...), float64.
    """
    scores = np.asarray(scores)
    ids = np.asarray(ids, dtype=np.int64)
    if scores.ndim != 2 or scores.shape != ids.shape:
        raise ValueError(f"scores {scores.shape} and ids {ids.shape} must both be (Q, k)")
    means, stds = [], []
    for s in range(0, len(scores), CHUNK_QUERIES):
        part = slice(s, s + CHUNK_QUERIES)
        weights = similarity_weights(scores[part], temperature)
        mean, std = weighted_mean_std(np.asarray(values[ids[part]]), weights)
        means.append(mean)
        stds.append(std)
    if not means:
        empty = np.zeros((0, *np.shape(values)[1:]))
        return empty, empty.copy()
    return np.concatenate(means), np.concatenate(stds)
