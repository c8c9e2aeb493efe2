"""Leases: the bundle files a running service holds open, announced to the build jobs.

A service (:mod:`seislens.service.state`) writes one lease file per bundle folder it
holds, ``<bundle>/leases/<owner>.json`` (``owner`` = ``<pid>-<12 hex>``, one per
process and app), listing the bundle-relative paths it has open: the index folders
(``index/<branch>-<build id>``) and encoder files (``encoders/*.onnx``) of every bundle
it still serves — the current one and any retired one that requests still use::

    {"owner": "4242-1f0c…", "pid": 4242, "host": "api-1", "written": 1767225600.0,
     "expires": 1767225660.0, "ttl_s": 60.0, "paths": ["encoders/…", "index/velocity-…"]}

The file is written atomically (temporary file, then rename) whenever what it holds
changes, rewritten every ``ttl_s / 3`` seconds by a keeper thread, and removed at a
clean shutdown. A lease whose ``expires`` (Unix time, s) has passed is stale: its
service died or hung; the build jobs ignore it and remove it
(:func:`seislens.index.retention.prune`). Builds never delete a path a live lease names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("seislens.index")

LEASES_DIR = "leases"
"""The bundle's folder of lease files."""

DEFAULT_LEASE_TTL_S = 60.0
"""How long a lease stays valid without being refreshed (seconds)."""

REFRESHES_PER_TTL = 3
"""A keeper rewrites its leases this many times per TTL (so one late refresh is harmless)."""


@dataclass(frozen=True)
class Lease:
    """One lease file, read back.

    Attributes:
        file: the lease file.
        owner: ``<pid>-<hex>`` of the holder.
        pid: the holder's process id (informative: it may be another host's or
            container's).
        host: the holder's host name.
        written: when the file was last written (Unix time, s).
        expires: when it goes stale unless rewritten (Unix time, s).
        paths: bundle-relative paths held open.
    """

    file: Path
    owner: str
    pid: int
    host: str
    written: float
    expires: float
    paths: frozenset[str]

    def live(self, now: float | None = None) -> bool:
        """Whether the lease still protects its paths at ``now`` (default: now)."""
        return self.expires > (time.time() if now is None else now)


def leases_dir(root: Path) -> Path:
    """``<root>/leases``."""
    return Path(root) / LEASES_DIR


def read_leases(root: Path) -> list[Lease]:
    """Every readable lease file of the bundle at ``root``, live or stale. Files that
    are not leases (malformed, foreign) are skipped with a warning."""
    folder = leases_dir(root)
    if not folder.is_dir():
        return []
    leases = []
    for path in sorted(folder.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
            leases.append(
                Lease(
                    file=path,
                    owner=str(payload["owner"]),
                    pid=int(payload["pid"]),
                    host=str(payload["host"]),
                    written=float(payload["written"]),
                    expires=float(payload["expires"]),
                    paths=frozenset(str(p) for p in payload["paths"]),
                )
            )
        except FileNotFoundError:
            continue  # removed meanwhile (its holder shut down)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s is not a lease file (%s); ignored", path, exc)
    return leases


def held_paths(root: Path, now: float | None = None) -> set[str]:
    """Bundle-relative paths named by the live leases of the bundle at ``root``."""
    now = time.time() if now is None else now
    return {p for lease in read_leases(root) if lease.live(now) for p in lease.paths}


def remove_stale(root: Path, now: float | None = None) -> list[Path]:
    """Remove the lease files that have expired; returns them."""
    now = time.time() if now is None else now
    stale = [lease.file for lease in read_leases(root) if not lease.live(now)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class LeaseKeeper:
    """The leases of one process: what it holds in each bundle folder, kept on disk.

    ``hold(key, bundle, paths)`` records (and writes at once) that ``key`` — a loaded
    bundle, or a load in progress — holds ``paths`` of ``bundle``; ``release(key)``
    drops it. One file per bundle folder lists the union of its keys' paths; it is
    removed when no key holds anything there. :meth:`start` runs the refresh thread;
    :meth:`close` stops it and removes every file. A bundle folder that cannot be
    written (a read-only mount) is served without a lease, with one warning: a build
    into it could then delete files this process holds.

    Args:
        ttl_s: how long a written lease stays valid (s); refreshed every
            ``ttl_s / REFRESHES_PER_TTL``.
    """

    def __init__(self, ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl_s must be > 0 s; got {ttl_s}")
        self.ttl_s = float(ttl_s)
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._held: dict[Hashable, tuple[Path, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[Path] = set()

    @property
    def refresh_interval_s(self) -> float:
        """Seconds between two rewrites of the lease files."""
        return self.ttl_s / REFRESHES_PER_TTL

    def file(self, root: Path) -> Path:
        """This keeper's lease file in the bundle at ``root``."""
        return leases_dir(Path(root).resolve()) / f"{self.owner}.json"

    def holdings(self) -> dict[Path, set[str]]:
        """Bundle folder (resolved) → the paths held there, now."""
        with self._lock:
            return self._by_root()

    def hold(self, key: Hashable, root: Path, paths: Iterable[str]) -> None:
        """Record that ``key`` holds ``paths`` (bundle-relative) of ``root``; written now."""
        root = Path(root).resolve()
        with self._lock:
            before = self._held.get(key)
            self._held[key] = (root, frozenset(paths))
            self._write(root)
            if before is not None and before[0] != root:
                self._write(before[0])

    def release(self, key: Hashable) -> None:
        """Drop what ``key`` holds (nothing when it holds nothing); written now."""
        with self._lock:
            entry = self._held.pop(key, None)
            if entry is not None:
                self._write(entry[0])

    def refresh(self) -> None:
        """Rewrite every lease file with a new expiry."""
        with self._lock:
            for root in self._by_root():
                self._write(root)

    def start(self) -> None:
        """Start the refresh thread (a daemon; once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="seislens-leases", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop refreshing and remove every lease file of this keeper."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            roots = set(self._by_root())
            self._held.clear()
            for root in roots:
                self._write(root)

    # ------------------------------------------------------------------ internals

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_interval_s):
            self.refresh()

    def _by_root(self) -> dict[Path, set[str]]:
        out: dict[Path, set[str]] = {}
        for root, paths in self._held.values():
            out.setdefault(root, set()).update(paths)
        return out

    def _write(self, root: Path) -> None:
        """Write (or, when nothing is held there, remove) the lease file of ``root``."""
        paths = self._by_root().get(root)
        path = self.file(root)
        try:
            if not paths:
                path.unlink(missing_ok=True)
                _remove_if_empty(path.parent)
                return
            _write_atomic(path, self._payload(paths))
        except OSError as exc:
            if root not in self._warned:
                self._warned.add(root)
                log.warning(
                    "cannot write a lease in %s (%s): an index build into this bundle "
                    "may delete files this service holds",
                    root,
                    exc,
                )

    def _payload(self, paths: set[str]) -> dict[str, object]:
        now = time.time()
        return {
            "owner": self.owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "written": now,
            "expires": now + self.ttl_s,
            "ttl_s": self.ttl_s,
            "paths": sorted(paths),
        }


def _write_atomic(path: Path, payload: dict[str, object]) -> None:
    for attempt in range(2):  # the folder may be removed by another holder meanwhile
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(payload, indent=1) + "\n")
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            if attempt:
                raise


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another holder), or already gone
        folder.rmdir()
