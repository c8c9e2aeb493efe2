"""Leases and pruning (seislens.index.leases, seislens.index.retention): what a bundle
keeps when a build or an export replaces something, and what it removes."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from seislens.index import retention
from seislens.index.builder import BuildConfig, build
from seislens.index.bundle import read_manifest, write_branch
from seislens.index.leases import LeaseKeeper, held_paths, read_leases, remove_stale
from seislens.index.retention import (
    building,
    bundle_lock,
    is_building,
    prune,
    prune_candidates,
    referenced,
    with_retained,
)
from seislens.models.branches import EVENTS, VELOCITY
from seislens.models.embedders import sha256_file

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "serving" / "bundle"
OLD = time.time() - 3600  # an hour ago: older than any job started now


@pytest.fixture
def bundle(tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(FIXTURE, copy)
    return copy


@pytest.fixture
def models(bundle, tmp_path) -> Path:
    """A velocity library of 6 models (the fixture's first ones)."""
    folder = tmp_path / "library" / "flatvel-a"
    folder.mkdir(parents=True)
    entry = read_manifest(bundle).indexes["velocity"]
    stored = np.load(bundle / entry.path / "models.npy")[:6].astype(np.float32)
    np.save(folder / "model1.npy", stored)
    return folder


def _aged(path: Path) -> Path:
    os.utime(path, (OLD, OLD))
    return path


def _orphan(bundle: Path, name: str) -> str:
    """An index folder as a killed build leaves it (never named by the manifest)."""
    folder = bundle / "index" / name
    folder.mkdir()
    (folder / "vectors.faiss").write_bytes(b"half")
    (folder / retention.BUILDING_FILE).touch()  # its lock died with the build
    _aged(folder)
    return f"index/{name}"


def _velocity_folders(bundle: Path) -> list[str]:
    return sorted(f"index/{p.name}" for p in (bundle / "index").glob("velocity-*"))


# --------------------------------------------------------------------------- leases


def test_a_keeper_writes_refreshes_and_removes_its_lease(bundle):
    keeper = LeaseKeeper(ttl_s=0.6)
    keeper.hold("a", bundle, {"index/x"})
    keeper.hold("b", bundle, {"encoders/y.onnx"})
    [lease] = read_leases(bundle)
    assert lease.paths == {"index/x", "encoders/y.onnx"} and lease.pid == os.getpid()
    assert lease.file == keeper.file(bundle) and lease.live()
    keeper.start()
    time.sleep(0.9)  # past the first TTL: refreshed meanwhile
    [again] = read_leases(bundle)
    assert again.live() and again.expires > lease.expires
    keeper.release("a")
    assert held_paths(bundle) == {"encoders/y.onnx"}
    keeper.close()
    assert read_leases(bundle) == [] and not (bundle / "leases").exists()


def test_stale_and_foreign_lease_files_protect_nothing(bundle):
    keeper = LeaseKeeper(ttl_s=60)
    keeper.hold("a", bundle, {"index/x"})
    stale = bundle / "leases" / "1-dead.json"
    payload = json.loads(keeper.file(bundle).read_text())
    stale.write_text(json.dumps({**payload, "owner": "1-dead", "expires": time.time() - 1}))
    (bundle / "leases" / "junk.json").write_text("{not json")
    assert held_paths(bundle) == {"index/x"}
    assert remove_stale(bundle) == [stale] and not stale.exists()
    keeper.close()


def test_a_read_only_bundle_is_served_without_a_lease(tmp_path, caplog):
    keeper = LeaseKeeper()
    blocked = tmp_path / "ro"
    blocked.mkdir()
    (blocked / "leases").write_text("a file where the folder should be")
    keeper.hold("a", blocked, {"index/x"})  # no exception: a warning
    keeper.hold("b", blocked, {"index/y"})
    assert sum("cannot write a lease" in r.message for r in caplog.records) == 1
    keeper.close()


def test_keeper_refuses_a_ttl_of_zero():
    with pytest.raises(ValueError, match="ttl_s"):
        LeaseKeeper(0)


# --------------------------------------------------------------------------- retention


def test_with_retained_keeps_the_last_versions_newest_first(bundle):
    manifest = read_manifest(bundle)
    for new, old in (("b", "a"), ("c", "b"), ("d", "c")):
        manifest = with_retained(manifest, "index/velocity", [old], [new], keep=3)
    assert retention.retained(manifest)["index/velocity"] == [["c"], ["b"]]
    back = with_retained(manifest, "index/velocity", ["d"], ["c"], keep=3)  # back to c
    assert retention.retained(back)["index/velocity"] == [["d"], ["b"]]
    with pytest.raises(ValueError, match="at least 1"):
        with_retained(manifest, "index/velocity", ["d"], ["e"], keep=0)


def test_prune_removes_only_what_nothing_names_holds_or_writes(bundle):
    manifest = read_manifest(bundle)
    orphan = _orphan(bundle, "velocity-20200101T000000-aaaaaa")
    leased = _orphan(bundle, "velocity-20200101T000001-bbbbbb")
    retained_one = _orphan(bundle, "events-20200101T000002-cccccc")
    writing = _orphan(bundle, "velocity-20200101T000003-dddddd")
    fresh = bundle / "index" / "events-20990101T000000-eeeeee"
    fresh.mkdir()  # created after the job began: not judged
    fresh_rel = f"index/{fresh.name}"
    unused = bundle / "encoders" / "velocity-old-000000000000.onnx"
    unused.write_bytes(b"x")
    _aged(unused)
    tmp = bundle / "manifest.json.4242.tmp"
    tmp.write_text("{}")
    _aged(tmp)
    work = bundle / "index" / ".work-0123456789abcdef"
    work.mkdir()
    manifest = with_retained(manifest, "index/events", [retained_one], ["x"], keep=2)
    keeper = LeaseKeeper()
    keeper.hold("service", bundle, {leased})
    with open(bundle / writing / retention.BUILDING_FILE, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # a build still writing it
        assert is_building(bundle / writing)
        removed = prune(bundle, manifest, started=time.time() - 60)
    keeper.close()
    assert sorted(removed) == sorted([orphan, f"encoders/{unused.name}", tmp.name])
    for kept in (leased, retained_one, writing, f"index/{fresh.name}", f"index/{work.name}"):
        assert (bundle / kept).exists(), kept
    assert set(prune_candidates(bundle)) - referenced(manifest) == {leased, writing, fresh_rel}
    assert not is_building(bundle / writing)


def test_the_bundle_lock_serialises_writers(bundle):
    order = []

    def second():
        with bundle_lock(bundle):
            order.append("second")

    with bundle_lock(bundle):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]


def test_building_marks_a_new_folder_until_done(tmp_path):
    with building(tmp_path / "index" / "velocity-1") as folder:
        assert folder.is_dir() and is_building(folder)
    assert not is_building(folder) and not (folder / retention.BUILDING_FILE).exists()
    with pytest.raises(FileExistsError), building(folder):
        pass  # a build folder is always new


# --------------------------------------------------------------------------- the builder


def test_a_second_rebuild_without_reload_keeps_the_held_folder(bundle, models):
    held = read_manifest(bundle).indexes["velocity"].path
    keeper = LeaseKeeper()
    keeper.hold("service", bundle, {held})  # a service that never reloads
    first = build(bundle, VELOCITY, [models], progress=False)
    second = build(bundle, VELOCITY, [models], progress=False)
    assert _velocity_folders(bundle) == sorted([held, first.path, second.path])
    keeper.close()  # the service lets go: the next build prunes it
    third = build(bundle, VELOCITY, [models], progress=False)
    assert _velocity_folders(bundle) == sorted([second.path, third.path])
    assert retention.retained(read_manifest(bundle))["index/velocity"] == [[second.path]]


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_sets_how_many_folders_stay(bundle, models, keep):
    paths = [build(bundle, VELOCITY, [models], BuildConfig(keep=keep), False).path for _ in "abcd"]
    assert _velocity_folders(bundle) == sorted(paths[-keep:])


def test_a_build_prunes_orphans_of_killed_builds_of_any_branch(bundle, models):
    orphans = [
        _orphan(bundle, "velocity-20200101T000000-aaaaaa"),
        _orphan(bundle, "events-20200101T000000-bbbbbb"),
    ]
    before = read_manifest(bundle).indexes
    build(bundle, VELOCITY, [models], progress=False)
    assert not any((bundle / o).exists() for o in orphans)
    assert (bundle / before["events"].path).is_dir()  # named by the manifest: kept
    assert (bundle / before["velocity"].path).is_dir()  # the previous one: retained


# --------------------------------------------------------------------------- the bundle writer


def _restaged(bundle: Path, tmp_path: Path, branch, tag: bytes):
    """A new version of ``branch``'s section whose files are ``tag`` bytes (the writer
    only checks hashes); (section, staged files)."""
    section = read_manifest(bundle).section(branch.name)
    staged, encoders = {}, {}
    for name, entry in section.encoders.items():
        path = tmp_path / f"{name}-{tag.decode()}.onnx"
        path.write_bytes(tag + name.encode())
        digest = sha256_file(path)
        staged[name] = path
        encoders[name] = entry.model_copy(
            update={"sha256": digest, "file": branch.encoder_file(name, digest)}
        )
    return section.model_copy(update={"encoders": encoders}), staged


def test_write_branch_keeps_encoder_files_a_service_holds(bundle, tmp_path):
    original = {e.file for e in read_manifest(bundle).events.encoders.values()}
    keeper = LeaseKeeper()
    keeper.hold("service", bundle, original)
    versions = []
    for tag in (b"v1", b"v2", b"v3"):
        section, staged = _restaged(bundle, tmp_path, EVENTS, tag)
        write_branch(bundle, EVENTS, section, staged)
        versions.append({e.file for e in section.encoders.values()})
    on_disk = {f"encoders/{p.name}" for p in (bundle / "encoders").glob("*.onnx")}
    velocity = {e.file for e in read_manifest(bundle).velocity.encoders.values()}
    assert on_disk == velocity | original | versions[1] | versions[2]  # v1: pruned
    keeper.close()
    section, staged = _restaged(bundle, tmp_path, EVENTS, b"v4")
    write_branch(bundle, EVENTS, section, staged, keep=1)
    on_disk = {f"encoders/{p.name}" for p in (bundle / "encoders").glob("*.onnx")}
    assert on_disk == velocity | {e.file for e in section.encoders.values()}
