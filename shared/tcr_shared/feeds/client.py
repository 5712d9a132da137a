"""Client for a tcr public feed: catch-up pages, long-poll, and the Server-Sent Events stream.

Followers inside tcr and partner systems use the same client, over HTTP, exactly as a partner would.
It never skips or repeats: every call starts strictly after the position the caller last processed.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tcr_shared.language.events.envelope import FeedEvent, FeedPage


class FeedUnavailable(Exception):
    """The publisher did not answer; the caller should wait and retry."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter, for reconnecting to a feed that is down."""

    initial: float = 0.2
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class FeedClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        path: str = "/v1/events",
        page_size: int = 1000,
        client: httpx.AsyncClient | None = None,
        timeout: float = 40.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.path = path
        self.page_size = page_size
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def page(self, after: int, *, limit: int | None = None, wait: float = 0.0) -> FeedPage:
        """One page strictly after `after`. With `wait`, the publisher holds the request until an event
        arrives or `wait` seconds pass (long poll)."""
        params = {"after": after, "limit": limit or self.page_size}
        if wait:
            params["wait"] = wait
        try:
            response = await self._client.get(
                f"{self.base_url}{self.path}", params=params, headers=self._headers, timeout=wait + 15
            )
        except httpx.TransportError as exc:
            raise FeedUnavailable(f"{self.base_url}: {exc!r}") from exc
        if response.status_code >= 500:
            raise FeedUnavailable(f"{self.base_url}: HTTP {response.status_code}")
        response.raise_for_status()
        return FeedPage.model_validate(response.json())

    async def follow(
        self, after: int, *, wait: float = 20.0, backoff: Backoff | None = None
    ) -> AsyncIterator[FeedPage]:
        """Pages forever: full pages while catching up, then long polls that return as soon as events
        arrive. Empty pages are yielded too (they carry the head, for lag reporting). A publisher that is
        down is retried with backoff; the position only moves when the caller has the events."""
        backoff = backoff or Backoff()
        position = after
        while True:
            try:
                page = await self.page(position, wait=wait)
            except FeedUnavailable:
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            yield page
            position = page.next_after

    async def events(
        self, after: int, *, live: bool = True, backoff: Backoff | None = None
    ) -> AsyncIterator[FeedEvent]:
        """Every event after `after`, one at a time: catch-up pages up to the head, then (with `live`) the SSE
        stream, reconnecting with backoff. A caller that saves `event.position` with its own writes can resume
        from it after a restart without skipping or repeating."""
        backoff = backoff or Backoff()
        position = after
        while True:
            try:
                page = await self.page(position)
            except FeedUnavailable:
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            for event in page.events:
                yield event
            position = max(position, page.next_after)
            if position >= page.head:
                break
        if live:
            async for event in self.stream(position, backoff=backoff):
                yield event

    async def stream(self, after: int, *, backoff: Backoff | None = None) -> AsyncIterator[FeedEvent]:
        """Events from the SSE stream, resuming with Last-Event-ID after each reconnect."""
        backoff = backoff or Backoff()
        position = after
        while True:
            headers = dict(self._headers, **{"Last-Event-ID": str(position), "Accept": "text/event-stream"})
            try:
                async with self._client.stream(
                    "GET", f"{self.base_url}{self.path}/stream", headers=headers, timeout=httpx.Timeout(10, read=60)
                ) as response:
                    if response.status_code >= 500:
                        raise FeedUnavailable(f"HTTP {response.status_code}")
                    response.raise_for_status()
                    backoff.reset()
                    async for event in _parse_sse(response.aiter_lines()):
                        if event.position <= position:
                            continue  # never repeat what the caller already has
                        position = event.position
                        yield event
            except (httpx.TransportError, FeedUnavailable):
                await asyncio.sleep(backoff.next_delay())


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[FeedEvent]:
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield FeedEvent.model_validate(json.loads("\n".join(data)))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        # id:, event: and comment (heartbeat) lines need no handling: position travels inside the event.
