"""The bundle manifest, typed: the central contract between training, index and service.

A bundle's ``manifest.json`` holds one section per branch (``velocity``, ``events``: see
:mod:`seislens.models.branches`), the library indexes built for them and provenance.
Every reader and writer goes through :class:`Manifest`; nothing handles the manifest
as an untyped dict. Free-form reports (evaluation, training metrics, provenance) stay
open dicts inside the typed sections; the fields code relies on are typed.

Schema versions: ``SCHEMA_VERSION`` is what this SeisLens writes; ``READABLE_VERSIONS``
what it reads. A manifest of any other version is refused with a message that names
its version and the versions this SeisLens reads.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1
READABLE_VERSIONS: tuple[int, ...] = (1,)
MANIFEST_FILE = "manifest.json"


class ManifestError(ValueError):
    """A manifest that is missing, malformed, of another schema version or inconsistent."""


class _Open(BaseModel):
    """A record with typed known fields that keeps unknown ones (written by newer code)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


class EncoderEntry(_Open):
    """One exported ONNX graph of a branch.

    ``input_shape`` is the graph's input shape with ``"batch"`` for the batch axis, e.g.
    ``["batch", 5, 125, 70]``; ``sha256`` and ``bytes`` describe ``file`` (relative to
    the bundle root).
    """

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    input_shape: list[int | str]
    input: str | None = None
    outputs: list[str] | None = None


class BranchSection(_Open):
    """What every branch section holds: its encoders, their embedding size, how they
    were checked against torch (``parity``), preprocessing, and reports."""

    embed_dim: int = Field(gt=0)
    encoders: dict[str, EncoderEntry]
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    training_metrics: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    exported: str | None = None
    versions: dict[str, Any] = Field(default_factory=dict)


class VelocityDensity(_Open):
    """A Gaussian density of the seismic encoder's gather embeddings, the second half of a
    gather's familiarity (:mod:`seislens.models.familiarity`).

    ``file`` (bundle-relative ``.npz``: ``mean`` (D,), ``precision`` (D, D)) holds the
    Gaussian fitted with covariance shrinkage ``shrinkage`` on ``fit_count`` gathers of
    ``fit_data`` (none of them calibration queries); ``sha256`` is the file's.
    ``reference`` are the calibration queries' squared Mahalanobis distances, ascending;
    ``combined`` their joint statistic min(score CDF, distance upper tail), ascending,
    whose empirical CDF is the familiarity.
    """

    file: str
    sha256: str
    shrinkage: float = Field(ge=0.0, le=1.0)
    fit_count: int = Field(gt=0)
    fit_data: list[str] = Field(default_factory=list)
    reference: list[float]
    combined: list[float]


class VelocityCalibration(_Open):
    """How familiar a gather query is, and how wide its descriptor spreads must be,
    measured on held-out in-distribution queries against one library index.

    ``top1_scores`` are the calibration queries' best cosine scores, ascending: a new
    query's familiarity is the fraction of them at or below its own best score (an
    empirical CDF in [0, 1]); below ``warn_below`` the answer carries a warning, which
    by construction fires on about that fraction of in-distribution queries.
    ``std_scale`` multiplies each descriptor's neighbour spread so that mean ± std
    covered the truth in ``coverage`` of the calibration queries (split-conformal, at
    ``k`` neighbours). ``familiarity_bins`` (ascending upper edges, the last 1.0) split
    the calibration queries by familiarity; ``std_scale_by_bin`` holds each bin's
    factors (non-increasing with familiarity, so an unfamiliar query gets wider
    spreads) and ``head_std_scale_by_bin`` the same for the descriptor head's predicted
    std. Empty lists: the single ``std_scale`` serves every query. ``snr_db_full`` and
    ``snr_db_zero`` (dB of the gather's lateral SNR estimate) cap the familiarity of
    noisy gathers (:func:`seislens.models.familiarity.signal_factor`); None: no cap.
    ``density`` (optional) makes the familiarity joint: the best score's CDF and how far
    the gather's embedding lies from the embeddings of known gathers
    (:class:`VelocityDensity`). Valid only for the
    index at ``index_path`` embedded by the encoder ``encoder_sha256``; the service
    ignores it otherwise.
    """

    index_path: str
    encoder_sha256: str
    k: int = Field(gt=0)
    queries: int = Field(gt=0)
    top1_scores: list[float]
    warn_below: float = Field(0.05, ge=0.0, le=1.0)
    coverage: float = Field(0.6827, gt=0.0, lt=1.0)
    std_scale: dict[str, float] = Field(default_factory=dict)
    familiarity_bins: list[float] = Field(default_factory=list)
    std_scale_by_bin: list[dict[str, float]] = Field(default_factory=list)
    head_std_scale_by_bin: list[dict[str, float]] = Field(default_factory=list)
    snr_db_full: float | None = None
    snr_db_zero: float | None = None
    density: VelocityDensity | None = None
    data: list[str] = Field(default_factory=list)
    created: str | None = None

    @model_validator(mode="after")
    def _snr_floor(self) -> VelocityCalibration:
        full, zero = self.snr_db_full, self.snr_db_zero
        if (full is None) != (zero is None):
            raise ValueError("snr_db_full and snr_db_zero are set together or not at all")
        if full is not None and zero is not None and not full > zero:
            raise ValueError(f"snr_db_full {full} must exceed snr_db_zero {zero}")
        return self


class VelocitySection(BranchSection):
    """The velocity branch: ``seismic``, ``velocity`` and ``descriptor`` encoders.

    ``preprocessing`` holds ``gather`` (decimate, log_alpha, mean, std, n_time),
    ``velocity`` (v_min, v_max in m/s) and ``descriptors`` (mean, std: 9 floats each);
    ``calibration`` (optional) the familiarity and spread calibration of its index.
    """

    calibration: VelocityCalibration | None = None


class EventSection(BranchSection):
    """The event branch: ``spectrum``, ``info`` and ``heads`` graphs.

    ``classes`` are the heads' labels in logit order; ``targets`` the regression outputs
    with their units; ``window`` the window length (s), rate (Hz) and spectrum shape.
    """

    classes: list[str]
    info_fields: list[str] = Field(default_factory=list)
    targets: dict[str, str] = Field(default_factory=dict)
    regression_outputs: list[str] = Field(default_factory=list)
    window: dict[str, Any] = Field(default_factory=dict)


class IndexEntry(_Open):
    """One library index of the bundle, tied to the encoder that embedded it.

    ``path`` is relative to the bundle root; ``encoder_sha256`` must equal the
    branch's current ``encoders[encoder].sha256`` for the index to be served.
    """

    branch: str
    encoder: str
    encoder_sha256: str
    path: str
    count: int = Field(ge=0)
    built: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Open):
    """The whole ``manifest.json``."""

    schema_version: int
    name: str | None = None
    created: str | None = None
    seislens_version: str | None = None
    versions: dict[str, Any] = Field(default_factory=dict)
    velocity: VelocitySection | None = None
    events: EventSection | None = None
    indexes: dict[str, IndexEntry] = Field(default_factory=dict)

    def section(self, branch: str) -> BranchSection | None:
        """The section of ``branch`` (a registry name), or None when the bundle lacks it."""
        value = getattr(self, branch, None)
        return value if isinstance(value, BranchSection) else None

    def with_section(self, branch: str, section: BranchSection | None) -> Manifest:
        """A copy with ``branch``'s section replaced (None removes it); others untouched."""
        return self.model_copy(update={branch: section})

    def to_json(self) -> str:
        """Stable JSON text (sorted keys, 2-space indent, trailing newline)."""
        payload = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"


def parse_manifest(payload: Any, where: str = "manifest") -> Manifest:
    """Validate a decoded ``manifest.json``.

    Raises:
        ManifestError: not an object, a schema version this SeisLens does not read
            (the message names it), or a field of the wrong type.
    """
    if not isinstance(payload, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise ManifestError(
            f"{where}: bundle schema version {version!r}; this SeisLens reads version "
            f"{readable} (re-export the bundle with this SeisLens, or use the SeisLens "
            "that wrote it)"
        )
    try:
        return Manifest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{where}: field {loc!r}: {first['msg']}") from exc
