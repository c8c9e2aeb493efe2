"""Familiarity and calibrated spreads of the gather search (the fixture bundle is
calibrated on its own 24 gathers: tests/fixtures/build_serving_fixture.py)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seislens.data.gather_files import read_gather
from seislens.index.bundle import read_manifest, write_manifest
from seislens.service.app import create_app
from service_helpers import npy_bytes, search


def _familiarity(client, gather: np.ndarray) -> dict:
    r = search(client, npy_bytes(gather.astype(np.float32)), filename="g.npy", k=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_calibration_gather_is_familiar_and_spreads_are_calibrated(client, sample, tiny_bundle):
    body = search(client, sample.segy, k=10).json()
    fam = body["familiarity"]
    assert 0.0 <= fam["score"] <= 1.0 and fam["warning"] is None
    assert "24 held-out" in fam["calibration"]
    from seislens.models.familiarity import spread_scale

    cal = read_manifest(tiny_bundle).velocity.calibration
    assert cal.familiarity_bins and cal.std_scale_by_bin  # the fixture has per-bin factors
    for name, est in body["inferred_descriptors"].items():
        assert est["calibrated"] is True
        scale = spread_scale(cal, name, fam["score"])
        assert est["std"] == pytest.approx(est["neighbour_std"] * scale, abs=1e-3)
    predicted = body["predicted_descriptors"]  # the fixture's tiny preset has a head
    assert set(predicted) == set(body["inferred_descriptors"])
    assert all(p["std"] > 0 and p["calibrated"] for p in predicted.values())


DEFAULT = Path(__file__).resolve().parents[2] / "artifacts" / "default"
EXAMPLE = DEFAULT.parents[1] / "examples" / "curvefault-b_test0.sgy"


@pytest.fixture(scope="module")
def default_client(settings):
    """The committed default bundle (calibrated on 200 held-out generated gathers)."""
    served = {"bundle": DEFAULT, "lease_ttl_s": 0}  # read in place: no lease file written
    with TestClient(create_app(settings.model_copy(update=served))) as c:
        yield c


def test_default_bundle_warns_on_noise_not_on_its_example(default_client):
    example = search(default_client, EXAMPLE.read_bytes(), k=10).json()["familiarity"]
    assert example["score"] >= 0.05 and example["warning"] is None
    assert "with the embedding density" in example["calibration"]
    noise = np.random.default_rng(0).standard_normal((5, 1000, 70))
    fam = _familiarity(default_client, noise)["familiarity"]
    assert fam["score"] < 0.05 and "mostly noise" in fam["warning"]
    assert fam["snr_db"] < -8.0 < example["snr_db"]


NOISE_LADDER = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0)
"""Noise RMS as multiples of the gather's own RMS."""
FAMILIARITY_JITTER = 0.05
"""How much more familiar a noisier gather may score: the score is a percentile of the
neighbour similarity, which faint noise moves by a few hundredths either way."""


@pytest.mark.parametrize("seed", [1, 2])
def test_a_gather_buried_in_more_noise_is_never_more_familiar(default_client, seed):
    """Along a ladder of noise levels the score never rises (beyond the jitter), and
    a gather drowned in ten times its RMS is clearly less familiar than the clean one."""
    with tempfile.TemporaryDirectory() as tmp:
        gather = read_gather(_copy(EXAMPLE, Path(tmp))).data
    rms = float(np.sqrt(np.mean(gather**2)))
    noise = np.random.default_rng(seed).standard_normal(gather.shape)
    scores = [
        _familiarity(default_client, gather + level * rms * noise)["familiarity"]["score"]
        for level in NOISE_LADDER
    ]
    for quieter, louder in itertools.pairwise(scores):
        assert louder <= quieter + FAMILIARITY_JITTER, scores
    assert scores[NOISE_LADDER.index(10.0)] < scores[0] - 0.3, scores
    assert scores[-1] <= min(scores[:-1]) + 1e-9, scores


def _copy(path: Path, folder: Path) -> Path:
    shutil.copy(path, folder / path.name)
    return folder / path.name


def test_without_a_valid_calibration_the_answer_says_why(
    make_client, sample, tiny_bundle, tmp_path
):
    bundle = tmp_path / "uncalibrated"
    shutil.copytree(tiny_bundle, bundle)
    manifest = read_manifest(bundle)
    section = manifest.velocity.model_copy(update={"calibration": None})
    write_manifest(bundle, manifest.with_section("velocity", section))
    body = search(make_client(bundle=bundle), sample.segy, k=3).json()
    assert body["familiarity"]["score"] is None
    assert "no familiarity calibration" in body["familiarity"]["calibration"]
    assert all(not e["calibrated"] for e in body["inferred_descriptors"].values())


def test_an_unusable_density_leaves_the_best_score_and_says_why(make_client, tmp_path):
    """The default bundle with its density file altered: answers still carry the best
    score's familiarity, and the calibration note names the unusable file."""
    bundle = tmp_path / "default"
    shutil.copytree(DEFAULT, bundle, ignore=shutil.ignore_patterns("leases"))
    spec = read_manifest(bundle).velocity.calibration.density
    assert spec is not None, "the default bundle is calibrated with a density"
    (bundle / spec.file).write_bytes(b"not the density")
    fam = search(make_client(bundle=bundle), EXAMPLE.read_bytes(), k=5).json()["familiarity"]
    assert 0.0 <= fam["score"] <= 1.0
    assert "unusable" in fam["calibration"] and spec.file in fam["calibration"]


def test_a_one_shot_gather_is_answered_with_a_warning(client, sample, tmp_path):
    from seislens.data.gather_files import write_segy

    one_shot = tmp_path / "one-shot.sgy"
    write_segy(one_shot, sample.gather[:1], source_x_m=np.array([0.0]))
    r = search(client, one_shot.read_bytes(), filename="one-shot.sgy", k=3)
    assert r.status_code == 200, r.text
    assert "only part of the model frame" in r.json()["familiarity"]["warning"]
    full = search(client, sample.segy, k=3).json()["familiarity"]
    assert full["warning"] is None or "only part" not in full["warning"]
