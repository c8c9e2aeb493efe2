"""Retrieval and reconstruction metrics (NumPy)."""

from __future__ import annotations

import numpy as np


def ranks_of_truth(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of gallery item i for query i under cosine similarity.

    Args:
        queries: (N, D) L2-normalised query embeddings.
        gallery: (N, D) L2-normalised gallery embeddings; item i is query i's match.

    Returns:
        (N,) int ranks. Ties count against the truth (a pessimistic rank).
    """
    if queries.shape != gallery.shape:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must match")
    sims = queries @ gallery.T
    truth = np.diag(sims)[:, None]
    return (sims > truth).sum(axis=1) + (sims == truth).sum(axis=1) - 1


def recall_at_k(
    queries: np.ndarray, gallery: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """``{"recall@k": fraction of queries whose match ranks in the top k}``."""
    ranks = ranks_of_truth(queries, gallery)
    return {f"recall@{k}": float(np.mean(ranks < k)) for k in ks}


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean cosine of matched pairs (diagonal) and of unmatched pairs (off-diagonal)."""
    sims = a @ b.T
    n = len(sims)
    pos = float(np.trace(sims) / n)
    neg = float((sims.sum() - np.trace(sims)) / max(n * n - n, 1))
    return {"mean_positive_cosine": pos, "mean_negative_cosine": neg}


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 2.0, win: int = 7) -> np.ndarray:
    """Mean structural similarity of image pairs, (N,), with a uniform ``win``² window.

    Args:
        x, y: (N, H, W) images (velocity models in [-1, 1] have ``data_range`` 2).
    """
    from scipy.ndimage import uniform_filter

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    size = (1, win, win)
    mx, my = uniform_filter(x, size), uniform_filter(y, size)
    vx = uniform_filter(x * x, size) - mx * mx
    vy = uniform_filter(y * y, size) - my * my
    cxy = uniform_filter(x * y, size) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    pad = win // 2
    return s[:, pad:-pad, pad:-pad].mean(axis=(1, 2))
