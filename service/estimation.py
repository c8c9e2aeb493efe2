"""Estimates from the top-k neighbours (NumPy only) and the store that serves them.

The inferred descriptors and the estimated velocity model are similarity-weighted
averages over the top-k library items: weights are a softmax of the cosine scores at
a temperature (0.05 by default, the value the evaluation uses), so a neighbour 0.05
less similar than the best counts e⁻¹ as much. The spread is the weighted standard
deviation around that mean.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

ESTIMATE_METHOD = "similarity-weighted mean of top-k"


def similarity_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax weights (k,) summing to 1 from cosine scores (k,), best first.

    Args:
        scores: finite cosine similarities of the neighbours.
        temperature: softmax temperature (> 0); smaller favours the best match.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores have shape {scores.shape}; expected (k,) with k >= 1")
    if temperature <= 0:
        raise ValueError(f"temperature is {temperature}; expected > 0")
    w = np.exp((scores - scores.max()) / temperature)
    return w / w.sum()


def weighted_mean_std(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation over the first axis.

    Args:
        values: (k, ...) neighbour values (descriptors (k, 9), models (k, 70, 70)).
        weights: (k,) non-negative weights summing to 1.

    Returns:
        mean (...) and std (...), float64.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    mean = (w * v).sum(axis=0)
    var = (w * (v - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(np.maximum(var, 0.0))


@dataclass(frozen=True)
class Estimate:
    """One estimated velocity model, kept for download by its query id."""

    query_id: str
    velocity: np.ndarray  # (70, 70) float32, m/s
    neighbour_ids: list[int]
    weights: list[float]
    bundle: str
    temperature: float
    created: float = field(default_factory=time.time)


class EstimateStore:
    """A bounded, thread-safe LRU of recent estimates keyed by query id.

    Args:
        capacity: estimates kept; adding one more drops the least recently used.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity is {capacity}; expected >= 1")
        self.capacity = capacity
        self._items: OrderedDict[str, Estimate] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        """A fresh, unguessable query id (32 hex characters)."""
        return uuid.uuid4().hex

    def put(self, estimate: Estimate) -> None:
        """Keep ``estimate``, dropping the least recently used beyond capacity."""
        with self._lock:
            self._items[estimate.query_id] = estimate
            self._items.move_to_end(estimate.query_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, query_id: str) -> Estimate | None:
        """The estimate of ``query_id`` (now most recently used), or None."""
        with self._lock:
            estimate = self._items.get(query_id)
            if estimate is not None:
                self._items.move_to_end(query_id)
            return estimate

    def __len__(self) -> int:
        return len(self._items)
