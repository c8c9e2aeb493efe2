"""The one bundle writer (``write_branch``): one branch's section and files replaced,
everything else untouched, the manifest switched atomically, old names still read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from export_helpers import UNTRAINED, write_untrained
from seislens.index import bundle as bundle_module
from seislens.index.bundle import (
    BundleError,
    read_manifest,
    verify_encoders,
    verify_index,
    write_branch,
)
from seislens.models.branches import BRANCHES, EVENTS, VELOCITY
from seislens.training.onnx_export import export_network

pytest.importorskip("torch")

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "artifacts" / "default"


@pytest.fixture
def bundle(untrained_velocity_bundle, tmp_path) -> Path:
    """A writable bundle with an untrained velocity branch (no index)."""
    dst = tmp_path / "bundle"
    shutil.copytree(untrained_velocity_bundle, dst)
    return dst


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "encoders").glob("*.onnx"))}


def _staged(name: str, seed: int, staging: Path):
    staging.mkdir(parents=True, exist_ok=True)
    network, checkpoint = UNTRAINED[name](seed)
    return export_network(name, network, checkpoint, staging)


def test_events_then_velocity_reexport_keeps_the_other_branch(velocity_bundle, tmp_path):
    """Into the tiny (indexed) bundle: events, then a new velocity export."""
    velocity_before = read_manifest(velocity_bundle)
    velocity_files = _files(velocity_bundle)
    manifest = write_untrained(velocity_bundle, "events", tmp_path / "s1")
    assert manifest.velocity == velocity_before.velocity
    assert manifest.indexes == velocity_before.indexes
    for name, data in velocity_files.items():  # the velocity files, byte for byte
        assert (velocity_bundle / "encoders" / name).read_bytes() == data
    events_section = manifest.events
    events_files = {
        e.file: (velocity_bundle / e.file).read_bytes() for e in events_section.encoders.values()
    }
    again = write_untrained(velocity_bundle, "velocity", tmp_path / "s2", seed=5)
    assert again.events == events_section
    for file, data in events_files.items():
        assert (velocity_bundle / file).read_bytes() == data
    assert again.velocity != velocity_before.velocity
    assert again.created == velocity_before.created and again.name == velocity_before.name
    # the velocity index entry stays, now stale: refused until rebuilt
    assert again.indexes == velocity_before.indexes
    with pytest.raises(BundleError, match="rebuild the index"):
        verify_index(again, VELOCITY)
    for branch in BRANCHES.values():
        verify_encoders(velocity_bundle, read_manifest(velocity_bundle), branch)


def test_previous_files_kept_until_the_next_write(bundle, tmp_path):
    first = read_manifest(bundle).velocity
    second = write_untrained(bundle, "velocity", tmp_path / "a", seed=1).velocity
    names = lambda s: {e.file for e in s.encoders.values()}  # noqa: E731
    on_disk = lambda: {f"encoders/{n}" for n in _files(bundle)}  # noqa: E731
    assert names(first) | names(second) == on_disk()  # previous kept for a running service
    third = write_untrained(bundle, "velocity", tmp_path / "b", seed=2).velocity
    assert names(second) | names(third) == on_disk()  # the first is gone now


def test_failure_before_the_switch_leaves_the_old_manifest(bundle, tmp_path, monkeypatch):
    before = (bundle / "manifest.json").read_bytes()
    files = _files(bundle)
    staged = _staged("events", 0, tmp_path / "s")

    def crash(root, manifest):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "write_manifest", crash)
    with pytest.raises(OSError, match="disk full"):
        write_branch(bundle, EVENTS, staged.section, staged.files)
    assert (bundle / "manifest.json").read_bytes() == before
    assert _files(bundle) == files  # the copied-in files are removed again
    assert not [p for p in (bundle / "encoders").iterdir() if p.suffix == ".tmp"]


def test_a_bundle_without_its_required_branch_is_refused(tmp_path):
    staged = _staged("events", 0, tmp_path / "s")
    with pytest.raises(BundleError, match="export velocity into it first"):
        write_branch(tmp_path / "new", EVENTS, staged.section, staged.files)
    assert not (tmp_path / "new").exists()
    manifest = write_untrained(tmp_path / "new", "velocity", tmp_path / "v")
    assert manifest.name == "new" and manifest.seislens_version and manifest.created
    assert manifest.events is None and manifest.indexes == {}


def test_mismatched_section_or_staged_file_refused(bundle, tmp_path):
    staged = _staged("events", 0, tmp_path / "s")
    with pytest.raises(BundleError, match="must be a VelocitySection"):
        write_branch(bundle, VELOCITY, staged.section, staged.files)
    files = dict(staged.files)
    files["info"] = staged.files["spectrum"]
    with pytest.raises(BundleError, match="does not match the hash"):
        write_branch(bundle, EVENTS, staged.section, files)
    with pytest.raises(BundleError, match="has encoders"):
        write_branch(bundle, EVENTS, staged.section, {"spectrum": files["spectrum"]})


def test_a_bundle_with_the_old_file_names_is_read_and_written(tmp_path):
    """The default bundle (encoders/seismic.onnx, ...) on a copy: read as it is; an events
    export keeps its velocity files, whatever their names."""
    if not (DEFAULT_BUNDLE / "manifest.json").exists():
        pytest.skip("no default bundle")
    original = (DEFAULT_BUNDLE / "manifest.json").read_bytes()
    copy = tmp_path / "default"
    shutil.copytree(DEFAULT_BUNDLE, copy)
    before = read_manifest(copy)
    verify_encoders(copy, before, VELOCITY)
    manifest = write_untrained(copy, "events", tmp_path / "s")
    assert manifest.velocity == before.velocity and manifest.indexes == before.indexes
    verify_index(manifest, VELOCITY)  # the velocity index still belongs to its encoder
    verify_encoders(copy, manifest, VELOCITY)
    # the old-named event files stay until the next write; the original is untouched
    assert (copy / before.events.encoders["spectrum"].file).exists()
    assert (DEFAULT_BUNDLE / "manifest.json").read_bytes() == original
