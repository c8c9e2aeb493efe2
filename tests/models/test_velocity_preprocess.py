import numpy as np
import pytest
from seislens.models.velocity_preprocess import (
    DescriptorPreprocess,
    GatherPreprocess,
    VelocityPreprocess,
    decimate_time,
    descriptor_features,
    fit_preprocessing,
    gather_features,
    velocity_features,
    velocity_from_features,
)


def gather(seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(5, 1000, 70)).astype(np.float32)
    g[:, 100, :] = 40.0  # a strong positive "direct wave"
    return g


def test_indifferent_to_scale_and_polarity():
    cfg = GatherPreprocess(decimate=8)
    g = gather()
    ref = gather_features(g, cfg)
    assert ref.shape == (5, 125, 70) and ref.dtype == np.float32
    for factor in (1e-6, 3.0, -1.0, -250.0):
        assert np.allclose(gather_features(g * factor, cfg), ref, atol=1e-5)


def test_batch_and_single_agree_and_decimation_is_a_mean():
    cfg = GatherPreprocess(decimate=4)
    g = np.stack([gather(0), gather(1)])
    assert np.allclose(gather_features(g, cfg)[1], gather_features(g[1], cfg))
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1)
    assert decimate_time(x, 4).ravel().tolist() == [1.5, 5.5]


def test_velocity_round_trip_and_range():
    cfg = VelocityPreprocess()
    v = np.random.default_rng(0).uniform(1500, 4500, (3, 70, 70)).astype(np.float32)
    x = velocity_features(v, cfg)
    assert x.shape == (3, 1, 70, 70) and x.min() >= -1 and x.max() <= 1
    assert np.allclose(velocity_from_features(x, cfg), v, atol=0.01)
    assert velocity_features(np.full((70, 70), 1500.0), cfg).min() == -1.0


def test_fit_standardises():
    desc = np.random.default_rng(0).normal(5, 2, (50, 9))
    pre = fit_preprocessing(np.stack([gather(i) for i in range(3)]), desc, GatherPreprocess())
    z = descriptor_features(desc, pre.descriptors)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-5) and np.allclose(z.std(axis=0), 1, atol=1e-4)
    f = gather_features(np.stack([gather(i) for i in range(3)]), pre.gather)
    assert abs(f.mean()) < 1e-3 and f.std() == pytest.approx(1.0, rel=1e-3)
    assert isinstance(pre.descriptors, DescriptorPreprocess)


def test_bad_gathers_refused():
    cfg = GatherPreprocess()
    with pytest.raises(ValueError, match="time samples"):
        gather_features(np.zeros((5, 500, 70)), cfg)
    g = gather()
    g[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        gather_features(g, cfg)
