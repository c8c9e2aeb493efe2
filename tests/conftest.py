"""Shared fixtures. Tests never touch the network; datasets and models are tiny and
generated here, once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_FAMILIES = ("flatvel-a", "curvefault-b")
TINY_COUNT = 12


@pytest.fixture(scope="session")
def tiny_velocity_data(tmp_path_factory) -> Path:
    """Two families × 12 generated OpenFWI samples (parent folder)."""
    pytest.importorskip("deepwave")
    from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset

    root = tmp_path_factory.mktemp("velocity-data")
    for fam in TINY_FAMILIES:
        cfg = VelocityGenConfig(family=fam, count=TINY_COUNT, seed=11, shard_size=6, workers=1)
        generate_velocity_dataset(root / fam, cfg, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_velocity_data, tmp_path_factory) -> Path:
    """A run of the `tiny` preset on the tiny data."""
    from seislens.training.velocity_config import load_config
    from seislens.training.velocity_train import train_velocity

    run = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config("tiny", {"data": {"train": [str(tiny_velocity_data)]}})
    train_velocity(cfg, run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tiny_velocity_data, tmp_path_factory) -> Path:
    """The tiny run exported and indexed over its own training models."""
    from seislens.index.library import build_velocity_index
    from seislens.training.export import export_velocity_bundle

    bundle = tmp_path_factory.mktemp("bundles") / "tiny"
    export_velocity_bundle(tiny_run, bundle)
    build_velocity_index(bundle, [tiny_velocity_data], progress=False)
    return bundle
