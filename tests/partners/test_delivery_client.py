"""The deliveries' HTTP/1.1 client (`clients.TargetClients`) against real local servers: connections kept alive and
reused only for their own target (a TLS connection verified for one host name never carries another name's
requests), certificates verified by host name, short answers read so the connection is reused and the others
closed, redirects not followed, timeouts, refused connections, and a kept-alive connection the server closed."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import uvicorn

from tcr_shared.partners.webhooks.clients import (
    DRAIN_LIMIT,
    ConnectError,
    RemoteProtocolError,
    TargetClients,
)
from tcr_shared.partners.webhooks.worker import connect_error_class
from tests.partners.conftest import wait_until
from tests.partners.test_https_delivery import certificate
from tests.support.asgi import read_body
from tests.support.processes import free_port

HEADERS = b"content-type: application/json\r\nwebhook-id: evt-1\r\n"


class Recorder:
    """An ASGI receiver: records (client port, path, headers, body) of each request; answers as /<status>/<body
    length>[/chunked|/close] says (e.g. /204/0, /200/10, /307/0)."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, str, dict[str, str], bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["client"][1], scope["path"], headers, body))
        status, length, *how = scope["path"].strip("/").split("/")
        answer = [] if "chunked" in how else [(b"content-length", length.encode())]
        if "close" in how:
            answer.append((b"connection", b"close"))
        if status == "307":
            answer.append((b"location", b"http://127.0.0.1:1/elsewhere"))
        await send({"type": "http.response.start", "status": int(status), "headers": answer})
        await send({"type": "http.response.body", "body": b"x" * int(length)})

    def connections(self) -> int:
        return len({port for port, *_ in self.requests})


@pytest.fixture
async def serve():
    servers: list[tuple[uvicorn.Server, asyncio.Task]] = []

    async def start(app, **tls) -> int:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **tls)
        server = uvicorn.Server(config)
        servers.append((server, asyncio.create_task(server.serve())))
        await wait_until(lambda: server.started, what="the local server")
        return port

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def test_requests_to_one_target_share_a_kept_alive_connection_and_carry_host_length_and_headers(serve):
    app = Recorder()
    port = await serve(app)
    clients = TargetClients(timeout=5)
    target = ("http", "127.0.0.1", "127.0.0.1", port)
    try:
        for i in range(5):
            assert await clients.post(target, f"http://127.0.0.1:{port}/204/0?n={i}", HEADERS, b'{"n": %d}' % i) == 204
        assert await clients.post(target, f"http://127.0.0.1:{port}/200/100", HEADERS, b"{}") == 200  # read, dropped
        assert await clients.post(target, f"http://127.0.0.1:{port}/200/0", HEADERS, b"{}") == 200
    finally:
        await clients.aclose()
    assert app.connections() == 1 and len(app.requests) == 7
    _, path, headers, body = app.requests[3]
    assert path == "/204/0" and body == b'{"n": 3}'
    assert headers["host"] == f"127.0.0.1:{port}" and headers["content-length"] == str(len(body))
    assert headers["webhook-id"] == "evt-1" and headers["content-type"] == "application/json"


@pytest.mark.parametrize("how", [f"200/{DRAIN_LIMIT + 1}", "200/10/chunked", "204/0/close"])
async def test_a_long_chunked_or_closing_answer_gives_its_status_and_its_connection_is_not_reused(serve, how):
    app = Recorder()
    port = await serve(app)
    clients = TargetClients(timeout=5)
    target = ("http", "127.0.0.1", "127.0.0.1", port)
    try:
        status = int(how.split("/")[0])
        assert await clients.post(target, f"http://127.0.0.1:{port}/{how}", HEADERS, b"{}") == status
        assert clients.pooled(target) == 0
        assert await clients.post(target, f"http://127.0.0.1:{port}/204/0", HEADERS, b"{}") == 204
    finally:
        await clients.aclose()
    assert app.connections() == 2


async def test_a_redirect_is_a_status_never_followed(serve):
    app = Recorder()
    port = await serve(app)
    clients = TargetClients(timeout=5)
    try:
        assert (
            await clients.post(
                ("http", "127.0.0.1", "127.0.0.1", port), f"http://127.0.0.1:{port}/307/0", HEADERS, b"{}"
            )
            == 307
        )
    finally:
        await clients.aclose()
    assert [path for _, path, *_ in app.requests] == ["/307/0"]


async def test_no_answer_within_the_timeout_is_a_timeout_and_a_refused_connection_a_connect_error():
    async def silent(reader, writer):
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = TargetClients(timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            await clients.post(("http", "127.0.0.1", "127.0.0.1", port), f"http://127.0.0.1:{port}/", HEADERS, b"{}")
        closed = free_port()
        with pytest.raises(ConnectError) as refused:
            await clients.post(
                ("http", "127.0.0.1", "127.0.0.1", closed), f"http://127.0.0.1:{closed}/", HEADERS, b"{}"
            )
        assert connect_error_class(refused.value) == "ConnectError: connection refused"
    finally:
        await clients.aclose()
        server.close()


async def test_a_kept_alive_connection_the_server_closed_as_the_request_went_is_replaced_once():
    """The server answers the first request of each connection and closes the connection on the second without a
    word (as a server whose idle timeout strikes as the request arrives): the request goes again on a new
    connection. A server that closes a new connection without answering is an error, not retried."""
    requests: list[int] = []

    async def one_answer_per_connection(reader, writer):
        for n in range(2):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            requests.append(n)
            if n == 0:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = TargetClients(timeout=5)
    target, url = ("http", "127.0.0.1", "127.0.0.1", port), f"http://127.0.0.1:{port}/hook"
    try:
        assert await clients.post(target, url, HEADERS, b"{}") == 204
        assert await clients.post(target, url, HEADERS, b"{}") == 204  # sent twice: closed once, then answered
        assert requests == [0, 1, 0]
    finally:
        await clients.aclose()
        server.close()

    async def hang_up(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = TargetClients(timeout=5)
    try:
        with pytest.raises(RemoteProtocolError):
            await clients.post(("http", "127.0.0.1", "127.0.0.1", port), f"http://127.0.0.1:{port}/", HEADERS, b"{}")
    finally:
        await clients.aclose()
        server.close()


async def test_tls_verifies_the_host_name_and_a_connection_never_carries_another_names_requests(tmp_path, serve):
    key, cert = certificate(tmp_path, "localhost", "partner.test")
    app = Recorder()
    port = await serve(app, ssl_keyfile=str(key), ssl_certfile=str(cert))
    clients = TargetClients(timeout=5, tls=ssl.create_default_context(cafile=str(cert)))
    a = ("https", "localhost", "127.0.0.1", port)
    b = ("https", "partner.test", "127.0.0.1", port)  # same address and port, another name on the certificate
    try:
        for target in (a, b, a, b):
            assert await clients.post(target, f"https://{target[1]}:{port}/204/0", HEADERS, b"{}") == 204
        assert clients.pooled(a) == 1 and clients.pooled(b) == 1
        # a name the certificate does not carry: refused by the certificate check, nothing sent
        with pytest.raises(ConnectError) as untrusted:
            other = ("https", "partner.example", "127.0.0.1", port)
            await clients.post(other, f"https://partner.example:{port}/204/0", HEADERS, b"{}")
        assert connect_error_class(untrusted.value) == "ConnectError: TLS certificate not trusted"
    finally:
        await clients.aclose()
    assert len(app.requests) == 4 and app.connections() == 2
    by_connection: dict[int, set[str]] = {}
    for client_port, _, headers, _ in app.requests:
        by_connection.setdefault(client_port, set()).add(headers["host"].split(":")[0])
    assert sorted(map(sorted, by_connection.values())) == [["localhost"], ["partner.test"]]
