"""Training configuration of the velocity branch: pydantic models loaded from TOML/YAML
(presets ``presets/velocity_<name>.toml``; see :mod:`seislens.training.config`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from seislens.models.velocity_encoders import VelocityClipConfig
from seislens.models.velocity_preprocess import GatherPreprocess
from seislens.training.config import OptimConfig, TrainConfig
from seislens.training.velocity_augment import AugmentConfig


class VelocityDataConfig(BaseModel):
    """Where the training data is and how a validation split is carved out of it."""

    model_config = ConfigDict(extra="forbid")

    train: list[str] = Field(min_length=1, description="OpenFWI folders, or parents of them")
    val_fraction: float = Field(0.05, ge=0, lt=0.5)
    max_per_folder: int | None = Field(None, gt=0)


class LossConfig(BaseModel):
    """SeisBind's weights: seismic↔velocity 1.0, velocity↔descriptor 0.1."""

    model_config = ConfigDict(extra="forbid")

    w_seismic_velocity: float = Field(1.0, ge=0)
    w_velocity_descriptor: float = Field(0.1, ge=0)
    w_descriptor_head: float = Field(
        0.0, ge=0, description="Gaussian NLL of the descriptor head (model.head)"
    )

    @model_validator(mode="after")
    def _some_weight(self) -> LossConfig:
        if self.w_seismic_velocity + self.w_velocity_descriptor <= 0:
            raise ValueError("at least one loss weight must be positive")
        return self


class VelocityTrainConfig(TrainConfig):
    """Everything a velocity training run needs: one contrastive stage (``optim``)."""

    STAGE_FIELDS: ClassVar[dict[str, str]] = {"contrastive": "optim"}

    name: str = "velocity"
    threads: int = Field(2, gt=0, description="torch threads")
    data: VelocityDataConfig
    preprocess: GatherPreprocess = GatherPreprocess()
    model: VelocityClipConfig = VelocityClipConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    augment_workers: int = Field(
        1, ge=0, description="processes preparing augmented batches ahead (0: in the loop)"
    )

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
