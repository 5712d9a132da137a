"""Webhook targets (issue 11, point 3): nothing inside tcr's network, in any spelling, at subscription and again
at every delivery against the address actually connected to; the deliveries log never quotes the target."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from sqlalchemy import MetaData

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.partners.webhooks import DeliveryWorker, WebhookSettings, webhook_tables
from tcr_shared.partners.webhooks.urls import UnsafeUrl, check_url, legacy_ipv4, parse_networks
from tcr_shared.partners.webhooks.worker import utcnow
from tcr_shared.platform.database import Database
from tests.partners.conftest import append, key, wait_until
from tests.partners.events import registry_event
from tests.partners.test_https_delivery import ListLog

PUBLIC_V4 = "93.184.215.14"

REFUSED = {
    # loopback, in every spelling a resolver accepts
    "http://127.0.0.1:5432/": "loopback",
    "http://localhost:8003/v1/figures": "loopback",
    "http://2130706433:9101/": "loopback",
    "http://0177.0.0.1/": "loopback",
    "http://0x7f.0.0.1/": "loopback",
    "http://0x7f000001/": "loopback",
    "http://127.1:9101/": "loopback",
    "http://127.0.0.1./": "loopback",
    "http://[::1]:9101/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:7f00:1]/": "loopback",
    "http://[::127.0.0.1]/": "loopback",
    "http://[64:ff9b::7f00:1]/": "loopback",
    "http://[2002:7f00:1::]/": "loopback",
    # private, shared and link-local networks
    "http://10.0.0.1/": "private",
    "http://167772161/": "private",
    "http://172.16.5.4/": "private",
    "http://192.168.0.1/": "private",
    "http://[::ffff:10.0.0.1]/": "private",
    "http://100.64.0.1/": "carrier-grade NAT",
    "http://100.100.100.200/latest/meta-data/": "cloud metadata",
    "http://169.254.169.254/latest/meta-data/": "cloud metadata",
    "http://[fe80::1]/": "link-local",
    "http://[fd00:ec2::254]/": "cloud metadata",
    "http://[fc00::1]/": "unique-local",
    "http://[fd12:3456::1]/": "unique-local",
    # special purposes
    "http://0.0.0.0:8001/": "unspecified",
    "http://0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://255.255.255.255/": "broadcast",
    "http://240.0.0.1/": "reserved",
    "http://192.0.0.8/": "reserved",
    "http://[2001::1]/": "reserved",
    "http://198.18.0.1/": "benchmarking",
    "http://198.19.255.255/": "benchmarking",
    "http://192.0.2.1/": "documentation",
    "http://198.51.100.7/": "documentation",
    "http://203.0.113.7/": "documentation",
    "http://[2001:db8::1]/": "documentation",
}


@pytest.mark.parametrize("url", sorted(REFUSED))
async def test_internal_targets_are_refused_in_every_spelling(url):
    with pytest.raises(UnsafeUrl, match=REFUSED[url]):
        await check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC_V4}/hook",
        f"http://[::ffff:{PUBLIC_V4}]/hook",
        "http://[64:ff9b::5db8:d70e]/hook",  # NAT64 of the public address above
        "https://[2606:4700:4700::1111]/hook",
    ],
)
async def test_public_addresses_are_allowed(url):
    assert (await check_url(url)).addresses


def test_legacy_ipv4_spellings_read_as_resolvers_read_them():
    expected = ipaddress.IPv4Address("127.0.0.1")
    for host in ("2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "127.1", "127.0.1", "017700000001"):
        assert legacy_ipv4(host) == expected, host
    assert legacy_ipv4("partner.example") is None and legacy_ipv4("1e100.net") is None
    with pytest.raises(UnsafeUrl, match="malformed"):
        legacy_ipv4("127.0.0.256")


async def test_settings_open_loopback_and_listed_networks_only():
    loopback = WebhookSettings(allow_loopback=True)
    for url in ("http://127.0.0.1:9/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://[::1]/"):
        assert (await check_url(url, **loopback.target_rules())).addresses
    with pytest.raises(UnsafeUrl, match="private"):
        await check_url("http://10.0.0.1/", **loopback.target_rules())
    on_premises = WebhookSettings(allow_loopback=False, allowed_networks="10.20.0.0/16,fd12::/48")
    assert (await check_url("http://10.20.1.2/", **on_premises.target_rules())).addresses
    assert (await check_url("http://[::ffff:10.20.1.2]/", **on_premises.target_rules())).addresses
    assert (await check_url("http://[fd12::9]/", **on_premises.target_rules())).addresses
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_url("http://127.0.0.1/", **on_premises.target_rules())
    with pytest.raises(ValueError, match="ALLOWED_NETWORKS"):
        WebhookSettings(allowed_networks="10.0.0.0/33")
    assert parse_networks("") == ()


def test_loopback_is_off_by_default(monkeypatch):
    monkeypatch.delenv("TCR_WEBHOOK_ALLOW_LOOPBACK")
    assert WebhookSettings().allow_loopback is False
    monkeypatch.setenv("TCR_WEBHOOK_ALLOW_LOOPBACK", "1")
    assert WebhookSettings().allow_loopback is True


async def test_names_that_resolve_inside_are_refused(monkeypatch):
    """DNS is the edge of the world: a resolver answering with internal addresses for public-looking names."""
    answers = {"inside.example": ["10.1.2.3"], "sneaky.example": [PUBLIC_V4, "::ffff:127.0.0.1"]}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(UnsafeUrl, match="private"):
        await check_url("https://inside.example/hook")
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_url("https://sneaky.example/hook")


async def test_subscribing_to_an_internal_target_is_a_422_naming_the_url(http, start_publisher, monkeypatch):
    monkeypatch.delenv("TCR_WEBHOOK_ALLOW_LOOPBACK")
    publisher = start_publisher()
    for url in ("http://127.0.0.1:5432/", "http://2130706433:9101/", "http://127.1:9101/", "http://[::1]:9101/"):
        response = await http.post(f"{publisher.url}/v1/subscriptions", json={"url": url}, headers=key("acme"))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == "url"
    listed = await http.get(f"{publisher.url}/v1/subscriptions", headers=key("acme"))
    assert listed.json()["subscriptions"] == []


async def test_every_delivery_checks_again_and_a_rebound_name_is_refused(tmp_path, monkeypatch):
    """The name pointed outside at subscription time; at delivery time it points at loopback (DNS rebinding)."""
    monkeypatch.delenv("TCR_WEBHOOK_ALLOW_LOOPBACK")
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
            if host == "rebind.example"
            else real(host, port, *a, **k)
        ),
    )
    database = Database(f"sqlite:///{tmp_path / 'hooks.db'}")
    engine = database.async_engine()
    tables = webhook_tables(MetaData())
    now = utcnow()
    async with engine.begin() as conn:
        await conn.run_sync(tables.subscriptions.metadata.create_all)
        await conn.execute(
            tables.subscriptions.insert().values(
                id="sub_rebind",
                owner="acme",
                url="http://rebind.example:9/hook",
                event_types=["*"],
                regions=[],
                secret="whsec_" + "A" * 44,
                status="active",
                position=0,
                generation=0,
                failed_attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    item = registry_event()
    event = FeedEvent(
        id="evt-1",
        source="/tcr/registry",
        type=item["type"],
        time="2025-03-02T08:00:00+00:00",
        subject=item["subject"],
        position=1,
        data=item["data"],
    )
    worker = DeliveryWorker(engine, tables, ListLog([event]), settings=WebhookSettings(retry_initial=5))
    worker.start()
    try:

        async def attempt():
            async with engine.connect() as conn:
                return (await conn.execute(tables.deliveries.select())).mappings().first()

        row = await wait_until(attempt, what="a refused attempt")
        assert row["outcome"] == "failed" and row["status_code"] is None
        assert row["error"].startswith("refused:") and "127.0.0.1, a loopback address" in row["error"]
    finally:
        await worker.stop()
        await engine.dispose()


async def test_turning_loopback_off_stops_deliveries_already_subscribed(http, start_publisher, make_receiver):
    publisher = start_publisher()
    receiver = make_receiver("whsec_" + "B" * 44).start()
    sub = (
        await http.post(
            f"{publisher.url}/v1/subscriptions", json={"url": receiver.url, "start": "0"}, headers=key("acme")
        )
    ).json()
    receiver.secret = sub["secret"]
    publisher.kill()
    publisher = start_publisher(again=publisher, TCR_WEBHOOK_ALLOW_LOOPBACK="0")
    await append(http, publisher, [registry_event("certified")])

    async def refused():
        body = await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}/deliveries", headers=key("acme"))
        return body.json()["deliveries"]

    (first, *_) = await wait_until(refused, what="a refused attempt")
    assert first["error"].startswith("refused:") and "loopback" in first["error"]
    assert receiver.received() == []


async def test_the_deliveries_log_never_quotes_the_target(http, start_publisher, make_receiver):
    publisher = start_publisher()
    receiver_port = make_receiver("x").port
    sub = (
        await http.post(
            f"{publisher.url}/v1/subscriptions",
            json={"url": f"http://127.0.0.1:{receiver_port}/hook", "start": "0"},
            headers=key("acme"),
        )
    ).json()
    make_receiver(sub["secret"], port=receiver_port, RECEIVER_STATUS="500").start()  # answers 500 "not today"
    await append(http, publisher, [registry_event("certified")])

    async def failed():
        body = await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}/deliveries", headers=key("acme"))
        return [d for d in body.json()["deliveries"] if d["status_code"] == 500] and body

    body = await wait_until(failed, what="a failed attempt")
    delivery = body.json()["deliveries"][0]
    assert delivery["error"] == "HTTP 500" and delivery["duration_ms"] >= 0
    assert "not today" not in body.text
