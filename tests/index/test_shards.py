"""An index held as shards: what a sharded build writes, and that the merged top-k of
the shards is the single index's (exact search), filters included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scale_helpers import fixture_copy, make_library, opened
from seislens.index.builder import BuildConfig, build
from seislens.index.shards import SHARDS_FILE, ShardedIndex, ShardWriter, merge_top_k
from seislens.index.vector_index import VectorIndex, VectorIndexConfig
from seislens.models.branches import VELOCITY


@pytest.fixture
def velocity_bundle(tmp_path):
    """A writable copy of the committed serving fixture (not the trained tiny bundle)."""
    return fixture_copy(tmp_path / "bundle")


def _unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("count", [2, 3])
def test_merged_shards_equal_the_single_exact_index(count):
    rng = np.random.default_rng(count)
    vectors, queries = _unit(rng, 5000), _unit(rng, 40)
    ids = rng.permutation(10_000)[:5000].astype(np.int64)  # ids are not rows
    single = VectorIndex(32)
    single.add(vectors, ids)
    writer = ShardWriter(single.empty_like(), count)
    writer.add(vectors, ids)
    sharded = ShardedIndex(writer.shards)
    assert sharded.ntotal == 5000 and sharded.count == count
    assert all(s.ntotal > 0 for s in writer.shards)
    for k in (1, 10, 100):
        s1, i1 = single.search(queries, k)
        s2, i2 = sharded.search(queries, k)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, atol=1e-6)
    allowed = ids[::7]
    s1, i1 = single.search(queries, 5, allowed)
    s2, i2 = sharded.search(queries, 5, allowed)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_merge_pads_when_the_shards_hold_fewer_than_k():
    a = (np.array([[0.9, -np.inf]], np.float32), np.array([[4, -1]]))
    b = (np.array([[0.95, -np.inf]], np.float32), np.array([[1, -1]]))
    scores, ids = merge_top_k([a, b], 5)
    assert ids.tolist() == [[1, 4, -1, -1, -1]]
    assert scores[0, 0] == np.float32(0.95) and np.isneginf(scores[0, 2:]).all()


def test_ivfpq_shards_share_one_trained_quantiser():
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 2000)
    cfg = VectorIndexConfig(kind="ivfpq", ivf_nlist=8, pq_m=8, ivf_nprobe=8)
    index = VectorIndex(32, cfg)
    index.train(vectors)
    writer = ShardWriter(index, 2)
    writer.add(vectors, np.arange(2000))
    assert all(s.is_trained for s in writer.shards)
    _, ids = ShardedIndex(writer.shards).search(vectors[:5], 1)
    assert (ids[:, 0] == np.arange(5)).mean() >= 0.6  # PQ recall at 1 of its own vector


def test_a_sharded_build_is_searched_as_its_shards(velocity_bundle, tmp_path):
    library = make_library(velocity_bundle, tmp_path / "lib")
    entry = build(velocity_bundle, VELOCITY, [library], BuildConfig(shards=2), progress=False)
    folder = velocity_bundle / entry.path
    listing = json.loads((folder / SHARDS_FILE).read_text())
    assert listing["count"] == 2 and sum(listing["ntotal"]) == entry.count == 48
    lib = opened(velocity_bundle)
    try:
        assert isinstance(lib.index, ShardedIndex) and len(lib) == 48
        single = VectorIndex.load(folder / "vectors.faiss")
        queries = _unit(np.random.default_rng(1), 8, single.dim)
        s1, i1 = single.search(queries, 48)
        s2, i2 = lib.search(queries, 48)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, atol=1e-6)
    finally:
        lib.close()
