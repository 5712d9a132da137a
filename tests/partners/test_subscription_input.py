"""Bad input to /v1/subscriptions gets problem+json naming the field, and creates nothing."""

from __future__ import annotations

import pytest

from tcr_shared.partners.webhooks.urls import UnsafeUrl, check_url, parse_networks
from tests.partners.conftest import ADMIN, key

GOOD = {"url": "http://127.0.0.1:9/hook", "event_types": ["tcr.registry.contract.*"], "regions": ["6401"]}

BAD_BODIES = [
    ({"url": "ftp://partner.example/hook"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
    ({"url": "http://[fd00:ec2::254]/latest"}, "url"),
    ({"url": "http://[::ffff:169.254.169.254]/"}, "url"),
    ({"url": "http://100.100.100.200/latest/meta-data/"}, "url"),
    ({"url": "http://0.0.0.0:8001/"}, "url"),
    ({"url": "https://user:pw@partner.example/hook"}, "url"),
    ({"url": "http://no-such-host.invalid/hook"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"event_types": ["tcr.registry.contract.exploded.v1"]}, "event_types.0"),
    ({"event_types": ["tcr.registry.contr*"]}, "event_types.0"),
    ({"event_types": ["tcr.subsidy.award.*"]}, "event_types.0"),  # the registry does not publish awards
    ({"event_types": []}, "event_types"),
    ({"event_types": "tcr.registry.contract.*"}, "event_types"),
    ({"regions": ["64"]}, "regions.0"),
    ({"regions": ["6409"]}, "regions.0"),
    ({"regions": ["640199"]}, "regions.0"),
    ({"regions": ["64O1"]}, "regions.0"),
    ({"regions": "6401"}, "regions"),
    ({"start": "yesterday"}, "start"),
    ({"start": "-1"}, "start"),
    ({"start": "99999"}, "start"),
    ({"secret": "whsec_mine"}, "secret"),
]


@pytest.fixture
async def publisher(start_publisher):
    return start_publisher()


async def count(http, publisher) -> int:
    return len((await http.get(f"{publisher.url}/v1/subscriptions", headers=ADMIN)).json()["subscriptions"])


async def test_bad_input_gets_problem_json_and_creates_nothing(http, publisher):
    for change, field in BAD_BODIES:
        body = {**GOOD, **change}
        response = await http.post(f"{publisher.url}/v1/subscriptions", json=body, headers=key("acme"))
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422 and problem["title"] and problem["detail"]
        assert field in [e["field"] for e in problem["errors"]], (change, problem)

    malformed = await http.post(
        f"{publisher.url}/v1/subscriptions",
        content=b'{"url": ',
        headers={**key("acme"), "content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.headers["content-type"] == "application/problem+json"
    assert (await http.post(f"{publisher.url}/v1/subscriptions", json=GOOD)).status_code == 401
    analyst = await http.post(f"{publisher.url}/v1/subscriptions", json=GOOD, headers=key("x", "analyst"))
    assert analyst.status_code == 403 and analyst.headers["content-type"] == "application/problem+json"
    assert await count(http, publisher) == 0

    # The same checks guard changes to an existing subscription.
    created = await http.post(f"{publisher.url}/v1/subscriptions", json=GOOD, headers=key("acme"))
    assert created.status_code == 201
    sub = created.json()
    for change, _field in BAD_BODIES[:4] + BAD_BODIES[10:12] + BAD_BODIES[15:17]:
        response = await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json=change, headers=key("acme"))
        assert response.status_code == 422, (change, response.text)
    status = await http.patch(
        f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "deleted"}, headers=key("acme")
    )
    assert status.status_code == 422
    unchanged = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("acme"))).json()
    assert {k: unchanged[k] for k in ("url", "event_types", "regions", "status")} == {
        "url": GOOD["url"],
        "event_types": GOOD["event_types"],
        "regions": GOOD["regions"],
        "status": "active",
    }
    assert (await http.get(f"{publisher.url}/v1/subscriptions/nope", headers=key("acme"))).status_code == 404


@pytest.mark.parametrize("url", ["http://localhost:8080/hook", "http://127.0.0.1/hook", "http://[::1]:9/hook"])
async def test_loopback_is_refused_by_default_and_allowed_when_switched_on(url):
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_url(url)
    assert (await check_url(url, allow_loopback=True)).address


async def test_private_network_partners_are_allowed_only_when_their_network_is_listed():
    on_premises = parse_networks("10.20.0.0/16, 192.168.1.0/24 fc00::/120")
    for url in ("https://10.20.30.40/hook", "http://192.168.1.5:8443/x", "http://[fc00::5]/"):
        with pytest.raises(UnsafeUrl):
            await check_url(url)
        assert (await check_url(url, allowed_networks=on_premises)).address
    with pytest.raises(UnsafeUrl, match="private"):
        await check_url("https://10.21.0.1/hook", allowed_networks=on_premises)


async def test_a_host_name_is_refused_when_any_address_it_resolves_to_is_link_local(monkeypatch):
    """DNS is the edge of the world here: a resolver that answers with a metadata address among others."""
    import socket

    real = socket.getaddrinfo
    answers = {
        "metadata.example": ["169.254.169.254"],
        "mixed.example": ["93.184.215.14", "169.254.0.23"],
        "v6.example": ["fd00:ec2::254"],
        "partner.example": ["93.184.215.14"],
    }

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    for host in ("metadata.example", "mixed.example", "v6.example"):
        with pytest.raises(UnsafeUrl, match="link-local or cloud metadata"):
            await check_url(f"https://{host}/hook")
    checked = await check_url("https://partner.example:8443/hook")
    assert (checked.address, checked.port, checked.host) == ("93.184.215.14", 8443, "partner.example")
