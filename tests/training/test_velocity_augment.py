"""On-the-fly augmentation: off is the identity, each perturbation does what it says."""

import numpy as np
import pytest
from seislens.models.velocity_preprocess import GatherPreprocess, gather_features
from seislens.training.velocity_augment import AugmentConfig, augment_features

PRE = GatherPreprocess(decimate=8, mean=0.02, std=0.3)
OFF = AugmentConfig(**{k: 0.0 for k in AugmentConfig.model_fields if k.endswith("_prob")})


def _gathers(n=3):
    """Synthetic (n, 5, 1000, 70) gathers: a Ricker arriving along a straight moveout."""
    t = np.arange(1000)[:, None]
    x = np.arange(70)[None, :]
    out = np.zeros((n, 5, 1000, 70), np.float32)
    for s, src in enumerate((0, 17, 34, 52, 69)):
        arrival = 100 + 8 * np.abs(x - src)
        a = (np.pi * 15 * (t - arrival) / 1000.0) ** 2
        out[:, s] = (1 - 2 * a) * np.exp(-a)
    return out


def _only(**on):
    return OFF.model_copy(update=on)


def test_all_off_is_the_identity():
    f = gather_features(_gathers(), PRE)
    out = augment_features(f, OFF, PRE, np.random.default_rng(0))
    assert out.shape == f.shape and out.dtype == np.float32
    assert np.abs(out - f).max() < 1e-4


def test_same_seed_same_batch_other_seed_other_batch():
    f = gather_features(_gathers(), PRE)
    a = augment_features(f, AugmentConfig(), PRE, np.random.default_rng([1, 2, 3]))
    b = augment_features(f, AugmentConfig(), PRE, np.random.default_rng([1, 2, 3]))
    c = augment_features(f, AugmentConfig(), PRE, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.isfinite(a).all()


def test_a_trigger_delay_moves_arrivals_later():
    f = gather_features(_gathers(1), PRE)
    late = augment_features(
        f, _only(delay_prob=1.0, delay_ms=(40.0, 40.0)), PRE, np.random.default_rng(0)
    )
    peak = lambda x: int(np.abs(x[0, 0, :, 30]).argmax())  # noqa: E731
    assert peak(late) - peak(f) == 5  # 40 ms = 5 samples of 8 ms


def test_dropped_shots_are_zero_filled_as_the_service_does():
    f = gather_features(_gathers(4), PRE)
    out = augment_features(f, _only(shot_drop_prob=1.0), PRE, np.random.default_rng(0))
    empty = -PRE.mean / PRE.std  # a zero trace after preprocessing
    for g in out:
        dead = [np.allclose(shot, empty, atol=1e-5) for shot in g]
        assert 1 <= sum(dead) <= 4  # at least one shot kept, at least one dropped


def test_single_shot_dropout_keeps_one_shot_in_every_slot():
    f = gather_features(_gathers(20), PRE)
    cfg = _only(shot_drop_prob=1.0, single_shot_prob=1.0)
    out = augment_features(f, cfg, PRE, np.random.default_rng(0))
    empty = -PRE.mean / PRE.std
    kept = []
    for g in out:
        alive = [not np.allclose(shot, empty, atol=1e-5) for shot in g]
        assert sum(alive) == 1
        kept.append(alive.index(True))
    assert len(set(kept)) >= 3  # the one shot is drawn over the slots, end-on ones too


def test_noise_lowers_the_correlation_with_the_clean_gather():
    f = gather_features(_gathers(1), PRE)
    noisy = augment_features(
        f, _only(noise_prob=1.0, snr_db=(0.0, 0.0)), PRE, np.random.default_rng(0)
    )
    assert np.corrcoef(noisy.ravel(), f.ravel())[0, 1] < 0.95


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="B, shots"):
        augment_features(np.zeros((5, 125, 70), np.float32), OFF, PRE, np.random.default_rng(0))
