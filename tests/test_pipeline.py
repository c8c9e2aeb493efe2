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


def test_calibration_with_a_density_writes_its_file_and_refuses_its_own_queries(
    tiny_bundle, tiny_velocity_data, tmp_path
):
    """A density fitted on other folders lands in calibration/ (hash-named, its sha256 in
    the manifest) with one reference distance per query; the calibration folders
    themselves are refused as density data."""
    import hashlib
    import shutil

    from seislens.index.bundle import read_manifest
    from seislens.models.familiarity import joint_familiarity, load_density

    from seislens.pipeline import calibrate_velocity_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    with pytest.raises(ValueError, match="also calibration folders"):
        calibrate_velocity_bundle(
            bundle, [tiny_velocity_data], k=5, progress=False, density_data=[tiny_velocity_data]
        )
    other = tmp_path / "other"
    shutil.copytree(tiny_velocity_data, other)  # other paths: the mechanics, not hold-out

    def calibrate(per_folder: int):
        return calibrate_velocity_bundle(
            bundle,
            [tiny_velocity_data],
            k=5,
            progress=False,
            density_data=[other],
            density_max_per_folder=per_folder,
        )

    cal = calibrate(10)
    spec = cal.density
    assert spec is not None and read_manifest(bundle).velocity.calibration == cal
    path = bundle / spec.file
    assert path.parent.name == "calibration" and spec.sha256[:16] in path.name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert spec.fit_count == 20 and len(spec.reference) == len(spec.combined) == 24
    assert spec.reference == sorted(spec.reference) and spec.combined == sorted(spec.combined)
    assert not list((bundle / "calibration").glob("*pending*"))
    density = load_density(bundle, spec)
    far = density.mean + 100.0
    assert joint_familiarity(cal.top1_scores[-1], density.distance(far)[0], cal) == 0.0
    again = calibrate(8)
    assert again.density.file != spec.file  # another fit, another file
    left = sorted(p.name for p in (bundle / "calibration").iterdir())
    assert left == [again.density.file.split("/")[-1]]  # the earlier one removed


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
