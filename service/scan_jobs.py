"""Scan jobs on the server's side: where they live, how many run, what survives a restart.

A job is a folder ``<SEISLENS_SCAN_JOBS_DIR>/<id>/`` (``id``: 32 hex digits) holding the
upload while it runs, ``status.json`` (its state: queued → running → done or failed,
progress, error) and, once done, the outputs of :mod:`~seislens.service.scan_outputs`.
Every file there is written aside and renamed, so a reader — this process, another one,
or this one after a restart — sees a whole file.

* **Separate processes** — each job runs in its own process
  (:func:`~seislens.service.scan_worker.run_job`, started with ``spawn``), capped in
  address space: a crashing C reader or a job running out of memory costs that job, not
  the server. The request that submitted it only waits for the upload: a client that
  disconnects afterwards does not cancel the job.
* **Bounded** — at most ``SEISLENS_MAX_SCAN_JOBS`` run at once; one more is refused
  before its upload is read (:class:`TooManyScansError`, 429 with ``Retry-After``).
* **Reaped** — a watcher thread per job waits for its process; a process that ended
  without writing a final status (killed, crashed) leaves the job "failed" with the
  reason (``worker_crashed``, its exit status).
* **Restarts** — finished jobs are files and stay readable. At the first use after a
  start (:meth:`ScanJobs.recover`), a job still "queued" or "running" whose process is
  gone is marked failed (``interrupted``); processes are daemonic, so a service that
  stops takes its running jobs with it.
* **Retention** — finished jobs older than ``SEISLENS_SCAN_JOB_RETENTION_S`` are deleted
  when a new one is submitted.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from seislens.service.errors import ApiError, NotFoundError
from seislens.service.scan_worker import (
    STATUS,
    TERMINAL,
    UPLOAD,
    JobSpec,
    failure,
    read_status,
    run_job,
    update_status,
    write_status,
)
from seislens.service.settings import Settings

log = logging.getLogger("seislens.service")

_ID = re.compile(r"[0-9a-f]{32}")


class TooManyScansError(ApiError):
    """Every scan slot is taken (429; retry later).

    Args:
        limit: the most jobs running at once.
    """

    status, reason = 429, "too_many_scans"
    headers = {"Retry-After": "30"}  # noqa: RUF012

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} scan job(s) are running, the most this service runs at once "
            "(SEISLENS_MAX_SCAN_JOBS); retry when one has finished"
        )


class UnknownScanError(NotFoundError):
    """No scan job has this id (404)."""

    reason = "unknown_scan"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"no scan job {job_id!r} here: ids are 32 hex digits from POST /v1/events/scans "
            "(finished jobs are kept for SEISLENS_SCAN_JOB_RETENTION_S)"
        )


class ScanNotFinishedError(ApiError):
    """A scan's outputs were asked for before it finished, or of a failed scan (409)."""

    status = 409

    def __init__(self, job_id: str, state: str, error: dict[str, Any] | None) -> None:
        if state == "failed":
            why = (error or {}).get("detail", "no reason recorded")
            super().__init__(f"scan {job_id} failed: {why}; it has no outputs", "scan_failed")
        else:
            super().__init__(
                f"scan {job_id} is {state}; its outputs exist once it is done (GET "
                f"/v1/events/scans/{job_id} gives its progress)",
                "scan_not_finished",
            )


def exit_cause(exitcode: int | None) -> str:
    """'signal SIGKILL', 'exit status 1' or 'unknown exit' of a process's exit code."""
    if exitcode is None:
        return "unknown exit"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def process_start_ticks(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(status: dict[str, Any]) -> bool:
    """Whether the process a status names is still the one running its job."""
    pid = status.get("worker_pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    ticks = status.get("worker_start_ticks")
    return ticks is None or process_start_ticks(pid) == ticks


class ScanJobs:
    """The scan jobs of one service (see the module docstring).

    Args:
        settings: the folder, the limits and the job processes' budget.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.scan_jobs_dir)
        self._lock = threading.Lock()
        self._running: dict[str, Any] = {}
        self._reserved: set[str] = set()
        self._recovered = False

    # ------------------------------------------------------------------ folders

    def folder(self, job_id: str) -> Path:
        """A job's folder (it may not exist)."""
        return self.root / job_id

    def status(self, job_id: str) -> dict[str, Any]:
        """A job's status.

        Raises:
            UnknownScanError: no such job.
        """
        self.recover()
        if not _ID.fullmatch(job_id):
            raise UnknownScanError(job_id)
        status = read_status(self.folder(job_id))
        if status is None:
            raise UnknownScanError(job_id)
        if status.get("state") not in TERMINAL and not self._watched(job_id):
            status = self._reconcile(job_id, status)
        return status

    def output(self, job_id: str, name: str) -> Path:
        """The path of a finished job's output file ``name``.

        Raises:
            UnknownScanError: no such job; ScanNotFinishedError: not done (yet).
        """
        status = self.status(job_id)
        if status.get("state") != "done":
            raise ScanNotFinishedError(job_id, str(status.get("state")), status.get("error"))
        return self.folder(job_id) / name

    # ------------------------------------------------------------------ submission

    @contextlib.contextmanager
    def reserve(self) -> Any:
        """A slot for a new job, held until it starts or the ``with`` block fails:
        yields the new job's id and folder (created, with a "queued" status).

        Raises:
            TooManyScansError: every slot is taken.
        """
        self.recover()
        job_id = uuid.uuid4().hex
        with self._lock:
            self._reap_finished()
            if len(self._running) + len(self._reserved) >= self.settings.max_scan_jobs:
                raise TooManyScansError(self.settings.max_scan_jobs)
            self._reserved.add(job_id)
        folder = self.folder(job_id)
        try:
            self._purge_old()
            folder.mkdir(parents=True)
            write_status(
                folder,
                {"id": job_id, "state": "queued", "created": time.time(), "error": None},
            )
            yield job_id, folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._reserved.discard(job_id)

    def start(self, spec: JobSpec, **status: Any) -> None:
        """Start a reserved job's process (call inside :meth:`reserve`); ``status``
        fields (file name, settings) are added to its status first."""
        update_status(spec.folder, **status)
        ctx = multiprocessing.get_context("spawn")
        process = ctx.Process(target=run_job, args=(spec,), daemon=True, name="seislens-scan")
        process.start()  # from here on only the process writes the status, until it ends
        with self._lock:
            self._running[spec.job_id] = process
        threading.Thread(
            target=self._watch, args=(spec.job_id, process), daemon=True, name="scan-watch"
        ).start()
        log.info("scan %s started (pid %s): %s", spec.job_id, process.pid, spec.filename)

    # ------------------------------------------------------------------ lifecycle

    def _watched(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._running or job_id in self._reserved

    def _watch(self, job_id: str, process: Any) -> None:
        process.join()
        with self._lock:
            self._running.pop(job_id, None)
        status = read_status(self.folder(job_id)) or {}
        if status.get("state") not in TERMINAL:
            self._fail_crashed(job_id, process.exitcode)
        log.info("scan %s ended: %s", job_id, (read_status(self.folder(job_id)) or {}).get("state"))

    def _fail_crashed(self, job_id: str, exitcode: int | None) -> None:
        cause = exit_cause(exitcode)
        folder = self.folder(job_id)
        update_status(
            folder,
            state="failed",
            finished=time.time(),
            error=failure(
                f"the scan's worker process died ({cause}): the file may be malformed in a "
                "way its headers do not show, or the job ran out of memory; the service is "
                "unaffected",
                "worker_crashed",
            ),
        )
        (folder / UPLOAD).unlink(missing_ok=True)

    def _reconcile(self, job_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """A non-final job nobody here watches: failed if its process is gone."""
        if _alive(status):
            return status
        folder = self.folder(job_id)
        updated = update_status(
            folder,
            state="failed",
            finished=time.time(),
            error=failure(
                "the service stopped while this scan was "
                f"{status.get('state', 'queued')}; submit the recording again",
                "interrupted",
            ),
        )
        (folder / UPLOAD).unlink(missing_ok=True)
        return updated

    def recover(self) -> None:
        """Once per process: mark jobs left unfinished by a previous run as failed."""
        with self._lock:
            if self._recovered:
                return
            self._recovered = True
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            status = read_status(folder) if _ID.fullmatch(folder.name) else None
            if (
                status is not None
                and status.get("state") not in TERMINAL
                and self._reconcile(folder.name, status).get("state") == "failed"
            ):
                log.warning("scan %s was interrupted by a restart: marked failed", folder.name)

    def _reap_finished(self) -> None:
        """Forget jobs whose process has ended or which have written their final status
        (the process may take a moment more to exit; its watcher still reaps it). The
        lock is held."""
        for job_id, process in list(self._running.items()):
            state = (read_status(self.folder(job_id)) or {}).get("state")
            if not process.is_alive() or state in TERMINAL:
                self._running.pop(job_id, None)

    def _purge_old(self) -> None:
        """Delete finished jobs older than the retention."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - self.settings.scan_job_retention_s
        for folder in self.root.iterdir():
            if not _ID.fullmatch(folder.name) or not (folder / STATUS).is_file():
                continue
            status = read_status(folder) or {}
            if status.get("state") in TERMINAL and (status.get("finished") or 0) < cutoff:
                shutil.rmtree(folder, ignore_errors=True)

    def running(self) -> int:
        """Jobs whose process runs now."""
        with self._lock:
            self._reap_finished()
            return len(self._running)
