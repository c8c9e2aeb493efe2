"""A scan job's own process: the child side of :mod:`seislens.service.scan_jobs`.

The server starts one process per job (``spawn``: a fresh interpreter, nothing of the
server's threads or sockets) running :func:`run_job`. It caps its own address space
(``SEISLENS_SCAN_JOB_MEMORY_MIB``; not with the CUDA provider, whose mappings dwarf
what it uses), opens the bundle's event graphs, scans the upload
(:func:`~seislens.service.scan_run.scan_recording`), and writes into the job's folder:
``status.json`` as it goes (state, progress; each write atomic), the outputs of
:mod:`~seislens.service.scan_outputs` when done, and last the final status. A refusal of
the file ends the job "failed" with its reason; so does running out of memory
("too_much_memory") or anything unforeseen ("internal_error", the traceback in
``worker.log``). The upload is deleted when the job ends, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seislens.models.event_association import AssociationConfig, StationPosition
from seislens.models.event_preprocess import EventInputError
from seislens.models.event_scan import ScanConfig
from seislens.service.scan_outputs import write_text_atomic
from seislens.service.scan_reader import ScanBudgets

STATUS = "status.json"
UPLOAD = "upload.mseed"
LOG = "worker.log"
TERMINAL = frozenset({"done", "failed"})
PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class JobSpec:
    """Everything a scan job's process needs (picklable).

    Attributes:
        folder: the job's folder (holds the upload and receives the outputs).
        job_id: its id.
        filename: the client's name for the upload.
        bundle: the bundle directory; section: its events section (manifest model).
        bundle_name: the bundle's name (reported).
        providers: ONNX Runtime execution providers; threads: intra-op threads.
        config: scan settings; association: grouping and location settings.
        budgets: what the file may declare.
        positions: station coordinates from StationXML, or None.
        memory_mib: the process's address-space cap (0: none).
    """

    folder: Path
    job_id: str
    filename: str
    bundle: Path
    section: Any
    bundle_name: str
    providers: list[str]
    threads: int
    config: ScanConfig
    association: AssociationConfig
    budgets: ScanBudgets
    positions: dict[str, StationPosition] | None
    memory_mib: int


def read_status(folder: Path) -> dict[str, Any] | None:
    """A job's status document, or None when it has none (yet)."""
    try:
        return json.loads((folder / STATUS).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_status(folder: Path, status: dict[str, Any]) -> None:
    """Replace a job's status document (atomically)."""
    write_text_atomic(folder / STATUS, json.dumps(status, indent=1))


def update_status(folder: Path, **changes: Any) -> dict[str, Any]:
    """The job's status with ``changes`` applied, written back."""
    status = read_status(folder) or {}
    status.update(changes)
    write_status(folder, status)
    return status


def failure(detail: str, reason: str) -> dict[str, str]:
    """A failed job's ``error``: what and why, as the API's errors say it."""
    return {"detail": detail, "reason": reason}


def _start_ticks() -> int | None:
    """This process's start time in clock ticks since boot (Linux), or None: with the
    pid, what tells a restarted server that the job's process still runs."""
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _limit_memory(limit_mib: int) -> None:
    if limit_mib <= 0:
        return
    import resource

    limit = limit_mib * 2**20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_job(spec: JobSpec) -> None:
    """The job process's entry point (see the module docstring)."""
    if "CUDAExecutionProvider" not in spec.providers:  # CUDA maps far more than it uses
        _limit_memory(spec.memory_mib)
    folder = spec.folder
    update_status(
        folder,
        state="running",
        started=time.time(),
        worker_pid=os.getpid(),
        worker_start_ticks=_start_ticks(),
    )
    try:
        document = _scan(spec)
        update_status(
            folder,
            state="done",
            finished=time.time(),
            progress=_progress(document["windows"], document["windows"], None),
            summary={
                "detections": len(document["detections"]),
                "events": len(document["events"]),
                "stations": len(document["stations"]),
                "skipped": len(document["skipped"]),
            },
        )
    except EventInputError as exc:
        update_status(
            folder, state="failed", finished=time.time(), error=failure(str(exc), exc.reason)
        )
    except MemoryError:
        update_status(
            folder,
            state="failed",
            finished=time.time(),
            error=failure(
                f"the scan needed more than the {spec.memory_mib} MiB a scan job may use "
                "(SEISLENS_SCAN_JOB_MEMORY_MIB)",
                "too_much_memory",
            ),
        )
    except Exception as exc:
        (folder / LOG).write_text(traceback.format_exc(), encoding="utf-8")
        update_status(
            folder,
            state="failed",
            finished=time.time(),
            error=failure(
                f"internal error ({type(exc).__name__}); the job's worker.log has the details",
                "internal_error",
            ),
        )
    finally:
        (folder / UPLOAD).unlink(missing_ok=True)


def _progress(done: int, total: int, station: str | None) -> dict[str, Any]:
    return {
        "fraction": round(done / total, 4) if total else 1.0,
        "windows_done": done,
        "windows_total": total,
        "station": station,
    }


def _scan(spec: JobSpec) -> dict[str, Any]:
    from seislens.models.event_embedders import EventEmbedder
    from seislens.service.scan_outputs import write_outputs
    from seislens.service.scan_run import ScanProgress, scan_recording

    embedder = EventEmbedder(spec.bundle, spec.section, spec.providers, spec.threads)
    last = [0.0]

    def progress(p: ScanProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or p.done == p.total:
            last[0] = now
            update_status(spec.folder, progress=_progress(p.done, p.total, p.station))

    result = scan_recording(
        spec.folder / UPLOAD,
        spec.filename,
        embedder,
        spec.config,
        spec.budgets,
        positions=spec.positions,
        association=spec.association,
        progress=progress,
    )
    return write_outputs(
        result,
        spec.folder,
        id=spec.job_id,
        bundle=spec.bundle_name,
        provider=embedder.provider,
    )
