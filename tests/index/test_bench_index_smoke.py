"""bench/index.py at a toy size: every index kind measured, embeddings cached and reused."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "bench" / "index.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_index", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_models_do_not_depend_on_chunking():
    bench = _load_bench()
    whole = bench.family_cycled_models(0, 0, 20)
    assert np.array_equal(bench.family_cycled_models(0, 3, 20), whole[3:])
    assert np.array_equal(bench.family_cycled_models(0, 9, 10)[0], whole[9])


def test_bench_index_runs_at_toy_size(tiny_bundle, tmp_path, capsys):
    bench = _load_bench()
    argv = ["--bundle", str(tiny_bundle), "--queries", "40", "--workers", "1"]
    argv += ["--single-budget", "0.01", "--out", str(tmp_path)]
    results = bench.main([*argv, "--sizes", "600"])
    out = capsys.readouterr().out
    assert {r.kind for r in results} == {"flat", "hnsw", "ivfpq"}
    assert len(results) == 1 + 5 + 2 * 4
    assert all(0.0 <= r.recall <= 1.0 and r.timing.p50_ms > 0 for r in results)
    assert "### HNSW" in out and "### IVF-PQ" in out and "threads" in out
    assert len(list(tmp_path.glob("embeddings-*-600.npy"))) == 1

    # a smaller library is a prefix of the cached one: nothing is embedded again
    again = bench.main([*argv, "--sizes", "300"])
    assert "cached (embeddings-" in capsys.readouterr().out
    assert {r.size for r in again} == {300}
