"""The HTTP client of webhook deliveries: a minimal HTTP/1.1 POST over asyncio, one small pool per target.

Why not httpx: a delivery is one POST whose answer is a status line and a short body that is dropped. Through
httpx, httpcore, anyio and h11 that cost about 0.5 ms of CPU per delivery, two thirds of the publisher's CPU with
20 subscriptions (docs/performance.md, webhooks, round 5). Here a request is one `transport.write` of a head
built from a cached prefix, and the answer is parsed from the protocol's buffer as it arrives.

What it keeps from the httpx client it replaces:
- A target is (scheme, host name, checked address, port): the address is one the host name resolved to and was
  checked (`urls.check_url`), and the connection goes to it, never to a fresh DNS answer. The host name travels
  in the Host header and, over TLS, as SNI and the name the certificate is verified against
  (`ssl.create_default_context()`: CERT_REQUIRED and check_hostname; tests pass their own trust).
- A kept-alive connection is only reused for the same target, so a TLS connection verified for one host name
  never carries another name's deliveries.
- Every request is bounded by `timeout` seconds (connecting, TLS handshake, sending, the answer); redirects are
  never followed (a 3xx is just a status that is not 2xx); no proxy from the environment (it would resolve the
  host again); nothing of the answer is kept or returned but its status code.
- A short answer (no body, or a declared length up to `DRAIN_LIMIT`) is read to its end so the connection can
  carry the next delivery; a chunked, longer or undelimited answer, `Connection: close` or HTTP/1.0 closes it.
Errors are classes the deliveries log names (as httpx named them): `ConnectError` (its cause tells refused or TLS),
`RemoteProtocolError`, `ReadError`, and TimeoutError.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import OrderedDict

import httpx

Target = tuple[str, str, str, int]  # scheme, host name, checked address, port

DRAIN_LIMIT = 64 * 1024  # bytes of an answer read (and dropped) to keep its connection open
KEEPALIVE_IDLE = 4.0  # seconds an idle connection is reused; below common servers' own (uvicorn, Node: 5 s)
KEEPALIVE_PER_TARGET = 4  # idle connections kept per target
MAX_HEAD = 64 * 1024  # bytes of status line and headers accepted


class DeliveryHTTPError(Exception):
    pass


class ConnectError(DeliveryHTTPError):
    """No connection: refused, unreachable, TLS handshake or certificate (the cause says which)."""


class RemoteProtocolError(DeliveryHTTPError):
    """The target closed the connection before a whole answer, or answered something that is not HTTP/1.x."""


class ReadError(DeliveryHTTPError):
    """The connection failed while waiting for the answer."""


@functools.lru_cache(maxsize=1024)
def request_prefix(url: str) -> bytes:
    """`POST <path?query> HTTP/1.1` and the Host header of a URL, encoded as httpx did (percent-encoding, IDNA)."""
    parsed = httpx.URL(url)
    return b"POST " + (parsed.raw_path or b"/") + b" HTTP/1.1\r\nhost: " + parsed.netloc + b"\r\n"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time. The answer is parsed from the buffer as bytes arrive."""

    __slots__ = (
        "transport",
        "_buffer",
        "_waiter",
        "_head_end",
        "_length",
        "status",
        "answered",
        "reusable",
        "closed",
        "idle_at",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._head_end = 0
        self._length = 0  # body bytes expected after the head (-1: not read; the connection is closed after)
        self.status: int | None = None  # set once the head of the answer is in
        self.answered = False  # a byte of the answer arrived
        self.reusable = False
        self.closed = False
        self.idle_at = 0.0

    # -- asyncio.Protocol --
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: this connection cannot be trusted with the next request
            self.close()
            return
        self._buffer += data
        self.answered = True
        self._parse()

    def eof_received(self) -> bool:
        self._fail(RemoteProtocolError("the target closed the connection without a whole answer"))
        self.closed = True
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ReadError(str(exc or "connection lost")) if exc else RemoteProtocolError("connection closed"))

    # -- requests --
    async def request(self, data: bytes) -> int:
        """Send one whole request; returns the status code once the answer (head, and a short body) is in."""
        self._buffer.clear()
        self._head_end, self._length, self.status, self.reusable, self.answered = 0, 0, None, False, False
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(data)
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _parse(self) -> None:
        buffer = self._buffer
        while self.status is None:  # the head; 1xx interim answers (100 Continue, 103) are skipped
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._broken("answer head too long")
                return
            try:
                self._head(bytes(buffer[:end]))
            except (ValueError, IndexError):
                self._broken("not an HTTP/1.x answer")
                return
            if self.status is None:
                del buffer[: end + 4]
                continue
            self._head_end = end + 4
        if self._length < 0:  # not read: the status is what counts, and the connection is not reused
            self.reusable = False
            self._done()
            return
        have = len(buffer) - self._head_end
        if have > self._length:  # more than the answer: not a connection to send the next request on
            self.reusable = False
            self._done()
        elif have == self._length:
            self._done()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, status_text = lines[0].split(b" ", 2)[:2]
        if not version.startswith(b"HTTP/1.") or len(status_text) != 3 or not status_text.isdigit():
            raise ValueError(lines[0])
        status = int(status_text)
        if 100 <= status < 200 and status != 101:
            return  # interim: the real answer follows
        length, keep_alive, chunked = None, version == b"HTTP/1.1", False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise ValueError(line)
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
        if status in (204, 304):
            length = 0
        elif status == 101 or chunked or length is None or length > DRAIN_LIMIT:
            length, keep_alive = -1, False
        self._length, self.reusable, self.status = length, keep_alive, status

    def _broken(self, why: str) -> None:
        self._fail(RemoteProtocolError(why))
        self.close()

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self.status)


class TargetClients:
    """`await post(target, url, headers, body)` -> status code. One pool of kept-alive connections per target;
    pools beyond `max_targets` are dropped, the least recently used first."""

    def __init__(
        self,
        timeout: float,
        *,
        tls: ssl.SSLContext | None = None,
        max_targets: int = 256,
    ) -> None:
        self.timeout = timeout
        self.max_targets = max_targets
        # the CA bundle costs ~60 ms to load: once for every target. Verification by host name, CERT_REQUIRED.
        self.tls = tls or httpx.create_ssl_context()  # certifi's CA bundle, as the httpx client had
        self._idle: OrderedDict[Target, list[_Connection]] = OrderedDict()

    async def post(self, target: Target, url: str, headers: bytes, body: bytes) -> int:
        """POST `body` to `url` over a connection to `target`. `headers` are whole header lines
        (`name: value\\r\\n` each) without Host and Content-Length. Raises ConnectError, RemoteProtocolError,
        ReadError or TimeoutError (nothing answered within `timeout`)."""
        data = b"".join((request_prefix(url), headers, b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                connection = self._idle_connection(target)
                if connection is not None:
                    try:
                        status = await connection.request(data)
                    except DeliveryHTTPError:
                        if connection.status is not None or connection.answered:
                            raise
                        # A kept-alive connection the target closed as we sent (its idle timeout): nothing was
                        # answered, so the request is sent once more, on a new connection, as browsers do.
                        connection.close()
                        connection = None
                if connection is None:
                    connection = await self._connect(target)
                    status = await connection.request(data)
        except (DeliveryHTTPError, TimeoutError):
            if connection is None:
                raise
            connection.close()
            if connection.status is None:
                raise
            return connection.status  # the head was in, the rest of the answer was not: the status counts
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        self._release(target, connection)
        return status

    def _idle_connection(self, target: Target) -> _Connection | None:
        idle = self._idle.get(target)
        if not idle:
            return None
        self._idle.move_to_end(target)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_at < KEEPALIVE_IDLE:
                return connection
            connection.close()
        return None

    async def _connect(self, target: Target) -> _Connection:
        scheme, host, address, port = target
        tls = {"ssl": self.tls, "server_hostname": host} if scheme == "https" else {}
        try:
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, address, port, **tls)
        except (OSError, ValueError) as exc:  # refused, unreachable, TLS (an OSError); a name TLS cannot carry
            raise ConnectError(type(exc).__name__) from exc
        return connection

    def _release(self, target: Target, connection: _Connection) -> None:
        if not connection.reusable or connection.closed:
            connection.close()
            return
        connection.idle_at = time.monotonic()
        idle = self._idle.get(target)
        if idle is None:
            idle = self._idle[target] = []
            while len(self._idle) > self.max_targets:
                for dropped in self._idle.popitem(last=False)[1]:
                    dropped.close()
        self._idle.move_to_end(target)
        if len(idle) >= KEEPALIVE_PER_TARGET:
            idle.pop(0).close()
        idle.append(connection)

    def pooled(self, target: Target) -> int:
        """Idle connections kept for `target` (the tests read it)."""
        return len(self._idle.get(target, ()))

    async def aclose(self) -> None:
        pools, self._idle = list(self._idle.values()), OrderedDict()
        for idle in pools:
            for connection in idle:
                connection.close()
