"""Wave physics of the forward modelling, against independent calculations."""

import numpy as np
import pytest
from seislens.data.velocity_forward import ForwardConfig, model_gathers, source_columns
from seislens.data.wavelets import ricker

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

PEAK = 1.5 / 15.0  # s: the Ricker's peak time


def layered(v1, v2, depth_cells):
    m = np.full((70, 70), v1, np.float32)
    m[depth_cells:] = v2
    return m


def first_peak_time(trace, dt=0.001, after=0.0):
    """Time of the largest |amplitude| after ``after`` s, refined by a parabola."""
    i0 = int(after / dt)
    a = np.abs(trace)
    i = i0 + int(np.argmax(a[i0:]))
    if 0 < i < len(a) - 1:
        den = a[i - 1] - 2 * a[i] + a[i + 1]
        if den != 0:
            return (i + 0.5 * (a[i - 1] - a[i + 1]) / den) * dt
    return i * dt


def test_source_positions_follow_openfwi():
    assert source_columns(5, 70).tolist() == [0, 17, 34, 52, 69]


def test_gather_shape_finite_and_not_zero():
    g = model_gathers(layered(2000, 3000, 35))
    assert g.shape == (5, 1000, 70) and g.dtype == np.float32
    assert np.isfinite(g).all()
    assert np.abs(g).max() > 1.0
    # OpenFWI's polarity: the direct wave's main lobe at the source is positive
    assert g[2, :, 34].max() > -g[2, :, 34].min()


def test_direct_wave_moveout_matches_top_velocity():
    v1 = 2500.0
    g = model_gathers(layered(v1, 4000, 50))
    shot, src = 2, 34  # middle source
    offsets = np.arange(10, 35)  # cells; the head wave from 500 m overtakes past ~2 km
    times = np.array([first_peak_time(g[shot, :, src + k]) for k in offsets])
    slope = np.polyfit(offsets * 10.0, times, 1)[0]  # s/m
    assert slope == pytest.approx(1 / v1, rel=0.03)
    # moveout between 100 m and 300 m offset: 200 m / v1, within 3 ms (absolute times
    # carry the 2-D Green's function's phase delay, a few ms, common to all offsets)
    assert times[20] - times[0] == pytest.approx(200.0 / v1, abs=0.003)


def test_reflection_time_matches_two_layer_analytic():
    v1, h = 2000.0, 300.0  # interface at 300 m; source and receiver at 10 m
    g = model_gathers(layered(v1, 4000, int(h / 10)))
    trace = g[2, :, 34]  # zero offset
    t0 = 2 * (h - 10.0) / v1 + PEAK
    t_pick = first_peak_time(trace, after=t0 - 0.05)
    assert t_pick == pytest.approx(t0, abs=0.006)


def test_faster_model_gives_earlier_reflections():
    slow = model_gathers(layered(2000, 3500, 30))[2, :, 34]
    fast = model_gathers(layered(2800, 4200, 30))[2, :, 34]
    t_slow = first_peak_time(slow, after=0.25)
    t_fast = first_peak_time(fast, after=0.25 * 2000 / 2800)
    assert t_fast < t_slow - 0.05


def numpy_fd_trace(v, nt=700, dt=0.0005, dx=10.0, src=(1, 34), rec=(1, 44), pad=60):
    """Independent 2nd-order finite differences in NumPy with a wide sponge boundary."""
    vp = np.pad(v, pad, mode="edge").astype(np.float64)
    nz, nx = vp.shape
    d = np.zeros((nz, nx))
    ramp = np.arange(pad, 0, -1) / pad
    d[:pad, :] = np.maximum(d[:pad, :], ramp[:, None])
    d[-pad:, :] = np.maximum(d[-pad:, :], ramp[::-1][:, None])
    d[:, :pad] = np.maximum(d[:, :pad], ramp[None, :])
    d[:, -pad:] = np.maximum(d[:, -pad:], ramp[::-1][None, :])
    damp = np.exp(-((0.015 * pad * d) ** 2))
    w = ricker(15.0, nt, dt)
    p0 = np.zeros((nz, nx))
    p1 = np.zeros((nz, nx))
    out = np.zeros(nt)
    c2 = (vp * dt / dx) ** 2
    sz, sx = src[0] + pad, src[1] + pad
    for it in range(nt):
        lap = np.zeros_like(p1)
        lap[1:-1, 1:-1] = (
            p1[2:, 1:-1] + p1[:-2, 1:-1] + p1[1:-1, 2:] + p1[1:-1, :-2] - 4 * p1[1:-1, 1:-1]
        )
        p2 = 2 * p1 - p0 + c2 * lap
        p2[sz, sx] += vp[sz, sx] ** 2 * dt**2 * w[it]
        p2 *= damp
        p0, p1 = p1 * damp, p2
        out[it] = p1[rec[0] + pad, rec[1] + pad]
    return out[::2]  # to 1 ms


def test_matches_independent_numpy_finite_differences():
    v = layered(2000, 3000, 25)
    ours = model_gathers(v, ForwardConfig(nt=350))[2, :, 44]
    ref = numpy_fd_trace(v)[:350]
    # OpenFWI's polarity is that of a plain scheme injecting +v²dt²·wavelet
    corr = np.corrcoef(ours, ref)[0, 1]
    assert corr > 0.95
    assert 0.8 < np.abs(ours).max() / np.abs(ref).max() < 1.25
