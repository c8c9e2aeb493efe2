"""Two-stage training of the event branch (torch).

Stage 1 (``clip``): SeisCLIP's contrastive alignment of the spectrum and info encoders
(symmetric InfoNCE with a learnable temperature; traces with identical info vectors —
every noise trace has none — share their targets instead of counting as negatives).
Stage 2 (``finetune``): the event-type classifier (cross-entropy) and the
distance/depth/magnitude regressor (Huber or MSE on standardised targets, masked where a
target is missing, e.g. for noise) on the spectrum encoder, which is fine-tuned at a
reduced rate with the contrastive term kept so the two embeddings stay aligned.

A run folder holds ``config.json`` (the validated config), ``checkpoint.pt`` (written
atomically after every epoch: weights, optimiser, stage, step, RNG states, the best
weights so far by validation macro-F1), ``metrics.jsonl`` (one JSON object per epoch)
and ``cache/<key>/``: every training and validation trace's views (see ``event_data``),
as float16 spectra and float32 info vectors, computed once. The key hashes the dataset
(each chunk's metadata bytes, waveform file size and time), the preprocessing and window
settings, the splits and caps. Running the same command again resumes after the last
finished epoch; a run folder made with another config is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from seislens.data.event_dataset import EventDataset, dataset_chunks
from seislens.data.event_views import event_targets, trace_views
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGET_UNITS as TARGET_UNITS
from seislens.models.contract import EVENT_TARGETS as TARGETS
from seislens.models.event_encoders import EventClip, build_event_clip
from seislens.models.event_preprocess import EventInputError
from seislens.training.event_config import (
    EventTrainConfig,
    FinetuneConfig,
    StageConfig,
    load_event_config,
)
from seislens.training.event_metrics import classification_report, regression_mae
from seislens.training.metrics import recall_at_k
from tqdm import tqdm

__all__ = [
    "CHECKPOINT",
    "EventRunError",
    "EventTrainConfig",
    "load_event_config",
    "load_event_run",
    "train_events",
]

CHECKPOINT = "checkpoint.pt"
CACHE_VERSION = 1
NOISE = CLASSES.index("noise")


class EventRunError(ValueError):
    """A run folder or dataset that cannot be used as asked."""


# --------------------------------------------------------------------------- cache


@dataclass
class ViewCache:
    """Cached views of the training and validation traces (memory-mapped spectra)."""

    path: Path
    spectra: np.ndarray  # (N, K, 3, 50, 120) float16
    info: np.ndarray  # (N, K, 8) float32
    labels: np.ndarray  # (N,) int64 class indices
    targets: np.ndarray  # (N, 3) float32, NaN where missing
    split: np.ndarray  # (N,) str
    valid: np.ndarray  # (N,) bool: False for traces the preprocessing refused
    meta: dict[str, Any]

    @property
    def n_views(self) -> int:
        return int(self.spectra.shape[1])

    def rows(self, split: str | None) -> np.ndarray:
        """Cache rows of one split that could be preprocessed."""
        if split is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero((self.split == split) & self.valid)


def dataset_fingerprint(folder: Path) -> list[dict[str, Any]]:
    """What identifies a SeisBench folder's content cheaply: per chunk, the metadata's
    SHA-256 and the waveform file's size and modification time."""
    out = []
    for chunk in dataset_chunks(folder):
        meta = folder / f"metadata{chunk}.csv"
        wave = folder / f"waveforms{chunk}.hdf5"
        digest = hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None
        stat = wave.stat() if wave.is_file() else None
        out.append(
            {
                "chunk": chunk,
                "metadata_sha256": digest,
                "waveforms_bytes": stat.st_size if stat else None,
                "waveforms_mtime_ns": stat.st_mtime_ns if stat else None,
            }
        )
    return out


def cache_key(cfg: EventTrainConfig) -> str:
    """Hash of the dataset and everything that shapes the cached views."""
    text = json.dumps(
        {
            "version": CACHE_VERSION,
            "dataset": dataset_fingerprint(Path(cfg.data.folder)),
            "preprocess": cfg.preprocess.model_dump(mode="json"),
            "window": cfg.window.model_dump(mode="json"),
            "data": cfg.data.model_dump(mode="json", exclude={"folder"}),
            "seed": cfg.seed,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _select(ds: EventDataset, split: str | None, cap: int | None, seed: int) -> np.ndarray:
    if split is None or "split" not in ds.metadata.columns:
        return np.zeros(0, np.int64)
    splits = ds.metadata["split"].astype(str).str.strip().str.lower().to_numpy()
    rows = np.flatnonzero((splits == split) & (ds.label_ids >= 0))
    if cap is not None and len(rows) > cap:
        rows = np.sort(np.random.default_rng([seed, 3]).choice(rows, cap, replace=False))
    return rows


def _views(cfg: EventTrainConfig, row: int) -> list[Any]:
    views: list[Any] = ["catalog"]
    if cfg.window.auto_view:
        views.append("auto")
    if cfg.window.shifted_views:
        rng = np.random.default_rng([cfg.seed, 7, row])
        views += [float(u) for u in rng.random(cfg.window.shifted_views)]
    return views


def load_view_cache(cfg: EventTrainConfig, root: Path, progress: bool = True) -> ViewCache:
    """The cache for ``cfg`` under ``root``, built (atomically) when missing."""
    folder = Path(cfg.data.folder)
    ds = EventDataset(folder)
    key = cache_key(cfg)
    path = Path(root) / key
    if not (path / "meta.json").is_file():
        _build_cache(cfg, ds, path, key, progress)
    meta = json.loads((path / "meta.json").read_text())
    return ViewCache(
        path=path,
        spectra=np.load(path / "spectra.npy", mmap_mode="r"),
        info=np.load(path / "info.npy"),
        labels=np.load(path / "labels.npy"),
        targets=np.load(path / "targets.npy"),
        split=np.load(path / "split.npy"),
        valid=np.load(path / "valid.npy"),
        meta=meta,
    )


def _build_cache(
    cfg: EventTrainConfig, ds: EventDataset, path: Path, key: str, progress: bool
) -> None:
    if "split" not in ds.metadata.columns:
        raise EventRunError(
            f"{cfg.data.folder}: metadata has no 'split' column; training needs one "
            "(train/dev/test per trace, as SeisBench datasets have)"
        )
    train = _select(ds, cfg.data.train_split, cfg.data.max_train, cfg.seed)
    val = _select(ds, cfg.data.val_split, cfg.data.max_val, cfg.seed)
    if len(train) == 0:
        splits = sorted(ds.metadata["split"].astype(str).unique())
        raise EventRunError(
            f"{cfg.data.folder}: no labelled trace in split {cfg.data.train_split!r} "
            f"(splits present: {splits}; labels map onto {list(CLASSES)})"
        )
    rows = np.concatenate([train, val])
    k = cfg.window.n_views
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        spectra = np.lib.format.open_memmap(
            tmp / "spectra.npy", "w+", np.float16, (len(rows), k, 3, 50, 120)
        )
        info = np.zeros((len(rows), k, 8), np.float32)
        valid = np.ones(len(rows), bool)
        t0 = time.perf_counter()
        bar = tqdm(rows, desc=f"caching {k} view(s) a trace", unit="trace", disable=not progress)
        for n, row in enumerate(bar):
            try:
                views = trace_views(
                    ds, int(row), _views(cfg, int(row)), cfg.preprocess, cfg.window.shift_range_s
                )
            except EventInputError:
                valid[n] = False
                continue
            for v, view in enumerate(views):
                spectra[n, v] = view.spectrum
                info[n, v] = view.info
        spectra.flush()
        del spectra
        np.save(tmp / "info.npy", info)
        np.save(tmp / "labels.npy", ds.label_ids[rows])
        np.save(tmp / "targets.npy", event_targets(ds)[rows].astype(np.float32))
        np.save(
            tmp / "split.npy",
            np.array([cfg.data.train_split] * len(train) + [cfg.data.val_split or ""] * len(val)),
        )
        np.save(tmp / "valid.npy", valid)
        np.save(tmp / "rows.npy", rows)
        unknown = int((ds.label_ids < 0).sum())
        meta = {
            "key": key,
            "folder": str(Path(cfg.data.folder).resolve()),
            "views": ["catalog"]
            + (["auto"] if cfg.window.auto_view else [])
            + ["shift"] * cfg.window.shifted_views,
            "train": len(train),
            "val": len(val),
            "refused": int((~valid).sum()),
            "unknown_labels_skipped": unknown,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- losses


def grouped_clip_loss(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, info: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where rows with identical info vectors share their targets.

    Args:
        a: (B, D) normalised spectrum embeddings; b: (B, D) normalised info embeddings.
        logit_scale: the inverse temperature (exponentiated).
        info: (B, 8) the raw info vectors (equal rows, e.g. all noise, are one group).
    """
    same = (info[:, None, :] == info[None, :, :]).all(dim=-1).float()
    target = same / same.sum(dim=1, keepdim=True)
    logits = logit_scale * a @ b.T
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def masked_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str = "huber"
) -> torch.Tensor:
    """Mean loss over the finite entries of ``target`` (0 when there is none)."""
    mask = torch.isfinite(target)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    if kind == "huber":
        return F.smooth_l1_loss(pred[mask], target[mask])
    return F.mse_loss(pred[mask], target[mask])


# --------------------------------------------------------------------------- helpers


def lr_at(step: int, total: int, stage: StageConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio · lr."""
    if step < stage.warmup_steps:
        return stage.lr * (step + 1) / stage.warmup_steps
    frac = (step - stage.warmup_steps) / max(1, total - stage.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return stage.lr * (stage.min_lr_ratio + (1 - stage.min_lr_ratio) * cos)


def _no_decay(name: str, p: torch.nn.Parameter) -> bool:
    return p.ndim < 2 or name.endswith(("pos_embed", "cls_token", "logit_scale"))


def _optimizer(model: EventClip, stage: str, cfg: EventTrainConfig) -> torch.optim.AdamW:
    """AdamW over the stage's parameters; no weight decay on norms, biases, positions and
    the temperature. Each group carries ``lr_ratio`` (the encoders' in stage 2)."""
    scfg: StageConfig = cfg.clip if stage == "clip" else cfg.finetune
    groups: list[dict[str, Any]] = []
    for is_head in (True, False):
        if stage == "clip" and is_head:
            continue
        ratio = 1.0 if (is_head or stage == "clip") else cfg.finetune.encoder_lr_ratio
        named = [(n, p) for n, p in model.named_parameters() if n.startswith("heads.") == is_head]
        for decay in (True, False):
            params = [p for n, p in named if _no_decay(n, p) != decay]
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr_ratio": ratio,
                        "weight_decay": scfg.weight_decay if decay else 0.0,
                    }
                )
    return torch.optim.AdamW(groups, lr=0.0)


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_run_dir(run: Path, cfg: EventTrainConfig) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; refuses a run made with another config."""
    cfg_path = run / "config.json"
    if cfg_path.exists():
        theirs = json.loads(cfg_path.read_text())
        if theirs != json.loads(cfg.model_dump_json()):
            raise EventRunError(
                f"{run} holds a run with another config; use a new run folder or the same "
                "config to resume"
            )
    ckpt = run / CHECKPOINT
    return torch.load(ckpt, weights_only=False) if ckpt.exists() else None


def _target_stats(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.zeros(targets.shape[1], np.float32)
    std = np.ones(targets.shape[1], np.float32)
    for j in range(targets.shape[1]):
        col = targets[:, j][np.isfinite(targets[:, j])]
        if col.size:
            mean[j] = col.mean()
            std[j] = max(float(col.std()), 1e-3)
    return mean, std


def _batch(
    cache: ViewCache, rows: np.ndarray, views: np.ndarray, model: EventClip
) -> tuple[torch.Tensor, ...]:
    order = np.argsort(rows, kind="stable")  # sorted reads from the memory map
    rows, views = rows[order], views[order]
    spectra = torch.from_numpy(np.asarray(cache.spectra[rows, views], np.float32))
    info = torch.from_numpy(cache.info[rows, views])
    labels = torch.from_numpy(cache.labels[rows])
    targets = torch.from_numpy(cache.targets[rows])
    standard = (targets - model.target_mean) / model.target_std
    return spectra, info, labels, standard


@torch.no_grad()
def predict_views(
    model: EventClip, cache: ViewCache, rows: np.ndarray, view: int, batch: int = 256
) -> dict[str, np.ndarray]:
    """Embeddings, logits and physical regression of cached rows seen through one view."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {"spectrum": [], "info": [], "logits": [], "reg": []}
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch]
        x = torch.from_numpy(np.asarray(cache.spectra[r, view], np.float32))
        features = model.spectrum(x)
        logits, reg = model.heads(features)
        out["spectrum"].append(F.normalize(features, dim=-1).numpy())
        out["info"].append(model.encode_info(torch.from_numpy(cache.info[r, view])).numpy())
        out["logits"].append(logits.numpy())
        out["reg"].append((reg * model.target_std + model.target_mean).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def validate(model: EventClip, cache: ViewCache, rows: np.ndarray, stage: str) -> dict[str, Any]:
    """Validation metrics: alignment after stage 1, classification and regression after 2."""
    names = cache.meta["views"]
    labels = cache.labels[rows]
    first = predict_views(model, cache, rows, 0)
    events = labels != NOISE
    out: dict[str, Any] = {"count": len(rows)}
    if events.sum() >= 2:
        out["spectrum_to_info"] = recall_at_k(
            first["spectrum"][events], first["info"][events], ks=(1, 5)
        )
    if stage == "clip":
        return out
    scores = []
    for v, name in enumerate(names[:2]):
        pred = first if v == 0 else predict_views(model, cache, rows, v)
        report = classification_report(labels, pred["logits"].argmax(1), CLASSES)
        out[name] = {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "f1": {c: report["per_class"][c]["f1"] for c in CLASSES},
        }
        scores.append(report["macro_f1"])
    out["regression"] = {
        k: v["mae"]
        for k, v in regression_mae(first["reg"], cache.targets[rows], TARGETS, TARGET_UNITS).items()
    }
    out["score"] = float(np.mean(scores))
    return out


# --------------------------------------------------------------------------- training


def train_events(
    cfg: EventTrainConfig, run: Path, progress: bool = True, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Train (or resume) an event run; returns the last epoch's metrics plus ``best``.

    Args:
        cfg: the validated config.
        run: the run folder (created; resumed when it holds a checkpoint of this config).
        progress: tqdm bars and one JSON line per epoch.
        cache_dir: where view caches live (default ``run/cache``).
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    state = _check_run_dir(run, cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    cache = load_view_cache(cfg, Path(cache_dir) if cache_dir else run / "cache", progress)
    (run / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    train_rows = cache.rows(cfg.data.train_split)
    val_rows = cache.rows(cfg.data.val_split)
    for name, stage in (("clip", cfg.clip), ("finetune", cfg.finetune)):
        if stage.epochs and len(train_rows) < stage.batch_size:
            raise EventRunError(
                f"{len(train_rows)} usable training traces is fewer than one {name} batch "
                f"of {stage.batch_size}"
            )

    model = build_event_clip(cfg.model)
    if state:
        model.load_state_dict(state["model"])
        torch.set_rng_state(state["torch_rng"])
    else:
        mean, std = _target_stats(cache.targets[train_rows])
        model.set_target_stats(torch.from_numpy(mean), torch.from_numpy(std))

    plan = [("clip", e) for e in range(cfg.clip.epochs)]
    plan += [("finetune", e) for e in range(cfg.finetune.epochs)]
    done = state["done"] if state else 0
    best = state.get("best") if state else None
    last: dict[str, Any] = state["metrics"] if state else {}
    opt, opt_stage, step = None, None, 0

    for g in range(done, len(plan)):
        stage, stage_epoch = plan[g]
        scfg: StageConfig = cfg.clip if stage == "clip" else cfg.finetune
        if opt_stage != stage:
            opt, opt_stage, step = _optimizer(model, stage, cfg), stage, 0
            if state and state["stage"] == stage and state["done"] == g:
                opt.load_state_dict(state["optimizer"])
                step = state["step"]
        assert opt is not None
        steps_per_epoch = len(train_rows) // scfg.batch_size
        total = steps_per_epoch * scfg.epochs
        if scfg.max_steps:
            total = min(total, scfg.max_steps)
        if step >= total:
            continue
        elapsed = float(last.get("train_seconds_total", 0.0))
        last = _run_epoch(
            model,
            opt,
            cache,
            train_rows,
            cfg,
            scfg,
            stage,
            g,
            stage_epoch,
            step,
            total,
            progress,
        )
        step = last["step"]
        last["train_seconds_total"] = round(elapsed + last["seconds"], 1)
        if len(val_rows):
            last["val"] = validate(model, cache, val_rows, stage)
        if stage == "finetune":
            score = last.get("val", {}).get("score", -last["loss"])
            if best is None or best["stage"] != "finetune" or score >= best["score"]:
                best = {
                    "stage": stage,
                    "epoch": g + 1,
                    "score": score,
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                    "metrics": {k: v for k, v in last.items() if k != "best"},
                }
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(last) + "\n")
        _save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "stage": stage,
                "done": g + 1,
                "step": step,
                "torch_rng": torch.get_rng_state(),
                "best": best,
                "config": json.loads(cfg.model_dump_json()),
                "metrics": last,
                "provenance": {
                    "folder": str(Path(cfg.data.folder).resolve()),
                    "dataset": dataset_fingerprint(Path(cfg.data.folder)),
                    "cache": cache.meta,
                    "train_traces": len(train_rows),
                    "val_traces": len(val_rows),
                    "train_per_class": _per_class(cache.labels[train_rows]),
                },
            },
            run / CHECKPOINT,
        )
        if progress:
            tqdm.write(json.dumps(last))
    summary = dict(last)
    if best is not None:
        summary["best"] = {"epoch": best["epoch"], "score": best["score"]}
    return summary


def _per_class(labels: np.ndarray) -> dict[str, int]:
    return {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)}


def _run_epoch(
    model: EventClip,
    opt: torch.optim.AdamW,
    cache: ViewCache,
    train_rows: np.ndarray,
    cfg: EventTrainConfig,
    scfg: StageConfig,
    stage: str,
    g: int,
    stage_epoch: int,
    step: int,
    total: int,
    progress: bool,
) -> dict[str, Any]:
    """One epoch of one stage; returns its metrics."""
    model.train()
    rng = np.random.default_rng([cfg.seed, 11, g])
    order = train_rows[rng.permutation(len(train_rows))]
    views = rng.integers(cache.n_views, size=len(order))
    bs = scfg.batch_size
    steps = len(order) // bs
    epochs = cfg.clip.epochs if stage == "clip" else cfg.finetune.epochs
    bar = tqdm(
        range(steps),
        desc=f"{stage} {stage_epoch + 1}/{epochs}",
        disable=not progress,
        unit="step",
    )
    keys = (
        ("loss", "loss_clip") if stage == "clip" else ("loss", "loss_clip", "loss_ce", "loss_reg")
    )
    sums = dict.fromkeys(keys, 0.0)
    t0, seen, n = time.perf_counter(), 0, 0
    for b in bar:
        if step >= total:
            break
        sel = slice(b * bs, (b + 1) * bs)
        spectra, info, labels, targets = _batch(cache, order[sel], views[sel], model)
        out = model(spectra, info)
        clip = grouped_clip_loss(out["spectrum"], out["info"], out["logit_scale"], info)
        parts = {"loss_clip": clip}
        if stage == "clip":
            loss = clip
        else:
            ft: FinetuneConfig = cfg.finetune
            ce = F.cross_entropy(out["logits"], labels, label_smoothing=ft.label_smoothing)
            reg = masked_regression_loss(out["regression"], targets, ft.regression_loss)
            loss = ce + ft.regression_weight * reg + ft.clip_weight * clip
            parts |= {"loss_ce": ce, "loss_reg": reg}
        lr = lr_at(step, total, scfg)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_ratio"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        n += 1
        seen += len(labels)
        value = loss.detach().item()
        sums["loss"] += value
        for k, v in parts.items():
            sums[k] += v.detach().item()
        rate = seen / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{value:.3f}", samples_s=f"{rate:.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    return {
        "stage": stage,
        "epoch": g + 1,
        "stage_epoch": stage_epoch + 1,
        "step": step,
        "seconds": round(seconds, 1),
        "samples_per_s": round(seen / max(seconds, 1e-9), 1),
        "lr": lr_at(step, total, scfg),
        "temperature": float(1 / model.logit_scale.detach().exp()),
        **{k: v / max(n, 1) for k, v in sums.items()},
    }


def load_event_run(run: Path, which: str = "best") -> tuple[EventClip, dict[str, Any]]:
    """The trained model (eval mode) and the checkpoint dict of a run folder.

    Args:
        which: "best" (the weights with the best validation score in stage 2, when there
            are any) or "last".
    """
    ckpt = Path(run) / CHECKPOINT
    if not ckpt.exists():
        raise EventRunError(f"{run} has no {CHECKPOINT}; train first (seislens train events)")
    if which not in ("best", "last"):
        raise ValueError(f"which is {which!r}; expected 'best' or 'last'")
    state = torch.load(ckpt, weights_only=False)
    model = build_event_clip(state["config"]["model"])
    weights = state["model"]
    if which == "best" and state.get("best"):
        weights = state["best"]["model"]
    model.load_state_dict(weights)
    model.eval()
    return model, state
