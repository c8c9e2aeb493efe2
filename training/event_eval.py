"""Evaluation of a bundle's event branch on a SeisBench-format folder (ONNX, no torch).

Every trace of the chosen split whose label maps onto ``CLASSES`` (through
``normalize_label``; others are skipped and counted) is cut and transformed by the
serving code path with the bundle's preprocessing settings, then:

* **head** — the exported classifier's arg-max: accuracy, macro-F1, per-class
  precision/recall/F1 and the confusion matrix (counts; rows = truth);
* **k-NN** — a majority vote of the ``k`` (10) most similar events in the bundle's events
  index (cosine on the spectrum embeddings; ties to the larger summed similarity),
  scored the same way; absent when the bundle has no events index;
* **regression** — distance (km), depth (km) and magnitude MAE of the exported
  regressor over the event traces whose metadata holds the value (never noise).

``window="catalog"`` places windows on the catalogued P picks (an upload with a
``p_arrival``); ``"auto"`` ignores them (STA/LTA, else the start: an upload without one).

The caller opens the bundle (``seislens.pipeline.evaluate``) and passes the event
embedder and the events library (any :class:`~seislens.models.library_view.LibraryView`,
or None).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.event_dataset import EventDataset
from seislens.data.event_views import WindowMode, dataset_spectra, event_targets
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGETS as TARGET_NAMES
from seislens.models.event_embedders import EventEmbedder
from seislens.models.library_view import LibraryView
from seislens.models.manifest import ManifestError
from seislens.training.event_metrics import (
    classification_report,
    knn_vote,
    regression_mae,
)
from tqdm import tqdm

__all__ = ["evaluate_events"]

CHUNK = 1024
"""Traces preprocessed and scored at a time."""


def evaluate_events(
    embedder: EventEmbedder,
    library: LibraryView | None,
    data_dir: Path,
    split: str | None = "test",
    k: int = 10,
    window: WindowMode = "catalog",
    max_traces: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a bundle's event branch on one split of a SeisBench-format folder.

    Args:
        embedder: the bundle's opened event embedder.
        library: the bundle's opened events library, or None (no k-NN figures).
        data_dir: a SeisBench-format folder.
        split: "train", "dev", "test", or None for every trace.
        k: neighbours in the k-NN vote.
        window: "catalog" or "auto" (see the module docstring).
        max_traces: evaluate only the first this many labelled traces.
        progress: a progress bar while preprocessing.
    Returns:
        A JSON-ready dict (see the module docstring).
    Raises:
        ValueError: a bad option, or a split without usable labelled traces.
        ManifestError: the embedder's classes are not ``CLASSES``.
    """
    _check_options(embedder, window, k)
    ds = EventDataset(data_dir, split=split)
    labelled = np.flatnonzero(ds.label_ids >= 0)
    if max_traces is not None:
        labelled = labelled[:max_traces]
    t0 = time.perf_counter()
    found = _predict(ds, labelled, embedder, library, k, window, progress)
    if found is None:
        raise ValueError(
            f"{data_dir}: no usable labelled trace in split {split!r} "
            f"({int((ds.label_ids < 0).sum())} with labels outside {list(CLASSES)})"
        )
    rows, head_pred, knn_pred, reg = found
    truth = ds.label_ids[rows]
    head = classification_report(truth, head_pred, CLASSES)
    knn = None
    if knn_pred is not None and library is not None:
        knn = {
            "k": k,
            "library_size": len(library),
            **classification_report(truth, knn_pred, CLASSES),
        }
    seconds = time.perf_counter() - t0
    return {
        "data": str(data_dir),
        "split": split,
        "window": window,
        "classes": list(CLASSES),
        "count": len(rows),
        "skipped_unknown_label": int((ds.label_ids < 0).sum()),
        "refused_by_preprocessing": int(len(labelled) - len(rows)),
        "provider": embedder.provider,
        "accuracy": head["accuracy"],
        "macro_f1": head["macro_f1"],
        "head": head,
        "knn": knn,
        "regression": regression_mae(reg, event_targets(ds)[rows], TARGET_NAMES, embedder.targets),
        "seconds": round(seconds, 2),
        "traces_per_s": round(len(rows) / max(seconds, 1e-9), 1),
    }


def _check_options(embedder: EventEmbedder, window: str, k: int) -> None:
    if window not in ("catalog", "auto"):
        raise ValueError(f"window is {window!r}; expected 'catalog' or 'auto'")
    if k < 1:
        raise ValueError(f"k is {k}; expected k >= 1")
    if tuple(embedder.classes) != CLASSES:
        raise ManifestError(f"event classes {list(embedder.classes)}; expected {list(CLASSES)}")


def _predict(
    ds: EventDataset,
    labelled: np.ndarray,
    embedder: EventEmbedder,
    library: LibraryView | None,
    k: int,
    window: WindowMode,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray] | None:
    """Head and k-NN predictions of the labelled rows preprocessing accepts.

    Returns:
        (rows kept (n,), head classes (n,), k-NN classes (n,) or None without a library,
        regression outputs (n, 3) in ``TARGET_NAMES`` order), or None when no row was
        kept.
    """
    kept, head_pred, knn_pred, reg = [], [], [], []
    bar = tqdm(total=len(labelled), desc="evaluating", unit="trace", disable=not progress)
    try:
        for s in range(0, len(labelled), CHUNK):
            # chunks keep memory flat on large test splits (STEAD's is ~120k traces)
            spectra, _, rows = dataset_spectra(ds, labelled[s : s + CHUNK], embedder.pre, window)
            bar.update(min(CHUNK, len(labelled) - s))
            if not len(rows):
                continue
            probs, values = embedder.classify(spectra)
            kept.append(rows)
            head_pred.append(probs.argmax(axis=1))
            reg.append(np.stack([values[name] for name in TARGET_NAMES], axis=1))
            if library is not None:
                scores, ids = library.search(embedder.embed_spectra(spectra), k)
                knn_pred.append(knn_vote(scores, library.take("labels", ids), len(CLASSES)))
    finally:
        bar.close()
    if not kept:
        return None
    knn = np.concatenate(knn_pred) if knn_pred else None
    return np.concatenate(kept), np.concatenate(head_pred), knn, np.concatenate(reg)
