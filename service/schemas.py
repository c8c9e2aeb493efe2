"""Request and response models of the API, grouped by resource."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

QueryT = TypeVar("QueryT", bound=BaseModel)

# --------------------------------------------------------------------------- errors


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: one message saying what went wrong and what is expected."""

    detail: str = Field(description="what went wrong, and what was expected")
    reason: str = Field(
        description="a short stable label of the cause, e.g. 'truncated', 'unknown_family', "
        "'not_ready' (also the `reason` label of the error metrics)"
    )


class FieldError(BaseModel):
    """One invalid request parameter."""

    loc: list[str | int] = Field(description="where: ['query', 'k'], ['body', 'file'], …")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(
        description="pydantic's error type, e.g. 'less_than_equal', or the error's reason"
    )


class ValidationErrorResponse(ErrorResponse):
    """A request whose parameters are invalid (422)."""

    errors: list[FieldError] = Field(default_factory=list)


# --------------------------------------------------------------------------- velocity


class DescriptorEstimate(BaseModel):
    """A physical descriptor inferred from the top-k models."""

    mean: float = Field(description="similarity-weighted mean over the top-k models")
    std: float = Field(
        description="the spread: the similarity-weighted standard deviation, scaled by the "
        "bundle's calibration for the query's familiarity when `calibrated` (so mean ± std "
        "covered the truth in about 68 % of held-out gathers of that familiarity)"
    )
    neighbour_std: float | None = Field(
        None, description="the neighbours' own weighted standard deviation, unscaled"
    )
    calibrated: bool = Field(False, description="whether `std` is calibrated")
    unit: str = Field(description="'m/s', '1/s', 'm' or 'count'")


class Familiarity(BaseModel):
    """How much the uploaded gather resembles those the bundle was calibrated on."""

    score: float | None = Field(
        description="in [0, 1]: the fraction of held-out in-distribution gathers whose best "
        "match scored at most this gather's — with the bundle's embedding density, whose "
        "weaker of best match and closeness to known gathers' embeddings was at most this "
        "gather's (0.5 is typical; null when not calibrated)"
    )
    best_score: float | None = Field(description="the best match's cosine similarity")
    snr_db: float | None = Field(
        None,
        description="the gather's signal-to-noise ratio in dB estimated from the coherence "
        "of neighbouring traces (about +20 dB for a clean synthetic gather, −12 dB for pure "
        "noise); a low value caps the score",
    )
    warning: str | None = Field(description="set when the score is below the bundle's threshold")
    calibration: str | None = Field(description="what the score was calibrated on, or why not")


class LibraryMatch(BaseModel):
    """What every branch's match has: one library item among the top-k."""

    rank: int = Field(description="1 for the best match")
    id: int = Field(description="the item's id in the library")
    score: float = Field(description="cosine similarity of the embeddings, in [-1, 1]")
    source: str = Field(
        description="where the item came from (velocity: file and row; "
        "events: <dataset folder>::<trace name>)"
    )


class VelocityMatch(LibraryMatch):
    """One library velocity model among the top-k."""

    family: str = Field(description="the model's family, e.g. 'flatvel-a'")
    descriptors: dict[str, float] = Field(description="physical descriptors, name → value")
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
    embed_ms: float = Field(
        description="preprocessing and the ONNX encoder of the query (seismic for a gather, "
        "velocity for a model, descriptor for descriptors)"
    )
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


class VelocityAnswer(BaseModel, Generic[QueryT]):
    """What every velocity search answers: what was asked (``query``, one model per kind
    of query), the top-k library models and what they imply."""

    query: QueryT
    results: list[VelocityMatch] = Field(description="best first")
    inferred_descriptors: dict[str, DescriptorEstimate] = Field(
        description="descriptor name → weighted mean, spread and unit"
    )
    estimated_model: EstimatedModel | None = Field(
        description="the weighted mean of the top-k models; null when nothing matched"
    )


class DescriptorPrediction(BaseModel):
    """A physical descriptor predicted from the gather alone by the descriptor head."""

    mean: float = Field(description="the head's predicted value")
    std: float = Field(
        description="the head's predicted standard deviation, scaled by the bundle's "
        "calibration for the query's familiarity when `calibrated`"
    )
    calibrated: bool = Field(False, description="whether `std` is calibrated")
    unit: str = Field(description="'m/s', '1/s', 'm' or 'count'")


class VelocitySearchResponse(VelocityAnswer[QueryInfo]):
    """The top-k velocity models for an uploaded gather, and what they imply."""

    familiarity: Familiarity | None = Field(
        None, description="how familiar the gather is to the bundle, with a warning if not"
    )
    predicted_descriptors: dict[str, DescriptorPrediction] | None = Field(
        None,
        description="descriptor name → the descriptor head's prediction from the gather "
        "alone (not limited to what library models have, e.g. a layer count or fault throw "
        "no library model shares); `inferred_descriptors` are the top-k library models'. "
        "Null for a bundle without a head.",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [_SEARCH_EXAMPLE]})


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


# --------------------------------------------------------------------------- events


class Quantity(BaseModel):
    """A value with its unit, and where known its spread (same unit)."""

    value: float
    unit: str
    spread: float | None = Field(
        None,
        description="the standard deviation of this quantity over the similar library "
        "events that catalogue it (at least 2 of the top-k; null otherwise): how much the "
        "recordings that look like this one differ in it — not a calibrated uncertainty",
    )
    method: str | None = Field(
        None,
        description="how the value was found, where there is more than one way: "
        "`heads` (the model) or `s_minus_p` (the observed S − P time at the model's "
        "distance; see `travel_time`)",
    )


class SPickInfo(BaseModel):
    """The S pick of a window's S − P check."""

    s_time: str = Field(description="UTC of the S pick")
    s_minus_p_s: float = Field(description="S − P time (s)")
    ratio: float = Field(description="horizontal energy after / before the pick: its quality")


class TravelTimeCheck(BaseModel):
    """The source depth the observed S − P time gives at the model's distance (1-D
    iasp91 table): the physics check of the model's depth, which replaces it where it
    applies (an earthquake with a P pick, distance ≤ 250 km, pick ratio ≥ 30). An
    explosion answer that passes the same gate with a depth of 60 km or more becomes an
    earthquake (explosions are a few km deep at most)."""

    s_pick: SPickInfo | None = Field(description="the S pick (null: no room after the P)")
    depth_km: float | None = Field(
        description="the depth matching the S − P time (null: outside 0–200 km)"
    )
    model_depth_km: float = Field(description="the model's own depth, kept for comparison")
    applied: bool = Field(description="whether `depth_km` is the answer's depth")
    reason: str | None = Field(description="why it was not applied, when not")
    relabelled_from: str | None = Field(
        None,
        description="the type the probabilities give ('explosion'), where this check changed "
        "the answer's `label` to 'earthquake': an S that late puts the source too deep for "
        "an explosion; null otherwise",
    )


class EventWindowInfo(BaseModel):
    """The 60 s window a station was classified on."""

    start: str = Field(description="UTC of its first sample (ISO 8601)")
    end: str = Field(description="UTC of the instant after its last sample (start + 60 s)")
    seconds: float = Field(60.0, description="its length")
    rule: Literal["p_arrival", "sta_lta", "start"] = Field(
        description="how it was placed: on the given P time, on the first STA/LTA "
        "trigger of the vertical, or at the start of the record"
    )
    p_time: str | None = Field(
        description="UTC of the P pick it is aligned on (given or triggered); null for 'start'"
    )
    p_offset_s: float | None = Field(
        description="seconds from the window start to that pick (5 s unless the record "
        "ends or begins too close to it)"
    )
    padded_s: float = Field(description="seconds of zeros appended to a short record")
    input_sampling_rate_hz: float = Field(description="the record's rate (resampled to 100 Hz)")


class SimilarEvent(LibraryMatch):
    """One library event among the top-k."""

    label: str = Field(description="its event type")
    metadata: dict[str, Any] = Field(
        description="its catalogue entry: trace name, station, magnitude, depth_km, "
        "distance_km, back_azimuth_deg, snr_db, times, the window indexed, …"
    )


class StationEvents(BaseModel):
    """One station's window and the library events most similar to it."""

    station: str = Field(description="NET.STA")
    channels: list[str] = Field(description="SEED ids of the traces used as Z, N, E")
    window: EventWindowInfo
    similar: list[SimilarEvent] = Field(
        description="the top-k library events, best first (empty without an events index)"
    )


class StationClassification(StationEvents):
    """One station's event type, source parameters and similar events."""

    probabilities: dict[str, float] = Field(description="event type → probability (sum 1)")
    label: str = Field(
        description="the most probable event type, unless the S − P check found the source "
        "too deep for an explosion (`travel_time.relabelled_from`)"
    )
    distance_km: Quantity = Field(description="epicentral distance inferred by the model")
    depth_km: Quantity = Field(description="source depth inferred by the model")
    magnitude: Quantity = Field(
        description="magnitude inferred by the model (trained on the synthetic "
        "generator's Mw; a real catalogue's ML or MA agrees to a few tenths at small sizes)"
    )
    travel_time: TravelTimeCheck | None = Field(
        None, description="the S − P check of the depth (null: not a 100 Hz window)"
    )


class SkippedStation(BaseModel):
    """A station of the file that could not be used (the others were)."""

    station: str
    reason: str


class EventTiming(BaseModel):
    """Where the time of an event query went, in milliseconds."""

    read_ms: float = Field(description="receiving the upload and reading it as miniSEED")
    preprocess_ms: float = Field(
        description="merge, checks, filter, resample, window and STFT of every station"
    )
    embed_ms: float = Field(description="the ONNX spectrum encoder")
    classify_ms: float = Field(description="the ONNX heads (0 for a search)")
    search_ms: float = Field(description="FAISS search and metadata look-up")
    total_ms: float


class EventQueryInfo(BaseModel):
    """What the service made of the upload."""

    filename: str
    format: Literal["mseed"] = "mseed"
    traces: int = Field(description="traces (records merged per channel) read from the file")
    stations_in_file: list[str] = Field(description="NET.STA of every station in the file")
    station: str | None = Field(description="the station asked for, if any")
    p_arrival: str | None = Field(description="the P time given, if any (UTC)")
    k: int
    bundle: str = Field(description="the bundle that answered")
    library_events: int = Field(description="events in the bundle's library")
    notes: list[str] = Field(description="warnings while reading and what was not done")
    timing: EventTiming


_EVENT_WINDOW_EXAMPLE = {
    "start": "2005-07-23T14:52:05.650000Z",
    "end": "2005-07-23T14:53:05.650000Z",
    "seconds": 60.0,
    "rule": "sta_lta",
    "p_time": "2005-07-23T14:52:10.650000Z",
    "p_offset_s": 5.0,
    "padded_s": 0.0,
    "input_sampling_rate_hz": 150.0,
}
_EVENT_QUERY_EXAMPLE = {
    "filename": "2005-07-23-1452-04S.CER___030.mseed",
    "format": "mseed",
    "traces": 3,
    "stations_in_file": [".CER"],
    "station": None,
    "p_arrival": None,
    "k": 1,
    "bundle": "default",
    "library_events": 4800,
    "notes": [],
    "timing": {
        "read_ms": 2.1,
        "preprocess_ms": 9.4,
        "embed_ms": 2.2,
        "classify_ms": 2.4,
        "search_ms": 0.6,
        "total_ms": 17.0,
    },
}
_SIMILAR_EXAMPLE = {
    "rank": 1,
    "id": 812,
    "score": 0.9412,
    "label": "earthquake",
    "source": "data/events/synthetic::bucket3$12,:3,:12000",
    "metadata": {
        "trace_name": "bucket3$12,:3,:12000",
        "station": "SY.S012",
        "magnitude": 2.4,
        "depth_km": 8.1,
        "distance_km": 41.7,
        "split": "train",
    },
}


class EventClassifyResponse(BaseModel):
    """Per station: event type, inferred source parameters and similar library events."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": _EVENT_QUERY_EXAMPLE,
                    "stations": [
                        {
                            "station": ".CER",
                            "channels": [".CER.00.BHZ", ".CER.00.BHN", ".CER.00.BHE"],
                            "window": _EVENT_WINDOW_EXAMPLE,
                            "probabilities": {
                                "earthquake": 0.91,
                                "explosion": 0.05,
                                "surface": 0.01,
                                "noise": 0.03,
                            },
                            "label": "earthquake",
                            "distance_km": {"value": 38.2, "unit": "km"},
                            "depth_km": {"value": 9.6, "unit": "km"},
                            "magnitude": {"value": 2.3, "unit": "magnitude units"},
                            "similar": [_SIMILAR_EXAMPLE],
                        }
                    ],
                    "skipped": [],
                }
            ]
        }
    )

    query: EventQueryInfo
    stations: list[StationClassification] = Field(description="one per usable station")
    skipped: list[SkippedStation] = Field(
        description="stations of a multi-station file that could not be used, and why"
    )


class EventSearchResponse(BaseModel):
    """Per station: the library events most similar to its window."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": _EVENT_QUERY_EXAMPLE,
                    "stations": [
                        {
                            "station": ".CER",
                            "channels": [".CER.00.BHZ", ".CER.00.BHN", ".CER.00.BHE"],
                            "window": _EVENT_WINDOW_EXAMPLE,
                            "similar": [_SIMILAR_EXAMPLE],
                        }
                    ],
                    "skipped": [],
                }
            ]
        }
    )

    query: EventQueryInfo
    stations: list[StationEvents] = Field(description="one per usable station")
    skipped: list[SkippedStation]


class EventIndexInfo(BaseModel):
    """The events library's index."""

    kind: str = Field(description="'flat' (exact), 'hnsw' or 'ivfpq'")
    count: int = Field(description="events in the library")
    per_class: dict[str, int] = Field(description="events per type")
    path: str
    built: str | None = None
    encoder_sha256: str = Field(description="the spectrum encoder the vectors were embedded with")
    window: str | None = Field(None, description="'catalog' (catalogued P picks) or 'auto'")
    config: dict[str, Any]
    sources: list[dict[str, Any]] = Field(default_factory=list)
    gpu_index: bool = Field(description="whether FAISS searches a GPU copy of it")
    gpu_index_reason: str


class EventBranchInfo(BaseModel):
    """The event branch of the bundle: encoders, classes, units, library."""

    classes: list[str] = Field(description="event types, in probability order")
    embed_dim: int
    encoders: dict[str, EncoderInfo] = Field(description="spectrum, info and heads graphs")
    targets: dict[str, str] = Field(description="regression output → unit")
    preprocessing: dict[str, Any]
    training_metrics: dict[str, Any] | None
    evaluation: dict[str, Any] | None = None
    execution_provider: str = Field(description="the ONNX Runtime provider in use")
    index: EventIndexInfo | None = Field(description="null when there is no usable index")
    index_problem: str | None = Field(
        description="why there is no usable index (similar-event search unavailable)"
    )


# --------------------------------------------------------------------------- bundle (cont.)


class IndexInfo(BaseModel):
    """The velocity library's index."""

    kind: str = Field(description="'flat' (exact), 'hnsw' or 'ivfpq'")
    count: int = Field(description="velocity models in the library")
    families: dict[str, int] = Field(description="models per family")
    path: str
    built: str | None = None
    encoder_sha256: str = Field(description="the encoder the vectors were embedded with")
    config: dict[str, Any]
    sources: list[str] = Field(
        default_factory=list,
        description="the library folders indexed (their names; full paths with the admin token)",
    )


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
    path: str | None = Field(
        description="the bundle directory on the server; null unless the admin token is "
        "sent (without it, paths in the answer are reduced to their last part)"
    )
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
    events: EventBranchInfo | None = Field(
        None, description="the event branch; null when the bundle has no event encoders"
    )
    events_unavailable: str | None = Field(
        None, description="why the events routes are not served (null when they are)"
    )


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
