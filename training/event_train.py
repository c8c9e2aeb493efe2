"""Two-stage training of the event branch (torch), run by
:func:`seislens.training.trainer.run_training`.

Stage 1 (``clip``): SeisCLIP's contrastive alignment of the spectrum and info encoders
(symmetric InfoNCE with a learnable temperature; traces with identical info vectors —
every noise trace has none — share their targets instead of counting as negatives).
Stage 2 (``finetune``): the event-type classifier (cross-entropy) and the
distance/depth/magnitude regressor (Huber or MSE on standardised targets, masked where a
target is missing, e.g. for noise) on the spectrum encoder, which is fine-tuned at a
reduced rate with the contrastive term kept so the two embeddings stay aligned. The
fine-tuning epoch with the best validation macro-F1 gives the best weights.

Training reads views of every trace from the cache of :mod:`seislens.training.event_cache`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGET_UNITS as TARGET_UNITS
from seislens.models.contract import EVENT_TARGETS as TARGETS
from seislens.models.event_encoders import EventClip, build_event_clip
from seislens.training.event_cache import ViewCache, dataset_fingerprint, load_view_cache
from seislens.training.event_config import EventTrainConfig
from seislens.training.event_metrics import classification_report, regression_mae
from seislens.training.losses import grouped_clip_loss, masked_regression_loss
from seislens.training.metrics import recall_at_k
from seislens.training.trainer import BranchTraining, Stage

NOISE = CLASSES.index("noise")

EventBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""Spectra (B, 3, 50, 120), info vectors (B, 8), class indices (B,) and targets (B, 3)
in physical units (NaN where missing)."""


def _no_decay(name: str, p: torch.nn.Parameter) -> bool:
    return p.ndim < 2 or name.endswith(("pos_embed", "cls_token", "logit_scale"))


def stage_optimizer(net: EventClip, stage: Stage, encoder_lr_ratio: float) -> torch.optim.AdamW:
    """AdamW over the stage's parameters (``clip``: the encoders; ``finetune``: the heads
    and, at ``encoder_lr_ratio`` of their lr, the encoders); no weight decay on norms,
    biases, positions and the temperature. Each group carries ``lr_ratio``."""
    groups: list[dict[str, Any]] = []
    for is_head in (True, False):
        if stage.name == "clip" and is_head:
            continue
        ratio = 1.0 if (is_head or stage.name == "clip") else encoder_lr_ratio
        named = [(n, p) for n, p in net.named_parameters() if n.startswith("heads.") == is_head]
        for decay in (True, False):
            params = [p for n, p in named if _no_decay(n, p) != decay]
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr_ratio": ratio,
                        "weight_decay": stage.optim.weight_decay if decay else 0.0,
                    }
                )
    return torch.optim.AdamW(groups, lr=0.0)


def target_stats(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (at least 1e-3) of (N, 3) targets over finite entries."""
    mean = np.zeros(targets.shape[1], np.float32)
    std = np.ones(targets.shape[1], np.float32)
    for j in range(targets.shape[1]):
        col = targets[:, j][np.isfinite(targets[:, j])]
        if col.size:
            mean[j] = col.mean()
            std[j] = max(float(col.std()), 1e-3)
    return mean, std


def _batch(cache: ViewCache, rows: np.ndarray, views: np.ndarray) -> EventBatch:
    order = np.argsort(rows, kind="stable")  # sorted reads from the memory map
    rows, views = rows[order], views[order]
    spectra = torch.from_numpy(np.asarray(cache.spectra[rows, views], np.float32))
    info = torch.from_numpy(cache.info[rows, views])
    labels = torch.from_numpy(cache.labels[rows])
    targets = torch.from_numpy(cache.targets[rows])
    return spectra, info, labels, targets


@torch.no_grad()
def predict_views(
    net: EventClip, cache: ViewCache, rows: np.ndarray, view: int, batch: int = 256
) -> dict[str, np.ndarray]:
    """Embeddings, logits and physical regression of cached rows seen through one view."""
    net.eval()
    out: dict[str, list[np.ndarray]] = {"spectrum": [], "info": [], "logits": [], "reg": []}
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch]
        x = torch.from_numpy(np.asarray(cache.spectra[r, view], np.float32))
        features = net.spectrum(x)
        logits, reg = net.heads(features)
        out["spectrum"].append(F.normalize(features, dim=-1).numpy())
        out["info"].append(net.encode_info(torch.from_numpy(cache.info[r, view])).numpy())
        out["logits"].append(logits.numpy())
        out["reg"].append((reg * net.target_std + net.target_mean).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def validate(net: EventClip, cache: ViewCache, rows: np.ndarray, stage: str) -> dict[str, Any]:
    """Validation metrics: alignment after stage 1, classification and regression after 2
    (``score``: the mean macro-F1 of the catalogued and automatic windows)."""
    names = cache.meta["views"]
    labels = cache.labels[rows]
    first = predict_views(net, cache, rows, 0)
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
        pred = first if v == 0 else predict_views(net, cache, rows, v)
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


def _per_class(labels: np.ndarray) -> dict[str, int]:
    return {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)}


class EventTraining(BranchTraining[EventTrainConfig]):
    """The event branch's hooks of the trainer."""

    branch = "events"
    config_class = EventTrainConfig
    network_builder = staticmethod(build_event_clip)
    selecting_stages = frozenset({"finetune"})
    item = "trace"

    def prepare(self, state: dict[str, Any] | None) -> None:
        cfg = self.cfg
        self.cache = load_view_cache(cfg, self.cache_dir, self.progress)
        self.train_rows = self.cache.rows(cfg.data.train_split)
        self.val_rows = self.cache.rows(cfg.data.val_split)
        folder = Path(cfg.data.folder)
        self.provenance = {
            "folder": str(folder.resolve()),
            "dataset": dataset_fingerprint(folder),
            "cache": self.cache.meta,
            "train_traces": len(self.train_rows),
            "val_traces": len(self.val_rows),
            "train_per_class": _per_class(self.cache.labels[self.train_rows]),
        }

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    def build_network(self) -> torch.nn.Module:
        net = build_event_clip(self.cfg.model)
        mean, std = target_stats(self.cache.targets[self.train_rows])
        net.set_target_stats(torch.from_numpy(mean), torch.from_numpy(std))
        return net

    def optimizer(self, net: torch.nn.Module, stage: Stage) -> torch.optim.Optimizer:
        return stage_optimizer(net, stage, self.cfg.finetune.encoder_lr_ratio)

    def batches(self, stage: Stage, epoch: int) -> Iterator[EventBatch]:
        rng = np.random.default_rng([self.cfg.seed, 11, epoch])
        order = self.train_rows[rng.permutation(len(self.train_rows))]
        views = rng.integers(self.cache.n_views, size=len(order))
        bs = stage.optim.batch_size
        for b in range(len(order) // bs):
            sel = slice(b * bs, (b + 1) * bs)
            yield _batch(self.cache, order[sel], views[sel])

    def loss(
        self, net: torch.nn.Module, batch: EventBatch, stage: Stage
    ) -> tuple[torch.Tensor, dict[str, float]]:
        spectra, info, labels, targets = batch
        standard = (targets - net.target_mean) / net.target_std
        out = net(spectra, info)
        clip = grouped_clip_loss(out["spectrum"], out["info"], out["logit_scale"], info)
        if stage.name == "clip":
            return clip, {"loss": clip.detach().item(), "loss_clip": clip.detach().item()}
        ft = self.cfg.finetune
        ce = F.cross_entropy(out["logits"], labels, label_smoothing=ft.label_smoothing)
        reg = masked_regression_loss(out["regression"], standard, ft.regression_loss)
        loss = ce + ft.regression_weight * reg + ft.clip_weight * clip
        parts = {"loss": loss, "loss_clip": clip, "loss_ce": ce, "loss_reg": reg}
        return loss, {k: v.detach().item() for k, v in parts.items()}

    def validate(self, net: torch.nn.Module, stage: Stage) -> dict[str, Any] | None:
        if not len(self.val_rows):
            return None
        return validate(net, self.cache, self.val_rows, stage.name)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"provenance": self.provenance}
