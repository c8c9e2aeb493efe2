"""What a bundle keeps when a build or an export replaces something, and what it prunes.

Both writers of a bundle — the index build job (:mod:`seislens.index.builder`) and the
branch writer (:func:`seislens.index.bundle.write_branch`) — switch the manifest to new
files written beside the old ones, then prune, the same way:

* the switch records the replaced paths in the manifest's ``retained`` field, in the
  same atomic write: group → the previous versions' paths, newest first, at most
  ``keep - 1`` of them (``keep`` counts the current version). Groups:
  ``index/<index name>`` (one folder a version) and ``encoders/<branch>`` (its files);
* :func:`prune` then removes, of the index folders (``index/<branch>-<stamp>-<hex>``),
  encoder files (``encoders/*.onnx``) and leftover temporary files, those that are
  - not named by the manifest (current or retained),
  - not held by a live lease of a running service (:mod:`seislens.index.leases`),
  - not being written by another build (its ``.building`` lock is held), and
  - older than the build that now runs (so nothing a concurrent job has just
    created is judged).
  A folder left by a killed build — never named by the manifest — goes at the next
  build; a folder a service still holds stays until the service lets go of it.

Switches and prunes happen under the bundle's lock (:func:`bundle_lock`, an exclusive
``flock`` on the bundle folder, released by the kernel when its holder dies), so two
jobs never interleave their read-modify-write of the manifest. The lock is Linux/POSIX
only, like the service's deployment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from seislens.index.leases import held_paths, remove_stale
from seislens.models.branches import BRANCHES
from seislens.models.manifest import Manifest

DEFAULT_KEEP = 2
"""Versions of each group a bundle keeps by default: the current one and the previous."""

RETAINED_FIELD = "retained"
"""The manifest field recording the previous versions of each group."""

BUILDING_FILE = ".building"
"""The lock file inside an index folder while a build writes it."""

_INDEX_FOLDER = re.compile(
    rf"(?:{'|'.join(re.escape(b.index_name) for b in BRANCHES.values())})"
    r"-\d{8}T\d{6}-[0-9a-f]+"
)
_TEMPORARY = re.compile(r"(?:manifest\.json\.\d+|\..+)\.tmp")


def check_keep(keep: int) -> int:
    """``keep`` when it is at least 1 (the current version), else ValueError."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the current version); got {keep}")
    return keep


@contextlib.contextmanager
def bundle_lock(root: Path) -> Iterator[None]:
    """Hold the bundle's exclusive lock for the ``with`` block (blocks until free): a
    ``flock`` on the bundle folder itself, so no lock file is left in it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def building(folder: Path) -> Iterator[Path]:
    """Create the new index folder ``folder`` and mark it as being written (a held
    ``flock`` on ``folder/.building``) until the ``with`` block ends."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    marker = folder / BUILDING_FILE
    with open(marker, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            marker.unlink(missing_ok=True)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def is_building(folder: Path) -> bool:
    """Whether a live build holds ``folder``'s ``.building`` lock."""
    marker = Path(folder) / BUILDING_FILE
    try:
        fh = open(marker, "rb")  # noqa: SIM115 (closed below)
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def retained(manifest: Manifest) -> dict[str, list[list[str]]]:
    """The manifest's ``retained`` record: group → previous versions' paths."""
    value = (manifest.model_extra or {}).get(RETAINED_FIELD) or {}
    return {str(g): [[str(p) for p in v] for v in versions] for g, versions in value.items()}


def with_retained(
    manifest: Manifest,
    group: str,
    previous: Iterable[str],
    current: Iterable[str],
    keep: int,
) -> Manifest:
    """A copy of ``manifest`` whose ``retained[group]`` records that ``previous`` (the
    paths of the version being replaced) gave way to ``current``; at most ``keep - 1``
    previous versions are kept."""
    check_keep(keep)
    previous, current = sorted(set(previous)), set(current)
    history = retained(manifest)
    versions = history.get(group, [])
    if previous and set(previous) != current:
        versions = [previous, *versions]
    versions = [v for v in versions if set(v) != current][: keep - 1]
    history[group] = versions
    return manifest.model_copy(update={RETAINED_FIELD: history})


def current_paths(manifest: Manifest) -> set[str]:
    """The bundle-relative paths the manifest names now (what a load of it opens):
    every index folder and encoder file."""
    paths = {entry.path for entry in manifest.indexes.values()}
    for name in BRANCHES:
        section = manifest.section(name)
        if section is not None:
            paths |= {entry.file for entry in section.encoders.values()}
    return paths


def referenced(manifest: Manifest) -> set[str]:
    """Every bundle-relative path the manifest names: :func:`current_paths` and the
    retained versions."""
    paths = current_paths(manifest)
    for versions in retained(manifest).values():
        paths |= {p for v in versions for p in v}
    return {_normal(p) for p in paths}


def prune_candidates(root: Path) -> list[str]:
    """Bundle-relative paths a prune may remove: index folders of the registry's
    branches, encoder files, and temporary files left by killed writers."""
    root = Path(root)
    found = []
    if (root / "index").is_dir():
        found += [
            f"index/{p.name}"
            for p in (root / "index").iterdir()
            if p.is_dir() and _INDEX_FOLDER.fullmatch(p.name)
        ]
    if (root / "encoders").is_dir():
        found += [
            f"encoders/{p.name}"
            for p in (root / "encoders").iterdir()
            if p.suffix == ".onnx" or _TEMPORARY.fullmatch(p.name)
        ]
    found += [p.name for p in root.iterdir() if _TEMPORARY.fullmatch(p.name)]
    return sorted(found)


def prune(root: Path, manifest: Manifest, started: float) -> list[str]:
    """Remove what the bundle no longer needs (see the module docstring); returns the
    bundle-relative paths removed. Call it under :func:`bundle_lock`, with the manifest
    just written and ``started``, the Unix time (s) the calling job began."""
    root = Path(root)
    remove_stale(root)
    keep = referenced(manifest) | {_normal(p) for p in held_paths(root)}
    removed = []
    for rel in prune_candidates(root):
        path = root / rel
        if rel in keep or is_building(path) or _mtime(path) >= started:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(rel)
    return removed


def _normal(path: str) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")  # gone meanwhile: nothing to remove
