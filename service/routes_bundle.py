"""The bundle route: what is being served, branch by branch of the registry.

Paths of the server (the bundle's folder, the library and evaluation data folders) are
shown in full only to a request carrying the admin token; anyone else sees names
(the last part of each path) and hashes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter
from seislens.models.branches import BRANCHES
from seislens.models.manifest import BranchSection
from seislens.service import error_docs as docs
from seislens.service.deps import AdminViewDep, BundleDep
from seislens.service.error_docs import error_responses
from seislens.service.schemas import (
    BundleResponse,
    EncoderInfo,
    EventBranchInfo,
    EventIndexInfo,
    IndexInfo,
    RuntimeInfo,
)
from seislens.service.state import NO_EVENT_ENCODERS, LoadedBranch, LoadedBundle

router = APIRouter(prefix="/v1", tags=["bundle"])


@router.get(
    "/bundle",
    response_model=BundleResponse,
    responses=error_responses(docs.NOT_READY),
    summary="The bundle being served",
)
def get_bundle(bundle: BundleDep, admin: AdminViewDep) -> BundleResponse:
    """The manifest's summary (encoders and their hashes, preprocessing, training and
    evaluation metrics), the library's counts and index, and how this process runs
    them: the ONNX Runtime execution provider really used and whether FAISS searches on
    a GPU, and why. `events` describes the event branch (classes, encoders and their
    hashes, units, the events index and its count, the provider); it is null when the
    bundle has none, and `events_unavailable` says so. Server paths (`path`, the
    library `sources`, data folders in `evaluation`) are shown in full only with the
    admin token (`Authorization: Bearer …`); otherwise `path` is null and the others
    are reduced to their last part."""
    return describe_bundle(bundle, show_paths=admin)


def describe_bundle(bundle: LoadedBundle, show_paths: bool = False) -> BundleResponse:
    """A :class:`BundleResponse` for a loaded bundle: the bundle's own facts, then each
    registry branch's fields (:data:`DESCRIBERS`); server paths only with ``show_paths``."""
    fields: dict[str, Any] = {}
    for name in BRANCHES:
        fields |= DESCRIBERS[name](bundle, bundle.branches.get(name))
    if not show_paths:
        fields = _without_paths(fields)
    return BundleResponse(
        name=bundle.name,
        path=str(bundle.path) if show_paths else None,
        created=bundle.created,
        schema_version=bundle.manifest.schema_version,
        seislens_version=bundle.manifest.seislens_version,
        loaded_at=bundle.loaded_at,
        **fields,
    )


def _velocity_fields(bundle: LoadedBundle, branch: LoadedBranch | None) -> dict[str, Any]:
    """The velocity branch (required: always loaded, with its library) at the top level."""
    assert branch is not None and branch.library is not None
    runtime = bundle.runtime
    return {
        **_section_fields(branch.section),
        "index": IndexInfo(
            **_index_fields(branch),
            families=branch.family_counts,
            sources=[str(s) for s in _entry_extra(branch, "sources", [])],
        ),
        "runtime": RuntimeInfo(
            execution_provider=branch.embedder.provider,
            available_providers=runtime.available_providers,
            requested_providers=runtime.requested_providers,
            onnx_threads=runtime.onnx_threads,
            faiss_threads=runtime.faiss_threads,
            gpu_index=branch.gpu_index,
            gpu_index_reason=branch.gpu_index_reason,
        ),
    }


def _event_fields(bundle: LoadedBundle, branch: LoadedBranch | None) -> dict[str, Any]:
    """``events`` (null without an event branch) and ``events_unavailable``."""
    if branch is None:
        return {"events": None, "events_unavailable": NO_EVENT_ENCODERS}
    index = None
    if branch.library is not None:
        index = EventIndexInfo(
            **_index_fields(branch),
            per_class={str(k): int(v) for k, v in _entry_extra(branch, "per_class", {}).items()},
            window=_entry_extra(branch, "window", None),
            sources=[
                s if isinstance(s, dict) else {"folder": str(s)}
                for s in _entry_extra(branch, "sources", [])
            ],
            gpu_index=branch.gpu_index,
            gpu_index_reason=branch.gpu_index_reason,
        )
    info = EventBranchInfo(
        **_section_fields(branch.section),
        classes=list(branch.embedder.classes),
        targets=dict(branch.embedder.targets),
        execution_provider=branch.embedder.provider,
        index=index,
        index_problem=branch.index_problem,
    )
    return {"events": info, "events_unavailable": None}


DESCRIBERS: dict[str, Callable[[LoadedBundle, LoadedBranch | None], dict[str, Any]]] = {
    "velocity": _velocity_fields,
    "events": _event_fields,
}
"""Each registry branch's fields of the bundle response, by registry name."""


PATH_KEYS = frozenset({"bundle", "data", "folder", "folders", "run", "out", "sources"})
"""Keys whose string values are server paths, in the fields the route shows."""


def _without_paths(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the server paths they hold reduced to their last part: the
    library ``sources`` and the :data:`PATH_KEYS` of ``evaluation``."""
    out = dict(fields)
    if "evaluation" in out:
        out["evaluation"] = _names(out["evaluation"], under_path_key=False)
    if isinstance(out.get("index"), IndexInfo):
        index = out["index"]
        out["index"] = index.model_copy(update={"sources": [_name(s) for s in index.sources]})
    if isinstance(out.get("events"), EventBranchInfo):
        out["events"] = _events_without_paths(out["events"])
    return out


def _events_without_paths(info: EventBranchInfo) -> EventBranchInfo:
    update: dict[str, Any] = {"evaluation": _names(info.evaluation, under_path_key=False)}
    if info.index is not None:
        sources = [_names(s, under_path_key=False) for s in info.index.sources]
        update["index"] = info.index.model_copy(update={"sources": sources})
    return info.model_copy(update=update)


def _names(value: Any, under_path_key: bool) -> Any:
    """``value`` with the strings under :data:`PATH_KEYS` reduced to their last part."""
    if isinstance(value, dict):
        return {k: _names(v, under_path_key or k in PATH_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [_names(v, under_path_key) for v in value]
    if isinstance(value, str) and under_path_key:
        return _name(value)
    return value


def _name(path: str) -> str:
    """The last part of a path ('data/train/flatvel-a' → 'flatvel-a')."""
    return PurePath(path).name or path


def _section_fields(section: BranchSection) -> dict[str, Any]:
    """What every branch reports from its manifest section."""
    return {
        "embed_dim": section.embed_dim,
        "encoders": {
            k: EncoderInfo.model_validate(v.model_dump(exclude_none=True))
            for k, v in section.encoders.items()
        },
        "preprocessing": dict(section.preprocessing),
        "training_metrics": section.training_metrics,
        "evaluation": section.evaluation,
    }


def _index_fields(branch: LoadedBranch) -> dict[str, Any]:
    """What every branch reports about its library index."""
    assert branch.library is not None
    entry = branch.library.entry
    return {
        "kind": branch.library.index.kind,
        "count": branch.count,
        "path": entry.path,
        "built": entry.built,
        "encoder_sha256": entry.encoder_sha256,
        "config": branch.library.index.config.model_dump(),
    }


def _entry_extra(branch: LoadedBranch, key: str, default: Any) -> Any:
    """A field the index entry's schema leaves open (``sources``, ``per_class``, ...)."""
    assert branch.library is not None
    return (branch.library.entry.model_extra or {}).get(key, default)
