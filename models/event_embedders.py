"""The event branch of a bundle under ONNX Runtime (no torch): what the service and the
evaluation run.

:class:`EventEmbedder` wraps the three exported graphs of ``manifest["events"]``: the
spectrum encoder, the info encoder and the heads (class probabilities and distance,
depth and magnitude in physical units). Inputs are the spectra of
:func:`seislens.models.event_preprocess.waveform_to_spectrum` with the bundle's
preprocessing settings (:attr:`EventEmbedder.pre`).
"""

from __future__ import annotations

import numpy as np
from seislens.models.contract import EVENT_TARGETS, SPECTRUM_SHAPE
from seislens.models.embedders import BranchEmbedder
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    EventWindow,
    waveform_to_spectrum,
)
from seislens.models.manifest import EventSection


class EventEmbedder(BranchEmbedder):
    """The event branch of a bundle: three ONNX graphs and their preprocessing settings.

    Args: as :class:`~seislens.models.embedders.BranchEmbedder`, with the manifest's
    ``events`` section.
    """

    def _configure(self, section: EventSection) -> None:  # type: ignore[override]
        self.pre = EventPreprocessConfig.model_validate(section.preprocessing)
        self.classes: tuple[str, ...] = tuple(section.classes)
        self.targets: dict[str, str] = dict(section.targets)
        self.regression_outputs: tuple[str, ...] = tuple(
            section.regression_outputs or EVENT_TARGETS
        )
        self.spectrum = self.graphs["spectrum"]
        self.info = self.graphs["info"]
        self.heads = self.graphs["heads"]

    def spectra(self, windows: list[EventWindow] | np.ndarray) -> np.ndarray:
        """(N, 3, 50, 120) spectra of EventWindows or of (N, 3, 6000) waveforms, computed
        with the bundle's preprocessing settings."""
        if isinstance(windows, np.ndarray):
            return waveform_to_spectrum(windows, self.pre).reshape(-1, *SPECTRUM_SHAPE)
        return np.stack([waveform_to_spectrum(w.waveform, self.pre) for w in windows])

    def embed_spectra(self, spectra: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, 3, 50, 120) spectra → (N, D) unit embeddings."""
        return self.spectrum(_check_spectra(spectra), batch)

    def embed_info(self, info: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, 8) raw info fields (``INFO_FIELDS`` order, unscaled) → (N, D)."""
        x = np.asarray(info, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != 8:
            raise EventInputError(f"info has shape {x.shape}; expected (N, 8)")
        return self.info(x, batch)

    def classify(
        self, spectra: np.ndarray, batch: int = 256
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Class probabilities and source parameters of (N, 3, 50, 120) spectra.

        Returns:
            probabilities (N, C) in ``self.classes`` order, and ``{"distance": (N,),
            "depth": (N,), "magnitude": (N,)}`` in the units of ``self.targets`` (km, km,
            magnitude units).
        """
        outs = self.heads.outputs(_check_spectra(spectra), batch)
        if not outs:
            empty = np.zeros(0, np.float32)
            return np.zeros((0, len(self.classes)), np.float32), {
                k: empty for k in self.regression_outputs
            }
        return outs["probabilities"], {k: outs[k] for k in self.regression_outputs}


def _check_spectra(spectra: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(spectra, dtype=np.float32)
    if x.ndim != 4 or x.shape[1:] != SPECTRUM_SHAPE:
        raise EventInputError(
            f"spectra have shape {x.shape}; expected (N, {', '.join(map(str, SPECTRUM_SHAPE))})"
        )
    if not np.isfinite(x).all():
        raise EventInputError("spectra hold NaN or infinite values")
    return x
