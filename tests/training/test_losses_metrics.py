import math

import numpy as np
import pytest
import torch
from seislens.models.estimation import neighbour_estimate, similarity_weights, weighted_mean_std
from seislens.training.losses import clip_loss, trimodal_loss
from seislens.training.metrics import cosine_stats, recall_at_k, ssim


def test_clip_loss_known_value():
    a = torch.eye(2)
    # logits = I: each row's cross-entropy is log(1 + e^-1)
    assert float(clip_loss(a, a, torch.tensor(1.0))) == pytest.approx(math.log(1 + math.e**-1))
    # swapped pairs: the matching logit is 0, the other 1
    b = torch.eye(2).flip(0)
    assert float(clip_loss(a, b, torch.tensor(1.0))) == pytest.approx(math.log(1 + math.e))


def test_clip_loss_symmetric_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1)
    s = torch.tensor(10.0)
    assert float(clip_loss(a, b, s)) == pytest.approx(float(clip_loss(b, a, s)))
    with pytest.raises(ValueError, match="one shape"):
        clip_loss(a, b[:4], s)


def test_trimodal_weights():
    e = torch.eye(3)
    f = {"seismic": e, "velocity": e, "descriptor": e.flip(0), "logit_scale": torch.tensor(1.0)}
    total, parts = trimodal_loss(f, 1.0, 0.1)
    assert float(total) == pytest.approx(parts["loss_sv"] + 0.1 * parts["loss_vd"])


def test_recall_at_k_hand_worked():
    # query 0's match ranks 1st, query 1's 2nd, query 2's 3rd
    q = np.eye(3)
    g = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.64, 0.48]])
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    # sims q1: [0, .6, .64] -> truth .6 ranks 2nd; q2: [0, 0, .48]/|.| ranks 1st
    r = recall_at_k(q, g, ks=(1, 2, 3))
    assert r == {"recall@1": pytest.approx(2 / 3), "recall@2": 1.0, "recall@3": 1.0}


def test_cosine_stats_and_ssim():
    a = np.eye(4)
    s = cosine_stats(a, a)
    assert s["mean_positive_cosine"] == 1.0 and s["mean_negative_cosine"] == 0.0
    x = np.random.default_rng(0).uniform(-1, 1, (2, 20, 20))
    assert ssim(x, x) == pytest.approx([1.0, 1.0])
    y = np.random.default_rng(1).uniform(-1, 1, (2, 20, 20))
    assert (ssim(x, y) < 0.2).all()  # unrelated noise: little structure in common


def test_neighbour_estimate_hand_worked():
    scores = np.array([[0.9, 0.9]])
    ids = np.array([[0, 1]])
    vals = np.array([[1.0], [3.0]])
    mean, std = neighbour_estimate(scores, ids, vals)
    assert mean[0, 0] == pytest.approx(2.0) and std[0, 0] == pytest.approx(1.0)


def test_batched_estimate_is_the_single_query_estimate_row_by_row(monkeypatch):
    """The evaluation's batched path (Q, k) gives the served one-query numbers, chunked
    or not."""
    from seislens.models import estimation

    rng = np.random.default_rng(0)
    scores = np.sort(rng.uniform(0.2, 0.9, (7, 5)), axis=1)[:, ::-1]
    ids = rng.integers(0, 20, (7, 5))
    values = rng.normal(size=(20, 4, 3))
    monkeypatch.setattr(estimation, "CHUNK_QUERIES", 3)
    mean, std = neighbour_estimate(scores, ids, values, temperature=0.05)
    for q in range(7):
        m, s = weighted_mean_std(values[ids[q]], similarity_weights(scores[q], 0.05))
        np.testing.assert_array_equal(mean[q], m)
        np.testing.assert_array_equal(std[q], s)
    with pytest.raises(ValueError, match="temperature"):
        neighbour_estimate(scores, ids, values, temperature=0)
    with pytest.raises(ValueError, match="must both be"):
        neighbour_estimate(scores[0], ids[0], values)
