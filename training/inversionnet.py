"""An InversionNet-style baseline: an encoder–decoder that regresses the velocity model.

After Wu & Lin's InversionNet (OpenFWI's reference baseline): convolutions shrink the
(shots, T', receivers) gather to a latent vector, transposed convolutions grow it into
a (1, 70, 70) model in OpenFWI's [-1, 1] units, trained with an L1 loss. It takes the
same preprocessed gathers as SeisLens and is trained on the same split under a
wall-clock budget, for the comparison in ``bench/velocity_quality.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seislens.models.contract import N_RECEIVERS
from torch import nn
from tqdm import tqdm


def _conv(c_in: int, c_out: int, stride: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class InversionNet(nn.Module):
    """(B, shots, T', R) preprocessed gathers → (B, 1, 70, 70) models in [-1, 1]."""

    def __init__(
        self,
        shots: int = 5,
        time_samples: int = 125,
        receivers: int = N_RECEIVERS,
        width: int = 16,
        latent: int = 256,
    ):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _conv(shots, w, (2, 1)),
            _conv(w, w, (1, 1)),
            _conv(w, 2 * w, (2, 2)),
            _conv(2 * w, 2 * w, (1, 1)),
            _conv(2 * w, 4 * w, (2, 2)),
            _conv(4 * w, 4 * w, (2, 2)),
            _conv(4 * w, 8 * w, (2, 2)),
        )
        with torch.no_grad():
            n = self.encoder(torch.zeros(1, shots, time_samples, receivers)).numel()
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(n, latent), nn.LeakyReLU(0.2))
        self.from_latent = nn.Linear(latent, 8 * w * 5 * 5)
        self.decoder = nn.Sequential(
            _up(8 * w, 4 * w), _up(4 * w, 2 * w), _up(2 * w, w), _up(w, w)
        )  # 5 → 80
        self.out = nn.Conv2d(w, 1, 3, padding=1)
        self.width = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.from_latent(self.to_latent(self.encoder(x)))
        y = self.decoder(z.view(-1, 8 * self.width, 5, 5))
        return torch.tanh(self.out(y[:, :, 5:75, 5:75]))


def train_inversionnet(
    feats: np.ndarray,
    targets: np.ndarray,
    run: Path,
    budget_s: float,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> InversionNet:
    """Train under a wall-clock budget (resumable); returns the model in eval mode.

    Args:
        feats: (N, shots, T', R) preprocessed gathers (float16 or float32).
        targets: (N, 1, 70, 70) models in [-1, 1].
        run: folder for ``checkpoint.pt`` and ``metrics.jsonl``.
        budget_s: total training seconds across resumptions.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    run.mkdir(parents=True, exist_ok=True)
    model = InversionNet(feats.shape[1], feats.shape[2], feats.shape[3])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    ckpt = run / "checkpoint.pt"
    spent, epoch = 0.0, 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        spent, epoch = state["spent_s"], state["epoch"]
    steps = len(feats) // batch_size
    while spent < budget_s:
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(feats))
        t0, total = time.perf_counter(), 0.0
        bar = tqdm(range(steps), desc=f"inversionnet epoch {epoch + 1}", disable=not progress)
        for b in bar:
            rows = np.sort(order[b * batch_size : (b + 1) * batch_size])
            x = torch.from_numpy(np.asarray(feats[rows], np.float32))
            y = torch.from_numpy(np.asarray(targets[rows], np.float32))
            loss = nn.functional.l1_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss)
            bar.set_postfix(l1=f"{float(loss):.4f}")
            if spent + time.perf_counter() - t0 > budget_s:
                break
        spent += time.perf_counter() - t0
        epoch += 1
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write(
                json.dumps(
                    {"epoch": epoch, "l1": total / max(1, b + 1), "spent_s": round(spent, 1)}
                )
                + "\n"
            )
        tmp = ckpt.with_name("checkpoint.pt.tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "spent_s": spent,
                "epoch": epoch,
            },
            tmp,
        )
        os.replace(tmp, ckpt)
    model.eval()
    return model


@torch.no_grad()
def predict(model: InversionNet, feats: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, 70, 70) predicted models in [-1, 1]."""
    model.eval()
    out = [
        model(torch.from_numpy(np.asarray(feats[s : s + batch], np.float32)))[:, 0].numpy()
        for s in range(0, len(feats), batch)
    ]
    return np.concatenate(out)


def describe(model: InversionNet) -> dict[str, Any]:
    """Parameter count, for the report."""
    return {"parameters": sum(p.numel() for p in model.parameters())}
