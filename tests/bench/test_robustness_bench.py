"""bench/robustness.py: its acquisitions through the real SEG-Y reader, its figures'
definitions, and (slow) the whole benchmark at a toy size on a bundle with a head."""

from __future__ import annotations

import numpy as np
import pytest
from bench_loader import load_bench
from seislens.models.contract import N_RECEIVERS, N_TIME
from seislens.models.descriptors import relative_errors
from seislens.training.metrics import recall_at_k

rb = load_bench("robustness")


def _smooth_gathers(n: int, receivers: int = N_RECEIVERS, nt: int = N_TIME) -> np.ndarray:
    """Band-limited random gathers (n, 5, nt, receivers): 15 Hz wavelets at random times."""
    rng = np.random.default_rng(0)
    t = np.arange(nt) / 1000.0
    out = np.zeros((n, 5, nt, receivers), np.float32)
    for t0 in rng.uniform(0.1, 0.9, 6):
        arg = (np.pi * 15.0 * (t - t0)) ** 2
        out += ((1 - 2 * arg) * np.exp(-arg))[None, None, :, None] * rng.normal(
            size=(n, 5, 1, receivers)
        ).astype(np.float32)
    return out


def _acquisition(name_start: str):
    return next(a for a in rb.ACQUISITIONS if a.name.startswith(name_start))


def test_smaller_gallery_is_a_prefix_of_the_wider_one():
    rows = rb.prefix_rows(12, 20)
    assert np.array_equal(rb.gallery_models(20, 7)[rows], rb.gallery_models(12, 7))
    assert rb.prefix_rows(20, 12) is None
    assert sum(rb.per_family(1000)) == 1000 and set(rb.per_family(1000)) == {125}


def test_frame_and_resampled_acquisitions_read_back(tmp_path):
    gathers = _smooth_gathers(2)
    frame = rb.read_back(_acquisition("the frame itself"), gathers, tmp_path)
    assert frame.refused == 0 and list(frame.rows) == [0, 1]
    assert np.array_equal(frame.uploads[0].data, gathers[0])
    assert not frame.uploads[0].partial_geometry
    for name, dt_ms in (("2 ms", 2), ("4 ms", 4)):
        got = rb.read_back(_acquisition(name), gathers, tmp_path)
        assert got.uploads[0].source_dt_ms == dt_ms
        err = np.abs(got.uploads[1].data - gathers[1])[:, 50:950].max()
        assert err < 0.05 * np.abs(gathers[1]).max(), name
    assert list(tmp_path.iterdir()) == []  # every written file is removed


def test_shot_and_receiver_acquisitions_are_mapped_by_the_reader(tmp_path):
    gathers = _smooth_gathers(1)
    one = rb.read_back(_acquisition("one shot at x = 340"), gathers, tmp_path).uploads[0]
    assert one.shot_mask.tolist() == [False, False, True, False, False]
    assert np.array_equal(one.data[2], gathers[0, 2]) and not one.data[[0, 1, 3, 4]].any()
    three = rb.read_back(_acquisition("three shots"), gathers, tmp_path).uploads[0]
    assert three.shot_mask.tolist() == [True, False, True, False, True]
    coarse = rb.read_back(_acquisition("35 receivers at 20 m"), gathers, tmp_path)
    assert coarse.uploads[0].receiver_mask.sum(axis=1).tolist() == [69] * 5
    assert rb.mapped_summary(coarse.uploads) == "5 shots, 69 of 70 receivers"
    partial = rb.read_back(_acquisition("partial spread"), gathers, tmp_path).uploads[0]
    assert partial.receiver_mask[:, :35].all() and not partial.receiver_mask[:, 35:].any()
    assert partial.partial_geometry
    fine = _smooth_gathers(1, receivers=2 * N_RECEIVERS)
    got = rb.read_back(_acquisition("140 receivers at 5 m"), fine, tmp_path).uploads[0]
    assert np.array_equal(got.data, fine[0][..., ::2])  # grid points sit on receivers


def test_a_refused_acquisition_carries_the_readers_message(tmp_path):
    got = rb.read_back(_acquisition("spread of 30 receivers"), _smooth_gathers(2), tmp_path)
    assert got.uploads == [] and got.refused == 2 and len(got.refusals) == 1
    assert "covering 30 of the 70 grid points" in got.refusals[0]
    row = rb.geometry_row(_acquisition("spread of 30"), got, None, None, None, None)
    assert row[1].startswith("refused: ") and row[2:] == [rb.DASH] * 5


def test_head_figures_use_open_sets_mre_and_count_finite_pairs():
    rng = np.random.default_rng(2)
    truth = rng.uniform(1.0, 5.0, size=(4, len(rb.DESCRIPTOR_NAMES)))
    truth[1, 3] = np.nan
    mean = truth + rng.normal(0.0, 0.5, size=truth.shape)
    std = np.full_like(mean, 0.5)
    ok = ~np.isnan(truth)
    expected = np.mean((np.abs(truth - mean) <= 0.5)[ok])
    assert rb.within(truth, mean, std) == pytest.approx(expected)
    figures = rb.head_figures(rb.Embedded(np.zeros((4, 8)), mean, std), truth, None, np.zeros(4))
    assert figures["head_coverage"] == pytest.approx(expected)
    assert np.isnan(figures["head_calibrated_coverage"])  # no calibration
    truth[1, 3] = mean[1, 3] = 2.0
    figures = rb.head_figures(rb.Embedded(np.zeros((4, 8)), mean, std), truth, None, np.zeros(4))
    assert figures["head_mre"] == relative_errors(mean, truth).mean()  # open_set's MRE
    exact = rb.head_figures(rb.Embedded(np.zeros((4, 8)), mean, std), mean, None, np.zeros(4))
    assert exact["head_mre"] == 0.0 and exact["head_coverage"] == 1.0
    without = rb.head_figures(rb.Embedded(np.zeros((4, 8)), None, None), truth, None, np.zeros(4))
    assert all(np.isnan(v) for v in without.values())


def test_recall_against_matches_recall_at_k_and_counts_ties_against_the_truth():
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(30, 8))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    queries = gallery + 0.3 * rng.normal(size=gallery.shape)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    full = rb.recall_against(queries, gallery, np.arange(30))
    assert full == recall_at_k(queries, gallery, (1, 10))
    assert rb.recall_against(gallery[[3]], np.stack([gallery[3]] * 2), np.array([1])) == {
        "recall@1": 0.0,
        "recall@10": 1.0,
    }


@pytest.mark.slow
def test_benchmark_runs_end_to_end_at_toy_size(tiny_bundle, capsys):
    argv = ["--bundle", str(tiny_bundle), "--gallery", "10", "--propagator-gallery", "10"]
    tables = rb.main([*argv, "--workers", "1"])
    out = capsys.readouterr().out
    assert out.lstrip().startswith("`") and "bench/robustness.py --bundle" in out
    assert len(tables["main"]) == len(rb.QUERY_SETS)
    assert [r[0] for r in tables["propagators"]] == list(rb.PROPAGATORS.values())
    assert len(tables["geometry"]) == len(rb.ACQUISITIONS)
    head_mre = rb.MAIN_HEADER.index("head MRE")
    assert all(r[head_mre] != rb.DASH for r in tables["main"])  # the tiny bundle has a head
    refused = [r for r in tables["geometry"] if r[1].startswith("refused: ")]
    assert [r[0] for r in refused] == [_acquisition("spread of 30").name]
    frame, in_memory = tables["geometry"][0], tables["main"][0]
    assert frame[2] == in_memory[1]  # the SEG-Y round trip keeps the as-generated R@1


def test_modelled_gathers_are_cached_between_runs(tmp_path):
    import argparse

    models = rb.gallery_models(8, 7)[:2]
    args = argparse.Namespace(cache=tmp_path / "cache", workers=1, threads=1)
    first = rb.cached_model_all(models, [rb.BASE], args)[rb.BASE]
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "cache").glob("*.part.npy"))
    stamp = files[0].stat().st_mtime_ns
    again = rb.cached_model_all(models, [rb.BASE], args)[rb.BASE]
    assert np.array_equal(first, again) and files[0].stat().st_mtime_ns == stamp
    other = rb.cached_model_all(models[:1] + 100.0, [rb.BASE], args)[rb.BASE]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    assert not np.array_equal(other[0], first[0])


def test_large_model_crops_are_layered_folded_and_in_the_velocity_range():
    rng = np.random.default_rng(0)
    big = rb.large_model(rng)
    assert big.shape == (300, 1200) and big.min() >= 1500.0 and big.max() <= 4500.0
    assert len(np.unique(big[:, 600])) >= 10  # many layers down one column
    tops = np.argmax(big > 1500.0, axis=0)  # the first interface's depth per column
    assert tops.max() - tops.min() >= 10  # folded / faulted, not flat
    crops = rb.large_model_crops(12, rng)
    assert crops.shape == (12, 70, 70) and crops.dtype == np.float32
