"""Export a trained event run to ONNX into an existing bundle, checked against torch.

Three graphs, each with a dynamic batch axis:

* ``encoders/event_spectrum.onnx`` — ``spectrum`` (B, 3, 50, 120) → ``embedding`` (B, 256),
  L2-normalised;
* ``encoders/event_info.onnx`` — ``info`` (B, 8) raw info fields (``INFO_FIELDS`` order,
  unscaled) → ``embedding`` (B, 256), L2-normalised;
* ``encoders/event_heads.onnx`` — ``spectrum`` → ``logits`` (B, 4), ``probabilities``
  (B, 4, ``CLASSES`` order), ``distance`` (km), ``depth`` (km), ``magnitude`` (B,) each,
  the de-standardisation folded into the graph.

Each graph is exported from a batch of two and then run by onnxruntime on a batch of
five: every output must match torch to within ``tolerance`` (1e-4; the regression outputs
are compared in standardised units, i.e. their difference divided by the training
targets' standard deviation), or nothing is written. The new files are written beside
the old ones under temporary names, checked, moved into place, and then the manifest's
``events`` section is switched in one atomic write. A bundle without a manifest gets a
minimal one. An ``events`` index built with another spectrum encoder stays in the
manifest and is refused on load until rebuilt (``seislens index build-events``).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.index.bundle import MANIFEST, SCHEMA_VERSION, read_manifest, write_manifest
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGET_UNITS as TARGET_UNITS
from seislens.models.contract import EVENT_TARGETS as TARGETS
from seislens.models.contract import INFO_FIELDS, SAMPLING_RATE_HZ, SPECTRUM_SHAPE, WINDOW_S
from seislens.models.contract import ONNX_OPSET as OPSET
from seislens.models.embedders import choose_providers, sha256_file
from seislens.models.event_encoders import EventHeadsExport, NormalizedInfo, NormalizedSpectrum
from seislens.training.event_train import load_event_run

from seislens import __version__

FILES = {
    "spectrum": "encoders/event_spectrum.onnx",
    "info": "encoders/event_info.onnx",
    "heads": "encoders/event_heads.onnx",
}


class EventExportError(RuntimeError):
    """An export whose ONNX outputs do not match torch."""


def _export(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_names: tuple[str, ...],
) -> None:
    """TorchScript-exporter ONNX of ``module`` with a dynamic batch axis everywhere."""
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
            opset_version=OPSET,
            dynamo=False,
        )


def _parity(
    module: torch.nn.Module,
    path: Path,
    example: torch.Tensor,
    output_names: tuple[str, ...],
    scales: dict[str, float],
    tolerance: float,
) -> dict[str, Any]:
    """Run torch and onnxruntime on ``example``; raise past ``tolerance``."""
    import onnxruntime as ort

    with torch.no_grad():
        want = module(example)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    session = ort.InferenceSession(str(path), providers=choose_providers())
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    diffs: dict[str, float] = {}
    worst = 0.0
    for name, w, g in zip(output_names, want, got, strict=True):
        if tuple(g.shape) != tuple(w.shape):
            raise EventExportError(
                f"{path.name}: output {name} has shape {g.shape} in onnxruntime, {tuple(w.shape)}"
                " in torch; bundle not changed"
            )
        diff = float(np.abs(g - w.numpy()).max())
        diffs[name] = diff
        worst = max(worst, diff / scales.get(name, 1.0))
    if not np.isfinite(worst) or worst > tolerance:
        raise EventExportError(
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


def _examples(batch: int, seed: int, scales: torch.Tensor) -> dict[str, torch.Tensor]:
    """Plausible inputs: non-negative spectra skewed to small values, info in range."""
    g = torch.Generator().manual_seed(seed)
    spectra = torch.rand((batch, *SPECTRUM_SHAPE), generator=g) ** 3
    info = torch.rand((batch, len(INFO_FIELDS)), generator=g) * scales
    return {"spectrum": spectra, "info": info, "heads": spectra}


def _minimal_manifest(bundle: Path) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": bundle.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seislens_version": __version__,
        "indexes": {},
    }


def export_event_branch(
    run: Path, bundle: Path, tolerance: float = 1e-4, which: str = "best"
) -> dict[str, Any]:
    """Export an event run into ``bundle`` (created if missing); returns the manifest's
    new ``events`` section.

    Args:
        run: a training run folder (``seislens train events``).
        bundle: the bundle folder; its velocity branch and indexes are kept.
        tolerance: the largest allowed |onnxruntime - torch| (see the module docstring).
        which: "best" (validation-selected) or "last" weights.
    """
    model, state = load_event_run(run, which)
    cfg = state["config"]
    bundle = Path(bundle)
    if (bundle / MANIFEST).exists():
        read_manifest(bundle)  # refuse a foreign or newer bundle before writing anything
    (bundle / "encoders").mkdir(parents=True, exist_ok=True)
    modules: dict[str, tuple[torch.nn.Module, str, tuple[str, ...]]] = {
        "spectrum": (NormalizedSpectrum(model).eval(), "spectrum", ("embedding",)),
        "info": (NormalizedInfo(model).eval(), "info", ("embedding",)),
        "heads": (EventHeadsExport(model).eval(), "spectrum", EventHeadsExport.OUTPUTS),
    }
    std = model.target_std.tolist()
    scales = {name: max(float(s), 1e-6) for name, s in zip(TARGETS, std, strict=True)}
    export_ex = _examples(2, 0, model.info.scales)
    check_ex = _examples(5, 1, model.info.scales)
    tag = f".tmp-{os.getpid()}"
    written: list[Path] = []
    encoders: dict[str, Any] = {}
    parity: dict[str, Any] = {}
    try:
        for key, (module, input_name, outputs) in modules.items():
            tmp = bundle / (FILES[key] + tag)
            written.append(tmp)
            _export(module, export_ex[key], tmp, input_name, outputs)
            parity[key] = _parity(module, tmp, check_ex[key], outputs, scales, tolerance)
            encoders[key] = {
                "file": FILES[key],
                "sha256": sha256_file(tmp),
                "input": input_name,
                "input_shape": ["batch", *check_ex[key].shape[1:]],
                "outputs": list(outputs),
                "bytes": tmp.stat().st_size,
            }
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for key in modules:
        os.replace(bundle / (FILES[key] + tag), bundle / FILES[key])
    best = state.get("best") or {}
    section = {
        "embed_dim": cfg["model"]["embed_dim"],
        "encoders": encoders,
        "parity": parity,
        "preprocessing": cfg["preprocess"],
        "classes": list(CLASSES),
        "targets": dict(TARGET_UNITS),
        "regression_outputs": list(TARGETS),
        "info_fields": list(INFO_FIELDS),
        "window": {
            "seconds": WINDOW_S,
            "sampling_rate_hz": SAMPLING_RATE_HZ,
            "spectrum_shape": list(SPECTRUM_SHAPE),
        },
        "training": cfg,
        "training_metrics": {
            "weights": "best" if (which == "best" and best) else "last",
            "best_epoch": best.get("epoch"),
            "best": best.get("metrics"),
            "last": state["metrics"],
        },
        "provenance": state["provenance"],
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "onnx_opset": OPSET},
    }
    manifest = read_manifest(bundle) if (bundle / MANIFEST).exists() else _minimal_manifest(bundle)
    manifest["events"] = section
    manifest.setdefault("indexes", {})
    write_manifest(bundle, manifest)
    return section
