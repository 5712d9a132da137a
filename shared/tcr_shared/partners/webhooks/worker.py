"""The delivery worker: one task per active subscription, events in feed order, at least once.

Each subscription has a cursor (`position`): every event up to it has been delivered or filtered out. Its task
reads events after the cursor from the publisher's own log, sends the next matching one (one event per request,
signed per Standard Webhooks with the `standardwebhooks` package) and moves the cursor only after a 2xx. A
failure is retried with exponential backoff and jitter (5 s doubling up to 10 h between attempts); when an event
has been failing for the retry window (about 3 days) the subscription is paused with a reason, the cursor still
before the failing event, so a resume loses nothing. The retry schedule lives in the database
(`next_retry_at`), so a restart keeps it.

Revocation: a subscription delivers only while its owner's API key is active. The worker asks the injected
`key_active(owner_key_id)` before every attempt (the registry answers from its key table, the subsidy service
through `tcr_shared.platform.auth.RegistryKeyStatus`) and pauses the subscription with the reason
`KEY_REVOKED`; a service that revokes keys itself can also call `pause_owner(key_id)` at once. Only an admin
resumes such a subscription (the router enforces it).

Isolation: every subscription has its own task; a request holds one of `concurrency` slots at most `timeout`
seconds; registration never waits for a webhook (the worker only reads the log). Run one worker per database (the
service process that owns the database); two workers on one database would deliver twice.

Throughput (docs/performance.md, webhooks): the cursor writes of subscriptions that finish a delivery at the same
moment share one transaction (`writes.GroupWriter`; each task still waits for its own commit), each target keeps
its own alive connections to a minimal HTTP/1.1 sender (`clients.TargetClients`), subscriptions on the same
stretch of the log share each page read (`reads.SharedReads`) and each event's encoded body, and a
subscription's signing key is unsealed once, not once per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from tcr_shared.feeds.server import EventLog, NewEventsSignal
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.privacy import encode_event
from tcr_shared.partners.webhooks.clients import ConnectError, DeliveryHTTPError, TargetClients
from tcr_shared.partners.webhooks.filters import SubscriptionFilter
from tcr_shared.partners.webhooks.reads import SharedReads
from tcr_shared.partners.webhooks.settings import WebhookSettings
from tcr_shared.partners.webhooks.tables import WebhookTables
from tcr_shared.partners.webhooks.urls import UnsafeUrl, check_url
from tcr_shared.partners.webhooks.writes import GroupWriter
from tcr_shared.platform.sealing import unseal

log = logging.getLogger("tcr.webhooks")

BODIES_KEPT = 10_000  # encoded events kept by position, shared by the subscriptions (a few MB at most)
SIGNERS_KEPT = 4_096  # unsealed signing keys, by sealed secret (a changed secret is a new entry)
KEY_REVOKED = "API key revoked"  # paused_reason when the owner's key was revoked; only an admin resumes


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def retry_delay(attempt: int, settings: WebhookSettings, rng: random.Random = random._inst) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): initial * 2^(attempt-1), capped, jittered."""
    base = min(settings.retry_max, settings.retry_initial * (2 ** min(attempt - 1, 40)))
    return base * rng.uniform(1 - settings.retry_jitter, 1 + settings.retry_jitter)


def signed_headers(secret: str | Webhook, webhook_id: str, body: str, when: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery; `secret` is the subscription's secret or its `Webhook`."""
    when = when or utcnow()
    signer = secret if isinstance(secret, Webhook) else Webhook(secret)
    signature = signer.sign(msg_id=webhook_id, timestamp=when, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/cloudevents+json; charset=utf-8",
        "user-agent": "tcr-webhooks/1",
    }


class _Superseded(Exception):
    """The subscription changed under the task (replay, resume, edit, delete): start again from the database."""


@dataclass
class _Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        tables: WebhookTables,
        source: EventLog,
        *,
        signal: NewEventsSignal | None = None,
        settings: WebhookSettings | None = None,
        tls: ssl.SSLContext | None = None,
        key_active: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.engine = engine
        self.key_active = key_active
        self.t = tables
        self.source = source
        self.signal = signal
        self.settings = settings or WebhookSettings()
        self._clients = TargetClients(self.settings.timeout, tls=tls)  # tls: tests trust their own certificate
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._writes = GroupWriter(engine, tables, self.settings.deliveries_kept)
        self._reads = SharedReads(source)
        self._tasks: dict[str, asyncio.Task] = {}
        self._bodies: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self._signers: dict[str, Webhook] = {}
        self._tick = asyncio.Event()
        self._rescan = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self.delivered = 0
        self.failed = 0
        self._attempts_metric = None

    def register_metrics(self, registry) -> None:
        """Expose attempts by outcome and running subscriptions on the service's Prometheus registry
        (`instrument(...)` returns it as `metrics.registry`)."""
        from prometheus_client import Counter, Gauge

        self._attempts_metric = Counter(
            "tcr_webhook_attempts", "Webhook delivery attempts by outcome", ["outcome"], registry=registry
        )
        Gauge(
            "tcr_webhook_subscriptions_running", "Subscriptions with a delivery task", registry=registry
        ).set_function(lambda: sum(not t.done() for t in self._tasks.values()))

    def _count(self, outcome: str) -> None:
        if outcome == "delivered":
            self.delivered += 1
        else:
            self.failed += 1
        if self._attempts_metric is not None:
            self._attempts_metric.labels(outcome).inc()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self.run(), name="webhook-supervisor")
        return self._supervisor

    async def stop(self) -> None:
        await self.pause()
        await self._clients.aclose()

    async def pause(self) -> None:
        """Stop delivering (the supervisor and every subscription's task) but keep the HTTP client, so that
        `start()` or `run()` may deliver again: a replica that loses its delivery lease stands by."""
        tasks = [t for t in [self._supervisor, *self._tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._supervisor = None
        await self._writes.close()

    async def lead(self) -> None:
        """`run()` for a leader lease (`Lease.run_while_leader(worker.lead)`): deliver while this replica leads;
        when cancelled (the lease is lost, or shutdown) stop every subscription's task too, so that a standby
        sends nothing, and keep the HTTP client for the next term (`stop()` closes it at shutdown)."""
        try:
            await self.run()
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            await self._writes.close()

    def notify(self) -> None:
        """New events were appended: wake subscriptions that are waiting at the head. Call on the event loop
        (from a thread: `loop.call_soon_threadsafe(worker.notify)`)."""
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def reload(self, subscription_id: str) -> None:
        """A subscription was created or changed: restart its task from what the database says."""
        task = self._tasks.pop(subscription_id, None)
        if task is not None:
            task.cancel()
        self._rescan.set()

    async def pause_owner(self, key_id: str, reason: str = KEY_REVOKED) -> list[str]:
        """The key `key_id` was revoked: pause every active subscription it owns, now. Returns their ids."""
        ids = await pause_subscriptions_of(self.engine, self.t, key_id, reason)
        for sub_id in ids:
            self.reload(sub_id)
        return ids

    async def _owner_active(self, sub: dict[str, Any]) -> bool:
        """Asks `key_active` until it answers: while the answer is unknown nothing is sent."""
        if self.key_active is None:
            return True
        while True:
            try:
                return await self.key_active(sub["owner"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "webhook subscription %s: cannot learn whether key %s is active; waiting", sub["id"], sub["owner"]
                )
                await asyncio.sleep(max(self.settings.poll_interval, 1.0))

    async def run(self) -> None:
        """Supervise one task per active subscription until cancelled."""
        while True:
            try:
                await self._sync_tasks()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook supervisor: cannot load subscriptions; retrying")
            with contextlib.suppress(TimeoutError):  # asyncio.timeout keeps a cancellation (wait_for may not)
                async with asyncio.timeout(max(5.0, self.settings.poll_interval * 10)):
                    await self._rescan.wait()
            self._rescan.clear()

    async def _sync_tasks(self) -> None:
        async with self.engine.connect() as conn:
            active = set(
                (
                    await conn.execute(
                        select(self.t.subscriptions.c.id).where(self.t.subscriptions.c.status == "active")
                    )
                ).scalars()
            )
        for sub_id, task in list(self._tasks.items()):
            if task.done() or sub_id not in active:
                if not task.done():
                    task.cancel()
                del self._tasks[sub_id]
        for sub_id in active - self._tasks.keys():
            self._tasks[sub_id] = asyncio.create_task(self._run_subscription(sub_id), name=f"webhook-{sub_id}")

    # -- one subscription ------------------------------------------------------------------------------------
    async def _load(self, sub_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(self.t.subscriptions).where(self.t.subscriptions.c.id == sub_id)))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    async def _update(self, sub: dict[str, Any], *, attempt: dict[str, Any] | None = None, **values: Any) -> None:
        """Compare-and-set on the generation: a replay or edit in between wins, and this task starts over.
        `attempt` (a deliveries row) is logged in the same transaction; the transaction is shared with whatever
        other subscriptions are writing at the same moment (group commit, `writes.GroupWriter`)."""
        if not await self._writes.write(sub["id"], sub["generation"], values, attempt):
            raise _Superseded()
        sub.update(values)

    async def _run_subscription(self, sub_id: str) -> None:
        while True:
            try:
                if not await self._pump(sub_id):
                    return
            except asyncio.CancelledError:
                raise
            except _Superseded:
                continue
            except Exception:
                log.exception("webhook subscription %s: unexpected error; retrying", sub_id)
                await asyncio.sleep(self.settings.poll_interval)

    async def _pump(self, sub_id: str) -> bool:
        """Deliver until paused, deleted or superseded. Returns False when the task should end."""
        sub = await self._load(sub_id)
        if sub is None or sub["status"] != "active":
            return False
        pending = aware(sub["next_retry_at"])
        if pending is not None and pending > utcnow():
            await asyncio.sleep((pending - utcnow()).total_seconds())
        filt = SubscriptionFilter(tuple(sub["event_types"]), tuple(sub["regions"] or ()))
        while True:
            ticks = self._ticks()  # taken before reading, so that a ring during the read is not missed
            page = await self._reads.read(sub["position"], self.settings.batch)
            if not page.events and page.next_after <= sub["position"]:
                await self._wait_for_events(ticks)
                continue
            skipped_to = sub["position"]
            for event in page.events:
                if event.position <= sub["position"]:
                    continue
                if not filt.matches(event.type, event.data):
                    skipped_to = event.position
                    continue
                if skipped_to > sub["position"]:
                    await self._update(sub, position=skipped_to)
                if not await self._deliver(sub, event):
                    return False
            skipped_to = max(skipped_to, page.next_after)  # positions the feed leaves out (not public) count too
            if skipped_to > sub["position"]:
                await self._update(sub, position=skipped_to)

    def _ticks(self) -> list[asyncio.Event]:
        ticks = [self._tick]
        if self.signal is not None:
            ticks.append(self.signal.ticket())  # set by the next ring, even one during our read
        return ticks

    async def _wait_for_events(self, ticks: list[asyncio.Event]) -> None:
        waits = [asyncio.ensure_future(t.wait()) for t in ticks]
        try:
            await asyncio.wait(waits, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(self, sub: dict[str, Any], event: FeedEvent) -> bool:
        """Send one event until it is accepted (True) or the subscription is paused (False)."""
        body = self._body(event)
        while True:
            if not await self._owner_active(sub):
                await self._update(sub, status="paused", paused_reason=KEY_REVOKED, next_retry_at=None)
                log.warning("webhook subscription %s paused: %s (%s)", sub["id"], KEY_REVOKED, sub["owner"])
                return False
            attempt = sub["failed_attempts"] + 1
            attempted_at = utcnow()
            outcome = await self._send(sub, event.id, body)
            now = utcnow()
            if outcome.ok:
                await self._update(
                    sub,
                    position=event.position,
                    failed_attempts=0,
                    failing_since=None,
                    next_retry_at=None,
                    last_delivered_at=now,
                    attempt=_attempt(event, attempt, attempted_at, outcome, "delivered", None),
                )
                self._count("delivered")
                return True
            self._count("failed")
            failing_since = aware(sub["failing_since"]) or now
            if (now - failing_since).total_seconds() >= self.settings.retry_window:
                reason = (
                    f"paused after {attempt} failed attempts over {_duration(now - failing_since)} to deliver "
                    f"event {event.id} (position {event.position}); last error: {outcome.error}"
                )
                await self._update(
                    sub,
                    status="paused",
                    paused_reason=reason,
                    next_retry_at=None,
                    failed_attempts=attempt,
                    failing_since=failing_since,
                    attempt=_attempt(event, attempt, attempted_at, outcome, "paused", None),
                )
                log.warning("webhook subscription %s %s", sub["id"], reason)
                return False
            wait = retry_delay(attempt, self.settings)
            retry_at = now + timedelta(seconds=wait)
            await self._update(
                sub,
                failed_attempts=attempt,
                failing_since=failing_since,
                next_retry_at=retry_at,
                attempt=_attempt(event, attempt, attempted_at, outcome, "failed", retry_at),
            )
            await asyncio.sleep(wait)

    def _body(self, event: FeedEvent) -> tuple[str, bytes]:
        """The event as partners receive it (text to sign, bytes to send), encoded once for every subscription
        that is sent it (events never change once appended, so an entry never goes stale); the newest
        `BODIES_KEPT` are kept."""
        body = self._bodies.get(event.position)
        if body is None:
            text = encode_event(event)
            body = self._bodies[event.position] = (text, text.encode())
            if len(self._bodies) > BODIES_KEPT:
                self._bodies.popitem(last=False)
        return body

    def _signer(self, sealed: str) -> Webhook:
        """The subscription's signing key, unsealed and decoded once (keyed by the sealed value: a new secret is
        a new key, and an old one is simply never asked for again)."""
        signer = self._signers.get(sealed)
        if signer is None:
            if len(self._signers) >= SIGNERS_KEPT:
                self._signers.clear()
            signer = self._signers[sealed] = Webhook(unseal(sealed))
        return signer

    async def _send(self, sub: dict[str, Any], webhook_id: str, body: tuple[str, bytes]) -> _Outcome:
        """One attempt. The deliveries log learns the status code, the time and the class of error, never a
        byte of the target's answer: a partner could otherwise read whatever a refused target says."""
        try:
            checked = await check_url(sub["url"], **self.settings.target_rules())  # again: DNS may have changed
        except UnsafeUrl as exc:
            return _Outcome(False, None, f"refused: {exc}", 0.0)
        text, data = body
        async with self._slots:
            signed = signed_headers(self._signer(sub["secret"]), webhook_id, text)  # when sent: a fresh timestamp
            headers = "".join(f"{name}: {value}\r\n" for name, value in signed.items()).encode()
            started = time.perf_counter()
            for i, address in enumerate(checked.addresses):  # as a browser would: the next address if one is down
                target = (checked.scheme, checked.host, address, checked.port)
                try:
                    status = await self._clients.post(target, checked.url, headers, data)
                    break
                except ConnectError as exc:
                    if i + 1 < len(checked.addresses):
                        continue
                    return _Outcome(False, None, connect_error_class(exc), _ms(started))
                except TimeoutError:
                    return _Outcome(False, None, f"timeout: no answer within {self.settings.timeout:g} s", _ms(started))
                except DeliveryHTTPError as exc:
                    return _Outcome(False, None, type(exc).__name__, _ms(started))
        ok = 200 <= status < 300
        return _Outcome(ok, status, None if ok else f"HTTP {status}", _ms(started))


async def pause_subscriptions_of(
    engine: AsyncEngine, tables: WebhookTables, key_id: str, reason: str = KEY_REVOKED
) -> list[str]:
    """Pause every active subscription owned by `key_id` (bumping the generation, so a running delivery task
    starts over and sees the pause). Returns the ids paused."""
    s = tables.subscriptions
    async with engine.begin() as conn:
        ids = list((await conn.execute(select(s.c.id).where(s.c.owner == key_id, s.c.status == "active"))).scalars())
        if ids:
            await conn.execute(
                update(s)
                .where(s.c.id.in_(ids), s.c.status == "active")
                .values(
                    status="paused",
                    paused_reason=reason,
                    next_retry_at=None,
                    generation=s.c.generation + 1,
                    updated_at=utcnow(),
                )
            )
    return ids


def connect_error_class(exc: BaseException) -> str:
    """A connection failure in tcr's words (the OS's and TLS library's texts can quote the peer)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "ConnectError: TLS certificate not trusted"
        if isinstance(cause, ssl.SSLError):
            return "ConnectError: TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "ConnectError: connection refused"
        cause = cause.__cause__ or cause.__context__
    return "ConnectError"


def _attempt(
    event: FeedEvent, attempt: int, when: datetime, outcome: _Outcome, result: str, retry_at: datetime | None
) -> dict[str, Any]:
    return dict(
        webhook_id=event.id,
        event_type=event.type,
        event_position=event.position,
        attempt=attempt,
        attempted_at=when,
        status_code=outcome.status_code,
        outcome=result,
        error=outcome.error,
        duration_ms=round(outcome.duration_ms, 2),
        next_retry_at=retry_at,
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
