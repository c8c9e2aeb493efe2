"""Event serving through real HTTP: uvicorn in a subprocess, miniSEED uploads over loopback.

    python bench/serve_events.py --bundle artifacts/default

Prints a markdown table: p50/p99 latency of one 3-component classification
(``POST /v1/events/classify`` with obspy's real local event
``io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed``, 150 Hz, 71 s) at
concurrency 1, and the server's own time per stage. Then what the service says of each
real recording obspy ships: the CER event, the BW.UH3 local event in
``signal/tests/data`` (three SH? files, read by obspy and uploaded as miniSEED) and
``obspy.read()``'s default example (BW.RJOB, 30 s: shorter than the 60 s window, so it
is refused unless the bundle's preprocessing allows that much padding).

The client runs on the same machine as the server and takes part of its CPU: the
figures are what one machine serves to itself. The models were trained on synthetic
data: what they say of real recordings is shown, not scored.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import httpx
import numpy as np
import obspy
from _common import add_server_options, print_table, sequential_posts, server_env

from seislens.server_process import running_server

CLASSIFY = "/v1/events/classify"
OBSPY = Path(obspy.__file__).parent
CER = OBSPY / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
UH3 = sorted((OBSPY / "signal/tests/data").glob("BW.UH3*"))


def main() -> None:
    args = _parse()
    with (
        running_server(
            args.bundle,
            env=server_env(args),
            log_level="warning",
            start_timeout_s=args.start_timeout,
        ) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        bundle = http.get("/v1/bundle").json()
        events = bundle.get("events")
        if events is None:
            sys.exit(
                f"bundle {args.bundle} has no event branch: {bundle.get('events_unavailable')}"
            )
        cer = CER.read_bytes()
        latencies, stages = _sequential(http, cer, args.requests, args.warmup, args.k)
        recordings = _recordings()
        answers = [(name, _classify(http, data, args.k)) for name, data in recordings]
    index = events.get("index") or {}
    print(
        f"\nbundle {args.bundle}: event classes {', '.join(events['classes'])}; library "
        f"{index.get('count', 0)} events ({index.get('kind', 'no index')}); ONNX Runtime "
        f"{events['execution_provider']}; {os.cpu_count()} CPU cores (client and server "
        "share them)\n"
    )
    p50, p99 = np.percentile(latencies, [50, 99])
    print_table(
        ["measure", "value", "goal"],
        [
            [
                f"classify latency p50, concurrency 1 ({args.requests} requests, k={args.k})",
                f"{p50:.1f} ms",
                "≤ 50 ms",
            ],
            [
                f"classify latency p99, concurrency 1 ({args.requests} requests)",
                f"{p99:.1f} ms",
                "",
            ],
            ["upload", f"{CER.name}, {len(cer) / 1e3:.1f} kB, 3 × 10650 samples at 150 Hz", ""],
        ],
    )
    print("\nserver time per stage (median over the measured requests, ms)\n")
    print_table(["stage", "ms"], [[k, f"{v:.2f}"] for k, v in stages.items()])
    print("\n## What the service says of obspy's real recordings\n")
    print(
        "Trained on synthetic data only: these are the model's answers, not scored against "
        "any catalogue.\n"
    )
    print_table(
        [
            "recording",
            "station",
            "window",
            "label (p)",
            "probabilities",
            "distance",
            "depth",
            "magnitude",
            "top-3 similar (label, score)",
        ],
        [row for name, answer in answers for row in _rows(name, answer)],
    )
    print()


# --------------------------------------------------------------------------- HTTP


def _sequential(
    http: httpx.Client, data: bytes, n: int, warmup: int, k: int
) -> tuple[list[float], dict[str, float]]:
    """n classifications one after another on one keep-alive connection: latencies
    (ms) and the server's median time per stage."""
    return sequential_posts(http, CLASSIFY, "event.mseed", data, {"k": k}, n, warmup)


def _classify(http: httpx.Client, data: bytes, k: int) -> dict:
    r = http.post(CLASSIFY, files={"file": ("event.mseed", data)}, params={"k": k})
    return {"status": r.status_code, **r.json()}


def _recordings() -> list[tuple[str, bytes]]:
    """obspy's real recordings, as miniSEED bytes."""
    out = [(f"CER local event ({CER.name})", CER.read_bytes())]
    if UH3:
        stream = obspy.core.Stream()
        for path in UH3:
            stream += obspy.read(str(path))
        out.append((f"BW.UH3 local event ({len(UH3)} files {UH3[0].name[:10]}…)", _mseed(stream)))
    out.append(("obspy.read() default example (BW.RJOB, 30 s)", _mseed(obspy.read())))
    return out


def _mseed(stream: obspy.core.Stream) -> bytes:
    """Written as miniSEED; 64-bit integer counts (the slist reader's) become int32,
    which miniSEED can encode."""
    for trace in stream:
        if trace.data.dtype == np.int64:
            trace.data = trace.data.astype(np.int32)
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED")
    return buffer.getvalue()


def _rows(name: str, answer: dict) -> list[list[str]]:
    if answer["status"] != 200:
        return [[name, "", "", f"refused ({answer['status']})", answer["detail"], "", "", "", ""]]
    rows = []
    for s in answer["stations"]:
        w = s["window"]
        probs = s["probabilities"]
        similar = ", ".join(f"{x['label']} {x['score']:.3f}" for x in s["similar"][:3])
        rows.append(
            [
                name,
                s["station"],
                f"{w['rule']}, {w['start'][11:22]}–{w['end'][11:22]}",
                f"{s['label']} ({probs[s['label']]:.2f})",
                ", ".join(f"{c} {p:.2f}" for c, p in probs.items()),
                f"{s['distance_km']['value']:.1f} km",
                f"{s['depth_km']['value']:.1f} km ({_depth_note(s)})",
                f"{s['magnitude']['value']:.2f}",
                similar or "(no index)",
            ]
        )
    for skipped in answer.get("skipped", []):
        rows.append([name, skipped["station"], "", "skipped", skipped["reason"], "", "", "", ""])
    return rows


def _depth_note(station: dict) -> str:
    """How the answer's depth was found, and why the S − P check did not apply."""
    check = station.get("travel_time") or {}
    if check.get("applied"):
        return f"S − P {check['s_pick']['s_minus_p_s']:.1f} s"
    return f"heads: {check['reason']}" if check.get("reason") else "heads"


# --------------------------------------------------------------------------- server


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    p.add_argument("--requests", type=int, default=200, help="classifications at concurrency 1")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--k", type=int, default=10, help="similar events asked for")
    add_server_options(p, faiss_threads=False)
    args = p.parse_args()
    if not (args.bundle / "manifest.json").exists():
        p.error(f"{args.bundle} is not a bundle (no manifest.json); pass --bundle")
    if args.requests < 1 or args.warmup < 0 or not 1 <= args.k <= 100:
        p.error("--requests must be >= 1, --warmup >= 0 and --k within 1-100")
    if not CER.exists():
        p.error(f"obspy's test file {CER} is missing (an obspy install without its tests?)")
    return args


if __name__ == "__main__":
    main()
