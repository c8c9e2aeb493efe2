"""The modalities ``/v1/embed/{modality}`` embeds, each an encoder of a registry branch.

:data:`MODALITIES` maps a URL name to the branch and encoder of
:data:`seislens.models.branches.BRANCHES` that embeds it: ``gather`` → the velocity
branch's query encoder (seismic), ``velocity`` → its library encoder (velocity),
``descriptors`` → its descriptor encoder, ``recording`` → the event branch's query
encoder (spectrum). Every entry names an encoder its branch has (checked at import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from seislens.models.branches import EVENTS, VELOCITY, Branch
from seislens.models.event_preprocess import EventWindow
from seislens.service.errors import NotFoundError
from seislens.service.event_search import RecordingWindows

if TYPE_CHECKING:
    from seislens.service.state import LoadedBundle


@dataclass(frozen=True)
class Modality:
    """One embeddable input: its URL name, the branch and encoder that embed it, and
    what a request sends, in words."""

    name: str
    branch: Branch
    encoder: str
    accepts: str

    def __post_init__(self) -> None:
        if self.encoder not in self.branch.encoders:
            raise ValueError(
                f"modality {self.name!r}: branch {self.branch.name!r} has no encoder "
                f"{self.encoder!r} (it has {', '.join(self.branch.encoders)})"
            )

    def describe(self) -> str:
        """``name (branch branch, encoder encoder)``."""
        return f"{self.name} ({self.branch.name} branch, {self.encoder} encoder)"


MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            "gather",
            VELOCITY,
            VELOCITY.query_encoder,
            "a shot gather as a multipart `file` (SEG-Y, SU or .npy), as /v1/velocity/search",
        ),
        Modality(
            "velocity",
            VELOCITY,
            VELOCITY.library_encoder,
            "a 70 × 70 velocity model in m/s: a multipart .npy `file` or JSON",
        ),
        Modality(
            "descriptors",
            VELOCITY,
            "descriptor",
            'all nine physical descriptors as JSON {"descriptors": {name: value}}',
        ),
        Modality(
            "recording",
            EVENTS,
            EVENTS.query_encoder,
            "a miniSEED recording as a multipart `file`, as /v1/events/classify",
        ),
    )
}
"""Every modality ``/v1/embed`` accepts, by URL name."""


def unknown_modality(name: str) -> NotFoundError:
    """The 404 of a modality ``/v1/embed`` does not know, with those it does."""
    accepted = "; ".join(m.describe() for m in MODALITIES.values())
    return NotFoundError(
        f"unknown modality {name!r}; POST /v1/embed/<modality> accepts: {accepted}",
        "unknown_modality",
    )


def embedding_info(bundle: LoadedBundle, modality: Modality) -> dict[str, object]:
    """The fields every embedding answer shares: dim, bundle, modality, encoder and the
    encoder's SHA-256 (from the manifest, checked against the file at load)."""
    section = bundle.branches[modality.branch.name].section
    return {
        "dim": section.embed_dim,
        "bundle": bundle.name,
        "modality": modality.name,
        "encoder": modality.encoder,
        "encoder_sha256": section.encoders[modality.encoder].sha256,
    }


def as_floats(vector: np.ndarray) -> list[float]:
    """One (D,) embedding as JSON floats (float32 values, exactly)."""
    return np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()


@dataclass
class RecordingEmbeddings:
    """One spectrum embedding per usable station window, and the stations skipped."""

    windows: list[EventWindow]
    vectors: np.ndarray  # (n_windows, D) float32
    skipped: list[tuple[str, str]]


def embed_recording(bundle: LoadedBundle, recording: RecordingWindows) -> RecordingEmbeddings:
    """The spectrum-encoder embeddings of the windows of the event path
    (:func:`~seislens.service.event_search.read_recording`, same refusals)."""
    embedder = bundle.branches[EVENTS.name].embedder
    vectors = embedder.embed_spectra(embedder.spectra(recording.windows))
    return RecordingEmbeddings(recording.windows, vectors, list(recording.skipped))
