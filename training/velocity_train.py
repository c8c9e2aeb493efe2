"""Tri-modal contrastive training of the velocity branch (torch): one stage,
``contrastive``, run by :func:`seislens.training.trainer.run_training`.

The branch's parts: OpenFWI folders → cached preprocessed gathers, velocity-model and
descriptor features (preprocessing statistics fitted on the training data and kept in
the checkpoint); the SeisBind loss (seismic↔velocity and velocity↔descriptor InfoNCE)
on augmented gathers; closed-set recall@k on the held-out rows after every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from seislens.training.trainer import BranchTraining, Stage
from seislens.training.velocity_config import AugmentConfig, VelocityTrainConfig
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


def augment(g: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Additive noise and dead traces on a (B, shots, T', R) batch of features."""
    if cfg.noise_std > 0:
        g = g + cfg.noise_std * torch.randn(g.shape, generator=gen)
    if cfg.dead_trace_prob > 0:
        keep = torch.rand((g.shape[0], g.shape[1], 1, g.shape[3]), generator=gen)
        g = g * (keep >= cfg.dead_trace_prob)
    return g


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
        out["seismic"].append(net.encode_seismic(g).numpy())
        out["velocity"].append(net.encode_velocity(v).numpy())
        out["descriptor"].append(net.encode_descriptor(d).numpy())
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
    return {
        "gallery_size": len(velocity_models),
        "seismic_to_velocity": recall_at_k(e["seismic"], e["velocity"]),
        "velocity_to_descriptor": recall_at_k(e["velocity"], e["descriptor"]),
    }


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
        self.aug_rng = torch.Generator().manual_seed(cfg.seed)
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
        for b in range(len(order) // bs):
            rows = np.sort(order[b * bs : (b + 1) * bs])
            g = torch.from_numpy(np.asarray(self.gathers[rows], np.float32))
            yield (
                augment(g, self.cfg.augment, self.aug_rng),
                torch.from_numpy(self.velocity[rows]),
                torch.from_numpy(self.descriptors[rows]),
            )

    def loss(
        self, net: torch.nn.Module, batch: VelocityBatch, stage: Stage
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.cfg.loss
        return trimodal_loss(net(*batch), w.w_seismic_velocity, w.w_velocity_descriptor)

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
            "aug_rng": self.aug_rng.get_state(),
            "preprocessing": self.pre.model_dump(),
            "provenance": self.provenance,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.aug_rng.set_state(state["aug_rng"])
