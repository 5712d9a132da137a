"""The relay's publisher: NATS JetStream.

Each event (CloudEvents JSON, personal data removed) goes to `<prefix>.<type without the leading "tcr.">`, i.e.
`tcr.registry.contract.certified.v1` and `tcr.subsidy.award.decided.v1`, in the stream `TCR`, with headers
`Nats-Msg-Id` = event id, `Tcr-Position` and `Tcr-Source`.

What has been published is read from the stream itself: for each source, the last message of every subject
under `<prefix>.<source>.>` and the highest `Tcr-Position` among them. A failed publish is retried with the same
`Nats-Msg-Id`, which JetStream de-duplicates within `duplicate_window`. Keep the stream's retention such that the
last message per subject survives (the defaults do).
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from tcr_relay.settings import SOURCES, RelaySettings
from tcr_shared.feeds.client import Backoff
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.privacy import encode_event

log = logging.getLogger("tcr.relay")


def subject_for(prefix: str, event_type: str) -> str:
    """tcr.registry.contract.certified.v1 -> <prefix>.registry.contract.certified.v1"""
    head, _, rest = event_type.partition(".")
    if head != "tcr" or not rest:
        raise ValueError(f"not a tcr event type: {event_type}")
    return f"{prefix}.{rest}"


async def connect(url: str) -> Client:
    """A NATS connection that reconnects forever; waits (with backoff) until NATS can be reached."""
    backoff = Backoff(initial=0.5, maximum=15.0)
    while True:
        try:
            return await nats.connect(
                url, max_reconnect_attempts=-1, reconnect_time_wait=1.0, connect_timeout=5, name="tcr-relay"
            )
        except Exception as exc:
            log.warning("relay: NATS at %s unreachable (%r); retrying", url, exc)
            await asyncio.sleep(backoff.next_delay())


async def ensure_stream(js: JetStreamContext, settings: RelaySettings) -> None:
    subjects = [f"{settings.nats_subject_prefix}.{s}.>" for s in SOURCES.values()]
    config = StreamConfig(
        name=settings.nats_stream,
        subjects=subjects,
        storage=StorageType.FILE,
        duplicate_window=settings.nats_duplicate_window,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:  # exists with another configuration: make sure our subjects are there
        info = await js.stream_info(settings.nats_stream)
        missing = [s for s in subjects if s not in (info.config.subjects or [])]
        if missing:
            info.config.subjects = list(info.config.subjects or []) + missing
            await js.update_stream(info.config)


class JetStreamPublisher:
    """`tcr_relay.application.relay.EventPublisher` over one JetStream stream."""

    def __init__(self, js: JetStreamContext, stream: str, prefix: str) -> None:
        self._js = js
        self._stream = stream
        self._prefix = prefix

    async def last_position(self, source: str) -> int:
        """The highest Tcr-Position of the source's messages already in the stream (0 if none)."""
        try:
            info = await self._js.stream_info(self._stream, subjects_filter=f"{self._prefix}.{SOURCES[source]}.>")
        except NotFoundError:
            return 0
        position = 0
        for subject in info.state.subjects or {}:
            try:
                message = await self._js.get_last_msg(self._stream, subject)
            except NotFoundError:
                continue
            position = max(position, int((message.headers or {}).get("Tcr-Position", 0)))
        return position

    async def publish(self, source: str, event: FeedEvent) -> bool:
        headers = {
            "Nats-Msg-Id": event.id,
            "Tcr-Position": str(event.position),
            "Tcr-Source": source,
            "Content-Type": "application/cloudevents+json",
        }
        ack = await self._js.publish(
            subject_for(self._prefix, event.type),
            encode_event(event).encode(),
            timeout=5.0,
            stream=self._stream,
            headers=headers,
        )
        return bool(ack.duplicate)
