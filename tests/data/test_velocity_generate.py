"""The generator and OpenFWI I/O: determinism, resume, bad input, real-format folders."""

import json
import subprocess
import sys

import numpy as np
import pytest
from seislens.data.openfwi import DatasetError, OpenFWIDataset
from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset

pytest.importorskip("deepwave")


def gen(out, workers=1, count=4, family="flatfault-a", seed=5, shard_size=3):
    cfg = VelocityGenConfig(
        family=family, count=count, seed=seed, workers=workers, shard_size=shard_size, chunk=2
    )
    return generate_velocity_dataset(out, cfg, progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "flatfault-a"
    gen(out)
    return out


def test_writes_openfwi_layout(small):
    names = sorted(p.name for p in small.iterdir())
    assert names == [
        "data1.npy",
        "data2.npy",
        "desc1.npy",
        "desc2.npy",
        "model1.npy",
        "model2.npy",
        "physics1.json",
        "physics2.json",
        "seislens.json",
    ]
    assert np.load(small / "data1.npy").shape == (3, 5, 1000, 70)
    assert np.load(small / "model2.npy").shape == (1, 1, 70, 70)
    assert np.load(small / "data1.npy").dtype == np.float32
    manifest = json.loads((small / "seislens.json").read_text())
    assert manifest["complete"] and manifest["count"] == 4 and manifest["seed"] == 5
    assert manifest["versions"]["deepwave"]


def test_same_seed_identical_bytes_whatever_the_workers(small, tmp_path):
    gen(tmp_path / "two", workers=2)
    for name in ("data1.npy", "data2.npy", "model1.npy", "desc2.npy"):
        assert (small / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_resume_after_interruption(small, tmp_path):
    out = tmp_path / "resume"
    gen(out)
    (out / "model2.npy").unlink()  # as if killed before the shard was complete
    (out / "data2.npy").write_bytes(b"half-written")
    gen(out)
    assert (out / "data2.npy").read_bytes() == (small / "data2.npy").read_bytes()


def test_refuses_a_folder_with_another_dataset(small):
    with pytest.raises(DatasetError, match="different dataset"):
        gen(small, seed=6)


def test_dataset_pairs_by_index(small):
    ds = OpenFWIDataset(small, expect_shape=(5, 1000, 70))
    assert len(ds) == 4
    g, m, d = ds[3]
    assert g.shape == (5, 1000, 70) and m.shape == (70, 70) and d.shape == (9,)
    assert np.array_equal(m, np.load(small / "model2.npy")[0, 0])
    assert ds.family == "flatfault-a"
    with pytest.raises(DatasetError, match="expected"):
        OpenFWIDataset(small, expect_shape=(5, 500, 70))


def test_real_openfwi_folder_loads_unchanged(tmp_path):
    # OpenFWI's downloads: data{i}.npy / model{i}.npy only, no manifest, no descriptors
    rng = np.random.default_rng(0)
    for i in (1, 2):
        np.save(tmp_path / f"data{i}.npy", rng.normal(size=(2, 5, 1000, 70)).astype(np.float32))
        model = np.full((2, 1, 70, 70), 1500.0 + 1000 * i, np.float32)
        model[:, :, 35:] += 500
        np.save(tmp_path / f"model{i}.npy", model)
    ds = OpenFWIDataset(tmp_path)
    assert len(ds) == 4
    assert ds.descriptors(2)[0] == pytest.approx(3500 + 250)  # computed from the model


def test_mismatched_counts_are_refused(tmp_path):
    np.save(tmp_path / "data1.npy", np.zeros((3, 5, 1000, 70), np.float32))
    np.save(tmp_path / "model1.npy", np.zeros((2, 1, 70, 70), np.float32))
    with pytest.raises(DatasetError, match="3 samples but"):
        OpenFWIDataset(tmp_path)
    np.save(tmp_path / "data2.npy", np.zeros((2, 5, 1000, 70), np.float32))
    with pytest.raises(DatasetError, match="do not pair"):
        OpenFWIDataset(tmp_path)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "seislens.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "flatvel-c", "--count", "2"], "unknown family"),
        (["--family", "flatvel-a", "--count", "0"], "must be positive"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    r = cli("data", "velocity", *args, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert not out.exists()  # nothing half-written


def test_cli_other_dataset_and_bad_openfwi_exit_2(small, tmp_path):
    r = cli("data", "velocity", "--family", "curvevel-b", "--count", "2", "--out", str(small))
    assert r.returncode == 2 and "different dataset" in r.stderr
    np.save(tmp_path / "data1.npy", np.zeros((3, 5, 10, 70), np.float32))
    np.save(tmp_path / "model1.npy", np.zeros((2, 1, 70, 70), np.float32))
    r = cli("data", "show", str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "must match" in r.stderr


def test_cli_show_draws_png(small, tmp_path):
    out = tmp_path / "sample.png"
    r = cli("data", "show", str(small), "--index", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
