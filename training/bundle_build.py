"""`seislens bundle build --preset NAME`: data → training → export → index → evaluation.

Every step is resumable and skipped when its output is already complete, so the
command can be re-run after an interruption. The preset (TOML, validated here) names
the data to generate, the training config, the library size and the bundle folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from seislens.data.velocity_families import FAMILIES
from seislens.training.velocity_config import PRESETS_DIR, read_config_file


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


def load_preset(name_or_path: str) -> BundlePreset:
    """A bundle preset by name (``default``, ``tiny``) or TOML path."""
    path = PRESETS_DIR / f"bundle_{name_or_path}.toml"
    if not path.exists():
        path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"bundle preset {name_or_path!r} is neither a name nor a file")
    return BundlePreset.model_validate(read_config_file(path))


def _generate(preset: BundlePreset, split: str, count: int, seed: int) -> Path:
    from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset

    root = Path(preset.data_dir) / split
    for fam in preset.families:
        cfg = VelocityGenConfig(
            family=fam,
            count=count,
            seed=seed,
            workers=preset.workers,
            shard_size=min(500, count),
        )
        generate_velocity_dataset(root / fam, cfg)
    return root


def build_bundle(preset: BundlePreset) -> dict[str, Any]:
    """Run the whole pipeline; returns the evaluation written into the manifest."""
    from seislens.index.bundle import read_manifest, write_manifest
    from seislens.index.library import build_velocity_index
    from seislens.training.export import export_velocity_bundle
    from seislens.training.velocity_config import load_config
    from seislens.training.velocity_eval import evaluate_velocity
    from seislens.training.velocity_train import train_velocity

    t0 = time.perf_counter()
    train_root = _generate(preset, "train", preset.train_per_family, preset.train_seed)
    test_root = _generate(preset, "test", preset.test_per_family, preset.test_seed)
    cfg = load_config(preset.train_config, {"data": {"train": [str(train_root)]}})
    train_velocity(cfg, Path(preset.run))
    out = Path(preset.out)
    export_velocity_bundle(Path(preset.run), out)
    build_velocity_index(out, [train_root], max_per_folder=preset.library_per_family)
    result = evaluate_velocity(out, [test_root])
    manifest = read_manifest(out)
    manifest["velocity"]["evaluation"] = {
        "data": str(test_root),
        "note": "synthetic data (our generator); held-out seed; library = training models",
        **result,
    }
    manifest["velocity"]["build"] = {
        "preset": preset.model_dump(),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_manifest(out, manifest)
    return json.loads(json.dumps(result))
