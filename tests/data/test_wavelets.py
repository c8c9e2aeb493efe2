"""Source wavelets: peak times, bands, causality and phase rotation."""

import numpy as np
import pytest
from seislens.data.wavelets import (
    WAVELET_KINDS,
    WaveletSpec,
    berlage,
    make_wavelet,
    ormsby,
    ricker,
    rotate_phase,
)

NT, DT = 1000, 0.001


def _peak_frequency(w: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(w, n=8192))
    return float(np.fft.rfftfreq(8192, DT)[spec.argmax()])


def test_ricker_peaks_at_its_delay_and_frequency():
    w = ricker(15.0, NT, DT, delay=0.02)
    assert np.argmax(w) == round((1.5 / 15.0 + 0.02) / DT)
    assert abs(_peak_frequency(w) - 15.0) < 0.5


def test_ormsby_energy_stays_in_its_band():
    w = ormsby((5.0, 10.0, 30.0, 40.0), NT, DT)
    spec = np.abs(np.fft.rfft(w, n=8192)) ** 2
    f = np.fft.rfftfreq(8192, DT)
    assert spec[(f >= 5) & (f <= 40)].sum() / spec.sum() > 0.95
    assert np.abs(w).max() == pytest.approx(1.0)


def test_ormsby_refuses_unordered_corners():
    with pytest.raises(ValueError, match="f1 < f2"):
        ormsby((10.0, 5.0, 30.0, 40.0), NT, DT)


def test_berlage_is_causal():
    w = berlage(12.0, NT, DT, delay=0.05)
    assert np.all(w[: round(0.05 / DT)] == 0)
    assert np.abs(w).max() == pytest.approx(1.0)


def test_phase_rotation_by_180_degrees_flips_the_sign():
    w = ricker(20.0, NT, DT)
    assert np.allclose(rotate_phase(w, 180.0), -w, atol=1e-5)
    quarter = rotate_phase(rotate_phase(w, 90.0), 90.0)
    assert np.allclose(quarter, -w, atol=1e-4)
    # a rotation keeps the amplitude spectrum
    assert np.allclose(
        np.abs(np.fft.rfft(rotate_phase(w, 37.0))), np.abs(np.fft.rfft(w)), atol=1e-3
    )


@pytest.mark.parametrize("kind", WAVELET_KINDS)
def test_every_family_has_its_peak_frequency_roughly(kind):
    w = make_wavelet(WaveletSpec(kind=kind, peak_hz=20.0), NT, DT)
    assert w.shape == (NT,) and w.dtype == np.float32 and np.isfinite(w).all()
    assert 10.0 < _peak_frequency(w) < 30.0
