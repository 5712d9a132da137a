"""The services adopt the shared security pieces (issues 11 and 12), checked with real uvicorn processes of the
registry, subsidy and reporting on one host:

- rate limits: wrong keys from one client address end in 429 with Retry-After at subsidy and at reporting, while a
  good key from another address still works, relayed to the registry's /v1/whoami from loopback (trusted there,
  so the services are not locked out by their clients' guesses);
- revocation is immediate: a partner key revoked at the registry is refused by subsidy and reporting within
  MAX_CACHE_SECONDS (1 s), its subscription on the subsidy service pauses, and its registry subscription pauses
  at once.

Client addresses: the whole 127/8 is loopback on Linux, so a client binds 127.0.0.2 or 127.0.0.3 to look like
two machines."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import httpx
import pytest

from tcr_shared.partners.webhooks import KEY_REVOKED
from tcr_shared.platform.auth import MAX_CACHE_SECONDS
from tests.support.processes import start_service
from tests.support.registry import contract_body

REGISTRY_APP = "tcr_registry.bootstrap:create_app"
SUBSIDY_APP = "tcr_subsidy.bootstrap:create_app"
REPORTING_APP = "tcr_reporting.bootstrap:create_app"
GUESSER, HONEST = "127.0.0.2", "127.0.0.3"


class Stack:
    def __init__(self, tmp, admin_key: str) -> None:
        self.admin_key = admin_key
        common = {
            "TCR_ADMIN_KEY": admin_key,
            "TCR_DATA_DIR": str(tmp / "var"),
            "TCR_DEMO": "0",
            "TCR_WEBHOOK_ALLOW_LOOPBACK": "1",  # the (refusing) webhook target is on 127.0.0.1
        }
        logs = tmp / "logs"
        # Without trusting loopback, 3 relayed failures would lock subsidy and reporting out of the registry.
        self.registry = start_service(
            "registry",
            REGISTRY_APP,
            {**common, "TCR_REGISTRY_DATABASE_URL": "", "TCR_RATE_LIMIT_FAILURES_PER_ADDRESS": "3/minute"},
            logs,
        )
        limits = {"TCR_RATE_LIMIT_FAILURES_PER_ADDRESS": "5/minute", "TCR_REGISTRY_URL": self.registry.url}
        self.subsidy = start_service(
            "subsidy",
            SUBSIDY_APP,
            {
                **common,
                **limits,
                "TCR_SUBSIDY_DATABASE_URL": "",
                "TCR_WEBHOOK_RETRY_INITIAL": "0.2",  # the failing target is retried often: each try asks key_active
                "TCR_WEBHOOK_RETRY_MAX": "0.5",
            },
            logs,
        )
        self.reporting = start_service(
            "reporting",
            REPORTING_APP,
            {**common, **limits, "TCR_SUBSIDY_URL": self.subsidy.url, "TCR_REPORTING_DATABASE_URL": ""},
            logs,
        )
        self.processes = [self.reporting, self.subsidy, self.registry]

    def client(self, address: str = "127.0.0.1") -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)

    def admin(self, method: str, url: str, **kwargs) -> httpx.Response:
        with self.client() as client:
            return client.request(method, url, headers=bearer(self.admin_key), **kwargs)

    def issue_key(self, role: str, point_id: str | None = None) -> dict:
        issued = self.admin("POST", f"{self.registry.url}/v1/api-keys", json={"role": role, "point_id": point_id})
        assert issued.status_code == 201, issued.text
        return issued.json()

    def certify_one_contract(self) -> None:
        """One certified contract, so that the subsidy service decides awards and its feed has events."""
        point = self.admin(
            "POST",
            f"{self.registry.url}/v1/points",
            json={"number": "01", "name": "Point 01", "jurisdiction": "6400"},
        )
        assert point.status_code == 201, point.text
        key = bearer(self.issue_key("point", point.json()["id"])["secret"])
        with self.client() as client:
            submitted = client.post(f"{self.registry.url}/v1/contracts", json=contract_body(), headers=key)
            assert submitted.status_code == 201, submitted.text
            certified = client.post(
                f"{self.registry.url}/v1/contracts/{submitted.json()['id']}/certify",
                json={"certified_at": datetime.now(UTC).isoformat(), "expert_review_ref": "EXP-2026-001"},
                headers=key,
            )
            assert certified.status_code == 200, certified.text

    def close(self) -> None:
        for process in self.processes:
            process.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_for(probe, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("adoption"), f"admin_{secrets.token_hex(8)}")
    yield stack
    stack.close()


@pytest.mark.parametrize("service, path", [("subsidy", "/v1/programmes"), ("reporting", "/v1/regions")])
def test_wrong_keys_from_one_address_reach_429_and_a_good_key_from_another_still_works(stack, service, path):
    url = getattr(stack, service).url + path
    analyst = stack.issue_key("analyst")["secret"]
    with stack.client(GUESSER) as guesser:
        for _ in range(5):
            assert guesser.get(url, headers=bearer(f"tcr_{secrets.token_urlsafe(16)}")).status_code == 401
        locked = guesser.get(url, headers=bearer(f"tcr_{secrets.token_urlsafe(16)}"))
        assert locked.status_code == 429, locked.text
        assert locked.headers["content-type"] == "application/problem+json"
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert guesser.get(url, headers=bearer(analyst)).status_code == 429  # locked out: the key is not checked
    with stack.client(HONEST) as honest:
        # The registry saw every guess relayed from loopback; it did not lock this service out.
        assert honest.get(url, headers=bearer(analyst)).status_code == 200


def test_a_key_revoked_at_the_registry_is_refused_everywhere_within_a_second_and_its_webhooks_pause(stack):
    partner = stack.issue_key("partner")
    key = bearer(partner["secret"])
    registry, subsidy, reporting = stack.registry.url, stack.subsidy.url, stack.reporting.url
    with stack.client() as client:
        on_subsidy = client.post(
            f"{subsidy}/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook", "start": "0"}, headers=key
        )
        assert on_subsidy.status_code == 201, on_subsidy.text
        on_registry = client.post(
            f"{registry}/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook", "start": "0"}, headers=key
        )
        assert on_registry.status_code == 201, on_registry.text
        stack.certify_one_contract()
        deliveries = f"{subsidy}/v1/subscriptions/{on_subsidy.json()['id']}/deliveries"
        wait_for(lambda: stack.admin("GET", deliveries).json().get("deliveries"), "a first delivery attempt")
        assert client.get(f"{subsidy}/v1/events", headers=key).status_code == 200
        assert client.get(f"{reporting}/v1/regions", headers=key).status_code == 403  # known, not an analyst

        status = stack.admin("GET", f"{registry}/v1/api-keys/{partner['id']}")
        assert status.json() == {"id": partner["id"], "role": "partner", "revoked_at": None}
        assert stack.admin("DELETE", f"{registry}/v1/api-keys/{partner['id']}").status_code == 204
        revoked_at = time.monotonic()
        assert stack.admin("GET", f"{registry}/v1/api-keys/{partner['id']}").json()["revoked_at"] is not None
        # the registry's own subscription paused with the revocation itself
        paused = stack.admin("GET", f"{registry}/v1/subscriptions/{on_registry.json()['id']}").json()
        assert (paused["status"], paused["paused_reason"]) == ("paused", KEY_REVOKED)

        # Every answer about the key cached before the revocation has expired MAX_CACHE_SECONDS later.
        time.sleep(max(0.0, MAX_CACHE_SECONDS - (time.monotonic() - revoked_at)))
        assert client.get(f"{subsidy}/v1/events", headers=key).status_code == 401
        assert client.get(f"{reporting}/v1/regions", headers=key).status_code == 401

    def subsidy_subscription_paused():
        body = stack.admin("GET", f"{subsidy}/v1/subscriptions/{on_subsidy.json()['id']}").json()
        return body if body["status"] == "paused" else None

    assert wait_for(subsidy_subscription_paused, "the subsidy subscription to pause")["paused_reason"] == KEY_REVOKED
    assert stack.admin("GET", f"{registry}/v1/api-keys/no-such-key").status_code == 404
