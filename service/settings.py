"""Configuration of the service: one pydantic-settings class, read from the environment.

Every field can be set by an environment variable named ``SEISLENS_<FIELD>`` (case
insensitive), e.g. ``SEISLENS_BUNDLE=/bundles/default`` or
``SEISLENS_ADMIN_TOKEN=...``; list fields take JSON (``SEISLENS_CORS_ORIGINS='["*"]'``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from seislens.index.leases import DEFAULT_LEASE_TTL_S

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
    # --- miniSEED upload budgets and parse workers (docs/reliability.md, Uploads) ---
    max_event_file_stations: int = Field(
        500,
        ge=1,
        description="stations (NET.STA) a miniSEED upload may hold at all, even with "
        "`station` named (checked on the record headers, before decoding)",
    )
    max_event_traces: int = Field(
        2000,
        ge=1,
        description="traces (runs of contiguous records of one channel) a miniSEED upload "
        "may hold; each costs about 0.4 ms of preprocessing",
    )
    max_event_channel_samples: int = Field(
        2_160_000,
        ge=6000,
        description="samples one channel may declare, counted at 100 Hz (the rate windows "
        "are cut at; a channel recorded faster counts its own samples): 2,160,000 is 6 h",
    )
    max_event_total_samples: int = Field(
        21_600_000,
        ge=6000,
        description="samples all channels of a miniSEED upload may declare together, "
        "counted as for max_event_channel_samples",
    )
    parse_workers: int = Field(
        2,
        ge=0,
        description="worker processes that read miniSEED uploads and cut their windows (a "
        "crash there costs a worker, not the server); 0 reads in the server's process, "
        "one upload at a time",
    )
    parse_deadline_s: float = Field(
        30.0,
        gt=0,
        description="wall seconds a worker may spend on one upload (then it is killed and "
        "the upload refused, 422 'deadline'); also how long an upload waits for a free "
        "worker (then 503 'busy'). The largest file the budgets accept takes about 5 s on "
        "an idle core",
    )
    parse_worker_memory_mib: int = Field(
        1536,
        ge=0,
        description="address space of each parse worker (MiB; 0: unlimited); an upload "
        "needing more is refused (422 'too_much_memory')",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser"
    )
    # ---------------------------------------------------------------- hardening (rebuilds, HTTP)
    lease_ttl_s: float = Field(
        DEFAULT_LEASE_TTL_S,
        ge=0,
        description="the lease file (<bundle>/leases/) announcing the index folders and "
        "encoder files this process holds goes stale this many seconds after its last "
        "refresh (refreshed every third of it); index builds never delete what a live "
        "lease names. 0 writes no lease: a build may then delete files still in use",
    )
    public_base_url: str | None = Field(
        None,
        description="the service's public URL (e.g. https://seislens.example.org/api): "
        "links in answers (model_url, estimated_model.url) are built from it. Unset: "
        "absolute links only for requests whose Host is in link_hosts, else relative "
        "links (/v1/...), never from an arbitrary Host header",
    )
    link_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host header names (port ignored) answered with absolute links when "
        "public_base_url is unset; '*' allows any Host",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="proxy addresses (IPs, networks, or '*') whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are trusted (uvicorn's forwarded_allow_ips); empty: "
        "no proxy headers are trusted",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="an idle keep-alive connection is closed after this (s)"
    )
    head_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a request's line and headers must arrive within this many seconds "
        "of the connection's opening (the first request) or of their first byte (later "
        "ones); a slower client (slowloris) is answered 408 and disconnected",
    )
    max_head_bytes: int = Field(
        65536,
        ge=1024,
        description="the largest request line plus headers (bytes); a larger head is "
        "answered 431 and disconnected",
    )
    upload_timeout_s: float = Field(
        120.0,
        gt=0,
        description="a request body must arrive within this many seconds of its first "
        "read; a slower client is answered 408 and disconnected",
    )
    # --- scans of long recordings (POST /v1/events/scans; README "Scanning long recordings")
    scan_jobs_dir: Path = Field(
        Path("scans"),
        description="folder of the scan jobs (one sub-folder per job: status, outputs); "
        "finished results survive restarts. One service process per folder",
    )
    max_scan_upload_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="largest recording accepted for a scan (file bytes; 512 MiB: a day of "
        "3-component 100 Hz data is about 104 MB as INT32, 207 MB as FLOAT64, less in Steim)",
    )
    scan_upload_timeout_s: float = Field(
        1800.0, gt=0, description="a scan upload's body must arrive within this (s)"
    )
    max_scan_jobs: int = Field(
        2, ge=1, description="scan jobs running at once; one more is answered 429"
    )
    scan_job_memory_mib: int = Field(
        3072,
        ge=0,
        description="address space of a scan job's process (MiB; 0: unlimited). The file "
        "is memory-mapped, so this must exceed the largest upload plus ~1.5 GiB of code "
        "and buffers; resident memory stays under 1 GiB (bench/event_scan.py)",
    )
    scan_job_retention_s: float = Field(
        7 * 86400.0, gt=0, description="finished scan jobs are deleted after this (s)"
    )
    max_scan_stations: int = Field(50, ge=1, description="stations a scanned file may hold")
    max_scan_traces: int = Field(
        100_000, ge=1, description="traces (runs of contiguous records) a scanned file may hold"
    )
    max_scan_channel_samples: int = Field(
        60_480_000,
        ge=6000,
        description="samples one channel of a scanned file may declare, at 100 Hz (7 days)",
    )
    max_stationxml_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="largest StationXML accepted with a scan (bytes)"
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

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host and no query or fragment; the trailing '/' dropped."""
        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ValueError(
                f"public_base_url {value!r} is not an http(s) URL with a host and no query "
                "or fragment, e.g. https://seislens.example.org/api"
            )
        return value.strip().rstrip("/")

    @property
    def admin_enabled(self) -> bool:
        """Whether the admin routes accept requests (a token is configured)."""
        return self.admin_token is not None
