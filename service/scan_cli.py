"""``seislens events scan``: the scan of :mod:`~seislens.service.scan_run` on local
files, with a progress bar, writing what a scan job writes (:mod:`.scan_outputs`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from seislens.index.bundle import read_manifest
from seislens.models.embedders import choose_providers
from seislens.models.event_association import AssociationConfig
from seislens.models.event_embedders import EventEmbedder
from seislens.models.event_preprocess import EventInputError
from seislens.models.event_scan import ScanConfig
from seislens.service.errors import ApiError
from seislens.service.scan_outputs import write_outputs
from seislens.service.scan_reader import MappedRecording, ScanBudgets
from seislens.service.scan_run import ScanProgress, scan_recording
from seislens.service.scan_stations import read_station_positions
from seislens.service.settings import Settings
from tqdm import tqdm


def scan_files(
    files: list[Path],
    bundle: Path,
    stride_s: float | None,
    threshold: float | None,
    out: Path,
    stationxml: Path | None = None,
    threads: int = 1,
    peak_threshold: float | None = None,
    progress: bool = True,
) -> Iterator[str]:
    """Scan each file; yields one summary line per file. A setting left None takes
    :class:`ScanConfig`'s default.

    Outputs go to ``out/<file name>/``. A file that cannot be scanned is reported and
    the others go on.

    Raises:
        ValueError: the settings are invalid, or (after the others) some files could
            not be scanned.
    """
    given = {"stride_s": stride_s, "threshold": threshold, "peak_threshold": peak_threshold}
    config = ScanConfig(**{name: v for name, v in given.items() if v is not None})
    manifest = read_manifest(bundle)
    if manifest.events is None:
        raise ValueError(f"{bundle} has no event branch")
    embedder = EventEmbedder(bundle, manifest.events, choose_providers(False), threads)
    defaults = Settings.model_fields
    budgets = ScanBudgets(
        max_stations=defaults["max_scan_stations"].default,
        max_traces=defaults["max_scan_traces"].default,
        max_channel_samples=defaults["max_scan_channel_samples"].default,
    )
    mae = (((manifest.events.evaluation or {}).get("regression") or {}).get("distance") or {}).get(
        "mae"
    )
    association = AssociationConfig(distance_error_km=float(mae)) if mae else AssociationConfig()
    failed = []
    for path in files:
        try:
            yield _scan_one(path, embedder, config, budgets, association, out, stationxml, progress)
        except (EventInputError, ApiError) as exc:
            failed.append(path.name)
            yield f"{path}: not scanned: {exc}"
    if failed:
        raise ValueError(f"{len(failed)} file(s) could not be scanned: {', '.join(failed)}")


def _scan_one(
    path: Path,
    embedder: EventEmbedder,
    config: ScanConfig,
    budgets: ScanBudgets,
    association: AssociationConfig,
    out: Path,
    stationxml: Path | None,
    progress: bool,
) -> str:
    positions = None
    if stationxml is not None:
        with MappedRecording(path, path.name, budgets) as recording:
            plan = recording.plan(embedder.pre)
        positions = read_station_positions(stationxml, stationxml.name, plan.stations)
    with tqdm(desc=path.name, unit="window", disable=not progress) as bar:

        def advance(p: ScanProgress) -> None:
            bar.total = p.total
            bar.update(p.done - bar.n)

        result = scan_recording(
            path, path.name, embedder, config, budgets, positions, association, advance
        )
    folder = out / path.name
    folder.mkdir(parents=True, exist_ok=True)
    document = write_outputs(result, folder, id=path.stem, bundle=str(embedder_bundle(embedder)))
    skipped = "".join(f"; skipped {s['station']}: {s['reason']}" for s in document["skipped"])
    return (
        f"{path}: {len(document['stations'])} station(s), {document['windows']} windows, "
        f"{len(document['detections'])} detection(s), {len(document['events'])} event(s) "
        f"→ {folder}{skipped}"
    )


def embedder_bundle(embedder: EventEmbedder) -> str:
    """The folder of the embedder's first graph's bundle (for the record)."""
    first = next(iter(embedder.graphs.values()))
    return str(first.path.parent.parent)
