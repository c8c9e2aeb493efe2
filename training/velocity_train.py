"""Tri-modal contrastive training of the velocity branch (torch).

A run folder holds ``config.json`` (the validated config), ``checkpoint.pt`` (written
atomically after every epoch: weights, optimiser, step, RNG states, preprocessing),
``metrics.jsonl`` (one JSON object per epoch) and a cache of preprocessed gathers.
Running the same command again resumes after the last finished epoch; a run folder
made with another config is refused.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.models.velocity_encoders import VelocityClip, build_velocity_clip
from seislens.models.velocity_preprocess import (
    Preprocessing,
    descriptor_features,
    velocity_features,
)
from seislens.training.losses import trimodal_loss
from seislens.training.metrics import recall_at_k
from seislens.training.velocity_config import VelocityTrainConfig
from seislens.training.velocity_data import (
    collect_arrays,
    expand_folders,
    fit_stats,
    gather_feature_cache,
    open_datasets,
    split_rows,
)
from tqdm import tqdm

CHECKPOINT = "checkpoint.pt"


class RunError(ValueError):
    """A run folder that cannot be used as asked."""


def lr_at(step: int, total: int, cfg: VelocityTrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to min_lr_ratio·lr."""
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    frac = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * cos)


def augment(g: torch.Tensor, cfg: VelocityTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Additive noise and dead traces on a (B, shots, T', R) batch of features."""
    a = cfg.augment
    if a.noise_std > 0:
        g = g + a.noise_std * torch.randn(g.shape, generator=gen)
    if a.dead_trace_prob > 0:
        keep = torch.rand((g.shape[0], g.shape[1], 1, g.shape[3]), generator=gen)
        g = g * (keep >= a.dead_trace_prob)
    return g


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_run_dir(run: Path, cfg: VelocityTrainConfig) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; refuses a run made with another config."""
    cfg_path = run / "config.json"
    if cfg_path.exists():
        theirs = json.loads(cfg_path.read_text())
        if theirs != json.loads(cfg.model_dump_json()):
            raise RunError(
                f"{run} holds a run with another config; use a new --run folder or the "
                "same config to resume"
            )
    ckpt = run / CHECKPOINT
    return torch.load(ckpt, weights_only=False) if ckpt.exists() else None


@torch.no_grad()
def embed_arrays(
    model: VelocityClip,
    gathers: np.ndarray,
    models: np.ndarray,
    desc: np.ndarray,
    pre: Preprocessing,
    batch: int = 256,
) -> dict[str, np.ndarray]:
    """Embeddings of preprocessed gathers and raw models/descriptors: (N, D) each."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {"seismic": [], "velocity": [], "descriptor": []}
    for s in range(0, len(models), batch):
        g = torch.from_numpy(np.asarray(gathers[s : s + batch], np.float32))
        v = torch.from_numpy(velocity_features(models[s : s + batch], pre.velocity))
        d = torch.from_numpy(descriptor_features(desc[s : s + batch], pre.descriptors))
        out["seismic"].append(model.encode_seismic(g).numpy())
        out["velocity"].append(model.encode_velocity(v).numpy())
        out["descriptor"].append(model.encode_descriptor(d).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_split(model: VelocityClip, gathers, models, desc, pre) -> dict[str, Any]:
    """Closed-set recall@k over one split (the split is its own gallery)."""
    e = embed_arrays(model, gathers, models, desc, pre)
    return {
        "gallery_size": len(models),
        "seismic_to_velocity": recall_at_k(e["seismic"], e["velocity"]),
        "velocity_to_descriptor": recall_at_k(e["velocity"], e["descriptor"]),
    }


def train_velocity(
    cfg: VelocityTrainConfig, run: Path, progress: bool = True, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Train (or resume) a run; returns the last epoch's metrics."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    state = _check_run_dir(run, cfg)
    (run / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    datasets = open_datasets(expand_folders(cfg.data.train))
    arrays = collect_arrays(datasets, cfg.data.max_per_folder)
    pre = (
        Preprocessing.model_validate(state["preprocessing"])
        if state
        else fit_stats(datasets, arrays, cfg.preprocess, cfg.seed)
    )
    feats = gather_feature_cache(
        datasets, cfg.data.max_per_folder, pre.gather, cache_dir or run / "cache", progress
    )
    train_rows, val_rows = split_rows(arrays.families, cfg.data.val_fraction, cfg.seed)
    if len(train_rows) < cfg.optim.batch_size:
        raise RunError(
            f"{len(train_rows)} training samples is fewer than one batch of {cfg.optim.batch_size}"
        )
    vel = velocity_features(arrays.models, pre.velocity)
    dsc = descriptor_features(arrays.descriptors, pre.descriptors)

    model = build_velocity_clip(cfg.model)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    steps_per_epoch = len(train_rows) // cfg.optim.batch_size
    total = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps:
        total = min(total, cfg.optim.max_steps)
    start_epoch, step = 0, 0
    gen = torch.Generator().manual_seed(cfg.seed)
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"] + 1, state["step"]
        gen.set_state(state["aug_rng"])
        torch.set_rng_state(state["torch_rng"])

    last: dict[str, Any] = state["metrics"] if state else {}
    for epoch in range(start_epoch, cfg.optim.epochs):
        if step >= total:
            break
        model.train()
        order = train_rows[np.random.default_rng([cfg.seed, epoch]).permutation(len(train_rows))]
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
            disable=not progress,
            unit="step",
        )
        t0, seen, sums = time.perf_counter(), 0, {"loss": 0.0, "loss_sv": 0.0, "loss_vd": 0.0}
        for b in bar:
            if step >= total:
                break
            rows = np.sort(order[b * cfg.optim.batch_size : (b + 1) * cfg.optim.batch_size])
            g = augment(torch.from_numpy(np.asarray(feats[rows], np.float32)), cfg, gen)
            out = model(g, torch.from_numpy(vel[rows]), torch.from_numpy(dsc[rows]))
            loss, parts = trimodal_loss(
                out, cfg.loss.w_seismic_velocity, cfg.loss.w_velocity_descriptor
            )
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(rows)
            for k in sums:
                sums[k] += parts[k]
            rate = seen / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", samples_s=f"{rate:.0f}")
        n_steps = max(1, b + 1)
        last = {
            "epoch": epoch + 1,
            "step": step,
            "seconds": round(time.perf_counter() - t0, 1),
            "samples_per_s": round(seen / (time.perf_counter() - t0), 1),
            "lr": lr_at(step, total, cfg),
            "temperature": float(1 / model.logit_scale.detach().exp()),
            **{k: v / n_steps for k, v in sums.items()},
        }
        if len(val_rows):
            last["val"] = evaluate_split(
                model,
                feats[val_rows],
                arrays.models[val_rows],
                arrays.descriptors[val_rows],
                pre,
            )
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(last) + "\n")
        _save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "step": step,
                "aug_rng": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "preprocessing": pre.model_dump(),
                "config": json.loads(cfg.model_dump_json()),
                "metrics": last,
                "provenance": {
                    "folders": [str(f) for f in arrays.folders],
                    "manifests": [d.manifest for d in datasets],
                    "train_samples": len(train_rows),
                    "val_samples": len(val_rows),
                },
            },
            run / CHECKPOINT,
        )
        if progress:
            tqdm.write(json.dumps(last))
    return last


def load_run(run: Path) -> tuple[VelocityClip, dict[str, Any]]:
    """The trained model (eval mode) and the checkpoint dict of a run folder."""
    ckpt = Path(run) / CHECKPOINT
    if not ckpt.exists():
        raise RunError(f"{run} has no {CHECKPOINT}; train first (seislens train velocity)")
    state = torch.load(ckpt, weights_only=False)
    model = build_velocity_clip(state["config"]["model"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, state
