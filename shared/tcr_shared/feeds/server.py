"""The public feed any tcr publisher mounts: `GET /v1/events` (pages, optional long poll) and
`GET /v1/events/stream` (Server-Sent Events resuming after Last-Event-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, Protocol

from fastapi import APIRouter, Depends, Query, Request, Response
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from tcr_shared.language.events.envelope import FeedPage
from tcr_shared.platform.problems import Problem

MAX_PAGE = 1000
MAX_WAIT_SECONDS = 30.0
MAX_POSITION = 2**63 - 1  # positions are BIGINT: a larger `after` is a 422, not a database overflow (issue 11)
POLL_FALLBACK_SECONDS = 1.0  # writers in other processes do not ring this process's bell


class EventLog(Protocol):
    async def read(self, after: int, limit: int) -> FeedPage:
        """Events strictly after `after`, in order, at most `limit`; never one that could be followed by a
        late commit at a lower position."""

    async def head(self) -> int: ...


class RenderedEvent(NamedTuple):
    """One public event already rendered: its JSON exactly as FeedEvent serialises, with the position and type the
    stream names it by (events are immutable, so a publisher may render each once)."""

    position: int
    type: str
    json: bytes


@dataclass(frozen=True)
class RenderedPage:
    """A page whose events are already JSON: served as concatenated bytes, the same bytes as the FeedPage it
    stands for."""

    events: list[RenderedEvent]
    next_after: int
    head: int

    def body(self) -> bytes:
        events = b",".join([event.json for event in self.events])
        return b'{"events":[%b],"next_after":%d,"head":%d}' % (events, self.next_after, self.head)

    @cached_property
    def stream_frames(self) -> bytes:
        """The page's events as Server-Sent Events (`id` = position, `event` = type, `data` = the JSON), encoded
        once for every stream that reads this page (SharedReads hands them all the same page)."""
        return b"".join(
            ServerSentEvent(id=str(e.position), event=e.type, data=e.json.decode()).encode() for e in self.events
        )


class RenderingEventLog(EventLog, Protocol):
    async def read_rendered(self, after: int, limit: int) -> RenderedPage: ...


class NewEventsSignal:
    """Rung by the writer after each commit; waiters wake at once instead of polling."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def ring(self) -> None:
        """Safe to call from any thread."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        """Take before reading: `wait(since=ticket)` then also wakes for a ring that came during the read."""
        return self._event

    async def wait(self, timeout: float, since: asyncio.Event | None = None) -> None:
        event = since if since is not None else self._event
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as the
        # event is set, and the cancelled reader (a follower at shutdown) would run on.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()


class SharedReads:
    """Concurrent reads of the same page share one read of the log: the streams and long polls a commit wakes
    all ask for the page after the same position, and the database is asked once, not once per reader. A read in
    flight is joined only while no commit has rung since it began, so what a joiner gets is as fresh as its own
    read would have been for this process's commits (and a commit during the read still wakes it: see
    `read_waiting`); a commit of another process (no ring) may show one read later, as for a read begun a moment
    earlier: a page may end sooner, never skip."""

    def __init__(self, read: Callable[[int, int], Awaitable], signal: NewEventsSignal) -> None:
        self._read = read
        self._signal = signal
        self._flights: dict[tuple[int, int], tuple[asyncio.Event, asyncio.Future]] = {}

    async def read(self, after: int, limit: int):
        key = (after, limit)
        ticket = self._signal.ticket()
        flight = self._flights.get(key)
        if flight is None or flight[0] is not ticket:
            flight = (ticket, asyncio.ensure_future(self._read(after, limit)))
            self._flights[key] = flight
            flight[1].add_done_callback(lambda _done, key=key, flight=flight: self._land(key, flight))
        # Shielded: a reader that goes away (a closed stream) does not cancel the others' read.
        return await asyncio.shield(flight[1])

    def _land(self, key: tuple[int, int], flight: tuple) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]


async def read_waiting(log: EventLog, signal: NewEventsSignal, after: int, limit: int, wait: float) -> FeedPage:
    """A page; when empty and `wait` > 0, hold until an event arrives or `wait` runs out (long poll)."""
    page, _ticket = await _read_waiting(log, signal, after, limit, wait)
    return page


async def _read_waiting(
    log: EventLog, signal: NewEventsSignal, after: int, limit: int, wait: float, since: asyncio.Event | None = None
) -> tuple[FeedPage, asyncio.Event]:
    """`read_waiting`, and the ticket taken before the read that gave the page. `since`: the ticket of an earlier
    read that reached the head; the log is read again only once it rings (or at the next fallback poll)."""
    deadline = time.monotonic() + wait
    if since is not None:
        await signal.wait(min(wait, until_next_poll(time.monotonic())), since=since)
    while True:
        # Taken before the read: a commit that lands while we read still wakes us (no lost wake-up).
        ticket = signal.ticket()
        page = await log.read(after, limit)
        remaining = deadline - time.monotonic()
        # A page of only non-public events still moves the reader on (next_after > after): return it rather
        # than hold the request while later events are already there.
        if page.events or page.next_after > after or remaining <= 0:
            return page, ticket
        await signal.wait(min(remaining, until_next_poll(time.monotonic())), since=ticket)


def until_next_poll(now: float) -> float:
    """Seconds to the next fallback poll, on the clock's whole multiples of POLL_FALLBACK_SECONDS: every waiting
    reader polls at the same instant and SharedReads makes it one read. (Each timed from its own start, 200
    streams made 200 reads a second of an idle log, enough to hold up the service's writes.)"""
    return POLL_FALLBACK_SECONDS - now % POLL_FALLBACK_SECONDS


class _FeedStream(EventSourceResponse):
    """An SSE response that ends its HTTP message properly when the server shuts down: sse-starlette cancels
    the stream on shutdown and returns without the final body message, so the client saw a broken chunked
    response (and uvicorn logged "ASGI callable returned without completing response")."""

    media_type = "text/event-stream"  # what the OpenAPI document declares for the stream route

    async def __call__(self, scope, receive, send) -> None:
        started = completed = False

        async def tracking_send(message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        await super().__call__(scope, receive, tracking_send)
        if started and not completed:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:  # the client is already gone
                pass


def feed_router(log: EventLog, signal: NewEventsSignal, reader: Callable, *, heartbeat: float = 15.0) -> APIRouter:
    """`reader` is the auth dependency that admits feed readers (partner, analyst, admin)."""
    router = APIRouter(tags=["feed"])
    read_rendered: Callable[[int, int], Awaitable[RenderedPage]] | None = getattr(log, "read_rendered", None)
    rendered = SharedReads(read_rendered, signal) if read_rendered is not None else None
    shared = rendered or SharedReads(log.read, signal)

    @router.get("/v1/events", response_model=FeedPage, summary="Catch-up feed (CloudEvents, in global order)")
    async def events(
        after: int = Query(0, ge=0, le=MAX_POSITION, description="Return events strictly after this position"),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        wait: float = Query(0, ge=0, le=MAX_WAIT_SECONDS, description="Long poll: seconds to wait for an event"),
        _principal=Depends(reader),
    ) -> FeedPage:
        if rendered is not None:
            page = await read_waiting(rendered, signal, after, limit, wait)
            return Response(page.body(), media_type="application/json")
        return await read_waiting(shared, signal, after, limit, wait)

    @router.get(
        "/v1/events/stream",
        summary="Live stream (Server-Sent Events; id = position)",
        response_class=_FeedStream,
        responses={200: {"description": "An endless text/event-stream", "content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request,
        after: int | None = Query(
            None, ge=0, le=MAX_POSITION, description="Start after this position (Last-Event-ID wins)"
        ),
        _principal=Depends(reader),
    ) -> EventSourceResponse:
        position = _resume_position(request.headers.get("last-event-id"), after)
        return _FeedStream(_sse_events(shared, signal, position, heartbeat), ping=heartbeat)

    return router


def _resume_position(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_POSITION:
            raise Problem(400, "Last-Event-ID must be a feed position (a whole number).")
        return int(last_event_id)
    return after or 0


async def _sse_events(log: EventLog, signal: NewEventsSignal, position: int, heartbeat: float) -> AsyncIterator[dict]:
    """Every stream after the same position reads the same pages (`log` is a SharedReads): one read per commit
    whatever the number of streams."""
    reached_head = None
    while True:
        page, ticket = await _read_waiting(log, signal, position, 500, heartbeat, since=reached_head)
        if isinstance(page, RenderedPage):
            if page.events:
                yield page.stream_frames  # one message for the page, the same bytes for every stream
        else:
            for event in page.events:
                yield {"id": str(event.position), "event": event.type, "data": event.model_dump_json()}
        position = page.next_after
        # At the head: nothing more is committed until a commit rings, so no read of the empty page after it.
        reached_head = ticket if page.next_after >= page.head else None
