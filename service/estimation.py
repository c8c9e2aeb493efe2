"""The store of recent velocity estimates, downloadable by query id.

The estimates themselves are made by :mod:`seislens.models.estimation`, the one
estimator shared with the evaluation.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


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
