"""The events index: build, search, add, atomic rebuild, resume, encoder mismatch refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from seislens.data.event_dataset import EventDataset
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.index import event_library
from seislens.index.bundle import BundleError, read_manifest, write_manifest
from seislens.index.event_library import LoadedEventLibrary, build_events_index
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.training.event_export import export_event_branch
from seislens.training.event_train import load_event_config, train_events

torch.set_num_threads(1)

FAST = {"clip": {"epochs": 1}, "finetune": {"epochs": 1}}


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("events") / "lib"
    return generate_events(folder, EventSynthConfig(count=40, seed=9), progress=False)


@pytest.fixture(scope="module")
def runs(events, tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny runs with different seeds (so different spectrum encoders)."""
    root = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        cfg = load_event_config("tiny", {"data": {"folder": str(events)}, "seed": seed, **FAST})
        train_events(cfg, root / f"r{seed}", progress=False, cache_dir=root / "cache")
        out.append(root / f"r{seed}")
    return out[0], out[1]


@pytest.fixture
def bundle(runs, tmp_path) -> Path:
    path = tmp_path / "bundle"
    export_event_branch(runs[0], path)
    return path


def test_build_search_and_metadata(bundle, events):
    entry = build_events_index(bundle, [events], progress=False)
    ds = EventDataset(events, split="train")
    assert entry["count"] == len(ds) == 32
    assert entry["branch"] == "events" and entry["encoder"] == "spectrum"
    assert entry["per_class"] == {c: 8 for c in CLASSES}
    manifest = read_manifest(bundle)
    assert manifest["indexes"]["events"] == entry
    assert entry["encoder_sha256"] == manifest["events"]["encoders"]["spectrum"]["sha256"]
    lib = LoadedEventLibrary.open(bundle, manifest)
    try:
        assert len(lib) == 32 and lib.info.shape == (32, 8)
        rec = lib.records(np.array([0]))[0]
        assert rec.kind == "event" and rec.family in CLASSES
        assert CLASSES[lib.labels[0]] == rec.family
        for key in ("trace_name", "station", "split", "magnitude", "depth_km", "distance_km"):
            assert key in rec.metadata, key
        assert rec.metadata["split"] == "train" and rec.metadata["station"].startswith("SY.")
        noise = [r for r in lib.records(np.arange(32)) if r.family == "noise"]
        assert noise and all(r.metadata["magnitude"] is None for r in noise)
        # each indexed window finds itself first
        from seislens.data.event_views import dataset_spectra
        from seislens.models.event_embedders import EventEmbedder

        spectra, _, _ = dataset_spectra(
            ds, np.arange(5), EventEmbedder(bundle, manifest["events"]).pre
        )
        emb = EventEmbedder(bundle, manifest["events"]).embed_spectra(spectra)
        scores, ids = lib.search(emb, 3)
        assert np.array_equal(ids[:, 0], np.arange(5)) and np.all(scores[:, 0] > 0.999)
        assert np.array_equal(lib.neighbour_labels(np.array([-1, 0])), [-1, lib.labels[0]])
    finally:
        lib.close()


def test_add_and_rebuild_switch_atomically(bundle, events):
    first = build_events_index(bundle, [events], progress=False)
    added = build_events_index(bundle, [events], add=True, split="dev", progress=False)
    assert added["count"] == 32 + 4
    assert [s["split"] for s in added["sources"]] == ["dev", "train"]
    assert not (bundle / first["path"]).exists()
    lib = LoadedEventLibrary.open(bundle, read_manifest(bundle))
    assert {r.metadata["split"] for r in lib.records(np.arange(36))} == {"train", "dev"}
    lib.close()
    rebuilt = build_events_index(bundle, [events], split=None, progress=False)
    assert rebuilt["count"] == 40 and not (bundle / added["path"]).exists()
    assert not list((bundle / "index").glob(".work-*"))


def test_interrupted_build_resumes_and_keeps_the_old_index(bundle, events, monkeypatch):
    old = build_events_index(bundle, [events], split="dev", progress=False)
    real = event_library._assemble
    monkeypatch.setattr(event_library, "_assemble", _boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        build_events_index(bundle, [events], part_size=10, progress=False)
    assert read_manifest(bundle)["indexes"]["events"] == old  # still the old one
    [work] = list((bundle / "index").glob(".work-*"))
    assert len(list(work.glob("part-*.npz"))) == 4
    monkeypatch.setattr(event_library, "_assemble", real)
    entry = build_events_index(bundle, [events], part_size=10, progress=False)
    assert entry["count"] == 32 and not work.exists()


def _boom(*args, **kwargs):
    raise RuntimeError("interrupted")


def test_mismatched_encoder_refused(bundle, events, runs):
    build_events_index(bundle, [events], progress=False)
    export_event_branch(runs[1], bundle)  # a different spectrum encoder
    manifest = read_manifest(bundle)
    with pytest.raises(BundleError, match="rebuild the index"):
        LoadedEventLibrary.open(bundle, manifest)
    build_events_index(bundle, [events], progress=False)
    LoadedEventLibrary.open(bundle, read_manifest(bundle)).close()
    # a tampered count or a missing folder is refused too
    manifest = read_manifest(bundle)
    manifest["indexes"]["events"]["count"] += 1
    with pytest.raises(BundleError, match="the manifest says"):
        LoadedEventLibrary.open(bundle, manifest)
    shutil.rmtree(bundle / manifest["indexes"]["events"]["path"])
    with pytest.raises(BundleError, match="is missing"):
        LoadedEventLibrary.open(bundle, read_manifest(bundle))


def test_bad_requests_refused(bundle, events, tmp_path):
    with pytest.raises(BundleError, match="no events index to add to"):
        build_events_index(bundle, [events], add=True, progress=False)
    with pytest.raises(BundleError, match="does not exist"):
        build_events_index(bundle, [tmp_path / "nope"], progress=False)
    with pytest.raises(BundleError, match=r"no labelled traces in split .test."):
        build_events_index(bundle, [events], split="test", max_per_folder=0, progress=False)
    bare = tmp_path / "bare"
    bare.mkdir()
    write_manifest(bare, {"schema_version": 1, "indexes": {}})
    with pytest.raises(BundleError, match="no event encoders"):
        build_events_index(bare, [events], progress=False)
    with pytest.raises(BundleError, match="no 'events' index"):
        LoadedEventLibrary.open(bundle, read_manifest(bundle))
    json.dumps(read_manifest(bundle))


def test_serving_path_needs_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import seislens.index.event_library, seislens.models.event_embedders\n"
        "import seislens.training.event_eval\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
