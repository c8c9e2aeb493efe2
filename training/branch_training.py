"""The training entry points of every branch: load a config, train a run, load a run.

:data:`BRANCH_TRAINING` maps each registry branch (``seislens.models.branches``) to its
:class:`~seislens.training.trainer.BranchTraining` subclass; everything else here goes
through it, so the CLI, the bundle pipeline, the exporters and the tests call the same
three functions for either branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from seislens.models.branches import get_branch
from seislens.training.config import TrainConfig, load_config_file
from seislens.training.event_train import EventTraining
from seislens.training.runs import RunError, read_checkpoint
from seislens.training.trainer import BranchTraining, run_training
from seislens.training.velocity_train import VelocityTraining

BRANCH_TRAINING: dict[str, type[BranchTraining[Any]]] = {
    t.branch: t for t in (VelocityTraining, EventTraining)
}
"""Each registry branch's training hooks, by branch name."""


def branch_training(branch: str) -> type[BranchTraining[Any]]:
    """The training hooks of registry branch ``branch`` (KeyError naming the known ones)."""
    return BRANCH_TRAINING[get_branch(branch).name]


def load_config(
    branch: str, name_or_path: str | Path, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The validated training config of ``branch`` from a preset name
    (``presets/<branch>_<name>.toml``) or a TOML/YAML file, with ``overrides`` merged
    recursively (``{"data": {"folder": "x"}}`` replaces only ``data.folder``)."""
    training = branch_training(branch)
    return load_config_file(training.config_class, branch, name_or_path, overrides)


def _training_for(cfg: TrainConfig) -> type[BranchTraining[Any]]:
    for training in BRANCH_TRAINING.values():
        if isinstance(cfg, training.config_class):
            return training
    raise TypeError(f"no branch trains a {type(cfg).__name__}")


def train(
    cfg: TrainConfig, run: Path, progress: bool = True, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Train (or resume) the run folder ``run`` with ``cfg`` (the branch follows from the
    config's type); returns the last epoch's metrics, plus ``best`` (epoch, score) where
    the branch selects best weights.

    Args:
        cfg: a validated branch config (:func:`load_config`).
        run: the run folder (created; resumed when it holds a checkpoint of this config;
            refused when it holds another config).
        progress: tqdm bars and one JSON line per epoch.
        cache_dir: where the preprocessed training data is cached (default ``run/cache``).
    """
    training = _training_for(cfg)
    cache = Path(cache_dir) if cache_dir else Path(run) / "cache"
    return run_training(training(cfg, cache, progress), Path(run))


@dataclass(frozen=True)
class TrainedRun:
    """A finished (or interrupted) run, loaded.

    Attributes:
        branch: the registry name of the run's branch.
        config: the run's validated config.
        network: the trained network in eval mode (``weights`` chosen).
        weights: "best" (validation-selected) or "last": which weights ``network`` holds.
        checkpoint: the checkpoint dict (``config`` as a dict, ``metrics``, ``best``,
            ``provenance`` and the branch's extras such as ``preprocessing``).
    """

    branch: str
    config: TrainConfig
    network: torch.nn.Module
    weights: str
    checkpoint: dict[str, Any]


def load_run(run: Path, which: str = "best", branch: str | None = None) -> TrainedRun:
    """Load a run folder of either branch.

    Args:
        run: the run folder.
        which: "best" (the validation-selected weights, where the run has any; else the
            last) or "last".
        branch: the branch expected, when the caller needs one (RunError otherwise).

    Raises:
        RunError: no checkpoint, an older checkpoint format, or another branch's run.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which is {which!r}; expected 'best' or 'last'")
    state = read_checkpoint(Path(run))
    if branch is not None and state["branch"] != get_branch(branch).name:
        raise RunError(f"{run} is a run of the {state['branch']} branch, not of {branch}")
    training = branch_training(state["branch"])
    network = training.network_builder(state["config"]["model"])
    best = state.get("best") if which == "best" else None
    network.load_state_dict(best["network"] if best else state["network"])
    network.eval()
    return TrainedRun(
        branch=state["branch"],
        config=training.config_class.model_validate(state["config"]),
        network=network,
        weights="best" if best else "last",
        checkpoint=state,
    )
