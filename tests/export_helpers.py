"""Untrained networks of each branch, exported and written like a trained run's (fast:
no data, no training), for tests of the export, the bundle writer and the pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from seislens.models.manifest import Manifest


def untrained_velocity(seed: int = 0) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A `tiny`-preset velocity network with random weights and its checkpoint dict."""
    from seislens.models.velocity_encoders import build_velocity_clip
    from seislens.models.velocity_preprocess import Preprocessing
    from seislens.training.branch_training import load_config

    over = {"data": {"train": ["unused"]}}
    cfg = load_config("velocity", "tiny", over).model_dump(mode="json")
    torch.manual_seed(seed)
    network = build_velocity_clip(cfg["model"]).eval()
    checkpoint = {
        "config": cfg,
        "preprocessing": Preprocessing().model_dump(),
        "metrics": {},
        "provenance": {"note": f"untrained, seed {seed}"},
    }
    return network, checkpoint


def untrained_events(seed: int = 0) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A `tiny`-preset event network with random weights and its checkpoint dict."""
    from seislens.models.event_encoders import build_event_clip
    from seislens.training.branch_training import load_config

    over = {"data": {"folder": "unused"}}
    cfg = load_config("events", "tiny", over).model_dump(mode="json")
    torch.manual_seed(seed)
    network = build_event_clip(cfg["model"]).eval()
    checkpoint = {"config": cfg, "metrics": {}, "provenance": {"note": f"untrained, seed {seed}"}}
    return network, checkpoint


UNTRAINED = {"velocity": untrained_velocity, "events": untrained_events}


def write_untrained(bundle: Path, branch_name: str, staging: Path, seed: int = 0) -> Manifest:
    """Export an untrained network of ``branch_name`` and write it into ``bundle``."""
    from seislens.index.bundle import write_branch
    from seislens.training.onnx_export import export_network

    staging.mkdir(parents=True, exist_ok=True)
    network, checkpoint = UNTRAINED[branch_name](seed)
    staged = export_network(branch_name, network, checkpoint, staging)
    return write_branch(bundle, staged.branch, staged.section, staged.files)
