"""Configuration of the service: one pydantic-settings class, read from the environment.

Every field can be set by an environment variable named ``SEISLENS_<FIELD>`` (case
insensitive), e.g. ``SEISLENS_BUNDLE=/bundles/default`` or
``SEISLENS_ADMIN_TOKEN=...``; list fields take JSON (``SEISLENS_CORS_ORIGINS='["*"]'``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_K = 100
"""The largest ``k`` a search may ask for (the API contract: 1–100)."""


class Settings(BaseSettings):
    """What the service loads and how it answers."""

    model_config = SettingsConfigDict(env_prefix="SEISLENS_", extra="ignore")

    bundle: Path = Field(
        Path("artifacts/default"), description="the bundle directory loaded at start-up"
    )
    bundle_root: Path | None = Field(
        None,
        description="when set, /v1/admin/reload only accepts bundles inside this folder "
        "(relative paths are taken from it)",
    )
    max_upload_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="largest accepted upload (file bytes)"
    )
    admin_token: SecretStr | None = Field(
        None, description="bearer token for /v1/admin/*; unset disables the admin routes"
    )
    onnx_threads: int = Field(
        1,
        ge=0,
        description="ONNX Runtime intra-op threads per encoder run (0: one per core). One "
        "suits concurrent requests: they run in parallel instead of contending for cores",
    )
    faiss_threads: int = Field(
        1,
        ge=0,
        description="OpenMP threads of FAISS (0: its default, one per core). A single query "
        "gains nothing from more, and on a busy machine their barriers cost milliseconds",
    )
    prefer_gpu: bool = Field(
        True, description="use the CUDA execution provider and a GPU index when they work"
    )
    default_k: int = Field(10, ge=1, le=MAX_K, description="results when `k` is not given")
    estimate_temperature: float = Field(
        0.05,
        gt=0,
        description="softmax temperature on cosine scores for the similarity-weighted "
        "descriptors and estimated model (the evaluation's value)",
    )
    estimate_cache_size: int = Field(
        256, ge=1, description="estimated models kept for download (least recently used go)"
    )
    watch_interval_s: float = Field(
        0.0,
        ge=0,
        description="poll the bundle's manifest this often (s) and reload when it changes, "
        "e.g. after `seislens index build`; 0 turns it off",
    )
    max_event_stations: int = Field(
        50,
        ge=1,
        description="stations classified per miniSEED upload; a file with more must name "
        "the station wanted",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser"
    )

    @field_validator("admin_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        """An empty token (``SEISLENS_ADMIN_TOKEN=``) disables the admin routes."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("bundle", "bundle_root")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        """``~`` in paths means the user's home."""
        return value.expanduser() if value is not None else None

    @property
    def admin_enabled(self) -> bool:
        """Whether the admin routes accept requests (a token is configured)."""
        return self.admin_token is not None
