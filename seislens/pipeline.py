"""The pipelines that join training and the bundle (the top layer).

* :func:`export_to_bundle` — ``seislens export``: a run's encoders to ONNX with parity
  (``seislens.training.onnx_export``), then into a bundle by the one bundle writer
  (``seislens.index.bundle.write_branch``);
* :func:`open_branch` / :func:`evaluate` — ``seislens eval``: open a bundle's branch
  (embedder + library) and hand it to that branch's evaluation in ``seislens.training``;
* :func:`build_bundle` — ``seislens bundle build --preset NAME``: data → training →
  export → index → evaluation. Every step is resumable and skipped when its output is
  already complete, so the command can be re-run after an interruption. The preset
  (TOML, validated here) names the data to generate, the training config, the library
  size and the bundle folder.

Heavy modules (torch, onnxruntime, FAISS) are imported inside the functions.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from seislens.data.velocity_families import FAMILIES
from seislens.data.velocity_physics import PhysicsRanges
from seislens.training.config import load_config_file

if TYPE_CHECKING:
    from seislens.models.manifest import Manifest


class BundlePreset(BaseModel):
    """What the default (or another) bundle is made of."""

    model_config = ConfigDict(extra="forbid")

    out: str = "artifacts/default"
    data_dir: str = "data"
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    train_per_family: int = Field(1500, gt=0)
    test_per_family: int = Field(125, gt=0)
    train_seed: int = 1
    test_seed: int = 2
    workers: int = Field(2, gt=0)
    train_config: str = "default"
    run: str = "runs/velocity-default"
    library_per_family: int = Field(250, gt=0, description="models per family in the index")
    calibration_per_family: int = Field(
        25, ge=0, description="held-out gathers a family for the familiarity calibration (0: none)"
    )
    calibration_seed: int = 3
    physics: PhysicsRanges | None = Field(
        default_factory=PhysicsRanges,
        description="randomised physics of the training and calibration gathers "
        "(None: OpenFWI's setting); the test split is always generated as OpenFWI",
    )


def load_preset(name_or_path: str) -> BundlePreset:
    """A bundle preset by name (``default``) or TOML path."""
    return load_config_file(BundlePreset, "bundle", name_or_path)


def _generate(
    preset: BundlePreset, split: str, count: int, seed: int, physics: PhysicsRanges | None
) -> Path:
    from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset

    root = Path(preset.data_dir) / split
    for fam in preset.families:
        cfg = VelocityGenConfig(
            family=fam,
            count=count,
            seed=seed,
            workers=preset.workers,
            shard_size=min(500, count),
            physics=physics,
        )
        generate_velocity_dataset(root / fam, cfg)
    return root


def export_to_bundle(
    branch_name: str, run: Path, bundle: Path, tolerance: float = 1e-4, which: str = "best"
) -> Any:
    """Export the run of ``branch_name`` and write it into ``bundle``; the new manifest.

    The export is staged in a temporary folder and checked against torch first; the
    bundle changes only when every graph passed (see ``write_branch`` for how: the
    branch's section alone is replaced, other branches and the indexes are kept).

    Raises:
        ExportError: a graph failed its parity check (the bundle is not changed).
        BundleError: an unreadable bundle, or a new bundle lacking a required branch.
    """
    from seislens.index.bundle import MANIFEST_FILE, read_manifest, write_branch
    from seislens.training.onnx_export import export_run

    bundle = Path(bundle)
    if (bundle / MANIFEST_FILE).exists():
        read_manifest(bundle)  # refuse a foreign or newer bundle before exporting
    with tempfile.TemporaryDirectory(prefix="seislens-export-") as staging:
        staged = export_run(branch_name, Path(run), Path(staging), tolerance, which)
        return write_branch(bundle, staged.branch, staged.section, staged.files)


@dataclass
class OpenedBranch:
    """One branch of a bundle opened for evaluation.

    Attributes:
        manifest: the bundle's manifest; section: the branch's section.
        embedder: the branch's ONNX embedder; library: its opened index (None when
            the bundle has none and the evaluation can do without).
    """

    manifest: Any
    section: Any
    embedder: Any
    library: Any | None


@contextmanager
def open_branch(bundle: Path, branch_name: str, need_library: bool) -> Iterator[OpenedBranch]:
    """Open ``branch_name`` of ``bundle`` (encoders checked against their hashes) and
    its library; the library is closed on exit.

    Args:
        need_library: refuse a bundle without the branch's index (else: library None).
    """
    from seislens.index.bundle import branch_section, read_manifest, verify_encoders
    from seislens.index.library import LoadedLibrary
    from seislens.models.branches import get_branch

    bundle, branch = Path(bundle), get_branch(branch_name)
    manifest = read_manifest(bundle)
    section = branch_section(bundle, manifest, branch)
    verify_encoders(bundle, manifest, branch)
    embedder = branch.build_embedder(bundle, section, None, 0)
    library = None
    if need_library or branch.index_name in manifest.indexes:
        library = LoadedLibrary.open(bundle, manifest, branch)
    try:
        yield OpenedBranch(manifest, section, embedder, library)
    finally:
        if library is not None:
            library.close()


def _velocity_evaluation() -> Callable[..., dict[str, Any]]:
    from seislens.training.velocity_eval import evaluate_velocity

    return evaluate_velocity


def _event_evaluation() -> Callable[..., dict[str, Any]]:
    from seislens.training.event_eval import evaluate_events

    return evaluate_events


EVALUATIONS: dict[str, tuple[Callable[[], Callable[..., dict[str, Any]]], bool]] = {
    "velocity": (_velocity_evaluation, True),
    "events": (_event_evaluation, False),
}
"""Per registry branch: its evaluation (imported on use) and whether it needs the
library (the velocity open set does; the event k-NN vote is skipped without one)."""


def evaluate(branch_name: str, bundle: Path, data: Any, **options: Any) -> dict[str, Any]:
    """Metrics of ``bundle``'s branch on ``data`` (the branch's evaluation options
    passed through: see ``evaluate_velocity`` and ``evaluate_events``)."""
    load, need_library = EVALUATIONS[branch_name]
    with open_branch(bundle, branch_name, need_library) as opened:
        result = load()(opened.embedder, opened.library, data, **options)
    return {"bundle": str(bundle), **result}


def calibrate_velocity_bundle(
    bundle: Path,
    data: list[Path],
    k: int = 10,
    warn_below: float = 0.05,
    progress: bool = True,
    density_data: list[Path] | None = None,
    density_max_per_folder: int = 500,
    density_shrinkage: float | None = None,
) -> Any:
    """Calibrate the familiarity score and descriptor spreads of ``bundle``'s velocity
    index on held-out OpenFWI folders ``data``, and write the calibration into the
    velocity section of its manifest (atomically; refused if the index changed
    meanwhile). The manifest is changed under the bundle's lock, re-read there
    (:func:`~seislens.index.bundle.update_manifest`), so an index switch or a branch
    export made while calibrating is kept. With ``density_data`` (OpenFWI folders of
    the library's kind, none of them calibration folders: e.g. the library's own
    training folders), a Gaussian of up to ``density_max_per_folder`` gather embeddings
    a folder is fitted and written to ``calibration/`` in the bundle (aside, then
    renamed), and the familiarity becomes joint (:mod:`seislens.models.familiarity`).
    Returns the :class:`~seislens.models.manifest.VelocityCalibration`."""
    from seislens.data.openfwi import OpenFWIDataset
    from seislens.index.bundle import BundleError, update_manifest
    from seislens.models.branches import VELOCITY
    from seislens.training.velocity_calibration import calibrate_velocity
    from seislens.training.velocity_data import expand_folders

    datasets = [OpenFWIDataset(folder) for folder in expand_folders(data)]
    fit_folders = expand_folders(density_data) if density_data else []
    overlap = {str(f.resolve()) for f in fit_folders} & {str(d.folder.resolve()) for d in datasets}
    if overlap:
        raise ValueError(
            f"density folders {sorted(overlap)} are also calibration folders; the density "
            "must be fitted on other gathers (e.g. the library's training folders)"
        )
    with open_branch(bundle, VELOCITY.name, need_library=True) as opened:
        entry = opened.manifest.indexes[VELOCITY.index_name]
        query_sha = opened.section.encoders[VELOCITY.query_encoder].sha256
        density, info = None, None
        if fit_folders:
            density, info = _fit_velocity_density(
                bundle, opened.embedder, fit_folders, density_max_per_folder, density_shrinkage
            )
        calibration = calibrate_velocity(
            opened.embedder,
            opened.library,
            datasets,
            entry.path,
            query_sha,
            k,
            warn_below,
            progress=progress,
            density=density,
            density_info=info,
        )

    def with_calibration(manifest: Manifest) -> Manifest:
        if manifest.indexes[VELOCITY.index_name].path != entry.path:
            raise BundleError(f"{bundle}: the velocity index changed while calibrating; rerun")
        if manifest.velocity.encoders[VELOCITY.query_encoder].sha256 != query_sha:
            raise BundleError(f"{bundle}: the velocity encoders changed while calibrating; rerun")
        section = manifest.velocity.model_copy(update={"calibration": calibration})
        return manifest.with_section(VELOCITY.name, section)

    update_manifest(bundle, with_calibration)
    _remove_stale_densities(bundle, calibration)
    return calibration


def _remove_stale_densities(bundle: Path, calibration: Any) -> None:
    """Delete the density files of earlier calibrations (``calibration/`` holds only the
    manifest's). A service keeps the density it loaded in memory; one loading this very
    moment from the old manifest answers with the best score alone and says why."""
    keep = calibration.density.file if calibration.density is not None else None
    folder = Path(bundle) / "calibration"
    if not folder.is_dir():
        return
    for path in folder.glob("velocity-density-*.npz"):
        if f"calibration/{path.name}" != keep:
            path.unlink(missing_ok=True)


def _fit_velocity_density(
    bundle: Path,
    embedder: Any,
    folders: list[Path],
    max_per_folder: int,
    shrinkage: float | None,
) -> tuple[Any, dict[str, object]]:
    """Fit the gather-embedding density on up to ``max_per_folder`` gathers of each
    folder and write it into ``bundle/calibration/`` (named by its hash); returns the
    density and the :class:`~seislens.models.manifest.VelocityDensity` fields known
    before the calibration queries are scored."""
    import numpy as np

    from seislens.data.openfwi import OpenFWIDataset
    from seislens.models.familiarity import DENSITY_SHRINKAGE, fit_density

    if max_per_folder < 1:
        raise ValueError(f"density_max_per_folder is {max_per_folder}; expected >= 1")
    shrinkage = DENSITY_SHRINKAGE if shrinkage is None else shrinkage
    parts = []
    for folder in folders:
        taken = 0
        for _, block in OpenFWIDataset(folder).iter_gathers(batch=64):
            block = block[: max_per_folder - taken]
            parts.append(embedder.embed_gathers(block))
            taken += len(block)
            if taken >= max_per_folder:
                break
    vectors = np.concatenate(parts)
    density = fit_density(vectors, shrinkage)
    folder = Path(bundle) / "calibration"
    folder.mkdir(exist_ok=True)
    pending = folder / "velocity-density.pending.npz"
    sha = density.save(pending)
    name = f"calibration/velocity-density-{sha[:16]}.npz"
    pending.replace(Path(bundle) / name)
    info: dict[str, object] = {
        "file": name,
        "sha256": sha,
        "shrinkage": shrinkage,
        "fit_count": len(vectors),
        "fit_data": [str(f) for f in folders],
    }
    return density, info


def build_bundle(preset: BundlePreset) -> dict[str, Any]:
    """Run the whole pipeline; returns the evaluation written into the manifest."""
    from seislens.index.builder import BuildConfig, build
    from seislens.index.bundle import update_manifest
    from seislens.models.branches import VELOCITY
    from seislens.training.branch_training import load_config, train

    t0 = time.perf_counter()
    train_root = _generate(
        preset, "train", preset.train_per_family, preset.train_seed, preset.physics
    )
    test_root = _generate(preset, "test", preset.test_per_family, preset.test_seed, None)
    overrides = {"data": {"train": [str(train_root)]}}
    cfg = load_config(VELOCITY.name, preset.train_config, overrides)
    train(cfg, Path(preset.run))
    out = Path(preset.out)
    export_to_bundle(VELOCITY.name, Path(preset.run), out)
    build(out, VELOCITY, [train_root], BuildConfig(max_per_folder=preset.library_per_family))
    result = evaluate(VELOCITY.name, out, [test_root])
    recorded = {
        "evaluation": {
            "data": str(test_root),
            "note": "synthetic data (our generator); held-out seed; library = training models",
            **json.loads(json.dumps(result)),
        },
        "build": {
            "preset": preset.model_dump(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        },
    }
    update_manifest(
        out, lambda m: m.with_section("velocity", m.velocity.model_copy(update=recorded))
    )
    if preset.calibration_per_family:
        calib_root = _generate(
            preset, "calib", preset.calibration_per_family, preset.calibration_seed, preset.physics
        )
        calibrate_velocity_bundle(out, [calib_root])
    return json.loads(json.dumps(result))
