"""Encoders of the velocity branch (torch; imported by training and export only).

Three encoders end in L2-normalised ``embed_dim`` vectors:

* :class:`SeismicEncoder` — a residual CNN over the preprocessed multi-shot gather
  (B, shots, T', receivers), shots as input channels;
* :class:`VelocityEncoder` — a ResNet-18-style network (four stages of two basic
  blocks) with one input channel over (B, 1, 70, 70) models in [-1, 1];
* :class:`DescriptorEncoder` — an MLP over (B, 9) standardised descriptors;

and an optional :class:`DescriptorHead` reads the gather embedding and predicts the
standardised descriptors with a Gaussian spread (mean and log-variance, (B, 9) each),
so a gather's descriptors need not be those of a library model.

Both CNNs keep where things are: their heads flatten the last feature map instead of
averaging it away, since travel time and depth carry the answer. Architecture
hyper-parameters are data (:class:`VelocityClipConfig`), not code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from seislens.models.contract import N_RECEIVERS, NX
from torch import nn


class SeismicEncoderConfig(BaseModel):
    """Gather CNN: a strided stem then residual stages (one stride-2 block each)."""

    model_config = ConfigDict(extra="forbid")

    shots: int = Field(5, gt=0)
    time_samples: int = Field(125, gt=0, description="T' after decimation")
    receivers: int = Field(N_RECEIVERS, gt=0)
    widths: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    blocks_per_stage: int = Field(1, ge=1)
    stem_time_stride: int = Field(2, ge=1)
    stem_receiver_stride: int = Field(1, ge=1)
    proj_channels: int = Field(32, gt=0, description="1×1 reduction before flattening")
    head_hidden: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class VelocityEncoderConfig(BaseModel):
    """ResNet-18-style velocity CNN."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(NX, gt=0)
    stem_stride: int = Field(2, ge=1, description="stride of the stem convolution")
    widths: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    blocks_per_stage: int = Field(2, ge=1)
    proj_channels: int = Field(32, gt=0, description="1×1 reduction before flattening")
    head_hidden: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class DescriptorEncoderConfig(BaseModel):
    """Descriptor MLP."""

    model_config = ConfigDict(extra="forbid")

    n_descriptors: int = Field(9, gt=0)
    hidden: list[int] = Field(default_factory=lambda: [256, 256])


class DescriptorHeadConfig(BaseModel):
    """MLP from the normalised gather embedding to descriptor mean and log-variance."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class VelocityClipConfig(BaseModel):
    """The three encoders, the shared embedding and the optional descriptor head."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = Field(256, gt=0)
    init_temperature: float = Field(0.07, gt=0, lt=1)
    seismic: SeismicEncoderConfig = SeismicEncoderConfig()
    velocity: VelocityEncoderConfig = VelocityEncoderConfig()
    descriptor: DescriptorEncoderConfig = DescriptorEncoderConfig()
    head: DescriptorHeadConfig | None = Field(
        None, description="descriptor head on the gather embedding (None: none)"
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int] | int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


def _stages(widths: list[int], blocks: int, c_in: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c = c_in
    for i, w in enumerate(widths):
        for b in range(blocks):
            stride = 2 if (b == 0 and i > 0) else 1
            layers.append(BasicBlock(c, w, stride))
            c = w
    return nn.Sequential(*layers), c


def _reduce(c_in: int, c_out: int) -> nn.Sequential:
    """1×1 convolution shrinking channels before the flattening head."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def _head(n_in: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(n_in, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    )


def _flat_size(body: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        was = body.training
        body.eval()
        n = body(torch.zeros(1, *shape)).numel()
        body.train(was)
    return n


class SeismicEncoder(nn.Module):
    """(B, shots, T', receivers) preprocessed gathers → (B, embed_dim)."""

    def __init__(self, cfg: SeismicEncoderConfig, embed_dim: int):
        super().__init__()
        w0 = cfg.widths[0]
        stem = nn.Sequential(
            nn.Conv2d(
                cfg.shots,
                w0,
                (7, 3),
                stride=(cfg.stem_time_stride, cfg.stem_receiver_stride),
                padding=(3, 1),
                bias=False,
            ),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        )
        stages, c = _stages(cfg.widths, cfg.blocks_per_stage, w0)
        self.body = nn.Sequential(stem, stages, _reduce(c, cfg.proj_channels))
        n = _flat_size(self.body, (cfg.shots, cfg.time_samples, cfg.receivers))
        self.head = _head(n, cfg.head_hidden, embed_dim, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class VelocityEncoder(nn.Module):
    """(B, 1, 70, 70) models in [-1, 1] → (B, embed_dim)."""

    def __init__(self, cfg: VelocityEncoderConfig, embed_dim: int):
        super().__init__()
        w0 = cfg.widths[0]
        stem = nn.Sequential(
            nn.Conv2d(1, w0, 3, stride=cfg.stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        )
        stages, c = _stages(cfg.widths, cfg.blocks_per_stage, w0)
        self.body = nn.Sequential(stem, stages, _reduce(c, cfg.proj_channels))
        n = _flat_size(self.body, (1, cfg.size, cfg.size))
        self.head = _head(n, cfg.head_hidden, embed_dim, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class DescriptorEncoder(nn.Module):
    """(B, 9) standardised descriptors → (B, embed_dim)."""

    def __init__(self, cfg: DescriptorEncoderConfig, embed_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = cfg.n_descriptors
        for h in cfg.hidden:
            layers += [nn.Linear(c, h), nn.LayerNorm(h), nn.GELU()]
            c = h
        layers.append(nn.Linear(c, embed_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Normalized(nn.Module):
    """Wrap an encoder so its output is L2-normalised (what gets exported)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x), dim=-1)


class DescriptorHead(nn.Module):
    """(B, D) normalised gather embeddings → (mean, log-variance) of (B, n) standardised
    descriptors; the log-variance is clamped to [-7, 5] (std 0.03 … 12 standard units)."""

    def __init__(self, cfg: DescriptorHeadConfig, embed_dim: int, n_descriptors: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, 2 * n_descriptors),
        )
        self.n = n_descriptors

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(z)
        return out[:, : self.n], out[:, self.n :].clamp(-7.0, 5.0)


class SeismicWithHead(nn.Module):
    """The exported seismic graph of a network with a head: (B, shots, T', R) →
    (normalised embedding (B, D), descriptor mean (B, n), log-variance (B, n))."""

    def __init__(self, seismic: nn.Module, head: DescriptorHead):
        super().__init__()
        self.seismic = seismic
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = F.normalize(self.seismic(x), dim=-1)
        mean, log_var = self.head(z)
        return z, mean, log_var


class VelocityClip(nn.Module):
    """The three encoders, the optional descriptor head and a learnable temperature
    (the loss lives in training)."""

    def __init__(self, cfg: VelocityClipConfig):
        super().__init__()
        self.cfg = cfg
        self.seismic = SeismicEncoder(cfg.seismic, cfg.embed_dim)
        self.velocity = VelocityEncoder(cfg.velocity, cfg.embed_dim)
        self.descriptor = DescriptorEncoder(cfg.descriptor, cfg.embed_dim)
        self.head = (
            DescriptorHead(cfg.head, cfg.embed_dim, cfg.descriptor.n_descriptors)
            if cfg.head
            else None
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def encode_seismic(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        y = self.seismic(x)
        return F.normalize(y, dim=-1) if normalize else y

    def encode_velocity(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        y = self.velocity(x)
        return F.normalize(y, dim=-1) if normalize else y

    def encode_descriptor(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        y = self.descriptor(x)
        return F.normalize(y, dim=-1) if normalize else y

    def forward(
        self, gathers: torch.Tensor, models: torch.Tensor, descriptors: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Normalised features of each modality and ``logit_scale.exp()`` (clamped at 100);
        with a head, also ``descriptor_mean`` and ``descriptor_log_var`` (B, n)."""
        seismic = self.encode_seismic(gathers)
        out = {
            "seismic": seismic,
            "velocity": self.encode_velocity(models),
            "descriptor": self.encode_descriptor(descriptors),
            "logit_scale": self.logit_scale.exp().clamp(max=100.0),
        }
        if self.head is not None:
            out["descriptor_mean"], out["descriptor_log_var"] = self.head(seismic)
        return out


def build_velocity_clip(cfg: VelocityClipConfig | dict) -> VelocityClip:
    """Factory: a :class:`VelocityClip` from a config object or a plain dict."""
    if isinstance(cfg, dict):
        cfg = VelocityClipConfig.model_validate(cfg)
    return VelocityClip(cfg)
