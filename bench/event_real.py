"""A bundle's event branch on real, catalogued recordings it was never trained on.

    python bench/event_real.py assemble --seisbench-git DIR   # build the set (once)
    python bench/event_real.py evaluate --bundle artifacts/default

**The set.** What is labelled and public, offline: SeisBench's own test datasets
(``tests/examples/dummydataset`` and ``chunkeddummydataset`` of seisbench/seisbench,
GPL-3.0; the waveforms are IPOC network data, CX, GFZ Potsdam): 200 catalogued
earthquakes of January 2007 recorded at one broadband station, CX.PB01 (northern Chile),
3 components, 20 Hz, 60 s, counts, no picks, 22–217 km away, 1–172 km deep (median
108 km); magnitudes 1.0–4.1 (``MA``, with ``ML`` beside)
and hypocentres from the IPOC catalogue. ``assemble`` reads them from a git copy of that
repository (``fetch`` it with the search tool: nothing is downloaded here), keeps the
waveforms as they are and writes ``metadata.csv`` with the columns SeisLens reads added:
``trace_category`` (every IPOC event type — intermediate-depth ``ID``, upper-plate
``UP``, interface ``P1``–``P3`` — is an earthquake), the epicentral distance and
back-azimuth from the catalogue and station coordinates (obspy's ``gps2dist_azimuth``)
and ``split`` = ``test``. It goes to ``data/events/real/cx-pb01`` (ignored by git; the
licence is the GPL's, so it is not committed here) with a ``PROVENANCE.md``.

obspy ships no usable labelled set: its test recordings with a catalogue entry are
teleseismic (KONO, El Salvador 2001; II.TLY, Tohoku 2011), single-component (K-NET
AKT013) or have event files without their waveforms (SeismicHandler's ``local*.evt``);
its local 3-C records (SEISAN CER, BW.UH*, RJOB) have no catalogue entry. No other
installed package ships labelled waveforms.

**The measure.** Every trace through the serving path with the bundle's preprocessing
(STA/LTA window, as an upload without a pick; 20 Hz resampled to 100 Hz), the class
shares of the service's answers (the head's most probable type, changed from explosion
to earthquake where the S − P check finds the source too deep for one) and of the head's
own types, and the distance / depth / magnitude MAE, median error and bias of the
regressor, overall and by depth (crustal < 40 km, intermediate >= 40 km). It prints
what the set cannot tell.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "data" / "events" / "real" / "cx-pb01"
SOURCE = "tests/examples/chunkeddummydataset"  # its chunk 0 is dummydataset itself
CHUNKS = ("0", "1")

LIMITS = (
    "one station (CX.PB01) in one region (northern Chile), twelve days (January 2007)",
    "earthquakes only: no explosion, surface event or noise window, so it measures "
    "neither discrimination nor false alarms",
    "20 Hz records only: nothing above about 8 Hz reaches the model",
    "magnitudes 1.0-4.1 (IPOC 'MA', not Mw): nothing about large or tiny events",
    "epicentral distances 22-217 km, no regional (Pn/Lg) records; 93 % deeper than "
    "40 km, so crustal depths rest on 14 traces",
    "no catalogued picks: every window is placed by STA/LTA",
    "200 traces: an MAE is known to about +-10 % (1 sigma)",
)


def _git_show(git_dir: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True, capture_output=True
    ).stdout


def assemble(git_dir: Path, out: Path) -> Path:
    """Write the labelled set from a SeisBench git copy into ``out`` (replaced whole)."""
    import pandas as pd
    from obspy.geodetics import gps2dist_azimuth

    commit = (
        subprocess.run(
            ["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], check=True, capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    base = SOURCE
    (tmp / "chunks").write_bytes(_git_show(git_dir, f"{base}/chunks"))
    for chunk in CHUNKS:
        (tmp / f"waveforms{chunk}.hdf5").write_bytes(
            _git_show(git_dir, f"{base}/waveforms{chunk}.hdf5")
        )
        meta = pd.read_csv(io.BytesIO(_git_show(git_dir, f"{base}/metadata{chunk}.csv")))
        geo = [
            gps2dist_azimuth(
                r.source_latitude_deg,
                r.source_longitude_deg,
                r.station_latitude_deg,
                r.station_longitude_deg,
            )
            for r in meta.itertuples()
        ]
        meta["path_ep_distance_km"] = [round(g[0] / 1e3, 3) for g in geo]
        meta["path_back_azimuth_deg"] = [round(g[2], 3) for g in geo]
        meta["trace_category"] = "earthquake"
        meta["split"] = "test"
        meta.to_csv(tmp / f"metadata{chunk}.csv", index=False)
    (tmp / "PROVENANCE.md").write_text(
        "# CX.PB01 real earthquakes (SeisBench test data)\n\n"
        f"From seisbench/seisbench at {commit}, {base}/ (GPL-3.0; waveforms: IPOC, network "
        "CX, GFZ Potsdam). Waveforms unchanged; metadata with trace_category, "
        "path_ep_distance_km, path_back_azimuth_deg (obspy gps2dist_azimuth) and split "
        "added by bench/event_real.py. Never used for training.\n"
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(truth) & np.isfinite(pred)
    err = pred[ok] - truth[ok]
    if not ok.any():
        return {"count": 0}
    return {
        "count": int(ok.sum()),
        "mae": round(float(np.abs(err).mean()), 3),
        "median_abs_error": round(float(np.median(np.abs(err))), 3),
        "bias": round(float(err.mean()), 3),
        "truth_median": round(float(np.median(truth[ok])), 3),
        "pred_median": round(float(np.median(pred[ok])), 3),
    }


def evaluate(
    bundle: Path,
    data: Path,
    split: str | None = None,
    classes: tuple[str, ...] | None = None,
    min_ratio: float | None = None,
    min_quake_depth_km: float | None = None,
) -> dict[str, Any]:
    """Class shares and source-parameter errors of ``bundle`` on the set in ``data`` (the
    traces of ``split`` whose class is one of ``classes``; None: all). Depth is scored
    twice: the heads' (``depth``) and the answer's (``depth (answer)``: the S − P depth
    where the service's travel-time check applies, else the heads'); ``min_ratio``
    replaces the check's pick-ratio threshold and ``min_quake_depth_km`` its depth that
    makes an explosion an earthquake (None: the service's). ``class_shares``
    are the answers' types (after the check), ``model_class_shares`` the heads'."""
    from seislens.data.event_dataset import EventDataset
    from seislens.data.event_travel_time import TravelTimeConfig, travel_time_depth
    from seislens.data.event_views import event_targets
    from seislens.index.bundle import read_manifest
    from seislens.models.contract import EVENT_TARGETS
    from seislens.models.event_embedders import EventEmbedder
    from seislens.models.event_preprocess import (
        EventInputError,
        cut_dataset_window,
        waveform_to_spectrum,
    )

    manifest = read_manifest(bundle)
    embedder = EventEmbedder(bundle, manifest.events)
    ds = EventDataset(data, split=split)
    rows = np.arange(len(ds))
    if classes is not None:
        rows = rows[np.isin(np.asarray(ds.labels), classes)]
    windows, kept = [], []
    for i in rows:  # the STA/LTA window an upload without a pick gets
        try:
            window = cut_dataset_window(ds.waveform(i), ds.sampling_rate(i), None, embedder.pre)
            windows.append(window)
        except EventInputError:
            continue
        kept.append(int(i))
    spectra = np.stack([waveform_to_spectrum(w.waveform, embedder.pre) for w in windows])
    probs, reg = embedder.classify(spectra)
    labels = np.asarray(embedder.classes)[probs.argmax(axis=1)]
    overrides = {"min_ratio": min_ratio, "min_quake_depth_km": min_quake_depth_km}
    gate = TravelTimeConfig(**{k: v for k, v in overrides.items() if v is not None})
    checks = [
        travel_time_depth(w.waveform, w.p_sample, float(d), str(c), gate)
        for w, d, c in zip(windows, reg["distance"], labels, strict=True)
    ]
    answer_depth = np.array(
        [c.answer(h)[0] for c, h in zip(checks, reg["depth"], strict=True)], float
    )
    applied = np.array([c.applied for c in checks])
    answers = np.array([c.label for c in checks])  # the service's type: see relabelled
    relabelled = np.array([c.relabelled_from is not None for c in checks])
    true_labels = np.asarray(ds.labels)[kept]
    truth = event_targets(ds)[kept]
    depth = truth[:, EVENT_TARGETS.index("depth")]
    out: dict[str, Any] = {
        "bundle": str(bundle),
        "data": str(data),
        "split": split,
        "traces": len(rows),
        "scored": len(kept),
        "true_classes": dict(Counter(str(x) for x in np.asarray(ds.labels)[kept])),
        "class_shares": {c: round(float((answers == c).mean()), 3) for c in embedder.classes},
        "model_class_shares": {c: round(float((labels == c).mean()), 3) for c in embedder.classes},
        "relabelled": int(relabelled.sum()),
        "relabelled_true_classes": dict(Counter(str(x) for x in true_labels[relabelled])),
        "mean_probabilities": {
            c: round(float(probs[:, j].mean()), 3) for j, c in enumerate(embedder.classes)
        },
        "travel_time_applied": int(applied.sum()),
        "travel_time_min_ratio": gate.min_ratio,
        "travel_time_min_quake_depth_km": gate.min_quake_depth_km,
        "regression": {},
    }
    columns = {name: np.asarray(reg[name], float) for name in EVENT_TARGETS}
    columns["depth (answer)"] = answer_depth
    for name, pred in columns.items():
        j = EVENT_TARGETS.index(name.split(" ")[0])
        parts = {
            "all": _errors(pred, truth[:, j]),
            "crustal (<40 km)": _errors(pred[depth < 40], truth[depth < 40, j]),
            "intermediate (>=40 km)": _errors(pred[depth >= 40], truth[depth >= 40, j]),
        }
        if name.startswith("depth"):
            parts["where the S − P check applied"] = _errors(pred[applied], truth[applied, j])
        out["regression"][name] = parts
    out["cannot_tell"] = list(LIMITS) if split is None and classes is None else []
    return out


def _print(result: dict[str, Any]) -> None:
    print(
        f"**{result['bundle']} on {result['data']}** ({result['scored']}/{result['traces']} "
        f"traces scored; truth: {result['true_classes']})\n"
    )
    print(
        "| class | share of answers | share of the probabilities' types | mean probability |"
        "\n|---|---|---|---|"
    )
    for c, share in result["class_shares"].items():
        print(
            f"| {c} | {share:.3f} | {result['model_class_shares'][c]:.3f} "
            f"| {result['mean_probabilities'][c]:.3f} |"
        )
    print("\n| target | subset | n | MAE | median |err| | bias | truth median | answer median |")
    print("|---|---|---|---|---|---|---|---|")
    for name, parts in result["regression"].items():
        for subset, e in parts.items():
            if e.get("count"):
                print(
                    f"| {name} | {subset} | {e['count']} | {e['mae']} | {e['median_abs_error']} "
                    f"| {e['bias']} | {e['truth_median']} | {e['pred_median']} |"
                )
    print(
        f"\nThe S − P check (pick ratio ≥ {result['travel_time_min_ratio']:g}) replaced the "
        f"heads' depth on {result['travel_time_applied']} of {result['scored']} traces "
        "(`depth (answer)`)."
    )
    print(
        f"It changed {result['relabelled']} explosion answers to earthquake (an S − P depth of "
        f"{result['travel_time_min_quake_depth_km']:g} km or more); their true classes: "
        f"{result['relabelled_true_classes'] or 'none'}."
    )
    if result["cannot_tell"]:
        print("\nWhat this set cannot tell:")
    for line in result["cannot_tell"]:
        print(f"- {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assemble", help="build the labelled set from a SeisBench git copy")
    a.add_argument("--seisbench-git", type=Path, required=True, help="a git dir of seisbench")
    a.add_argument("--out", type=Path, default=DEFAULT_SET)
    e = sub.add_parser("evaluate", help="score a bundle on the set")
    e.add_argument("--bundle", type=Path, default=ROOT / "artifacts" / "default")
    e.add_argument("--data", type=Path, default=DEFAULT_SET)
    e.add_argument("--split", default=None, help="only this split (default: every trace)")
    e.add_argument(
        "--classes", default=None, help="only these true classes, comma-separated (e.g. earthquake)"
    )
    e.add_argument(
        "--min-ratio", type=float, default=None, help="the S − P check's pick-ratio threshold"
    )
    e.add_argument(
        "--min-quake-depth",
        type=float,
        default=None,
        help="the S − P depth (km) from which the check makes an explosion an earthquake",
    )
    e.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if args.command == "assemble":
        print(f"wrote {assemble(args.seisbench_git, args.out)}")
        return
    if not (args.data / "chunks").exists() and not (args.data / "metadata.csv").exists():
        raise SystemExit(
            f"{args.data} holds no set; run `python bench/event_real.py assemble` first"
        )
    classes = None if args.classes is None else tuple(args.classes.split(","))
    result = evaluate(
        args.bundle, args.data, args.split, classes, args.min_ratio, args.min_quake_depth
    )
    _print(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
