"""Training configuration of the velocity branch: pydantic models loaded from TOML/YAML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from seislens.models.velocity_encoders import VelocityClipConfig
from seislens.models.velocity_preprocess import GatherPreprocess

PRESETS_DIR = Path(__file__).parent / "presets"


class DataConfig(BaseModel):
    """Where the training data is and how a validation split is carved out of it."""

    model_config = ConfigDict(extra="forbid")

    train: list[str] = Field(min_length=1, description="OpenFWI folders, or parents of them")
    val_fraction: float = Field(0.05, ge=0, lt=0.5)
    max_per_folder: int | None = Field(None, gt=0)


class OptimConfig(BaseModel):
    """AdamW with linear warm-up and cosine decay."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(20, gt=0)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.02, ge=0, le=1)
    max_steps: int | None = Field(None, gt=0, description="stop early after this many steps")


class LossConfig(BaseModel):
    """SeisBind's weights: seismic↔velocity 1.0, velocity↔descriptor 0.1."""

    model_config = ConfigDict(extra="forbid")

    w_seismic_velocity: float = Field(1.0, ge=0)
    w_velocity_descriptor: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> LossConfig:
        if self.w_seismic_velocity + self.w_velocity_descriptor <= 0:
            raise ValueError("at least one loss weight must be positive")
        return self


class AugmentConfig(BaseModel):
    """Augmentations on preprocessed gathers (scale and polarity need none: the
    preprocessing is invariant to both, which the tests check)."""

    model_config = ConfigDict(extra="forbid")

    noise_std: float = Field(0.05, ge=0)
    dead_trace_prob: float = Field(0.02, ge=0, lt=1)


class VelocityTrainConfig(BaseModel):
    """Everything a velocity training run needs."""

    model_config = ConfigDict(extra="forbid")

    name: str = "velocity"
    seed: int = 0
    threads: int = Field(2, gt=0, description="torch threads")
    data: DataConfig
    preprocess: GatherPreprocess = GatherPreprocess()
    model: VelocityClipConfig = VelocityClipConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _consistent_time_axis(self) -> VelocityTrainConfig:
        expected = self.preprocess.n_time // self.preprocess.decimate
        if self.model.seismic.time_samples != expected:
            raise ValueError(
                f"model.seismic.time_samples is {self.model.seismic.time_samples} but the "
                f"preprocessing gives {self.preprocess.n_time} // {self.preprocess.decimate}"
                f" = {expected} samples"
            )
        return self


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or YAML file into a dict."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
    elif path.suffix == ".toml":
        data = tomllib.loads(text)
    else:
        raise ValueError(f"config {path} must be .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping at the top level")
    return data


def resolve_config_path(name_or_path: str) -> Path:
    """A preset name (``tiny``, ``default``) or a file path → the file's path."""
    preset = PRESETS_DIR / f"velocity_{name_or_path}.toml"
    if preset.exists():
        return preset
    path = Path(name_or_path)
    if not path.exists():
        names = sorted(p.stem.removeprefix("velocity_") for p in PRESETS_DIR.glob("velocity_*"))
        raise FileNotFoundError(
            f"config {name_or_path!r} is neither a file nor a preset ({', '.join(names)})"
        )
    return path


def load_config(name_or_path: str, overrides: dict[str, Any] | None = None) -> VelocityTrainConfig:
    """Load and validate a training config; ``overrides`` are merged at the top level."""
    data = read_config_file(resolve_config_path(name_or_path))
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return VelocityTrainConfig.model_validate(data)
