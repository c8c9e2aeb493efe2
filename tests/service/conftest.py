"""Service fixtures, on the committed serving fixture (tests/fixtures/serving: a tiny
bundle with both branches and one gather; rebuilt by build_serving_fixture.py), so the
API tests need neither torch nor deepwave: a TestClient on the velocity-only bundle, a
real gather with its own library id, and a client on the bundle with an event branch."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fixture_types import EventBundle
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.index.bundle import read_manifest, write_manifest
from seislens.models.branches import EVENTS
from seislens.service.app import create_app
from seislens.service.settings import Settings
from service_helpers import ADMIN_TOKEN, Sample, library_id_of, segy_bytes

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "serving"
FIXTURE_EVENTS = EventSynthConfig(count=60, seed=3)
"""The synthetic traces the fixture's events index was built over (regenerated here:
the generator is deterministic)."""


@pytest.fixture(scope="session")
def serving_fixture(tmp_path_factory) -> Path:
    """A session copy of the committed fixture (tests never write into the repository)."""
    copy = tmp_path_factory.mktemp("fixture") / "serving"
    shutil.copytree(FIXTURE, copy)
    return copy


@pytest.fixture(scope="session")
def tiny_bundle(serving_fixture, tmp_path_factory) -> Path:
    """The fixture bundle without its event branch: the velocity-only bundle."""
    bundle = tmp_path_factory.mktemp("velocity-only") / "tiny"
    shutil.copytree(serving_fixture / "bundle", bundle)
    manifest = read_manifest(bundle)
    for entry in manifest.events.encoders.values():
        (bundle / entry.file).unlink()
    shutil.rmtree(bundle / manifest.indexes[EVENTS.index_name].path)
    indexes = {k: v for k, v in manifest.indexes.items() if k != EVENTS.index_name}
    write_manifest(
        bundle, manifest.with_section(EVENTS.name, None).model_copy(update={"indexes": indexes})
    )
    return bundle


@pytest.fixture(scope="session")
def tiny_event_bundle(serving_fixture, tmp_path_factory) -> EventBundle:
    """The fixture bundle with both branches and the SeisBench-format traces it indexes."""
    root = tmp_path_factory.mktemp("fixture-events")
    events = generate_events(root / "events", FIXTURE_EVENTS, progress=False)
    return EventBundle(bundle=serving_fixture / "bundle", events=events)


@pytest.fixture(scope="session")
def sample(tiny_bundle, serving_fixture, tmp_path_factory) -> Sample:
    """The fixture's flatvel-a gather, whose own velocity model is its top-1 by a clear
    margin (chosen by build_serving_fixture.py with the bundle's embedder)."""
    stored = np.load(serving_fixture / "velocity_sample.npz")
    gather = stored["gather"]
    velocity_model = stored["velocity_model"]
    return Sample(
        family=str(stored["family"]),
        index=int(stored["index"]),
        gather=gather,
        model=velocity_model,
        model_id=library_id_of(tiny_bundle, velocity_model),
        segy=segy_bytes(gather, tmp_path_factory.mktemp("sample")),
    )


@pytest.fixture(scope="session")
def settings(tiny_bundle) -> Settings:
    """Settings of the shared client: the tiny bundle, an admin token, one ONNX thread."""
    return Settings(bundle=tiny_bundle, admin_token=ADMIN_TOKEN, onnx_threads=1, prefer_gpu=False)


@pytest.fixture(scope="session")
def client(settings) -> Iterator[TestClient]:
    """A client of one app shared by tests that do not change its bundle."""
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def make_client(settings) -> Iterator[Callable[..., TestClient]]:
    """A factory of fresh clients (own app, own state) with settings overridden."""
    opened: list[TestClient] = []

    def make(**overrides) -> TestClient:
        c = TestClient(create_app(settings.model_copy(update=overrides)))
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


# --------------------------------------------------------------------------- events


@pytest.fixture(scope="session")
def event_settings(settings, tiny_event_bundle) -> Settings:
    """The shared settings, on the bundle with an event branch."""
    return settings.model_copy(update={"bundle": tiny_event_bundle.bundle})


@pytest.fixture(scope="session")
def event_client(event_settings) -> Iterator[TestClient]:
    """A client of one app on the bundle with an event branch, shared by tests that do
    not change its bundle."""
    with TestClient(create_app(event_settings)) as c:
        yield c
