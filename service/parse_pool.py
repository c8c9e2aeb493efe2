"""Worker processes for the C-backed readers: a crash there costs a worker, not the server.

libmseed (under ObsPy) is not thread-safe and trusts the bytes it is given; a malformed
file read in the server's thread pool could take the whole service down. Uploads are
therefore read in a small pool of worker processes (:class:`ParsePool`), one job per
worker at a time:

* workers start from a ``forkserver`` that has imported the reading code once
  (``spawn`` where there is no forkserver), each with an address-space limit: when the
  service starts (:meth:`ParsePool.warm`) or, failing that, at the first upload;
* a job that runs past its deadline has its worker killed (:class:`WorkerTimeoutError`);
* a worker that dies during a job (a signal, an abort) is reaped
  (:class:`WorkerCrashedError`); a worker found dead while idle is replaced silently;
* a job waits at most its deadline for a free worker (:class:`PoolBusyError`).

The job is a function named ``"module:function"`` and its (picklable) arguments; it
returns a picklable result. One pool serves every reader: miniSEED recordings
(``recordings:window_recording``) and SEG-Y/SU/.npy gathers (``gather_files:read_gather``).
A job's own refusal (one of :data:`REFUSALS`: the readers'
:class:`~seislens.models.event_preprocess.EventInputError` and
:class:`~seislens.data.gather_files.UploadError`) comes back as itself (type, message and
reason), a ``MemoryError`` as :class:`WorkerMemoryError`, anything else as
:class:`WorkerFailedError`. The service maps these onto answers in
:mod:`~seislens.service.parse_jobs`.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from seislens.data.gather_files import UploadError
from seislens.models.event_preprocess import EventInputError

log = logging.getLogger("seislens.service")

PRELOAD = ("seislens.service.parse_preload",)
"""Modules the forkserver imports once, so a new worker starts in milliseconds."""

REFUSALS: tuple[type[EventInputError] | type[UploadError], ...] = (EventInputError, UploadError)
"""The readers' refusals (each built from ``(message, reason=...)``): a job raising one
has it raised again, as itself, by :meth:`ParsePool.call`."""

_KILL_WAIT_S = 5.0


class PoolError(RuntimeError):
    """A job that did not come back with an answer of its own."""


class WorkerTimeoutError(PoolError):
    """The job ran past its deadline; its worker was killed.

    Args:
        seconds: the deadline (s).
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the job ran past its deadline of {seconds:g} s")
        self.seconds = seconds


class WorkerCrashedError(PoolError):
    """The worker died during the job.

    Args:
        exitcode: the worker's exit status (negative: the signal that killed it).
    """

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(f"the worker died during the job ({self.cause})")

    @property
    def cause(self) -> str:
        """'signal SIGSEGV', 'exit status 1', or 'unknown exit'."""
        if self.exitcode is None:
            return "unknown exit"
        if self.exitcode < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-self.exitcode).name}"
            return f"signal {-self.exitcode}"
        return f"exit status {self.exitcode}"


class WorkerMemoryError(PoolError):
    """The job needed more memory than a worker may use.

    Args:
        limit_mib: the worker's address-space limit (MiB; 0: none).
    """

    def __init__(self, limit_mib: int) -> None:
        super().__init__(f"the job needed more than the worker's {limit_mib} MiB")
        self.limit_mib = limit_mib


class WorkerFailedError(PoolError):
    """The job raised something unforeseen (``summary``: type and message)."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class PoolBusyError(PoolError):
    """No worker became free in time.

    Args:
        workers: the pool's size.
        waited_s: how long the job waited (s).
    """

    def __init__(self, workers: int, waited_s: float) -> None:
        super().__init__(f"all {workers} workers stayed busy for {waited_s:.1f} s")
        self.workers = workers
        self.waited_s = waited_s


class PoolStartError(PoolError):
    """A worker could not be started (``why``)."""


# --------------------------------------------------------------------------- worker side


def _limit_memory(limit_mib: int) -> None:
    """Cap this process's address space (MiB; 0: no cap)."""
    if limit_mib <= 0:
        return
    import resource

    limit = limit_mib * 2**20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_job(target: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The worker's reply to one job: ('ok', result), ('refused', message, reason, kind)
    with ``kind`` the refusal's index in :data:`REFUSALS`, ('memory',) or ('failed',
    summary, traceback)."""
    try:
        module, name = target.split(":", 1)
        result = getattr(importlib.import_module(module), name)(*args)
        return ("ok", result)
    except REFUSALS as exc:
        kind = next(i for i, cls in enumerate(REFUSALS) if isinstance(exc, cls))
        return ("refused", str(exc), exc.reason, kind)
    except MemoryError:
        return ("memory",)
    except Exception as exc:
        return ("failed", f"{type(exc).__name__}: {exc}"[:500], traceback.format_exc())


def _worker_main(conn: Connection, memory_mib: int) -> None:
    """A worker: run jobs from ``conn`` until it closes (the server went away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server
    _limit_memory(memory_mib)
    while True:
        try:
            target, args = conn.recv()
        except (EOFError, OSError):
            return
        reply = _run_job(target, args)
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory",))
        except (BrokenPipeError, OSError):
            return


# --------------------------------------------------------------------------- server side


@dataclass
class _Worker:
    """A started worker and the server's end of its pipe."""

    process: BaseProcess
    conn: Connection

    def stop(self) -> int | None:
        """Kill the worker (if alive), reap it; its exit status."""
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_KILL_WAIT_S)
        return self.process.exitcode

    def reap(self) -> int | None:
        """The exit status of a worker whose pipe closed (killed if still alive)."""
        self.process.join(1.0)
        return self.stop()


_PIPE_BUFFER_BYTES = 4 * 2**20
"""Socket buffers asked for on a worker's pipe: a gather's answer (1.4 MB) then crosses
in one write instead of ~20 wake-ups of the two processes (the kernel may grant less:
``net.core.wmem_max``)."""


def _widen(*conns: Connection) -> None:
    """Ask for :data:`_PIPE_BUFFER_BYTES` send and receive buffers on socket pipes."""
    import socket

    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            sock = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER_BYTES)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PIPE_BUFFER_BYTES)
            finally:
                sock.close()


def _context() -> BaseContext:
    """The forkserver context with the reading code preloaded (spawn where absent)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


class ParsePool:
    """``workers`` processes, each running one job at a time (see the module's docstring).

    Args:
        workers: the most jobs running at once (≥ 1).
        memory_mib: each worker's address-space limit (MiB; 0: none).
    """

    def __init__(self, workers: int, memory_mib: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.memory_mib = memory_mib
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False
        self.started = 0
        """Workers started so far (a replaced worker counts again)."""

    def call(self, target: str, args: tuple[Any, ...], deadline_s: float) -> Any:
        """Run ``target(*args)`` in a worker; its result.

        Args:
            target: ``"module:function"``.
            args: its arguments (picklable).
            deadline_s: wall seconds the job may run, and may wait for a free worker.
        Raises:
            EventInputError, UploadError: the job's own refusal (:data:`REFUSALS`).
            PoolError: timeout, crash, memory, unforeseen failure, busy or no start.
        """
        waited = time.monotonic()
        if not self._slots.acquire(timeout=deadline_s):
            raise PoolBusyError(self.workers, time.monotonic() - waited)
        try:
            worker = self._take()
            reply = self._exchange(worker, target, args, deadline_s)
        finally:
            self._slots.release()
        return self._unpack(reply)

    def warm(self) -> None:
        """Start the workers now (the first start also starts the forkserver and
        imports the reading code: seconds), so no upload waits for it."""
        with self._lock:
            missing = self.workers - len(self._idle)
        started = []
        for _ in range(max(0, missing)):
            if not self._slots.acquire(blocking=False):
                break
            try:
                started.append(self._start())
            finally:
                self._slots.release()
        with self._lock:
            self._idle.extend(started)

    def pids(self) -> list[int]:
        """Process ids of the idle workers (for tests and benchmarks)."""
        with self._lock:
            return [w.process.pid for w in self._idle if w.process.pid is not None]

    def close(self) -> None:
        """Stop every idle worker; workers still busy stop when their job returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _take(self) -> _Worker:
        """A live idle worker, or a new one (the caller holds a slot)."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                log.warning(
                    "parse worker %s found dead (%s); replacing it",
                    worker.process.pid,
                    WorkerCrashedError(worker.reap()).cause,
                )
        return self._start()

    def _start(self) -> _Worker:
        ctx = _context()
        parent, child = ctx.Pipe(duplex=True)
        _widen(parent, child)
        process = ctx.Process(
            target=_worker_main, args=(child, self.memory_mib), daemon=True, name="seislens-parse"
        )
        try:
            process.start()
        except Exception as exc:
            parent.close()
            raise PoolStartError(f"a parse worker could not be started: {exc}") from exc
        finally:
            child.close()
        self.started += 1
        return _Worker(process, parent)

    def _exchange(
        self, worker: _Worker, target: str, args: tuple[Any, ...], deadline_s: float
    ) -> tuple[Any, ...]:
        """Send the job, wait for the reply; a worker that fails us is stopped."""
        try:
            worker.conn.send((target, args))
            if not worker.conn.poll(deadline_s):
                worker.stop()
                raise WorkerTimeoutError(deadline_s)
            reply = worker.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerCrashedError(worker.reap()) from exc
        except BaseException:
            worker.stop()
            raise
        with self._lock:
            if self._closed:
                worker.stop()
            else:
                self._idle.append(worker)
        return reply

    def _unpack(self, reply: tuple[Any, ...]) -> Any:
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "refused":
            raise REFUSALS[reply[3]](reply[1], reason=reply[2])
        if kind == "memory":
            raise WorkerMemoryError(self.memory_mib)
        log.warning("parse job failed: %s\n%s", reply[1], reply[2])
        raise WorkerFailedError(reply[1])


# --------------------------------------------------------------------------- the shared pool

_SHARED: ParsePool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool(workers: int, memory_mib: int) -> ParsePool:
    """This process's pool, created on first use; replaced when asked for another size
    or memory limit (the old one's workers stop as their jobs end)."""
    global _SHARED
    with _SHARED_LOCK:
        pool = _SHARED
        if pool is None or (pool.workers, pool.memory_mib) != (workers, memory_mib):
            if pool is not None:
                pool.close()
            pool = _SHARED = ParsePool(workers, memory_mib)
        return pool


@atexit.register
def _close_shared() -> None:
    if _SHARED is not None and os.getpid() == _OWNER_PID:
        _SHARED.close()


_OWNER_PID = os.getpid()
