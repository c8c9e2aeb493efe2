"""The one training loop of every branch: stages of epochs over a run folder.

A branch declares what differs as a :class:`BranchTraining` subclass — its config
class, its network builder, the stages that select best weights — and a few hooks:
``prepare`` (data), ``build_network``, ``optimizer``, ``batches``, ``loss``,
``validate`` and ``checkpoint_extras``/``restore``. :func:`run_training` does the rest
once for every branch: run-folder config check and resume, torch threads and seed,
the warm-up + cosine learning rate, tqdm progress, the metrics log, the atomic
checkpoint after every epoch and the best weights. The velocity branch is one stage
(``contrastive``); the event branch two (``clip`` then ``finetune``).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from seislens.training.config import OptimConfig, TrainConfig
from seislens.training.runs import RunError, RunFolder, read_checkpoint
from seislens.training.schedule import lr_at, stage_steps
from tqdm import tqdm

C = TypeVar("C", bound=TrainConfig)


@dataclass(frozen=True)
class Stage:
    """One training stage: its name (in metrics and checkpoints) and optimiser settings."""

    name: str
    optim: OptimConfig


class BranchTraining(ABC, Generic[C]):
    """A branch's part of training; :func:`run_training` drives it.

    Class attributes:
        branch: the registry name (``seislens.models.branches``).
        config_class: the branch's :class:`TrainConfig` subclass.
        network_builder: the network from ``cfg.model`` (a config or its dict), as a
            ``staticmethod``.
        selecting_stages: stages whose epochs compete for the best weights (by the
            validation ``score``, else minus the training loss).
        item: what one training sample is, in words (for error messages).

    Args:
        cfg: the validated config.
        cache_dir: where the branch keeps its preprocessed training data.
        progress: show progress bars while preparing data.
    """

    branch: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]]
    network_builder: ClassVar[Callable[[Any], torch.nn.Module]]  # a staticmethod
    selecting_stages: ClassVar[frozenset[str]] = frozenset()
    item: ClassVar[str] = "sample"

    def __init__(self, cfg: C, cache_dir: Path, progress: bool = True) -> None:
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self.progress = progress

    def stages(self) -> list[Stage]:
        """The config's stages, in training order."""
        return [Stage(name, optim) for name, optim in self.cfg.stages()]

    @abstractmethod
    def prepare(self, state: dict[str, Any] | None) -> None:
        """Load (and cache) the training data; ``state`` is the checkpoint resumed."""

    @property
    @abstractmethod
    def n_train(self) -> int:
        """Training samples an epoch draws its batches from."""

    def build_network(self) -> torch.nn.Module:
        """A fresh network (weights of a resumed run are loaded into it after)."""
        return self.network_builder(self.cfg.model)

    @abstractmethod
    def optimizer(self, net: torch.nn.Module, stage: Stage) -> torch.optim.Optimizer:
        """The stage's optimiser; a param group's ``lr_ratio`` (default 1) scales its lr."""

    @abstractmethod
    def batches(self, stage: Stage, epoch: int) -> Iterator[Any]:
        """The batches of ``epoch`` (0-based over all stages), drawn lazily in order."""

    @abstractmethod
    def loss(
        self, net: torch.nn.Module, batch: Any, stage: Stage
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's loss and its parts as floats, ``"loss"`` first."""

    @abstractmethod
    def validate(self, net: torch.nn.Module, stage: Stage) -> dict[str, Any] | None:
        """Validation metrics after an epoch of ``stage``; None without validation data."""

    def checkpoint_extras(self) -> dict[str, Any]:
        """What the branch adds to every checkpoint (at least ``provenance``)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the branch's own state (RNGs) from a resumed checkpoint."""


@dataclass
class _Progress:
    """Where a run stands: epochs done, the last epoch's metrics, the best weights."""

    done: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None


def run_training(training: BranchTraining[Any], run_dir: Path) -> dict[str, Any]:
    """Train (or resume) a run; returns the last epoch's metrics plus ``best``
    (epoch and score) where a stage selects best weights.

    Running it again on a finished run does nothing and returns the same summary.

    Raises:
        RunError: a run folder of another config, or fewer samples than a batch.
    """
    cfg = training.cfg
    folder = RunFolder(run_dir)
    state = folder.open(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    training.prepare(state)
    folder.write_config(cfg)
    stages = training.stages()
    _check_batches(training, stages)

    net = training.build_network()
    run = _Progress()
    if state:
        net.load_state_dict(state["network"])
        torch.set_rng_state(state["torch_rng"])
        training.restore(state)
        run = _Progress(state["done"], state["metrics"], state.get("best"))
    elif cfg.init_from is not None:
        _init_weights(net, cfg.init_from, training.branch)

    plan = [(stage, e) for stage in stages for e in range(stage.optim.epochs)]
    opt, opt_stage, step = None, None, 0
    for g in range(run.done, len(plan)):
        stage, stage_epoch = plan[g]
        if opt_stage != stage.name:
            opt, opt_stage, step = training.optimizer(net, stage), stage.name, 0
            if state and state["stage"] == stage.name and state["done"] == g:
                opt.load_state_dict(state["optimizer"])
                step = state["step"]
        assert opt is not None
        _, total = stage_steps(training.n_train, stage.optim)
        if step >= total:
            continue
        elapsed = float(run.last.get("train_seconds_total", 0.0))
        run.last = _run_epoch(training, net, opt, stage, g, stage_epoch, step, total)
        step = run.last["step"]
        run.last["train_seconds_total"] = round(elapsed + run.last["seconds"], 1)
        val = training.validate(net, stage)
        if val is not None:
            run.last["val"] = val
        run.best = _select(training, net, stage, g, run)
        folder.append_metrics(run.last)
        folder.save_checkpoint(
            {
                "branch": training.branch,
                "network": net.state_dict(),
                "optimizer": opt.state_dict(),
                "stage": stage.name,
                "done": g + 1,
                "step": step,
                "torch_rng": torch.get_rng_state(),
                "best": run.best,
                "config": json.loads(cfg.model_dump_json()),
                "metrics": run.last,
                **training.checkpoint_extras(),
            }
        )
        if training.progress:
            tqdm.write(json.dumps(run.last))
    summary = dict(run.last)
    if run.best is not None:
        summary["best"] = {"epoch": run.best["epoch"], "score": run.best["score"]}
    return summary


def _init_weights(net: torch.nn.Module, run_dir: Path, branch: str) -> None:
    """Load another run's network weights into a fresh ``net`` (fine-tuning)."""
    source = read_checkpoint(run_dir)
    if source.get("branch") != branch:
        raise RunError(f"init_from {run_dir}: a {source.get('branch')} run, not {branch}")
    try:
        net.load_state_dict(source["network"])
    except RuntimeError as exc:
        raise RunError(f"init_from {run_dir}: another architecture ({exc})") from exc


def _check_batches(training: BranchTraining[Any], stages: list[Stage]) -> None:
    for stage in stages:
        if stage.optim.epochs and training.n_train < stage.optim.batch_size:
            raise RunError(
                f"{training.n_train} usable training {training.item}s is fewer than one "
                f"{stage.name} batch of {stage.optim.batch_size}"
            )


def _select(
    training: BranchTraining[Any], net: torch.nn.Module, stage: Stage, g: int, run: _Progress
) -> dict[str, Any] | None:
    """The best weights after epoch ``g``: this epoch's where its stage selects and it
    scores at least as well as the best of the same stage so far."""
    if stage.name not in training.selecting_stages:
        return run.best
    score = run.last.get("val", {}).get("score", -run.last["loss"])
    best = run.best
    if best is None or best["stage"] != stage.name or score >= best["score"]:
        best = {
            "stage": stage.name,
            "epoch": g + 1,
            "score": score,
            "network": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "metrics": dict(run.last),
        }
    return best


def _run_epoch(
    training: BranchTraining[Any],
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    stage: Stage,
    g: int,
    stage_epoch: int,
    step: int,
    total: int,
) -> dict[str, Any]:
    """One epoch of ``stage`` (global epoch ``g``, 0-based) from ``step``; its metrics."""
    net.train()
    per_epoch, _ = stage_steps(training.n_train, stage.optim)
    bar = tqdm(
        range(per_epoch),
        desc=f"{stage.name} {stage_epoch + 1}/{stage.optim.epochs}",
        disable=not training.progress,
        unit="step",
    )
    batches = training.batches(stage, g)
    sums: dict[str, float] = {}
    t0, seen, n = time.perf_counter(), 0, 0
    for _ in bar:
        if step >= total:
            break
        loss, parts = training.loss(net, next(batches), stage)
        lr = lr_at(step, total, stage.optim)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_ratio", 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        n += 1
        seen += stage.optim.batch_size
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{parts['loss']:.3f}", samples_s=f"{seen / _since(t0):.0f}")
    bar.close()
    seconds = _since(t0)
    return {
        "stage": stage.name,
        "epoch": g + 1,
        "stage_epoch": stage_epoch + 1,
        "step": step,
        "seconds": round(seconds, 1),
        "samples_per_s": round(seen / seconds, 1),
        "lr": lr_at(step, total, stage.optim),
        "temperature": float(1 / net.logit_scale.detach().exp()),
        **{k: v / max(n, 1) for k, v in sums.items()},
    }


def _since(t0: float) -> float:
    return max(time.perf_counter() - t0, 1e-9)
