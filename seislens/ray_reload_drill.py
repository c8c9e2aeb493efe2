"""Reloads under load on Ray Serve replicas: every reload must reach every replica with
no failed request. Shared by tests/service/test_ray_serve.py and bench/scale.py, so the
suite and the figures run the same code.

A reload is one of two kinds, taken in turn:

* ``watch``: the served bundle's velocity index is rebuilt in place (a new index
  folder, the manifest switched); each replica's manifest watcher picks it up;
* ``admin``: the *other* bundle's index is rebuilt, then one ``POST /v1/admin/reload``
  (to that bundle) lands on one replica, and the bundle board carries it to the rest.

After each reload, ``GET /v1/bundle`` is asked until every replica (told apart by the
``X-SeisLens-Replica`` header) answers with the expected bundle and index folder. A
:class:`~seislens.rebuild_drill.Load` of SEG-Y searches runs throughout; any answer
other than the expected 200 counts as failed.

Needs the cluster extra (imports :mod:`seislens.service.ray_serve`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from seislens.index.builder import build
from seislens.models.branches import VELOCITY
from seislens.rebuild_drill import RELOAD_TIMEOUT_S, Load, Query
from seislens.service.ray_serve import RELOAD_PATH, REPLICA_HEADER, running_replicas

ReloadKind = Literal["watch", "admin"]
"""How a reload reaches the replicas: the manifest watchers, or one admin call."""

Served = tuple[str, str]
"""(bundle directory, velocity index folder) a replica serves."""


def segy_search(segy: bytes, k: int = 3) -> Query:
    """A SEG-Y velocity search answered with ``k`` results."""
    return Query(
        "velocity_search_segy",
        "POST",
        "/v1/velocity/search",
        files={"file": ("gather.sgy", segy)},
        params={"k": k},
        check=lambda body: len(body["results"]) == k,
    )


def served_by(http: httpx.Client, auth: dict[str, str]) -> tuple[str, Served]:
    """(replica, what it serves) of one ``GET /v1/bundle`` (with the admin token, so
    the bundle's full path is in the answer)."""
    r = http.get("/v1/bundle", headers=auth)
    r.raise_for_status()
    body = r.json()
    return r.headers[REPLICA_HEADER], (body["path"], body["index"]["path"])


def wait_every_replica(
    http: httpx.Client, auth: dict[str, str], expected: Served, replicas: int
) -> dict[str, Served]:
    """Ask until ``replicas`` distinct replicas (and every running one) answered last
    with ``expected``; returns each replica's last answer.

    Raises:
        TimeoutError: not within :data:`~seislens.rebuild_drill.RELOAD_TIMEOUT_S`.
    """
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    last: dict[str, Served] = {}
    while True:
        replica, served = served_by(http, auth)
        last[replica] = served
        done = [r for r, s in last.items() if s == expected]
        if len(done) >= max(replicas, running_replicas()):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"replicas still serve {last}, expected {expected}")
        time.sleep(0.05)


@dataclass
class ReloadRun:
    """One reload: its kind, the bundle and index it switched to, and the seconds from
    the switch (manifest written, or admin call sent) until every replica served it."""

    kind: ReloadKind
    bundle: str
    index: str
    seconds_to_every_replica: float
    replicas: int


@dataclass
class ReplicaReloadReport:
    """What :func:`reloads_under_load` did."""

    reloads: list[ReloadRun] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def reloads_under_load(
    url: str,
    bundles: tuple[Path, Path],
    library: list[Path],
    queries: list[Query],
    token: str,
    reloads: int = 5,
    replicas: int = 2,
    concurrency: int = 4,
    settle_s: float = 0.5,
) -> ReplicaReloadReport:
    """``reloads`` reloads (``watch`` and ``admin`` in turn) of the Serve application at
    ``url``, first serving ``bundles[0]``, while ``concurrency`` clients send
    ``queries``; after each, every one of ``replicas`` replicas must serve the new
    bundle and index. ``library`` is what the velocity index is rebuilt from.

    Raises:
        TimeoutError: a reload did not reach every replica in time.
    """
    auth = {"Authorization": f"Bearer {token}"}
    report = ReplicaReloadReport()
    serving, other = (b.resolve() for b in bundles)
    with httpx.Client(base_url=url, timeout=60) as http, Load(url, queries, concurrency) as load:
        time.sleep(settle_s)
        for i in range(reloads):
            kind: ReloadKind = "watch" if i % 2 == 0 else "admin"
            target = serving if kind == "watch" else other
            entry = build(target, VELOCITY, library, progress=False)
            start = time.perf_counter()
            if kind == "admin":
                admin_reload_to(http, auth, target)
                serving, other = other, serving
            last = wait_every_replica(http, auth, (str(target), entry.path), replicas)
            seconds = time.perf_counter() - start
            report.reloads.append(ReloadRun(kind, str(target), entry.path, seconds, len(last)))
            time.sleep(settle_s)
    report.requests, report.failed = load.requests, load.failed
    report.outcomes = {k: dict(v) for k, v in load.outcomes.items()}
    report.examples = list(load.examples)
    return report


def admin_reload_to(http: httpx.Client, auth: dict[str, str], bundle: Path) -> None:
    """``POST /v1/admin/reload`` to ``bundle``, retried while a reload is running on
    the replica it reached (409 ``reload_in_progress``).

    Raises:
        httpx.HTTPStatusError: the reload failed otherwise.
    """
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while True:
        r = http.post(RELOAD_PATH, headers=auth, json={"bundle": str(bundle)})
        busy = r.status_code == 409 and r.json().get("reason") == "reload_in_progress"
        if not busy or time.monotonic() > deadline:
            r.raise_for_status()
            return
        time.sleep(0.1)
