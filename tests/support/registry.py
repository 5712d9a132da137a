"""The one way tests drive the registry: the registry itself (in-process over ASGI, or a real uvicorn process),
valid request bodies, and `RegistryDriver`, which acts over HTTP as the registry's admin and its registration
points do. `RegistryEnv` is the driver of an in-process registry (it can also see the runtime);
`RegistryClient` is the driver as the partner tests use it (one acting point); `RegistryApi` is the same steps
for synchronous tests (the reporting end-to-end stack)."""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tcr_shared.language.identifiers import credit_code_with_check_digit
from tests.support.asserts import wait_until
from tests.support.processes import ServiceProcess, start_service

ADMIN_KEY = "test-admin-key"
REGISTRY_APP = "tcr_registry.bootstrap:create_app"
REGISTRY_WITH_WEBHOOKS = "tests.partners.registry_webhooks_app:create_app"
_serial = itertools.count(1)


# --- request bodies ---------------------------------------------------------------------------------------------
def credit_code(region: str = "640104", prefix: str = "91") -> str:
    """A fresh valid unified social credit code located in `region`."""
    return credit_code_with_check_digit(f"{prefix}{region}{next(_serial):09d}")


def party(kind: str = "enterprise", region: str = "640104", name: str | None = None, **extra) -> dict:
    prefix = {"university": "12", "research_institute": "12", "public_institution": "12"}.get(kind, "91")
    body = {
        "name": name or f"测试{kind}{next(_serial)}",
        "kind": kind,
        "credit_code": credit_code(region, prefix),
        "region": region,
    }
    body.update(extra)
    return body


def org(region: str, kind: str = "enterprise") -> dict[str, Any]:
    """A fresh organisation (a party) registered in `region`, named after its kind and number."""
    prefix = "91" if kind == "enterprise" else "12"
    n = next(_serial)
    code = credit_code_with_check_digit(f"{prefix}{region}MA{n:07d}")
    return {"name": f"{kind} {n} ({region})", "kind": kind, "credit_code": code, "region": region}


def contract_body(**overrides) -> dict:
    body = {
        "title": "一种枸杞多糖提取技术许可合同",
        "category": "licence",
        "subcategory": "patent_ordinary",
        "signed_on": "2025-03-01",
        "amount": "9000000.00",
        "technology_amount": "8000000.00",
        "consideration": "money",
        "result_id": "ZL202110123456.7",
        "seller": party("university", "640104"),
        "buyer": party("enterprise", "640181"),
        "intermediary": None,
    }
    body.update(overrides)
    return body


def named_contract_body(seller_region: str = "640104", buyer_region: str = "640181", amount: str = "900000.00") -> dict:
    """The same two named organisations every time (the partner tests compare what partners receive with
    tests.support.events.registry_event, which names them too)."""

    def named(kind: str, region: str, code: str, name: str) -> dict:
        return {"name": name, "kind": kind, "credit_code": code, "region": region}

    return contract_body(
        title="Licence of a patent for drip irrigation control",
        amount=amount,
        technology_amount=amount,
        seller=named("university", seller_region, "126400004550001239", "Ningxia University"),
        buyer=named("enterprise", buyer_region, "91640181MA7F3K2Q1Q", "Lingwu Water Saving Co."),
    )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = auth(ADMIN_KEY)


@dataclass
class Point:
    id: str
    key: str
    jurisdiction: str
    number: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)


# --- the driver -------------------------------------------------------------------------------------------------
class RegistryDriver:
    """A registry's admin and registration points, over HTTP. Every step asserts that the registry agreed."""

    def __init__(self, client: httpx.AsyncClient, url: str = "", admin_key: str = ADMIN_KEY) -> None:
        self.client = client
        self.base = url  # "" when the client's base_url is the registry
        self.admin = auth(admin_key)
        self._numbers: dict[str, int] = collections.defaultdict(int)
        self._keys: dict[str, str] = {}

    async def post(self, path: str, body: dict | None, headers: dict[str, str], *ok: int) -> httpx.Response:
        response = await self.client.post(f"{self.base}{path}", json=body, headers=headers)
        assert response.status_code in (ok or (200, 201)), (path, response.text)
        return response

    async def point(self, jurisdiction: str = "6401", number: str | None = None) -> Point:
        """A new registration point; by default with a fresh number (so its registration numbers start at 000001)."""
        if number is None:
            self._numbers[jurisdiction] += 1
            number = f"{self._numbers[jurisdiction]:02d}"
        body = {"number": number, "name": f"登记点 {jurisdiction}-{number}", "jurisdiction": jurisdiction}
        point_id = (await self.post("/v1/points", body, self.admin, 201)).json()["id"]
        key = await self.post("/v1/api-keys", {"role": "point", "point_id": point_id}, self.admin, 201)
        return Point(point_id, key.json()["secret"], jurisdiction, number)

    async def new_key(self, role: str) -> str:
        return (await self.post("/v1/api-keys", {"role": role}, self.admin, 201)).json()["secret"]

    async def key(self, role: str) -> dict[str, str]:
        """Authorization headers of a (cached) key of this role."""
        if role == "admin":
            return self.admin
        if role not in self._keys:
            self._keys[role] = await self.new_key(role)
        return auth(self._keys[role])

    async def submit(self, point: Point, **overrides: Any) -> dict:
        return (await self.post("/v1/contracts", contract_body(**overrides), point.headers, 201)).json()

    async def act(self, point: Point, contract_id: str, action: str, body: dict | None = None) -> httpx.Response:
        """certify, reject, withdraw, amend or revoke."""
        return await self.post(f"/v1/contracts/{contract_id}/{action}", body, point.headers, 200)

    async def certified(self, point: Point, certified_at: str = "2025-03-10T10:00:00+08:00", **overrides) -> dict:
        contract = await self.submit(point, **overrides)
        body = {"certified_at": certified_at, "expert_review_ref": "ZJPS-2025-001"}
        return (await self.act(point, contract["id"], "certify", body)).json()

    async def every_kind_of_event(self, point: Point) -> None:
        """At least one event of every registry type."""
        a = (await self.post("/v1/contracts", named_contract_body(), point.headers, 201)).json()["id"]
        await self.act(point, a, "certify", {})
        amendment = {"title": "Licence of a drip irrigation patent", "buyer": {"region": "640205"}}
        await self.act(point, a, "amend", {"reason": "typo in the title", "changes": amendment})
        await self.act(point, a, "revoke", {"reason": "the patent was invalidated"})
        b = (await self.post("/v1/contracts", named_contract_body("640205"), point.headers, 201)).json()["id"]
        await self.act(point, b, "reject", {"reason_code": "incomplete", "reason": "no signature page"})
        c = (await self.post("/v1/contracts", named_contract_body("640302"), point.headers, 201)).json()["id"]
        await self.act(point, c, "withdraw", {"reason": "resubmitting"})

    async def head(self) -> int:
        """The feed's head: the highest committed position."""
        r = await self.client.get(f"{self.base}/v1/events", params={"after": 0, "limit": 1}, headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["head"]

    async def feed(self, after: int = 0) -> list[dict]:
        """Every public event after `after`."""
        events: list[dict] = []
        while True:
            params = {"after": after, "limit": 1000}
            r = await self.client.get(f"{self.base}/v1/events", params=params, headers=self.admin)
            assert r.status_code == 200, r.text
            page = r.json()
            events += page["events"]
            if page["next_after"] == after:
                return events
            after = page["next_after"]

    async def list(self, headers: dict[str, str], **params: Any) -> dict:
        r = await self.client.get(f"{self.base}/v1/contracts", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()


class RegistryEnv(RegistryDriver):
    """The driver of a registry running in-process (see registry_in_process): it can also see its runtime."""

    def __init__(self, client: httpx.AsyncClient, backend: str, url: str) -> None:
        super().__init__(client)
        self.backend = backend
        self.url = url  # the database's

    @property
    def runtime(self):
        return self.client.app.state.runtime  # type: ignore[attr-defined]

    async def index_caught_up(self, position: int | None = None) -> None:
        """Wait until the contract index (list projection) has applied everything up to `position` (by default,
        everything in the log now)."""
        target = position if position is not None else await self.head()

        async def reached() -> bool:
            return self.runtime.index_follower.status.position >= target

        await wait_until(reached, what=f"the contract index to reach position {target}")


class RegistryClient(RegistryDriver):
    """The driver as the partner tests use it: a registry process, and one registration point acting."""

    def __init__(self, http: httpx.AsyncClient, registry: ServiceProcess, admin_key: str | None = None) -> None:
        from tests.partners.conftest import ADMIN_KEY as PARTNERS_ADMIN_KEY

        super().__init__(http, registry.url, admin_key or PARTNERS_ADMIN_KEY)
        self.url = registry.url
        self.acting: Point | None = None

    @property
    def point_key(self) -> dict[str, str]:
        return self.acting.headers if self.acting else {}

    async def setup_point(self, number: str = "01", jurisdiction: str = "6400") -> None:
        self.acting = await self.point(jurisdiction, number)

    async def partner_key(self) -> str:
        return await self.new_key("partner")

    async def call(self, path: str, body: dict | None = None) -> httpx.Response:
        return await self.post(path, body, self.point_key)

    async def submit(self, **kwargs) -> str:  # type: ignore[override]
        return (await self.call("/v1/contracts", named_contract_body(**kwargs))).json()["id"]

    async def certify(self, contract_id: str) -> int:
        response = await self.call(f"/v1/contracts/{contract_id}/certify", {})
        return int(response.headers["TCR-Position"])

    async def every_kind_of_event(self) -> None:  # type: ignore[override]
        await super().every_kind_of_event(self.acting)


class RegistryApi:
    """The driver's steps for synchronous tests: a point of its own (jurisdiction 6400), an admin, and the
    highest TCR-Position any answer carried (what a reader must reach to see everything done so far)."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=url, headers=auth(admin_key), timeout=30)
        number = f"{next(_serial) % 90 + 10:02d}"
        point = self._ok(
            self.admin.post("/v1/points", json={"number": number, "name": "宁夏技术市场登记点", "jurisdiction": "6400"})
        )
        key = self._ok(self.admin.post("/v1/api-keys", json={"role": "point", "point_id": point["id"]}))
        self.point = httpx.Client(base_url=url, headers=auth(key["secret"]), timeout=30)
        self.last_position = 0

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201), (
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
        if "TCR-Position" in response.headers:
            self.last_position = max(self.last_position, int(response.headers["TCR-Position"]))
        return response.json()

    def analyst_key(self) -> str:
        return self.key("analyst")

    def key(self, role: str) -> str:
        return self._ok(self.admin.post("/v1/api-keys", json={"role": role}))["secret"]

    def submit(
        self,
        seller: dict,
        buyer: dict,
        amount: str,
        technology_amount: str,
        category: str = "licence",
        subcategory: str | None = "patent_ordinary",
        signed_on: str = "2025-01-10",
    ) -> str:
        body = contract_body(
            title=f"合同 {next(_serial)}",
            category=category,
            subcategory=subcategory,
            signed_on=signed_on,
            amount=amount,
            technology_amount=technology_amount,
            result_id=None,
            seller=seller,
            buyer=buyer,
        )
        return self._ok(self.point.post("/v1/contracts", json=body))["id"]

    def certify(self, contract_id: str, certified_at: str) -> dict[str, Any]:
        return self._ok(self.point.post(f"/v1/contracts/{contract_id}/certify", json={"certified_at": certified_at}))

    def contract(
        self, seller: dict, buyer: dict, amount: str, technology_amount: str, certified_at: str, **kwargs: Any
    ) -> str:
        contract_id = self.submit(seller, buyer, amount, technology_amount, **kwargs)
        self.certify(contract_id, certified_at)
        return contract_id

    def amend(self, contract_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        body = {"reason": "corrected after audit", "changes": changes}
        return self._ok(self.point.post(f"/v1/contracts/{contract_id}/amend", json=body))

    def revoke(self, contract_id: str) -> dict[str, Any]:
        return self._ok(self.point.post(f"/v1/contracts/{contract_id}/revoke", json={"reason": "forged contract"}))

    def close(self) -> None:
        self.admin.close()
        self.point.close()


def wait_for_position(reporting: httpx.Client, position: int, feed: str = "registry", timeout: float = 20) -> None:
    """Wait (with a deadline) until the reporting service has read `feed` up to `position`."""
    deadline = time.monotonic() + timeout
    while True:
        body = reporting.get("/v1/status").json()
        if body["feeds"][feed]["position"] >= position:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"reporting did not reach {feed} position {position}: {body}")
        time.sleep(0.05)


# --- the registry itself ----------------------------------------------------------------------------------------
async def make_point(
    client: httpx.AsyncClient, jurisdiction: str = "6401", number: str | None = None, admin_key: str = ADMIN_KEY
) -> Point:
    return await RegistryDriver(client, admin_key=admin_key).point(jurisdiction, number or f"{next(_serial) % 100:02d}")


async def make_key(client: httpx.AsyncClient, role: str, admin_key: str = ADMIN_KEY) -> str:
    return await RegistryDriver(client, admin_key=admin_key).new_key(role)


@contextlib.asynccontextmanager
async def registry_in_process(database_url: str, data_dir: Path, **settings) -> AsyncIterator[httpx.AsyncClient]:
    """The registry app with its lifespan running, reached through httpx over ASGI."""
    from tcr_registry.bootstrap import create_app
    from tcr_registry.settings import RegistrySettings

    config = RegistrySettings(
        registry_database_url=database_url,
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        demo=False,
        access_log=False,
        **settings,
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test", timeout=30) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def start_registry(tmp_path: Path, log_dir: Path, app: str = REGISTRY_APP, **env: str) -> ServiceProcess:
    """The registry as a real uvicorn process on SQLite in tmp_path (admin key: the partner tests')."""
    from tests.partners.conftest import ADMIN_KEY as PARTNERS_ADMIN_KEY

    return start_service(
        "registry",
        app,
        {
            "TCR_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
            "TCR_DATA_DIR": str(tmp_path),
            "TCR_ADMIN_KEY": PARTNERS_ADMIN_KEY,
            "TCR_DEMO": "0",
            "TCR_ACCESS_LOG": "0",
            **env,
        },
        log_dir,
    )
