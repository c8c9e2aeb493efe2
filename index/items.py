"""What a branch's library items are, to the index build job (:mod:`seislens.index.builder`).

The build job is one mechanism for every branch; what differs per branch is declared by
a :class:`LibraryItems` (one small module per branch: :mod:`~seislens.index.velocity_items`,
:mod:`~seislens.index.event_items`): how sources are found under the paths given, how a
run of items is read and embedded, which per-item arrays are stored beside the index and
what the index entry records about the sources. An embedded run of items is an
:class:`ItemPart`, saved atomically as one resumable ``part-*.npz`` file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from seislens.index.metadata import ItemKind
from seislens.models.manifest import BranchSection


class Source(Protocol):
    """One source of library items (a file, a dataset folder): ``count`` items."""

    @property
    def count(self) -> int: ...


@dataclass(frozen=True)
class ArraySpec:
    """A per-item array stored beside the index as ``<name>.npy``, shape (N, *shape)."""

    dtype: str
    shape: tuple[int, ...] = ()
    fill: float = 0


@dataclass
class ItemPart:
    """A run of embedded items.

    Attributes:
        vectors: (n, d) float32 unit embeddings.
        arrays: name → (n, *spec.shape) per-item arrays (see ``LibraryItems.arrays``).
        family: (n) family of each item (velocity-model family, event label).
        source: (n) provenance of each item.
        descriptors: (n) name → value dicts (velocity models' physical descriptors).
        metadata: (n) free-form JSON-ready dicts.
        refused: items of the run that could not be embedded (and are not in it).
    """

    vectors: np.ndarray
    arrays: dict[str, np.ndarray]
    family: list[str]
    source: list[str]
    descriptors: list[dict[str, float]] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def __len__(self) -> int:
        return len(self.family)

    def save(self, path: Path) -> None:
        """Write to ``path`` (a ``.npz``) atomically: a temporary file, then a rename."""
        tmp = path.with_name(f"{path.stem}.tmp.npz")
        np.savez(
            tmp,
            vectors=self.vectors,
            family=np.array(self.family, dtype=str),
            source=np.array(self.source, dtype=str),
            descriptors=np.array([json.dumps(d) for d in self._padded(self.descriptors)], str),
            metadata=np.array([json.dumps(m) for m in self._padded(self.metadata)], str),
            refused=np.array(self.refused),
            **{f"array_{name}": value for name, value in self.arrays.items()},
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ItemPart:
        """A part written by :meth:`save`."""
        with np.load(path) as z:
            return cls(
                vectors=z["vectors"],
                arrays={k[len("array_") :]: z[k] for k in z.files if k.startswith("array_")},
                family=[str(x) for x in z["family"]],
                source=[str(x) for x in z["source"]],
                descriptors=[json.loads(str(x)) for x in z["descriptors"]],
                metadata=[json.loads(str(x)) for x in z["metadata"]],
                refused=int(z["refused"]),
            )

    def _padded(self, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return values if values else [{} for _ in self.family]


class LibraryItems(Protocol):
    """The per-branch part of the index build job.

    Attributes:
        kind: the metadata-store kind of the items ("velocity", "event").
        unit: what one item is called on the progress bar.
        arrays: the per-item arrays written beside the index, by name.
        options_type: the type of the branch's build options (a frozen dataclass).
    """

    kind: ItemKind
    unit: str
    arrays: dict[str, ArraySpec]
    options_type: type

    def discover(self, paths: list[Path], max_per_folder: int | None, options: Any) -> list[Source]:
        """The sources under ``paths``, checked; BundleError when there are none."""
        ...

    def fingerprint(self, source: Source) -> Any:
        """A JSON-ready identity of ``source`` (what makes a resumed part valid)."""
        ...

    def embed(self, embedder: Any, source: Source, start: int, stop: int, options: Any) -> ItemPart:
        """Read and embed items ``start``..``stop`` of ``source``."""
        ...

    def describe(self, sources: list[Source], options: Any) -> list[Any]:
        """The sources as the index entry records them."""
        ...

    def entry_fields(
        self, section: BranchSection, options: Any, arrays: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """Extra fields of the index entry (e.g. items per class), from the built arrays."""
        ...
