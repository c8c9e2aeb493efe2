"""The tiny end-to-end event case: generate, train both stages, export with parity, index,
evaluate; resume after an interruption; bad configs and run folders refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from seislens.data.event_dataset import EventDataset
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.index.bundle import MANIFEST, read_manifest, write_manifest
from seislens.index.event_library import build_events_index
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.embedders import sha256_file
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_preprocess import dataset_waveform_to_spectrum
from seislens.training.event_eval import evaluate_events, plot_confusion
from seislens.training.event_export import EventExportError, export_event_branch
from seislens.training.event_train import (
    CHECKPOINT,
    EventRunError,
    load_event_config,
    load_event_run,
    load_view_cache,
    train_events,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_events(tmp_path_factory) -> Path:
    """60 synthetic traces (48 train, 8 dev, 4 test)."""
    folder = tmp_path_factory.mktemp("events") / "tiny"
    return generate_events(folder, EventSynthConfig(count=60, seed=3), progress=False)


@pytest.fixture(scope="module")
def tiny_cfg(tiny_events):
    return load_event_config("tiny", {"data": {"folder": str(tiny_events)}})


@pytest.fixture(scope="module")
def tiny_run(tiny_cfg, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("event-runs") / "tiny"
    train_events(tiny_cfg, run, progress=False)
    return run


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tiny_events, tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("event-bundles") / "b"
    export_event_branch(tiny_run, bundle)
    build_events_index(bundle, [tiny_events], progress=False)
    return bundle


def test_run_writes_checkpoint_metrics_and_cache(tiny_run, tiny_cfg):
    assert (tiny_run / CHECKPOINT).exists()
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["clip", "clip", "finetune", "finetune"]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    assert all(x["samples_per_s"] > 0 and np.isfinite(x["loss"]) for x in lines)
    assert "macro_f1" in lines[-1]["val"]["catalog"] and "auto" in lines[-1]["val"]
    assert set(lines[-1]["val"]["regression"]) == {"distance", "depth", "magnitude"}
    _, state = load_event_run(tiny_run)
    assert state["best"]["stage"] == "finetune"
    [key] = list((tiny_run / "cache").iterdir())
    spectra = np.load(key / "spectra.npy", mmap_mode="r")
    assert spectra.dtype == np.float16 and spectra.shape[1:] == (3, 3, 50, 120)
    assert spectra.shape[0] == 56  # the train and dev splits


def test_cache_view_zero_is_the_serving_path(tiny_run, tiny_cfg, tiny_events):
    cache = load_view_cache(tiny_cfg, tiny_run / "cache", progress=False)
    ds = EventDataset(tiny_events)
    rows = np.load(cache.path / "rows.npy")
    for n in (0, 5):
        i = int(rows[n])
        want = dataset_waveform_to_spectrum(
            ds.waveform(i), ds.sampling_rate(i), ds.p_arrival_sample(i)
        )
        got = np.asarray(cache.spectra[n, 0], np.float32)
        assert np.allclose(got, want, rtol=2e-3, atol=1e-4)
        assert cache.labels[n] == ds.label_ids[i]
    # the auto and shifted views place windows elsewhere for some traces
    assert not np.allclose(cache.spectra[:, 0], cache.spectra[:, 2])


def test_export_parity_and_manifest(tiny_bundle, tiny_run, tiny_events):
    manifest = read_manifest(tiny_bundle)
    section = manifest["events"]
    assert section["classes"] == list(CLASSES) and section["embed_dim"] == 256
    assert set(section["encoders"]) == {"spectrum", "info", "heads"}
    for entry in section["encoders"].values():
        assert sha256_file(tiny_bundle / entry["file"]) == entry["sha256"]
    assert section["encoders"]["heads"]["outputs"] == [
        "logits",
        "probabilities",
        "distance",
        "depth",
        "magnitude",
    ]
    assert all(p["checked"] < 1e-4 for p in section["parity"].values())
    assert section["targets"]["distance"] == "km" and "preprocessing" in section
    assert not list((tiny_bundle / "encoders").glob("*.tmp-*"))
    # onnxruntime against torch on real spectra
    model, _ = load_event_run(tiny_run)
    ds = EventDataset(tiny_events, split="test")
    spectra = np.stack(
        [
            dataset_waveform_to_spectrum(
                ds.waveform(i), ds.sampling_rate(i), ds.p_arrival_sample(i)
            )
            for i in range(len(ds))
        ]
    )
    emb = EventEmbedder(tiny_bundle, section)
    probs, reg = emb.classify(spectra)
    x = torch.from_numpy(spectra)
    with torch.no_grad():
        ref = model.encode_spectrum(x).numpy()
        logits, std_reg = model.predict(x)
        phys = (std_reg * model.target_std + model.target_mean).numpy()
    assert np.abs(emb.embed_spectra(spectra) - ref).max() < 1e-4
    assert np.abs(probs - torch.softmax(logits, 1).numpy()).max() < 1e-4
    for j, name in enumerate(("distance", "depth", "magnitude")):
        assert np.abs(reg[name] - phys[:, j]).max() < 1e-3
    assert probs.shape == (len(ds), 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert emb.embed_info(np.zeros((2, 8))).shape == (2, 256)


def test_evaluate_and_confusion_png(tiny_bundle, tiny_events, tmp_path):
    result = evaluate_events(tiny_bundle, tiny_events, split="test")
    assert result["count"] == 4 and result["skipped_unknown_label"] == 0
    matrix = np.array(result["head"]["confusion"])
    assert matrix.shape == (4, 4) and matrix.sum() == 4
    assert set(result["head"]["per_class"]) == set(CLASSES)
    assert result["knn"]["k"] == 10 and result["knn"]["library_size"] == 48
    assert result["regression"]["distance"]["count"] == 3  # the noise trace has none
    json.dumps(result)  # JSON-ready
    png = plot_confusion(matrix, CLASSES, tmp_path / "c.png")
    assert png.stat().st_size > 1000
    auto = evaluate_events(tiny_bundle, tiny_events, split="dev", window="auto")
    assert auto["count"] == 8


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    from seislens.training import event_train

    cache = tmp_path / "cache"
    train_events(tiny_cfg, tmp_path / "full", progress=False, cache_dir=cache)
    real_save = event_train._save_atomic
    calls = {"n": 0}

    def save_then_die(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 3:  # after the first fine-tuning epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(event_train, "_save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_events(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    monkeypatch.setattr(event_train, "_save_atomic", real_save)
    train_events(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=False)
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-6), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    # a finished run resumes to a no-op; another config is refused
    train_events(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    other = tiny_cfg.model_copy(update={"seed": 1})
    with pytest.raises(EventRunError, match="another config"):
        train_events(other, tmp_path / "cut", progress=False, cache_dir=cache)


def test_export_into_existing_manifest_and_parity_failure(tiny_run, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_manifest(
        bundle,
        {
            "schema_version": 1,
            "name": "x",
            "velocity": {"keep": 1},
            "indexes": {"velocity": {"branch": "velocity"}},
        },
    )
    with pytest.raises(EventExportError, match="differs from torch"):
        export_event_branch(tiny_run, bundle, tolerance=0.0)
    assert "events" not in read_manifest(bundle)
    assert not list((bundle / "encoders").glob("*"))
    export_event_branch(tiny_run, bundle)
    manifest = read_manifest(bundle)
    assert manifest["velocity"] == {"keep": 1} and "velocity" in manifest["indexes"]
    assert "events" in manifest
    fresh = tmp_path / "fresh"
    export_event_branch(tiny_run, fresh, which="last")
    assert read_manifest(fresh)["indexes"] == {}
    assert (fresh / MANIFEST).exists()


def test_velocity_reexport_carries_the_event_branch(tiny_bundle, tmp_path):
    from seislens.training.export import _carry_events

    tmp = tmp_path / "next"
    (tmp / "encoders").mkdir(parents=True)
    manifest = {"indexes": {}}
    _carry_events(tiny_bundle, manifest, tmp)
    assert manifest["events"]["encoders"]["spectrum"]["file"] == "encoders/event_spectrum.onnx"
    for entry in manifest["events"]["encoders"].values():
        assert (tmp / entry["file"]).exists()
    assert (tmp / manifest["indexes"]["events"]["path"] / "vectors.faiss").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[data]\nfolder = "d"\nbogus = 1\n', "bogus"),
        ('[data]\nfolder = "d"\n[clip]\nbatch_size = 1\n', "batch_size"),
        ('[data]\nfolder = "d"\n[model.spectrum]\npatch_stride = 17\n', "exceeds patch"),
        ('[data]\nfolder = "d"\n[preprocess]\nlog_spectrum = true\n', "logged twice"),
        ('[data]\nfolder = "d"\nval_split = "train"\n', "held-out"),
        ('[data]\nfolder = "d"\n[window]\nshift_range_s = [10.0, 70.0]\n', "shift_range_s"),
        ('[data]\nfolder = "d"\n[clip]\nepochs = 0\n[finetune]\nepochs = 0\n', "nothing to train"),
    ],
)
def test_bad_config_refused(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        load_event_config(str(path))


def test_missing_preset_and_data_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="events preset"):
        load_event_config("nope")
    cfg = load_event_config("tiny", {"data": {"folder": str(tmp_path / "none")}})
    with pytest.raises(ValueError, match="does not exist"):
        train_events(cfg, tmp_path / "run", progress=False)
    with pytest.raises(EventRunError, match=r"no checkpoint\.pt"):
        load_event_run(tmp_path / "run")


def test_presets_validate():
    for name in ("tiny", "default"):
        cfg = load_event_config(name)
        assert cfg.model.embed_dim == 256
    assert os.path.basename(load_event_config("default").data.folder)


def test_evaluate_any_seisbench_folder_maps_and_counts_labels(tiny_bundle, tiny_events, tmp_path):
    """PNW-style labels in ``source_type`` (no ``trace_category``), one label outside the
    classes, no ``split`` column: mapped, skipped and counted."""
    from seislens.data.event_dataset import EventWriter

    ds = EventDataset(tiny_events, split="test")
    names = {"earthquake": "earthquake", "explosion": "explosion", "surface": "surface event"}
    folder = tmp_path / "pnw-like"
    with EventWriter(folder) as writer:
        for i in range(len(ds)):
            row = ds.metadata.iloc[i].drop(["trace_category", "split", "trace_chunk"]).to_dict()
            row["source_type"] = names.get(ds.labels[i], "sonic boom")
            writer.add_trace(row, ds.waveform(i))
    result = evaluate_events(tiny_bundle, folder, split=None)
    assert result["count"] == 3 and result["skipped_unknown_label"] == 1
    assert [result["head"]["per_class"][c]["support"] for c in CLASSES] == [1, 1, 1, 0]
    with pytest.raises(ValueError, match="no 'split' column"):
        evaluate_events(tiny_bundle, folder, split="test")
    cfg = load_event_config("tiny", {"data": {"folder": str(folder)}})
    with pytest.raises(EventRunError, match="no 'split' column"):
        train_events(cfg, tmp_path / "run", progress=False)
