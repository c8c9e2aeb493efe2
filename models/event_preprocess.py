"""Event preprocessing: a 3-component record → SeisCLIP's 3×50×120 time–frequency input.

NumPy, SciPy and ObsPy only (no torch): the service and the training code both run this
module, so a window is cut and transformed the same way at train and serve time.

From an ObsPy ``Stream`` (:func:`stream_to_windows`), per station:

1. **Station** — traces are grouped by ``NET.STA``. ``station`` (``"STA"`` or ``"NET.STA"``)
   selects one; otherwise every station in the stream is processed.
2. **Components** — within a station, traces are grouped by instrument (location code and
   the first two channel letters). An instrument needs Z plus N/E, or Z plus 1/2 (taken as
   N/E without rotation: their azimuths are not in miniSEED). Among complete instruments
   the highest sampling rate wins, ties by location/channel name.
3. **Merge** — the traces of one channel are merged: gaps of up to ``max_gap_s`` seconds of
   missing data (default 1.0 s) are filled by linear interpolation; a longer gap is
   refused. Overlaps are resolved by ObsPy's merge method 1 (the later trace wins).
4. **Rates** — the three components must share one sampling rate to within
   ``rate_tolerance`` (relative, default 1e-4, which absorbs rounded header rates);
   otherwise they come from different instruments and are refused. They are then cut to
   the time span all three cover.
5. **Checks** — NaN/inf samples, an all-zero or constant component, a record shorter than
   the 60 s window (unless within ``max_pad_s``, then zero-padded at the end), and a
   ``p_arrival`` outside the data each raise :class:`EventInputError`.
6. **Conditioning** (:func:`condition_waveform`, shared with training) — linear detrend,
   a Hann taper over ``taper_fraction`` (5 %) of the record at each end, a Butterworth
   band-pass ``freqmin_hz``–``freqmax_hz`` (1–45 Hz, 4 corners, zero-phase; the upper
   corner is lowered to 0.9 × the input Nyquist for low-rate data), then resampling to
   100 Hz in the Fourier domain.
7. **Window** (:func:`choose_window`, shared with training) — 60 s (6000 samples):
   ``"p_arrival"``: P at ``p_offset_s`` (5 s) into the window when a P time is given;
   else ``"sta_lta"``: the same placement on the first classic STA/LTA trigger on Z
   (1 s / 10 s, on 3.5, off 1.5; triggers inside the start taper or the LTA warm-up are
   ignored); else ``"start"``: the first 60 s. The window is shifted, never shrunk, to
   stay inside the data (the P offset then differs and is reported).

   A record below 100 Hz that would be longer than 1 h at 100 Hz
   (:data:`RESAMPLE_WHOLE_MAX_SAMPLES`) is windowed *before* it is resampled: filtered at
   its own rate, the pick (given, or STA/LTA at its own rate) places the window, and
   only the window plus :data:`RESAMPLE_MARGIN_S` each side is resampled to 100 Hz —
   its cost is its own samples, not 100 Hz worth of them. Shorter records (every
   training trace) take the path above.

Then :func:`waveform_to_spectrum`: per-component z-normalisation (a constant component
becomes zeros) and SeisCLIP's STFT — 100-sample periodic Hann window, hop 50 (50 %
overlap), nfft 100, zero-padded by half a window at both ends (SciPy's ``boundary='zeros'``),
scaled by 1/sum(window) — keeping the magnitude (``log_spectrum``: natural log of
magnitude + 1e-6 instead), dropping the DC row and the first frame: (3, 50, 120) float32,
frequency rows 1–50 Hz, frames centred at 0.5, 1.0, ..., 60.0 s.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from obspy import Stream, Trace, UTCDateTime
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import signal as sps
from seislens.models.contract import (
    COMPONENTS,
    SAMPLING_RATE_HZ,
    WINDOW_S,
    WINDOW_SAMPLES,
)

STFT_WINDOW = 100
STFT_HOP = 50
STFT_NFFT = 100
_ALIASES = {"Z": ("Z",), "N": ("N", "1"), "E": ("E", "2")}
_HANN = sps.get_window("hann", STFT_WINDOW)  # periodic, as SciPy's stft uses

Rule = Literal["p_arrival", "sta_lta", "start"]

RESAMPLE_WHOLE_MAX_SAMPLES = 360_000
"""Records below 100 Hz up to this long at 100 Hz (1 h) are resampled whole before the
window is chosen, as in training; longer ones are windowed first, at their own rate, and
only the window is resampled (so a long low-rate record costs its own samples, not 100 Hz
worth of them)."""
RESAMPLE_MARGIN_S = 10.0
"""Seconds resampled on each side of a window cut before resampling (the Fourier
resampler's edge effects stay in them)."""


class EventInputError(ValueError):
    """A recording cannot become a model input; the message says what and why.

    Args:
        message: what is wrong and what is expected.
        reason: a short stable label of what is wrong ('components', 'too_short',
            'gap', ...): the API answer's ``reason`` and its metrics label.
    """

    def __init__(self, message: str, reason: str = "unusable_recording") -> None:
        super().__init__(message)
        self.reason = reason


class EventPreprocessConfig(BaseModel):
    """Parameters of the event preprocessing (the window and STFT sizes are fixed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    freqmin_hz: float = Field(1.0, gt=0.0, description="band-pass lower corner (Hz)")
    freqmax_hz: float = Field(45.0, gt=0.0, lt=50.0, description="upper corner (Hz), < 50")
    filter_corners: int = Field(4, ge=1, le=8, description="Butterworth order")
    zerophase: bool = Field(True, description="filter forwards and backwards")
    taper_fraction: float = Field(0.05, ge=0.0, le=0.5, description="Hann taper per end")
    max_gap_s: float = Field(1.0, ge=0.0, description="longest gap filled (s of missing data)")
    rate_tolerance: float = Field(1e-4, ge=0.0, le=0.01, description="relative rate mismatch")
    p_offset_s: float = Field(5.0, ge=0.0, lt=WINDOW_S, description="P position in window (s)")
    sta_s: float = Field(1.0, gt=0.0, description="STA length (s)")
    lta_s: float = Field(10.0, gt=0.0, description="LTA length (s)")
    trigger_on: float = Field(3.5, gt=0.0, description="STA/LTA ratio that starts a trigger")
    trigger_off: float = Field(1.5, gt=0.0, description="ratio that ends it")
    max_pad_s: float = Field(
        0.0,
        ge=0.0,
        lt=WINDOW_S,
        description="records shorter than 60 s by up to this are zero-padded; 0 refuses",
    )
    log_spectrum: bool = Field(False, description="log(magnitude + 1e-6) instead of magnitude")

    @model_validator(mode="after")
    def _consistent(self) -> EventPreprocessConfig:
        if self.freqmin_hz >= self.freqmax_hz:
            raise ValueError(
                f"freqmin_hz {self.freqmin_hz} must be below freqmax_hz {self.freqmax_hz}"
            )
        if self.sta_s >= self.lta_s:
            raise ValueError(f"sta_s {self.sta_s} must be shorter than lta_s {self.lta_s}")
        return self


@dataclass(frozen=True)
class EventWindow:
    """One station's 60 s window.

    Attributes:
        station: ``"NET.STA"``.
        channels: SEED ids of the traces used for Z, N, E.
        start, end: UTC of the first sample and of the instant after the last (start + 60 s).
        rule: how the window was placed: "p_arrival", "sta_lta" or "start".
        p_sample: the P pick (given or triggered) in window samples at 100 Hz; None for
            rule "start".
        padded_s: seconds of zeros appended because the record was short.
        input_sampling_rate_hz: the record's own rate before resampling.
        waveform: (3, 6000) float32 conditioned samples (Z, N, E at 100 Hz, input units).
    """

    station: str
    channels: tuple[str, str, str]
    start: UTCDateTime
    end: UTCDateTime
    rule: Rule
    p_sample: int | None
    padded_s: float
    input_sampling_rate_hz: float
    waveform: np.ndarray

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (everything but the samples)."""
        return {
            "station": self.station,
            "channels": list(self.channels),
            "start": str(self.start),
            "end": str(self.end),
            "rule": self.rule,
            "p_sample": self.p_sample,
            "padded_s": self.padded_s,
            "input_sampling_rate_hz": self.input_sampling_rate_hz,
        }


@dataclass(frozen=True)
class DatasetWindow:
    """A dataset trace's 60 s window: (3, 6000) float32 samples, its start (s after the
    trace start), the rule used and the P position in the window (100 Hz samples)."""

    waveform: np.ndarray
    start_s: float
    rule: Rule
    p_sample: int | None


# --------------------------------------------------------------------------- shared path


def condition_waveform(
    data: np.ndarray, sampling_rate: float, config: EventPreprocessConfig | None = None
) -> np.ndarray:
    """Detrend, taper, band-pass and resample to 100 Hz.

    Args:
        data: (C, N) samples at ``sampling_rate`` Hz (any units).
        sampling_rate: input rate (Hz).
        config: filter settings (defaults when None).
    Returns:
        (C, M) float64 at 100 Hz, M = round(N · 100 / sampling_rate).
    """
    return resample_to_contract(filter_waveform(data, sampling_rate, config), sampling_rate)


def filter_waveform(
    data: np.ndarray, sampling_rate: float, config: EventPreprocessConfig | None = None
) -> np.ndarray:
    """The first half of :func:`condition_waveform`, at the input rate: linear detrend,
    Hann taper, Butterworth band-pass.

    Args:
        data: (C, N) samples at ``sampling_rate`` Hz.
        sampling_rate: input rate (Hz).
        config: filter settings (defaults when None).
    Returns:
        (C, N) float64 at ``sampling_rate``.
    Raises:
        EventInputError: the rate is too low for the band-pass.
    """
    config = config or EventPreprocessConfig()
    x = sps.detrend(np.asarray(data, dtype=np.float64), axis=-1, type="linear")
    x = x * _taper(x.shape[-1], config.taper_fraction)
    upper = min(config.freqmax_hz, 0.9 * sampling_rate / 2.0)
    if config.freqmin_hz >= upper:
        raise EventInputError(
            f"sampling rate {sampling_rate} Hz is too low for a {config.freqmin_hz}-"
            f"{config.freqmax_hz} Hz band-pass (upper corner capped at 0.9 × Nyquist = {upper} Hz)",
            reason="low_sampling_rate",
        )
    sos = _bandpass_sos(config.filter_corners, config.freqmin_hz, upper, sampling_rate).copy()
    return sps.sosfiltfilt(sos, x, axis=-1) if config.zerophase else sps.sosfilt(sos, x, axis=-1)


@functools.lru_cache(maxsize=32)
def _bandpass_sos(corners: int, low: float, high: float, sampling_rate: float) -> np.ndarray:
    """The Butterworth band-pass of :func:`filter_waveform` as second-order sections
    (cached: designing it costs more than filtering a minute of data; callers copy it,
    SciPy's filters want a writable array)."""
    sos = sps.butter(corners, [low, high], btype="bandpass", fs=sampling_rate, output="sos")
    sos.setflags(write=False)
    return sos


def resample_to_contract(x: np.ndarray, sampling_rate: float) -> np.ndarray:
    """(C, N) at ``sampling_rate`` → (C, round(N · 100 / sampling_rate)) at 100 Hz, in the
    Fourier domain (unchanged when already at 100 Hz)."""
    if abs(sampling_rate - SAMPLING_RATE_HZ) > 1e-9 * SAMPLING_RATE_HZ:
        n_out = round(x.shape[-1] * SAMPLING_RATE_HZ / sampling_rate)
        x = sps.resample(x, n_out, axis=-1)
    return x


def resampled_samples(samples: int, sampling_rate: float) -> int:
    """Samples of a record at 100 Hz, or its own count when it was recorded faster (what
    the preprocessing holds of it): the measure of the upload budgets.

    Args:
        samples: samples as recorded.
        sampling_rate: their rate (Hz); 0 (no rate, e.g. a log channel) counts as is.
    """
    if sampling_rate <= 0:
        return samples
    return max(samples, math.ceil(samples * SAMPLING_RATE_HZ / sampling_rate))


def _taper(n: int, fraction: float) -> np.ndarray:
    """(n,) Hann ramps over ``fraction`` of ``n`` at each end (ObsPy's taper('hann'))."""
    width = int(np.floor(fraction * n))
    ramp = np.ones(n)
    if width > 0:
        half = 0.5 * (1.0 - np.cos(np.pi * np.arange(width) / width))
        ramp[:width] = half
        ramp[n - width :] = half[::-1]
    return ramp


def sta_lta_onset(
    z: np.ndarray,
    config: EventPreprocessConfig | None = None,
    sampling_rate: float = SAMPLING_RATE_HZ,
) -> int | None:
    """First classic STA/LTA trigger on a conditioned vertical, in its samples, or None.

    Triggers before the end of the LTA warm-up or of the start taper are ignored.

    Args:
        z: (M,) the conditioned vertical.
        config: trigger settings (STA and LTA lengths in seconds).
        sampling_rate: the rate of ``z`` (Hz): 100 Hz after resampling, or the input
            rate when a long low-rate record is windowed before it is resampled.
    """
    from obspy.signal.trigger import classic_sta_lta, trigger_onset

    config = config or EventPreprocessConfig()
    nsta = max(1, round(config.sta_s * sampling_rate))
    nlta = max(nsta + 1, round(config.lta_s * sampling_rate))
    if z.size <= nlta:
        return None
    ratio = classic_sta_lta(np.ascontiguousarray(z, dtype=np.float64), nsta, nlta)
    earliest = max(nlta, int(np.floor(config.taper_fraction * z.size)))
    ratio[:earliest] = 0.0
    onsets = trigger_onset(ratio, config.trigger_on, config.trigger_off)
    return int(onsets[0][0]) if len(onsets) else None


def choose_window(
    z: np.ndarray, p_sample: float | None, config: EventPreprocessConfig | None = None
) -> tuple[int, Rule, int | None]:
    """Where a 60 s window starts in a conditioned 100 Hz record.

    Args:
        z: (M,) conditioned vertical at 100 Hz (used by the STA/LTA rule).
        p_sample: a known P time in samples of ``z`` (100 Hz), or None.
        config: rule settings.
    Returns:
        (start sample, rule, P position in the window or None); the start is clamped to
        [0, max(0, M - 6000)] so the window stays inside the data.
    """
    config = config or EventPreprocessConfig()
    rule: Rule = "p_arrival"
    if p_sample is None:
        p_sample = sta_lta_onset(z, config)
        rule = "sta_lta"
    return _place_window(p_sample, rule, z.size, config)


def _place_window(
    p_sample: float | None, rule: Rule, samples: int, config: EventPreprocessConfig
) -> tuple[int, Rule, int | None]:
    """:func:`choose_window` once the P sample (100 Hz) is known or not, in a record of
    ``samples`` samples at 100 Hz."""
    if p_sample is None:
        return 0, "start", None
    latest = max(0, samples - WINDOW_SAMPLES)
    start = int(np.clip(round(p_sample - config.p_offset_s * SAMPLING_RATE_HZ), 0, latest))
    return start, rule, round(p_sample) - start


def cut_window(x: np.ndarray, start: int) -> np.ndarray:
    """(3, 6000) float32 from (3, M) samples at ``start``; zero-padded past the end."""
    out = np.zeros((x.shape[0], WINDOW_SAMPLES), dtype=np.float32)
    part = x[:, start : start + WINDOW_SAMPLES]
    out[:, : part.shape[1]] = part
    return out


def z_normalize(x: np.ndarray) -> np.ndarray:
    """Per-component (last axis) zero mean, unit standard deviation; constant rows → 0."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1, keepdims=True)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)


def stft_magnitude(x: np.ndarray, log: bool = False) -> np.ndarray:
    """SeisCLIP's STFT of (..., 6000) samples → (..., 50, 120) (frequency × time).

    Equal to ``abs(scipy.signal.stft(x, 100, 'hann', 100, 50, 100, boundary='zeros'))``
    with the DC row and the first frame dropped.
    """
    pad = [(0, 0)] * (x.ndim - 1) + [(STFT_WINDOW // 2, STFT_WINDOW // 2)]
    frames = sliding_window_view(np.pad(x, pad), STFT_WINDOW, axis=-1)[..., ::STFT_HOP, :]
    spec = np.abs(np.fft.rfft(frames * _HANN, n=STFT_NFFT, axis=-1)) / _HANN.sum()
    mag = np.swapaxes(spec[..., 1:, 1:], -1, -2)
    return np.log(mag + 1e-6) if log else mag


def waveform_to_spectrum(
    waveform: np.ndarray, config: EventPreprocessConfig | None = None
) -> np.ndarray:
    """z-normalise and STFT a window: (3, 6000) → (3, 50, 120) float32.

    Also takes a batch (B, 3, 6000) → (B, 3, 50, 120). This is the one transform used at
    train and serve time.
    """
    x = np.asarray(waveform)
    if x.ndim < 2 or x.shape[-2:] != (3, WINDOW_SAMPLES):
        raise EventInputError(
            f"waveform has shape {x.shape}; expected (3, {WINDOW_SAMPLES}) = Z, N, E × 60 s "
            "at 100 Hz (or a batch of them)",
            reason="shape",
        )
    if not np.isfinite(x).all():
        raise EventInputError("waveform holds NaN or infinite samples", reason="non_finite")
    log = config.log_spectrum if config else False
    return stft_magnitude(z_normalize(x), log=log).astype(np.float32)


def cut_dataset_window(
    waveform: np.ndarray,
    sampling_rate: float,
    p_sample: float | None = None,
    config: EventPreprocessConfig | None = None,
) -> DatasetWindow:
    """The window the service would cut from a dataset trace.

    Args:
        waveform: (3, W) Z, N, E samples at ``sampling_rate`` Hz (e.g. ``EventDataset.waveform``).
        sampling_rate: Hz.
        p_sample: catalogued P in samples of ``waveform`` (own rate), or None/NaN to use
            the serving fallbacks (STA/LTA, then the start).
        config: preprocessing settings.
    Returns:
        The window; its ``start_s`` feeds ``EventDataset.info_vector(i, window_start_s=...)``.
    """
    config = config or EventPreprocessConfig()
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 3:
        raise EventInputError(
            f"dataset waveform has shape {x.shape}; expected (3, n_samples)", reason="shape"
        )
    if not np.isfinite(x).all():
        raise EventInputError("dataset waveform holds NaN or infinite samples", reason="non_finite")
    conditioned = condition_waveform(x, sampling_rate, config)
    p100 = None
    if p_sample is not None and np.isfinite(p_sample):
        p100 = float(p_sample) * SAMPLING_RATE_HZ / sampling_rate
    start, rule, p_in = choose_window(conditioned[0], p100, config)
    return DatasetWindow(cut_window(conditioned, start), start / SAMPLING_RATE_HZ, rule, p_in)


def dataset_waveform_to_spectrum(
    waveform: np.ndarray,
    sampling_rate: float,
    p_sample: float | None = None,
    config: EventPreprocessConfig | None = None,
) -> np.ndarray:
    """(3, W) dataset trace → (3, 50, 120) float32, cut and transformed as at serve time."""
    window = cut_dataset_window(waveform, sampling_rate, p_sample, config)
    return waveform_to_spectrum(window.waveform, config)


# --------------------------------------------------------------------------- stream path


def stream_to_windows(
    stream: Stream,
    config: EventPreprocessConfig | None = None,
    station: str | None = None,
    p_arrival: UTCDateTime | None = None,
) -> list[EventWindow]:
    """One 60 s window per station of ``stream`` (sorted by station id).

    Args:
        stream: the recording (e.g. ``obspy.read(miniseed_bytes_io)``).
        config: preprocessing settings (defaults when None).
        station: ``"STA"`` or ``"NET.STA"`` to process one station only.
        p_arrival: a known P time (UTC) to align the window on.
    Raises:
        EventInputError: for any recording that cannot be used (the message says why).
    """
    config = config or EventPreprocessConfig()
    if not isinstance(stream, Stream) or len(stream) == 0:
        raise EventInputError(
            "no traces: expected an ObsPy Stream with 3-component data", reason="no_traces"
        )
    groups = _group_by_station(stream)
    if station is not None:
        key = _match_station(station, groups)
        groups = {key: groups[key]}
    return [
        _station_window(key, traces, config, p_arrival) for key, traces in sorted(groups.items())
    ]


def _group_by_station(stream: Stream) -> dict[str, list[Trace]]:
    groups: dict[str, list[Trace]] = {}
    for trace in stream:
        groups.setdefault(f"{trace.stats.network}.{trace.stats.station}", []).append(trace)
    return groups


def _match_station(station: str, groups: dict[str, list[Trace]]) -> str:
    wanted = station.strip().upper()
    for key in groups:
        if wanted in (key.upper(), key.split(".", 1)[1].upper()):
            return key
    raise EventInputError(
        f"station {station!r} is not in the file; stations present: {sorted(groups)}",
        reason="unknown_station",
    )


def _pick_components(key: str, traces: list[Trace]) -> dict[str, list[Trace]]:
    """Traces for Z, N, E of the best complete instrument of one station."""
    instruments: dict[tuple[str, str], dict[str, list[Trace]]] = {}
    for trace in traces:
        cha = trace.stats.channel.upper()
        inst = instruments.setdefault((trace.stats.location, cha[:-1]), {})
        inst.setdefault(cha[-1:] or "?", []).append(trace)
    complete = []
    for (loc, band), comps in instruments.items():
        chosen = {}
        for comp, aliases in _ALIASES.items():
            found = [a for a in aliases if a in comps]
            if found:
                chosen[comp] = comps[found[0]]
        if len(chosen) == 3:
            rate = max(t.stats.sampling_rate for t in chosen["Z"])
            complete.append((-rate, loc, band, chosen))
    if not complete:
        ids = sorted({t.id for t in traces})
        comps = sorted({t.stats.channel[-1:].upper() for t in traces})
        raise EventInputError(
            f"station {key} has channels {ids} (components {comps}); 3 components are "
            "needed: Z plus N and E (or 1 and 2)",
            reason="components",
        )
    return min(complete, key=lambda c: c[:3])[3]


def _merge_channel(traces: list[Trace], max_gap_s: float) -> Trace:
    """One trace per channel; gaps up to ``max_gap_s`` s filled linearly, longer refused."""
    pieces: list[Trace] = []
    for trace in traces:  # a masked (already merged, gappy) trace counts as its segments
        pieces.extend(trace.split() if np.ma.is_masked(trace.data) else [trace])
    ordered = sorted(pieces, key=lambda t: t.stats.starttime)
    for trace in ordered:
        if not np.isfinite(np.asarray(trace.data, dtype=np.float64)).all():
            raise EventInputError(f"{trace.id} holds NaN or infinite samples", reason="non_finite")
    rates = {t.stats.sampling_rate for t in ordered}
    if len(rates) > 1:
        raise EventInputError(
            f"{ordered[0].id} has segments at different rates {sorted(rates)} Hz",
            reason="sampling_rate",
        )
    for before, after in itertools.pairwise(ordered):
        missing = after.stats.starttime - before.stats.endtime - before.stats.delta
        if missing > max_gap_s + 1e-6:
            raise EventInputError(
                f"{before.id} has a gap of {missing:.3f} s from {before.stats.endtime} to "
                f"{after.stats.starttime}; gaps longer than {max_gap_s} s are refused "
                "(shorter ones are filled by linear interpolation)",
                reason="gap",
            )
    if len(ordered) == 1:
        return ordered[0].copy()
    merged = Stream([t.copy() for t in ordered])
    merged.merge(method=1, fill_value="interpolate")
    return merged[0]


def _common_rate(traces: dict[str, Trace], tolerance: float) -> float:
    rates = {c: t.stats.sampling_rate for c, t in traces.items()}
    low, high = min(rates.values()), max(rates.values())
    if high > low * (1.0 + tolerance):
        detail = ", ".join(f"{traces[c].id}: {r} Hz" for c, r in rates.items())
        raise EventInputError(
            f"components have different sampling rates ({detail}); they must agree to "
            f"within {tolerance:.0e} (relative)",
            reason="sampling_rate",
        )
    return float(rates["Z"])


def _common_span(traces: dict[str, Trace], rate: float) -> tuple[np.ndarray, UTCDateTime]:
    """(3, n) float64 Z, N, E over the span all three cover, and its start time."""
    start = max(t.stats.starttime for t in traces.values())
    end = min(t.stats.endtime for t in traces.values())
    if end < start:
        spans = ", ".join(f"{t.id}: {t.stats.starttime}–{t.stats.endtime}" for t in traces.values())
        raise EventInputError(
            f"the 3 components do not overlap in time ({spans})", reason="no_overlap"
        )
    rows = []
    for comp in COMPONENTS:
        trace = traces[comp]
        first = round((start - trace.stats.starttime) * rate)
        rows.append(np.asarray(trace.data, dtype=np.float64)[first:])
    n = min(len(r) for r in rows)
    n = min(n, int(np.floor((end - start) * rate + 1e-6)) + 1)
    return np.stack([r[:n] for r in rows]), start


def _check_values(data: np.ndarray, traces: dict[str, Trace]) -> None:
    for row, comp in zip(data, COMPONENTS, strict=True):
        if not np.isfinite(row).all():
            raise EventInputError(
                f"{traces[comp].id} holds NaN or infinite samples", reason="non_finite"
            )
        if np.all(row == 0):
            raise EventInputError(
                f"{traces[comp].id} is all zeros (a dead channel)", reason="dead_channel"
            )
        if np.ptp(row) == 0:
            raise EventInputError(
                f"{traces[comp].id} is constant (a dead channel)", reason="dead_channel"
            )


def _station_window(
    key: str,
    traces: list[Trace],
    config: EventPreprocessConfig,
    p_arrival: UTCDateTime | None,
    whole_max_samples: int = RESAMPLE_WHOLE_MAX_SAMPLES,
) -> EventWindow:
    picked = _pick_components(key, traces)
    merged = {c: _merge_channel(picked[c], config.max_gap_s) for c in COMPONENTS}
    rate = _common_rate(merged, config.rate_tolerance)
    data, start = _common_span(merged, rate)
    _check_values(data, merged)
    duration = data.shape[1] / rate
    if duration < WINDOW_S - config.max_pad_s - 1e-9:
        raise EventInputError(
            f"station {key}: {duration:.2f} s of 3-component data; the window needs "
            f"{WINDOW_S:.0f} s"
            + (f" (at most {config.max_pad_s} s may be padded)" if config.max_pad_s else ""),
            reason="too_short",
        )
    p100 = None
    if p_arrival is not None:
        p_arrival = UTCDateTime(p_arrival)
        last = start + (data.shape[1] - 1) / rate
        if not start <= p_arrival <= last:
            raise EventInputError(
                f"p_arrival {p_arrival} is outside the data of station {key} ({start} – {last})",
                reason="p_arrival_outside",
            )
        p100 = (p_arrival - start) * SAMPLING_RATE_HZ
    if resample_whole(data.shape[1], rate, whole_max_samples):
        conditioned = condition_waveform(data, rate, config)
        begin, rule, p_in = choose_window(conditioned[0], p100, config)
        window = cut_window(conditioned, begin)
        padded = max(0, WINDOW_SAMPLES - (conditioned.shape[1] - begin)) / SAMPLING_RATE_HZ
        begin_s = begin / SAMPLING_RATE_HZ
    else:
        window, begin_s, rule, p_in = _window_then_resample(data, rate, p100, config)
        padded = 0.0
    t0 = start + begin_s
    channels = tuple(merged[c].id for c in COMPONENTS)
    return EventWindow(
        station=key,
        channels=(channels[0], channels[1], channels[2]),
        start=t0,
        end=t0 + WINDOW_S,
        rule=rule,
        p_sample=p_in,
        padded_s=float(padded),
        input_sampling_rate_hz=rate,
        waveform=window,
    )


def resample_whole(
    samples: int, sampling_rate: float, whole_max_samples: int = RESAMPLE_WHOLE_MAX_SAMPLES
) -> bool:
    """Whether a record is resampled whole before its window is chosen (the training
    path): at 100 Hz or faster, or at most ``whole_max_samples`` long at 100 Hz. A longer
    low-rate record is windowed first (:func:`_window_then_resample`)."""
    if sampling_rate >= SAMPLING_RATE_HZ * (1 - 1e-9):
        return True
    return samples * SAMPLING_RATE_HZ / sampling_rate <= whole_max_samples


def _window_then_resample(
    data: np.ndarray, rate: float, p100: float | None, config: EventPreprocessConfig
) -> tuple[np.ndarray, float, Rule, int | None]:
    """A long low-rate record's window, chosen at its own rate and resampled alone.

    The record is filtered whole at its rate (:func:`filter_waveform`); the P pick is
    the given one or the STA/LTA trigger at that rate; the window is placed as
    :func:`choose_window` places it; only the window and :data:`RESAMPLE_MARGIN_S` on
    each side are resampled to 100 Hz, and the window is cut on that grid.

    Args:
        data: (3, N) Z, N, E at ``rate`` Hz (below 100 Hz).
        rate: their rate (Hz).
        p100: the P pick in 100 Hz samples from the record's start, or None.
        config: preprocessing settings.
    Returns:
        (3, 6000) float32 window, its start (s after the record's start), the rule,
        the P position in the window (100 Hz samples) or None.
    """
    filtered = filter_waveform(data, rate, config)
    n = filtered.shape[1]
    rule: Rule = "p_arrival"
    if p100 is None:
        onset = sta_lta_onset(filtered[0], config, sampling_rate=rate)
        p100 = None if onset is None else onset * SAMPLING_RATE_HZ / rate
        rule = "sta_lta"
    start100, rule, _ = _place_window(p100, rule, round(n * SAMPLING_RATE_HZ / rate), config)
    first = max(0, math.floor((start100 / SAMPLING_RATE_HZ - RESAMPLE_MARGIN_S) * rate))
    last = min(
        n,
        math.ceil(((start100 + WINDOW_SAMPLES) / SAMPLING_RATE_HZ + RESAMPLE_MARGIN_S) * rate) + 1,
    )
    span = resample_to_contract(filtered[:, first:last], rate)
    offset = round(start100 - first * SAMPLING_RATE_HZ / rate)
    offset = int(np.clip(offset, 0, max(0, span.shape[1] - WINDOW_SAMPLES)))
    begin_s = first / rate + offset / SAMPLING_RATE_HZ
    p_in = None if p100 is None else round(p100 - begin_s * SAMPLING_RATE_HZ)
    return cut_window(span, offset), begin_s, rule, p_in
