"""VectorIndex: exact and approximate search, ids, filters, persistence, validation."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from pydantic import ValidationError
from seislens.index.vector_index import VectorIndex, VectorIndexConfig, try_to_gpu

DIM = 32
N = 3000
N_CLUSTERS = 30


def _clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) float32 vectors around N_CLUSTERS centres, and each one's cluster."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((N_CLUSTERS, DIM))
    labels = rng.integers(0, N_CLUSTERS, n)
    x = centres[labels] + 0.5 * rng.standard_normal((n, DIM))
    return x.astype(np.float32), labels


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Library vectors, their (non-contiguous) ids, families, and queries near them."""
    x, labels = _clustered(N, seed=1)
    rng = np.random.default_rng(2)
    picked = rng.choice(N, 60, replace=False)
    queries = x[picked] + 0.1 * rng.standard_normal((60, DIM)).astype(np.float32)
    ids = np.arange(N, dtype=np.int64) * 7 + 1000
    return {"x": x, "ids": ids, "family": labels % 6, "queries": queries, "picked": picked}


@pytest.fixture(scope="module")
def flat(data: dict[str, np.ndarray]) -> VectorIndex:
    index = VectorIndex(DIM)
    index.add(data["x"], data["ids"])
    return index


def _recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (ids, -1 ignored) present in ``found``."""
    hits = [
        len(set(f) & set(t[t >= 0])) / max(1, (t >= 0).sum())
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


# --------------------------------------------------------------------------- config


def test_config_defaults_and_forbidden_fields() -> None:
    cfg = VectorIndexConfig()
    assert (cfg.kind, cfg.hnsw_m, cfg.hnsw_ef_search, cfg.ivf_nlist, cfg.pq_m) == (
        "flat",
        32,
        64,
        1024,
        32,
    )
    with pytest.raises(ValidationError, match="extra"):
        VectorIndexConfig(kind="flat", nlist=3)
    with pytest.raises(ValidationError):
        VectorIndexConfig(kind="annoy")
    with pytest.raises(ValidationError):
        VectorIndexConfig(hnsw_m=1)
    with pytest.raises(ValidationError):
        VectorIndexConfig(hnsw_ef_search=0)
    with pytest.raises(ValidationError, match="ivf_nprobe=32 exceeds ivf_nlist=16"):
        VectorIndexConfig(kind="ivfpq", ivf_nlist=16, ivf_nprobe=32)


# --------------------------------------------------------------------------- flat


def test_exact_search_returns_the_right_neighbour(
    flat: VectorIndex, data: dict[str, np.ndarray]
) -> None:
    scores, ids = flat.search(data["queries"], 5)
    assert scores.shape == ids.shape == (60, 5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[:, 0], data["ids"][data["picked"]])
    cosine = _unit(data["queries"]) @ _unit(data["x"]).T
    best = np.argsort(-cosine, axis=1)[:, :5]
    np.testing.assert_array_equal(ids, data["ids"][best])
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, best, axis=1), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_single_query_and_scale_invariance(flat: VectorIndex, data: dict[str, np.ndarray]) -> None:
    q = data["queries"][3]
    s1, i1 = flat.search(q, 3)
    s2, i2 = flat.search(50.0 * q[None].astype(np.float64), 3)
    assert i1.shape == (1, 3)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_padding_when_k_exceeds_ntotal() -> None:
    index = VectorIndex(4)
    index.add(np.eye(4, dtype=np.float32)[:3], np.array([5, 6, 7]))
    scores, ids = index.search(np.ones((2, 4), np.float32), 5)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert set(ids[0, :3]) == {5, 6, 7}
    empty_scores, empty_ids = VectorIndex(4).search(np.ones((1, 4), np.float32), 2)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all()


def test_default_dimension_is_256() -> None:
    index = VectorIndex()
    assert index.dim == 256 and index.kind == "flat" and index.ntotal == 0
    index.add(np.ones((1, 256), np.float32), np.array([0]))
    assert len(index) == 1


# --------------------------------------------------------------------------- approximate


@pytest.mark.parametrize(
    "config",
    [
        VectorIndexConfig(kind="hnsw", hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64),
        VectorIndexConfig(kind="ivfpq", ivf_nlist=16, ivf_nprobe=4, pq_m=8, pq_refine_factor=8),
    ],
    ids=["hnsw", "ivfpq-refined"],
)
def test_approximate_recall_at_10(
    config: VectorIndexConfig, flat: VectorIndex, data: dict[str, np.ndarray]
) -> None:
    index = VectorIndex(DIM, config)
    index.train(data["x"])
    index.add(data["x"], data["ids"])
    _, truth = flat.search(data["queries"], 10)
    _, found = index.search(data["queries"], 10)
    assert _recall_at(found, truth) >= 0.9


def test_plain_ivfpq_takes_ids_natively(data: dict[str, np.ndarray], tmp_path: Path) -> None:
    index = VectorIndex(DIM, VectorIndexConfig(kind="ivfpq", ivf_nlist=16, ivf_nprobe=8, pq_m=8))
    assert not index.is_trained
    with pytest.raises(ValueError, match="not trained; call train"):
        index.add(data["x"][:5], data["ids"][:5])
    with pytest.raises(ValueError, match="got 100 vectors; expected at least 256"):
        index.train(data["x"][:100])
    index.train(data["x"])
    index.add(data["x"], data["ids"])
    np.testing.assert_array_equal(np.sort(index.ids()), data["ids"])
    _, found = index.search(data["queries"], 10)
    assert np.isin(found, data["ids"]).all()
    assert (found[:, 0] == data["ids"][data["picked"]]).mean() >= 0.5
    allowed = data["ids"][data["family"] == 2]
    _, filtered = index.search(data["queries"], 10, allowed_ids=allowed)
    assert np.isin(filtered[filtered >= 0], allowed).all()
    index.save(tmp_path / "ivfpq.faiss")
    loaded = VectorIndex.load(tmp_path / "ivfpq.faiss")
    assert loaded.config.ivf_nlist == 16 and loaded.config.pq_m == 8
    np.testing.assert_array_equal(loaded.search(data["queries"], 10)[1], found)


def test_pq_m_must_divide_dim() -> None:
    with pytest.raises(ValueError, match="pq_m=7 does not divide dim=32"):
        VectorIndex(DIM, VectorIndexConfig(kind="ivfpq", pq_m=7))


# --------------------------------------------------------------------------- filter


def test_flat_filter_is_exact(flat: VectorIndex, data: dict[str, np.ndarray]) -> None:
    mask = data["family"] == 4
    allowed = data["ids"][mask]
    scores, ids = flat.search(data["queries"], 8, allowed_ids=allowed)
    cosine = _unit(data["queries"]) @ _unit(data["x"][mask]).T
    best = np.argsort(-cosine, axis=1)[:, :8]
    np.testing.assert_array_equal(ids, allowed[best])
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, best, axis=1), atol=1e-5)


def test_filter_edge_cases(flat: VectorIndex, data: dict[str, np.ndarray]) -> None:
    q = data["queries"][:2]
    _, ids = flat.search(q, 4, allowed_ids=np.array([], np.int64))
    assert (ids == -1).all()
    _, ids = flat.search(q, 4, allowed_ids=np.array([data["ids"][9], 123456789]))
    assert (ids[:, 0] == data["ids"][9]).all() and (ids[:, 1:] == -1).all()
    with pytest.raises(ValueError, match="allowed_ids have dtype float64"):
        flat.search(q, 4, allowed_ids=np.array([1.5]))


@pytest.mark.parametrize("exact_max", [50_000, 0], ids=["exact-scan", "graph"])
def test_hnsw_filter(exact_max: int, flat: VectorIndex, data: dict[str, np.ndarray]) -> None:
    config = VectorIndexConfig(kind="hnsw", hnsw_m=16, hnsw_ef_construction=64)
    index = VectorIndex(DIM, config)
    index.add(data["x"], data["ids"])
    index.set_search_params(filter_exact_max=exact_max)
    other_family = (data["family"][data["picked"]] + 1) % 6  # filters far from the query
    found, truth = [], []
    for q, fam in zip(data["queries"][:20], other_family[:20], strict=True):
        allowed = data["ids"][data["family"] == fam]
        found.append(index.search(q, 10, allowed_ids=allowed)[1][0])
        truth.append(flat.search(q, 10, allowed_ids=allowed)[1][0])
        assert np.isin(found[-1], allowed).all()
    recall = _recall_at(np.array(found), np.array(truth))
    assert recall == 1.0 if exact_max else recall >= 0.8


# --------------------------------------------------------------------------- persistence


def test_save_load_keeps_ids_and_results(
    flat: VectorIndex, data: dict[str, np.ndarray], tmp_path: Path
) -> None:
    path = tmp_path / "flat.faiss"
    flat.save(path)
    flat.save(path)  # overwriting is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.faiss"]
    loaded = VectorIndex.load(path, VectorIndexConfig())
    assert loaded.ntotal == N and loaded.dim == DIM and loaded.kind == "flat"
    np.testing.assert_array_equal(loaded.ids(), data["ids"])
    for allowed in (None, data["ids"][data["family"] == 1]):
        before = flat.search(data["queries"], 10, allowed_ids=allowed)
        after = loaded.search(data["queries"], 10, allowed_ids=allowed)
        np.testing.assert_array_equal(before[1], after[1])


def test_hnsw_load_applies_search_params(data: dict[str, np.ndarray], tmp_path: Path) -> None:
    built = VectorIndexConfig(kind="hnsw", hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=16)
    index = VectorIndex(DIM, built)
    index.add(data["x"][:500], data["ids"][:500])
    index.save(tmp_path / "h.faiss")
    asked = VectorIndexConfig(kind="hnsw", hnsw_m=32, hnsw_ef_search=99)
    loaded = VectorIndex.load(tmp_path / "h.faiss", asked)
    assert loaded.config.hnsw_ef_search == 99  # search-time: from the config
    assert loaded.config.hnsw_m == 8  # build-time: from the file
    assert faiss.downcast_index(loaded.faiss_index.index).hnsw.efSearch == 99
    loaded.set_search_params(ef_search=128)
    assert loaded.config.hnsw_ef_search == 128
    assert faiss.downcast_index(loaded.faiss_index.index).hnsw.efSearch == 128
    with pytest.raises(ValueError, match="built without exact re-ranking"):
        loaded.set_search_params(refine_factor=2)
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(data["ids"][:500]))


def test_load_refuses_mismatch_and_garbage(flat: VectorIndex, tmp_path: Path) -> None:
    path = tmp_path / "flat.faiss"
    flat.save(path)
    with pytest.raises(ValueError, match="holds a 'flat' index; the configuration expects 'hnsw'"):
        VectorIndex.load(path, VectorIndexConfig(kind="hnsw"))
    with pytest.raises(FileNotFoundError, match="no index file"):
        VectorIndex.load(tmp_path / "missing.faiss")
    (tmp_path / "junk.faiss").write_bytes(b"not an index at all")
    with pytest.raises(ValueError, match="could not read faiss index file"):
        VectorIndex.load(tmp_path / "junk.faiss")


def test_failed_save_leaves_no_temporary_file(flat: VectorIndex, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        flat.save(tmp_path / "no_such_dir" / "x.faiss")
    target = tmp_path / "is_a_dir"
    target.mkdir()
    with pytest.raises(OSError):
        flat.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["is_a_dir"]


# --------------------------------------------------------------------------- validation


def test_add_validation(data: dict[str, np.ndarray]) -> None:
    index = VectorIndex(DIM)
    x, ids = data["x"][:4], data["ids"][:4]
    cases = [
        ((x[:, :5], ids), r"vectors have shape \(4, 5\); expected \(n, 32\)"),
        ((x.astype(np.int32), ids), "vectors have dtype int32; expected float32"),
        ((np.where(np.eye(4, DIM) > 0, np.nan, x), ids), "NaN or Inf"),
        ((np.zeros_like(x), ids), r"vectors \[0, 1, 2, 3\] have zero length"),
        ((x, ids[:3]), r"ids have shape \(3,\); expected \(4,\)"),
        ((x, np.array([1, 2, 2, 3])), "duplicates"),
        ((x, np.array([1, -2, 3, 4])), "negative"),
        ((x, ids.astype(np.float64)), "ids have dtype float64; expected int64"),
    ]
    for (vectors, labels), message in cases:
        with pytest.raises(ValueError, match=message):
            index.add(vectors, labels)
    index.add(x, ids)
    with pytest.raises(ValueError, match=r"1 ids are already in the index \(e.g. \["):
        index.add(data["x"][4:6], np.array([ids[0], 999_999]))
    assert index.ntotal == 4
    with pytest.raises(ValueError, match="k is 0"):
        index.search(x, 0)
    with pytest.raises(ValueError, match="queries have shape"):
        index.search(np.ones((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match="dim is 0"):
        VectorIndex(0)


def test_gpu_is_optional(flat: VectorIndex, data: dict[str, np.ndarray]) -> None:
    cpu_index = flat.faiss_index
    same, used, reason = try_to_gpu(cpu_index)
    if not used:
        assert same is cpu_index and "CPU" in reason
    index = VectorIndex(DIM)
    index.add(data["x"][:100], data["ids"][:100])
    used_gpu, why = index.to_gpu()
    assert used_gpu == index.on_gpu and why
    _, ids = index.search(data["x"][:3], 1)
    np.testing.assert_array_equal(ids[:, 0], data["ids"][:3])
