"""The second propagator (staggered-grid FD) against analytic travel times and deepwave."""

import numpy as np
import pytest
from scipy.interpolate import CubicSpline
from seislens.data.velocity_fd import FD_SCALE, FDConfig, fd_gathers, source_rate, substeps

PEAK = 1.5 / 15.0  # s: the Ricker's peak time


def layered(v1: float, v2: float, depth_cells: int) -> np.ndarray:
    m = np.full((70, 70), v1, np.float32)
    m[depth_cells:] = v2
    return m


def peak_time(trace: np.ndarray, after: float = 0.0, dt: float = 0.001) -> float:
    """Time (s) of the largest |amplitude| after ``after`` s, to 0.1 ms on a cubic spline."""
    t = np.arange(len(trace)) * dt
    fine = np.arange(after, t[-1], dt / 10)
    return float(fine[np.argmax(np.abs(CubicSpline(t, trace)(fine)))])


def test_shape_dtype_polarity():
    g = fd_gathers(layered(2000, 3000, 40), FDConfig(nt=300))
    assert g.shape == (5, 300, 70) and g.dtype == np.float32
    assert np.isfinite(g).all()
    # OpenFWI's polarity: the direct wave's main lobe at the source is positive
    assert g[2, :, 34].max() > -g[2, :, 34].min()


def analytic_trace(offset_m: float, v: float, nt: int, dt: float = 0.001) -> np.ndarray:
    """The 2-D Green's function of ∂²p/∂t² = v²∇²p + v² dx² ricker(t) δ(x) at ``offset_m``:
    ``p = dx² / (2π) ∫₀^∞ ricker(t - (r / v) cosh θ) dθ`` (dx = 10 m, FD_SCALE applied)."""
    theta = np.linspace(0.0, 8.0, 8001)[:, None]
    t = np.arange(nt) * dt - (offset_m / v) * np.cosh(theta) - PEAK
    a = (np.pi * 15.0 * t) ** 2
    kernel = ((1 - 2 * a) * np.exp(-a)).sum(axis=0) * (theta[1, 0] - theta[0, 0])
    return FD_SCALE * 100.0 / (2 * np.pi) * kernel


def test_direct_wave_matches_the_analytic_2d_solution():
    v, nt = 2500.0, 450
    g = fd_gathers(np.full((70, 70), v, np.float32), FDConfig(n_shots=1, nt=nt))
    for offset in (50.0, 100.0, 200.0, 400.0, 550.0):  # m, the shot is at x = 0
        ours, exact = g[0, :, int(offset / 10)], analytic_trace(offset, v, nt)
        # arrival (peak) time within 3 ms of the analytic one, itself ≈ 0.1 s + offset / v
        # plus the 2-D Green's function's phase lag (5–7 ms here)
        assert peak_time(ours) == pytest.approx(peak_time(exact), abs=0.003)
        assert abs(peak_time(exact) - PEAK - offset / v) < 0.008
        assert np.abs(ours).max() == pytest.approx(np.abs(exact).max(), rel=0.05)
        assert np.corrcoef(ours, exact)[0, 1] > 0.97


def test_zero_offset_reflection_time_matches_two_layer_analytic():
    v1, h = 2000.0, 300.0  # interface at 300 m; source and receiver 10 m deep
    g = fd_gathers(layered(v1, 4000, int(h / 10)), FDConfig(nt=500))
    t0 = 2 * (h - 10.0) / v1 + PEAK
    assert peak_time(g[2, :, 34], after=t0 - 0.05) == pytest.approx(t0, abs=0.006)


@pytest.mark.parametrize("v", [1500.0, 4500.0])
def test_stable_up_to_the_fastest_velocity(v):
    model = layered(v, 6000.0 - v, 30)
    g = fd_gathers(model, FDConfig(n_shots=1))
    assert np.isfinite(g).all()
    direct = np.abs(g[0, :300]).max()
    assert np.abs(g[0, 800:]).max() < 0.05 * direct  # energy leaves through the sponge


def test_substeps_keep_the_result():
    model = layered(2000, 3500, 30)
    assert substeps(FDConfig(), 4500.0) == 1
    assert substeps(FDConfig(courant=0.3), 4500.0) == 3
    assert substeps(FDConfig(), 9000.0) == 2
    coarse = fd_gathers(model, FDConfig(n_shots=1, nt=400))
    fine = fd_gathers(model, FDConfig(n_shots=1, nt=400, courant=0.3))
    corr = np.corrcoef(coarse.ravel(), fine.ravel())[0, 1]
    assert corr > 0.99


def test_source_is_the_integral_of_the_ricker():
    t = np.arange(4000) * 5e-5
    q = source_rate(15.0, t)
    a = (np.pi * 15.0 * (t - PEAK)) ** 2
    ricker = (1 - 2 * a) * np.exp(-a)
    assert np.allclose(np.gradient(q, t), ricker, atol=2e-3)


def test_matches_deepwave_on_a_two_layer_model():
    pytest.importorskip("deepwave")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from seislens.data.velocity_forward import ForwardConfig, model_gathers

    model = layered(2000, 3500, 30)
    ours = fd_gathers(model, FDConfig(nt=500))
    theirs = model_gathers(model, ForwardConfig(nt=500))
    corr = float((ours * theirs).sum() / np.sqrt((ours**2).sum() * (theirs**2).sum()))
    assert corr > 0.8
    assert np.sqrt((theirs**2).mean() / (ours**2).mean()) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize(
    ("velocity", "config", "message"),
    [
        (np.full((70,), 2000.0), None, "must be \\(nz, nx\\)"),
        (np.full((70, 70), -1.0), None, "finite and positive"),
        (np.full((70, 70), np.nan), None, "finite and positive"),
        (np.full((10, 10), 2000.0), FDConfig(receiver_depth=12), "receiver_depth"),
    ],
)
def test_bad_input_is_refused(velocity, config, message):
    with pytest.raises(ValueError, match=message):
        fd_gathers(velocity, config)
