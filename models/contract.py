"""The contract constants shared by data, training, bundles and serving: one home each.

Every module that needs one of these imports it from here; nothing else defines them.

Velocity branch (OpenFWI conventions):

* a gather is ``GATHER_SHAPE`` = (shots, time samples, receivers) = (5, 1000, 70),
  float32, sampled every ``GATHER_DT_MS`` = 1 ms;
* a velocity model is ``VELOCITY_MODEL_SHAPE`` = (depth, x) = (70, 70) cells of
  ``CELL_M`` = 10 m, in m/s within [``V_MIN_M_S``, ``V_MAX_M_S``].

Event branch (SeisCLIP conventions):

* a window is ``WINDOW_S`` = 60 s of three components (Z, N, E) at
  ``SAMPLING_RATE_HZ`` = 100 Hz (``WINDOW_SAMPLES`` = 6000);
* its spectrum is ``SPECTRUM_SHAPE`` = (components, frequency rows, frames) = (3, 50, 120);
* ``INFO_FIELDS`` are the eight phase/source fields, ``EVENT_CLASSES`` the labels in
  label-index order, ``EVENT_TARGETS`` the regression outputs with ``EVENT_TARGET_UNITS``;
* the branch covers local and regional events: ``EVENT_DISTANCE_RANGE_KM``,
  ``EVENT_DEPTH_RANGE_KM`` and ``EVENT_MAGNITUDE_RANGE`` (the generator's ranges, and the
  scale of the info encoder's distance and P-time inputs).

ONNX: every encoder is exported at ``ONNX_OPSET``.
"""

from __future__ import annotations

# --- velocity branch ---------------------------------------------------------------
N_SHOTS = 5
N_TIME = 1000
N_RECEIVERS = 70
GATHER_SHAPE: tuple[int, int, int] = (N_SHOTS, N_TIME, N_RECEIVERS)
GATHER_DT_MS = 1.0
NZ = NX = 70
VELOCITY_MODEL_SHAPE: tuple[int, int] = (NZ, NX)
CELL_M = 10.0
V_MIN_M_S = 1500.0
V_MAX_M_S = 4500.0

# --- event branch ------------------------------------------------------------------
SAMPLING_RATE_HZ = 100.0
WINDOW_S = 60.0
WINDOW_SAMPLES = 6000
COMPONENTS: tuple[str, str, str] = ("Z", "N", "E")
SPECTRUM_SHAPE: tuple[int, int, int] = (3, 50, 120)

EVENT_CLASSES: tuple[str, ...] = ("earthquake", "explosion", "surface", "noise")
"""Event classes, in label-index order."""

INFO_FIELDS: tuple[str, ...] = (
    "p_arrival_sample",
    "s_arrival_sample",
    "p_weight",
    "s_weight",
    "p_travel_time_s",
    "distance_km",
    "back_azimuth_deg",
    "coda_end_sample",
)
"""SeisCLIP's eight phase/source fields, in the order of the info encoder's input."""

EVENT_DISTANCE_RANGE_KM: tuple[float, float] = (0.0, 1000.0)
"""Epicentral distances (km) the event branch is built for: local and regional events
(the synthetic generator's default range and the distance head's domain)."""

EVENT_DEPTH_RANGE_KM: tuple[float, float] = (0.0, 200.0)
"""Source depths (km) the event branch is built for: crustal to intermediate-depth."""

EVENT_MAGNITUDE_RANGE: tuple[float, float] = (-1.0, 7.0)
"""Magnitudes the event branch is built for (Mw-like units)."""

INFO_P_TRAVEL_SCALE_S = 150.0
"""Divisor of the P travel time: the P time at the farthest distance (about 130 s at
1,000 km) is about 1."""

INFO_SCALES: tuple[float, ...] = (
    6000.0,
    6000.0,
    1.0,
    1.0,
    INFO_P_TRAVEL_SCALE_S,
    EVENT_DISTANCE_RANGE_KM[1],
    360.0,
    6000.0,
)
"""Divisors bringing each info field to about [0, 1]: SeisCLIP's for the sample fields
(samples at 100 Hz in a 60 s window) and the back-azimuth (degrees / 360); the P travel
time and the distance over the event branch's regional range (SeisCLIP's 60 s and 300 km
covered local events only). A bundle keeps the scales it was trained with."""

EVENT_TARGETS: tuple[str, ...] = ("distance", "depth", "magnitude")
"""Regression targets, in the order of the regressor's outputs."""

EVENT_TARGET_UNITS: dict[str, str] = {
    "distance": "km",
    "depth": "km",
    "magnitude": "magnitude units (as catalogued, e.g. Mw)",
}

# --- export ------------------------------------------------------------------------
ONNX_OPSET = 17
