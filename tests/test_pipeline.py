"""The top-layer pipelines: every registry branch has an evaluation."""

import pytest
from seislens.models.branches import BRANCH_NAMES

from seislens.pipeline import EVALUATIONS


def test_every_branch_has_an_evaluation():
    assert set(EVALUATIONS) == set(BRANCH_NAMES)
    for load, _ in EVALUATIONS.values():
        assert callable(load())


def test_calibration_is_written_and_orders_familiarity(tiny_bundle, tiny_velocity_data, tmp_path):
    """Calibrating the tiny bundle on its own data writes a calibration tied to its index;
    a gather of pure noise is then less familiar than the calibration's median query."""
    import shutil

    import numpy as np
    from seislens.index.bundle import read_manifest
    from seislens.models.familiarity import familiarity

    from seislens.pipeline import calibrate_velocity_bundle, open_branch

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    cal = calibrate_velocity_bundle(bundle, [tiny_velocity_data], k=5, progress=False)
    manifest = read_manifest(bundle)
    assert manifest.velocity.calibration == cal
    assert cal.index_path == manifest.indexes["velocity"].path and cal.queries == 24
    from seislens.models.descriptors import DESCRIPTOR_NAMES

    assert list(cal.std_scale) == list(DESCRIPTOR_NAMES)
    assert all(np.isfinite(v) and v > 0 for v in cal.std_scale.values())
    noise = np.random.default_rng(0).standard_normal((1, 5, 1000, 70)).astype(np.float32)
    with open_branch(bundle, "velocity", need_library=True) as opened:
        scores, _ = opened.library.search(opened.embedder.embed_gathers(noise), 1)
    assert familiarity(scores[0, 0], cal) < 0.5


def test_bundle_build_end_to_end_with_calibration(tmp_path):
    """`seislens bundle build` on a tiny preset: data, training, export, index,
    evaluation and the familiarity calibration land in one loadable bundle."""
    pytest.importorskip("deepwave")
    from seislens.index.bundle import read_manifest

    from seislens.pipeline import BundlePreset, build_bundle

    preset = BundlePreset(
        out=str(tmp_path / "bundle"),
        data_dir=str(tmp_path / "data"),
        families=["flatvel-a", "curvefault-b"],
        train_per_family=8,
        test_per_family=4,
        workers=1,
        train_config="tiny",
        run=str(tmp_path / "run"),
        library_per_family=8,
        calibration_per_family=10,
    )
    result = build_bundle(preset)
    manifest = read_manifest(tmp_path / "bundle")
    assert result["gallery_size"] == 8
    assert manifest.velocity.evaluation["data"].endswith("test")
    cal = manifest.velocity.calibration
    assert cal.queries == 20 and cal.index_path == manifest.indexes["velocity"].path
