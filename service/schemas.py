"""Request and response models of the API, grouped by resource."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- errors


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: one message saying what went wrong and what is expected."""

    detail: str = Field(description="what went wrong, and what was expected")


class FieldError(BaseModel):
    """One invalid request parameter."""

    loc: list[str | int] = Field(description="where: ['query', 'k'], ['body', 'file'], …")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="pydantic's error type, e.g. 'less_than_equal'")


class ValidationErrorResponse(ErrorResponse):
    """A request whose parameters are invalid (422)."""

    errors: list[FieldError] = Field(default_factory=list)


# --------------------------------------------------------------------------- velocity


class DescriptorEstimate(BaseModel):
    """A physical descriptor inferred from the top-k models."""

    mean: float = Field(description="similarity-weighted mean over the top-k models")
    std: float = Field(description="similarity-weighted standard deviation (the spread)")
    unit: str = Field(description="'m/s', '1/s', 'm' or 'count'")


class VelocityMatch(BaseModel):
    """One library velocity model among the top-k."""

    rank: int = Field(description="1 for the best match")
    id: int = Field(description="the model's id in the library")
    score: float = Field(description="cosine similarity to the query gather, in [-1, 1]")
    family: str = Field(description="the model's family, e.g. 'flatvel-a'")
    descriptors: dict[str, float] = Field(description="physical descriptors, name → value")
    source: str = Field(description="where the model came from (file and row)")
    model_url: str = Field(description="GET this for the model (format=json|npy|png)")


class EstimatedModel(BaseModel):
    """The velocity model estimated from the top-k, served by link."""

    query_id: str
    url: str = Field(description="GET this for the model (format=json|npy|png)")
    shape: list[int] = Field(description="[nz, nx] = [70, 70], 10 m cells")
    unit: Literal["m/s"] = "m/s"
    method: str = Field(description="how it was computed")
    neighbours: int = Field(description="models averaged (the top-k)")
    temperature: float = Field(description="softmax temperature on the cosine scores")


class SearchTiming(BaseModel):
    """Where the time of a search went, in milliseconds."""

    read_ms: float = Field(description="receiving and parsing the upload")
    embed_ms: float = Field(description="preprocessing and the ONNX seismic encoder")
    search_ms: float = Field(description="FAISS search and metadata look-up")
    estimate_ms: float = Field(description="weighted descriptors and model")
    total_ms: float


class QueryInfo(BaseModel):
    """What the service made of the upload."""

    query_id: str = Field(description="names this query's estimated model")
    filename: str
    format: Literal["segy", "su", "npy"] = Field(description="format detected from the content")
    traces: int = Field(description="traces in the file (350 = 5 shots × 70 receivers)")
    source_dt_ms: float = Field(description="the file's sample interval (resampled to 1 ms)")
    notes: list[str] = Field(description="what the reader did beyond a plain read")
    k: int
    family: str | None = Field(description="the family filter, if any")
    bundle: str = Field(description="the bundle that answered")
    timing: SearchTiming


_DESCRIPTORS_EXAMPLE = {
    "mean_velocity": 3251.75,
    "vertical_gradient": 2.633,
    "horizontal_gradient": 0.0,
    "min_velocity": 2222.84,
    "max_velocity": 3731.46,
    "std_velocity": 593.93,
    "n_interfaces": 3.0,
    "first_interface_depth": 110.0,
    "fault_throw": 0.0,
}
_UNITS_EXAMPLE = {
    "mean_velocity": "m/s",
    "vertical_gradient": "1/s",
    "horizontal_gradient": "1/s",
    "min_velocity": "m/s",
    "max_velocity": "m/s",
    "std_velocity": "m/s",
    "n_interfaces": "count",
    "first_interface_depth": "m",
    "fault_throw": "m",
}
_QUERY_ID_EXAMPLE = "a4371e91a46a4473bb642a21b9371f9e"
_SEARCH_EXAMPLE = {
    "query": {
        "query_id": _QUERY_ID_EXAMPLE,
        "filename": "shot.sgy",
        "format": "segy",
        "traces": 350,
        "source_dt_ms": 1.0,
        "notes": [
            "SEG-Y rev 1, big-endian, 4-byte IEEE float",
            "traces grouped into shots by FieldRecord",
            "receivers ordered by GroupX",
        ],
        "k": 1,
        "family": None,
        "bundle": "default",
        "timing": {
            "read_ms": 2.3,
            "embed_ms": 1.0,
            "search_ms": 0.5,
            "estimate_ms": 0.3,
            "total_ms": 4.2,
        },
    },
    "results": [
        {
            "rank": 1,
            "id": 15,
            "score": 0.6826,
            "family": "flatvel-a",
            "descriptors": _DESCRIPTORS_EXAMPLE,
            "source": "data/train/flatvel-a/model1.npy[3]",
            "model_url": "http://localhost:8000/v1/velocity/models/15",
        }
    ],
    "inferred_descriptors": {
        name: {"mean": value, "std": 0.0, "unit": _UNITS_EXAMPLE[name]}
        for name, value in _DESCRIPTORS_EXAMPLE.items()
    },
    "estimated_model": {
        "query_id": _QUERY_ID_EXAMPLE,
        "url": f"http://localhost:8000/v1/velocity/estimates/{_QUERY_ID_EXAMPLE}",
        "shape": [70, 70],
        "unit": "m/s",
        "method": "similarity-weighted mean of top-k",
        "neighbours": 1,
        "temperature": 0.05,
    },
}


class VelocitySearchResponse(BaseModel):
    """The top-k velocity models for an uploaded gather, and what they imply."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SEARCH_EXAMPLE]})

    query: QueryInfo
    results: list[VelocityMatch] = Field(description="best first")
    inferred_descriptors: dict[str, DescriptorEstimate] = Field(
        description="descriptor name → weighted mean, spread and unit"
    )
    estimated_model: EstimatedModel | None = Field(
        description="the weighted mean of the top-k models; null when nothing matched"
    )


class VelocityModelResponse(BaseModel):
    """A library velocity model."""

    id: int
    family: str
    source: str
    descriptors: dict[str, float]
    units: dict[str, str] = Field(description="descriptor name → unit")
    shape: list[int] = Field(description="[nz, nx]")
    unit: Literal["m/s"] = "m/s"
    spacing_m: float = Field(10.0, description="grid spacing dx = dz in metres")
    velocity: list[list[float]] = Field(description="velocity[z][x] in m/s, z downwards")


class VelocityEstimateResponse(BaseModel):
    """An estimated velocity model (the weighted mean of a search's top-k)."""

    query_id: str
    bundle: str
    method: str
    temperature: float
    neighbours: list[int] = Field(description="ids of the models averaged, best first")
    weights: list[float] = Field(description="their weights (sum to 1)")
    shape: list[int] = Field(description="[nz, nx]")
    unit: Literal["m/s"] = "m/s"
    spacing_m: float = 10.0
    velocity: list[list[float]] = Field(description="velocity[z][x] in m/s, z downwards")


# --------------------------------------------------------------------------- bundle


class EncoderInfo(BaseModel):
    """One ONNX encoder of the bundle."""

    model_config = ConfigDict(extra="allow")

    file: str
    sha256: str
    bytes: int | None = None
    input_shape: list[Any] | None = None


class IndexInfo(BaseModel):
    """The velocity library's index."""

    kind: str = Field(description="'flat' (exact), 'hnsw' or 'ivfpq'")
    count: int = Field(description="velocity models in the library")
    families: dict[str, int] = Field(description="models per family")
    path: str
    built: str | None = None
    encoder_sha256: str = Field(description="the encoder the vectors were embedded with")
    config: dict[str, Any]
    sources: list[str] = Field(default_factory=list)


class RuntimeInfo(BaseModel):
    """How this process really runs the bundle."""

    execution_provider: str = Field(description="the ONNX Runtime provider in use")
    available_providers: list[str]
    requested_providers: list[str]
    onnx_threads: int = Field(description="intra-op threads per encoder (0: ORT's default)")
    faiss_threads: int = Field(description="OpenMP threads FAISS searches with")
    gpu_index: bool = Field(description="whether FAISS searches a GPU copy of the index")
    gpu_index_reason: str = Field(description="why (or why not)")


class BundleResponse(BaseModel):
    """The bundle being served: manifest summary, counts, metrics and runtime."""

    name: str
    path: str
    created: str | None
    schema_version: int
    seislens_version: str | None
    loaded_at: float = Field(description="when this process loaded it (Unix time)")
    embed_dim: int
    encoders: dict[str, EncoderInfo]
    preprocessing: dict[str, Any]
    training_metrics: dict[str, Any] | None
    evaluation: dict[str, Any] | None = Field(description="held-out metrics, if evaluated")
    index: IndexInfo
    runtime: RuntimeInfo


# --------------------------------------------------------------------------- admin


class ReloadRequest(BaseModel):
    """Which bundle to switch to."""

    model_config = ConfigDict(extra="forbid")

    bundle: str | None = Field(
        None,
        description="bundle directory on the server; omitted: reload the current one "
        "from disk (e.g. after `seislens index build`)",
        examples=["/bundles/2026-06-01"],
    )


class BundleRef(BaseModel):
    """A bundle, briefly."""

    name: str
    path: str
    created: str | None
    models: int


class ReloadResponse(BaseModel):
    """A completed switch."""

    previous: BundleRef | None
    current: BundleRef
    seconds: float = Field(description="time spent loading the new bundle")


# --------------------------------------------------------------------------- health


class HealthResponse(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """A bundle is loaded and queries are answered."""

    status: Literal["ready"] = "ready"
    bundle: str
    models: int
