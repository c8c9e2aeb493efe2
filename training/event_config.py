"""Training configuration of the event branch: pydantic models loaded from TOML/YAML.

Presets live beside the velocity ones as ``presets/events_<name>.toml`` (``tiny``,
``default``); see :mod:`seislens.training.config`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import INFO_FIELDS, SPECTRUM_SHAPE, WINDOW_S
from seislens.models.event_encoders import EventClipConfig
from seislens.models.event_preprocess import EventPreprocessConfig
from seislens.training.config import OptimConfig, TrainConfig, with_defaults

Split = Literal["train", "dev", "test"]


class EventDataConfig(BaseModel):
    """The SeisBench-format folder and which of its splits train and select."""

    model_config = ConfigDict(extra="forbid")

    folder: str = Field(description="a SeisBench-format folder (metadata.csv + waveforms.hdf5)")
    train_split: Split = "train"
    val_split: Split | None = Field("dev", description="model selection; None: last epoch")
    max_train: int | None = Field(None, gt=0, description="cap on training traces")
    max_val: int | None = Field(None, gt=0, description="cap on validation traces")

    @model_validator(mode="after")
    def _distinct(self) -> EventDataConfig:
        if self.val_split == self.train_split:
            raise ValueError(
                f"data.val_split and data.train_split are both {self.train_split!r}; "
                "model selection needs held-out data"
            )
        return self


class WindowConfig(BaseModel):
    """Views of each trace cached for training (see ``event_data``): the catalogued-P
    window always; a serve-like automatic window; and randomly shifted windows."""

    model_config = ConfigDict(extra="forbid")

    auto_view: bool = Field(True, description="add the STA/LTA (no pick) window")
    shifted_views: int = Field(1, ge=0, le=8, description="windows with P at a random offset")
    shift_range_s: tuple[float, float] = Field(
        (1.0, 25.0), description="P offsets (s into the window) of the shifted views"
    )

    @model_validator(mode="after")
    def _range(self) -> WindowConfig:
        lo, hi = self.shift_range_s
        if not 0.0 <= lo <= hi < WINDOW_S:
            raise ValueError(
                f"window.shift_range_s {self.shift_range_s} must satisfy 0 <= low <= high "
                f"< {WINDOW_S:.0f} s"
            )
        return self

    @property
    def n_views(self) -> int:
        return 1 + int(self.auto_view) + self.shifted_views


EVENT_STAGE_DEFAULTS = {"epochs": 10, "warmup_steps": 50, "min_lr_ratio": 0.05}
"""The event stages' defaults where they differ from :class:`OptimConfig`'s."""

ClipStage, CLIP_DEFAULT = with_defaults(OptimConfig, **EVENT_STAGE_DEFAULTS)


class FinetuneConfig(OptimConfig):
    """Stage 2: heads (and, at a reduced rate, the encoders) on labels and targets."""

    encoder_lr_ratio: float = Field(
        0.3, ge=0, le=1, description="encoders' lr / heads' lr; 0 freezes them"
    )
    clip_weight: float = Field(0.5, ge=0, description="keeps spectrum↔info aligned")
    regression_weight: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    regression_loss: Literal["huber", "mse"] = "huber"


FinetuneStage, FINETUNE_DEFAULT = with_defaults(FinetuneConfig, **EVENT_STAGE_DEFAULTS)


class EventTrainConfig(TrainConfig):
    """Everything an event training run needs: stage ``clip`` then stage ``finetune``."""

    STAGE_FIELDS: ClassVar[dict[str, str]] = {"clip": "clip", "finetune": "finetune"}

    name: str = "events"
    data: EventDataConfig
    preprocess: EventPreprocessConfig = EventPreprocessConfig()
    window: WindowConfig = WindowConfig()
    model: EventClipConfig = EventClipConfig()
    clip: ClipStage = CLIP_DEFAULT
    finetune: FinetuneStage = FINETUNE_DEFAULT

    @model_validator(mode="after")
    def _consistent(self) -> EventTrainConfig:
        s = self.model.spectrum
        if (s.in_channels, s.freq_bins, s.time_frames) != SPECTRUM_SHAPE:
            raise ValueError(
                f"model.spectrum takes ({s.in_channels}, {s.freq_bins}, {s.time_frames}) but "
                f"the preprocessing gives {SPECTRUM_SHAPE}"
            )
        if self.model.info.n_fields != len(INFO_FIELDS):
            raise ValueError(
                f"model.info.n_fields is {self.model.info.n_fields}; the info vector has "
                f"{len(INFO_FIELDS)} fields"
            )
        if self.model.n_classes != len(CLASSES):
            raise ValueError(
                f"model.n_classes is {self.model.n_classes}; the event classes are {list(CLASSES)}"
            )
        if s.log_input and self.preprocess.log_spectrum:
            raise ValueError(
                "preprocess.log_spectrum and model.spectrum.log_input are both set: the "
                "spectrum would be logged twice; keep one"
            )
        return self
