"""Classification and regression metrics of the event branch (NumPy), and the
confusion-matrix picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must match")
    if y_true.size and (y_true.min() < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 (over classes present in ``y_true``), per-class precision,
    recall, F1 and support, and the confusion matrix (counts)."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    total = int(matrix.sum())
    return {
        "count": total,
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class": {
            c: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, c in enumerate(classes)
        },
        "confusion": matrix.tolist(),
    }


def knn_vote(scores: np.ndarray, neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote of each query's neighbours; ties go to the larger summed similarity.

    Args:
        scores: (Q, k) similarities, best first (-inf where a slot is empty).
        neighbour_labels: (Q, k) class indices of the neighbours (-1 where empty).
    Returns:
        (Q,) int64 predicted classes.
    """
    q = scores.shape[0]
    votes = np.zeros((q, n_classes))
    weight = np.zeros((q, n_classes))
    valid = neighbour_labels >= 0
    rows = np.broadcast_to(np.arange(q)[:, None], neighbour_labels.shape)
    np.add.at(votes, (rows[valid], neighbour_labels[valid]), 1.0)
    np.add.at(weight, (rows[valid], neighbour_labels[valid]), scores[valid])
    return np.argmax(votes + 1e-6 * np.tanh(weight), axis=1).astype(np.int64)


def regression_mae(
    pred: np.ndarray, truth: np.ndarray, names: tuple[str, ...], units: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Mean absolute error per target over the rows where the truth is finite."""
    out = {}
    for j, name in enumerate(names):
        ok = np.isfinite(truth[:, j]) & np.isfinite(pred[:, j])
        err = np.abs(pred[ok, j] - truth[ok, j])
        out[name] = {
            "mae": float(err.mean()) if ok.any() else None,
            "median_abs_error": float(np.median(err)) if ok.any() else None,
            "count": int(ok.sum()),
            "unit": units.get(name, ""),
        }
    return out


def plot_confusion(
    matrix: np.ndarray | list[list[int]],
    classes: tuple[str, ...] | list[str],
    out_png: Path | str,
    title: str = "",
) -> Path:
    """Draw a confusion matrix (counts, with row-normalised shading) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=np.int64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 2.0, 1.1 * len(classes) + 1.6))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                f"{m[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
