"""The branch registry: what each branch of SeisLens is, in one torch-free place.

A *branch* is one retrieval problem served from one bundle: its encoders (ONNX graphs,
one of which embeds the user's queries and one the library items), the kind of item
its library holds, the name of its index, the manifest section that describes it and
how its ONNX embedder is built. The CLI's ``--branch`` choices, the bundle writer, the
index builder, the service's loaded state, ``/v1/bundle`` and the metrics all loop over
:data:`BRANCHES`; adding a branch means a few new modules and one entry here.

Embedders are named as ``"module:attribute"`` strings and imported on demand, so this
module imports neither onnxruntime nor torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seislens.models.manifest import BranchSection, EventSection, VelocitySection


@dataclass(frozen=True)
class Branch:
    """One branch of the registry.

    Attributes:
        name: the registry key, the manifest section name and the ``--branch`` value.
        item: what one library item is, in words ("velocity model", "event trace").
        encoders: the names of the branch's ONNX graphs (manifest ``encoders`` keys).
        query_encoder: the graph that embeds user queries (gathers, spectra).
        library_encoder: the graph whose embeddings the library index holds.
        index_name: the key of the branch's index in the manifest's ``indexes``.
        section: the pydantic model of the branch's manifest section.
        embedder: ``"module:attribute"`` of the embedder class; it is called as
            ``cls(root, section, providers, threads)``.
        file_prefix: prefix of the branch's ONNX file names under ``encoders/`` (see
            :meth:`encoder_file`).
        required: whether a bundle without this branch is refused (the velocity
            branch is what every bundle serves; the event branch is optional).
    """

    name: str
    item: str
    encoders: tuple[str, ...]
    query_encoder: str
    library_encoder: str
    index_name: str
    section: type[BranchSection]
    embedder: str
    file_prefix: str = ""
    required: bool = False

    def encoder_file(self, encoder: str, sha256: str) -> str:
        """The bundle-relative path an export writes ``encoder`` to, named by its content
        (``encoders/<prefix><encoder>-<first 12 hex of sha256>.onnx``), so a new export
        lands beside the files a running service still uses. Readers take the path from
        the manifest's ``EncoderEntry.file``: bundles with other names stay readable."""
        if encoder not in self.encoders:
            raise KeyError(f"branch {self.name!r} has no encoder {encoder!r}")
        return f"encoders/{self.file_prefix}{encoder}-{sha256[:12]}.onnx"

    def embedder_class(self) -> Callable[..., Any]:
        """The embedder class, imported on first use (it needs onnxruntime)."""
        module, _, attr = self.embedder.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build_embedder(
        self, root: Path, section: BranchSection, providers: list[str] | None, threads: int
    ) -> Any:
        """Open this branch's ONNX graphs of the bundle at ``root``."""
        return self.embedder_class()(Path(root), section, providers, threads)


VELOCITY = Branch(
    name="velocity",
    item="velocity model",
    encoders=("seismic", "velocity", "descriptor"),
    query_encoder="seismic",
    library_encoder="velocity",
    index_name="velocity",
    section=VelocitySection,
    embedder="seislens.models.embedders:VelocityEmbedder",
    required=True,
)

EVENTS = Branch(
    name="events",
    item="event trace",
    encoders=("spectrum", "info", "heads"),
    query_encoder="spectrum",
    library_encoder="spectrum",
    index_name="events",
    section=EventSection,
    embedder="seislens.models.event_embedders:EventEmbedder",
    file_prefix="event_",
)

BRANCHES: dict[str, Branch] = {b.name: b for b in (VELOCITY, EVENTS)}
"""Every branch, by name, in the order bundles list them."""

BRANCH_NAMES: tuple[str, ...] = tuple(BRANCHES)


def get_branch(name: str) -> Branch:
    """The branch called ``name``.

    Raises:
        KeyError: with the known names, when there is no such branch.
    """
    try:
        return BRANCHES[name]
    except KeyError:
        known = ", ".join(BRANCH_NAMES)
        raise KeyError(f"unknown branch {name!r}; SeisLens has: {known}") from None
