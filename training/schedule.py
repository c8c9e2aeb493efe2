"""The learning-rate schedule of every training stage: linear warm-up, cosine decay."""

from __future__ import annotations

import math

from seislens.training.config import OptimConfig


def lr_at(step: int, total: int, optim: OptimConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of a stage of ``total`` steps.

    Rises linearly over ``warmup_steps`` (``lr · (step + 1) / warmup_steps``), then
    decays along half a cosine from ``lr`` to ``min_lr_ratio · lr`` at ``total`` and
    stays there.
    """
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    frac = (step - optim.warmup_steps) / max(1, total - optim.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return optim.lr * (optim.min_lr_ratio + (1 - optim.min_lr_ratio) * cos)


def stage_steps(n_train: int, optim: OptimConfig) -> tuple[int, int]:
    """(steps an epoch, steps of the whole stage) for ``n_train`` training samples:
    full batches only; the stage stops at ``max_steps`` when that is set."""
    per_epoch = n_train // optim.batch_size
    total = per_epoch * optim.epochs
    if optim.max_steps:
        total = min(total, optim.max_steps)
    return per_epoch, total
