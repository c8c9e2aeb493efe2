"""Slow clients and proxy headers against a real uvicorn process: a body that does not
arrive in time is answered 408 and the connection closed, an idle keep-alive
connection is closed, and X-Forwarded-* headers from an unconfigured address (here
loopback itself) change nothing."""

from __future__ import annotations

import shutil
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from service_helpers import npy_bytes

from seislens.server_process import running_server

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(serving_fixture, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("hardened") / "bundle"
    shutil.copytree(serving_fixture / "bundle", bundle)
    env = {
        "SEISLENS_PREFER_GPU": "false",
        "SEISLENS_UPLOAD_TIMEOUT_S": str(TIMEOUT_S),
        "SEISLENS_KEEP_ALIVE_TIMEOUT_S": str(TIMEOUT_S),
    }
    with running_server(bundle, bundle.parent / "server.log", env) as running:
        yield running


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_stalled_upload_is_answered_408_and_disconnected(server):
    sock = _connect(server.url)
    head = (
        "POST /v1/velocity/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    )
    start = time.monotonic()
    sock.sendall(head.encode() + b"\x93NUMPY")  # then nothing more
    answer = _read_all(sock)  # returns when the server closes the connection
    elapsed = time.monotonic() - start
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"reason":"upload_timeout"' in answer and b"connection: close" in answer.lower()
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 2.5


def test_an_idle_keep_alive_connection_is_closed(server):
    sock = _connect(server.url)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while not first.endswith(b'{"status":"ok"}'):  # the whole first answer
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    start = time.monotonic()
    assert _read_all(sock) == b""  # closed by the server, not by us
    assert time.monotonic() - start < TIMEOUT_S + 2.5
    sock.close()


def test_forwarded_headers_from_an_unconfigured_proxy_are_ignored(server, sample):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    r = httpx.post(
        server.url + "/v1/velocity/search",
        files={"file": ("g.npy", npy_bytes(sample.gather))},
        params={"k": 1},
        headers=headers,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    url = r.json()["results"][0]["model_url"]
    assert url.startswith(server.url + "/v1/velocity/models/")  # http, on the Host sent
