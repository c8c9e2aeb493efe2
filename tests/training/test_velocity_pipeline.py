"""The tiny end-to-end case: train, export, reload ONNX, parity, self-retrieval."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from seislens.data.openfwi import OpenFWIDataset
from seislens.index.bundle import read_manifest
from seislens.models.embedders import VelocityEmbedder
from seislens.training import runs
from seislens.training.branch_training import load_config, load_run, train
from seislens.training.runs import CHECKPOINT
from seislens.training.velocity_data import expand_folders


def test_run_writes_checkpoint_and_metrics(tiny_run):
    assert (tiny_run / CHECKPOINT).exists()
    lines = (tiny_run / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x)["epoch"] for x in lines]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) == 30
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert last["loss"] < first["loss"]  # it learned something


def test_self_retrieval_and_parity_on_real_data(tiny_bundle, tiny_run, tiny_velocity_data):
    manifest = read_manifest(tiny_bundle)
    emb = VelocityEmbedder(tiny_bundle, manifest.velocity)
    datasets = [OpenFWIDataset(f) for f in expand_folders([tiny_velocity_data])]
    gathers = np.stack([d.gather(i) for d in datasets for i in range(len(d))])
    models = np.stack([d.velocity_model(i) for d in datasets for i in range(len(d))])
    s = emb.embed_gathers(gathers)
    v = emb.embed_velocity_models(models)
    assert s.shape == (24, 256)
    assert np.allclose(np.linalg.norm(s, axis=1), 1, atol=1e-5)
    # ONNX against torch on the same real inputs
    net = load_run(tiny_run).network
    from seislens.models.velocity_preprocess import gather_features

    with torch.no_grad():
        ref = net.encode_seismic(torch.from_numpy(gather_features(gathers, emb.pre.gather)))
    assert np.abs(ref.numpy() - s).max() < 1e-4
    top1 = (s @ v.T).argmax(axis=1)
    assert np.mean(top1 == np.arange(24)) >= 0.9


def test_resume_after_interruption_matches_uninterrupted(tiny_velocity_data, tmp_path, monkeypatch):
    over = {"data": {"train": [str(tiny_velocity_data)]}, "optim": {"epochs": 4}}
    cfg = load_config("velocity", "tiny", over)
    train(cfg, tmp_path / "full", progress=False)

    real_save = runs.save_atomic
    calls = {"n": 0}

    def save_then_die(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(runs, "save_atomic", real_save)
    train(cfg, tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=False)
    for k in a["network"]:
        assert torch.allclose(a["network"][k].float(), b["network"][k].float(), atol=1e-6), k
    assert a["done"] == b["done"] == 4
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "seislens.cli", *args], capture_output=True, text=True
    )


def test_eval_cli_json(tiny_bundle, tiny_velocity_data):
    r = cli(
        "eval",
        "velocity",
        "--bundle",
        str(tiny_bundle),
        "--data",
        str(tiny_velocity_data),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gallery_size"] == 24
    for key in ("seismic_to_velocity", "velocity_to_descriptor"):
        assert set(out[key]) == {"recall@1", "recall@5", "recall@10"}
    assert 0 <= out["descriptor_mre"] < 1
    assert out["open_set"]["library_size"] == 24


DATA = '[data]\ntrain = ["d"]\n'


@pytest.mark.parametrize(
    ("content", "sets", "message"),
    [
        (f'name = "x"\nbogus = 1\n{DATA}', [], "bogus"),
        (f"{DATA}[optim]\nbatch_size = 0\n", [], "optim.batch_size"),
        (DATA, ["optim.batch_size=1"], "optim.batch_size"),  # --set reaches nested keys
        (DATA, ["optim.epochs=0"], "nothing to train"),
        (DATA, ["optim"], "KEY.PATH=VALUE"),
    ],
)
def test_bad_config_exit_2(tmp_path, content, sets, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    options = [x for item in sets for x in ("--set", item)]
    r = cli("train", "velocity", "--config", str(cfg), "--run", str(tmp_path / "run"), *options)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_wrong_shape_data_and_missing_checkpoint_exit_2(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "data1.npy", np.zeros((4, 5, 500, 70), np.float32))
    np.save(bad / "model1.npy", np.full((4, 1, 70, 70), 2000, np.float32))
    r = cli(
        "train", "velocity", "--config", "tiny", "--data", str(bad), "--run", str(tmp_path / "run")
    )
    assert r.returncode == 2 and "expected (5, 1000, 70)" in r.stderr, r.stderr
    r = cli("export", "--run", str(tmp_path / "nothing"), "--bundle", str(tmp_path / "b"))
    assert r.returncode == 2 and "no checkpoint.pt" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()


def test_descriptor_head_is_exported_and_matches_torch(tiny_bundle, tiny_run, tiny_velocity_data):
    from seislens.models.descriptors import DESCRIPTOR_NAMES
    from seislens.models.velocity_preprocess import gather_features

    manifest = read_manifest(tiny_bundle)
    assert manifest.velocity.encoders["seismic"].outputs == [
        "embedding",
        "descriptor_mean",
        "descriptor_log_var",
    ]
    emb = VelocityEmbedder(tiny_bundle, manifest.velocity)
    assert emb.has_descriptor_head
    datasets = [OpenFWIDataset(f) for f in expand_folders([tiny_velocity_data])]
    gathers = np.stack([datasets[0].gather(i) for i in range(4)])
    vectors, mean, std = emb.embed_gathers_with_head(gathers)
    assert vectors.shape == (4, 256) and mean.shape == std.shape == (4, len(DESCRIPTOR_NAMES))
    assert (std > 0).all() and np.isfinite(mean).all()
    net = load_run(tiny_run).network.eval()
    with torch.no_grad():
        z = net.encode_seismic(torch.from_numpy(gather_features(gathers, emb.pre.gather)))
        ref_mean, _ = net.head(z)
    d = emb.pre.descriptors
    expected = ref_mean.numpy() * np.asarray(d.std) + np.asarray(d.mean)
    assert np.allclose(mean, expected, rtol=1e-3, atol=1e-3 * np.asarray(d.std))
