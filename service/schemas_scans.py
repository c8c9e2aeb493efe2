"""Answers of the scan routes (:mod:`seislens.service.routes_scans`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ScanProgress(BaseModel):
    """How far a scan is."""

    fraction: float = Field(description="windows scanned / windows planned (0–1)")
    windows_done: int
    windows_total: int
    station: str | None = Field(None, description="the station being scanned")


class ScanError(BaseModel):
    """Why a scan failed, as the API's errors say it."""

    detail: str
    reason: str


class ScanLinks(BaseModel):
    """Where the job and its files are."""

    self: str = Field(description="this job (GET)")
    csv: str = Field(description="detections as CSV (once done)")
    quakeml: str = Field(description="events as QuakeML (once done)")
    mseed: str = Field(description="class-probability traces as miniSEED (once done)")


class SkippedScanStation(BaseModel):
    """A station of the file that is not scanned, and why."""

    station: str
    reason: str


class ScanStatusResponse(BaseModel):
    """A scan job."""

    id: str = Field(description="32 hex digits")
    state: Literal["queued", "running", "done", "failed"]
    filename: str | None = None
    bundle: str | None = None
    settings: dict[str, float] = Field(
        default_factory=dict, description="stride_s, threshold, peak_threshold"
    )
    stations: list[str] = Field(default_factory=list, description="stations scanned")
    skipped: list[SkippedScanStation] = Field(
        default_factory=list, description="stations not scanned (no 3 components, too short…)"
    )
    located: bool = Field(False, description="a StationXML came: events are located")
    created: float | None = Field(None, description="epoch seconds")
    started: float | None = None
    finished: float | None = None
    progress: ScanProgress | None = None
    error: ScanError | None = None
    summary: dict[str, int] | None = Field(
        None, description="when done: detections, events, stations, skipped"
    )
    links: ScanLinks
    result: dict[str, Any] | None = Field(
        None,
        description="when done: the whole result (result.json): stations, skipped, "
        "detections (start, end, onset, station, label, label_changed_from (the "
        "probabilities' type where the S − P check changed it), probabilities, distance_km "
        "/ depth_km / magnitude with value, spread, unit and method, peak window), events "
        "(label, "
        "combined probabilities, agreement, stations, location with misfit), "
        "probability_channels, settings, seconds",
    )

    @classmethod
    def from_status(
        cls, status: dict[str, Any], links: dict[str, str], result: dict[str, Any] | None
    ) -> ScanStatusResponse:
        """The answer from a job's status document and, when done, its result."""
        known = {k: v for k, v in status.items() if k in cls.model_fields}
        return cls(**known, links=ScanLinks(**links), result=result)
