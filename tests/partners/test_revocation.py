"""Revocation is immediate for webhooks (issue 11, point 4): a revoked partner's subscriptions pause with the
reason "API key revoked", deliver nothing more, and only an admin resumes them."""

from __future__ import annotations

import pytest

from tcr_shared.partners.webhooks import KEY_REVOKED
from tests.partners.conftest import ADMIN, append, key, wait_until
from tests.partners.events import registry_event


@pytest.mark.parametrize("told", [False, True], ids=["worker-asks-key_active", "service-calls-pause_owner"])
async def test_revoking_a_partner_pauses_its_subscriptions_until_an_admin_resumes(
    http, start_publisher, make_receiver, told
):
    publisher = start_publisher()
    receiver = make_receiver("pending")
    created = await http.post(
        f"{publisher.url}/v1/subscriptions", json={"url": receiver.url, "start": "0"}, headers=key("acme")
    )
    sub = created.json()
    other = (
        await http.post(
            f"{publisher.url}/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"}, headers=key("globex")
        )
    ).json()
    receiver.secret = sub["secret"]
    receiver.start()
    first = await append(http, publisher, [registry_event("certified")])
    await wait_until(lambda: len(receiver.unique()) == 1, what="the first delivery")

    revoked = await http.post(f"{publisher.url}/test/keys/acme/revoke", params={"tell": told}, headers=ADMIN)
    assert revoked.json()["paused"] == ([sub["id"]] if told else [])
    later = await append(http, publisher, [registry_event("certified") for _ in range(3)])

    async def paused():
        body = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=ADMIN)).json()
        return body if body["status"] == "paused" else None

    state = await wait_until(paused, what="the revoked partner's subscription to pause")
    assert state["paused_reason"] == KEY_REVOKED and state["position"] < later[0]
    assert [u["position"] for u in receiver.unique()] == first  # nothing after the revocation
    untouched = (await http.get(f"{publisher.url}/v1/subscriptions/{other['id']}", headers=ADMIN)).json()
    assert untouched["status"] == "active"  # another partner's subscription goes on

    # The revoked key itself is refused; a restored key may not resume what the revocation paused, an admin may.
    gone = await http.patch(
        f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=key("acme")
    )
    assert gone.status_code == 401
    await http.post(f"{publisher.url}/test/keys/acme/restore", headers=ADMIN)
    refused = await http.patch(
        f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=key("acme")
    )
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    resumed = await http.patch(
        f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=ADMIN
    )
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    await wait_until(lambda: len(receiver.unique()) == 4, what="the events held back while paused")
    assert [u["position"] for u in receiver.unique()] == first + later
