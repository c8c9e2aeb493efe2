"""The on-disk bundle: one versioned directory the service loads.

Layout::

    manifest.json               schema version, encoders and their hashes, preprocessing,
                                training config, metrics, provenance, indexes
    encoders/*.onnx             the exported encoders
    index/<name>/               one folder per library index (see seislens.index.library)

The manifest ties every index to the SHA-256 of the encoder that embedded it; loading
a bundle whose encoder and index do not belong together is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from seislens.models.embedders import sha256_file

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle that is missing, malformed or inconsistent."""


def read_manifest(root: Path) -> dict[str, Any]:
    """The bundle's manifest, with its schema version checked."""
    path = Path(root) / MANIFEST
    if not path.exists():
        raise BundleError(f"{root} is not a SeisLens bundle: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{root}: bundle schema version {version!r}; this SeisLens reads {SCHEMA_VERSION}"
        )
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (temporary file, then rename)."""
    path = Path(root) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def encoder_hash(manifest: dict[str, Any], branch: str, encoder: str) -> str:
    """The recorded SHA-256 of one encoder, e.g. ("velocity", "velocity")."""
    try:
        return str(manifest[branch]["encoders"][encoder]["sha256"])
    except KeyError as exc:
        raise BundleError(f"bundle has no {branch}/{encoder} encoder") from exc


def verify_encoders(root: Path, manifest: dict[str, Any], branch: str) -> None:
    """Check every encoder file of ``branch`` against its recorded hash."""
    for name, entry in manifest[branch]["encoders"].items():
        path = Path(root) / entry["file"]
        if not path.exists():
            raise BundleError(f"{root}: encoder file {entry['file']} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise BundleError(
                f"{root}: {entry['file']} does not match the hash in the manifest "
                f"({branch}/{name}); the bundle was altered after export"
            )


def verify_index(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """The index entry ``name``, checked to belong to the bundle's current encoder."""
    entry = manifest.get("indexes", {}).get(name)
    if entry is None:
        raise BundleError(f"bundle has no {name!r} index; build it with `seislens index build`")
    branch, encoder = entry["branch"], entry["encoder"]
    current = encoder_hash(manifest, branch, encoder)
    if entry["encoder_sha256"] != current:
        raise BundleError(
            f"index {name!r} was built with encoder {entry['encoder_sha256'][:12]}… but the "
            f"bundle's {branch}/{encoder} encoder is {current[:12]}…; rebuild the index "
            "(seislens index build) so encoder and index belong together"
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
