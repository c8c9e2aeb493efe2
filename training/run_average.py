"""Uniform weight averages of training runs ("model soups"), for any branch.

Runs fine-tuned one after the other from each other's weights (``--set init_from=…``)
lie in one basin of the loss, and the mean of their weights is often better than any one
of them (Wortsman et al., 2022, "Model soups"). :func:`average_runs` writes a new run
folder whose checkpoint holds the mean of the runs' validation-best weights (their last
weights where a run selects none): every floating-point tensor averaged, integer
buffers taken from the last run. The config and everything else come from the last run;
the provenance records the runs averaged and the epoch and score each contributed, so
an export of the average says what it is. The folder can be exported like any run
(``seislens export --run …``) or trained on from (``--set init_from=…``); it has no
metrics log of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from seislens.training.runs import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    RunError,
    read_checkpoint,
    save_atomic,
)

__all__ = ["average_runs"]


def _weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    best = state.get("best") or {}
    return best.get("network") or state["network"]


def _check(states: list[dict[str, Any]], runs: list[Path]) -> None:
    branches = {s["branch"] for s in states}
    if len(branches) != 1:
        raise RunError(f"runs of different branches ({sorted(branches)}): {runs}")
    first = _weights(states[0])
    for run, state in zip(runs[1:], states[1:], strict=True):
        other = _weights(state)
        if set(other) != set(first):
            diff = sorted(set(other) ^ set(first))[:5]
            raise RunError(f"{run} has other weights than {runs[0]} (e.g. {diff})")
        shapes = [k for k in first if first[k].shape != other[k].shape]
        if shapes:
            raise RunError(f"{run}: weights of another shape than {runs[0]}'s: {shapes[:5]}")


def average_runs(runs: list[Path], out: Path) -> Path:
    """Write the run folder ``out`` holding the mean of ``runs``' best weights.

    Args:
        runs: at least two run folders of one branch and one architecture.
        out: a new run folder (refused if it holds a checkpoint already).
    Returns:
        The checkpoint written.
    Raises:
        RunError: fewer than two runs, a missing or old checkpoint, runs of different
            branches or architectures, or an ``out`` that is already a run.
    """
    runs = [Path(r) for r in runs]
    out = Path(out)
    if len(runs) < 2:
        raise RunError(f"an average needs at least two runs; got {len(runs)}")
    if (out / CHECKPOINT).exists():
        raise RunError(f"{out} already holds a run; average into a new folder")
    if out.resolve() in {r.resolve() for r in runs}:
        raise RunError(f"{out} is one of the runs averaged")
    states = [read_checkpoint(r) for r in runs]
    _check(states, runs)
    weights = [_weights(s) for s in states]
    last = states[-1]
    mean = {
        k: (sum(w[k].double() for w in weights) / len(weights)).to(v.dtype)
        if torch.is_floating_point(v)
        else v.clone()
        for k, v in weights[-1].items()
    }
    sources = [
        {
            "run": str(r),
            "best": {k: (s.get("best") or {}).get(k) for k in ("stage", "epoch", "score")},
        }
        for r, s in zip(runs, states, strict=True)
    ]
    best = dict(last.get("best") or {})
    best.update({"network": mean, "score": None, "average_of": sources})
    state = {
        **last,
        "format": CHECKPOINT_FORMAT,
        "network": mean,
        "best": best,
        "provenance": {**(last.get("provenance") or {}), "average_of": sources},
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(runs[-1] / CONFIG_FILE, out / CONFIG_FILE)
    save_atomic(state, out / CHECKPOINT)
    return out / CHECKPOINT
