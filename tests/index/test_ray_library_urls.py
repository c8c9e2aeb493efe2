"""Library folders given as filesystem URLs to the Ray build (skipped without the
cluster extra): ``file://`` URLs build the index the local paths build, and a folder on
another pyarrow filesystem (pyarrow's in-memory one here) is staged locally once, with
its family folder names."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ray_session import SKIP_REASON, ray_cluster
from scale_helpers import assert_same_library, fixture_copy, make_library
from seislens.index.builder import BuildConfig, build
from seislens.index.bundle import BundleError
from seislens.models.branches import VELOCITY

pytest.importorskip("ray", reason=SKIP_REASON)

import pyarrow.fs as pafs
from seislens.index.ray_build import (
    STAGED_MARK,
    RayEngine,
    ray_build,
    resolve_library,
    stage_source,
)


@pytest.mark.slow  # a Ray build (~20 s idle, minutes under load); resolution is tested fast below
def test_file_urls_build_the_index_local_paths_build(tmp_path):
    ray_cluster()
    bundle = fixture_copy(tmp_path / "bundle")
    library = make_library(bundle, tmp_path / "lib", repeats=2)  # 2 families, 48 models
    on_ray = tmp_path / "on-ray"
    shutil.copytree(bundle, on_ray)
    cfg = BuildConfig(part_size=12)
    local = build(
        bundle, VELOCITY, [library / "flatvel-a", library / "curvefault-b"], cfg, progress=False
    )
    urls = [(library / "flatvel-a").as_uri(), f"file://{library / 'curvefault-b'}"]
    remote = ray_build(on_ray, VELOCITY, urls, cfg, RayEngine(workers=1), progress=False)
    assert remote.count == local.count == 48 and remote.sources == local.sources
    assert_same_library(bundle, on_ray, np.random.default_rng(5).standard_normal((4, 256)))


def test_urls_resolve_to_local_paths_or_a_clear_error(tmp_path):
    assert resolve_library([tmp_path, str(tmp_path)], tmp_path) == [tmp_path, tmp_path]
    assert resolve_library([tmp_path.as_uri()], tmp_path) == [tmp_path]
    for bad, says in (("nope://bucket/lib", "not a filesystem URL"), ("file://lib", "relative")):
        with pytest.raises(BundleError, match=says):
            resolve_library([bad], tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        resolve_library(["mock:///no/such/library"], tmp_path)


def test_a_folder_on_another_filesystem_is_staged_once(tmp_path):
    library = make_library(fixture_copy(tmp_path / "bundle"), tmp_path / "lib", repeats=1)
    remote = pafs._MockFileSystem()
    remote.create_dir("bucket/openfwi")
    pafs.copy_files(str(library), "bucket/openfwi", pafs.LocalFileSystem(), remote)
    staged = stage_source(remote, "bucket/openfwi/", tmp_path / "stage", "mock://bucket/openfwi")
    assert staged == tmp_path / "stage" / "openfwi" and (tmp_path / "stage" / STAGED_MARK).exists()
    for family in ("flatvel-a", "curvefault-b"):
        np.testing.assert_array_equal(
            np.load(staged / family / "model1.npy"), np.load(library / family / "model1.npy")
        )
    remote.delete_dir("bucket/openfwi/flatvel-a")  # a whole copy is reused as it is
    again = stage_source(remote, "bucket/openfwi", tmp_path / "stage")
    assert again == staged and (staged / "flatvel-a" / "model1.npy").exists()
    (tmp_path / "stage" / STAGED_MARK).unlink()  # a half copy is made again
    stage_source(remote, "bucket/openfwi", tmp_path / "stage")
    assert not (staged / "flatvel-a").exists() and (staged / "curvefault-b").exists()
