"""Search the velocity library by physical descriptors: all nine, or any subset.

The rule (:data:`DESCRIPTOR_SEARCH_RULE`, also the route's OpenAPI description):

* **All nine descriptors, no tolerances** (``method`` = ``embedding``): the descriptors
  are embedded with the bundle's descriptor encoder and the library (velocity-encoder
  embeddings, the shared space) is searched by cosine similarity, as a gather is.
* **Tolerances** are a hard filter: a library model is a candidate only when
  ``|value - target| <= tolerance`` for every descriptor given a tolerance (a model
  lacking that descriptor is no candidate). With all nine descriptors the candidates
  are then ranked by the descriptor embedding (``filter+embedding``).
* **A subset** (``distance``): candidates are ranked by the root-mean-square
  standardised difference over the given descriptors,
  ``d = sqrt(mean_j ((value_j - target_j) / std_j)²)``, ``std_j`` the bundle's
  descriptor standard deviation (manifest ``velocity.preprocessing.descriptors``), and
  scored ``exp(-d²/2)`` (1 for an exact match).

The ``family`` filter applies to every method. The inferred descriptors and estimated
model are the one estimator's (similarity-weighted over the top-k scores).
"""

from __future__ import annotations

import functools
import math
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from seislens.index.library import LoadedLibrary
from seislens.models.descriptors import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from seislens.service.error_docs import ErrorDoc
from seislens.service.errors import InvalidParameterError
from seislens.service.library_search import neighbours_of
from seislens.service.velocity_search import (
    SearchOutcome,
    allowed_ids,
    estimate_outcome,
    search_embedded,
)

if TYPE_CHECKING:
    from seislens.service.state import LoadedBranch

DescriptorMethod = Literal["embedding", "filter+embedding", "distance"]

DESCRIPTOR_SEARCH_RULE = (
    "All nine descriptors without tolerances: embedded with the descriptor encoder and "
    "searched by cosine similarity (method `embedding`). Tolerances are a hard filter, "
    "|value − target| ≤ tolerance for each descriptor given one; with all nine "
    "descriptors the models that pass are ranked by the descriptor embedding "
    "(`filter+embedding`). A subset is ranked by the root-mean-square standardised "
    "difference d over the given descriptors (each divided by the bundle's descriptor "
    "standard deviation) and scored exp(−d²/2), 1 for an exact match (`distance`). "
    "Descriptor names: " + ", ".join(f"{n} ({DESCRIPTOR_UNITS[n]})" for n in DESCRIPTOR_NAMES)
)
"""The ranking rule, in words (the route's description)."""

_ACCEPTED = ", ".join(DESCRIPTOR_NAMES)


@dataclass(frozen=True)
class DescriptorQuery:
    """Checked descriptor targets and tolerances, in :data:`DESCRIPTOR_NAMES` order.

    Attributes:
        targets: name → value, in the descriptor's unit (``DESCRIPTOR_UNITS``).
        tolerances: name → largest accepted |value − target| (each has a target).
    """

    targets: dict[str, float]
    tolerances: dict[str, float]

    @property
    def complete(self) -> bool:
        """Whether all nine descriptors are given (the descriptor encoder can embed them)."""
        return len(self.targets) == len(DESCRIPTOR_NAMES)

    @property
    def method(self) -> DescriptorMethod:
        """How the library is ranked (see :data:`DESCRIPTOR_SEARCH_RULE`)."""
        if not self.complete:
            return "distance"
        return "filter+embedding" if self.tolerances else "embedding"

    def vector(self) -> np.ndarray:
        """The (9,) float32 descriptor vector (all nine must be given)."""
        return np.array([self.targets[n] for n in DESCRIPTOR_NAMES], dtype=np.float32)


def descriptor_query(
    descriptors: Mapping[str, float], tolerances: Mapping[str, float] | None = None
) -> DescriptorQuery:
    """Check a descriptor query: known names, finite values, tolerances finite, >= 0
    and for given descriptors.

    Raises:
        InvalidParameterError: reasons 'no_descriptors', 'unknown_descriptor',
            'non_finite_descriptor', 'bad_tolerance', 'tolerance_without_value'; the
            location names the field.
    """
    if not descriptors:
        raise InvalidParameterError(
            ("body", "descriptors"),
            f"no descriptors given; give one or more of: {_ACCEPTED}",
            "no_descriptors",
        )
    tolerances = dict(tolerances or {})
    for field, values in (("descriptors", descriptors), ("tolerances", tolerances)):
        for name in values:
            if name not in DESCRIPTOR_UNITS:
                raise InvalidParameterError(
                    ("body", field, name),
                    f"unknown descriptor {name!r} in {field}; accepted: {_ACCEPTED}",
                    "unknown_descriptor",
                )
    for name, value in descriptors.items():
        if not math.isfinite(value):
            raise InvalidParameterError(
                ("body", "descriptors", name),
                f"descriptor {name!r} is {value}; expected a finite number "
                f"in {DESCRIPTOR_UNITS[name]}",
                "non_finite_descriptor",
            )
    for name, tol in tolerances.items():
        _check_tolerance(name, tol, descriptors)
    ordered = {n: float(descriptors[n]) for n in DESCRIPTOR_NAMES if n in descriptors}
    tols = {n: float(tolerances[n]) for n in DESCRIPTOR_NAMES if n in tolerances}
    return DescriptorQuery(ordered, tols)


def _check_tolerance(name: str, tol: float, descriptors: Mapping[str, float]) -> None:
    if not (math.isfinite(tol) and tol >= 0):
        raise InvalidParameterError(
            ("body", "tolerances", name),
            f"tolerance of {name!r} is {tol}; expected a finite number >= 0 "
            f"in {DESCRIPTOR_UNITS[name]}",
            "bad_tolerance",
        )
    if name not in descriptors:
        raise InvalidParameterError(
            ("body", "tolerances", name),
            f"tolerance of {name!r} without a value: give descriptors.{name} too "
            f"(descriptors given: {', '.join(descriptors)})",
            "tolerance_without_value",
        )


def require_all_descriptors(query: DescriptorQuery) -> DescriptorQuery:
    """``query`` when it gives all nine descriptors (the descriptor encoder's input).

    Raises:
        InvalidParameterError: reason 'incomplete_descriptors', naming those missing.
    """
    missing = [n for n in DESCRIPTOR_NAMES if n not in query.targets]
    if missing:
        raise InvalidParameterError(
            ("body", "descriptors"),
            f"the descriptor encoder needs all {len(DESCRIPTOR_NAMES)} descriptors; "
            f"missing: {', '.join(missing)}",
            "incomplete_descriptors",
        )
    return query


DESCRIPTOR_VALUE_ERRORS = (
    ErrorDoc(
        422,
        "unknown_descriptor",
        "Not a descriptor name",
        lambda: descriptor_query({"mean_speed": 3000.0}),
    ),
    ErrorDoc(
        422,
        "non_finite_descriptor",
        "NaN or Inf value",
        lambda: descriptor_query({"mean_velocity": float("nan")}),
    ),
    ErrorDoc(422, "no_descriptors", "No descriptors", lambda: descriptor_query({})),
)
"""The refusals of descriptor values (every route taking descriptors)."""

TOLERANCE_ERRORS = (
    ErrorDoc(
        422,
        "bad_tolerance",
        "Negative tolerance",
        lambda: descriptor_query({"n_interfaces": 3.0}, {"n_interfaces": -1.0}),
    ),
    ErrorDoc(
        422,
        "tolerance_without_value",
        "Tolerance for a descriptor not given",
        lambda: descriptor_query({"n_interfaces": 3.0}, {"fault_throw": 10.0}),
    ),
)
"""The refusals of tolerances (the descriptor search)."""

INCOMPLETE_DESCRIPTORS = ErrorDoc(
    422,
    "incomplete_descriptors",
    "Not all nine descriptors",
    lambda: require_all_descriptors(descriptor_query({"mean_velocity": 3000.0})),
)


# --------------------------------------------------------------------------- search


@dataclass
class DescriptorOutcome:
    """A descriptor search: its top-k (scores as the method defines them), and how many
    library models were candidates (after tolerances and family)."""

    outcome: SearchOutcome
    method: DescriptorMethod
    candidates: int


def search_descriptors(
    branch: LoadedBranch,
    query: DescriptorQuery,
    k: int,
    family: str | None,
    temperature: float,
) -> DescriptorOutcome:
    """Rank the velocity library by ``query`` as :data:`DESCRIPTOR_SEARCH_RULE` says.

    Args:
        branch: the bundle's velocity branch (leased by the caller; it has a library).
        query: the checked descriptors and tolerances.
        k: models wanted (fewer when fewer are candidates).
        family: only models of this family, or None.
        temperature: softmax temperature of the estimate's weights.
    """
    library = branch.library
    assert library is not None
    table = descriptor_table(library)
    mask = _candidates(table, query, allowed_ids(branch, family))
    if query.complete:
        allowed = table.ids[mask] if query.tolerances or family is not None else None
        embed = functools.partial(branch.embedder.embed_descriptors, query.vector()[None])
        outcome = search_embedded(branch, embed, k, allowed, temperature)
        return DescriptorOutcome(outcome, query.method, int(mask.sum()))
    t0 = time.perf_counter()
    scale = np.asarray(branch.embedder.pre.descriptors.std, dtype=np.float64)
    ids, scores = _closest(table, query, scale, mask, k)
    found = neighbours_of(library, ids, scores)
    t1 = time.perf_counter()
    outcome = estimate_outcome(library, found, temperature)
    outcome.seconds = {"embed": 0.0, "search": t1 - t0, "estimate": time.perf_counter() - t1}
    return DescriptorOutcome(outcome, query.method, int(mask.sum()))


def _candidates(
    table: DescriptorTable, query: DescriptorQuery, allowed: np.ndarray | None
) -> np.ndarray:
    """(N,) bool: the models within every tolerance (and of the allowed ids)."""
    mask = np.ones(len(table.ids), dtype=bool)
    for name, tol in query.tolerances.items():
        column = table.values[:, DESCRIPTOR_NAMES.index(name)]
        with np.errstate(invalid="ignore"):
            mask &= np.abs(column - query.targets[name]) <= tol  # NaN: False
    if allowed is not None:
        mask &= np.isin(table.ids, allowed)
    return mask


def _closest(
    table: DescriptorTable,
    query: DescriptorQuery,
    scale: np.ndarray,
    mask: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and scores exp(-d²/2) of the k candidates nearest ``query.targets`` by the
    RMS standardised difference d, best first."""
    columns = [DESCRIPTOR_NAMES.index(n) for n in query.targets]
    target = np.array(list(query.targets.values()), dtype=np.float64)
    std = np.where(scale[columns] > 0, scale[columns], 1.0)
    d2 = np.mean(((table.values[:, columns] - target) / std) ** 2, axis=1)
    d2 = np.where(mask & np.isfinite(d2), d2, np.inf)
    order = np.argsort(d2, kind="stable")[:k]
    order = order[np.isfinite(d2[order])]
    return table.ids[order], np.exp(-0.5 * d2[order]).astype(np.float32)


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class DescriptorTable:
    """Every library model's descriptors: ids (N,) int64 and values (N, 9) float64 in
    :data:`DESCRIPTOR_NAMES` order (NaN where a record lacks one)."""

    ids: np.ndarray
    values: np.ndarray


_TABLES: weakref.WeakKeyDictionary[LoadedLibrary, DescriptorTable] = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def descriptor_table(library: LoadedLibrary) -> DescriptorTable:
    """The library's :class:`DescriptorTable`, read from its metadata once per opened
    library (a reloaded bundle's library is read anew)."""
    with _TABLES_LOCK:
        table = _TABLES.get(library)
    if table is not None:
        return table
    records = [r for r in library.records(np.arange(len(library))) if r is not None]
    table = DescriptorTable(
        ids=np.array([r.id for r in records], dtype=np.int64),
        values=np.array(
            [[r.descriptors.get(n, np.nan) for n in DESCRIPTOR_NAMES] for r in records],
            dtype=np.float64,
        ).reshape(-1, len(DESCRIPTOR_NAMES)),
    )
    with _TABLES_LOCK:
        _TABLES[library] = table
    return table
