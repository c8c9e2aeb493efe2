"""A deadline and a size limit on each request's head (request line and headers), for
uvicorn's HTTP/1.1 protocols.

uvicorn closes idle keep-alive connections, and the service bounds how long a body may
take (:class:`~seislens.service.uploads.BodyLimitMiddleware`), but nothing bounds the
head: a client that opens a connection and sends its headers a byte at a time
("slowloris") holds a connection forever, and enough of them exhaust the server's
sockets. :func:`guarded_protocol` subclasses uvicorn's protocol class so that:

* a connection's first request head, and each later one from its first byte, must be
  complete within ``head_timeout_s``; else the connection is answered
  ``408 Request Timeout`` and closed (a connection that sent nothing is just closed);
* a head larger than ``max_head_bytes`` is answered ``431 Request Header Fields Too
  Large`` and closed (h11 has its own limit, ``h11_max_incomplete_event_size``;
  httptools has none).

Both protocols start a request cycle (``self.cycle``) when its head is complete, which
is how the head's end is seen here, without touching their parsers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; "
    b"charset=utf-8\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _answer(template: bytes, message: str) -> bytes:
    body = message.encode("ascii")
    return template % (len(body), body)


class HeadGuard:
    """The mixin of :func:`guarded_protocol` (put before uvicorn's protocol class).

    Attributes:
        head_timeout_s: seconds a request head may take to arrive.
        max_head_bytes: the largest request head (bytes).
    """

    head_timeout_s: float = 10.0
    max_head_bytes: int = 65536
    # provided by uvicorn's protocol classes
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop

    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: object = None
    _head_bytes: int = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._between_requests():
            self._arm_head()
        super().data_received(data)  # type: ignore[misc]
        if self._head_timer is None:
            return
        if self.cycle is not self._head_cycle:  # the head is complete: a request began
            self._disarm_head()
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._disarm_head()
            message = (
                f"the request head passed {self.max_head_bytes} bytes (SEISLENS_MAX_HEAD_BYTES)"
            )
            self.transport.write(_answer(_HEAD_TOO_LARGE, message))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        """No request is being answered and the last one's body has all arrived: the
        next bytes start a new head. (An early answer — a 413 while a body streams in —
        completes the response first; the rest of that body is not a head.)"""
        if self.cycle is None:
            return True
        answered = bool(getattr(self.cycle, "response_complete", False))
        return answered and not bool(getattr(self.cycle, "more_body", False))

    def _arm_head(self) -> None:
        self._disarm_head()
        self._head_cycle = self.cycle
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:  # a client that sent nothing is just disconnected
            message = (
                f"the request head did not arrive within {self.head_timeout_s:g} s "
                "(SEISLENS_HEAD_TIMEOUT_S)"
            )
            self.transport.write(_answer(_REQUEST_TIMEOUT, message))
        self.transport.close()


def guarded_protocol(http: str, head_timeout_s: float, max_head_bytes: int) -> type:
    """uvicorn's protocol class named ``http`` ('auto', 'h11', 'httptools') with the head
    deadline and size limit of :class:`HeadGuard`; pass it as uvicorn's ``http``.

    Args:
        http: the uvicorn protocol name.
        head_timeout_s: seconds a request head may take to arrive (> 0).
        max_head_bytes: the largest request head in bytes (> 0).
    """
    base = import_from_string(HTTP_PROTOCOLS[http])
    return type(
        f"Guarded{base.__name__}",
        (HeadGuard, base),
        {"head_timeout_s": float(head_timeout_s), "max_head_bytes": int(max_head_bytes)},
    )
