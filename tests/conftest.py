"""Shared fixtures. Tests never touch the network; datasets and models are tiny and
generated here, once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fixture_types import EventBundle

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_FAMILIES = ("flatvel-a", "curvefault-b")
TINY_COUNT = 12


@pytest.fixture(scope="session")
def tiny_velocity_data(tmp_path_factory) -> Path:
    """Two families × 12 generated OpenFWI samples (parent folder), randomised physics."""
    pytest.importorskip("deepwave")
    from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset
    from seislens.data.velocity_physics import PhysicsRanges

    root = tmp_path_factory.mktemp("velocity-data")
    for fam in TINY_FAMILIES:
        cfg = VelocityGenConfig(
            family=fam,
            count=TINY_COUNT,
            seed=11,
            shard_size=6,
            workers=1,
            physics=PhysicsRanges(),
        )
        generate_velocity_dataset(root / fam, cfg, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_velocity_data, tmp_path_factory) -> Path:
    """A run of the `tiny` preset on the tiny data."""
    from seislens.training.branch_training import load_config, train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config("velocity", "tiny", {"data": {"train": [str(tiny_velocity_data)]}})
    train(cfg, run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tiny_velocity_data, tmp_path_factory) -> Path:
    """The tiny run exported and indexed over its own training models."""
    from seislens.index.builder import build
    from seislens.models.branches import VELOCITY

    from seislens.pipeline import export_to_bundle

    bundle = tmp_path_factory.mktemp("bundles") / "tiny"
    export_to_bundle(VELOCITY.name, tiny_run, bundle)
    build(bundle, VELOCITY, [tiny_velocity_data], progress=False)
    return bundle


@pytest.fixture(scope="session")
def tiny_event_bundle(tiny_bundle, tmp_path_factory) -> EventBundle:
    """A copy of the tiny bundle with an event branch: 60 synthetic SeisBench-format
    traces, the `tiny` events preset trained one epoch per stage, exported with its
    parity check and indexed over the 48 training traces."""
    torch = pytest.importorskip("torch")
    from seislens.data.event_synth import EventSynthConfig, generate_events
    from seislens.index.builder import build
    from seislens.models.branches import EVENTS
    from seislens.training.branch_training import load_config, train

    from seislens.pipeline import export_to_bundle

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("event-service")
    events = generate_events(root / "events", EventSynthConfig(count=60, seed=3), progress=False)
    cfg = load_config(
        "events",
        "tiny",
        {"data": {"folder": str(events)}, "clip": {"epochs": 1}, "finetune": {"epochs": 1}},
    )
    train(cfg, root / "run", progress=False)
    bundle = root / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    export_to_bundle(EVENTS.name, root / "run", bundle)
    build(bundle, EVENTS, [events], progress=False)
    return EventBundle(bundle=bundle, events=events)


@pytest.fixture(scope="session")
def untrained_velocity_bundle(tmp_path_factory) -> Path:
    """A bundle with only a velocity section, from an untrained `tiny` network (no data,
    no training, no index): the base of event-branch bundles in tests, as a bundle
    without its required velocity branch is refused."""
    pytest.importorskip("torch")
    from export_helpers import write_untrained

    root = tmp_path_factory.mktemp("untrained")
    write_untrained(root / "bundle", "velocity", root / "staging")
    return root / "bundle"
