"""The event branch of a bundle under ONNX Runtime (no torch): what the service and the
evaluation run.

:class:`EventEmbedder` wraps the three exported graphs of ``manifest["events"]``: the
spectrum encoder, the info encoder and the heads (class probabilities and distance,
depth and magnitude in physical units). Inputs are the spectra of
:func:`seislens.models.event_preprocess.waveform_to_spectrum` with the bundle's
preprocessing settings (:attr:`EventEmbedder.pre`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from seislens.models.contract import SPECTRUM_SHAPE
from seislens.models.embedders import OnnxEncoder, choose_providers
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    EventWindow,
    waveform_to_spectrum,
)
from seislens.models.manifest import EventSection


class EventEmbedder:
    """The event branch of a bundle: three ONNX graphs and their preprocessing settings.

    Args:
        root: the bundle directory.
        section: the manifest's ``events`` section.
        providers: execution providers (see ``choose_providers``); threads: intra-op
            threads per session (0 lets onnxruntime decide).
    """

    def __init__(
        self,
        root: Path,
        section: EventSection,
        providers: list[str] | None = None,
        threads: int = 0,
    ):
        import onnxruntime as ort

        root = Path(root)
        enc = section.encoders
        providers = providers or choose_providers()
        self.pre = EventPreprocessConfig.model_validate(section.preprocessing)
        self.classes: tuple[str, ...] = tuple(section.classes)
        self.targets: dict[str, str] = dict(section.targets)
        self.embed_dim = section.embed_dim
        self.spectrum = OnnxEncoder(root / enc["spectrum"].file, providers, threads)
        self.info = OnnxEncoder(root / enc["info"].file, providers, threads)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._heads = ort.InferenceSession(str(root / enc["heads"].file), opts, providers=providers)
        self._heads_input = self._heads.get_inputs()[0].name
        self._heads_outputs = [o.name for o in self._heads.get_outputs()]
        self.regression_outputs: tuple[str, ...] = tuple(
            section.regression_outputs or ("distance", "depth", "magnitude")
        )

    @property
    def provider(self) -> str:
        """The execution provider that really runs the spectrum encoder."""
        return self.spectrum.provider

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
        x = _check_spectra(spectra)
        probs: list[np.ndarray] = []
        reg: dict[str, list[np.ndarray]] = {k: [] for k in self.regression_outputs}
        for s in range(0, len(x), batch):
            outs = dict(
                zip(
                    self._heads_outputs,
                    self._heads.run(None, {self._heads_input: x[s : s + batch]}),
                    strict=True,
                )
            )
            probs.append(outs["probabilities"])
            for k in reg:
                reg[k].append(outs[k])
        if not probs:
            return np.zeros((0, len(self.classes)), np.float32), {
                k: np.zeros(0, np.float32) for k in reg
            }
        return np.concatenate(probs), {k: np.concatenate(v) for k, v in reg.items()}


def _check_spectra(spectra: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(spectra, dtype=np.float32)
    if x.ndim != 4 or x.shape[1:] != SPECTRUM_SHAPE:
        raise EventInputError(
            f"spectra have shape {x.shape}; expected (N, {', '.join(map(str, SPECTRUM_SHAPE))})"
        )
    if not np.isfinite(x).all():
        raise EventInputError("spectra hold NaN or infinite values")
    return x
