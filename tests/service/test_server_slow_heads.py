"""Against a real uvicorn process: a client trickling its request head (slowloris), or
connecting and sending nothing, is cut off within the head deadline while normal
requests keep being answered; an oversized head gets 431. Crafted SEG-Y and SU files
sent from several clients at once are refused (4xx, read in the parse workers) and the
server keeps serving."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from seislens.data.gather_files import write_su
from test_gather_workers import crafted

from seislens.server_process import running_server

HEAD_TIMEOUT_S = 1.5
UPLOAD_LIMIT = 16 * 1024 * 1024
SLACK_S = 2.0
"""Allowed beyond the deadline (a loaded 2-core machine: timers fire late)."""


@pytest.fixture(scope="module")
def server(serving_fixture, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("slow-heads") / "bundle"
    shutil.copytree(serving_fixture / "bundle", bundle)
    env = {
        "SEISLENS_PREFER_GPU": "false",
        "SEISLENS_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "SEISLENS_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    }
    with running_server(bundle, bundle.parent / "server.log", env, start_timeout_s=300) as running:
        yield running


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _trickle(url: str, stop: threading.Event) -> tuple[float, bytes]:
    """Send a request head one byte every 0.1 s until the server closes the connection
    (or ``stop``); seconds until it did, and what it answered."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 400
    sock = _connect(url)
    start = time.monotonic()
    try:
        for byte in head:
            if stop.is_set():
                break
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:  # the server closed the connection
        pass
    sock.settimeout(10)
    try:
        answer = sock.recv(4096)
    except OSError:
        answer = b""
    elapsed = time.monotonic() - start
    sock.close()
    return elapsed, answer


def test_a_trickling_head_is_cut_off_while_normal_requests_answer(server):
    stop = threading.Event()
    with ThreadPoolExecutor(8) as pool:
        trickles = [pool.submit(_trickle, server.url, stop) for _ in range(6)]
        time.sleep(0.3)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answered = [http.get("/healthz").status_code for _ in range(5)]
        results = [t.result(timeout=60) for t in trickles]
        stop.set()
    assert answered == [200] * 5
    for elapsed, answer in results:
        assert elapsed < HEAD_TIMEOUT_S + SLACK_S, elapsed  # 40 s if never cut off
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"SEISLENS_HEAD_TIMEOUT_S" in answer


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = _connect(server.url)
    start = time.monotonic()
    assert sock.recv(4096) == b""  # closed by the server, no answer
    assert time.monotonic() - start < HEAD_TIMEOUT_S + SLACK_S
    sock.close()


def test_a_slow_but_timely_head_and_keep_alive_requests_are_served(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(3):  # one connection, requests further apart than the deadline
            assert http.get("/healthz").status_code == 200
            time.sleep(0.6)
    sock = _connect(server.url)
    for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
        sock.sendall(part)
        time.sleep(0.3)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()


def test_an_oversized_head_gets_431(server):
    sock = _connect(server.url)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000)
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_crafted_gathers_from_concurrent_clients(server, sample, tmp_path):
    write_su(tmp_path / "ok.su", sample.gather)
    files = list(crafted(sample.segy, (tmp_path / "ok.su").read_bytes()).values())
    files.append(("good.sgy", sample.segy))

    def send(client: int) -> list[tuple[str, int]]:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            out = []
            for i in range(len(files)):
                name, data = files[(i + client) % len(files)]
                r = http.post("/v1/velocity/search", files={"file": (name, data)})
                out.append((name, r.status_code))
            return out

    with ThreadPoolExecutor(4) as clients:
        answers = [a for batch in clients.map(send, range(4)) for a in batch]
    wrong = [
        (name, status) for name, status in answers if status != (200 if name == "good.sgy" else 422)
    ]
    assert len(answers) == 4 * len(files) and wrong == [], wrong
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200


def test_the_rest_of_a_refused_body_is_not_taken_for_the_next_head(server):
    """A 413 answered while a chunked body streams in; the client sends the rest of the
    body and then another request on the same connection. The server either closes the
    connection after its 413 or answers the next request, and never takes the leftover
    body for the next request's head (431)."""
    chunk = b"\0" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sock = _connect(server.url)
    sock.settimeout(30)
    answers = b""
    try:
        sock.sendall(
            b"POST /v1/velocity/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(UPLOAD_LIMIT // len(chunk) + 3):
            sock.sendall(framed)
        sock.sendall(b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        while answers.count(b"HTTP/1.1 ") < 2:
            data = sock.recv(65536)
            if not data:
                break
            answers += data
    except ConnectionError:  # closed after the 413, unread body and all
        closed = True
    else:
        closed = answers.count(b"HTTP/1.1 ") < 2
    finally:
        sock.close()
    assert b"HTTP/1.1 431" not in answers, answers[:300]
    if not closed:
        assert answers.startswith(b"HTTP/1.1 413"), answers[:200]
        assert b"HTTP/1.1 200" in answers, answers[-300:]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
