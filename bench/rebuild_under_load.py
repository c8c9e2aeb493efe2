"""Rebuilds under load and killed rebuilds: the figures of docs/reliability.md "Rebuilds".

    python bench/rebuild_under_load.py                           # the committed fixture
    python bench/rebuild_under_load.py --rounds 3 --kills 30 --copies 40 --events 400

On copies of a two-branch bundle (default: tests/fixtures/serving/bundle), with a real
uvicorn server and ``--concurrency`` clients querying both branches (velocity search, a
library model, the bundle, event search and classification — every answer must be the
expected 200):

1. ``watch``: each branch's index rebuilt ``--rounds`` times, the server hot-reloading
   each new index (its manifest watcher, 0.2 s);
2. ``admin``: the same with an admin reload after each rebuild as well;
3. ``none``: the same on a server without a watcher, which keeps its first load while
   the builds pass it (the lease keeps its folders), then one admin reload;
4. ``kill``: ``--kills`` index builds of each branch in subprocesses, SIGKILLed at times
   spread over a build; after every kill the bundle must load (the service's own load),
   and a last build must finish and leave no orphan.

The libraries rebuilt: the bundle's own velocity models ``--copies`` times (perturbed by
±1 %), and ``--events`` synthetic SeisBench-format traces. Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import obspy
from _common import print_table
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.models.branches import EVENTS, VELOCITY

from seislens.rebuild_drill import (
    LoadReport,
    ReloadMode,
    default_queries,
    killed_rebuilds,
    rebuild_under_load,
    velocity_library,
)
from seislens.server_process import running_server

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "serving" / "bundle"
CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
TOKEN = "bench-token"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=FIXTURE, help="a two-branch bundle (copied)")
    p.add_argument("--rounds", type=int, default=2, help="rebuilds per branch per phase")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--kills", type=int, default=20, help="SIGKILLed builds per branch")
    p.add_argument("--copies", type=int, default=20, help="velocity library: bundle models × N")
    p.add_argument("--events", type=int, default=200, help="synthetic traces of the events library")
    p.add_argument("--out", type=Path, default=None, help="work folder (default: a temp one)")
    p.add_argument("--start-timeout", type=float, default=300, help="server start-up limit (s)")
    return p.parse_args(argv)


def _phase(
    bundle: Path, work: Path, sources: dict, args: argparse.Namespace, reload: ReloadMode
) -> LoadReport:
    env = {"SEISLENS_PREFER_GPU": "false", "SEISLENS_ADMIN_TOKEN": TOKEN}
    if reload != "none":
        env["SEISLENS_WATCH_INTERVAL_S"] = "0.2"
    log = work / f"server-{reload}.log"
    with running_server(bundle, log, env, "warning", args.start_timeout) as server:
        return rebuild_under_load(
            server.url,
            bundle,
            sources,
            args.rounds,
            default_queries(CER.read_bytes()),
            args.concurrency,
            reload=reload,
            admin_token=TOKEN,
        )


def main(argv: list[str] | None = None) -> tuple[list[LoadReport], list]:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="seislens-rebuild-") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bundle = work / "bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(args.bundle, bundle)
        t0 = time.perf_counter()
        sources = {
            "velocity": [velocity_library(bundle, work / "velocity-library", args.copies)],
            "events": [
                generate_events(
                    work / "events", EventSynthConfig(count=args.events, seed=3), progress=False
                )
            ],
        }
        print(f"libraries ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        loads = []
        for mode in ("watch", "admin", "none"):
            t0 = time.perf_counter()
            loads.append(_phase(bundle, work, sources, args, mode))
            print(f"phase {mode}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        kills = []
        for branch in (VELOCITY, EVENTS):
            t0 = time.perf_counter()
            kills.append(killed_rebuilds(bundle, branch, sources[branch.name], args.kills))
            print(f"kills {branch.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    _print(args, loads, kills)
    return loads, kills


def _print(args: argparse.Namespace, loads: list[LoadReport], kills: list) -> None:
    print(
        f"### Rebuilds under load (concurrency {args.concurrency}, {args.rounds} rebuilds of "
        f"each branch per phase; velocity library {args.copies}× the bundle's models, events "
        f"library {args.events} traces)\n"
    )
    rows = [
        [mode, r.reloads, r.rebuilds["velocity"], r.rebuilds["events"], r.requests, r.failed]
        for mode, r in zip(("watch", "admin", "none"), loads, strict=True)
    ]
    total = [sum(r[i] for r in rows) for i in range(1, 6)]
    rows.append(["**all**", *total])
    print_table(
        ["reload", "reloads", "velocity rebuilds", "events rebuilds", "requests", "failed"], rows
    )
    for r in loads:
        for example in r.examples:
            print(f"- failed: {example}")
    print("\n### Killed rebuilds (SIGKILL at times spread over a build)\n")
    print_table(
        [
            "branch",
            "build (s)",
            "killed rebuilds",
            "killed while building",
            "lost / half-written bundles",
            "rerun finished",
            "orphans left",
        ],
        [
            [
                k.branch,
                f"{k.build_s:.2f}",
                k.kills,
                k.killed_while_building,
                k.lost,
                "yes" if k.final_build else "NO",
                len(k.leftovers),
            ]
            for k in kills
        ],
    )
    for k in kills:
        for problem in k.problems:
            print(f"- {k.branch}: {problem}")


if __name__ == "__main__":
    main()
