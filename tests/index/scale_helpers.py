"""Helpers of the scaling tests: a small velocity library made from the fixture
bundle's own models, and index comparisons."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import VELOCITY

FIXTURE_BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "serving" / "bundle"
"""The committed serving fixture bundle (velocity and event branches, 24 models)."""


def fixture_copy(dst: Path) -> Path:
    """A writable copy of the committed serving fixture bundle at ``dst``."""
    shutil.copytree(FIXTURE_BUNDLE, dst)
    return dst


def make_library(bundle: Path, root: Path, repeats: int = 2) -> Path:
    """Two OpenFWI-style family folders (``model1.npy``) holding the bundle's indexed
    models, each repeated ``repeats`` times with a small per-copy offset (m/s) so that
    no two items are equal; the library folder."""
    entry = read_manifest(bundle).indexes["velocity"]
    models = np.load(bundle / entry.path / "models.npy").astype(np.float32)
    half = len(models) // 2
    for fam, part in (("flatvel-a", models[:half]), ("curvefault-b", models[half:])):
        folder = root / fam
        folder.mkdir(parents=True)
        copies = [part + 7.0 * r for r in range(repeats)]
        np.save(folder / "model1.npy", np.concatenate(copies))
    return root


def opened(bundle: Path) -> LoadedLibrary:
    """The bundle's velocity library, opened (close it)."""
    return LoadedLibrary.open(bundle, read_manifest(bundle), VELOCITY)


def assert_same_library(a: Path, b: Path, queries: np.ndarray, atol: float = 1e-5) -> None:
    """Two bundles' velocity indexes hold the same ids, records and (within ``atol``)
    vectors: equal top-k ids and scores for ``queries``, equal stored records."""
    la, lb = opened(a), opened(b)
    try:
        assert len(la) == len(lb)
        sa, ia = la.search(queries, len(la))
        sb, ib = lb.search(queries, len(lb))
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_allclose(sa, sb, atol=atol)
        ids = np.arange(len(la))
        assert [r.source for r in la.records(ids)] == [r.source for r in lb.records(ids)]
        np.testing.assert_array_equal(la.array("models"), lb.array("models"))
    finally:
        la.close()
        lb.close()
