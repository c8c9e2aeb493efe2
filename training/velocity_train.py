"""Tri-modal contrastive training of the velocity branch (torch): one stage,
``contrastive``, run by :func:`seislens.training.trainer.run_training`.

The branch's parts: OpenFWI folders → cached preprocessed gathers, velocity-model and
descriptor features (preprocessing statistics fitted on the training data and kept in
the checkpoint); the SeisBind loss (seismic↔velocity and velocity↔descriptor InfoNCE)
on gathers augmented afresh every batch (``seislens.training.velocity_augment``,
prepared ahead by ``augment_workers`` processes), plus the descriptor head's Gaussian
NLL when the network has one; closed-set recall@k (and the head's descriptor error)
on the held-out rows after every epoch.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.models.descriptors import relative_errors
from seislens.models.velocity_encoders import VelocityClip, build_velocity_clip
from seislens.models.velocity_preprocess import (
    GatherPreprocess,
    Preprocessing,
    descriptor_features,
    velocity_features,
)
from seislens.training.losses import trimodal_loss
from seislens.training.metrics import recall_at_k
from seislens.training.trainer import BranchTraining, Stage
from seislens.training.velocity_augment import AugmentConfig, augment_features
from seislens.training.velocity_config import VelocityTrainConfig
from seislens.training.velocity_data import (
    collect_arrays,
    expand_folders,
    fit_stats,
    gather_feature_cache,
    open_datasets,
    split_rows,
)

VelocityBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""Augmented gather features (B, shots, T', R), velocity features (B, 1, 70, 70) in
[-1, 1] and standardised descriptors (B, 9)."""


def augmented_batch(
    cache: str | Path | np.ndarray,
    rows: np.ndarray,
    aug: AugmentConfig,
    pre: GatherPreprocess,
    seed: tuple[int, ...],
) -> np.ndarray:
    """Augmented features (B, shots, T', R) of cache ``rows``; draws seeded by ``seed``
    (run seed, epoch, batch), so a batch is the same wherever and whenever it is made."""
    feats = np.load(cache, mmap_mode="r") if isinstance(cache, str | Path) else cache
    block = np.asarray(feats[rows], np.float32)
    return augment_features(block, aug, pre, np.random.default_rng(list(seed)))


def _worker_init() -> None:
    torch.set_num_threads(1)


def _batch_task(task: tuple[Any, ...]) -> np.ndarray:
    cache, rows, aug, pre, seed = task
    return augmented_batch(cache, rows, AugmentConfig(**aug), GatherPreprocess(**pre), seed)


@torch.no_grad()
def embed_arrays(
    net: VelocityClip,
    gathers: np.ndarray,
    velocity_models: np.ndarray,
    descriptors: np.ndarray,
    pre: Preprocessing,
    batch: int = 256,
) -> dict[str, np.ndarray]:
    """Embeddings (N, D) of preprocessed gathers (N, shots, T', R), velocity models
    (N, 70, 70) in m/s and raw descriptors (N, 9)."""
    net.eval()
    out: dict[str, list[np.ndarray]] = {"seismic": [], "velocity": [], "descriptor": []}
    for s in range(0, len(velocity_models), batch):
        g = torch.from_numpy(np.asarray(gathers[s : s + batch], np.float32))
        v = torch.from_numpy(velocity_features(velocity_models[s : s + batch], pre.velocity))
        d = torch.from_numpy(descriptor_features(descriptors[s : s + batch], pre.descriptors))
        seismic = net.encode_seismic(g)
        out["seismic"].append(seismic.numpy())
        out["velocity"].append(net.encode_velocity(v).numpy())
        out["descriptor"].append(net.encode_descriptor(d).numpy())
        if net.head is not None:
            out.setdefault("head_mean", []).append(net.head(seismic)[0].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_split(
    net: VelocityClip,
    gathers: np.ndarray,
    velocity_models: np.ndarray,
    descriptors: np.ndarray,
    pre: Preprocessing,
) -> dict[str, Any]:
    """Closed-set recall@k over one split (the split is its own gallery)."""
    e = embed_arrays(net, gathers, velocity_models, descriptors, pre)
    out: dict[str, Any] = {
        "gallery_size": len(velocity_models),
        "seismic_to_velocity": recall_at_k(e["seismic"], e["velocity"]),
        "velocity_to_descriptor": recall_at_k(e["velocity"], e["descriptor"]),
    }
    if "head_mean" in e:
        d = pre.descriptors
        pred = e["head_mean"] * np.asarray(d.std) + np.asarray(d.mean)
        out["descriptor_head_mre"] = float(relative_errors(pred, descriptors).mean())
    return out


class VelocityTraining(BranchTraining[VelocityTrainConfig]):
    """The velocity branch's hooks of the trainer."""

    branch = "velocity"
    config_class = VelocityTrainConfig
    network_builder = staticmethod(build_velocity_clip)
    item = "sample"

    def prepare(self, state: dict[str, Any] | None) -> None:
        cfg = self.cfg
        self.datasets = open_datasets(expand_folders(cfg.data.train))
        self.arrays = collect_arrays(self.datasets, cfg.data.max_per_folder)
        self.pre = (
            Preprocessing.model_validate(state["preprocessing"])
            if state
            else fit_stats(self.datasets, self.arrays, cfg.preprocess, cfg.seed)
        )
        self.gathers = gather_feature_cache(
            self.datasets, cfg.data.max_per_folder, self.pre.gather, self.cache_dir, self.progress
        )
        self.train_rows, self.val_rows = split_rows(
            self.arrays.families, cfg.data.val_fraction, cfg.seed
        )
        self.velocity = velocity_features(self.arrays.velocity_models, self.pre.velocity)
        self.descriptors = descriptor_features(self.arrays.descriptors, self.pre.descriptors)
        self.provenance = {
            "folders": [str(f) for f in self.arrays.folders],
            "manifests": [d.manifest for d in self.datasets],
            "train_samples": len(self.train_rows),
            "val_samples": len(self.val_rows),
        }

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    def optimizer(self, net: torch.nn.Module, stage: Stage) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            net.parameters(), lr=stage.optim.lr, weight_decay=stage.optim.weight_decay
        )

    def batches(self, stage: Stage, epoch: int) -> Iterator[VelocityBatch]:
        bs = stage.optim.batch_size
        order = self.train_rows[
            np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.train_rows))
        ]
        plan = [np.sort(order[b * bs : (b + 1) * bs]) for b in range(len(order) // bs)]
        for rows, g in zip(plan, self._augmented(plan, epoch), strict=True):
            yield (
                torch.from_numpy(g),
                torch.from_numpy(self.velocity[rows]),
                torch.from_numpy(self.descriptors[rows]),
            )

    def _augmented(self, plan: list[np.ndarray], epoch: int) -> Iterator[np.ndarray]:
        """Augmented gathers of each batch of ``plan``, made ahead by worker processes
        when ``augment_workers`` > 0 (two batches in flight per worker)."""
        cfg = self.cfg
        seeds = [(cfg.seed, epoch, b) for b in range(len(plan))]
        workers = cfg.augment_workers
        cache = getattr(self.gathers, "filename", None)
        if workers == 0 or cache is None:
            for rows, seed in zip(plan, seeds, strict=True):
                yield augmented_batch(self.gathers, rows, cfg.augment, self.pre.gather, seed)
            return
        aug, pre = cfg.augment.model_dump(), self.pre.gather.model_dump()
        tasks = [(cache, rows, aug, pre, seed) for rows, seed in zip(plan, seeds, strict=True)]
        with mp.get_context("spawn").Pool(workers, _worker_init) as pool:
            inflight: deque[Any] = deque()
            for task in tasks:
                inflight.append(pool.apply_async(_batch_task, (task,)))
                if len(inflight) >= 2 * workers:
                    yield inflight.popleft().get()
            while inflight:
                yield inflight.popleft().get()

    def loss(
        self, net: torch.nn.Module, batch: VelocityBatch, stage: Stage
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.cfg.loss
        return trimodal_loss(
            net(*batch),
            w.w_seismic_velocity,
            w.w_velocity_descriptor,
            descriptors=batch[2],
            w_descriptor_head=w.w_descriptor_head,
        )

    def validate(self, net: torch.nn.Module, stage: Stage) -> dict[str, Any] | None:
        rows = self.val_rows
        if not len(rows):
            return None
        a = self.arrays
        return evaluate_split(
            net, self.gathers[rows], a.velocity_models[rows], a.descriptors[rows], self.pre
        )

    def checkpoint_extras(self) -> dict[str, Any]:
        return {
            "preprocessing": self.pre.model_dump(),
            "provenance": self.provenance,
        }
