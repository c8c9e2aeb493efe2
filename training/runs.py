"""The run folder every training branch writes, and the reading of its checkpoint.

A run folder holds:

* ``config.json``: the validated config (a folder holding another config is refused);
* ``checkpoint.pt``: written atomically after every epoch (temp file, then
  ``os.replace``): the branch name, the network's weights, the optimiser, the stage,
  epochs done, the stage's step, torch's RNG state, the best weights so far (where a
  stage selects them), the config, the last epoch's metrics, provenance and whatever
  the branch adds (preprocessing statistics, augmentation RNG);
* ``metrics.jsonl``: one JSON object per finished epoch;
* ``cache/``: the branch's preprocessed training data (unless elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

CHECKPOINT = "checkpoint.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FORMAT = 2
"""Bumped when the checkpoint's keys change; older checkpoints are refused."""


class RunError(ValueError):
    """A run folder (or the data it is asked to train on) that cannot be used as asked."""


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` through a temp file and ``os.replace``: the
    path holds the old file or the whole new one, never a part; the temp file is
    removed when writing fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_checkpoint(run: Path) -> dict[str, Any]:
    """The checkpoint dict of a run folder.

    Raises:
        RunError: when there is none, or it was written in an older format.
    """
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise RunError(f"{run} has no {CHECKPOINT}; train first (seislens train <branch>)")
    state = torch.load(path, weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RunError(
            f"{path} was written by an older SeisLens (checkpoint format "
            f"{state.get('format', 1)}, expected {CHECKPOINT_FORMAT}); train again in a new "
            "run folder"
        )
    return state


class RunFolder:
    """A run folder: config check, checkpoint, metrics log.

    Args:
        path: the folder (created by :meth:`open`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    def open(self, cfg: BaseModel) -> dict[str, Any] | None:
        """Create the folder; the checkpoint to resume from, or None for a fresh run.

        Raises:
            RunError: when the folder holds a run made with another config.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        cfg_path = self.path / CONFIG_FILE
        if cfg_path.exists():
            theirs = json.loads(cfg_path.read_text())
            if theirs != json.loads(cfg.model_dump_json()):
                changed = sorted(_changed_keys(theirs, json.loads(cfg.model_dump_json())))
                raise RunError(
                    f"{self.path} holds a run with another config (differs in "
                    f"{', '.join(changed)}); use a new run folder or the same config to resume"
                )
        if not self.checkpoint_path.exists():
            return None
        state = read_checkpoint(self.path)
        self._trim_metrics(state["done"])
        return state

    def write_config(self, cfg: BaseModel) -> None:
        """Record the run's validated config (``config.json``)."""
        (self.path / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write the checkpoint atomically (see :func:`save_atomic`)."""
        save_atomic({"format": CHECKPOINT_FORMAT, **state}, self.checkpoint_path)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one epoch's metrics to ``metrics.jsonl``."""
        with open(self.path / METRICS_FILE, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """Every logged epoch's metrics, in order."""
        path = self.path / METRICS_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _trim_metrics(self, done: int) -> None:
        """Drop log lines of epochs after the checkpoint's (an interruption between the
        log and the checkpoint), so the resumed run logs each epoch once."""
        path = self.path / METRICS_FILE
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the interruption
            if record.get("epoch", 0) <= done:
                kept.append(line)
        path.write_text("".join(f"{line}\n" for line in kept))


def _changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _changed_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "(root)"]
