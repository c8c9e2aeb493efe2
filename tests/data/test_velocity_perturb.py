"""Gather perturbations: delay, noise, per-trace gains, re-modelling."""

import numpy as np
import pytest
from seislens.data.velocity_perturb import (
    add_gaussian_noise,
    apply_trace_gains,
    delay_gathers,
    remodel_gathers,
)


def gathers(n: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (5, 1000, 70) if n is None else (n, 5, 1000, 70)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("delay", [4.0, 10.0, -3.0])
def test_delay_shifts_and_zero_fills(delay):
    g = gathers(2)
    d = delay_gathers(g, delay)
    n = int(delay)
    assert d.shape == g.shape and d.dtype == np.float32
    if n > 0:
        assert np.array_equal(d[..., n:, :], g[..., :-n, :])
        assert not d[..., :n, :].any()
    else:
        assert np.array_equal(d[..., :n, :], g[..., -n:, :])
        assert not d[..., n:, :].any()


def test_delay_of_zero_or_past_the_record():
    g = gathers()
    assert np.array_equal(delay_gathers(g, 0.0), g)
    assert not delay_gathers(g, 2000.0).any()
    assert np.array_equal(delay_gathers(g, 4.0, dt_ms=2.0)[:, 2:], g[:, :-2])


def test_delay_refuses_a_fraction_of_a_sample():
    with pytest.raises(ValueError, match="whole number"):
        delay_gathers(gathers(), 2.5)


def test_noise_at_a_fraction_of_each_gathers_rms():
    g = gathers(3) * np.array([1.0, 10.0, 100.0], np.float32)[:, None, None, None]
    noisy = add_gaussian_noise(g, 0.3, np.random.default_rng(1))
    noise = noisy - g
    ratio = np.sqrt((noise**2).mean(axis=(1, 2, 3)) / (g**2).mean(axis=(1, 2, 3)))
    assert np.allclose(ratio, 0.3, rtol=0.02)
    again = add_gaussian_noise(g, 0.3, np.random.default_rng(1))
    assert np.array_equal(noisy, again)  # seeded
    assert np.array_equal(add_gaussian_noise(g, 0.0, np.random.default_rng(1)), g)
    with pytest.raises(ValueError, match="fraction"):
        add_gaussian_noise(g, -0.1, np.random.default_rng(1))


def test_trace_gains_are_per_trace_and_log_uniform():
    g = np.ones((400, 5, 10, 70), np.float32)
    out = apply_trace_gains(g, 0.5, 2.0, np.random.default_rng(2))
    gains = out[:, :, 0, :]
    assert np.array_equal(out, np.broadcast_to(gains[:, :, None, :], out.shape))
    assert gains.min() >= 0.5 and gains.max() <= 2.0
    logs = np.log(gains.ravel())
    # log-uniform: log-gains uniform on [log 0.5, log 2], mean 0, quartiles at ±log(2)/2
    assert abs(logs.mean()) < 0.01
    assert np.quantile(logs, 0.75) == pytest.approx(np.log(2) / 2, abs=0.02)
    with pytest.raises(ValueError, match="gain bounds"):
        apply_trace_gains(g, 2.0, 0.5, np.random.default_rng(2))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="gathers must be"):
        delay_gathers(np.zeros((1000, 70)), 1.0)


def test_remodel_with_the_second_propagator_and_another_frequency():
    models = np.full((1, 70, 70), 2500.0, np.float32)
    g15 = remodel_gathers(models, 15.0, "fd")
    g25 = remodel_gathers(models, 25.0, "fd")
    assert g15.shape == (1, 5, 1000, 70) and g15.dtype == np.float32
    # a higher peak frequency peaks earlier (1.5 / f) at the source
    assert np.argmax(g25[0, 2, :, 34]) < np.argmax(g15[0, 2, :, 34])
    with pytest.raises(ValueError, match="unknown propagator"):
        remodel_gathers(models, 15.0, "spectral")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="velocity_models"):
        remodel_gathers(models[0], 15.0, "fd")
