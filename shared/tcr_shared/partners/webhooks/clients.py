"""HTTP clients for webhook deliveries: one small connection pool per target.

A target is (scheme, host name, address, port): the address is one the host name resolved to and was checked
(`urls.check_url`), and the delivery connects to it, never to a fresh DNS answer. Keeping a pool per target:
- a kept-alive connection is only ever reused for the same host name at the same checked address, so a TLS
  connection whose certificate was verified for one name never carries another name's deliveries (one shared
  pool keyed by address would reuse it, SNI and certificate of the first name included);
- httpcore's pool looks through all its connections on every request, so one pool for every partner cost a time
  that grew with the number of partners (docs/performance.md, webhooks); a target's own pool holds a few.
Pools idle the longest are closed beyond `max_targets`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

import httpx

Target = tuple[str, str, str, int]  # scheme, host name, checked address, port


class TargetClients:
    def __init__(
        self, timeout: float, concurrency: int, *, shared: httpx.AsyncClient | None = None, max_targets: int = 256
    ) -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        self.shared = shared  # tests pass one client (e.g. trusting a test certificate) used for every target
        self.max_targets = max_targets
        self._clients: OrderedDict[Target, httpx.AsyncClient] = OrderedDict()
        self._in_use: dict[Target, int] = {}
        self._tls = httpx.create_ssl_context()  # loading the CA bundle costs ~60 ms: once, not once per target

    def _new(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            verify=self._tls,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would resolve the host again: no rebinding guard
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=4),
        )

    @contextlib.asynccontextmanager
    async def client(self, target: Target) -> AsyncIterator[httpx.AsyncClient]:
        if self.shared is not None:
            yield self.shared
            return
        client = self._clients.get(target)
        if client is None:
            client = self._clients[target] = self._new()
            await self._close_idle_beyond_limit()
        self._clients.move_to_end(target)
        self._in_use[target] = self._in_use.get(target, 0) + 1
        try:
            yield client
        finally:
            self._in_use[target] -= 1
            if not self._in_use[target]:
                del self._in_use[target]

    async def _close_idle_beyond_limit(self) -> None:
        for target in list(self._clients):
            if len(self._clients) <= self.max_targets:
                return
            if target not in self._in_use:
                await self._clients.pop(target).aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()
