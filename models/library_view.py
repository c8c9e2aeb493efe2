"""What evaluation needs of an opened library, as a Protocol (NumPy only).

Training's evaluation scores retrieval against a bundle's library without importing
the index layer: it takes any object with these methods. The index layer's
``seislens.index.library.LoadedLibrary`` is one; the top layer opens it and passes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class LibraryView(Protocol):
    """An opened library of N items: search, per-item arrays and descriptors."""

    def __len__(self) -> int:
        """N, the items in the library."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine scores (Q, k) and ids (Q, k) of the most similar items, best first;
        id -1 in slots without a result."""
        ...

    def array(self, name: str) -> np.ndarray:
        """The per-item array ``name`` (N, ...), e.g. ``models`` (N, 70, 70) m/s."""
        ...

    def take(self, name: str, ids: np.ndarray, fill: float = -1) -> np.ndarray:
        """``array(name)`` at ``ids`` (any shape), ``fill`` where an id is -1, e.g.
        ``labels`` (Q, k) class indices of neighbours."""
        ...

    def descriptors(self, ids: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(len(ids), len(names)) descriptor values of the given items."""
        ...
