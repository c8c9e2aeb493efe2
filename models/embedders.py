"""ONNX Runtime embedders (no torch): what the service and the evaluation run.

An :class:`OnnxEncoder` wraps one exported encoder; :class:`VelocityEmbedder` applies
the bundle's NumPy preprocessing and then the three velocity-branch encoders.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from seislens.models.manifest import BranchSection
from seislens.models.velocity_preprocess import (
    Preprocessing,
    descriptor_features,
    gather_features,
    velocity_features,
)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def choose_providers(prefer_gpu: bool = True) -> list[str]:
    """CUDA first when onnxruntime offers it (and it is wanted), CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = []
    if prefer_gpu and "CUDAExecutionProvider" in available:
        chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxEncoder:
    """One ONNX encoder: (B, ...) float32 inputs → (B, D) L2-normalised embeddings.

    Args:
        path: the .onnx file.
        providers: execution providers in order of preference (see choose_providers).
        threads: intra-op threads (0 lets onnxruntime decide).
    """

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle worker threads must not spin between runs: it slows what runs next
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(self.path), opts, providers=providers or choose_providers()
        )
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    @property
    def provider(self) -> str:
        """The execution provider that really runs this session."""
        return self.session.get_providers()[0]

    @property
    def output_names(self) -> list[str]:
        """The graph's outputs, in order (the first is what ``__call__`` returns)."""
        return [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """(B, ...) inputs → the first output, e.g. (B, D) embeddings."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        outs = [
            self.session.run(None, {self.input_name: x[s : s + batch]})[0]
            for s in range(0, len(x), batch)
        ]
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    def outputs(self, x: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
        """(B, ...) inputs → every output by name, each concatenated over batches
        (an empty input gives an empty dict)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for s in range(0, len(x), batch):
            values = self.session.run(None, {self.input_name: x[s : s + batch]})
            for name, value in zip(parts, values, strict=True):
                parts[name].append(value)
        return {k: np.concatenate(v) for k, v in parts.items() if v}


class BranchEmbedder:
    """Every ONNX graph of one branch section, opened once (``graphs``, by encoder name).

    Each branch's embedder extends this with its preprocessing and embedding methods;
    the registry (:mod:`seislens.models.branches`) builds it as
    ``cls(root, section, providers, threads)``.

    Args:
        root: the bundle directory.
        section: the branch's manifest section (encoder files, embedding size).
        providers: execution providers (see :func:`choose_providers`); threads:
            intra-op threads per session (0 lets onnxruntime decide).
    """

    def __init__(
        self,
        root: Path,
        section: BranchSection,
        providers: list[str] | None = None,
        threads: int = 0,
    ):
        providers = providers or choose_providers()
        self.embed_dim = section.embed_dim
        self.graphs = {
            name: OnnxEncoder(Path(root) / entry.file, providers, threads)
            for name, entry in section.encoders.items()
        }
        self._configure(section)

    def _configure(self, section: BranchSection) -> None:
        """The branch's own set-up from its section (preprocessing, named graphs)."""

    @property
    def provider(self) -> str:
        """The execution provider that really runs the branch's first graph."""
        return next(iter(self.graphs.values())).provider


#: The seismic graph's extra outputs when the network has a descriptor head, in
#: standardised descriptor units.
HEAD_OUTPUTS: tuple[str, str] = ("descriptor_mean", "descriptor_log_var")


class VelocityEmbedder(BranchEmbedder):
    """The velocity branch of a bundle: preprocessing + three ONNX encoders.

    Args: as :class:`BranchEmbedder`, with the manifest's ``velocity`` section.
    """

    def _configure(self, section: BranchSection) -> None:
        self.pre = Preprocessing.model_validate(section.preprocessing)
        self.seismic = self.graphs["seismic"]
        self.velocity = self.graphs["velocity"]
        self.descriptor = self.graphs["descriptor"]

    def embed_gathers(self, gathers: np.ndarray) -> np.ndarray:
        """Raw (N, 5, 1000, 70) gathers (any scale or polarity) → (N, D)."""
        return self.seismic(gather_features(gathers, self.pre.gather))

    @property
    def has_descriptor_head(self) -> bool:
        """Whether the seismic graph also predicts descriptors (a descriptor head)."""
        return HEAD_OUTPUTS[0] in self.seismic.output_names

    def embed_gathers_with_head(
        self, gathers: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Raw (N, 5, 1000, 70) gathers → (N, D) embeddings and, with a descriptor head,
        the predicted descriptors' mean and standard deviation (N, 9) in their own units
        (see ``seislens.models.descriptors``); (embeddings, None, None) without one."""
        feats = gather_features(gathers, self.pre.gather)
        if not self.has_descriptor_head:
            return self.seismic(feats), None, None
        out = self.seismic.outputs(feats)
        d = self.pre.descriptors
        mean = out[HEAD_OUTPUTS[0]] * np.asarray(d.std) + np.asarray(d.mean)
        std = np.exp(0.5 * out[HEAD_OUTPUTS[1]]) * np.asarray(d.std)
        return out["embedding"], mean.astype(np.float32), std.astype(np.float32)

    def embed_velocity_models(self, models: np.ndarray) -> np.ndarray:
        """(N, 70, 70) velocity models in m/s → (N, D)."""
        return self.velocity(velocity_features(models, self.pre.velocity))

    def embed_descriptors(self, desc: np.ndarray) -> np.ndarray:
        """(N, 9) physical descriptors → (N, D)."""
        return self.descriptor(descriptor_features(desc, self.pre.descriptors))
