"""What the web page draws that the API answers do not carry: the uploaded gather's
traces, and a recording's classified windows with their spectrograms.

    POST /v1/page/gather-preview      a gather (as POST /v1/velocity/search takes it)
    POST /v1/page/recording-preview   a recording (as POST /v1/events/classify takes it)

Both read the upload with the API's own readers, limits and errors (the same
``uploaded_file`` / ``read_gather_upload`` and ``saved_upload`` / ``read_recording`` paths, so a
file the search refuses is refused here with the same 4xx message), and answer compact
JSON for drawing: samples quantised to signed bytes, base64-encoded, with the scale that
maps them back. They are the page's, not a stable API: left out of the OpenAPI document.
"""

from __future__ import annotations

import base64
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, Field
from seislens.models.contract import SAMPLING_RATE_HZ, WINDOW_S
from seislens.models.event_preprocess import (
    EventPreprocessConfig,
    EventWindow,
    waveform_to_spectrum,
)
from seislens.service.deps import BundleDep, SettingsDep
from seislens.service.event_search import read_recording
from seislens.service.parse_jobs import read_gather_upload
from seislens.service.rendering import SPACING_M
from seislens.service.routes_events import BranchDep, ParamsDep
from seislens.service.uploads import RawBodyDep, saved_upload, uploaded_file

router = APIRouter(prefix="/v1/page", tags=["page"], include_in_schema=False)

GATHER_STEP = 2
"""Time decimation of the drawn gather: every 2nd sample of the 1 ms frame (2 ms)."""

GATHER_CLIP_PERCENTILE = 99.0
"""Amplitudes past this percentile of |x| are clipped before quantising (display only)."""

WAVEFORM_BUCKET = 10
"""Samples (at 100 Hz) per min/max bucket of the drawn window: 6000 → 600 buckets."""

SPECTRUM_PERCENTILES = (2.0, 99.8)
"""Each component's log spectrum is drawn from its 2nd (darkest) to its 99.8th
percentile (lightest), so an event stands out against the noise."""

INT8_MAX = 127


class GatherPreview(BaseModel):
    """An uploaded gather, decimated and quantised for drawing."""

    filename: str
    format: str
    shots: int = Field(description="source slots (5)")
    samples: int = Field(description="time samples per trace after decimation")
    receivers: int = Field(description="grid receivers per shot (70)")
    dt_ms: float = Field(description="sample interval of `data`")
    spacing_m: float = Field(description="receiver spacing of the grid")
    clip: float = Field(description="the amplitude that 127 stands for (input units)")
    shot_mask: list[bool] = Field(description="slots that hold a shot")
    notes: list[str]
    data: str = Field(description="base64 int8, (shots, samples, receivers), C order")


class WindowPreview(BaseModel):
    """One station's classified 60 s window and its spectrogram, for drawing."""

    station: str
    channels: list[str]
    start: str = Field(description="UTC of the window's first sample")
    seconds: float
    p_offset_s: float | None = Field(description="the P pick from the window start")
    buckets: int = Field(description="min/max buckets per component")
    bucket_s: float
    waveform: str = Field(
        description="base64 int8, (3, buckets, 2): per component (Z, N, E) the min and max "
        "of each bucket, scaled to that component's largest |amplitude|"
    )
    spectrogram_shape: list[int] = Field(description="[3, frequencies, frames] = [3, 50, 120]")
    spectrogram_hz: list[float] = Field(description="[lowest, highest] frequency row")
    spectrogram: str = Field(
        description="base64 int8 of the model's log spectrum (the encoder's input), "
        "(3, frequencies, frames), lowest frequency first; each component scaled from its "
        "2nd (-127) to its 99.8th percentile (127)"
    )


class RecordingPreview(BaseModel):
    """The windows the event routes classify, for drawing."""

    filename: str
    stations: list[WindowPreview]


def _b64(values: np.ndarray) -> str:
    """int8 array → base64 text (C order)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.int8).tobytes()).decode()


def quantise(x: np.ndarray, scale: float) -> np.ndarray:
    """``x / scale`` clipped to [-1, 1], as int8 in [-127, 127]; zeros for scale 0."""
    if scale <= 0:
        return np.zeros(x.shape, dtype=np.int8)
    return np.round(np.clip(x / scale, -1.0, 1.0) * INT8_MAX).astype(np.int8)


def gather_preview(data: np.ndarray) -> tuple[np.ndarray, float]:
    """A (shots, 1000, receivers) gather → its decimated int8 samples and the clip."""
    decimated = np.asarray(data, dtype=np.float32)[:, ::GATHER_STEP, :]
    clip = float(np.percentile(np.abs(decimated), GATHER_CLIP_PERCENTILE))
    return quantise(decimated, clip), clip


def window_preview(window: EventWindow, pre: EventPreprocessConfig) -> WindowPreview:
    """One station window → its min/max envelope and its log spectrogram (quantised)."""
    wave = np.asarray(window.waveform, dtype=np.float64)  # (3, 6000)
    buckets = wave.shape[1] // WAVEFORM_BUCKET
    shaped = wave[:, : buckets * WAVEFORM_BUCKET].reshape(3, buckets, WAVEFORM_BUCKET)
    envelope = np.stack([shaped.min(axis=2), shaped.max(axis=2)], axis=2)  # (3, B, 2)
    peak = np.abs(wave).max(axis=1)
    scaled = np.stack([quantise(envelope[c], float(peak[c])) for c in range(3)])
    spec = waveform_to_spectrum(wave.astype(np.float32), pre).astype(np.float64)
    if not pre.log_spectrum:
        spec = np.log(spec + 1e-6)
    low = np.percentile(spec, SPECTRUM_PERCENTILES[0], axis=(1, 2), keepdims=True)
    high = np.percentile(spec, SPECTRUM_PERCENTILES[1], axis=(1, 2), keepdims=True)
    unit = np.clip((spec - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
    spec_q = np.round(unit * 2 * INT8_MAX - INT8_MAX).astype(np.int8)
    rows = spec.shape[1]
    p_offset = None if window.p_sample is None else window.p_sample / SAMPLING_RATE_HZ
    return WindowPreview(
        station=window.station,
        channels=list(window.channels),
        start=str(window.start),
        seconds=WINDOW_S,
        p_offset_s=p_offset,
        buckets=buckets,
        bucket_s=WAVEFORM_BUCKET / SAMPLING_RATE_HZ,
        waveform=_b64(scaled),
        spectrogram_shape=list(spec_q.shape),
        spectrogram_hz=[SAMPLING_RATE_HZ / 2 / rows, SAMPLING_RATE_HZ / 2],
        spectrogram=_b64(spec_q),
    )


@router.post("/gather-preview", response_model=GatherPreview)
def preview_gather(
    settings: SettingsDep,
    raw: RawBodyDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> GatherPreview:
    """The uploaded gather as the velocity search reads it (1 ms frame, 5 slots × 70
    grid receivers), decimated to 2 ms and quantised, for the page to draw."""
    with uploaded_file(file, raw, settings.max_upload_bytes) as (path, filename):
        upload = read_gather_upload(path, filename, settings)
    samples, clip = gather_preview(upload.data)
    shots, n_samples, receivers = samples.shape
    return GatherPreview(
        filename=filename,
        format=upload.format,
        shots=shots,
        samples=n_samples,
        receivers=receivers,
        dt_ms=float(GATHER_STEP),
        spacing_m=SPACING_M,
        clip=clip,
        shot_mask=[bool(s) for s in upload.shot_mask],
        notes=list(upload.notes),
        data=_b64(samples),
    )


@router.post("/recording-preview", response_model=RecordingPreview)
def preview_recording(
    bundle: BundleDep,
    branch: BranchDep,
    settings: SettingsDep,
    params: ParamsDep,
    file: Annotated[UploadFile, File()],
) -> RecordingPreview:
    """The 60 s windows ``POST /v1/events/classify`` uses for the same upload and
    parameters (station, p_arrival), with the log spectrum its encoder sees."""
    del bundle  # leased for the request, like the event routes
    filename = file.filename or "upload"
    pre = branch.embedder.pre
    with saved_upload(file, settings.max_upload_bytes) as path:
        recording = read_recording(path, filename, pre, params.station, params.p_arrival, settings)
    return RecordingPreview(
        filename=filename,
        stations=[window_preview(w, pre) for w in recording.windows],
    )
