"""Source and path physics of the synthetic event generator (NumPy only).

* **Moment and corner** — M0 = 10^(1.5 Mw + 9.1) N·m (Hanks & Kanamori 1979); a causal
  Brune ω² source whose displacement spectrum is M0 / (1 + i f/fc)², with the Brune (1970)
  corner fc = 0.37 β (Δσ / M0)^(1/3) for S (β = 3500 m/s) and 1.5 fc for P — so fc falls
  as M0^(-1/3): about 30 Hz at Mw 0, 3 Hz at Mw 3, 0.1 Hz at Mw 7 (Δσ = 3 MPa).
* **Radiation** — a double couple's far-field P, SV and SH patterns (Aki & Richards 2002,
  eq. 4.89) at the ray's azimuth and take-off; rms over the sphere sqrt(4/15) for P and
  sqrt(2/5) for S.
* **Amplitude** — far-field velocity M0 F / (4π ρ v³ R) at the source's ρ and v (crust
  2.7 g/cm³, 5.8/3.36 km/s; mantle 3.3 g/cm³, 8.0/4.5 km/s in iasp91), times the free
  surface factor 2. Geometric spreading per wave type:

  - direct waves of crustal sources (Pg, Sg) — 1/R to 100 km, then 1/sqrt(R) (the crust
    traps them), continuous at 100 km;
  - direct waves of sources below the Moho, and refracted waves (P*, Pn, S*, Sn) — 1/R
    (body waves), the refracted ones scaled by a head-wave ratio (0.2–0.6 drawn per trace:
    Pn is weaker than Pg where both arrive);
  - Lg — the 1/sqrt(R) crustal branch above, scaled by an Lg ratio (drawn per trace),
    ramped in over the first 150 km (before that it is the Sg coda) and fading as
    exp(-(h - Moho)/10 km) for sources below the Moho (deep events excite little Lg).

* **Attenuation** — exp(-π f t*) with t* = T/Q + κ (T the phase's travel time, Q the
  path's, κ the site's) and its constant-Q dispersion (a minimum-phase delay of
  (t*/π) ln(f_ref/f)), so pulses stay causal and broaden with distance.

Limits: point sources (no finite-fault directivity or duration beyond 1/fc — above about
Mw 6.5 the spectrum's far-field point-source shape and 1/R decay overstate near-source
motion, and nothing here saturates it as finite faults do), one Q for P, S and Lg,
frequency-independent Q, no site amplification beyond κ.
"""

from __future__ import annotations

import math

import numpy as np

BETA_CORNER = 3500.0  # m/s, the S velocity in Brune's corner-frequency formula
MEAN_RADIATION_P = math.sqrt(4.0 / 15.0)  # rms of the P pattern over the sphere
MEAN_RADIATION_S = math.sqrt(2.0 / 5.0)  # rms of the S pattern over the sphere
FREE_SURFACE = 2.0
CRUST_TRAPPING_KM = 100.0  # where crustal spreading turns from 1/R to 1/sqrt(R)
LG_RAMP_KM = 150.0  # distance over which Lg grows out of the Sg coda
LG_DEPTH_DECAY_KM = 10.0  # e-folding of Lg excitation below the Moho


def seismic_moment(magnitude: float) -> float:
    """Seismic moment M0 (N·m) of moment magnitude Mw (Hanks & Kanamori)."""
    return 10.0 ** (1.5 * magnitude + 9.1)


def corner_frequency(magnitude: float, stress_drop_mpa: float, wave: str = "S") -> float:
    """Brune corner frequency (Hz): 0.37 β (Δσ/M0)^(1/3) for S, 1.5 × that for P."""
    fc = 0.37 * BETA_CORNER * (stress_drop_mpa * 1e6 / seismic_moment(magnitude)) ** (1.0 / 3)
    return fc * (1.5 if wave.upper() == "P" else 1.0)


def brune_velocity_spectrum(freqs: np.ndarray, moment: float, fc: float) -> np.ndarray:
    """Causal Brune ω² source, as the spectrum of moment rate's time derivative.

    Args:
        freqs: (F,) frequencies (Hz).
        moment: M0 (N·m).
        fc: corner frequency (Hz).
    Returns:
        (F,) complex: 2πi f · M0 / (1 + i f/fc)² (N·m, the far-field velocity shape).
    """
    return 2j * np.pi * freqs * moment / (1.0 + 1j * freqs / fc) ** 2


def attenuation(freqs: np.ndarray, t_star: float, f_ref: float) -> np.ndarray:
    """Constant-Q attenuation exp(-π f t*) with its minimum-phase dispersion (F,) complex.

    Frequencies below ``f_ref`` are delayed by (t*/π) ln(f_ref / f) s, keeping the pulse
    causal with its onset at the ray-theory time.
    """
    f = np.maximum(freqs, 1e-12)
    return np.exp(-np.pi * freqs * t_star + 2j * freqs * t_star * np.log(f / f_ref))


def radiation_pattern(
    strike: float, dip: float, rake: float, azimuth: float, takeoff: float
) -> tuple[float, float, float]:
    """Double-couple far-field radiation (F_P, F_SV, F_SH), Aki & Richards eq. 4.89.

    All angles in degrees; ``azimuth`` from source to station (clockwise from north),
    ``takeoff`` from the downward vertical.
    """
    s, d, r = np.radians(strike), np.radians(dip), np.radians(rake)
    phi, i = np.radians(azimuth) - s, np.radians(takeoff)
    sl, cl, sd, cd = np.sin(r), np.cos(r), np.sin(d), np.cos(d)
    fp = (
        cl * sd * np.sin(i) ** 2 * np.sin(2 * phi)
        - cl * cd * np.sin(2 * i) * np.cos(phi)
        + sl * np.sin(2 * d) * (np.cos(i) ** 2 - np.sin(i) ** 2 * np.sin(phi) ** 2)
        + sl * np.cos(2 * d) * np.sin(2 * i) * np.sin(phi)
    )
    fsv = (
        sl * np.cos(2 * d) * np.cos(2 * i) * np.sin(phi)
        - cl * cd * np.cos(2 * i) * np.cos(phi)
        + 0.5 * cl * sd * np.sin(2 * i) * np.sin(2 * phi)
        - 0.5 * sl * np.sin(2 * d) * np.sin(2 * i) * (1 + np.sin(phi) ** 2)
    )
    fsh = (
        cl * cd * np.cos(i) * np.sin(phi)
        + cl * sd * np.sin(i) * np.cos(2 * phi)
        + sl * np.cos(2 * d) * np.cos(i) * np.cos(phi)
        - 0.5 * sl * np.sin(2 * d) * np.sin(i) * np.sin(2 * phi)
    )
    return float(fp), float(fsv), float(fsh)


def geometric_spreading(hypocentral_km: float) -> float:
    """Crustal spreading (1/m): 1/R to 100 km, then 1/sqrt(R), continuous at 100 km."""
    r = max(hypocentral_km, 1.0) * 1e3
    knee = CRUST_TRAPPING_KM * 1e3
    return 1.0 / r if r <= knee else (1.0 / knee) * math.sqrt(knee / r)


def body_spreading(hypocentral_km: float) -> float:
    """Body-wave spreading 1/R (1/m), R at least 1 km."""
    return 1.0 / (max(hypocentral_km, 1.0) * 1e3)


def lg_excitation(distance_km: float, depth_km: float, moho_km: float) -> float:
    """Lg's share (0–1) of the crustal S level: grows over ``LG_RAMP_KM``, fades with
    source depth below the Moho."""
    ramp = min(1.0, max(distance_km, 0.0) / LG_RAMP_KM)
    return ramp * math.exp(-max(0.0, depth_km - moho_km) / LG_DEPTH_DECAY_KM)


def far_field_level(moment_spectrum: np.ndarray, rho: float, speed: float) -> np.ndarray:
    """Far-field velocity (m/s per unit spreading) of a moment-rate-derivative spectrum:
    Ṁ̇ / (4π ρ v³), times the free-surface factor."""
    return FREE_SURFACE * moment_spectrum / (4 * math.pi * rho * speed**3)


WOOD_ANDERSON_POLES = (complex(-6.283, 4.7124), complex(-6.283, -4.7124))
"""Poles (rad/s) of the Wood–Anderson torsion seismometer (f0 1.25 Hz, h 0.8)."""
WOOD_ANDERSON_GAIN = 2080.0  # static magnification (Uhrhammer & Collins 1990)


def wood_anderson_mm(ground_velocity: np.ndarray, freqs: np.ndarray, nfft: int) -> float:
    """Peak Wood–Anderson amplitude (mm) of horizontal ground-velocity spectra.

    Args:
        ground_velocity: (2, F) N and E spectra (``irfft`` gives m/s).
        freqs: (F,) their frequencies (Hz).
        nfft: the transform length.
    Returns:
        The mean over the two components of the peak absolute WA trace (mm).
    """
    s = 2j * np.pi * freqs
    wa = WOOD_ANDERSON_GAIN * s**2
    for pole in WOOD_ANDERSON_POLES:
        wa = wa / (s - pole)
    displacement = np.zeros_like(ground_velocity)
    displacement[:, 1:] = ground_velocity[:, 1:] / s[1:]
    traces = np.fft.irfft(displacement * wa, n=nfft, axis=-1) * 1e3
    return float(np.abs(traces).max(axis=-1).mean())


def local_magnitude(amplitude_mm: float, hypocentral_km: float) -> float:
    """ML of Hutton & Boore (1987): log10 A + 1.11 log10(r/100) + 0.00189 (r - 100) + 3
    (A in mm on a Wood–Anderson, r hypocentral in km; calibrated to about 700 km)."""
    r = max(hypocentral_km, 1.0)
    return (
        math.log10(max(amplitude_mm, 1e-30))
        + 1.11 * math.log10(r / 100)
        + 0.00189 * (r - 100)
        + 3.0
    )
