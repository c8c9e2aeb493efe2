"""Scanning a long recording: detection recall, false detections, class accuracy, wall
time and peak memory, SeisLens beside a QuakeXNet-2D-style peer on the same file.

    OMP_NUM_THREADS=1 python bench/event_scan.py                     # a day, 200 events
    OMP_NUM_THREADS=1 python bench/event_scan.py --hours 1           # reduced: 1 h, 8 events
    OMP_NUM_THREADS=1 python bench/event_scan.py --hours 2 --stations 3   # + one answer per event
    OMP_NUM_THREADS=1 python bench/event_scan.py --hours 6 --seed 2 --no-peer \
        --set '{"merge_gap_s": null}'                  # tuning: another day, a setting off

Steps: write (or reuse, under ``--work``) a continuous synthetic recording
(:mod:`seislens.data.event_continuous`: the generator's own noise and events, broadband
sensors, 100 Hz, ``--events-per-day`` events at SNR drawn in ``--snr`` dB per station);
scan it with ``--bundle`` in a fresh process (``seislens.service.scan_run``, one ONNX
thread) and with the peer in another, each reporting its wall time and peak RSS
(``ru_maxrss``). Scored per station:

* **recall**: inserted P arrivals covered by a detection of that station
  (start ≤ P ≤ end);
* **false detections**: detections covering no inserted P, per station-day;
* **class accuracy**: detections of inserted events whose label is the event's class;
* **onset error**: median |STA/LTA onset − true P| of the detections that have one,
  and the class accuracy of those detections by how far their onset lies from the P;
* with several stations, **one answer per event**: inserted events detected at two or
  more stations whose detections form one event, and the share of those whose stations
  all give the event's type (agreement).

The peer: bench/event_quality.py's QuakeXNet-2D-style CNN (~74k parameters, written from
Kharita et al. 2025's description, not the authors' code), fed the same windows and
spectra through the same reader, conditioning and batching, with **untrained weights**:
only its wall time and memory mean something here (its class quality on trained weights
is in bench/event_quality.py). It thus measures the network's cost, not QuakeXNet's own
preprocessing (their 50 Hz, 100 s windows). The peer shares the spectra path
(``--per-window-spectra`` switches both) but classifies every window, as a sliding-window
classifier does; SeisLens's cascade gate (``--gate``, 0 for off) and its onset-aligned
class windows (``onset_positions_s``; their network time is in SeisLens's "network s"
and "detections" stage) are its own, and the table's "to network" column is the share
of grid windows that reached the network. The scan settings are ScanConfig's defaults
unless ``--stride``, ``--threshold``, ``--peak-threshold``, ``--gate`` or ``--set``
(any ScanConfig fields as JSON) say otherwise. Tune on other seeds than the reported
day's (0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import print_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "artifacts" / "default"


# --------------------------------------------------------------------------- the recording


def recording(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The synthetic recording of ``args`` (written once under ``--work``) and its truth."""
    from seislens.data.event_continuous import ContinuousConfig, write_continuous

    events = round(args.events_per_day * args.hours / 24.0)
    config = ContinuousConfig(
        duration_s=args.hours * 3600.0,
        stations=args.stations,
        events=events,
        snr_db=tuple(args.snr),
        seed=args.seed,
    )
    snr = f"{args.snr[0]:g}-{args.snr[1]:g}"
    key = f"scan-{args.hours:g}h-{args.stations}sta-{events}ev-snr{snr}-s{args.seed}"
    path = args.work / f"{key}.mseed"
    truth_path = args.work / f"{key}.json"
    if not (path.is_file() and truth_path.is_file()):
        args.work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rec = write_continuous(path, config)
        truth = {
            "stations": rec.stations,
            "events": [
                {
                    "label": e.label,
                    "origin_time": e.origin_time,
                    "latitude": e.latitude,
                    "longitude": e.longitude,
                    "stations": {s: vars(t) for s, t in e.stations.items()},
                }
                for e in rec.events
            ],
            "duration_s": rec.duration_s,
            "write_s": round(time.perf_counter() - t0, 1),
        }
        truth_path.write_text(json.dumps(truth))
    return path, json.loads(truth_path.read_text())


# --------------------------------------------------------------------------- the scans


class TimedEmbedder:
    """An embedder's stand-in that times its spectra and classification (s)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pre = inner.pre
        self.classes = inner.classes
        self.regression_outputs = inner.regression_outputs
        self.seconds = {"spectra": 0.0, "network": 0.0}

    def spectra(self, windows: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.spectra(windows)
        self.seconds["spectra"] += time.perf_counter() - t0
        return out

    def classify(self, spectra: np.ndarray, batch: int = 64) -> Any:
        t0 = time.perf_counter()
        out = self.inner.classify(spectra, batch)
        self.seconds["network"] += time.perf_counter() - t0
        return out


class PeerEmbedder:
    """The QuakeXNet-2D-style CNN (untrained) behind the embedder interface."""

    def __init__(self, pre: Any, classes: tuple[str, ...]) -> None:
        import torch
        from event_quality import QuakeXNet2DStyle
        from seislens.models.event_preprocess import waveform_to_spectrum

        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.torch = torch
        self.model = QuakeXNet2DStyle(len(classes)).eval()
        self.pre, self.classes, self.regression_outputs = pre, classes, ()
        self._spectrum = waveform_to_spectrum

    def spectra(self, windows: np.ndarray) -> np.ndarray:
        return self._spectrum(windows, self.pre)

    def classify(self, spectra: np.ndarray, batch: int = 64) -> tuple[np.ndarray, dict]:
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(np.ascontiguousarray(spectra)))
            return self.torch.softmax(logits, -1).numpy(), {}


def scan_config(args: argparse.Namespace) -> Any:
    """The ScanConfig of the command line: its defaults, ``--set`` overrides, then the
    named options that were given (the peer: no gate, no onset-aligned windows)."""
    from seislens.models.event_scan import ScanConfig

    fields: dict[str, Any] = dict(json.loads(args.set))
    named = [("stride_s", args.stride), ("threshold", args.threshold)]
    for name, value in [*named, ("peak_threshold", args.peak_threshold)]:
        if value is not None:
            fields[name] = value
    if args.gate is not None:
        fields["gate_ratio"] = None if args.gate <= 0 else args.gate
    fields["segment_spectra"] = args.segment_spectra
    if args.model == "peer":
        fields.update(gate_ratio=None, onset_positions_s=())
    return ScanConfig(**fields)


def run_scan(args: argparse.Namespace) -> None:
    """The child: scan ``--file`` with ``--model`` and print one JSON line."""
    from seislens.index.bundle import read_manifest
    from seislens.models.event_embedders import EventEmbedder
    from seislens.service.scan_reader import ScanBudgets
    from seislens.service.scan_run import scan_recording

    manifest = read_manifest(args.bundle)
    t0 = time.perf_counter()
    seislens = EventEmbedder(args.bundle, manifest.events, ["CPUExecutionProvider"], 1)
    inner = seislens if args.model == "seislens" else PeerEmbedder(seislens.pre, seislens.classes)
    embedder = TimedEmbedder(inner)
    load_s = time.perf_counter() - t0
    positions = None
    if args.stations_json:
        from seislens.models.event_association import StationPosition

        positions = {
            k: StationPosition(*v)
            for k, v in json.loads(Path(args.stations_json).read_text()).items()
        }
    t0 = time.perf_counter()
    result = scan_recording(
        args.file,
        args.file.name,
        embedder,
        scan_config(args),
        ScanBudgets(50, 1_000_000, 10**9),
        positions=positions,
    )
    wall = time.perf_counter() - t0
    out = {
        "model": args.model,
        "wall_s": round(wall, 2),
        "load_s": round(load_s, 2),
        "windows": result.windows,
        "network_windows": result.network_windows,
        "stages_s": {
            **{k: round(v, 2) for k, v in result.seconds.items()},
            **{k: round(v, 2) for k, v in embedder.seconds.items()},
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "detections": [
            {
                "station": d.station,
                "start": d.start,
                "end": d.end,
                "onset": d.onset,
                "label": d.label,
                "windows": d.windows,
                "peak": d.peak_probability,
            }
            for d in result.detections
        ],
        "events": [
            {
                "stations": [m.station for m in e.members],
                "starts": [m.start for m in e.members],
                "label": e.label,
                "agreement": e.agreement,
                "location": None
                if e.location is None
                else [e.location.latitude, e.location.longitude, e.location.rms_time_s],
            }
            for e in result.events
        ],
    }
    print("RESULT " + json.dumps(out))


def scan_in_child(
    args: argparse.Namespace, path: Path, model: str, stations_json: Path | None
) -> dict[str, Any]:
    """Run :func:`run_scan` in a fresh interpreter (its own peak RSS)."""
    argv = [
        sys.executable,
        __file__,
        "--scan-only",
        "--file",
        str(path),
        "--model",
        model,
        "--bundle",
        str(args.bundle),
        "--set",
        args.set,
    ]
    for flag, value in [
        ("--stride", args.stride),
        ("--threshold", args.threshold),
        ("--peak-threshold", args.peak_threshold),
        ("--gate", args.gate),
    ]:
        if value is not None:
            argv += [flag, str(value)]
    if not args.segment_spectra:
        argv.append("--per-window-spectra")
    if stations_json is not None:
        argv += ["--stations-json", str(stations_json)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.exit(f"the {model} scan failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


# --------------------------------------------------------------------------- scoring


ONSET_BINS = ("early > 1 s", "within 1 s", "1-3 s late", "3 s or more late")
"""Bins of a detection's onset − true P, for the class accuracy by onset quality."""


def onset_bin(error_s: float) -> str:
    """The :data:`ONSET_BINS` name of an onset error (s, onset − true P)."""
    if error_s < -1.0:
        return ONSET_BINS[0]
    if error_s <= 1.0:
        return ONSET_BINS[1]
    return ONSET_BINS[2] if error_s < 3.0 else ONSET_BINS[3]


def score(truth: dict[str, Any], scan: dict[str, Any]) -> dict[str, Any]:
    """Recall, false detections per day, class accuracy, onset error; one answer per
    event and agreement with several stations."""
    from seislens.models.event_association import epicentral_km

    dets = scan["detections"]
    used = [False] * len(dets)
    hits = correct = arrivals = 0
    onset_errors = []
    by_onset: dict[str, list[bool]] = {name: [] for name in ONSET_BINS}
    misses: list[dict[str, Any]] = []
    per_event: list[list[int]] = []
    for event in truth["events"]:
        found = []
        for station, st in event["stations"].items():
            arrivals += 1
            p = st["p_time"]
            match = [
                i
                for i, d in enumerate(dets)
                if d["station"] == station and d["start"] <= p <= d["end"]
            ]
            if not match:
                misses.append({"station": station, "label": event["label"], **st})
                continue
            i = min(match, key=lambda k: abs((dets[k]["onset"] or dets[k]["start"] + 60) - p))
            for k in match:
                used[k] = True
            hits += 1
            right = dets[i]["label"] == event["label"]
            correct += right
            if dets[i]["onset"] is not None:
                onset_errors.append(abs(dets[i]["onset"] - p))
                by_onset[onset_bin(dets[i]["onset"] - p)].append(right)
            found.append(i)
        per_event.append(found)
    days = truth["duration_s"] / 86400.0 * len(truth["stations"])  # station-days
    false = used.count(False)
    out: dict[str, Any] = {
        "arrivals": arrivals,
        "recall": hits / arrivals if arrivals else float("nan"),
        "false_detections": false,
        "false_per_day": false / days,
        "false_list": [dets[i] for i, u in enumerate(used) if not u],
        "missed_list": misses,
        "class_accuracy": correct / hits if hits else float("nan"),
        "onset_error_median_s": float(np.median(onset_errors)) if onset_errors else float("nan"),
        "onsets": f"{len(onset_errors)}/{hits}",
        "class_accuracy_by_onset": {
            name: {"detections": len(v), "accuracy": float(np.mean(v)) if v else float("nan")}
            for name, v in by_onset.items()
        },
    }
    if len(truth["stations"]) > 1:
        key = {(d["station"], d["start"]): i for i, d in enumerate(dets)}
        group_of = {}
        for g, e in enumerate(scan["events"]):
            for s, t in zip(e["stations"], e["starts"], strict=True):
                group_of[key[(s, t)]] = g
        multi = [f for f in per_event if len(f) >= 2]
        one = [f for f in multi if len({group_of[i] for i in f}) == 1]
        agree = [f for f in one if scan["events"][group_of[f[0]]]["agreement"] == 1.0]
        out["multi_station_events"] = len(multi)
        out["one_answer"] = len(one) / len(multi) if multi else float("nan")
        out["stations_agree"] = len(agree) / len(one) if one else float("nan")
        errors = []
        for f, event in zip(per_event, truth["events"], strict=True):
            if f in one:
                loc = scan["events"][group_of[f[0]]]["location"]
                if loc is not None:
                    errors.append(
                        float(epicentral_km(loc[0], loc[1], event["latitude"], event["longitude"]))
                    )
        out["located"] = len(errors)
        out["location_error_median_km"] = float(np.median(errors)) if errors else float("nan")
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    args = _parse()
    if args.scan_only:
        run_scan(args)
        return
    path, truth = recording(args)
    stations_json = None
    if args.locate and len(truth["stations"]) > 1:
        stations_json = path.with_suffix(".stations.json")
        stations_json.write_text(json.dumps(truth["stations"]))
    size_mb = path.stat().st_size / 1e6
    print(
        f"recording: {args.hours:g} h, {len(truth['stations'])} station(s), "
        f"{len(truth['events'])} events, SNR {args.snr[0]:g}–{args.snr[1]:g} dB, "
        f"{size_mb:.1f} MB miniSEED ({path})"
    )
    rows = []
    results = {}
    for model in ["seislens"] + (["peer"] if args.peer else []):
        scan = scan_in_child(args, path, model, stations_json if model == "seislens" else None)
        results[model] = {"scan": scan, "score": score(truth, scan)}
        s = results[model]["score"]
        rows.append(
            [
                model,
                f"{scan['wall_s']:.1f}",
                f"{scan['windows']}",
                f"{scan['windows'] / max(scan['wall_s'], 1e-9):.1f}",
                f"{scan['stages_s'].get('network', 0):.1f}",
                f"{scan['network_windows'] / max(scan['windows'], 1):.2f}",
                f"{scan['peak_rss_mib']:.0f}",
                f"{s['recall']:.3f}" if model == "seislens" else "(untrained)",
                f"{s['false_per_day']:.1f}" if model == "seislens" else "–",
                f"{s['class_accuracy']:.3f}" if model == "seislens" else "–",
            ]
        )
    print_table(
        [
            "scanner",
            "wall s",
            "windows",
            "windows/s",
            "network s",
            "to network",
            "peak RSS MiB",
            "recall",
            "false/station-day",
            "class acc.",
        ],
        rows,
    )
    s = results["seislens"]["score"]
    print(
        f"\nSeisLens: {s['arrivals']} inserted P arrivals; onsets found for {s['onsets']} "
        f"detections, median |onset − P| {s['onset_error_median_s']:.2f} s; "
        f"{s['false_detections']} false detection(s) in {args.hours:g} h × "
        f"{len(truth['stations'])} station(s)"
    )
    by_onset = ", ".join(
        f"{name} {b['accuracy']:.3f} ({b['detections']})"
        for name, b in s["class_accuracy_by_onset"].items()
        if b["detections"]
    )
    print(f"class accuracy by onset − P (detections): {by_onset}")
    if args.verbose:
        for d in s["false_list"]:
            print("  false:", json.dumps(d))
        for m in s["missed_list"]:
            print("  missed:", json.dumps(m))
    for model, r in results.items():
        print(f"{model} stages (s): {json.dumps(r['scan']['stages_s'])}")
    if "one_answer" in s:
        print(
            f"one answer per event: {s['one_answer']:.3f} of {s['multi_station_events']} events "
            f"detected at ≥ 2 stations form one event; stations agree on the type in "
            f"{s['stations_agree']:.3f} of those; located: {s['located']} (median epicentre "
            f"error {s['location_error_median_km']:.1f} km)"
        )
    if "peer" in results:
        ratio = results["seislens"]["scan"]["wall_s"] / results["peer"]["scan"]["wall_s"]
        print(f"SeisLens wall time / peer wall time: {ratio:.2f} (goal ≤ 0.5)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    p.add_argument("--hours", type=float, default=24.0, help="recording length (h)")
    p.add_argument("--stations", type=int, default=1)
    p.add_argument("--events-per-day", type=float, default=200.0)
    p.add_argument("--snr", type=float, nargs=2, default=(5.0, 20.0), help="SNR range (dB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stride", type=float, default=None, help="ScanConfig.stride_s")
    p.add_argument("--threshold", type=float, default=None, help="ScanConfig.threshold")
    p.add_argument("--peak-threshold", type=float, default=None, help="ScanConfig.peak_threshold")
    p.add_argument(
        "--gate",
        type=float,
        default=None,
        help="SeisLens's STA/LTA gate, ScanConfig.gate_ratio (0: off; peer: off)",
    )
    p.add_argument(
        "--set",
        default="{}",
        help="other ScanConfig fields as JSON, e.g. '{\"merge_gap_s\": null}' (unset: defaults)",
    )
    p.add_argument(
        "--per-window-spectra",
        dest="segment_spectra",
        action="store_false",
        help="spectra per window instead of one STFT per segment",
    )
    p.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peer")
    p.add_argument("--locate", action="store_true", help="give the scan the station coordinates")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "bench", help="recordings cache")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--verbose", action="store_true", help="list the false detections")
    p.add_argument("--scan-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", default="seislens", help=argparse.SUPPRESS)
    p.add_argument("--stations-json", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
