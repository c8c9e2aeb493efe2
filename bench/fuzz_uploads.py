"""Mutated real uploads of every format against a real uvicorn server, from concurrent
clients: does anything answer 5xx, kill the server, hang, or blow its memory?

    python bench/fuzz_uploads.py --bundle artifacts/default --count 10000 --clients 4

Seeds (real files, each mutated before it is sent):

* miniSEED → ``POST /v1/events/classify``: obspy's real local event
  (``io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed``), a few of obspy's own
  miniSEED test files (Steim-1 with gaps, two channels, FLOAT64, timing blockettes) and
  issue 11's crash reproducers (trailing garbage; a 4 KiB record declaring 65,535
  FLOAT64 samples);
* SEG-Y, SU, npy → ``POST /v1/velocity/search``: the serving fixture's real gather
  (tests/fixtures/serving/velocity_sample.npz) written by segyio (SEG-Y rev 1 IEEE and
  IBM, little-endian SU) and by NumPy.

Each upload gets 1–4 mutations: random bytes anywhere, random bytes in the first
kilobytes (the headers), header fields set to extremes (miniSEED sample counts,
offsets, encodings, record lengths; SEG-Y sample interval, samples per trace, format
code; npy header text), truncation, appended bytes, a repeated block. The generator is
seeded (``--seed``): a run is reproducible.

Prints, per format: uploads, answers by class, 5xx, server deaths (the process gone or
not answering ``/healthz``; it is restarted and the run goes on), failed requests, the
slowest refusal (4xx) and slowest answer, and the peak resident memory of the server
process and of its whole process tree (server, forkserver, parse workers), sampled every
0.1 s from /proc. Exit status 1 when any 5xx or death was seen.
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import obspy
from _common import print_table
from seislens.data.gather_files import write_segy, write_su
from seislens.service import recording_examples as ex

from seislens.server_process import RunningServer, running_server

ROOT = Path(__file__).resolve().parents[1]
OBSPY = Path(obspy.__file__).parent
MSEED_DATA = OBSPY / "io/mseed/tests/data"
CER = OBSPY / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
GATHER = ROOT / "tests/fixtures/serving/velocity_sample.npz"
FORMATS = ("mseed", "segy", "su", "npy")
ROUTES = {
    "mseed": "/v1/events/classify",
    "segy": "/v1/velocity/search",
    "su": "/v1/velocity/search",
    "npy": "/v1/velocity/search",
}
FILENAMES = {"mseed": "event.mseed", "segy": "shot.sgy", "su": "shot.su", "npy": "shot.npy"}


# --------------------------------------------------------------------------- seeds


def seeds() -> dict[str, list[bytes]]:
    """The real files each format's uploads are mutated from."""
    mseed = [CER.read_bytes(), ex.trailing_garbage(CER.read_bytes()), ex.overfull_record()]
    for name in ("gaps.mseed", "two_channels.mseed", "timingquality.mseed"):
        mseed.append((MSEED_DATA / name).read_bytes())
    mseed.append((MSEED_DATA / "encoding/float64_Float64_bigEndian.mseed").read_bytes())
    gather = np.load(GATHER)["gather"].astype(np.float32)
    out = {"mseed": mseed, "segy": [], "su": [], "npy": []}
    with tempfile.TemporaryDirectory(prefix="seislens-fuzz-") as tmp:
        for ibm in (False, True):
            path = Path(tmp) / f"g{ibm}.sgy"
            write_segy(path, gather, ibm=ibm)
            out["segy"].append(path.read_bytes())
        path = Path(tmp) / "g.su"
        write_su(path, gather)
        out["su"].append(path.read_bytes())
    buffer = io.BytesIO()
    np.save(buffer, gather)
    out["npy"].append(buffer.getvalue())
    return out


# --------------------------------------------------------------------------- mutations

_MSEED_FIELDS = (20, 22, 30, 32, 34, 39, 44, 46, 48, 52, 53, 54)
_SEGY_FIELDS = (3216, 3220, 3224, 3500, 3504, 3240 + 114, 3240 + 116, 3240 + 28)
_SU_FIELDS = (114, 116, 28, 70, 72, 80, 240 + 114, 240 + 116)
_EXTREMES = (0, 1, 2, 0x7FFF, 0x8000, 0xFFFF)


def mutate(data: bytes, fmt: str, rng: random.Random) -> bytes:
    """``data`` with 1–4 random mutations (see the module's docstring)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        kind = rng.choice(("byte", "head", "field", "cut", "append", "repeat"))
        if kind == "byte":
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif kind == "head":
            out[rng.randrange(min(len(out), 4096))] = rng.randrange(256)
        elif kind == "field":
            _set_field(out, fmt, rng)
        elif kind == "cut":
            del out[rng.randrange(len(out) + 1) :]
        elif kind == "append":
            out += rng.randbytes(rng.randint(1, 2048))
        else:
            start = rng.randrange(len(out))
            out += out[start : start + rng.randint(1, 4096)]
    return bytes(out)


def _set_field(out: bytearray, fmt: str, rng: random.Random) -> None:
    if fmt == "npy":
        header_end = out.find(b"\n", 0, 256)
        text = out[:header_end].decode("latin-1") if header_end > 0 else ""
        swaps = [("5, 1000, 70", rng.choice(["0,", "99999999, 99999999", "-1, 2", "5, 1000"]))]
        swaps += [("<f4", rng.choice(["<f8", "|O", "<c8", ">f4", "<U4"])), ("False", "True")]
        old, new = rng.choice(swaps)
        if old in text:
            out[:header_end] = text.replace(old, new).encode("latin-1")
        return
    if fmt == "mseed":
        at = rng.randrange(max(1, len(out) // 512)) * 512 + rng.choice(_MSEED_FIELDS)
        order = ">"
    else:
        at = rng.choice(_SEGY_FIELDS if fmt == "segy" else _SU_FIELDS)
        order = "<" if fmt == "su" else ">"
    if at + 2 <= len(out):
        out[at : at + 2] = struct.pack(order + "H", rng.choice(_EXTREMES))


# --------------------------------------------------------------------------- the run


@dataclass
class Tally:
    """What one format's uploads got."""

    sent: int = 0
    classes: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failed: int = 0
    deaths: int = 0
    slowest_refusal_s: float = 0.0
    slowest_refusal: str = ""
    slowest_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    order: list[tuple[float, int, str]] = field(default_factory=list)


class MemoryWatch:
    """Peak resident memory (MiB) of a process and of its process tree, from /proc."""

    def __init__(self, pid: int, period_s: float = 0.1) -> None:
        self.pid, self.period_s = pid, period_s
        self.peak_server_mib = 0.0
        self.peak_tree_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            tree = _tree(self.pid)
            rss = {pid: _rss_mib(pid) for pid in [self.pid, *tree]}
            self.peak_server_mib = max(self.peak_server_mib, rss[self.pid])
            self.peak_tree_mib = max(self.peak_tree_mib, sum(rss.values()))


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree(root: int) -> list[int]:
    """Every live descendant of ``root``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def alive(server: RunningServer) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def run_format(
    fmt: str, files: list[bytes], args: argparse.Namespace, tally: Tally, peaks: list
) -> None:
    """Send ``args.count`` mutated uploads of ``fmt``; restart the server after a death."""
    rng = random.Random(f"{args.seed}-{fmt}")
    uploads = [mutate(rng.choice(files), fmt, rng) for _ in range(args.count)]
    while tally.sent < len(uploads):
        if _session(fmt, uploads, args, tally, peaks):
            tally.deaths += 1
            print(f"{fmt}: the server died after {tally.sent} uploads; restarting", file=sys.stderr)


def _session(
    fmt: str, uploads: list[bytes], args: argparse.Namespace, tally: Tally, peaks: list
) -> bool:
    """One server's share of the uploads, from ``args.clients`` clients; whether it died."""
    lock = threading.Lock()
    died = threading.Event()
    todo = iter(range(tally.sent, len(uploads)))
    with running_server(args.bundle, env=ENV, log_level="warning") as server:
        watch = MemoryWatch(server.pid)
        with ThreadPoolExecutor(args.clients) as pool:
            jobs = [
                pool.submit(_client, fmt, uploads, todo, args, tally, lock, server, died)
                for _ in range(args.clients)
            ]
            for job in jobs:
                job.result()
        watch.stop()
        peaks.append((watch.peak_server_mib, watch.peak_tree_mib))
    return died.is_set()


def _client(
    fmt: str,
    uploads: list[bytes],
    todo: Iterator[int],
    args: argparse.Namespace,
    tally: Tally,
    lock: threading.Lock,
    server: RunningServer,
    died: threading.Event,
) -> None:
    """One client: take the next upload until none is left or the server died."""
    with httpx.Client(base_url=server.url, timeout=args.timeout) as http:
        while not died.is_set():
            with lock:
                i = next(todo, None)
            if i is None:
                return
            _send(http, fmt, uploads[i], tally, lock, server, died)


def _send(
    http: httpx.Client,
    fmt: str,
    data: bytes,
    tally: Tally,
    lock: threading.Lock,
    server: RunningServer,
    died: threading.Event,
) -> None:
    t0 = time.perf_counter()
    try:
        r = http.post(ROUTES[fmt], files={"file": (FILENAMES[fmt], data)})
    except httpx.HTTPError as exc:
        with lock:
            tally.sent += 1
            tally.failed += 1
        if not alive(server):
            died.set()
        else:
            print(f"{fmt}: request failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    seconds = time.perf_counter() - t0
    with lock:
        tally.sent += 1
        tally.classes[f"{r.status_code // 100}xx"] += 1
        tally.latencies.append(seconds)
        tally.order.append((seconds, tally.sent, f"{r.status_code} {r.json().get('reason', '')}"))
        if DUMP is not None and seconds > 1.0:
            (DUMP / f"{fmt}-{tally.sent}-{seconds:.2f}s-{r.status_code}").write_bytes(data)
        tally.slowest_s = max(tally.slowest_s, seconds)
        if 400 <= r.status_code < 500 and seconds > tally.slowest_refusal_s:
            tally.slowest_refusal_s = seconds
            tally.slowest_refusal = f"{r.status_code} {r.json().get('reason')}"
        if r.status_code >= 500:
            tally.server_errors.append(f"{r.status_code} {r.text[:200]}")


ENV = {"SEISLENS_PREFER_GPU": "false"}
DUMP: Path | None = None


def main() -> None:
    global DUMP
    args = _parse()
    DUMP = args.dump_slow
    if DUMP is not None:
        DUMP.mkdir(parents=True, exist_ok=True)
    files = seeds()
    rows = []
    bad = False
    for fmt in args.formats:
        tally, peaks = Tally(), []
        t0 = time.perf_counter()
        run_format(fmt, files[fmt], args, tally, peaks)
        wall = time.perf_counter() - t0
        server_mib = max(p[0] for p in peaks)
        tree_mib = max(p[1] for p in peaks)
        p50 = float(np.median(tally.latencies)) if tally.latencies else float("nan")
        rows.append(
            [
                fmt,
                str(tally.sent),
                ", ".join(f"{k} {v}" for k, v in sorted(tally.classes.items())),
                str(len(tally.server_errors)),
                str(tally.deaths),
                str(tally.failed),
                f"{tally.slowest_refusal_s:.3f} ({tally.slowest_refusal})",
                f"{tally.slowest_s:.3f}",
                f"{p50 * 1000:.1f}",
                f"{server_mib:.0f}",
                f"{tree_mib:.0f}",
                f"{wall:.0f}",
            ]
        )
        for slow in sorted(tally.order, reverse=True)[: args.show_slowest]:
            print(f"{fmt}: {slow[0]:.3f} s, upload #{slow[1]}, {slow[2]}", file=sys.stderr)
        for line in tally.server_errors[:5]:
            print(f"{fmt}: {line}", file=sys.stderr)
        bad |= bool(tally.server_errors) or tally.deaths > 0
    print(
        f"{args.count} mutated uploads per format, {args.clients} concurrent clients, "
        f"seed {args.seed}, bundle {args.bundle}"
    )
    print()
    print_table(
        [
            "format",
            "uploads",
            "answers",
            "5xx",
            "server deaths",
            "failed requests",
            "slowest refusal (s)",
            "slowest answer (s)",
            "p50 (ms)",
            "peak server RSS (MiB)",
            "peak tree RSS (MiB)",
            "wall (s)",
        ],
        rows,
    )
    sys.exit(1 if bad else 0)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=ROOT / "artifacts/default")
    p.add_argument("--count", type=int, default=10_000, help="uploads per format")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout (s)")
    p.add_argument("--show-slowest", type=int, default=5, help="slowest answers listed")
    p.add_argument("--dump-slow", type=Path, default=None, help="save uploads slower than 1 s here")
    return p.parse_args()


if __name__ == "__main__":
    main()
