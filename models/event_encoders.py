"""Encoders and heads of the event branch (torch; imported by training and export only).

SeisCLIP's two encoders, ending in L2-normalised ``embed_dim`` vectors:

* :class:`SpectrumEncoder` — a small ViT over the (3, 50, 120) time–frequency spectrum of
  :func:`seislens.models.event_preprocess.waveform_to_spectrum`: optionally the log of
  the magnitude, overlapping 16×16 patches (a ``Conv2d`` with kernel ``patch`` and stride
  ``patch_stride`` < ``patch``; 5 × 14 = 70 patches at the defaults), a CLS token, learned
  positions, ``depth`` pre-norm transformer blocks, and a linear projection of the CLS
  token;
* :class:`InfoEncoder` — an MLP over SeisCLIP's 8 phase/source fields (raw units, in the
  order of ``seislens.data.event_dataset.INFO_FIELDS``), divided by ``scales`` inside
  the model so callers pass the fields as catalogued.

:class:`EventHeads` read the spectrum encoder's unnormalised features: an event-type
classifier (``CLASSES`` order: earthquake, explosion, surface, noise) and a regressor of
distance (km), depth (km) and magnitude, trained on standardised targets; the model
keeps the targets' mean and standard deviation as buffers so that
:class:`EventHeadsExport` returns physical units. Architecture hyper-parameters are data
(:class:`EventClipConfig`), not code.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from seislens.models.contract import EVENT_CLASSES
from seislens.models.contract import EVENT_TARGETS as TARGETS
from seislens.models.contract import INFO_SCALES as SEISCLIP_INFO_SCALES
from torch import nn

N_CLASSES = len(EVENT_CLASSES)


class SpectrumEncoderConfig(BaseModel):
    """The spectrum ViT. At the defaults: 70 overlapping patches, ~0.6 M parameters."""

    model_config = ConfigDict(extra="forbid")

    in_channels: int = Field(3, gt=0)
    freq_bins: int = Field(50, gt=0)
    time_frames: int = Field(120, gt=0)
    patch: int = Field(16, gt=0, description="square patch side (SeisCLIP: 16)")
    patch_stride: int = Field(8, gt=0, description="< patch: overlapping patches")
    width: int = Field(128, gt=0, description="token dimension")
    depth: int = Field(4, gt=0, description="transformer blocks")
    heads: int = Field(4, gt=0, description="attention heads; must divide width")
    mlp_ratio: float = Field(2.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    log_input: bool = Field(True, description="log(spectrum + log_eps) inside the model")
    log_eps: float = Field(1e-4, gt=0)
    input_shift: float = Field(-4.0, description="subtracted after the log")
    input_scale: float = Field(2.0, gt=0, description="divides after the shift")
    pool: Literal["cls", "cls_mean"] = Field(
        "cls", description="features from the CLS token, or CLS beside the mean patch token"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SpectrumEncoderConfig:
        if self.width % self.heads:
            raise ValueError(f"spectrum.heads ({self.heads}) must divide width ({self.width})")
        if self.patch > min(self.freq_bins, self.time_frames):
            raise ValueError(
                f"spectrum.patch ({self.patch}) is larger than the "
                f"{self.freq_bins}×{self.time_frames} spectrum"
            )
        if self.patch_stride > self.patch:
            raise ValueError(
                f"spectrum.patch_stride ({self.patch_stride}) exceeds patch ({self.patch}): "
                "patches would leave gaps; use a stride <= patch (< patch overlaps them)"
            )
        return self

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along frequency and time."""
        f = (self.freq_bins - self.patch) // self.patch_stride + 1
        t = (self.time_frames - self.patch) // self.patch_stride + 1
        return f, t

    @property
    def n_patches(self) -> int:
        f, t = self.grid
        return f * t


class InfoEncoderConfig(BaseModel):
    """The info MLP."""

    model_config = ConfigDict(extra="forbid")

    n_fields: int = Field(8, gt=0)
    scales: list[float] = Field(
        default_factory=lambda: list(SEISCLIP_INFO_SCALES),
        description="each field is divided by its scale (SeisCLIP's normalisation)",
    )
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _scales(self) -> InfoEncoderConfig:
        if len(self.scales) != self.n_fields:
            raise ValueError(
                f"info.scales has {len(self.scales)} values for {self.n_fields} fields"
            )
        if any(s <= 0 for s in self.scales):
            raise ValueError(f"info.scales must be positive; got {self.scales}")
        return self


class HeadsConfig(BaseModel):
    """Classifier and regressor MLPs on the spectrum features."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class EventClipConfig(BaseModel):
    """The two encoders, the heads and the shared embedding."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = Field(256, gt=0)
    init_temperature: float = Field(0.07, gt=0, lt=1)
    n_classes: int = Field(N_CLASSES, ge=2)
    spectrum: SpectrumEncoderConfig = SpectrumEncoderConfig()
    info: InfoEncoderConfig = InfoEncoderConfig()
    heads: HeadsConfig = HeadsConfig()


class Attention(nn.Module):
    """Multi-head self-attention written with plain ops (exports cleanly to ONNX)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)
        self.scale = (width // heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(-1, n, c)
        return self.drop(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        hidden = round(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpectrumEncoder(nn.Module):
    """(B, 3, 50, 120) spectra → (B, embed_dim) unnormalised features."""

    def __init__(self, cfg: SpectrumEncoderConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.width, cfg.patch, stride=cfg.patch_stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.width))
        self.blocks = nn.Sequential(
            *(Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        )
        self.norm = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width * (2 if cfg.pool == "cls_mean" else 1), embed_dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, n_patches, width) of a batch of spectra."""
        c = self.cfg
        if c.log_input:
            x = (torch.log(x + c.log_eps) - c.input_shift) / c.input_scale
        return self.patch_embed(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        cls = self.cls_token.expand(t.shape[0], -1, -1)
        t = torch.cat([cls, t], dim=1) + self.pos_embed
        t = self.norm(self.blocks(t))
        if self.cfg.pool == "cls_mean":
            return self.proj(torch.cat([t[:, 0], t[:, 1:].mean(dim=1)], dim=-1))
        return self.proj(t[:, 0])


class InfoEncoder(nn.Module):
    """(B, 8) raw info fields → (B, embed_dim) unnormalised features."""

    def __init__(self, cfg: InfoEncoderConfig, embed_dim: int):
        super().__init__()
        self.register_buffer("scales", torch.tensor(cfg.scales, dtype=torch.float32))
        layers: list[nn.Module] = []
        c = cfg.n_fields
        for h in cfg.hidden:
            layers += [nn.Linear(c, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(cfg.dropout)]
            c = h
        layers.append(nn.Linear(c, embed_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / self.scales)


def _mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(n_in),
        nn.Linear(n_in, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_out),
    )


class EventHeads(nn.Module):
    """Class logits (B, n_classes) and standardised targets (B, 3) from spectrum features."""

    def __init__(self, cfg: HeadsConfig, embed_dim: int, n_classes: int):
        super().__init__()
        self.classifier = _mlp(embed_dim, cfg.hidden, n_classes, cfg.dropout)
        self.regressor = _mlp(embed_dim, cfg.hidden, len(TARGETS), cfg.dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(features), self.regressor(features)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class EventClip(nn.Module):
    """Spectrum and info encoders, heads, a learnable temperature and the target scaling.

    The loss lives in training. ``target_mean`` and ``target_std`` (buffers, (3,)) map
    standardised regressor outputs to physical units (set them from the training data
    with :meth:`set_target_stats`).
    """

    def __init__(self, cfg: EventClipConfig):
        super().__init__()
        self.cfg = cfg
        self.spectrum = SpectrumEncoder(cfg.spectrum, cfg.embed_dim)
        self.info = InfoEncoder(cfg.info, cfg.embed_dim)
        self.heads = EventHeads(cfg.heads, cfg.embed_dim, cfg.n_classes)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))
        self.register_buffer("target_mean", torch.zeros(len(TARGETS)))
        self.register_buffer("target_std", torch.ones(len(TARGETS)))

    def set_target_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Record the training targets' mean and standard deviation (3,) each."""
        self.target_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.target_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def encode_spectrum(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        y = self.spectrum(x)
        return F.normalize(y, dim=-1) if normalize else y

    def encode_info(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        y = self.info(x)
        return F.normalize(y, dim=-1) if normalize else y

    def predict(self, spectra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (B, C) and standardised regression (B, 3) of a batch of spectra."""
        return self.heads(self.spectrum(spectra))

    def forward(self, spectra: torch.Tensor, info: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised features of both modalities, head outputs and ``logit_scale.exp()``
        (clamped at 100)."""
        features = self.spectrum(spectra)
        logits, regression = self.heads(features)
        return {
            "spectrum": F.normalize(features, dim=-1),
            "info": self.encode_info(info),
            "logits": logits,
            "regression": regression,
            "logit_scale": self.logit_scale.exp().clamp(max=100.0),
        }


class NormalizedSpectrum(nn.Module):
    """What is exported as ``event_spectrum.onnx``: spectra → unit embeddings."""

    def __init__(self, model: EventClip):
        super().__init__()
        self.spectrum = model.spectrum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.spectrum(x), dim=-1)


class NormalizedInfo(nn.Module):
    """What is exported as ``event_info.onnx``: raw info fields → unit embeddings."""

    def __init__(self, model: EventClip):
        super().__init__()
        self.info = model.info

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.info(x), dim=-1)


class EventHeadsExport(nn.Module):
    """What is exported as ``event_heads.onnx``: spectra → logits, probabilities and
    distance (km), depth (km), magnitude, each (B,), de-standardised inside the graph."""

    OUTPUTS: tuple[str, ...] = ("logits", "probabilities", *TARGETS)

    def __init__(self, model: EventClip):
        super().__init__()
        self.spectrum = model.spectrum
        self.heads = model.heads
        self.register_buffer("mean", model.target_mean.detach().clone())
        self.register_buffer("std", model.target_std.detach().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, reg = self.heads(self.spectrum(x))
        phys = reg * self.std + self.mean
        return logits, torch.softmax(logits, dim=-1), phys[:, 0], phys[:, 1], phys[:, 2]


def build_event_clip(cfg: EventClipConfig | dict) -> EventClip:
    """Factory: an :class:`EventClip` from a config object or a plain dict."""
    if isinstance(cfg, dict):
        cfg = EventClipConfig.model_validate(cfg)
    return EventClip(cfg)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
