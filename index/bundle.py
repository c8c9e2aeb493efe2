"""The on-disk bundle: one versioned directory the service loads.

Layout::

    manifest.json               the typed manifest (seislens.models.manifest): one
                                section per branch (encoders and their hashes,
                                preprocessing, training, metrics), the indexes
    encoders/*.onnx             the exported encoders
    index/<branch>-<build id>/  one folder per library index build (seislens.index.builder)
    leases/<owner>.json         what running services hold (seislens.index.leases)

The manifest ties every index to the SHA-256 of the encoder that embedded it; loading
a bundle whose encoder and index do not belong together is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from seislens.index.retention import (
    DEFAULT_KEEP,
    bundle_lock,
    check_keep,
    prune,
    with_retained,
)
from seislens.models.branches import BRANCHES, Branch
from seislens.models.embedders import sha256_file
from seislens.models.manifest import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    BranchSection,
    IndexEntry,
    Manifest,
    ManifestError,
    parse_manifest,
)

from seislens import __version__


class BundleError(ManifestError):
    """A bundle that is missing, malformed or inconsistent (a manifest error included)."""


def read_manifest(root: Path) -> Manifest:
    """The bundle's typed manifest.

    Raises:
        BundleError: no manifest, not JSON, a schema version this SeisLens does not read
            (the message names it), or a field of the wrong type.
    """
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        raise BundleError(f"{root} is not a SeisLens bundle: no {MANIFEST_FILE}")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return parse_manifest(payload, where=str(root))
    except ManifestError as exc:
        raise BundleError(str(exc)) from exc


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (temporary file flushed to disk, then rename)."""
    path = Path(root) / MANIFEST_FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def update_manifest(root: Path, change: Callable[[Manifest], Manifest]) -> Manifest:
    """Change the bundle's manifest the way every writer does: under the bundle's lock
    (:func:`~seislens.index.retention.bundle_lock`, the lock of the index switch and of
    :func:`write_branch`), the manifest re-read, ``change`` applied to it, and the result
    written in one atomic rename (:func:`write_manifest`). A switch made meanwhile by an
    index build or a branch export is therefore kept, never overwritten.

    Args:
        root: the bundle folder.
        change: the current manifest → the one to write (it may raise to refuse: nothing
            is written then, e.g. when what it was computed for has changed).
    Returns:
        The manifest written.
    Raises:
        BundleError: no readable manifest; whatever ``change`` raises.
    """
    with bundle_lock(root):
        manifest = change(read_manifest(root))
        write_manifest(root, manifest)
    return manifest


def branch_section(root: Path, manifest: Manifest, branch: Branch) -> BranchSection:
    """The manifest's section of ``branch``.

    Raises:
        BundleError: the bundle has no such section (nothing was exported for it).
    """
    section = manifest.section(branch.name)
    if section is None:
        raise BundleError(
            f"{root} has no {branch.name} encoders; export a run into it first "
            f"(seislens export --branch {branch.name})"
        )
    return section


def encoder_hash(manifest: Manifest, branch: Branch, encoder: str) -> str:
    """The recorded SHA-256 of one encoder of ``branch``, e.g. (VELOCITY, "velocity")."""
    section = manifest.section(branch.name)
    if section is None or encoder not in section.encoders:
        raise BundleError(f"bundle has no {branch.name}/{encoder} encoder")
    return section.encoders[encoder].sha256


def verify_encoders(root: Path, manifest: Manifest, branch: Branch) -> None:
    """Check every encoder file of ``branch`` against its recorded hash."""
    section = branch_section(root, manifest, branch)
    for name, entry in section.encoders.items():
        path = Path(root) / entry.file
        if not path.exists():
            raise BundleError(f"{root}: encoder file {entry.file} is missing")
        if sha256_file(path) != entry.sha256:
            raise BundleError(
                f"{root}: {entry.file} does not match the hash in the manifest "
                f"({branch.name}/{name}); the bundle was altered after export"
            )


def verify_index(manifest: Manifest, branch: Branch) -> IndexEntry:
    """The index entry of ``branch``, checked to belong to its current library encoder."""
    name = branch.index_name
    entry = manifest.indexes.get(name)
    if entry is None:
        raise BundleError(
            f"bundle has no {name!r} index; build it with "
            f"`seislens index build --branch {branch.name}`"
        )
    if entry.branch != branch.name or entry.encoder != branch.library_encoder:
        raise BundleError(
            f"index {name!r} is for {entry.branch}/{entry.encoder}; expected "
            f"{branch.name}/{branch.library_encoder}"
        )
    current = encoder_hash(manifest, branch, entry.encoder)
    if entry.encoder_sha256 != current:
        raise BundleError(
            f"index {name!r} was built with encoder {entry.encoder_sha256[:12]}… but the "
            f"bundle's {branch.name}/{entry.encoder} encoder is {current[:12]}…; rebuild the "
            "index (seislens index build) so encoder and index belong together"
        )
    return entry


def replace_dir(new: Path, final: Path) -> None:
    """Move a fully written directory ``new`` into place at ``final``.

    The old directory (if any) is renamed aside first and removed after the swap, so
    ``final`` is at every moment either the old or the new directory.
    """
    final = Path(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.time_ns()}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the writer


def write_branch(
    root: Path,
    branch: Branch,
    section: BranchSection,
    staged_files: Mapping[str, Path],
    name: str | None = None,
    keep: int = DEFAULT_KEEP,
) -> Manifest:
    """Put one branch's exported encoders into the bundle at ``root``; others untouched.

    The one way SeisLens writes a branch into a bundle, under the bundle's lock
    (:func:`~seislens.index.retention.bundle_lock`):

    1. the staged files are checked against the section's hashes and copied in under
       the section's file names (content-addressed, ``Branch.encoder_file``), beside
       the files the current manifest names;
    2. the manifest is written with only ``branch``'s section replaced, in one atomic
       rename: the switch. It also retains the replaced files (``retained``, group
       ``encoders/<branch>``). Other branches' sections and every index entry are kept;
       ``branch``'s index stays listed and is refused as stale (its encoder hash no
       longer matches) until it is rebuilt (``seislens index build``);
    3. the bundle is pruned (:func:`~seislens.index.retention.prune`): the files of the
       last ``keep`` versions of each branch stay, and so does every file a running
       service holds (its lease); files no manifest names any more go.

    A failure before the switch leaves the old manifest and removes the files copied in.

    Args:
        root: the bundle folder; created when absent.
        branch: the registry branch written.
        section: its new section (``branch.section``, one entry per ``branch.encoders``).
        staged_files: encoder name → the exported file to copy in.
        name: the bundle's name when it is created (default: the folder's name).
        keep: versions of the branch's encoder files kept, the new one included (>= 1).

    Returns:
        The manifest written.

    Raises:
        BundleError: a section of another type, encoders other than the branch's, a
            staged file that does not match its hash, or a new bundle that would lack a
            required branch (the service refuses such a bundle: export that branch
            first, e.g. velocity before events).
    """
    root, started = Path(root), time.time()
    check_keep(keep)
    _check_staged(branch, section, staged_files)
    if not (root / MANIFEST_FILE).exists():
        _new_manifest(root, branch, name)  # refuses before anything is created
    with bundle_lock(root):
        previous = read_manifest(root) if (root / MANIFEST_FILE).exists() else None
        base = previous or _new_manifest(root, branch, name)
        old = base.section(branch.name)
        manifest = with_retained(
            base.with_section(branch.name, section),
            f"encoders/{branch.name}",
            [e.file for e in old.encoders.values()] if old else [],
            [e.file for e in section.encoders.values()],
            keep,
        )
        copied = _copy_in(root, section, staged_files)
        try:
            write_manifest(root, manifest)
        except BaseException:
            for path in copied:
                path.unlink(missing_ok=True)
            raise
        prune(root, manifest, started)
    return manifest


def _check_staged(branch: Branch, section: BranchSection, staged_files: Mapping[str, Path]) -> None:
    if not isinstance(section, branch.section):
        raise BundleError(
            f"the {branch.name} section must be a {branch.section.__name__}; "
            f"got {type(section).__name__}"
        )
    if set(section.encoders) != set(branch.encoders) or set(staged_files) != set(branch.encoders):
        raise BundleError(
            f"the {branch.name} branch has encoders {list(branch.encoders)}; the section "
            f"lists {list(section.encoders)} and the staged files {list(staged_files)}"
        )
    for encoder, entry in section.encoders.items():
        if sha256_file(Path(staged_files[encoder])) != entry.sha256:
            raise BundleError(
                f"staged {branch.name}/{encoder} file {staged_files[encoder]} does not match "
                "the hash in its section; export again"
            )


def _new_manifest(root: Path, branch: Branch, name: str | None) -> Manifest:
    """The manifest of a bundle created by writing ``branch`` (refused when a required
    branch would be missing)."""
    missing = [b.name for b in BRANCHES.values() if b.required and b.name != branch.name]
    if missing:
        raise BundleError(
            f"{root} is not a bundle yet, and a bundle without its {', '.join(missing)} "
            f"branch is refused by the service; export "
            f"{' and '.join(missing)} into it first (seislens export --branch {missing[0]})"
        )
    return Manifest(
        schema_version=SCHEMA_VERSION,
        name=name or root.name,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seislens_version=__version__,
    )


def _copy_in(root: Path, section: BranchSection, staged_files: Mapping[str, Path]) -> list[Path]:
    """Copy the staged files to their section names (temp name + rename each); returns
    the files that were not there before."""
    copied: list[Path] = []
    try:
        for encoder, entry in section.encoders.items():
            final = root / entry.file
            if final.exists() and sha256_file(final) == entry.sha256:
                continue  # the same content is already there (same name, same bytes)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            shutil.copyfile(staged_files[encoder], tmp)
            os.replace(tmp, final)
            copied.append(final)
    except BaseException:
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    return copied
