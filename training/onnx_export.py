"""Export a trained run's encoders to ONNX, checked against torch: one path for every branch.

For each encoder of a branch (``Branch.encoders`` of :mod:`seislens.models.branches`) the
torch module is exported at ``ONNX_OPSET`` with a dynamic batch axis from a batch of two,
then onnxruntime runs a batch of five and every output must match torch eager to within
``tolerance`` (max absolute difference per output, 1e-4 by default; an output may be
compared in its own units, e.g. the event regression outputs divided by the training
targets' standard deviation). Past it, :class:`ExportError` is raised and nothing is kept.

The result is a :class:`StagedBranch`: the typed manifest section (``VelocitySection``
or ``EventSection`` with one ``EncoderEntry`` per encoder, its ``file`` the
content-addressed ``Branch.encoder_file``) and the exported files in a staging folder.
Writing them into a bundle is the bundle writer's job (``seislens.index.bundle``); the
top layer (``seislens.pipeline``) joins the two.

What differs per branch — which torch modules, example inputs, the section's extra
fields — is a :class:`BranchExport` in :data:`BRANCH_EXPORTS`, keyed by registry name.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.models.branches import Branch, get_branch
from seislens.models.contract import (
    EVENT_CLASSES,
    EVENT_TARGET_UNITS,
    EVENT_TARGETS,
    INFO_FIELDS,
    ONNX_OPSET,
    SAMPLING_RATE_HZ,
    SPECTRUM_SHAPE,
    WINDOW_S,
)
from seislens.models.embedders import choose_providers, sha256_file
from seislens.models.event_encoders import EventHeadsExport, NormalizedInfo, NormalizedSpectrum
from seislens.models.manifest import BranchSection, EncoderEntry
from seislens.models.velocity_encoders import Normalized, SeismicWithHead

EXPORT_BATCH = 2
"""Batch size the graphs are traced with."""

CHECK_BATCH = 5
"""Batch size of the parity check (another size: the batch axis must really be dynamic)."""


class ExportError(RuntimeError):
    """An export whose ONNX outputs do not match torch (or cannot be checked)."""


@dataclass(frozen=True)
class GraphSpec:
    """How one encoder is exported and checked.

    Attributes:
        module: the torch module, in eval mode, that becomes the graph.
        input: the graph's input name.
        outputs: the graph's output names, in the module's return order.
        example: a function ``(batch, seed) -> tensor`` of plausible inputs.
        scales: per output, the divisor of its difference before the tolerance applies
            (outputs not named are compared as they are).
    """

    module: torch.nn.Module
    input: str
    outputs: tuple[str, ...]
    example: Callable[[int, int], torch.Tensor]
    scales: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BranchExport:
    """The per-branch parts of an export.

    Attributes:
        graphs: ``(network, checkpoint) -> {encoder: GraphSpec}`` for every encoder.
        section_fields: ``(network, checkpoint, weights) -> dict`` of the section's
            fields besides ``encoders``, ``parity``, ``exported`` and ``versions``.
    """

    graphs: Callable[[torch.nn.Module, dict[str, Any]], dict[str, GraphSpec]]
    section_fields: Callable[[torch.nn.Module, dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class StagedBranch:
    """A branch exported and checked, not yet in a bundle.

    Attributes:
        branch: the registry branch.
        section: its typed manifest section; ``encoders[name].file`` is where the bundle
            writer puts the file.
        files: encoder name → the exported file in the staging folder.
    """

    branch: Branch
    section: BranchSection
    files: dict[str, Path]


# --------------------------------------------------------------------------- the mechanism


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_names: tuple[str, ...],
) -> None:
    """Export ``module`` (eval mode) to ``path`` at ``ONNX_OPSET``, batch axis dynamic.

    The TorchScript exporter is used: it exports these networks in about a second where
    the dynamo one takes several, with matching graphs (parity ~1e-7 either way).
    """
    module.eval()
    axes = {name: {0: "batch"} for name in (input_name, *output_names)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def check_parity(
    module: torch.nn.Module,
    path: Path,
    example: torch.Tensor,
    output_names: tuple[str, ...],
    tolerance: float,
    scales: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run torch eager and onnxruntime on ``example`` and compare every output.

    Returns:
        ``max_abs_diff`` (worst output, in its units), ``per_output`` diffs,
        ``checked`` (the worst scaled diff, what the tolerance applies to), the
        onnxruntime ``provider`` and the ``batch`` size.

    Raises:
        ExportError: an output of another shape, or a scaled diff past ``tolerance``
            (or not finite); the message names the file, the diff and every output's.
    """
    import onnxruntime as ort

    scales = scales or {}
    with torch.no_grad():
        want = module(example)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    session = ort.InferenceSession(str(path), providers=choose_providers())
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    diffs: dict[str, float] = {}
    worst = 0.0
    for name, w, g in zip(output_names, want, got, strict=True):
        if tuple(g.shape) != tuple(w.shape):
            raise ExportError(
                f"{path.name}: output {name} has shape {g.shape} in onnxruntime, "
                f"{tuple(w.shape)} in torch; bundle not changed"
            )
        diffs[name] = float(np.abs(g - w.numpy()).max())
        worst = max(worst, diffs[name] / scales.get(name, 1.0))
    if not np.isfinite(worst) or worst > tolerance:
        raise ExportError(
            f"{path.name}: onnxruntime differs from torch by {worst:.3g} (> {tolerance:g}; "
            f"per output {diffs}); bundle not changed"
        )
    return {
        "max_abs_diff": max(diffs.values()),
        "per_output": diffs,
        "checked": worst,
        "provider": session.get_providers()[0],
        "batch": int(example.shape[0]),
    }


def export_graph(
    branch: Branch, name: str, spec: GraphSpec, staging: Path, tolerance: float
) -> tuple[EncoderEntry, dict[str, Any], Path]:
    """Export and check one encoder into ``staging``; its entry, parity and file."""
    path = Path(staging) / f"{branch.file_prefix}{name}.onnx"
    export_onnx(spec.module, spec.example(EXPORT_BATCH, 0), path, spec.input, spec.outputs)
    check = spec.example(CHECK_BATCH, 1)
    parity = check_parity(spec.module, path, check, spec.outputs, tolerance, spec.scales)
    sha = sha256_file(path)
    entry = EncoderEntry(
        file=branch.encoder_file(name, sha),
        sha256=sha,
        bytes=path.stat().st_size,
        input_shape=["batch", *check.shape[1:]],
        input=spec.input,
        outputs=list(spec.outputs),
    )
    return entry, parity, path


def export_network(
    branch_name: str,
    network: torch.nn.Module,
    checkpoint: dict[str, Any],
    staging: Path,
    tolerance: float = 1e-4,
    weights: str = "last",
) -> StagedBranch:
    """Export every encoder of a trained network of ``branch_name`` into ``staging``.

    Args:
        branch_name: a registry name (``velocity``, ``events``).
        network: the trained network (eval mode) of that branch.
        checkpoint: its run's checkpoint dict (config, preprocessing, metrics, ...).
        staging: an existing folder for the exported files.
        tolerance: the largest allowed scaled |onnxruntime - torch| (module docstring).
        weights: which weights the network holds ("best" or "last"), recorded.

    Raises:
        ExportError: a graph failed its parity check (the staged files are removed).
    """
    branch = get_branch(branch_name)
    parts = BRANCH_EXPORTS[branch.name]
    graphs = parts.graphs(network, checkpoint)
    if tuple(graphs) != branch.encoders:
        raise ExportError(f"{branch.name} export makes {tuple(graphs)}; expected {branch.encoders}")
    encoders: dict[str, EncoderEntry] = {}
    parity: dict[str, Any] = {}
    files: dict[str, Path] = {}
    try:
        for name, spec in graphs.items():
            encoders[name], parity[name], files[name] = export_graph(
                branch, name, spec, staging, tolerance
            )
    except BaseException:
        for path in Path(staging).glob("*.onnx"):
            path.unlink(missing_ok=True)
        raise
    section = branch.section.model_validate(
        {
            **parts.section_fields(network, checkpoint, weights),
            "encoders": encoders,
            "parity": parity,
            "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": {"torch": torch.__version__, "onnx_opset": ONNX_OPSET},
        }
    )
    return StagedBranch(branch, section, files)


def export_run(
    branch_name: str, run: Path, staging: Path, tolerance: float = 1e-4, which: str = "best"
) -> StagedBranch:
    """Load the run folder ``run`` of ``branch_name`` and export it (see export_network).

    Args:
        which: "best" (validation-selected, where the run has such weights) or "last".

    Raises:
        RunError: no checkpoint in ``run``, or a run of another branch.
    """
    from seislens.training.branch_training import load_run

    trained = load_run(Path(run), which, branch=get_branch(branch_name).name)
    return export_network(
        branch_name, trained.network, trained.checkpoint, staging, tolerance, trained.weights
    )


# --------------------------------------------------------------------------- velocity


def _velocity_graphs(network: Any, checkpoint: dict[str, Any]) -> dict[str, GraphSpec]:
    """Seismic (B, shots, time, receivers), velocity (B, 1, n, n) in [-1, 1] and
    descriptor (B, 9) inputs; each graph returns L2-normalised ``embedding`` (B, D), and
    with a descriptor head the seismic graph also ``descriptor_mean`` and
    ``descriptor_log_var`` (B, 9) in standardised descriptor units."""
    model_cfg = checkpoint["config"]["model"]
    s, v = model_cfg["seismic"], model_cfg["velocity"]
    shapes = {
        "seismic": (s["shots"], s["time_samples"], s["receivers"]),
        "velocity": (1, v["size"], v["size"]),
        "descriptor": (model_cfg["descriptor"]["n_descriptors"],),
    }

    def example(shape: tuple[int, ...], bounded: bool) -> Callable[[int, int], torch.Tensor]:
        def make(batch: int, seed: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(seed)
            if bounded:
                return torch.rand((batch, *shape), generator=g) * 2 - 1
            return torch.randn((batch, *shape), generator=g)

        return make

    graphs = {
        name: GraphSpec(
            Normalized(getattr(network, name)).eval(),
            "input",
            ("embedding",),
            example(shape, bounded=name == "velocity"),
        )
        for name, shape in shapes.items()
    }
    if network.head is not None:  # the seismic graph also predicts the descriptors
        graphs["seismic"] = GraphSpec(
            SeismicWithHead(network.seismic, network.head).eval(),
            "input",
            ("embedding", "descriptor_mean", "descriptor_log_var"),
            example(shapes["seismic"], bounded=False),
        )
    return graphs


def _velocity_fields(network: Any, checkpoint: dict[str, Any], weights: str) -> dict[str, Any]:
    cfg = checkpoint["config"]
    return {
        "embed_dim": cfg["model"]["embed_dim"],
        "preprocessing": checkpoint["preprocessing"],
        "training": cfg,
        "training_metrics": checkpoint["metrics"],
        "provenance": checkpoint["provenance"],
    }


# --------------------------------------------------------------------------- events


def _event_graphs(network: Any, checkpoint: dict[str, Any]) -> dict[str, GraphSpec]:
    """Spectrum (B, 3, 50, 120) → ``embedding``; info (B, 8) raw fields → ``embedding``;
    spectrum → heads (logits, probabilities (B, 4), distance km, depth km, magnitude);
    the regression outputs are compared in units of the training targets' std."""
    info_scales = network.info.scales

    def spectra(batch: int, seed: int) -> torch.Tensor:
        # non-negative, skewed to small values, like real spectra
        g = torch.Generator().manual_seed(seed)
        return torch.rand((batch, *SPECTRUM_SHAPE), generator=g) ** 3

    def info(batch: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand((batch, len(INFO_FIELDS)), generator=g) * info_scales

    std = network.target_std.tolist()
    scales = {name: max(float(s), 1e-6) for name, s in zip(EVENT_TARGETS, std, strict=True)}
    embedding = ("embedding",)
    return {
        "spectrum": GraphSpec(NormalizedSpectrum(network).eval(), "spectrum", embedding, spectra),
        "info": GraphSpec(NormalizedInfo(network).eval(), "info", embedding, info),
        "heads": GraphSpec(
            EventHeadsExport(network).eval(), "spectrum", EventHeadsExport.OUTPUTS, spectra, scales
        ),
    }


def _event_fields(network: Any, checkpoint: dict[str, Any], weights: str) -> dict[str, Any]:
    cfg = checkpoint["config"]
    best = checkpoint.get("best") or {}
    return {
        "embed_dim": cfg["model"]["embed_dim"],
        "preprocessing": cfg["preprocess"],
        "classes": list(EVENT_CLASSES),
        "targets": dict(EVENT_TARGET_UNITS),
        "regression_outputs": list(EVENT_TARGETS),
        "info_fields": list(INFO_FIELDS),
        "window": {
            "seconds": WINDOW_S,
            "sampling_rate_hz": SAMPLING_RATE_HZ,
            "spectrum_shape": list(SPECTRUM_SHAPE),
        },
        "training": cfg,
        "training_metrics": {
            "weights": weights,
            "best_epoch": best.get("epoch"),
            "best": best.get("metrics"),
            "last": checkpoint["metrics"],
        },
        "provenance": checkpoint["provenance"],
    }


BRANCH_EXPORTS: dict[str, BranchExport] = {
    "velocity": BranchExport(_velocity_graphs, _velocity_fields),
    "events": BranchExport(_event_graphs, _event_fields),
}
"""The per-branch parts of the export, by registry name (every branch has one)."""
