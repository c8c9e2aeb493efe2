"""Service fixtures: a TestClient on the tiny bundle and a real gather with its own id;
a client on the tiny bundle with an event branch (``tiny_event_bundle``, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seislens.data.openfwi import OpenFWIDataset
from seislens.index.bundle import read_manifest
from seislens.models.embedders import VelocityEmbedder
from seislens.service.app import create_app
from seislens.service.settings import Settings
from service_helpers import ADMIN_TOKEN, Sample, library_id_of, segy_bytes


@pytest.fixture(scope="session")
def sample(tiny_bundle, tiny_velocity_data, tmp_path_factory) -> Sample:
    """A flatvel-a gather whose own model is its top-1 by a clear margin (chosen with the
    bundle's embedder on the raw array, so the tests check the upload path end to end)."""
    manifest = read_manifest(tiny_bundle)
    embedder = VelocityEmbedder(tiny_bundle, manifest.velocity, threads=1)
    dataset = OpenFWIDataset(tiny_velocity_data / "flatvel-a")
    gathers = np.stack([dataset.gather(i) for i in range(len(dataset))])
    models = np.stack([dataset.model(i) for i in range(len(dataset))])
    sims = embedder.embed_gathers(gathers) @ embedder.embed_models(models).T
    ranked = np.sort(sims, axis=1)
    margin = np.where(
        sims.argmax(axis=1) == np.arange(len(sims)), ranked[:, -1] - ranked[:, -2], -1
    )
    best = int(margin.argmax())
    assert margin[best] > 0, "no gather of the tiny set retrieves its own model"
    tmp = tmp_path_factory.mktemp("sample")
    return Sample(
        family="flatvel-a",
        index=best,
        gather=gathers[best],
        model=models[best],
        model_id=library_id_of(tiny_bundle, models[best]),
        segy=segy_bytes(gathers[best], tmp),
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
