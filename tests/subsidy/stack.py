"""The registry and the subsidy service as real uvicorn processes, and a client that drives them over HTTP."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx

from tests.support import postgres
from tests.support.processes import ServiceProcess, start_service

ADMIN_KEY = "tcr_test_admin_key_for_subsidy_suite"
REGISTRY_APP = "tcr_registry.bootstrap:create_app"
SUBSIDY_APP = "tcr_subsidy.bootstrap:create_app"
_point_numbers = itertools.count(10)


def database_url(backend: str, tmp: Path, name: str) -> tuple[str, bool]:
    """A fresh database URL; True when it is a PostgreSQL database to drop afterwards."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'{name}.db'}", False
    return postgres.create_database(f"tcr_{name}"), True


def start_registry(url: str, tmp: Path, port: int | None = None) -> ServiceProcess:
    return start_service(
        "registry",
        REGISTRY_APP,
        {
            "TCR_REGISTRY_DATABASE_URL": url,
            "TCR_DATA_DIR": str(tmp),
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_DEMO": "0",
            "TCR_ACCESS_LOG": "0",
        },
        tmp / "logs",
        port=port,
    )


def start_subsidy(url: str, tmp: Path, registry_url: str, port: int | None = None, **extra: str) -> ServiceProcess:
    return start_service(
        "subsidy",
        SUBSIDY_APP,
        {
            "TCR_SUBSIDY_DATABASE_URL": url,
            "TCR_DATA_DIR": str(tmp),
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_REGISTRY_URL": registry_url,
            **extra,
        },
        tmp / "logs",
        port=port,
    )


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Point:
    """A registration point of the whole region (jurisdiction 6400), acting through its own API key."""

    registry: httpx.Client
    key: str
    last_position: int = 0

    @classmethod
    def create(cls, registry_url: str) -> Point:
        client = httpx.Client(base_url=registry_url, timeout=30)
        number = f"{next(_point_numbers) % 100:02d}"
        r = client.post(
            "/v1/points",
            json={"number": number, "name": f"Point {number}", "jurisdiction": "6400"},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text
        k = client.post("/v1/api-keys", json={"role": "point", "point_id": r.json()["id"]}, headers=admin_headers())
        assert k.status_code == 201, k.text
        return cls(client, k.json()["secret"])

    def _post(self, path: str, body: dict, expect: int = 200) -> dict:
        r = self.registry.post(path, json=body, headers={"Authorization": f"Bearer {self.key}"})
        assert r.status_code == expect, f"{path}: {r.status_code} {r.text}"
        self.last_position = max(self.last_position, int(r.headers["TCR-Position"]))
        return r.json()

    def submit(self, terms: dict) -> str:
        body = {k: v for k, v in terms.items()}
        for role in ("seller", "buyer", "intermediary"):
            if body.get(role):
                body[role] = {k: v for k, v in body[role].items() if v is not None}
        return self._post("/v1/contracts", body, 201)["id"]

    def certify(self, contract_id: str, at: datetime, technology_amount: str | None = None) -> dict:
        body: dict = {"certified_at": at.isoformat()}
        if technology_amount:
            body["technology_amount"] = technology_amount
        if technology_amount is None:
            contract = self.registry.get(
                f"/v1/contracts/{contract_id}", headers={"Authorization": f"Bearer {self.key}"}
            )
            technology_amount = contract.json()["technology_amount"]
        tech = Decimal(technology_amount)
        if tech >= Decimal("5000000.00"):
            body["expert_review_ref"] = "EXP-2025-001"
        return self._post(f"/v1/contracts/{contract_id}/certify", body)

    def certified(self, terms: dict, at: datetime) -> str:
        contract_id = self.submit(terms)
        self.certify(contract_id, at)
        return contract_id

    def amend(self, contract_id: str, changes: dict, reason: str = "correction") -> dict:
        body: dict = {"reason": reason, "changes": changes}
        tech = changes.get("technology_amount")
        if tech and Decimal(tech) >= Decimal("5000000.00"):
            body["expert_review_ref"] = "EXP-2025-002"
        return self._post(f"/v1/contracts/{contract_id}/amend", body)

    def revoke(self, contract_id: str, reason: str = "found void") -> dict:
        return self._post(f"/v1/contracts/{contract_id}/revoke", {"reason": reason})


class Subsidy:
    def __init__(self, url: str, key: str = ADMIN_KEY) -> None:
        self.client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"})

    def get(self, path: str, **params) -> httpx.Response:
        return self.client.get(path, params={k: v for k, v in params.items() if v is not None})

    def ok(self, path: str, **params) -> dict:
        r = self.get(path, **params)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()

    def awards(self, contract_id: str, at: int) -> dict:
        return self.ok(f"/v1/contracts/{contract_id}/awards", min_position=at)

    def ledger(self, code: str, year: int, at: int) -> dict:
        return self.ok(f"/v1/beneficiaries/{code}/ledger", year=year, min_position=at)

    def wait_position(self, position: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.ok("/v1/status")
            if status["feeds"][0]["position"] >= position or time.monotonic() > deadline:
                return status
            time.sleep(0.1)


def programme(ledger: dict, name: str) -> dict:
    return next(p for p in ledger["programmes"] if p["programme"] == name)


def award_of(body: dict, programme_name: str) -> dict:
    return next(a for a in body["awards"] if a["programme"] == programme_name)
