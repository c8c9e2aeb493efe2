"""Request and response models of the queries by velocity model and by descriptors, and
of the embedding routes (``/v1/embed/...``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from seislens.service.schemas import (
    EventWindowInfo,
    SearchTiming,
    SkippedStation,
    VelocityAnswer,
)

# --------------------------------------------------------------------------- requests


class VelocityModelBody(BaseModel):
    """A velocity model as JSON: 70 rows (depth z, downwards) of 70 values (x), m/s."""

    model_config = ConfigDict(extra="forbid")

    velocity_model: list[list[float]] = Field(
        description="velocity_model[z][x] in m/s; 70 × 70 cells of 10 m"
    )


_DESCRIPTORS_DOC = "descriptor name → value in its unit; any subset of the nine"


class DescriptorValues(BaseModel):
    """Physical descriptors of a velocity model, by name (``DESCRIPTOR_NAMES``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"descriptors": {"mean_velocity": 3000.0, "n_interfaces": 3}}]
        },
    )

    descriptors: dict[str, float] = Field(description=_DESCRIPTORS_DOC)


class DescriptorSearchBody(DescriptorValues):
    """Descriptors to search by, with optional tolerances (a hard filter)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "descriptors": {"mean_velocity": 3000.0, "n_interfaces": 3},
                    "tolerances": {"n_interfaces": 0},
                }
            ]
        },
    )

    tolerances: dict[str, float] | None = Field(
        None,
        description="descriptor name → largest accepted |value − target| (same unit); "
        "each needs its descriptor",
    )


# --------------------------------------------------------------------------- searches


class VelocityQueryBase(BaseModel):
    """What every velocity query by model or descriptors reports of itself."""

    query_id: str = Field(description="names this query's estimated model")
    k: int
    family: str | None = Field(description="the family filter, if any")
    bundle: str = Field(description="the bundle that answered")
    timing: SearchTiming


class VelocityModelQueryInfo(VelocityQueryBase):
    """What the service made of the uploaded velocity model."""

    filename: str | None = Field(description="the uploaded file's name (null for JSON)")
    format: Literal["npy", "json"] = Field(description="a .npy file or a JSON body")
    notes: list[str] = Field(description="what the reader did beyond a plain read")


class DescriptorQueryInfo(VelocityQueryBase):
    """The descriptor query as checked, and how the library was ranked."""

    descriptors: dict[str, float] = Field(description="the targets, name → value")
    tolerances: dict[str, float] = Field(description="the hard filter, name → tolerance")
    method: Literal["embedding", "filter+embedding", "distance"] = Field(
        description="embedding / filter+embedding: scores are cosine similarities of the "
        "descriptor embedding; distance: scores are exp(−d²/2) of the standardised distance"
    )
    candidates: int = Field(description="library models within the tolerances and family")


class VelocityModelSearchResponse(VelocityAnswer[VelocityModelQueryInfo]):
    """The top-k library models for an uploaded velocity model, and what they imply."""


class DescriptorSearchResponse(VelocityAnswer[DescriptorQueryInfo]):
    """The top-k library models for the given descriptors, and what they imply."""


# --------------------------------------------------------------------------- embeddings


class EmbeddingInfo(BaseModel):
    """Which encoder of which bundle made an embedding."""

    dim: int = Field(description="embedding size (the bundle's embed_dim)")
    bundle: str = Field(description="the bundle that answered")
    modality: str = Field(description="gather, velocity, descriptors or recording")
    encoder: str = Field(description="the ONNX encoder used (manifest encoder name)")
    encoder_sha256: str = Field(description="SHA-256 of that encoder's ONNX file")


class EmbeddingResponse(EmbeddingInfo):
    """One L2-normalised embedding in the bundle's shared space."""

    embedding: list[float] = Field(description="unit-norm vector of `dim` floats")
    notes: list[str] = Field(description="what the reader did beyond a plain read")


class StationEmbedding(BaseModel):
    """The embedding of one station's 60 s window."""

    station: str = Field(description="NET.STA")
    channels: list[str]
    window: EventWindowInfo
    embedding: list[float] = Field(description="unit-norm vector of `dim` floats")


class RecordingEmbeddingResponse(EmbeddingInfo):
    """One spectrum-encoder embedding per station window of a miniSEED recording."""

    stations: list[StationEmbedding]
    skipped: list[SkippedStation] = Field(description="stations that could not be used")
    notes: list[str] = Field(description="ObsPy's warnings while reading")
