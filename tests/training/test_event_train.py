"""The tiny end-to-end event case: generate, train both stages, export with parity, index,
evaluate; resume after an interruption; bad configs and run folders refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from seislens.data.event_dataset import EventDataset
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.index.builder import build
from seislens.index.bundle import BundleError, read_manifest
from seislens.models.branches import EVENTS
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.embedders import sha256_file
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_preprocess import dataset_waveform_to_spectrum
from seislens.training import runs
from seislens.training.branch_training import load_config, load_run, train
from seislens.training.event_cache import load_view_cache
from seislens.training.event_metrics import plot_confusion
from seislens.training.onnx_export import ExportError
from seislens.training.runs import CHECKPOINT, RunError

from seislens.pipeline import evaluate, export_to_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_events(tmp_path_factory) -> Path:
    """60 synthetic traces (48 train, 8 dev, 4 test)."""
    folder = tmp_path_factory.mktemp("events") / "tiny"
    return generate_events(folder, EventSynthConfig(count=60, seed=3), progress=False)


@pytest.fixture(scope="module")
def tiny_cfg(tiny_events):
    return load_config("events", "tiny", {"data": {"folder": str(tiny_events)}})


@pytest.fixture(scope="module")
def tiny_run(tiny_cfg, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("event-runs") / "tiny"
    train(tiny_cfg, run, progress=False)
    return run


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tiny_events, untrained_velocity_bundle, tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("event-bundles") / "b"
    shutil.copytree(untrained_velocity_bundle, bundle)
    export_to_bundle("events", tiny_run, bundle)
    build(bundle, EVENTS, [tiny_events], progress=False)
    return bundle


def test_run_writes_checkpoint_metrics_and_cache(tiny_run, tiny_cfg):
    assert (tiny_run / CHECKPOINT).exists()
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["clip", "clip", "finetune", "finetune"]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    assert all(x["samples_per_s"] > 0 and np.isfinite(x["loss"]) for x in lines)
    assert "macro_f1" in lines[-1]["val"]["catalog"] and "auto" in lines[-1]["val"]
    assert set(lines[-1]["val"]["regression"]) == {"distance", "depth", "magnitude"}
    trained = load_run(tiny_run)
    assert trained.checkpoint["best"]["stage"] == "finetune" and trained.weights == "best"
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
    section = manifest.events
    assert section.classes == list(CLASSES) and section.embed_dim == 256
    assert set(section.encoders) == {"spectrum", "info", "heads"}
    for name, entry in section.encoders.items():
        assert sha256_file(tiny_bundle / entry.file) == entry.sha256
        assert entry.file == EVENTS.encoder_file(name, entry.sha256)  # content-addressed
    assert section.encoders["heads"].outputs == [
        "logits",
        "probabilities",
        "distance",
        "depth",
        "magnitude",
    ]
    assert all(p["checked"] < 1e-4 for p in section.parity.values())
    assert section.targets["distance"] == "km" and section.preprocessing
    assert not list((tiny_bundle / "encoders").glob("*.tmp"))
    # onnxruntime against torch on real spectra
    model = load_run(tiny_run).network
    ds = EventDataset(tiny_events, split="test")
    spectra = np.stack(
        [
            dataset_waveform_to_spectrum(
                ds.waveform(i), ds.sampling_rate(i), ds.p_arrival_sample(i)
            )
            for i in range(len(ds))
        ]
    )
    emb = EventEmbedder(tiny_bundle, manifest.events)
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
    result = evaluate("events", tiny_bundle, tiny_events, split="test")
    assert result["count"] == 4 and result["skipped_unknown_label"] == 0
    matrix = np.array(result["head"]["confusion"])
    assert matrix.shape == (4, 4) and matrix.sum() == 4
    assert set(result["head"]["per_class"]) == set(CLASSES)
    assert result["knn"]["k"] == 10 and result["knn"]["library_size"] == 48
    assert result["regression"]["distance"]["count"] == 3  # the noise trace has none
    json.dumps(result)  # JSON-ready
    png = plot_confusion(matrix, CLASSES, tmp_path / "c.png")
    assert png.stat().st_size > 1000
    auto = evaluate("events", tiny_bundle, tiny_events, split="dev", window="auto")
    assert auto["count"] == 8
    # the CLI passes the window through, and refuses one it does not know
    from typer.testing import CliRunner

    from seislens.cli import app

    args = ["eval", "events", "--bundle", str(tiny_bundle), "--data", str(tiny_events)]
    cli = CliRunner().invoke(app, [*args, "--split", "dev", "--window", "auto", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["window"] == "auto" and json.loads(cli.output)["count"] == 8
    bad = CliRunner().invoke(app, [*args, "--window", "picks"])
    assert bad.exit_code != 0 and "expected 'catalog' or 'auto'" in bad.output


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    train(tiny_cfg, tmp_path / "full", progress=False, cache_dir=cache)
    real_save = runs.save_atomic
    calls = {"n": 0}

    def save_then_die(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 3:  # after the first fine-tuning epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    monkeypatch.setattr(runs, "save_atomic", real_save)
    train(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=False)
    for k in a["network"]:
        assert torch.allclose(a["network"][k].float(), b["network"][k].float(), atol=1e-6), k
    for k in a["best"]["network"]:
        assert torch.allclose(a["best"]["network"][k], b["best"]["network"][k], atol=1e-6), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    # a finished run resumes to a no-op; another config is refused
    train(tiny_cfg, tmp_path / "cut", progress=False, cache_dir=cache)
    other = tiny_cfg.model_copy(update={"seed": 1})
    with pytest.raises(RunError, match="another config"):
        train(other, tmp_path / "cut", progress=False, cache_dir=cache)


def test_export_into_a_velocity_bundle_and_parity_failure(
    tiny_run, untrained_velocity_bundle, tmp_path
):
    bundle = tmp_path / "bundle"
    shutil.copytree(untrained_velocity_bundle, bundle)
    before = (bundle / "manifest.json").read_bytes()
    encoders = sorted(p.name for p in (bundle / "encoders").iterdir())
    with pytest.raises(ExportError, match="differs from torch"):
        export_to_bundle("events", tiny_run, bundle, tolerance=0.0)
    assert (bundle / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (bundle / "encoders").iterdir()) == encoders
    velocity = read_manifest(bundle).velocity
    manifest = export_to_bundle("events", tiny_run, bundle, which="last")
    assert manifest.velocity == velocity and manifest.events is not None
    assert manifest.events.training_metrics["weights"] == "last"
    # a bundle of the event branch alone would be refused by the service: not written
    with pytest.raises(BundleError, match="velocity"):
        export_to_bundle("events", tiny_run, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


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
        load_config("events", str(path))


def test_missing_preset_and_data_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="events preset"):
        load_config("events", "nope")
    cfg = load_config("events", "tiny", {"data": {"folder": str(tmp_path / "none")}})
    with pytest.raises(ValueError, match="does not exist"):
        train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(RunError, match=r"no checkpoint\.pt"):
        load_run(tmp_path / "run")


def test_presets_validate():
    for name in ("tiny", "default"):
        cfg = load_config("events", name)
        assert cfg.model.embed_dim == 256
    assert os.path.basename(load_config("events", "default").data.folder)


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
    result = evaluate("events", tiny_bundle, folder, split=None)
    assert result["count"] == 3 and result["skipped_unknown_label"] == 1
    assert [result["head"]["per_class"][c]["support"] for c in CLASSES] == [1, 1, 1, 0]
    with pytest.raises(ValueError, match="no 'split' column"):
        evaluate("events", tiny_bundle, folder, split="test")
    cfg = load_config("events", "tiny", {"data": {"folder": str(folder)}})
    with pytest.raises(RunError, match="no 'split' column"):
        train(cfg, tmp_path / "run", progress=False)
