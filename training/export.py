"""Export trained encoders to ONNX, check them against torch, write the bundle.

Each encoder is exported with its L2 normalisation, a dynamic batch axis and a batch
of two; onnxruntime then runs a batch of another size and must match torch to within
``tolerance`` (1e-4 by default), or nothing is written. The bundle is assembled in a
temporary directory beside its destination and moved into place when complete.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.index.bundle import SCHEMA_VERSION, read_manifest, replace_dir, write_manifest
from seislens.models.contract import ONNX_OPSET as OPSET
from seislens.models.embedders import OnnxEncoder, choose_providers, sha256_file
from seislens.models.velocity_encoders import Normalized
from seislens.training.velocity_train import load_run

from seislens import __version__


class ExportError(RuntimeError):
    """An export whose ONNX output does not match torch."""


def export_onnx(
    module: torch.nn.Module, example: torch.Tensor, path: Path, dynamo: bool = False
) -> None:
    """Export ``module`` (eval mode) to ``path`` with a dynamic batch axis.

    Both of torch 2.13's exporters give matching graphs (parity ~1e-7 either way); the
    TorchScript one is the default as it exports these CNNs in under a second where the
    dynamo one takes about five.
    """
    module.eval()
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=65536)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            opset_version=18,
        )
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def check_parity(
    module: torch.nn.Module, path: Path, example: torch.Tensor, tolerance: float
) -> dict[str, Any]:
    """Run torch and onnxruntime on ``example``; raise ExportError past ``tolerance``."""
    with torch.no_grad():
        want = module(example).numpy()
    enc = OnnxEncoder(path, choose_providers())
    got = enc(example.numpy())
    diff = float(np.abs(got - want).max())
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(
            f"{path.name}: onnxruntime differs from torch by {diff:.3g} (> {tolerance:g}); "
            "bundle not written"
        )
    return {"max_abs_diff": diff, "provider": enc.provider, "batch": int(example.shape[0])}


def _examples(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s, v = cfg["model"]["seismic"], cfg["model"]["velocity"]
    return {
        "seismic": torch.randn((batch, s["shots"], s["time_samples"], s["receivers"]), generator=g),
        "velocity": torch.rand((batch, 1, v["size"], v["size"]), generator=g) * 2 - 1,
        "descriptor": torch.randn(
            (batch, cfg["model"]["descriptor"]["n_descriptors"]), generator=g
        ),
    }


def export_velocity_bundle(
    run: Path, out: Path, tolerance: float = 1e-4, name: str | None = None
) -> dict[str, Any]:
    """Export a velocity run into a fresh bundle at ``out``; returns the manifest."""
    model, state = load_run(run)
    cfg = state["config"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.export-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "encoders").mkdir(parents=True)
    try:
        encoders, parity = {}, {}
        export_ex = _examples(cfg, 2, 0)
        check_ex = _examples(cfg, 5, 1)
        for key, module in (
            ("seismic", model.seismic),
            ("velocity", model.velocity),
            ("descriptor", model.descriptor),
        ):
            wrapped = Normalized(module).eval()
            path = tmp / "encoders" / f"{key}.onnx"
            export_onnx(wrapped, export_ex[key], path)
            parity[key] = check_parity(wrapped, path, check_ex[key], tolerance)
            encoders[key] = {
                "file": f"encoders/{key}.onnx",
                "sha256": sha256_file(path),
                "input_shape": ["batch", *check_ex[key].shape[1:]],
                "bytes": path.stat().st_size,
            }
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name or out.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seislens_version": __version__,
            "versions": {"torch": torch.__version__, "onnx_opset": OPSET},
            "velocity": {
                "embed_dim": cfg["model"]["embed_dim"],
                "encoders": encoders,
                "parity": parity,
                "preprocessing": state["preprocessing"],
                "training": cfg,
                "training_metrics": state["metrics"],
                "provenance": state["provenance"],
            },
            "indexes": {},
        }
        _carry_events(out, manifest, tmp)
        write_manifest(tmp, manifest)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _carry_events(out: Path, manifest: dict[str, Any], tmp: Path) -> None:
    """Keep an existing bundle's event branch (encoders and index) across a re-export."""
    if not (out / "manifest.json").exists():
        return
    old = read_manifest(out)
    if "events" not in old:
        return
    manifest["events"] = old["events"]
    for entry in old["events"].get("encoders", {}).values():
        src = out / entry["file"]
        (tmp / entry["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, tmp / entry["file"])
    for key, entry in old.get("indexes", {}).items():
        if entry.get("branch") == "events":
            manifest["indexes"][key] = entry
            shutil.copytree(out / entry["path"], tmp / entry["path"])
