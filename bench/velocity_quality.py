"""Velocity-branch quality: SeisLens beside raw-gather nearest neighbour and InversionNet.

    python bench/velocity_quality.py --bundle artifacts/default --train data/train \
        --test data/test --run runs/velocity-default

Prints markdown tables (synthetic data from our generator):

* closed set (SeisBind's protocol) over the held-out gallery, pooled and per family;
* open set: descriptors from the top-5 neighbours (similarity-weighted) as mean
  relative error, and the estimated velocity model (top-1, top-10 weighted) as MAE and
  SSIM in OpenFWI's [-1, 1] units — for SeisLens with the bundle's library and with
  every training model as library, raw-gather nearest neighbour over the training
  gathers, and an InversionNet-style regressor trained on the same split for the same
  wall-clock budget as the SeisLens run (1 thread each).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from seislens.data.openfwi import OpenFWIDataset
from seislens.index.builder import build
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import VELOCITY
from seislens.models.contract import GATHER_SHAPE
from seislens.models.descriptors import DESCRIPTOR_NAMES, compute_descriptors, relative_errors
from seislens.models.embedders import VelocityEmbedder
from seislens.models.velocity_preprocess import (
    GatherPreprocess,
    Preprocessing,
    gather_features,
    velocity_features,
    velocity_from_features,
)
from seislens.training.metrics import ssim
from seislens.training.velocity_data import collect_arrays, expand_folders, gather_feature_cache
from seislens.training.velocity_eval import (
    closed_set,
    embed_dataset,
    open_set,
    open_set_from_neighbours,
)

RAW_NN = GatherPreprocess(decimate=8, log_alpha=1e-6)  # plain per-gather normalisation


def _raw_vectors(feats: np.ndarray) -> np.ndarray:
    """Raw-gather NN features: decimated, every 2nd receiver, L2-normalised (N, F)."""
    x = np.asarray(feats[..., ::2], np.float32).reshape(len(feats), -1)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def _topk(q: np.ndarray, g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = [], []
    for s in range(0, len(q), 100):
        sims = q[s : s + 100] @ g.T
        idx = np.argsort(-sims, axis=1)[:, :k]
        ids.append(idx)
        scores.append(np.take_along_axis(sims, idx, axis=1))
    return np.concatenate(scores), np.concatenate(ids)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _open_row(name: str, r: dict) -> str:
    k = next(key for key in r if key.startswith("model_top") and key != "model_top1")
    return (
        f"| {name} | {_fmt(r['descriptor_mre'])} | {_fmt(r['model_top1']['mae'])} | "
        f"{_fmt(r['model_top1']['ssim'])} | {_fmt(r[k]['mae'])} | {_fmt(r[k]['ssim'])} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    ap.add_argument("--train", type=Path, default=Path("data/train"))
    ap.add_argument("--test", type=Path, default=Path("data/test"))
    ap.add_argument("--run", type=Path, default=Path("runs/velocity-default"))
    ap.add_argument("--inversionnet-run", type=Path, default=Path("runs/inversionnet"))
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="InversionNet budget (default: the SeisLens run's training time)",
    )
    ap.add_argument("--skip-inversionnet", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument(
        "--train-inversionnet-only",
        action="store_true",
        help="train the baseline (resumable) and stop; needs only --run",
    )
    args = ap.parse_args()
    if args.train_inversionnet_only:
        train_ds = [
            OpenFWIDataset(f, expect_shape=GATHER_SHAPE) for f in expand_folders([args.train])
        ]
        _train_baseline(args, train_ds, collect_arrays(train_ds, None))
        return

    manifest = read_manifest(args.bundle)
    emb = VelocityEmbedder(args.bundle, manifest.velocity)
    test_ds = [OpenFWIDataset(f, expect_shape=GATHER_SHAPE) for f in expand_folders([args.test])]
    train_ds = [OpenFWIDataset(f, expect_shape=GATHER_SHAPE) for f in expand_folders([args.train])]
    e = embed_dataset(emb, test_ds)
    report: dict = {"closed_set": closed_set(e), "open_set": {}}
    train = collect_arrays(train_ds, None)

    # SeisLens with the bundle's library, and with every training model as library
    lib = LoadedLibrary.open(args.bundle, manifest, VELOCITY)
    report["open_set"][f"SeisLens (bundle library, {len(lib)} models)"] = open_set(lib, e)
    lib.close()
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "bundle"
        shutil.copytree(args.bundle, full)
        build(full, VELOCITY, [args.train])
        lib = LoadedLibrary.open(full, read_manifest(full), VELOCITY)
        report["open_set"][f"SeisLens (all {len(lib)} training models)"] = open_set(lib, e)
        lib.close()

    # raw-gather nearest neighbour over the training gathers
    cache = args.run / "cache"
    raw_train = _raw_vectors(gather_feature_cache(train_ds, None, RAW_NN, cache))
    raw_test = _raw_vectors(
        np.concatenate(
            [gather_features(b, RAW_NN) for d in test_ds for _, b in d.iter_gathers(100)]
        )
    )
    s, i = _topk(raw_test, raw_train, 10)
    report["open_set"]["raw-gather nearest neighbour"] = open_set_from_neighbours(
        s, i, train.descriptors, train.velocity_models, e["desc"], e["models"]
    )

    if not args.skip_inversionnet:
        report["open_set"]["InversionNet-style regressor"] = _inversionnet(
            args, manifest, train_ds, test_ds, train, e
        )
    _print(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


def _train_baseline(args, train_ds, train):
    """Train (or finish training) the InversionNet-style baseline on the run's split."""
    import torch
    from seislens.training.inversionnet import train_inversionnet

    state = torch.load(args.run / "checkpoint.pt", weights_only=False)
    pre = Preprocessing.model_validate(state["preprocessing"])
    feats = gather_feature_cache(train_ds, None, pre.gather, args.run / "cache")
    budget = args.budget_s
    if budget is None:
        lines = (args.run / "metrics.jsonl").read_text().splitlines()
        budget = sum(json.loads(x)["seconds"] for x in lines)
    targets = velocity_features(train.velocity_models, pre.velocity)
    return train_inversionnet(feats, targets, args.inversionnet_run, budget), budget


def _inversionnet(args, manifest, train_ds, test_ds, train, e) -> dict:
    from seislens.training.inversionnet import describe, predict

    pre = Preprocessing.model_validate(manifest.velocity.preprocessing)
    model, budget = _train_baseline(args, train_ds, train)
    test_feats = np.concatenate(
        [gather_features(b, pre.gather) for d in test_ds for _, b in d.iter_gathers(100)]
    )
    pred = predict(model, test_feats)
    truth = velocity_features(e["models"], pre.velocity)[:, 0]
    desc = compute_descriptors(velocity_from_features(pred, pre.velocity))
    rel = relative_errors(desc, e["desc"])
    mae = float(np.abs(pred - truth).mean())
    ss = float(ssim(pred, truth).mean())
    return {
        "descriptor_mre": float(rel.mean()),
        "descriptor_mre_per_descriptor": dict(
            zip(DESCRIPTOR_NAMES, rel.mean(0).tolist(), strict=True)
        ),
        "model_top1": {"mae": mae, "ssim": ss},
        "model_top10": {"mae": mae, "ssim": ss},
        "budget_s": budget,
        **describe(model),
    }


def _print(report: dict) -> None:
    c = report["closed_set"]
    print(f"## Closed set — synthetic held-out gallery of {c['gallery_size']} (all families)\n")
    print("| queries | s→v R@1 | s→v R@5 | s→v R@10 | v→d R@1 | v→d R@5 | v→d R@10 |")
    print("|---|---|---|---|---|---|---|")
    rows = [("all", c), *list(c["per_family"].items())]
    for name, r in rows:
        sv, vd = r["seismic_to_velocity"], r["velocity_to_descriptor"]
        print(
            f"| {name} | "
            + " | ".join(_fmt(x[f"recall@{k}"]) for x in (sv, vd) for k in (1, 5, 10))
            + " |"
        )
    print(
        f"\nmean positive cosine {_fmt(c['mean_positive_cosine'])}, "
        f"mean negative cosine {_fmt(c['mean_negative_cosine'])}\n"
    )
    print("## Open set — the truth is not in the library\n")
    print("| method | descriptor MRE | top-1 MAE | top-1 SSIM | top-10 MAE | top-10 SSIM |")
    print("|---|---|---|---|---|---|")
    for name, r in report["open_set"].items():
        print(_open_row(name, r))
    print("\n(InversionNet regresses one model: its top-1 and top-10 columns are the same.)\n")
    print("## Descriptor mean relative error per descriptor\n")
    names = list(report["open_set"])
    print("| descriptor | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for d in DESCRIPTOR_NAMES:
        vals = [report["open_set"][n]["descriptor_mre_per_descriptor"][d] for n in names]
        print(f"| {d} | " + " | ".join(_fmt(v) for v in vals) + " |")


if __name__ == "__main__":
    main()
