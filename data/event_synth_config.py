"""What the synthetic event generator draws from: one pydantic config, data not code.

Every range is (low, high) and drawn uniformly per trace unless its description says
otherwise; see :mod:`seislens.data.event_synth` for the physics each one feeds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from seislens.data.event_instruments import INSTRUMENT_KINDS, InstrumentRanges
from seislens.data.event_phases import TABLE_LIMITS, EarthModel
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import (
    EVENT_DEPTH_RANGE_KM,
    EVENT_DISTANCE_RANGE_KM,
    EVENT_MAGNITUDE_RANGE,
    WINDOW_S,
)

Range = tuple[float, float]

_RANGES = (
    "p_onset_s",
    "snr_db",
    "noise_position",
    "distance_km",
    "earthquake_magnitude",
    "explosion_magnitude",
    "surface_magnitude",
    "earthquake_depth_km",
    "earthquake_shallow_depth_km",
    "explosion_depth_km",
    "stress_drop_mpa",
    "q",
    "kappa_s",
    "head_wave_ratio",
    "lg_ratio",
)


class EventSynthConfig(BaseModel):
    """What :func:`~seislens.data.event_synth.generate_events` writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(1000, ge=1, description="number of traces")
    seed: int = Field(0, ge=0, description="master seed")
    class_fractions: dict[str, float] = Field(
        default_factory=lambda: {c: 0.25 for c in CLASSES},
        description="share of each class (normalised); classes left out get none",
    )
    split_fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train/dev/test shares, stratified by class"
    )
    record_length_s: float = Field(90.0, ge=WINDOW_S, le=600.0, description="trace length (s)")
    sampling_rates_hz: dict[float, float] = Field(
        default_factory=lambda: {20.0: 0.1, 40.0: 0.1, 50.0: 0.15, 100.0: 0.5, 200.0: 0.15},
        description="native sampling rate (Hz) → share of traces recorded at it",
    )
    sampling_rate_hz: float | None = Field(
        None, ge=20.0, le=1000.0, description="one rate (Hz) for every trace, if set"
    )
    instruments: dict[str, float] = Field(
        default_factory=lambda: {"broadband": 0.5, "short_period": 0.3, "accelerometer": 0.2},
        description="recording chain → share of traces (see event_instruments)",
    )
    instrument_ranges: InstrumentRanges = InstrumentRanges()
    amplitude: Literal["physical", "snr"] = Field(
        "physical",
        description="physical: noise from Peterson's models and the event's own amplitude "
        "(SNR follows; snr_db[0] is the floor below which the magnitude is raised); "
        "snr: the signal scaled to an SNR drawn from snr_db over that noise (a "
        "benchmark's control; amplitudes no longer follow the magnitude)",
    )
    p_onset_s: Range = Field((5.0, 25.0), description="P time after the trace start (s)")
    snr_db: Range = Field((5.0, 35.0), description="SNR of events (dB): floor, or the draw")
    max_redraws: int = Field(8, ge=0, le=32, description="magnitude re-sets per event, at most")
    catalogue_fraction: float = Field(
        0.7,
        ge=0,
        le=1,
        description="share of events set just above the station's detection threshold "
        "plus a Gutenberg–Richter excess (physical mode); the rest keep their uniform draw",
    )
    noise_position: Range = Field(
        (0.1, 0.9), description="noise PSD between the NLNM (0) and the NHNM (1), in dB"
    )
    distance_km: Range = Field(EVENT_DISTANCE_RANGE_KM, description="epicentral distance (km)")
    distance_log_fraction: float = Field(
        0.5, ge=0, le=1, description="share of distances drawn log-uniformly (from 1 km)"
    )
    earthquake_magnitude: Range = Field(EVENT_MAGNITUDE_RANGE, description="Mw")
    explosion_magnitude: Range = Field((-1.0, 4.5), description="Mw")
    surface_magnitude: Range = Field((-1.0, 4.0), description="Mw")
    earthquake_depth_km: Range = Field(EVENT_DEPTH_RANGE_KM, description="km")
    earthquake_shallow_depth_km: Range = Field(
        (0.0, 35.0), description="crustal depths (km) of the shallow share"
    )
    earthquake_shallow_fraction: float = Field(
        0.6, ge=0, le=1, description="share of earthquakes drawn in the crustal range"
    )
    explosion_depth_km: Range = Field((0.0, 2.0), description="km")
    stress_drop_mpa: Range = Field((1.0, 10.0), description="Brune stress drop (MPa), log-uniform")
    q: Range = Field((150.0, 600.0), description="path quality factor")
    kappa_s: Range = Field((0.01, 0.04), description="site attenuation κ (s)")
    head_wave_ratio: Range = Field((0.2, 0.6), description="refracted / direct amplitude")
    lg_ratio: Range = Field((0.3, 1.0), description="Lg rms / a 1 s S pulse's")
    earth_model: EarthModel = Field("iasp91", description="taup model of the travel times")
    station_count: int = Field(40, ge=1, description="synthetic stations in the network")
    region_center_deg: tuple[float, float] = Field(
        (46.5, -121.5), description="(latitude, longitude) the stations scatter around"
    )
    bucket_size: int = Field(256, ge=1, description="traces per HDF5 dataset")

    @field_validator(*_RANGES)
    @classmethod
    def _ordered(cls, value: Range) -> Range:
        low, high = value
        if not low <= high:
            raise ValueError(f"range {value} must be (low, high) with low <= high")
        return value

    @field_validator("class_fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        return _shares(value, CLASSES, "classes")

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, value: dict[str, float]) -> dict[str, float]:
        return _shares(value, INSTRUMENT_KINDS, "instruments")

    @field_validator("sampling_rates_hz")
    @classmethod
    def _rates(cls, value: dict[float, float]) -> dict[float, float]:
        bad = sorted(r for r in value if not 20.0 <= r <= 1000.0)
        if bad:
            raise ValueError(f"sampling rates {bad} Hz are outside 20–1000 Hz")
        return _shares(value, tuple(value), "sampling rates")

    @field_validator("split_fractions")
    @classmethod
    def _splits(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v < 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"split fractions {value} must be >= 0 and sum to 1")
        return value

    @model_validator(mode="after")
    def _physical(self) -> EventSynthConfig:
        _within(self.distance_km, TABLE_LIMITS["distance_km"], "distance_km")
        for name in ("earthquake_depth_km", "earthquake_shallow_depth_km", "explosion_depth_km"):
            _within(getattr(self, name), TABLE_LIMITS["depth_km"], name)
        if self.p_onset_s[1] >= self.record_length_s - 30.0:
            raise ValueError(
                f"p_onset_s {self.p_onset_s} leaves under 30 s of record after P; "
                f"record_length_s is {self.record_length_s}"
            )
        if self.snr_db[0] < -20.0:
            raise ValueError(f"snr_db {self.snr_db} goes below -20 dB")
        if not (self.noise_position[0] >= 0.0 and self.noise_position[1] <= 1.0):
            raise ValueError(f"noise_position {self.noise_position} must lie within [0, 1]")
        return self

    @property
    def rates(self) -> dict[float, float]:
        """Native rate (Hz) → share: ``sampling_rate_hz`` alone when set."""
        if self.sampling_rate_hz is not None:
            return {float(self.sampling_rate_hz): 1.0}
        return self.sampling_rates_hz

    def npts_at(self, sampling_rate_hz: float) -> int:
        """Samples of one trace recorded at ``sampling_rate_hz``."""
        return round(self.record_length_s * sampling_rate_hz)


def _shares(value: dict, known: tuple, what: str) -> dict:
    """``value`` if its keys are among ``known`` and its shares are >= 0, summing > 0."""
    unknown = sorted(str(k) for k in set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; expected some of {list(known)}")
    if any(v < 0 for v in value.values()) or sum(value.values()) <= 0:
        raise ValueError(f"{what} shares {value} must be >= 0 with a positive sum")
    return value


def _within(value: Range, limits: Range, name: str) -> None:
    if value[0] < limits[0] or value[1] > limits[1]:
        raise ValueError(f"{name} {value} must lie within the travel-time table {limits} km")
