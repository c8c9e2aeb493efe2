"""Rebuilds never break a running service, and killed rebuilds never break the bundle.

On copies of the committed serving fixture (both branches, no torch needed):

* a real uvicorn process serves the bundle while 8 clients query both branches; each
  branch's index is rebuilt twice, the server hot-reloading each new index (its
  manifest watcher); then, on a server that does not reload until an admin reload at
  the end, the velocity index is rebuilt twice: every request must succeed. The
  folders the server holds stay (its lease) however many builds pass; once it lets
  go, a build prunes all but the last ``keep``;
* index builds in subprocesses are SIGKILLed at times spread over a build; after every
  kill the bundle loads, and a last build finishes and leaves no orphan
  (``seislens.rebuild_drill``; the 20-kill runs of each branch are ``slow``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import obspy
import pytest
from seislens.data.event_synth import EventSynthConfig, generate_events
from seislens.index.builder import build
from seislens.index.bundle import read_manifest
from seislens.index.leases import read_leases
from seislens.models.branches import EVENTS, VELOCITY

from seislens.rebuild_drill import (
    default_queries,
    killed_rebuilds,
    leftovers,
    rebuild_under_load,
    velocity_library,
)
from seislens.server_process import running_server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "serving" / "bundle"
CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
TOKEN = "drill-token"


@pytest.fixture(scope="module")
def event_library(tmp_path_factory) -> Path:
    """The SeisBench-format traces the fixture's events index was built over."""
    folder = tmp_path_factory.mktemp("drill-events") / "events"
    return generate_events(folder, EventSynthConfig(count=60, seed=3), progress=False)


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A writable copy of the committed two-branch fixture bundle."""
    copy = tmp_path / "bundle"
    shutil.copytree(FIXTURE, copy)
    return copy


@pytest.fixture
def velocity_source(bundle, tmp_path) -> Path:
    """The fixture's own 24 library models as a velocity library to rebuild from."""
    return velocity_library(bundle, tmp_path / "velocity-library")


def _folders(bundle: Path, branch) -> set[str]:
    return {f"index/{p.name}" for p in (bundle / "index").glob(f"{branch.index_name}-*")}


def _env(**extra: str) -> dict[str, str]:
    return {"SEISLENS_PREFER_GPU": "false", "SEISLENS_ADMIN_TOKEN": TOKEN, **extra}


def test_rebuilding_both_branches_twice_while_hot_reloading_fails_no_request(
    bundle, velocity_source, event_library, tmp_path
):
    first = read_manifest(bundle).indexes
    sources = {"velocity": [velocity_source], "events": [event_library]}
    env = _env(SEISLENS_WATCH_INTERVAL_S="0.2")
    with running_server(bundle, tmp_path / "server.log", env) as server:
        [lease] = read_leases(bundle)
        assert lease.pid == server.pid
        assert {first["velocity"].path, first["events"].path} <= lease.paths
        queries = default_queries(CER.read_bytes())
        report = rebuild_under_load(server.url, bundle, sources, 2, queries, 8, settle_s=0.2)
        [lease] = read_leases(bundle)
        now = read_manifest(bundle).indexes
        assert {now["velocity"].path, now["events"].path} <= lease.paths
    assert report.failed == 0, report.examples
    assert dict(report.rebuilds) == {"velocity": 2, "events": 2}
    assert report.reloads >= 4  # the watcher's, one per rebuild
    assert report.requests >= 20 and all(c.get("ok") for c in report.outcomes.values())
    assert read_leases(bundle) == []  # removed at shutdown


def test_rebuilds_without_a_reload_keep_what_the_server_holds(bundle, velocity_source, tmp_path):
    """Two velocity rebuilds while the server keeps its first load (no watcher): its
    folder is two builds old, beyond ``keep``, yet nothing it holds goes (the lease is
    the same for both branches: tests/index/test_retention.py)."""
    first = read_manifest(bundle).indexes["velocity"].path
    with running_server(bundle, tmp_path / "server.log", _env()) as server:
        queries = default_queries(CER.read_bytes())
        report = rebuild_under_load(
            server.url,
            bundle,
            {"velocity": [velocity_source]},
            2,
            queries,
            reload="none",
            admin_token=TOKEN,
            settle_s=1.0,
        )
    assert report.failed == 0, report.examples
    assert report.reloads == 1 and dict(report.rebuilds) == {"velocity": 2}
    assert (bundle / first).is_dir() and len(_folders(bundle, VELOCITY)) == 3
    entry = build(bundle, VELOCITY, [velocity_source], progress=False)
    assert not (bundle / first).exists()  # nobody holds it now: pruned
    assert len(_folders(bundle, VELOCITY)) == 2 and (bundle / entry.path).is_dir()


def test_killed_rebuilds_leave_a_loadable_bundle(bundle, velocity_source, event_library):
    for branch, source, kills in ((VELOCITY, velocity_source, 2), (EVENTS, event_library, 1)):
        report = killed_rebuilds(bundle, branch, [source], kills)
        assert report.kills == kills and report.lost == 0, report.problems
        assert report.final_build and report.leftovers == [], report
    assert leftovers(bundle) == []


@pytest.mark.slow
@pytest.mark.parametrize("branch", [VELOCITY, EVENTS], ids=lambda b: b.name)
def test_twenty_killed_rebuilds_of_each_branch(bundle, velocity_source, event_library, branch):
    source = velocity_source if branch is VELOCITY else event_library
    report = killed_rebuilds(bundle, branch, [source], kills=20, seed=1)
    assert report.kills == 20 and report.lost == 0, report.problems
    assert report.killed_while_building >= 15  # most kills land in a running build
    assert report.final_build and report.leftovers == [], report
