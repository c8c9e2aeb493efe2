"""Event classification on a held-out synthetic split: SeisLens beside a QuakeXNet-2D-style
CNN trained and scored on the same split under the same CPU budget, then obspy's real
recordings through the bundle.

    python bench/event_quality.py                          # 6000 traces, default preset
    python bench/event_quality.py --count 600 --epochs 2   # a smoke run (minutes)
    python bench/event_quality.py --bundle B --data D      # score an existing bundle

Steps: generate (or reuse) a synthetic SeisBench-format dataset; train the preset (or
resume ``--run``, or take ``--bundle``); export into a copy of the default bundle (a
bundle needs its velocity branch) and index the dataset's train split; score the test
split (windows on the catalogued P, and as an upload without a pick would get them);
train the peer on the very same cached views for as many seconds as SeisLens trained
(its best dev epoch kept, like SeisLens); print markdown tables and write
confusion-matrix PNGs and ``results.json`` under ``--out``.

The peer follows the description in Kharita et al. (2025, "Exploration of machine
learning methods to seismic event discrimination in the Pacific Northwest"): a long,
skinny 2-D CNN over 3-component spectrograms with about 70k parameters. It is written
here from that description (eight 3×3 convolutions of 8–64 channels with batch norm and
ReLU, max pooling after every second one, global average pooling, dropout 0.4, a linear
classifier): not the authors' code, and fed SeisLens's own spectra rather than theirs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SYNTHETIC_NOTE = (
    "SeisLens was trained on synthetic events only: what it says of real recordings is "
    "shown as-is, unvalidated, and makes no accuracy claim on real data."
)

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "artifacts" / "default"
"""The velocity branch an exported event run joins (copied, never written)."""


# --------------------------------------------------------------------------- the peer


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class QuakeXNet2DStyle(nn.Module):
    """A long, skinny spectrogram CNN (~74k parameters) over (B, 3, 50, 120) spectra."""

    def __init__(self, n_classes: int = 4, widths: tuple[int, ...] = (8, 16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for i, w in enumerate(widths):
            layers += _conv(c, w) + _conv(w, w)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(0.4), nn.Linear(c, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (torch.log(x + 1e-4) + 4.0) / 2.0  # the same input scaling as SeisLens's ViT
        return self.classifier(self.features(x))


def _peer_logits(model: nn.Module, spectra: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [
                model(torch.from_numpy(np.asarray(spectra[s : s + batch], np.float32))).numpy()
                for s in range(0, len(spectra), batch)
            ]
        )


def train_peer(cache: Any, budget_s: float, max_epochs: int, seed: int) -> dict[str, Any]:
    """Train the peer on a SeisLens view cache for about ``budget_s`` seconds of training
    steps (the epoch count is set after the first epoch); keep the best dev epoch."""
    from seislens.models.contract import EVENT_CLASSES as CLASSES
    from seislens.training.event_metrics import classification_report

    torch.manual_seed(seed)
    model = QuakeXNet2DStyle(len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    train, dev = cache.rows("train"), cache.rows("dev")
    dev_x = np.asarray(cache.spectra[dev, 0], np.float32) if len(dev) else None
    bs, epochs, spent, best, history = 64, max_epochs, 0.0, None, []
    steps = len(train) // bs
    if steps == 0:
        raise ValueError(f"{len(train)} training traces is fewer than one peer batch of {bs}")
    epoch = 0
    while epoch < epochs:
        model.train()
        rng = np.random.default_rng([seed, 5, epoch])
        order = train[rng.permutation(len(train))]
        views = rng.integers(cache.n_views, size=len(order))
        t0 = time.perf_counter()
        for b in range(steps):
            sel = slice(b * bs, (b + 1) * bs)
            rows, vv = order[sel], views[sel]
            idx = np.argsort(rows)
            x = torch.from_numpy(np.asarray(cache.spectra[rows[idx], vv[idx]], np.float32))
            y = torch.from_numpy(cache.labels[rows[idx]])
            step = epoch * steps + b
            lr = 2e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / (epochs * steps))))
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / 50)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        spent += time.perf_counter() - t0
        if epoch == 0:
            epochs = int(max(1, min(max_epochs, budget_s // max(spent, 1e-6))))
        score = float("nan")
        if dev_x is not None:
            pred = _peer_logits(model, dev_x).argmax(axis=1)
            score = classification_report(cache.labels[dev], pred, CLASSES)["accuracy"]
        history.append({"epoch": epoch + 1, "seconds": round(spent, 1), "dev_accuracy": score})
        if best is None or not score <= best[0]:
            best = (score, {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
        epoch += 1
    assert best is not None
    model.load_state_dict(best[1])
    model.eval()
    return {
        "model": model,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(spent, 1),
        "epochs": epoch,
        "best_epoch": best[2],
        "history": history,
    }


# --------------------------------------------------------------------------- steps


def _dataset(args: argparse.Namespace) -> Path:
    from seislens.data.event_synth import EventSynthConfig, generate_events

    folder = args.data or Path(f"data/events/synthetic-{args.count}-s{args.seed}")
    if args.data is not None and (folder / "metadata.csv").exists():
        return folder  # an existing SeisBench-format folder, used as it is
    print(f"dataset: {folder} ({args.count} synthetic traces, seed {args.seed})")
    return generate_events(folder, EventSynthConfig(count=args.count, seed=args.seed))


def _config(args: argparse.Namespace, data: Path) -> Any:
    from seislens.training.branch_training import load_config

    over: dict[str, Any] = {"data": {"folder": str(data)}, "threads": args.threads}
    if args.epochs is not None:
        over["clip"] = {"epochs": args.epochs}
        over["finetune"] = {"epochs": args.epochs}
    return load_config("events", args.preset, over)


def _train_seconds(run: Path) -> float:
    path = run / "metrics.jsonl"
    if not path.exists():
        return float("nan")
    return float(sum(json.loads(x)["seconds"] for x in path.read_text().splitlines() if x))


def _evaluate(bundle: Path, data: Path, window: str) -> dict[str, Any]:
    from seislens.pipeline import evaluate

    return evaluate("events", bundle, data, split="test", k=10, window=window)


def _peer_report(peer: dict[str, Any], data: Path, pre: Any, window: str) -> dict[str, Any]:
    from seislens.data.event_dataset import EventDataset
    from seislens.data.event_views import dataset_spectra
    from seislens.models.contract import EVENT_CLASSES as CLASSES
    from seislens.training.event_metrics import classification_report

    ds = EventDataset(data, split="test")
    rows = np.flatnonzero(ds.label_ids >= 0)
    spectra, _, kept = dataset_spectra(ds, rows, pre, window)  # type: ignore[arg-type]
    pred = _peer_logits(peer["model"], spectra).argmax(axis=1)
    return classification_report(ds.label_ids[kept], pred, CLASSES)


def _latency(fn: Any, x: np.ndarray, repeats: int = 50) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _row(name: str, rep: dict[str, Any], reg: dict[str, Any] | None, extra: str) -> str:
    from seislens.models.contract import EVENT_CLASSES as CLASSES

    f1 = " | ".join(f"{rep['per_class'][c]['f1']:.3f}" for c in CLASSES)
    dist = f"{reg['distance']['mae']:.1f}" if reg and reg["distance"]["mae"] is not None else "—"
    mag = f"{reg['magnitude']['mae']:.2f}" if reg and reg["magnitude"]["mae"] is not None else "—"
    return (
        f"| {name} | {extra} | {rep['accuracy']:.3f} | {rep['macro_f1']:.3f} | {f1} | "
        f"{dist} | {mag} |"
    )


def _table(title: str, rows: list[str]) -> str:
    from seislens.models.contract import EVENT_CLASSES as CLASSES

    head = (
        "| model | params (classifier path) / train s | accuracy | macro-F1 | "
        + " | ".join(f"F1 {c}" for c in CLASSES)
        + " | distance MAE (km) | magnitude MAE |"
    )
    sep = "|" + "---|" * (head.count("|") - 1)
    return "\n".join([f"**{title}**", "", head, sep, *rows])


def real_recordings(bundle: Path) -> list[dict[str, Any]]:
    """obspy's bundled recordings through the bundle (ONNX embedder + events index)."""
    import obspy
    from seislens.index.bundle import read_manifest
    from seislens.index.library import LoadedLibrary
    from seislens.models.branches import EVENTS
    from seislens.models.event_embedders import EventEmbedder
    from seislens.models.event_preprocess import stream_to_windows

    root = Path(obspy.__file__).parent
    manifest = read_manifest(bundle)
    embedder = EventEmbedder(bundle, manifest.events)
    library = (
        LoadedLibrary.open(bundle, manifest, EVENTS)
        if EVENTS.index_name in manifest.indexes
        else None
    )
    cases = [
        (
            "CER local event (SEISAN test data)",
            root / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed",
            embedder.pre,
        ),
        (
            "BW.UH3 local event (signal test data)",
            root / "signal/tests/data/BW.UH3*.slist.gz",
            embedder.pre,
        ),
        (
            "obspy.read() default example (30 s, padded to 60 s)",
            None,
            embedder.pre.model_copy(update={"max_pad_s": 30.0}),
        ),
    ]
    out = []
    for name, path, pre in cases:
        try:
            stream = obspy.read(str(path)) if path is not None else obspy.read()
            windows = stream_to_windows(stream, pre)
        except Exception as exc:  # a refused or unreadable recording is reported, not fatal
            out.append({"recording": name, "error": str(exc)})
            continue
        spectra = embedder.spectra(windows)
        probs, reg = embedder.classify(spectra)
        neighbours: list[list[dict[str, Any]]] = [[] for _ in windows]
        if library is not None:
            scores, ids = library.search(embedder.embed_spectra(spectra), 3)
            for q in range(len(windows)):
                for s, rec in zip(scores[q], library.records(ids[q]), strict=True):
                    if rec is not None:
                        neighbours[q].append(
                            {
                                "label": rec.family,
                                "score": round(float(s), 3),
                                "trace": rec.metadata.get("trace_name_original")
                                or rec.metadata.get("trace_name"),
                            }
                        )
        for q, w in enumerate(windows):
            out.append(
                {
                    "recording": name,
                    "window": w.describe(),
                    "probabilities": {
                        c: round(float(p), 3)
                        for c, p in zip(embedder.classes, probs[q], strict=True)
                    },
                    "label": embedder.classes[int(probs[q].argmax())],
                    "distance_km": round(float(reg["distance"][q]), 1),
                    "depth_km": round(float(reg["depth"][q]), 1),
                    "magnitude": round(float(reg["magnitude"][q]), 2),
                    "neighbours": neighbours[q],
                }
            )
    if library is not None:
        library.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="synthetic traces")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--data", type=Path, help="dataset folder (generated when missing)")
    parser.add_argument("--preset", default="default", help="training preset or TOML file")
    parser.add_argument("--epochs", type=int, help="override both stages' epochs")
    parser.add_argument("--run", type=Path, help="run folder (trained or resumed)")
    parser.add_argument("--bundle", type=Path, help="score this bundle instead of training")
    parser.add_argument("--out", type=Path, default=Path("runs/event_quality"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--peer-seconds", type=float, help="peer budget (default: SeisLens's)")
    parser.add_argument("--peer-max-epochs", type=int, default=60)
    args = parser.parse_args()

    from seislens.index.builder import build
    from seislens.index.bundle import read_manifest
    from seislens.models.branches import EVENTS
    from seislens.models.contract import EVENT_CLASSES as CLASSES
    from seislens.training.branch_training import train
    from seislens.training.event_cache import load_view_cache
    from seislens.training.event_config import EventTrainConfig
    from seislens.training.event_metrics import plot_confusion

    from seislens.pipeline import export_to_bundle

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = _dataset(args)
    if args.bundle:
        bundle = args.bundle
        trained = dict(read_manifest(bundle).events.training)
        trained["data"]["folder"] = str(data)
        cfg = EventTrainConfig.model_validate(trained)
        cache_root = args.out / "peer-cache"
        last = read_manifest(bundle).events.training_metrics["last"] or {}
        seislens_seconds = float(last.get("train_seconds_total", float("nan")))
        if EVENTS.index_name not in read_manifest(bundle).indexes:
            build(bundle, EVENTS, [data])
    else:
        cfg = _config(args, data)
        run = args.run or args.out / "run"
        t0 = time.perf_counter()
        train(cfg, run)
        print(f"training: {time.perf_counter() - t0:.0f} s wall")
        seislens_seconds = _train_seconds(run)
        bundle = args.out / "bundle"
        if not bundle.exists():
            shutil.copytree(DEFAULT_BUNDLE, bundle)
        export_to_bundle("events", run, bundle)
        build(bundle, EVENTS, [data])
        cache_root = run / "cache"

    manifest = read_manifest(bundle)
    params = manifest.events.training["model"]
    results: dict[str, Any] = {"data": str(data), "bundle": str(bundle), "seislens": {}}
    for window in ("catalog", "auto"):
        results["seislens"][window] = _evaluate(bundle, data, window)

    budget = args.peer_seconds or (seislens_seconds if math.isfinite(seislens_seconds) else 300.0)
    print(f"peer: training for about {budget:.0f} s (SeisLens trained {seislens_seconds:.0f} s)")
    cache = load_view_cache(cfg, cache_root, progress=True)
    peer = train_peer(cache, budget, args.peer_max_epochs, cfg.seed)
    results["peer"] = {
        "params": peer["params"],
        "train_seconds": peer["train_seconds"],
        "epochs": peer["epochs"],
        "best_epoch": peer["best_epoch"],
        **{w: _peer_report(peer, data, cfg.preprocess, w) for w in ("catalog", "auto")},
    }

    # model sizes and single-window latency (CPU, one thread)
    from seislens.models.event_embedders import EventEmbedder
    from seislens.models.event_encoders import build_event_clip, count_parameters

    embedder = EventEmbedder(bundle, manifest.events, threads=args.threads)
    one = np.abs(np.random.default_rng(0).standard_normal((1, 3, 50, 120))).astype(np.float32)
    clip_model = build_event_clip(params)
    n_params = count_parameters(clip_model.spectrum) + count_parameters(clip_model.heads)
    latency = {
        "seislens_classify_ms": _latency(embedder.classify, one),
        "peer_ms": _latency(lambda x: _peer_logits(peer["model"], x), one),
    }
    results["latency"] = latency

    print()
    for window, title in (
        ("catalog", "windows on the catalogued P pick (an upload with p_arrival)"),
        ("auto", "windows by STA/LTA, no pick (an upload without p_arrival)"),
    ):
        sl = results["seislens"][window]
        rows = [
            _row(
                "SeisLens head",
                sl["head"],
                sl["regression"],
                f"{n_params / 1e3:.0f}k / {seislens_seconds:.0f}",
            ),
            _row(
                f"SeisLens k-NN (k=10, {sl['knn']['library_size']} train events)",
                sl["knn"],
                None,
                "—",
            )
            if sl["knn"]
            else "",
            _row(
                "QuakeXNet-2D-style",
                results["peer"][window],
                None,
                f"{peer['params'] / 1e3:.0f}k / {peer['train_seconds']:.0f}",
            ),
        ]
        print(_table(f"Test split ({sl['count']} traces), {title}", [r for r in rows if r]))
        print()
        gap = sl["head"]["accuracy"] - results["peer"][window]["accuracy"]
        verdict = "beats" if gap > 0 else ("ties" if gap == 0 else "trails")
        print(
            f"SeisLens head {verdict} the peer by {abs(gap) * 100:.1f} accuracy points "
            f"(macro-F1 {sl['head']['macro_f1']:.3f} vs {results['peer'][window]['macro_f1']:.3f});"
            f" goal accuracy >= 0.97: {'met' if sl['head']['accuracy'] >= 0.97 else 'NOT met'},"
            f" macro-F1 >= 0.95: {'met' if sl['head']['macro_f1'] >= 0.95 else 'NOT met'}."
        )
        print()
    reg = results["seislens"]["catalog"]["regression"]
    print(
        "SeisLens regression on test events (catalog windows): "
        + ", ".join(
            f"{k} MAE {v['mae']:.2f} {v['unit'].split(' ')[0]} (n={v['count']})"
            for k, v in reg.items()
            if v["mae"] is not None
        )
    )
    print(
        "single-window latency, one CPU thread: SeisLens heads "
        f"{latency['seislens_classify_ms']:.1f} ms, peer {latency['peer_ms']:.1f} ms"
    )
    for name, rep in (
        ("seislens_head", results["seislens"]["catalog"]["head"]),
        ("seislens_knn", results["seislens"]["catalog"]["knn"]),
        ("peer", results["peer"]["catalog"]),
    ):
        if rep:
            png = plot_confusion(
                rep["confusion"],
                CLASSES,
                args.out / f"confusion_{name}.png",
                title=f"{name.replace('_', ' ')} — test, catalog windows",
            )
            print(f"wrote {png}")

    print("\n**obspy's real recordings through the bundle**\n")
    results["real"] = real_recordings(bundle)
    for item in results["real"]:
        if "error" in item:
            print(f"- {item['recording']}: refused — {item['error']}")
            continue
        w = item["window"]
        probs = ", ".join(f"{c} {p:.2f}" for c, p in item["probabilities"].items())
        near = "; ".join(f"{n['label']} {n['score']:.2f}" for n in item["neighbours"])
        print(
            f"- {item['recording']} — {w['station']} ({w['rule']} window from {w['start']}): "
            f"**{item['label']}** ({probs}); distance {item['distance_km']} km, depth "
            f"{item['depth_km']} km, magnitude {item['magnitude']}; nearest library events: "
            f"{near or '—'}"
        )
    print(f"\n{SYNTHETIC_NOTE}")
    results["note"] = SYNTHETIC_NOTE
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
