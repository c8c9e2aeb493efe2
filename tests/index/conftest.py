"""Index fixtures: writable copies of the tiny bundle, and an event bundle with the
SeisBench-format library it indexes (two tiny event runs, so two spectrum encoders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FAST = {"clip": {"epochs": 1}, "finetune": {"epochs": 1}}


@pytest.fixture
def velocity_bundle(tiny_bundle, tmp_path) -> Path:
    """A writable copy of the tiny bundle (velocity branch, indexed over its 24 models)."""
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """40 synthetic SeisBench-format traces (32 train, 4 dev, 4 test; 8 train per class)."""
    from seislens.data.event_synth import EventSynthConfig, generate_events

    folder = tmp_path_factory.mktemp("events") / "lib"
    return generate_events(folder, EventSynthConfig(count=40, seed=9), progress=False)


@pytest.fixture(scope="module")
def event_runs(events, tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny event runs with different seeds (so different spectrum encoders)."""
    torch = pytest.importorskip("torch")
    from seislens.training.branch_training import load_config, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        over = {"data": {"folder": str(events)}, "seed": seed, **FAST}
        cfg = load_config("events", "tiny", over)
        train(cfg, root / f"r{seed}", progress=False, cache_dir=root / "cache")
        out.append(root / f"r{seed}")
    return out[0], out[1]


@pytest.fixture
def event_bundle(event_runs, untrained_velocity_bundle, tmp_path) -> Path:
    """A bundle with the event branch of the first run (no events index) beside an
    untrained velocity branch (a bundle needs one)."""
    from seislens.pipeline import export_to_bundle

    path = tmp_path / "event-bundle"
    shutil.copytree(untrained_velocity_bundle, path)
    export_to_bundle("events", event_runs[0], path)
    return path
