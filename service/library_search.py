"""The search step every branch shares: query embeddings → top-k ids → their records.

The velocity path (:mod:`seislens.service.velocity_search`) and the event path
(:mod:`seislens.service.event_search`) embed their uploads their own way, then both call
:func:`search_library` on their branch's library and build their outcome from the
:class:`Neighbours` it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from seislens.index.library import LoadedLibrary
from seislens.index.metadata import ItemRecord

log = logging.getLogger("seislens.service")


@dataclass
class Neighbours:
    """The library items found for one query.

    Attributes:
        records: the matched items, best first (empty slots and ids missing from the
            metadata store dropped).
        scores: their cosine similarities (n,), best first.
    """

    records: list[ItemRecord]
    scores: np.ndarray

    @classmethod
    def none(cls) -> Neighbours:
        """No neighbours (a branch without a library)."""
        return cls([], np.zeros(0, np.float32))


def search_library(
    library: LoadedLibrary,
    vectors: np.ndarray,
    k: int,
    allowed_ids: np.ndarray | None = None,
) -> list[Neighbours]:
    """The top-k items of each query embedding.

    Args:
        library: the branch's library (of a bundle leased by the caller).
        vectors: (Q, d) query embeddings.
        k: neighbours wanted (fewer come back when the library or the allowed set is
            smaller).
        allowed_ids: only these ids may be returned (None: all).
    """
    scores, ids = library.search(vectors, k, allowed_ids)
    return [neighbours_of(library, row_ids, row) for row_ids, row in zip(ids, scores, strict=True)]


def neighbours_of(library: LoadedLibrary, ids: np.ndarray, scores: np.ndarray) -> Neighbours:
    """The records of ``ids`` (n,) with their ``scores`` (n,), best first; -1 slots and
    ids missing from the metadata store are dropped."""
    valid = np.flatnonzero(ids >= 0)
    found = library.records(ids[valid])
    kept = [i for i, rec in zip(valid, found, strict=True) if rec is not None]
    if len(kept) < len(valid):
        log.warning("the %s index returned ids missing from its metadata", library.branch.name)
    records = [rec for rec in found if rec is not None]
    return Neighbours(records, np.asarray(scores)[np.asarray(kept, dtype=np.int64)])


def ranked_matches(
    records: list[ItemRecord], scores: np.ndarray
) -> Iterator[tuple[ItemRecord, dict[str, Any]]]:
    """Each record with the fields every branch's match shares: ``rank`` (1 = best),
    ``id``, ``score`` (cosine, rounded to 6 decimals) and ``source``."""
    for rank, (rec, score) in enumerate(zip(records, scores, strict=True), 1):
        yield (
            rec,
            {"rank": rank, "id": rec.id, "score": round(float(score), 6), "source": rec.source},
        )
