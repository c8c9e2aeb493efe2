"""The bundle route: what is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from seislens.service import errors as err
from seislens.service.deps import BundleDep
from seislens.service.errors import error_responses
from seislens.service.schemas import (
    BundleResponse,
    EncoderInfo,
    EventBranchInfo,
    EventIndexInfo,
    IndexInfo,
    RuntimeInfo,
)
from seislens.service.state import NO_EVENT_ENCODERS, EventBranch, LoadedBundle

router = APIRouter(prefix="/v1", tags=["bundle"])


@router.get(
    "/bundle",
    response_model=BundleResponse,
    responses=error_responses(err.NOT_READY),
    summary="The bundle being served",
)
def get_bundle(bundle: BundleDep) -> BundleResponse:
    """The manifest's summary (encoders and their hashes, preprocessing, training and
    evaluation metrics), the library's counts and index, and how this process runs
    them: the ONNX Runtime execution provider really used and whether FAISS searches on
    a GPU, and why. `events` describes the event branch (classes, encoders and their
    hashes, units, the events index and its count, the provider); it is null when the
    bundle has none, and `events_unavailable` says so."""
    return describe_bundle(bundle)


def describe_bundle(bundle: LoadedBundle) -> BundleResponse:
    """A :class:`BundleResponse` for a loaded bundle."""
    manifest: dict[str, Any] = bundle.manifest
    velocity: dict[str, Any] = manifest["velocity"]
    entry = bundle.index_entry
    return BundleResponse(
        name=bundle.name,
        path=str(bundle.path),
        created=bundle.created,
        schema_version=int(manifest["schema_version"]),
        seislens_version=manifest.get("seislens_version"),
        loaded_at=bundle.loaded_at,
        embed_dim=int(velocity["embed_dim"]),
        encoders={k: EncoderInfo.model_validate(v) for k, v in velocity["encoders"].items()},
        preprocessing=velocity.get("preprocessing", {}),
        training_metrics=velocity.get("training_metrics"),
        evaluation=velocity.get("evaluation"),
        index=IndexInfo(
            kind=bundle.library.index.kind,
            count=bundle.count,
            families=bundle.family_counts,
            path=str(entry.get("path", "")),
            built=entry.get("built"),
            encoder_sha256=str(entry.get("encoder_sha256", "")),
            config=bundle.library.index.config.model_dump(),
            sources=[str(s) for s in entry.get("sources", [])],
        ),
        runtime=RuntimeInfo(**vars(bundle.runtime)),
        events=describe_events(bundle.events, manifest) if bundle.events else None,
        events_unavailable=None if bundle.events else NO_EVENT_ENCODERS,
    )


def describe_events(branch: EventBranch, manifest: dict[str, Any]) -> EventBranchInfo:
    """An :class:`EventBranchInfo` for a loaded event branch."""
    section: dict[str, Any] = manifest["events"]
    index = None
    if branch.library is not None:
        entry = branch.library.entry
        index = EventIndexInfo(
            kind=branch.library.index.kind,
            count=branch.count,
            per_class={str(k): int(v) for k, v in entry.get("per_class", {}).items()},
            path=str(entry.get("path", "")),
            built=entry.get("built"),
            encoder_sha256=str(entry.get("encoder_sha256", "")),
            window=entry.get("window"),
            config=branch.library.index.config.model_dump(),
            sources=[
                s if isinstance(s, dict) else {"folder": str(s)} for s in entry.get("sources", [])
            ],
            gpu_index=branch.gpu_index,
            gpu_index_reason=branch.gpu_index_reason,
        )
    return EventBranchInfo(
        classes=list(branch.classes),
        embed_dim=branch.embedder.embed_dim,
        encoders={k: EncoderInfo.model_validate(v) for k, v in section["encoders"].items()},
        targets=dict(branch.embedder.targets),
        preprocessing=dict(section.get("preprocessing", {})),
        training_metrics=section.get("training_metrics"),
        evaluation=section.get("evaluation"),
        execution_provider=branch.embedder.provider,
        index=index,
        index_problem=branch.index_problem,
    )
