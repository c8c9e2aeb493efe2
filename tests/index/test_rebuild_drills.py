"""Rebuilding both branches' indexes under a running service drops no request.

A real uvicorn process serves a copy of the tiny two-branch bundle and watches its
manifest; threads keep searching both branches over HTTP while the build job rebuilds
the velocity index, then the events index. Every answer must be a 200, the service
must pick up each new index, and the previous index folders must still be there.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import obspy
import pytest
from seislens.index.builder import build
from seislens.index.bundle import read_manifest
from seislens.models.branches import EVENTS, VELOCITY

from seislens.server_process import running_server

RELOAD_TIMEOUT_S = 60
CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"


def _gather_npy() -> bytes:
    gather = np.random.default_rng(0).standard_normal((5, 1000, 70)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, gather)
    return buffer.getvalue()


@pytest.fixture
def served(tiny_event_bundle, tmp_path):
    """A copy of the two-branch bundle served by uvicorn with the manifest watched;
    yields (bundle, base URL)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_event_bundle.bundle, bundle)
    watched = {"SEISLENS_PREFER_GPU": "false", "SEISLENS_WATCH_INTERVAL_S": "0.2"}
    with running_server(bundle, tmp_path / "server.log", watched) as server:
        yield bundle, server.url


class Load:
    """Threads that keep searching one route until stopped; every outcome recorded."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.outcomes: dict[str, list[str]] = {"velocity": [], "events": []}
        self.threads = [
            threading.Thread(target=self._run, args=("velocity",), daemon=True),
            threading.Thread(target=self._run, args=("velocity",), daemon=True),
            threading.Thread(target=self._run, args=("events",), daemon=True),
        ]

    def _run(self, branch: str) -> None:
        path, name, data, params = (
            ("/v1/velocity/search", "gather.npy", _gather_npy(), {"k": 5})
            if branch == "velocity"
            else ("/v1/events/search", "event.mseed", CER.read_bytes(), {"k": 5})
        )
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    r = http.post(path, files={"file": (name, data)}, params=params)
                    ok = r.status_code == 200 and _found(branch, r.json())
                    self.outcomes[branch].append("ok" if ok else f"{r.status_code}: {r.text}")
                except httpx.HTTPError as exc:
                    self.outcomes[branch].append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def _found(branch: str, body: dict) -> bool:
    if branch == "velocity":
        return len(body["results"]) == 5
    return all(len(s["similar"]) == 5 for s in body["stations"])


def _index_path(url: str, branch: str) -> str:
    body = httpx.get(url + "/v1/bundle", timeout=30).json()
    return body["index"]["path"] if branch == "velocity" else body["events"]["index"]["path"]


def _wait_for_index(url: str, branch: str, path: str) -> None:
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while (served := _index_path(url, branch)) != path:
        assert time.monotonic() < deadline, f"the service still serves {served}, not {path}"
        time.sleep(0.2)


def test_rebuilding_both_indexes_under_load_fails_no_request(
    served, tiny_velocity_data, tiny_event_bundle
):
    bundle, url = served
    before = read_manifest(bundle).indexes
    with Load(url) as load:
        time.sleep(1.0)
        velocity = build(bundle, VELOCITY, [tiny_velocity_data], progress=False)
        _wait_for_index(url, "velocity", velocity.path)
        events = build(bundle, EVENTS, [tiny_event_bundle.events], progress=False)
        _wait_for_index(url, "events", events.path)
        time.sleep(1.0)
    for branch, outcomes in load.outcomes.items():
        failed = [o for o in outcomes if o != "ok"]
        assert len(outcomes) >= 3 and not failed, (
            f"{branch}: {len(failed)} failed, e.g. {failed[:3]}"
        )
    after = read_manifest(bundle).indexes
    assert after["velocity"].path == velocity.path != before["velocity"].path
    assert after["events"].path == events.path != before["events"].path
    for branch in (VELOCITY, EVENTS):  # the previous folders stay until the next build
        assert (bundle / before[branch.index_name].path).is_dir()
        assert (bundle / after[branch.index_name].path).is_dir()
