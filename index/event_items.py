"""Event-branch library items: 60 s three-component windows of SeisBench-format traces.

Each library folder is SeisBench-format; its traces (by default those of its ``train``
split with a known label) are cut and transformed by the serving code path with the
bundle's preprocessing settings (window on the catalogued P pick when there is one) and
embedded by the bundle's ONNX spectrum encoder. Stored beside the index:

* ``labels.npy`` — (N,) int8 class index (``EVENT_CLASSES`` order; -1 for unknown);
* ``info.npy``   — (N, 8) float32 SeisCLIP info fields of each indexed window.

Each item's metadata record: kind ``"event"``, family = its label (earthquake,
explosion, surface, noise), source ``<folder>::<trace_name>``, and metadata (trace name,
station, split, magnitude, depth, distance, back-azimuth, SNR, P pick, times, the
window used).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from seislens.data.event_dataset import UNKNOWN, EventDataset, EventDatasetError, find_column
from seislens.data.event_views import WindowMode, trace_views
from seislens.index.bundle import BundleError
from seislens.index.items import ArraySpec, ItemPart
from seislens.index.metadata import ItemKind
from seislens.models.contract import EVENT_CLASSES, INFO_FIELDS
from seislens.models.event_preprocess import EventInputError
from seislens.models.manifest import BranchSection

METADATA_FIELDS: dict[str, tuple[str, ...]] = {
    "magnitude": ("source_magnitude",),
    "magnitude_type": ("source_magnitude_type",),
    "depth_km": ("source_depth_km",),
    "distance_km": ("path_ep_distance_km", "source_distance_km", "path_hyp_distance_km"),
    "back_azimuth_deg": ("path_back_azimuth_deg", "back_azimuth_deg"),
    "snr_db": ("trace_snr_db",),
    "p_arrival_sample": ("trace_p_arrival_sample",),
    "trace_start_time": ("trace_start_time",),
    "source_origin_time": ("source_origin_time",),
    "source_latitude_deg": ("source_latitude_deg",),
    "source_longitude_deg": ("source_longitude_deg",),
    "source_id": ("source_id", "event_id"),
    "split": ("split",),
}
"""Metadata kept per indexed trace (first matching column, case-insensitive)."""


@dataclass(frozen=True)
class EventItemOptions:
    """Which traces of each folder are indexed, and how their windows are cut.

    Attributes:
        split: the split of each folder to index ("train"; None: every trace).
        window: "catalog" (windows on catalogued P picks) or "auto" (as an upload
            without a pick).
        include_unknown: also index traces whose label maps to no class.
    """

    split: str | None = "train"
    window: WindowMode = "catalog"
    include_unknown: bool = False


@dataclass
class EventSource:
    """The rows of one SeisBench folder to index."""

    folder: Path
    dataset: EventDataset
    rows: np.ndarray
    split: str | None

    @property
    def count(self) -> int:
        return len(self.rows)


def discover_event_sources(
    paths: list[Path],
    split: str | None = "train",
    max_per_folder: int | None = None,
    include_unknown: bool = False,
) -> list[EventSource]:
    """The traces to index in each SeisBench folder: one split (None: all), labelled
    ones only unless ``include_unknown``, the first ``max_per_folder`` of them."""
    sources = []
    for p in map(Path, paths):
        if not p.exists():
            raise BundleError(f"library path {p} does not exist")
        try:
            ds = EventDataset(p, split=split)
        except EventDatasetError as exc:
            raise BundleError(f"library {p}: {exc}") from exc
        rows = np.arange(len(ds)) if include_unknown else np.flatnonzero(ds.label_ids >= 0)
        if max_per_folder is not None:
            rows = rows[:max_per_folder]
        if len(rows):
            sources.append(EventSource(p, ds, rows, split))
    if not sources:
        raise BundleError(
            f"no labelled traces{f' in split {split!r}' if split else ''} under "
            f"{', '.join(map(str, paths))}"
        )
    return sources


def _clean(value: Any) -> Any:
    """JSON-friendly metadata value (NaN → None, NumPy scalars → Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row_metadata(ds: EventDataset, i: int, columns: dict[str, str | None]) -> dict[str, Any]:
    """A trace's metadata: its SeisBench ``trace_name`` (and the writer's original name
    when the traces were bucketed), ``NET.STA``, and :data:`METADATA_FIELDS`."""
    row = ds.metadata.iloc[i]
    meta: dict[str, Any] = {"trace_name": str(row["trace_name"])}
    if isinstance(row.get("trace_name_original"), str):
        meta["trace_name_original"] = row["trace_name_original"]
    net = row.get("station_network_code")
    sta = row.get("station_code")
    if isinstance(sta, str):
        meta["station"] = f"{net}.{sta}" if isinstance(net, str) else sta
    for key, column in columns.items():
        if column is not None:
            meta[key] = _clean(row[column])
    return meta


def _label_index(label: str) -> int:
    return EVENT_CLASSES.index(label) if label in EVENT_CLASSES else -1


class EventItems:
    """Event traces as library items (see the module docstring)."""

    kind: ClassVar[ItemKind] = "event"
    unit: ClassVar[str] = "trace"
    arrays: ClassVar[dict[str, ArraySpec]] = {
        "labels": ArraySpec("int8", (), fill=-1),
        "info": ArraySpec("float32", (len(INFO_FIELDS),)),
    }
    options_type: ClassVar[type] = EventItemOptions

    def discover(
        self, paths: list[Path], max_per_folder: int | None, options: EventItemOptions
    ) -> list[EventSource]:
        return discover_event_sources(paths, options.split, max_per_folder, options.include_unknown)

    def fingerprint(self, source: EventSource) -> Any:
        return [
            str(source.folder.resolve()),
            source.split,
            source.count,
            hashlib.sha256(source.rows.tobytes()).hexdigest(),
            sorted(p.stat().st_size for p in source.folder.glob("*.csv")),
        ]

    def embed(
        self, embedder: Any, source: EventSource, start: int, stop: int, options: EventItemOptions
    ) -> ItemPart:
        ds = source.dataset
        columns = {key: find_column(ds.metadata, c) for key, c in METADATA_FIELDS.items()}
        rows = source.rows[start:stop]
        spectra, info, labels, metas = [], [], [], []
        for i in map(int, rows):
            try:
                (view,) = trace_views(ds, i, [options.window], embedder.pre)
            except EventInputError:
                continue
            spectra.append(view.spectrum)
            info.append(view.info)
            labels.append(str(ds.labels[i]))
            meta = _row_metadata(ds, i, columns)
            meta |= {"window_start_s": view.start_s, "window_rule": view.rule}
            metas.append({**meta, "dataset": str(source.folder)})
        vectors = (
            embedder.embed_spectra(np.stack(spectra))
            if spectra
            else np.zeros((0, embedder.embed_dim), np.float32)
        )
        return ItemPart(
            vectors=vectors,
            arrays={
                "labels": np.array([_label_index(x) for x in labels], np.int8),
                "info": np.stack(info) if info else np.zeros((0, len(INFO_FIELDS)), np.float32),
            },
            family=labels,
            source=[f"{source.folder}::{m['trace_name']}" for m in metas],
            metadata=[{k: _clean(v) for k, v in m.items()} for m in metas],
            refused=len(rows) - len(spectra),
        )

    def describe(self, sources: list[EventSource], options: EventItemOptions) -> list[Any]:
        return [{"folder": str(s.folder), "split": s.split, "traces": s.count} for s in sources]

    def entry_fields(
        self, section: BranchSection, options: EventItemOptions, arrays: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        labels = np.asarray(arrays["labels"])
        per_class = {c: int((labels == k).sum()) for k, c in enumerate(EVENT_CLASSES)}
        if (labels < 0).any():
            per_class[UNKNOWN] = int((labels < 0).sum())
        return {
            "per_class": per_class,
            "window": options.window,
            "preprocessing": section.preprocessing,
        }
