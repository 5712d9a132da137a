"""Reading Server-Sent Events over HTTP in tests: a background reader keeping raw lines and parsed events."""

from __future__ import annotations

import asyncio
import time

import httpx


async def until(probe, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class SseReader:
    """Reads an SSE response in the background, keeping raw lines and parsed events."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.events: list[dict] = []
        self.status: int | None = None
        self.content_type = ""
        self.ended = False
        self.clean_end = False
        self._task = asyncio.create_task(self._run(client, url, headers))

    async def _run(self, client, url, headers) -> None:
        try:
            await self._read(client, url, headers)
            self.clean_end = True
        except (httpx.RemoteProtocolError, httpx.ReadError):
            self.ended = True  # the server went away (shutdown); a client would reconnect with Last-Event-ID

    async def _read(self, client, url, headers) -> None:
        async with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=60)) as response:
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            current: dict = {}
            async for line in response.aiter_lines():
                self.lines.append(line)
                if line == "":
                    if "data" in current:
                        self.events.append(current)
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    current[name] = value.lstrip(" ")

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
