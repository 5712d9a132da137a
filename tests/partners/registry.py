"""The real registry as a process, and realistic contract histories made through its REST API."""

from __future__ import annotations

import httpx

from tests.partners.conftest import ADMIN, ADMIN_KEY
from tests.support.processes import ServiceProcess, start_service

REGISTRY_APP = "tcr_registry.bootstrap:create_app"
REGISTRY_WITH_WEBHOOKS = "tests.partners.registry_webhooks_app:create_app"


def start_registry(tmp_path, log_dir, app: str = REGISTRY_APP, **env: str) -> ServiceProcess:
    return start_service(
        "registry",
        app,
        {
            "TCR_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
            "TCR_DATA_DIR": str(tmp_path),
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_DEMO": "0",
            "TCR_ACCESS_LOG": "0",
            **env,
        },
        log_dir,
    )


def party(kind: str, region: str, code: str, name: str) -> dict:
    return {"name": name, "kind": kind, "credit_code": code, "region": region}


def contract_body(seller_region: str = "640104", buyer_region: str = "640181", amount: str = "900000.00") -> dict:
    return {
        "title": "Licence of a patent for drip irrigation control",
        "category": "licence",
        "subcategory": "patent_ordinary",
        "signed_on": "2025-03-01",
        "amount": amount,
        "technology_amount": amount,
        "consideration": "money",
        "result_id": "ZL202110123456.7",
        "seller": party("university", seller_region, "126400004550001239", "Ningxia University"),
        "buyer": party("enterprise", buyer_region, "91640181MA7F3K2Q1Q", "Lingwu Water Saving Co."),
        "intermediary": None,
    }


class RegistryClient:
    def __init__(self, http: httpx.AsyncClient, registry: ServiceProcess) -> None:
        self.http = http
        self.url = registry.url
        self.point_key: dict[str, str] = {}

    async def setup_point(self, number: str = "01", jurisdiction: str = "6400") -> None:
        point = await self.http.post(
            f"{self.url}/v1/points",
            headers=ADMIN,
            json={"number": number, "name": "Regional market", "jurisdiction": jurisdiction},
        )
        assert point.status_code == 201, point.text
        key = await self.http.post(
            f"{self.url}/v1/api-keys", headers=ADMIN, json={"role": "point", "point_id": point.json()["id"]}
        )
        assert key.status_code == 201, key.text
        self.point_key = {"Authorization": f"Bearer {key.json()['secret']}"}

    async def partner_key(self) -> str:
        key = await self.http.post(f"{self.url}/v1/api-keys", headers=ADMIN, json={"role": "partner"})
        assert key.status_code == 201, key.text
        return key.json()["secret"]

    async def call(self, path: str, body: dict | None = None) -> httpx.Response:
        response = await self.http.post(f"{self.url}{path}", json=body, headers=self.point_key)
        assert response.status_code in (200, 201), (path, response.text)
        return response

    async def submit(self, **kwargs) -> str:
        return (await self.call("/v1/contracts", contract_body(**kwargs))).json()["id"]

    async def certify(self, contract_id: str) -> int:
        response = await self.call(f"/v1/contracts/{contract_id}/certify", {})
        return int(response.headers["TCR-Position"])

    async def every_kind_of_event(self) -> None:
        """At least one event of every registry type."""
        a = await self.submit()
        await self.certify(a)
        await self.call(
            f"/v1/contracts/{a}/amend",
            {
                "reason": "typo in the title",
                "changes": {"title": "Licence of a drip irrigation patent", "buyer": {"region": "640205"}},
            },
        )
        await self.call(f"/v1/contracts/{a}/revoke", {"reason": "the patent was invalidated"})
        b = await self.submit(seller_region="640205")
        await self.call(f"/v1/contracts/{b}/reject", {"reason_code": "incomplete", "reason": "no signature page"})
        c = await self.submit(seller_region="640302")
        await self.call(f"/v1/contracts/{c}/withdraw", {"reason": "resubmitting"})
