"""The calibration writer (``seislens calibrate velocity``) changes the manifest the way
the index builders do: under the bundle's lock, re-reading it there. A switch an index
build makes while the calibration runs is kept; a calibration whose index was switched
meanwhile is refused and writes nothing."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from seislens.index.bundle import BundleError, read_manifest, update_manifest, write_manifest
from seislens.index.retention import bundle_lock

from seislens.pipeline import calibrate_velocity_bundle

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "serving"
QUERIES = 20  # the calibration's minimum


@pytest.fixture
def bundle(tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(FIXTURE / "bundle", copy)
    return copy


@pytest.fixture(scope="module")
def calibration_data(tmp_path_factory) -> Path:
    """An OpenFWI folder of the fixture's gather under 20 noise draws (its own model)."""
    folder = tmp_path_factory.mktemp("calib") / "flatvel-a"
    folder.mkdir()
    stored = np.load(FIXTURE / "velocity_sample.npz")
    gather, model = stored["gather"], stored["velocity_model"]
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((QUERIES, *gather.shape)).astype(np.float32)
    data = gather[None] + 0.05 * float(np.abs(gather).max()) * noise
    np.save(folder / "data1.npy", data.astype(np.float32))
    np.save(folder / "model1.npy", np.repeat(model[None, None], QUERIES, axis=0))
    return folder


def _waiting_on(folder: Path) -> bool:
    """Whether /proc/locks shows a blocked flock request on ``folder``."""
    inode = os.stat(folder).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False


def _calibrate_while_locked(bundle: Path, data: Path, switch) -> dict:
    """Hold the bundle's lock, start a calibration, wait until it blocks on the lock,
    make ``switch`` to the manifest (as an index build does), release; the outcome."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["calibration"] = calibrate_velocity_bundle(bundle, [data], k=5, progress=False)
        except BundleError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    with bundle_lock(bundle):
        thread.start()
        deadline = time.monotonic() + 240
        while not _waiting_on(bundle):
            assert thread.is_alive(), f"the calibration finished without the lock: {outcome}"
            assert time.monotonic() < deadline, "the calibration never waited for the lock"
            time.sleep(0.05)
        write_manifest(bundle, switch(read_manifest(bundle)))
    thread.join(60)
    assert not thread.is_alive()
    return outcome


def test_a_switch_made_while_calibrating_is_kept(bundle, calibration_data):
    before = read_manifest(bundle)
    moved = before.indexes["events"].model_copy(update={"path": "index/events-switched"})
    outcome = _calibrate_while_locked(
        bundle,
        calibration_data,
        lambda m: m.model_copy(update={"indexes": {**m.indexes, "events": moved}}),
    )
    after = read_manifest(bundle)
    assert "error" not in outcome
    assert after.indexes["events"].path == "index/events-switched"  # the build's switch
    assert after.velocity.calibration == outcome["calibration"]  # and the calibration
    assert after.velocity.calibration.queries == QUERIES
    assert after.indexes["velocity"] == before.indexes["velocity"]


def test_a_calibration_whose_index_was_switched_meanwhile_writes_nothing(bundle, calibration_data):
    before = read_manifest(bundle)
    moved = before.indexes["velocity"].model_copy(update={"path": "index/velocity-switched"})
    switched = before.model_copy(update={"indexes": {**before.indexes, "velocity": moved}})
    outcome = _calibrate_while_locked(bundle, calibration_data, lambda m: switched)
    assert "velocity index changed while calibrating" in str(outcome["error"])
    assert read_manifest(bundle) == switched


def test_update_manifest_writes_nothing_when_the_change_refuses(bundle):
    before = (bundle / "manifest.json").read_bytes()

    def refuse(manifest):
        raise BundleError("no")

    with pytest.raises(BundleError):
        update_manifest(bundle, refuse)
    assert (bundle / "manifest.json").read_bytes() == before
    renamed = update_manifest(bundle, lambda m: m.model_copy(update={"name": "renamed"}))
    assert read_manifest(bundle) == renamed and renamed.name == "renamed"
