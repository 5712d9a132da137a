"""Driving the real registry over HTTP, as a registration point and an admin would."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from tcr_shared.language.identifiers import credit_code_with_check_digit

_orgs = itertools.count(1)


def credit_code(region: str) -> str:
    """A fresh enterprise credit code registered in `region` (valid check digit)."""
    n = next(_orgs)
    return credit_code_with_check_digit(f"91{region}MA{n:07d}")


def org(region: str, kind: str = "enterprise") -> dict[str, Any]:
    prefix = "91" if kind == "enterprise" else "12"
    n = next(_orgs)
    code = credit_code_with_check_digit(f"{prefix}{region}MA{n:07d}")
    return {"name": f"{kind} {n} ({region})", "kind": kind, "credit_code": code, "region": region}


class RegistryApi:
    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
        point = self._ok(
            self.admin.post(
                "/v1/points",
                json={"number": f"{next(_orgs) % 90 + 10:02d}", "name": "宁夏技术市场登记点", "jurisdiction": "6400"},
            )
        )
        key = self._ok(self.admin.post("/v1/api-keys", json={"role": "point", "point_id": point["id"]}))
        self.point = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key['secret']}"}, timeout=30)
        self.last_position = 0

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201), (
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
        if "TCR-Position" in response.headers:
            self.last_position = max(self.last_position, int(response.headers["TCR-Position"]))
        return response.json()

    def analyst_key(self) -> str:
        return self._ok(self.admin.post("/v1/api-keys", json={"role": "analyst"}))["secret"]

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
        body = {
            "title": f"合同 {next(_orgs)}",
            "category": category,
            "subcategory": subcategory,
            "signed_on": signed_on,
            "amount": amount,
            "technology_amount": technology_amount,
            "consideration": "money",
            "result_id": None,
            "seller": seller,
            "buyer": buyer,
            "intermediary": None,
        }
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
        return self._ok(
            self.point.post(
                f"/v1/contracts/{contract_id}/amend", json={"reason": "corrected after audit", "changes": changes}
            )
        )

    def revoke(self, contract_id: str) -> dict[str, Any]:
        return self._ok(self.point.post(f"/v1/contracts/{contract_id}/revoke", json={"reason": "forged contract"}))

    def close(self) -> None:
        self.admin.close()
        self.point.close()


def wait_for_position(reporting: httpx.Client, position: int, feed: str = "registry", timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        body = reporting.get("/v1/status").json()
        if body["feeds"][feed]["position"] >= position:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"reporting did not reach {feed} position {position}: {body}")
        time.sleep(0.05)
