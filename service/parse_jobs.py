"""Uploads read in the parse workers, and the answers when a worker fails a job.

Every C-backed reader of an upload runs in :mod:`~seislens.service.parse_pool`'s one
pool: ObsPy/libmseed for miniSEED recordings (:data:`MINISEED`), segyio for SEG-Y and SU
gathers (and the .npy reader beside it, :data:`GATHER`). :func:`run_parse_job` sends a
job there within the settings' deadline and turns what can go wrong into the service's
answers, the same for every reader:

===========================  ======  ======================
the worker                   status  reason
===========================  ======  ======================
refused the file itself      422     the reader's own
ran past the deadline        422     ``deadline``
died (a signal, an abort)    422     ``reader_crashed``
needed too much memory       422     ``too_much_memory``
raised something unforeseen  422     the reader's "unreadable" reason
every worker stayed busy     503     ``busy`` (Retry-After: 2)
none could be started        503     ``reader_unavailable``
===========================  ======  ======================

With ``parse_workers = 0`` the job runs in the calling thread instead (no deadline, no
crash isolation; miniSEED reads are then serialised by
:data:`~seislens.service.recordings.MSEED_LOCK`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seislens.data.gather_files import GatherUpload, UploadError
from seislens.models.event_preprocess import EventInputError
from seislens.service.errors import InvalidUploadError, UnavailableError
from seislens.service.parse_pool import (
    PoolBusyError,
    PoolStartError,
    WorkerCrashedError,
    WorkerFailedError,
    WorkerMemoryError,
    WorkerTimeoutError,
    shared_pool,
)
from seislens.service.settings import Settings

if TYPE_CHECKING:
    from seislens.service.error_docs import ErrorDoc

log = logging.getLogger("seislens.service")


@dataclass(frozen=True)
class Reader:
    """One kind of upload the parse workers read.

    Attributes:
        name: the reader as messages name it ("the miniSEED reader").
        example: a file name for the documented examples.
        smaller: what a refused client should send instead.
        expected: what the reader accepts (ends an unforeseen failure's message).
        refusal: the reader's refusal type (built from ``(message, reason=...)``).
        unreadable: the refusal's reason for an unforeseen failure.
    """

    name: str
    example: str
    smaller: str
    expected: str
    refusal: type[EventInputError] | type[UploadError]
    unreadable: str


MINISEED = Reader(
    name="the miniSEED reader",
    example="event.mseed",
    smaller="send a shorter recording or fewer channels",
    expected="expected miniSEED with 3-component (Z, N, E or Z, 1, 2) traces",
    refusal=EventInputError,
    unreadable="unusable_recording",
)
GATHER = Reader(
    name="the gather reader (segyio)",
    example="shot.sgy",
    smaller="send fewer or shorter traces",
    expected="expected a SEG-Y, SU or .npy shot gather",
    refusal=UploadError,
    unreadable="unreadable",
)

GATHER_JOB = "seislens.data.gather_files:read_gather"
"""The gather job: ``read_gather(path, filename)`` → a
:class:`~seislens.data.gather_files.GatherUpload`."""


class ParseDeadlineError(InvalidUploadError):
    """Reading an upload ran past the parse deadline (422; its worker was killed)."""

    def __init__(self, filename: str, seconds: float, reader: Reader = MINISEED) -> None:
        super().__init__(
            f"reading {filename!r} took longer than {seconds:g} s "
            f"(SEISLENS_PARSE_DEADLINE_S); its worker was stopped: {reader.smaller}",
            "deadline",
        )


class ReaderCrashedError(InvalidUploadError):
    """The reader crashed on an upload (422; the worker is replaced)."""

    def __init__(self, filename: str, cause: str, reader: Reader = MINISEED) -> None:
        super().__init__(
            f"{reader.name} crashed on {filename!r} ({cause}): the file is malformed in a "
            "way its headers do not show; the service is unaffected",
            "reader_crashed",
        )


class ParseMemoryError(InvalidUploadError):
    """Reading an upload needed more memory than a parse worker may use (422)."""

    def __init__(self, filename: str, limit_mib: int, reader: Reader = MINISEED) -> None:
        super().__init__(
            f"reading {filename!r} needed more than the {limit_mib} MiB a parse worker may "
            f"use (SEISLENS_PARSE_WORKER_MEMORY_MIB): {reader.smaller}",
            "too_much_memory",
        )


class ParseBusyError(UnavailableError):
    """Every parse worker stayed busy while the upload waited (503; retry shortly)."""

    reason = "busy"
    headers = {"Retry-After": "2"}  # noqa: RUF012

    def __init__(self, workers: int, waited_s: float) -> None:
        super().__init__(
            f"all {workers} upload readers stayed busy for {waited_s:.1f} s "
            "(SEISLENS_PARSE_WORKERS); retry shortly"
        )


class ParseUnavailableError(UnavailableError):
    """No parse worker could be started (503)."""

    reason = "reader_unavailable"

    def __init__(self, why: str) -> None:
        super().__init__(f"uploads cannot be read right now: {why}")


def run_parse_job(
    reader: Reader, target: str, args: tuple[Any, ...], filename: str, settings: Settings
) -> Any:
    """Run the job ``target(*args)`` (``"module:function"``) in a parse worker within
    ``settings.parse_deadline_s``; its result.

    Args:
        reader: what is read (names the reader in messages).
        target: the job's function.
        args: its picklable arguments (paths as ``str``).
        filename: the client's name for the upload (the only name messages use).
        settings: workers, memory limit and deadline (``parse_workers = 0``: run here).
    Raises:
        EventInputError, UploadError: the reader's own refusal (422).
        ApiError: deadline, crash, memory or unforeseen failure (422), every worker busy
            or none started (503).
    """
    if settings.parse_workers == 0:
        module, name = target.split(":", 1)
        return getattr(importlib.import_module(module), name)(*args)
    pool = shared_pool(settings.parse_workers, settings.parse_worker_memory_mib)
    try:
        return pool.call(target, args, settings.parse_deadline_s)
    except WorkerTimeoutError as exc:
        log.warning("upload %r ran past the parse deadline (%g s)", filename, exc.seconds)
        raise ParseDeadlineError(filename, exc.seconds, reader) from exc
    except WorkerCrashedError as exc:
        log.error("%s crashed on upload %r (%s)", reader.name, filename, exc.cause)
        raise ReaderCrashedError(filename, exc.cause, reader) from exc
    except WorkerMemoryError as exc:
        raise ParseMemoryError(filename, exc.limit_mib, reader) from exc
    except WorkerFailedError as exc:
        raise reader.refusal(
            f"{filename!r} could not be read ({exc.summary}); {reader.expected}",
            reason=reader.unreadable,
        ) from exc
    except PoolBusyError as exc:
        raise ParseBusyError(exc.workers, exc.waited_s) from exc
    except PoolStartError as exc:
        raise ParseUnavailableError(str(exc)) from exc


def read_gather_upload(path: Path, filename: str, settings: Settings) -> GatherUpload:
    """Read an uploaded SEG-Y, SU or .npy gather in a parse worker (:data:`GATHER_JOB`).

    Args:
        path: the upload's temporary file (the worker opens it by name).
        filename: the client's name for it (format hint; names it in messages).
        settings: the parse workers' settings.
    Returns:
        The gather in the model's frame (:func:`~seislens.data.gather_files.read_gather`).
    Raises:
        UploadError: the reader's refusal (422).
        ApiError: as :func:`run_parse_job`.
    """
    return run_parse_job(GATHER, GATHER_JOB, (str(path), filename), filename, settings)


def start_parse_workers(settings: Settings) -> None:
    """Start the parse workers of ``settings`` now (at service start-up), so the first
    uploads do not wait seconds for them; nothing with ``parse_workers = 0``."""
    if settings.parse_workers > 0:
        try:
            shared_pool(settings.parse_workers, settings.parse_worker_memory_mib).warm()
        except PoolStartError as exc:  # uploads will try again, and answer 503 if it fails
            log.error("parse workers could not be started: %s", exc)


def parse_error_docs(reader: Reader) -> tuple[ErrorDoc, ...]:
    """The documented answers of the parse workers for uploads read by ``reader``."""
    from seislens.service.error_docs import ErrorDoc  # error_docs imports the readers

    name = reader.example
    return (
        ErrorDoc(
            422,
            "deadline",
            "Reading took longer than the parse deadline",
            lambda: ParseDeadlineError(name, 30.0, reader),
        ),
        ErrorDoc(
            422,
            "reader_crashed",
            f"The {reader.name.removeprefix('the ')} crashed on the file",
            lambda: ReaderCrashedError(name, "signal SIGSEGV", reader),
        ),
        ErrorDoc(
            422,
            "too_much_memory",
            "Reading needed more memory than a worker may use",
            lambda: ParseMemoryError(name, 1536, reader),
        ),
        ErrorDoc(503, "busy", "Every upload reader busy", lambda: ParseBusyError(2, 30.0)),
        ErrorDoc(
            503,
            "reader_unavailable",
            "No upload reader could be started",
            lambda: ParseUnavailableError("a parse worker could not be started: [Errno 12]"),
        ),
    )
