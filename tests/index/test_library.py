"""The loaded library, the same for both branches: open, search, records, arrays, and
the refusals (another encoder, a tampered count, a missing folder, no index)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from seislens.data.event_dataset import EventDataset
from seislens.data.event_views import dataset_spectra
from seislens.index.builder import build
from seislens.index.bundle import BundleError, read_manifest, write_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import EVENTS, VELOCITY
from seislens.models.contract import EVENT_CLASSES
from seislens.models.embedders import VelocityEmbedder
from seislens.models.event_embedders import EventEmbedder


def _with_index(manifest, branch, **changes):
    entry = manifest.indexes[branch.index_name].model_copy(update=changes)
    return manifest.model_copy(update={"indexes": {**manifest.indexes, branch.index_name: entry}})


def test_velocity_library_finds_each_model_itself(velocity_bundle):
    manifest = read_manifest(velocity_bundle)
    lib = LoadedLibrary.open(velocity_bundle, manifest, VELOCITY)
    try:
        models = lib.array("models")
        assert len(lib) == 24 and models.shape == (24, 70, 70) and models.dtype == np.float16
        assert isinstance(models, np.memmap) and lib.array_names == ["models"]
        emb = VelocityEmbedder(velocity_bundle, manifest.velocity)
        _, ids = lib.search(emb.embed_velocity_models(np.asarray(models, np.float32)), 1)
        assert (ids[:, 0] == np.arange(24)).all()
        first, last = lib.records([3, 13])
        assert first.family == "curvefault-b"  # folders in sorted order
        assert last.family == "flatvel-a" and "model" in last.source and last.kind == "velocity"
        assert lib.family_counts() == {"flatvel-a": 12, "curvefault-b": 12}
        assert set(lib.ids_for_family("flatvel-a")) == set(range(12, 24))
        desc = lib.descriptors(np.arange(3), ["mean_velocity", "nope"])
        assert desc.shape == (3, 2) and np.isfinite(desc[:, 0]).all() and np.isnan(desc[:, 1]).all()
        with pytest.raises(KeyError, match="no array 'labels'"):
            lib.array("labels")
    finally:
        lib.close()


def test_event_library_search_records_and_arrays(event_bundle, events):
    entry = build(event_bundle, EVENTS, [events], progress=False)
    manifest = read_manifest(event_bundle)
    lib = LoadedLibrary.open(event_bundle, manifest, EVENTS)
    try:
        assert len(lib) == entry.count == 32
        assert lib.array("info").shape == (32, 8) and lib.array("labels").dtype == np.int8
        rec = lib.records(np.array([0]))[0]
        assert rec.kind == "event" and rec.family in EVENT_CLASSES
        assert EVENT_CLASSES[lib.array("labels")[0]] == rec.family
        for key in ("trace_name", "station", "split", "magnitude", "depth_km", "distance_km"):
            assert key in rec.metadata, key
        assert rec.metadata["split"] == "train" and rec.metadata["station"].startswith("SY.")
        noise = [r for r in lib.records(np.arange(32)) if r.family == "noise"]
        assert noise and all(r.metadata["magnitude"] is None for r in noise)
        # each indexed window finds itself first
        embedder = EventEmbedder(event_bundle, manifest.events)
        ds = EventDataset(events, split="train")
        spectra, _, _ = dataset_spectra(ds, np.arange(5), embedder.pre)
        scores, ids = lib.search(embedder.embed_spectra(spectra), 3)
        assert np.array_equal(ids[:, 0], np.arange(5)) and np.all(scores[:, 0] > 0.999)
        labels = lib.take("labels", np.array([[-1, 0]]))
        assert labels.shape == (1, 2) and np.array_equal(labels[0], [-1, lib.array("labels")[0]])
        info = lib.take("info", np.array([-1, 1]), fill=0)
        assert info.shape == (2, 8) and (info[0] == 0).all()
    finally:
        lib.close()


@pytest.mark.parametrize("branch", [VELOCITY, EVENTS], ids=lambda b: b.name)
def test_refusals(branch, velocity_bundle, event_bundle, events):
    bundle = velocity_bundle if branch is VELOCITY else event_bundle
    if branch is EVENTS:
        with pytest.raises(BundleError, match="no 'events' index"):
            LoadedLibrary.open(bundle, read_manifest(bundle), branch)
        build(bundle, EVENTS, [events], progress=False)
    manifest = read_manifest(bundle)
    with pytest.raises(BundleError, match="rebuild the index"):
        LoadedLibrary.open(bundle, _with_index(manifest, branch, encoder_sha256="0" * 64), branch)
    with pytest.raises(BundleError, match="the manifest says"):
        count = manifest.indexes[branch.index_name].count + 1
        LoadedLibrary.open(bundle, _with_index(manifest, branch, count=count), branch)
    with pytest.raises(BundleError, match="expected"):
        LoadedLibrary.open(bundle, _with_index(manifest, branch, encoder="other"), branch)
    shutil.rmtree(bundle / manifest.indexes[branch.index_name].path)
    with pytest.raises(BundleError, match="is missing"):
        LoadedLibrary.open(bundle, manifest, branch)


def test_event_index_of_another_encoder_refused(event_bundle, events, event_runs):
    from seislens.pipeline import export_to_bundle

    build(event_bundle, EVENTS, [events], progress=False)
    export_to_bundle("events", event_runs[1], event_bundle)  # a different spectrum encoder
    with pytest.raises(BundleError, match="rebuild the index"):
        LoadedLibrary.open(event_bundle, read_manifest(event_bundle), EVENTS)
    build(event_bundle, EVENTS, [events], progress=False)
    LoadedLibrary.open(event_bundle, read_manifest(event_bundle), EVENTS).close()


def test_manifest_of_another_schema_version_refused(velocity_bundle):
    manifest = read_manifest(velocity_bundle)
    write_manifest(velocity_bundle, manifest.model_copy(update={"schema_version": 7}))
    with pytest.raises(BundleError, match="schema version 7"):
        read_manifest(velocity_bundle)


def test_serving_path_needs_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import seislens.index.library, seislens.index.builder\n"
        "import seislens.models.event_embedders, seislens.service.app\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
