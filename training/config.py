"""The one config mechanism of every training branch (and the bundle presets).

A config is a TOML or YAML file, or the name of a preset ``presets/<kind>_<name>.toml``
(``kind`` is a branch name, ``velocity`` or ``events``, or ``bundle``). Overrides (from the
CLI or from code) are nested dicts merged recursively into the file's mapping before
validation. Every branch config is a :class:`TrainConfig`: a pydantic model whose
training stages are :class:`OptimConfig` sections named in ``STAGE_FIELDS``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

PRESETS_DIR = Path(__file__).parent / "presets"

M = TypeVar("M", bound=BaseModel)


class OptimConfig(BaseModel):
    """AdamW with linear warm-up and cosine decay, for one training stage.

    ``epochs`` may be 0 (the stage is skipped) as long as some stage trains.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(20, ge=0)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(100, ge=0, description="optimiser steps of linear warm-up")
    min_lr_ratio: float = Field(0.02, ge=0, le=1, description="final lr / peak lr")
    max_steps: int | None = Field(None, gt=0, description="stop the stage after this many steps")


def _fill_defaults(defaults: dict[str, Any], value: Any) -> Any:
    return {**defaults, **value} if isinstance(value, dict) else value


def with_defaults(cls: type[M], **defaults: Any) -> tuple[Any, M]:
    """An annotation and a default value for a ``cls`` field whose unset keys take
    ``defaults`` instead of the class's own (a branch's own stage defaults).

    Use as ``Stage, STAGE_DEFAULT = with_defaults(OptimConfig, epochs=10)`` then
    ``clip: Stage = STAGE_DEFAULT``.
    """
    fill: Callable[[Any], Any] = partial(_fill_defaults, defaults)
    return Annotated[cls, BeforeValidator(fill)], cls(**defaults)


class TrainConfig(BaseModel):
    """What every branch's training config holds: a name, a seed, torch's thread count
    and its stages (``STAGE_FIELDS``: stage name → the :class:`OptimConfig` field)."""

    model_config = ConfigDict(extra="forbid")

    STAGE_FIELDS: ClassVar[dict[str, str]] = {}

    name: str
    seed: int = 0
    threads: int = Field(1, gt=0, description="torch threads")
    init_from: Path | None = Field(
        None,
        description="a run folder whose network weights start a fresh run (fine-tuning "
        "with a new schedule); the networks must have the same architecture",
    )

    def stages(self) -> list[tuple[str, OptimConfig]]:
        """(stage name, its optimiser settings), in training order."""
        return [(stage, getattr(self, field)) for stage, field in self.STAGE_FIELDS.items()]

    @model_validator(mode="after")
    def _something_to_train(self) -> TrainConfig:
        if self.STAGE_FIELDS and sum(o.epochs for _, o in self.stages()) == 0:
            names = " + ".join(f"{f}.epochs" for f in self.STAGE_FIELDS.values())
            raise ValueError(f"{names} is 0: nothing to train")
        return self


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict."""
    path = Path(path)
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


def preset_names(kind: str) -> list[str]:
    """The presets of ``kind`` (``velocity``, ``events``, ``bundle``) in ``PRESETS_DIR``."""
    return sorted(p.stem.removeprefix(f"{kind}_") for p in PRESETS_DIR.glob(f"{kind}_*.toml"))


def resolve_preset(kind: str, name_or_path: str | Path) -> Path:
    """A preset name of ``kind`` (``tiny``, ``default``) or a file path → the file's path.

    Raises:
        FileNotFoundError: naming the presets of ``kind``, when it is neither.
    """
    preset = PRESETS_DIR / f"{kind}_{name_or_path}.toml"
    if preset.is_file():
        return preset
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config {str(name_or_path)!r} is neither a file nor a {kind} preset "
            f"({', '.join(preset_names(kind))})"
        )
    return path


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged recursively: ``{"data": {"folder": "x"}}``
    replaces only ``data.folder``; a non-dict value replaces what was there."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def load_config_file(
    cls: type[M], kind: str, name_or_path: str | Path, overrides: dict[str, Any] | None = None
) -> M:
    """Read a preset of ``kind`` or a file, merge ``overrides``, validate as ``cls``."""
    data = read_config_file(resolve_preset(kind, name_or_path))
    return cls.model_validate(merge_overrides(data, overrides or {}))


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """``["optim.epochs=3", "data.train=[a, b]"]`` (the CLI's ``--set``) → nested
    overrides; each value is read as TOML, else as YAML (so bare words are strings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY.PATH=VALUE")
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part} is set to a value and a table")
        node[leaf] = _parse_value(text.strip())
    return out


def _parse_value(text: str) -> Any:
    """A TOML value (``2e-3``, ``true``, ``["a"]``), else YAML (``[a, b]``, ``x``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return yaml.safe_load(text) if text else ""
