"""The index build on Ray Data and the actor shards, on a real local Ray cluster
(skipped without the cluster extra): the same index as the local build, a killed job
rerun for its unfinished parts only, and 2 actor shards answering as the single index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ray_session import SKIP_REASON, ray_cluster
from scale_helpers import assert_same_library, fixture_copy, make_library, opened
from seislens.index.builder import BuildConfig, build
from seislens.index.vector_index import VectorIndex
from seislens.models.branches import VELOCITY

pytest.importorskip("ray", reason=SKIP_REASON)

from seislens.index.ray_build import RayEngine, RayParts
from seislens.index.ray_shards import INLINE_QUERY_BYTES, ActorShardedIndex

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> str:
    return ray_cluster()


@pytest.fixture
def velocity_bundle(tmp_path) -> Path:
    """A writable copy of the committed serving fixture (not the trained tiny bundle)."""
    return fixture_copy(tmp_path / "bundle")


def _queries(n: int = 6, d: int = 256) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, d)).astype(np.float32)


def test_ray_build_equals_the_local_build(cluster, velocity_bundle, tmp_path):
    library = make_library(velocity_bundle, tmp_path / "lib", repeats=2)  # 48 models
    on_ray = tmp_path / "on-ray"
    shutil.copytree(velocity_bundle, on_ray)
    cfg = BuildConfig(part_size=8)
    local = build(velocity_bundle, VELOCITY, [library], cfg, progress=False)
    parts = RayParts(RayEngine(workers=2))
    remote = build(on_ray, VELOCITY, [library], cfg, progress=False, embed_parts=parts)
    assert len(parts.embedded) == 6 and remote.count == local.count == 48
    assert remote.sources == local.sources and remote.refused == 0
    assert not list((on_ray / "index").glob(".work-*"))  # the work folder goes last
    assert_same_library(velocity_bundle, on_ray, _queries())


KILLED_JOB = """
import ray, sys
from pathlib import Path
from seislens.index.builder import BuildConfig
from seislens.index.ray_build import RayEngine, ray_build
from seislens.models.branches import VELOCITY
ray.init(address=sys.argv[1], log_to_driver=False)
ray_build(Path(sys.argv[2]), VELOCITY, [Path(sys.argv[3])], BuildConfig(part_size=4),
          RayEngine(workers=1), progress=False)
"""


def test_a_killed_ray_build_reruns_only_its_unfinished_parts(cluster, velocity_bundle, tmp_path):
    library = make_library(velocity_bundle, tmp_path / "lib", repeats=4)  # 96 models, 24 parts
    before = opened(velocity_bundle)
    old_path, old_count = before.entry.path, len(before)
    before.close()
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_JOB),
            cluster,
            str(velocity_bundle),
            str(library),
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    done: set[Path] = set()
    while time.monotonic() < deadline and job.poll() is None:
        done = {p for p in (velocity_bundle / "index").glob(".work-*/part-*.npz")}
        if done:
            job.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    job.wait(timeout=60)
    assert done, "the job wrote no part before it ended"
    killed = opened(velocity_bundle)  # the bundle still serves the old index
    assert (killed.entry.path, len(killed)) == (old_path, old_count)
    killed.close()
    done = {p for p in (velocity_bundle / "index").glob(".work-*/part-*.npz")}
    parts = RayParts(RayEngine(workers=2))
    cfg = BuildConfig(part_size=4)
    entry = build(velocity_bundle, VELOCITY, [library], cfg, progress=False, embed_parts=parts)
    assert entry.count == 96
    assert not done & set(parts.embedded) and len(done) + len(parts.embedded) == 24
    reference = tmp_path / "reference"
    shutil.copytree(velocity_bundle, reference)
    build(reference, VELOCITY, [library], cfg, progress=False)
    assert_same_library(velocity_bundle, reference, _queries())


def test_two_actor_shards_answer_as_the_single_index(cluster, velocity_bundle, tmp_path):
    library = make_library(velocity_bundle, tmp_path / "lib", repeats=2)
    entry = build(velocity_bundle, VELOCITY, [library], BuildConfig(shards=2), progress=False)
    folder = velocity_bundle / entry.path
    single = VectorIndex.load(folder / "vectors.faiss")
    actors = ActorShardedIndex(folder, cpus_per_shard=0.5)
    try:
        assert actors.count == 2 and actors.ntotal == 48 and actors.dim == single.dim
        for k in (1, 5, 48):
            s1, i1 = single.search(_queries(), k)
            s2, i2 = actors.search(_queries(), k)
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_allclose(s1, s2, atol=1e-6)
        allowed = np.arange(0, 48, 3)
        np.testing.assert_array_equal(
            single.search(_queries(), 4, allowed)[1], actors.search(_queries(), 4, allowed)[1]
        )
        many = _queries(INLINE_QUERY_BYTES // (4 * single.dim) + 1)  # through the object store
        np.testing.assert_array_equal(single.search(many, 5)[1], actors.search(many, 5)[1])
    finally:
        actors.close()


def test_the_actor_writes_the_parts_the_local_build_writes(velocity_bundle, tmp_path):
    """The Ray Data actor's own work, called as Ray would call it (no cluster needed)."""
    from seislens.index.builder import ITEMS
    from seislens.index.ray_build import PartEmbedder
    from seislens.index.velocity_items import VelocityItemOptions

    library = make_library(velocity_bundle, tmp_path / "lib", repeats=1)
    items = ITEMS["velocity"]
    actor = PartEmbedder(
        str(velocity_bundle), "velocity", [str(library)], None, VelocityItemOptions(), 1, False,
        items,
    )  # fmt: skip
    assert actor.items is items
    batch = {
        "path": np.array([str(tmp_path / "part-000000.npz")]),
        "source": np.array([1]),
        "start": np.array([2]),
        "stop": np.array([9]),
    }
    rows = actor(batch)
    assert rows["items"].tolist() == [7] and rows["pid"][0] == os.getpid()
    from seislens.index.items import ItemPart

    got = ItemPart.load(tmp_path / "part-000000.npz")
    source = ITEMS["velocity"].discover([library], None, VelocityItemOptions())[1]
    expected = ITEMS["velocity"].embed(actor.embedder, source, 2, 9, VelocityItemOptions())
    np.testing.assert_allclose(got.vectors, expected.vectors, atol=1e-6)
    assert got.source == expected.source and got.family == [source.family] * 7


def test_an_actor_process_imports_only_its_own_branch():
    """What Ray ships to an actor (the class and the build's items, pickled) loads in a
    fresh interpreter without the builder or the event branch's scipy/pandas imports."""
    import cloudpickle
    from seislens.index.builder import ITEMS
    from seislens.index.ray_build import PartEmbedder

    code = (
        "import sys, cloudpickle; cls, items = cloudpickle.loads(sys.stdin.buffer.read()); "
        "print(cls.__module__, type(items).__name__, sorted(m for m in "
        "('seislens.index.builder', 'seislens.index.event_items', 'scipy.signal', 'pandas') "
        "if m in sys.modules))"
    )
    shipped = cloudpickle.dumps((PartEmbedder, ITEMS["velocity"]))
    out = subprocess.run(
        [sys.executable, "-c", code], input=shipped, capture_output=True, check=True, cwd=ROOT
    )
    assert out.stdout.decode().split() == ["seislens.index.ray_actor", "VelocityItems", "[]"]
