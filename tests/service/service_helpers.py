"""Helpers of the service tests (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from seislens.data.gather_files import write_segy
from seislens.index.bundle import read_manifest
from seislens.index.metadata import MetadataStore

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class Sample:
    """A real gather of the tiny data set, the id of its own model in the tiny
    bundle's library, and the gather written as SEG-Y."""

    family: str
    index: int
    gather: np.ndarray  # (5, 1000, 70) float32
    model: np.ndarray  # (70, 70) float32 m/s
    model_id: int
    segy: bytes


def library_id_of(bundle: Path, model: np.ndarray) -> int:
    """The id of the library item whose stored model is ``model``."""
    entry = read_manifest(bundle).indexes["velocity"]
    folder = bundle / entry.path
    models = np.load(folder / "models.npy", mmap_mode="r").astype(np.float32)
    diff = np.abs(models - model.astype(np.float16).astype(np.float32)).max(axis=(1, 2))
    row = int(diff.argmin())
    assert diff[row] == 0, "the sample's model is not in the library"
    with MetadataStore.open(folder / "items.sqlite") as store:
        records = store.get_many(np.arange(store.count()))
    return next(r.id for r in records if r is not None and r.row == row)


def segy_bytes(gather: np.ndarray, tmp_dir: Path, **kwargs) -> bytes:
    """A gather written by ``write_segy``, as bytes."""
    path = tmp_dir / "gather.sgy"
    write_segy(path, gather, **kwargs)
    return path.read_bytes()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def search(client: TestClient, data: bytes, filename: str = "gather.sgy", **params):
    """POST a gather to /v1/velocity/search."""
    return client.post("/v1/velocity/search", files={"file": (filename, data)}, params=params)


def assert_serves(client: TestClient, sample: Sample) -> None:
    """The service still answers a good query, with the sample's own model first."""
    r = search(client, sample.segy, k=3)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == sample.model_id


def metric_value(client: TestClient, series: str) -> float:
    """One sample's value from /metrics, e.g. 'seislens_uploads_rejected_total{reason="empty"}'
    (0 when absent)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
