"""Training losses of both branches (torch): contrastive InfoNCE and masked regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between two batches of L2-normalised embeddings.

    Args:
        a: (B, D) embeddings of one modality; row i pairs with row i of ``b``.
        b: (B, D) embeddings of the other modality.
        logit_scale: scalar, the inverse temperature (already exponentiated).

    Returns:
        Scalar: the mean of the a→b and b→a cross-entropies over the B×B logits.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (B, D) batches of one shape; got {a.shape}, {b.shape}")
    logits = logit_scale * a @ b.T
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (constant dropped) of (B, n) targets."""
    return 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var)).mean()


def trimodal_loss(
    features: dict[str, torch.Tensor],
    w_seismic_velocity: float,
    w_velocity_descriptor: float,
    descriptors: torch.Tensor | None = None,
    w_descriptor_head: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SeisBind's weighted sum: seismic↔velocity and velocity↔descriptor InfoNCE, plus
    the descriptor head's Gaussian NLL against the (B, 9) standardised ``descriptors``
    when the features carry a head's output and ``w_descriptor_head`` > 0."""
    scale = features["logit_scale"]
    sv = clip_loss(features["seismic"], features["velocity"], scale)
    vd = clip_loss(features["velocity"], features["descriptor"], scale)
    total = w_seismic_velocity * sv + w_velocity_descriptor * vd
    parts = {"loss_sv": float(sv.detach()), "loss_vd": float(vd.detach())}
    if "descriptor_mean" in features and descriptors is not None and w_descriptor_head > 0:
        mean, log_var = features["descriptor_mean"], features["descriptor_log_var"]
        head = gaussian_nll(mean, log_var, descriptors)
        total = total + w_descriptor_head * head
        parts["loss_head"] = float(head.detach())
    return total, {"loss": float(total.detach()), **parts}


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
