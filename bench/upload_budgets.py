"""What issue 11's expensive miniSEED uploads cost now, and what the largest file the
budgets accept costs: each read in a fresh parse worker (as the service reads uploads).

    python bench/upload_budgets.py

Cases (built here, deterministic):

* ``low_rate_1.8MB``: the issue's 2.5 Hz file, 3 × 10^6 samples (10^6 a channel; before:
  0.95 → 2.46 GB of server memory in 6.4 s);
* ``40002_traces``: 40,002 two-sample traces (before: 16.5 s of a core);
* ``trailing_garbage`` and ``overfull_record``: the crash reproducers;
* ``max_accepted``: 3 stations × 3 components × 6 h at 100 Hz (2,160,000 samples a
  channel, 19.4 × 10^6 in all: the largest the default budgets accept), Steim-2;
* ``low_rate_6h``: 6 h at 20 Hz (windowed before it is resampled).

Prints a Markdown table: file size, the answer (the reason of a refusal), wall seconds of
the call (after one warm-up refusal in the same worker), and the worker's peak resident
memory (VmHWM) and address space (VmPeak) in MiB, against its limit
(SEISLENS_PARSE_WORKER_MEMORY_MIB, default 1536). Then what the two crash reproducers
do to a process that reads them as the service did before (plain ``obspy.read`` in
threads: the exit signal).
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np
import obspy
from _common import print_table
from obspy import Stream, Trace, UTCDateTime
from seislens.models.event_preprocess import EventInputError, EventPreprocessConfig
from seislens.service import recording_examples as ex
from seislens.service.parse_pool import ParsePool
from seislens.service.recordings import RecordingBudgets
from seislens.service.settings import Settings

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
T0 = UTCDateTime(2020, 1, 1)
JOB = "seislens.service.recordings:window_recording"


def _stream(n: int, rate: float, stations: tuple[str, ...]) -> Stream:
    rng = np.random.default_rng(0)
    traces = []
    for sta in stations:
        for comp in "ZNE":
            data = (rng.standard_normal(n) * 100).astype(np.int32)
            header = {"network": "XX", "station": sta, "channel": f"HH{comp}"}
            traces.append(Trace(data, {**header, "sampling_rate": rate, "starttime": T0}))
    return Stream(traces)


def _mseed(stream: Stream) -> bytes:
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED", reclen=4096, encoding="STEIM2")
    return buffer.getvalue()


def cases() -> dict[str, bytes]:
    return {
        "low_rate_1.8MB": _mseed(_stream(1_000_000, 2.5, ("LOW",))),
        "40002_traces": ex.many_short_traces(40_002),
        "trailing_garbage": ex.trailing_garbage(CER.read_bytes()),
        "overfull_record": ex.overfull_record(),
        "max_accepted": _mseed(_stream(2_160_000, 100.0, ("A", "B", "C"))),
        "low_rate_6h": _mseed(_stream(432_000, 20.0, ("L20",))),
    }


def _proc_mib(pid: int) -> tuple[float, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmHWM"].split()[0]) / 1024, int(status["VmPeak"].split()[0]) / 1024


def _call(pool: ParsePool, args: tuple) -> str:
    """One read in the pool's worker: 'read: N windows' or 'refused: <reason>'."""
    try:
        result = pool.call(JOB, args, Settings().parse_deadline_s)
    except EventInputError as exc:
        return f"refused: {exc.reason}"
    return f"read: {len(result.windows)} windows"


_UNGUARDED = """
import sys, threading, warnings, obspy
warnings.simplefilter("ignore")
def read(n):
    for _ in range(n):
        try:
            obspy.read(sys.argv[1], format="MSEED")
        except Exception:
            pass
threads = [threading.Thread(target=read, args=(int(sys.argv[3]),)) for _ in range(int(sys.argv[2]))]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def unguarded(data: bytes, threads: int, reads: int) -> str:
    """What plain ``obspy.read`` in ``threads`` threads of one process (``reads`` each, no
    lock, no header check: the service before issue 11) makes of ``data``."""
    import signal
    import subprocess
    import sys

    with tempfile.NamedTemporaryFile(suffix=".mseed") as fh:
        fh.write(data)
        fh.flush()
        argv = [sys.executable, "-c", _UNGUARDED, fh.name, str(threads), str(reads)]
        code = subprocess.run(argv, capture_output=True, timeout=600).returncode
    if code < 0:
        return f"died: {signal.Signals(-code).name}"
    return "survived" if code == 0 else f"exit status {code}"


def main() -> None:
    settings = Settings()
    budgets = RecordingBudgets.from_settings(settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="seislens-budgets-") as tmp:
        for name, data in cases().items():
            path = Path(tmp) / name
            path.write_bytes(data)
            pool = ParsePool(1, settings.parse_worker_memory_mib)
            pool.warm()
            warm = Path(tmp) / "warm"
            warm.write_bytes(ex.overfull_record())
            _call(pool, (str(warm), "warm.mseed", EventPreprocessConfig(), None, None, 50, budgets))
            args = (str(path), "event.mseed", EventPreprocessConfig(), None, None, 50, budgets)
            t0 = time.perf_counter()
            answer = _call(pool, args)
            seconds = time.perf_counter() - t0
            hwm, peak = _proc_mib(pool.pids()[0])
            pool.close()
            rows.append(
                [
                    name,
                    f"{len(data) / 2**20:.2f}",
                    answer,
                    f"{seconds:.2f}",
                    f"{hwm:.0f}",
                    f"{peak:.0f}",
                ]
            )
    print(f"parse worker limit: {settings.parse_worker_memory_mib} MiB address space")
    print()
    print_table(
        ["reproducer, read by plain obspy.read in one process", "outcome"],
        [
            [
                "trailing garbage, 4 threads × 200 reads",
                unguarded(cases()["trailing_garbage"], 4, 200),
            ],
            ["overfull record, 1 thread × 1 read", unguarded(ex.overfull_record(), 1, 1)],
        ],
    )
    print()
    print_table(
        ["case", "file (MiB)", "answer", "seconds", "worker peak RSS (MiB)", "worker VmPeak (MiB)"],
        rows,
    )


if __name__ == "__main__":
    main()
