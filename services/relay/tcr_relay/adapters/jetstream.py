"""The NATS JetStream relay: every registry and subsidy event, published once, in feed order.

It follows each publisher's feed with `FeedClient` and publishes each event (CloudEvents JSON, personal data
removed) to `<prefix>.<type without the leading "tcr.">`, i.e. `tcr.registry.contract.certified.v1` and
`tcr.subsidy.award.decided.v1`, in the stream `TCR`, with headers `Nats-Msg-Id` = event id, `Tcr-Position` and
`Tcr-Source`.

Where it resumes is read from the stream itself, never from a file of its own: for each source, the last
message of every subject under `<prefix>.<source>.>` and the highest `Tcr-Position` among them. A kill -9
between a publish and anything else therefore cannot duplicate or skip: what is in the stream is what was
published. Publishes are sequential per source and each waits for its acknowledgement (a failed publish is
retried with the same `Nats-Msg-Id`, which JetStream de-duplicates within `duplicate_window`), so the stream
never holds a later event without the earlier ones. Keep the stream's retention such that the last message per
subject survives (the defaults do).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import nats
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from tcr_relay.settings import SOURCES, RelaySettings
from tcr_shared.feeds.client import Backoff, FeedClient
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.privacy import encode_event

log = logging.getLogger("tcr.relay")


def subject_for(prefix: str, event_type: str) -> str:
    """tcr.registry.contract.certified.v1 -> <prefix>.registry.contract.certified.v1"""
    head, _, rest = event_type.partition(".")
    if head != "tcr" or not rest:
        raise ValueError(f"not a tcr event type: {event_type}")
    return f"{prefix}.{rest}"


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


async def last_published_position(js: JetStreamContext, stream: str, prefix: str, source: str) -> int:
    """The highest Tcr-Position of the source's messages already in the stream (0 if none)."""
    filter_ = f"{prefix}.{SOURCES[source]}.>"
    try:
        info = await js.stream_info(stream, subjects_filter=filter_)
    except NotFoundError:
        return 0
    position = 0
    for subject in info.state.subjects or {}:
        try:
            message = await js.get_last_msg(stream, subject)
        except NotFoundError:
            continue
        position = max(position, int((message.headers or {}).get("Tcr-Position", 0)))
    return position


@dataclass
class SourceStatus:
    source: str
    position: int = 0
    published: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


async def relay_source(
    js: JetStreamContext, settings: RelaySettings, source: str, feed: FeedClient, status: SourceStatus
) -> None:
    prefix, stream = settings.nats_subject_prefix, settings.nats_stream
    status.position = await last_published_position(js, stream, prefix, source)
    log.info("relay %s: resuming after position %s", source, status.position)
    async for page in feed.follow(status.position, wait=20.0):
        for event in page.events:
            if event.position <= status.position:
                continue
            await _publish(js, stream, prefix, source, event, status)
        status.position = max(status.position, page.next_after)


async def _publish(
    js: JetStreamContext, stream: str, prefix: str, source: str, event: FeedEvent, status: SourceStatus
) -> None:
    subject = subject_for(prefix, event.type)
    headers = {
        "Nats-Msg-Id": event.id,
        "Tcr-Position": str(event.position),
        "Tcr-Source": source,
        "Content-Type": "application/cloudevents+json",
    }
    payload = encode_event(event).encode()
    backoff = Backoff(initial=0.2, maximum=10.0)
    while True:
        try:
            ack = await js.publish(subject, payload, timeout=5.0, stream=stream, headers=headers)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # timeouts, no responders, reconnects: same message again, same Msg-Id
            status.errors = (status.errors + [repr(exc)])[-5:]
            log.warning("relay %s: publishing position %s failed (%r); retrying", source, event.position, exc)
            await asyncio.sleep(backoff.next_delay())
    status.published += 1
    status.duplicates += int(bool(ack.duplicate))
    status.position = event.position


async def run(settings: RelaySettings | None = None) -> None:
    settings = settings or RelaySettings()
    if not settings.nats_url:
        raise SystemExit("TCR_NATS_URL is not set: there is no NATS to relay to")
    backoff = Backoff(initial=0.5, maximum=15.0)
    while True:
        try:
            nc = await nats.connect(
                settings.nats_url,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1.0,
                connect_timeout=5,
                name="tcr-relay",
            )
            break
        except Exception as exc:
            log.warning("relay: NATS at %s unreachable (%r); retrying", settings.nats_url, exc)
            await asyncio.sleep(backoff.next_delay())
    js = nc.jetstream()
    feeds: list[FeedClient] = []
    try:
        await ensure_stream(js, settings)
        tasks = []
        for source, url in settings.source_urls().items():
            feed = FeedClient(url, settings.key)
            feeds.append(feed)
            tasks.append(
                asyncio.create_task(
                    relay_source(js, settings, source, feed, SourceStatus(source)), name=f"relay-{source}"
                )
            )
        log.info(
            "relay: publishing %s to stream %s at %s",
            ", ".join(settings.source_urls()),
            settings.nats_stream,
            settings.nats_url,
        )
        await asyncio.gather(*tasks)
    finally:
        for feed in feeds:
            await feed.aclose()
        await nc.drain()
