"""The velocity library index inside a bundle: build, add, refusal, interrupted builds."""

import shutil

import numpy as np
import pytest
from seislens.index import library as library_mod
from seislens.index.bundle import BundleError, read_manifest, write_manifest
from seislens.index.library import LoadedLibrary, build_velocity_index


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_built_index_finds_each_model_itself(bundle, tiny_velocity_data):
    manifest = read_manifest(bundle)
    lib = LoadedLibrary.open(bundle, manifest)
    assert len(lib) == 24 and lib.models.shape == (24, 70, 70)
    from seislens.models.embedders import VelocityEmbedder

    emb = VelocityEmbedder(bundle, manifest["velocity"])
    v = emb.embed_models(np.asarray(lib.models, np.float32))
    _, ids = lib.index.search(v, 1)
    assert (ids[:, 0] == np.arange(24)).all()
    assert lib.store.get(3).family == "curvefault-b"  # folders in sorted order
    rec = lib.store.get(13)
    assert rec.family == "flatvel-a" and "model" in rec.source
    assert set(lib.store.families()) == {"flatvel-a", "curvefault-b"}
    lib.close()


def test_add_appends_without_reembedding(bundle, tiny_velocity_data, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    models = np.full((3, 70, 70), 2500.0, np.float32)
    models[:, 40:] = 3500.0
    np.save(extra / "models.npy", models)
    calls = []
    real = library_mod.VelocityEmbedder.embed_models
    monkeypatch.setattr(
        library_mod.VelocityEmbedder,
        "embed_models",
        lambda self, m: calls.append(len(m)) or real(self, m),
    )
    entry = build_velocity_index(bundle, [extra], add=True, progress=False)
    assert entry["count"] == 27 and calls == [3]  # only the new models were embedded
    lib = LoadedLibrary.open(bundle, read_manifest(bundle))
    assert lib.store.get(26).family == "extra"
    assert np.allclose(lib.models[25], models[1], atol=2)
    lib.close()
    # the previous index stays (a running service may hold it) until the next build
    assert len(list((bundle / "index").iterdir())) == 2


def test_mismatched_encoder_and_index_refused(bundle):
    manifest = read_manifest(bundle)
    manifest["indexes"]["velocity"]["encoder_sha256"] = "0" * 64
    write_manifest(bundle, manifest)
    with pytest.raises(BundleError, match="rebuild the index"):
        LoadedLibrary.open(bundle, read_manifest(bundle))


def test_interrupted_build_leaves_previous_index(bundle, tiny_velocity_data, monkeypatch):
    before = read_manifest(bundle)["indexes"]["velocity"]

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(library_mod, "_assemble", boom)
    with pytest.raises(KeyboardInterrupt):
        build_velocity_index(bundle, [tiny_velocity_data], progress=False)
    after = read_manifest(bundle)["indexes"]["velocity"]
    assert after == before
    lib = LoadedLibrary.open(bundle, read_manifest(bundle))
    assert len(lib) == 24
    lib.close()
    monkeypatch.undo()
    # a rerun resumes from the embedded parts and completes
    entry = build_velocity_index(bundle, [tiny_velocity_data], progress=False)
    assert entry["count"] == 24 and entry["path"] != before["path"]


def test_bad_library_refused(bundle, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "models.npy", np.zeros((2, 50, 50), np.float32))
    with pytest.raises(BundleError, match="expected velocity models"):
        build_velocity_index(bundle, [bad], progress=False)
    with pytest.raises(BundleError, match="does not exist"):
        build_velocity_index(bundle, [tmp_path / "missing"], progress=False)
