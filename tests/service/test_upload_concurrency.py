"""Issue 11's crash reproducers sent from several clients at once to a real uvicorn
process: every answer a 4xx (the valid file's a 200), the server alive and answering
afterwards; its parse workers killed, the next upload still served."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import obspy
import pytest
from seislens.service import recording_examples as ex

from seislens.server_process import running_server

CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
CLIENTS = 6
ROUNDS = 4


def process_tree(root: int) -> dict[int, int]:
    """pid → depth below ``root`` of every live descendant (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    depth: dict[int, int] = {}
    frontier, level = [root], 0
    while frontier:
        level += 1
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        depth.update(dict.fromkeys(frontier, level))
    return depth


@pytest.fixture(scope="module")
def server(tiny_event_bundle, tmp_path_factory):
    """One real server for the module (its log with it)."""
    log_path = tmp_path_factory.mktemp("concurrency") / "server.log"
    with running_server(tiny_event_bundle.bundle, log_path) as running:
        yield running, log_path


UPLOADS = {
    "trailing_garbage": (ex.trailing_garbage(CER.read_bytes()), 422),
    "overfull_record": (ex.overfull_record(), 422),
    "many_traces": (ex.many_short_traces(3000), 422),
    "valid": (CER.read_bytes(), 200),
}


def send(url: str, client: int) -> list[tuple[str, int]]:
    """One client's uploads, every kind in turn (a different order per client)."""
    names = sorted(UPLOADS)
    answers = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(ROUNDS * len(names)):
            name = names[(i + client) % len(names)]
            r = http.post("/v1/events/classify", files={"file": ("event.mseed", UPLOADS[name][0])})
            answers.append((name, r.status_code))
    return answers


def test_crash_reproducers_from_concurrent_clients(server):
    running, log_path = server
    with ThreadPoolExecutor(CLIENTS) as clients:
        answers = [
            a for batch in clients.map(send, [running.url] * CLIENTS, range(CLIENTS)) for a in batch
        ]
    assert len(answers) == CLIENTS * ROUNDS * len(UPLOADS)
    wrong = [(name, status) for name, status in answers if status != UPLOADS[name][1]]
    assert wrong == [], wrong[:10]
    os.kill(running.pid, 0)  # the server process lives
    assert httpx.get(running.url + "/healthz", timeout=10).status_code == 200
    log = log_path.read_text()
    assert "Traceback" not in log and "crashed" not in log


def test_killed_workers_are_replaced(server):
    running, _ = server
    files = {"file": ("event.mseed", CER.read_bytes())}
    assert (
        httpx.post(running.url + "/v1/events/classify", files=files, timeout=60).status_code == 200
    )
    workers = [pid for pid, depth in process_tree(running.pid).items() if depth == 2]
    assert workers  # the forkserver's children
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    for _ in range(3):
        r = httpx.post(running.url + "/v1/events/classify", files=files, timeout=60)
        assert r.status_code == 200, r.text
    alive = [pid for pid, depth in process_tree(running.pid).items() if depth == 2]
    assert alive and not set(alive) & set(workers)
    assert httpx.get(running.url + "/healthz", timeout=10).status_code == 200
