"""Evaluation of a velocity bundle on an OpenFWI-format folder (ONNX, no torch needed).

Closed set (SeisBind's protocol): every sample of the evaluation folders is a query
and the gallery holds their own velocity models (descriptors); a query is right when
its own model ranks in the top k. Per-family figures use the pooled gallery.

Open set (the real use): the truth is not in the library. Each gather's embedding
searches the bundle's library (models it was never trained to match); descriptors
are the similarity-weighted mean of the top-5 neighbours' descriptors, scored as mean
relative error; the estimated velocity model is the top-1 neighbour and the
similarity-weighted mean of the top-k, scored as MAE and SSIM in OpenFWI's
normalised [-1, 1] units. The weighted means are the served estimator's
(:func:`seislens.models.estimation.neighbour_estimate`).

The caller opens the bundle (``seislens.pipeline.evaluate``) and passes the velocity
embedder and the library (any :class:`~seislens.models.library_view.LibraryView`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from seislens.data.openfwi import OpenFWIDataset
from seislens.models.contract import GATHER_SHAPE
from seislens.models.descriptors import DESCRIPTOR_NAMES, relative_errors
from seislens.models.embedders import VelocityEmbedder
from seislens.models.estimation import DEFAULT_TEMPERATURE, neighbour_estimate
from seislens.models.library_view import LibraryView
from seislens.models.velocity_preprocess import VelocityPreprocess, velocity_features
from seislens.training.metrics import cosine_stats, ranks_of_truth, ssim
from seislens.training.velocity_data import expand_folders
from tqdm import tqdm


def embed_gathers_of(
    embedder: VelocityEmbedder, datasets: list[OpenFWIDataset], progress: bool = True
) -> np.ndarray:
    """Embeddings (N, D) of every gather of ``datasets``, in order, 64 at a time."""
    return embed_gathers_with_head_of(embedder, datasets, progress)[0]


def embed_gathers_with_head_of(
    embedder: VelocityEmbedder, datasets: list[OpenFWIDataset], progress: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Embeddings (N, D) of every gather of ``datasets`` and, with a descriptor head,
    its predicted descriptor mean and std (N, 9) in raw units (else None, None)."""
    total = sum(len(d) for d in datasets)
    bar = tqdm(total=total, desc="embedding gathers", unit="gather", disable=not progress)
    parts: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    for ds in datasets:
        for _, block in ds.iter_gathers(batch=64):
            parts.append(embedder.embed_gathers_with_head(block))
            bar.update(len(block))
    bar.close()
    seis = np.concatenate([p[0] for p in parts])
    if parts and parts[0][1] is not None:
        mean = np.concatenate([p[1] for p in parts])  # type: ignore[misc]
        std = np.concatenate([p[2] for p in parts])  # type: ignore[misc]
        return seis, mean, std
    return seis, None, None


def embed_dataset(
    embedder: VelocityEmbedder, datasets: list[OpenFWIDataset], progress: bool = True
) -> dict[str, np.ndarray]:
    """Embeddings (N, D) of every gather, model and descriptor vector, plus raw arrays."""
    seismic = embed_gathers_of(embedder, datasets, progress)
    models = np.concatenate([d.all_models() for d in datasets])
    desc = np.concatenate([d.all_descriptors() for d in datasets])
    fams = np.concatenate([[d.family] * len(d) for d in datasets])
    return {
        "seismic": seismic,
        "velocity": embedder.embed_velocity_models(models),
        "descriptor": embedder.embed_descriptors(desc),
        "models": models,
        "desc": desc,
        "families": fams,
    }


def closed_set(e: dict[str, np.ndarray]) -> dict[str, Any]:
    """Recall@k for seismic→velocity and velocity→descriptor, pooled and per family."""
    s2v = ranks_of_truth(e["seismic"], e["velocity"])
    v2d = ranks_of_truth(e["velocity"], e["descriptor"])
    out: dict[str, Any] = {
        "gallery_size": len(e["models"]),
        "seismic_to_velocity": _summ(s2v, slice(None)),
        "velocity_to_descriptor": _summ(v2d, slice(None)),
        **cosine_stats(e["seismic"], e["velocity"]),
        "per_family": {},
    }
    for fam in sorted(set(e["families"].tolist())):
        rows = e["families"] == fam
        out["per_family"][fam] = {
            "queries": int(rows.sum()),
            "seismic_to_velocity": _summ(s2v, rows),
            "velocity_to_descriptor": _summ(v2d, rows),
        }
    return out


def _summ(ranks: np.ndarray, rows: Any) -> dict[str, float]:
    r = ranks[rows]
    return {f"recall@{k}": float(np.mean(r < k)) for k in (1, 5, 10)}


def open_set_from_neighbours(
    scores: np.ndarray,
    ids: np.ndarray,
    lib_desc: np.ndarray,
    lib_models: np.ndarray,
    true_desc: np.ndarray,
    true_models: np.ndarray,
    k_desc: int = 5,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, Any]:
    """Descriptor MRE and model MAE/SSIM from neighbours (any retrieval method).

    Args:
        scores, ids: (Q, k) similarities and rows into the library arrays, best first.
        lib_desc: (L, 9) library descriptors; lib_models: (L, 70, 70) m/s.
        true_desc: (Q, 9); true_models: (Q, 70, 70) m/s.
        k_desc: neighbours used for descriptors (SeisBind: 5).
        temperature: softmax temperature of the similarity weights (the service's).
    """
    d_mean, d_std = neighbour_estimate(scores[:, :k_desc], ids[:, :k_desc], lib_desc, temperature)
    rel = relative_errors(d_mean, true_desc)
    norm = lambda m: velocity_features(np.asarray(m, np.float32), _VPRE)[:, 0]  # noqa: E731
    truth = norm(true_models)
    top1 = norm(lib_models[ids[:, 0]])
    kmean, _ = neighbour_estimate(scores, ids, norm(lib_models), temperature)
    return {
        "descriptor_mre": float(rel.mean()),
        "descriptor_mre_per_descriptor": {
            n: float(v) for n, v in zip(DESCRIPTOR_NAMES, rel.mean(axis=0), strict=True)
        },
        "descriptor_spread_mean": float(d_std.mean()),
        "model_top1": {
            "mae": float(np.abs(top1 - truth).mean()),
            "ssim": float(ssim(top1, truth).mean()),
        },
        f"model_top{scores.shape[1]}": {
            "mae": float(np.abs(kmean - truth).mean()),
            "ssim": float(ssim(kmean, truth).mean()),
        },
    }


_VPRE = VelocityPreprocess()


def open_set(library: LibraryView, e: dict[str, np.ndarray], k: int = 10) -> dict[str, Any]:
    """Open-set figures of the embedded evaluation set ``e`` (see embed_dataset) against
    ``library``: its ``models`` array (L, 70, 70) m/s and its items' descriptors."""
    k = min(k, len(library))
    scores, ids = library.search(e["seismic"], k)
    lib_desc = library.descriptors(np.arange(len(library)), DESCRIPTOR_NAMES)
    lib_models = np.asarray(library.array("models"), dtype=np.float32)
    return {
        "library_size": len(library),
        **open_set_from_neighbours(scores, ids, lib_desc, lib_models, e["desc"], e["models"]),
    }


def evaluate_velocity(
    embedder: VelocityEmbedder,
    library: LibraryView,
    data: list[Path],
    k: int = 10,
    progress: bool = True,
) -> dict[str, Any]:
    """Closed- and open-set metrics of a bundle's velocity branch on OpenFWI folders.

    Args:
        embedder: the bundle's opened velocity embedder.
        library: the bundle's opened velocity library.
        data: OpenFWI folders (or parents of such folders) to evaluate on.
        k: neighbours of the open-set model estimate.
        progress: a progress bar while embedding.
    """
    datasets = [OpenFWIDataset(f, expect_shape=GATHER_SHAPE) for f in expand_folders(data)]
    e = embed_dataset(embedder, datasets, progress)
    result = closed_set(e)
    result["open_set"] = open_set(library, e, k)
    result["descriptor_mre"] = result["open_set"]["descriptor_mre"]
    return result
