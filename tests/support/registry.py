"""The registry, in-process (httpx over ASGI, lifespan started) or as a real uvicorn process, plus the
steps every scenario needs: a point, its key, a valid contract body."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tcr_shared.language.identifiers import credit_code_with_check_digit

ADMIN_KEY = "test-admin-key"
REGISTRY_APP = "tcr_registry.bootstrap:create_app"
_serial = itertools.count(1)


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


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Point:
    id: str
    key: str
    jurisdiction: str
    number: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)


async def make_point(
    client: httpx.AsyncClient, jurisdiction: str = "6401", number: str | None = None, admin_key: str = ADMIN_KEY
) -> Point:
    number = number or f"{next(_serial) % 100:02d}"
    r = await client.post(
        "/v1/points",
        json={"number": number, "name": f"登记点 {jurisdiction}-{number}", "jurisdiction": jurisdiction},
        headers=auth(admin_key),
    )
    r.raise_for_status()
    point_id = r.json()["id"]
    r = await client.post("/v1/api-keys", json={"role": "point", "point_id": point_id}, headers=auth(admin_key))
    r.raise_for_status()
    return Point(point_id, r.json()["secret"], jurisdiction, number)


async def make_key(client: httpx.AsyncClient, role: str, admin_key: str = ADMIN_KEY) -> str:
    r = await client.post("/v1/api-keys", json={"role": role}, headers=auth(admin_key))
    r.raise_for_status()
    return r.json()["secret"]


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
