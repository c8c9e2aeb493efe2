"""Rebuild drills: index rebuilds under load against a real server, and SIGKILLed
rebuilds. Shared by tests/index/test_rebuild_drills.py and bench/rebuild_under_load.py,
so the suite and the figures run the same code.

* :class:`Load` keeps ``concurrency`` client threads sending queries (velocity search,
  a library model, the bundle, event search and classification) to a server until
  stopped, recording every outcome; anything but the expected 200 is a failure.
* :func:`rebuild_under_load` rebuilds the branches' indexes one after the other while a
  :class:`Load` runs, waits for the server to serve each new index (its manifest
  watcher, or an admin reload), and reloads by hand in between.
* :func:`killed_rebuilds` starts index builds in subprocesses and SIGKILLs them at
  times spread over a build's duration; after each kill the bundle must load
  (:func:`check_loadable`), and a last build must finish.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from seislens.index.builder import BuildConfig, build
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.index.retention import prune_candidates, referenced
from seislens.models.branches import BRANCHES, VELOCITY, Branch
from seislens.service.settings import Settings
from seislens.service.state import load_bundle

RELOAD_TIMEOUT_S = 60.0
"""How long the server may take to serve a rebuilt index (s)."""


# --------------------------------------------------------------------------- inputs


def gather_npy(seed: int = 0) -> bytes:
    """A (5, 1000, 70) float32 gather of noise, as ``.npy`` bytes (a valid query)."""
    gather = np.random.default_rng(seed).standard_normal((5, 1000, 70)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, gather)
    return buffer.getvalue()


def velocity_library(bundle: Path, out: Path, copies: int = 1, seed: int = 0) -> Path:
    """A velocity library to rebuild from: the bundle's own indexed models (float32
    m/s), ``copies`` times (each copy after the first perturbed by ±1 % noise), in one
    family folder per family; returns ``out``."""
    manifest = read_manifest(bundle)
    library = LoadedLibrary.open(bundle, manifest, VELOCITY)
    try:
        models = np.asarray(library.array("models"), dtype=np.float32)
        families = [r.family if r else "unknown" for r in library.records(np.arange(len(models)))]
    finally:
        library.close()
    rng = np.random.default_rng(seed)
    for family in sorted(set(families)):
        rows = models[[f == family for f in families]]
        stack = [rows] + [rows * rng.uniform(0.99, 1.01, rows.shape) for _ in range(copies - 1)]
        folder = out / family
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "model1.npy", np.concatenate(stack).astype(np.float32))
    return out


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Query:
    """One kind of request of the load: what it sends and what a success looks like."""

    name: str
    method: str
    path: str
    files: dict[str, tuple[str, bytes]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], bool] = lambda body: True

    def send(self, http: httpx.Client) -> httpx.Response:
        return http.request(self.method, self.path, files=self.files, params=self.params)


def default_queries(recording: bytes | None, model_id: int = 0, k: int = 5) -> list[Query]:
    """Velocity search (``k`` results), a library model, the bundle, and — with a
    ``recording`` (miniSEED bytes) — event search (``k`` similar per station) and
    classification."""
    queries = [
        Query(
            "velocity_search",
            "POST",
            "/v1/velocity/search",
            files={"file": ("gather.npy", gather_npy())},
            params={"k": k},
            check=lambda b: len(b["results"]) == k,
        ),
        Query("velocity_model", "GET", f"/v1/velocity/models/{model_id}"),
        Query("bundle", "GET", "/v1/bundle"),
    ]
    if recording is not None:
        files = {"file": ("event.mseed", recording)}
        queries += [
            Query(
                "events_search",
                "POST",
                "/v1/events/search",
                files=files,
                params={"k": k},
                check=lambda b: all(len(s["similar"]) == k for s in b["stations"]),
            ),
            Query("events_classify", "POST", "/v1/events/classify", files=files),
        ]
    return queries


class Load:
    """``concurrency`` threads sending ``queries`` in turn to ``url`` until stopped.

    Attributes:
        outcomes: per query name, the count of successes (``"ok"``) and of each failure
            (``"<status>: <reason>"`` or the exception's type).
        examples: the first few failure messages.
    """

    def __init__(self, url: str, queries: list[Query], concurrency: int = 8) -> None:
        self.url = url
        self.queries = queries
        self.stop = threading.Event()
        self.outcomes: dict[str, Counter[str]] = {q.name: Counter() for q in queries}
        self.examples: list[str] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(concurrency)
        ]

    @property
    def requests(self) -> int:
        """Requests answered (or failed) so far."""
        return sum(sum(c.values()) for c in self.outcomes.values())

    @property
    def failed(self) -> int:
        """Requests that did not get the expected answer."""
        return sum(n for c in self.outcomes.values() for k, n in c.items() if k != "ok")

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            turn = offset
            while not self.stop.is_set():
                query = self.queries[turn % len(self.queries)]
                turn += 1
                self._record(query, self._outcome(http, query))

    def _outcome(self, http: httpx.Client, query: Query) -> str:
        try:
            r = query.send(http)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if r.status_code == 200 and (not _is_json(r) or query.check(r.json())):
            return "ok"
        reason = r.json().get("reason", "") if _is_json(r) else ""
        return f"{r.status_code}: {reason} {r.text[:300]}"

    def _record(self, query: Query, outcome: str) -> None:
        with self._lock:
            key = outcome if outcome == "ok" else outcome.split(" ", 2)[0] + " " + query.name
            self.outcomes[query.name][key] += 1
            if outcome != "ok" and len(self.examples) < 5:
                self.examples.append(f"{query.name}: {outcome}")

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def _is_json(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").startswith("application/json")


# --------------------------------------------------------------------------- rebuilds under load


@dataclass
class LoadReport:
    """What a rebuild-under-load run did."""

    rebuilds: Counter[str] = field(default_factory=Counter)
    reloads: int = 0
    requests: int = 0
    failed: int = 0
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def served_index(http: httpx.Client, branch: Branch) -> str | None:
    """The index folder the server serves for ``branch`` (its ``/v1/bundle``)."""
    body = http.get("/v1/bundle").json()
    if branch is VELOCITY:
        return body["index"]["path"]
    section = body.get(branch.name) or {}
    return (section.get("index") or {}).get("path")


def wait_for_index(http: httpx.Client, branch: Branch, path: str) -> None:
    """Block until the server serves ``path`` as the index of ``branch``.

    Raises:
        TimeoutError: not within :data:`RELOAD_TIMEOUT_S`.
    """
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while (served := served_index(http, branch)) != path:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server still serves {served}, not {path}")
        time.sleep(0.1)


def reloads_done(http: httpx.Client) -> int:
    """Successful reloads the server has counted (its /metrics)."""
    pattern = re.compile(r'^seislens_bundle_reloads_total\{outcome="success"\} (\S+)$', re.M)
    match = pattern.search(http.get("/metrics").text)
    return int(float(match[1])) if match else 0


def admin_reload(http: httpx.Client, auth: dict[str, str]) -> None:
    """``POST /v1/admin/reload`` of the current bundle, retried while another reload
    (the watcher's) is running.

    Raises:
        httpx.HTTPStatusError: the reload failed otherwise.
    """
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while True:
        r = http.post("/v1/admin/reload", headers=auth)
        if r.status_code != 409 or time.monotonic() > deadline:
            r.raise_for_status()
            return
        time.sleep(0.1)


ReloadMode = Literal["watch", "admin", "none"]
"""How the server picks up a rebuilt index: its manifest watcher, an admin reload after
each build, or not at all until one admin reload at the end."""


def rebuild_under_load(
    url: str,
    bundle: Path,
    sources: dict[str, list[Path]],
    rounds: int,
    queries: list[Query],
    concurrency: int = 8,
    reload: ReloadMode = "watch",
    admin_token: str | None = None,
    settle_s: float = 0.5,
) -> LoadReport:
    """Rebuild every branch of ``sources`` (registry name → library paths) ``rounds``
    times while ``concurrency`` clients query the server at ``url`` (which serves
    ``bundle``). ``reload`` says how the server picks each new index up (an admin
    reload needs ``admin_token``); with "watch" or "admin" the next build starts once
    the server serves the new index; with "none" the builds follow each other while
    the server keeps its first load (what the leases protect), then one admin reload.

    Returns:
        The report: rebuilds per branch, the server's reload count, requests, failures.
    """
    report = LoadReport()
    auth = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    with httpx.Client(base_url=url, timeout=60) as http, Load(url, queries, concurrency) as load:
        reloads_before = reloads_done(http)
        time.sleep(settle_s)
        latest = {}
        for _ in range(rounds):
            for name, paths in sources.items():
                entry = build(bundle, BRANCHES[name], paths, progress=False)
                report.rebuilds[name] += 1
                latest[name] = entry.path
                if reload != "none":
                    _picked_up(http, {name: entry.path}, auth if reload == "admin" else None)
                time.sleep(settle_s)
        if reload == "none" and admin_token:
            _picked_up(http, latest, auth)
        time.sleep(settle_s)
        report.reloads = reloads_done(http) - reloads_before
    report.requests, report.failed = load.requests, load.failed
    report.outcomes = {k: dict(v) for k, v in load.outcomes.items()}
    report.examples = list(load.examples)
    return report


def _picked_up(http: httpx.Client, paths: dict[str, str], auth: dict[str, str] | None) -> None:
    """Reload by hand (with ``auth``), then wait until the server serves ``paths``
    (registry name → index folder)."""
    if auth is not None:
        admin_reload(http, auth)
    for name, path in paths.items():
        wait_for_index(http, BRANCHES[name], path)


# --------------------------------------------------------------------------- killed rebuilds

BUILD_CODE = """
import sys, time
from pathlib import Path
from seislens.index.builder import BuildConfig, build
from seislens.models.branches import BRANCHES
bundle, name, part_size, sources = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
print("ready", flush=True)
start = time.perf_counter()
build(bundle, BRANCHES[name], [Path(s) for s in sources], BuildConfig(part_size=part_size),
      progress=False)
print("built", time.perf_counter() - start, flush=True)
"""
"""One index build in a subprocess: prints ``ready`` once imported, ``built <s>`` at the end."""


@dataclass
class KillReport:
    """What a killed-rebuilds run found."""

    branch: str
    kills: int = 0
    killed_while_building: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    build_s: float = 0.0
    final_build: bool = False
    leftovers: list[str] = field(default_factory=list)


def _start_build(bundle: Path, branch: Branch, sources: list[Path], part_size: int):
    argv = [sys.executable, "-c", BUILD_CODE, str(bundle), branch.name, str(part_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*argv, *map(str, sources)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.wait()
        raise RuntimeError(f"the build subprocess failed to start ({proc.returncode})")
    return proc


def check_loadable(bundle: Path) -> str | None:
    """Why the bundle cannot be served (None when it loads, with every index the
    manifest names: the service's own load, warm-up queries included)."""
    settings = Settings(bundle=bundle, prefer_gpu=False, onnx_threads=1, lease_ttl_s=0)
    try:
        loaded = load_bundle(bundle, settings)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        unusable = [
            f"{b.branch.index_name}: {b.index_problem}"
            for b in loaded.branches.values()
            if b.branch.index_name in loaded.manifest.indexes and b.library is None
        ]
        return "; ".join(unusable) or None
    finally:
        loaded.retire()


def killed_rebuilds(
    bundle: Path,
    branch: Branch,
    sources: list[Path],
    kills: int,
    part_size: int = 8,
    seed: int = 0,
) -> KillReport:
    """Start ``kills`` builds of ``branch`` in subprocesses and SIGKILL each at a time
    spread over a build's duration (measured first by a build in this process,
    stratified: the i-th kill falls in the i-th slice of it, counted from the end of
    the subprocess's imports); after each kill the bundle must load. A last build (in
    this process) must finish and leave nothing the manifest does not name.
    """
    rng = random.Random(seed)
    report = KillReport(branch.name)
    config = BuildConfig(part_size=part_size)
    start = time.perf_counter()
    build(bundle, branch, sources, config, progress=False)
    report.build_s = time.perf_counter() - start
    for i in range(kills):
        proc = _start_build(bundle, branch, sources, part_size)
        time.sleep(report.build_s * (i + rng.random()) / kills)
        report.killed_while_building += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report.kills += 1
        problem = check_loadable(bundle)
        if problem is not None:
            report.lost += 1
            report.problems.append(f"kill {i}: {problem}")
    build(bundle, branch, sources, config, progress=False)
    report.final_build = check_loadable(bundle) is None
    report.leftovers = leftovers(bundle)
    return report


def leftovers(bundle: Path) -> list[str]:
    """Index folders, encoder files and temporary files the manifest does not name
    (what a prune should have removed), and work folders of interrupted builds."""
    named = referenced(read_manifest(bundle))
    left = [p for p in prune_candidates(bundle) if p not in named]
    return left + [f"index/{p.name}" for p in (bundle / "index").glob(".work-*")]
