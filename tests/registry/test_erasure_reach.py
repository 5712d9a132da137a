"""Erasure reaches everything the registry holds of a person (issue 11): events stored in clear before encryption
(written here as the old code wrote them) load with the person's fields erased, in answers, histories and replayed
Idempotency-Key answers, while the feed, and so every award and figure, stays the same. A contract whose individual
was erased can still be amended, as long as the amendment leaves that party as it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import create_engine, text

from tcr_registry.domain.terms import ERASED
from tests.registry.test_personal_data import id_number, individual
from tests.support import postgres
from tests.support.registry import ADMIN, RegistryEnv, contract_body, registry_in_process


@pytest.fixture(params=["sqlite", "postgresql"])
async def registry(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        request.getfixturevalue("postgres_server")
        url = postgres.create_database("tcr_registry_erasure")
    try:
        async with registry_in_process(url, tmp_path) as client:
            yield RegistryEnv(client, request.param, url)
    finally:
        if request.param == "postgresql":
            postgres.drop_database(url)


def written_in_clear(registry: RegistryEnv, point_id: str, body: dict) -> str:
    """A Submitted event as the registry wrote it before personal data was encrypted: the library's own mapper,
    names and identity numbers in clear."""
    from tcr_registry.adapters.persistence.event_store import Registry
    from tcr_registry.domain.contract import Contract
    from tcr_registry.domain.terms import Party, Terms

    record = {**body, "amount": body["amount"], "signed_on": body["signed_on"]}
    for role in ("seller", "buyer", "intermediary"):
        if record.get(role):
            record[role] = Party(**{"credit_code": None, "region": None, **record[role]}).record()
    terms = Terms.from_record(record)
    contract = Contract._create(
        Contract.Submitted, point_id=point_id, terms=terms.to_record(), submitted_at=datetime.now(UTC).isoformat()
    )
    old = Registry(registry.runtime.database.eventsourcing_env())  # no personal keys: what the old code stored
    try:
        old.save(contract)
    finally:
        old.close()
    return str(contract.id)


def stored_bytes(registry: RegistryEnv, contract_id: str) -> list[str]:
    table = registry.runtime.app.recorder.events_table_name
    engine = create_engine(registry.runtime.database.sync_url)
    try:
        with engine.connect() as conn:
            statement = text(f"SELECT state FROM {table} WHERE originator_id = :id ORDER BY originator_version")
            ident = UUID(contract_id) if registry.backend == "postgresql" else UUID(contract_id).hex
            rows = conn.execute(statement, {"id": ident}).scalars().all()
    finally:
        engine.dispose()
    return [bytes(state).decode() for state in rows]


async def seen(registry, point, contract_id) -> dict:
    response = await registry.client.get(f"/v1/contracts/{contract_id}", headers=point.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def history(registry, point, contract_id) -> list[dict]:
    response = await registry.client.get(f"/v1/contracts/{contract_id}/history", headers=point.headers)
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def test_erasure_reaches_events_stored_in_clear_and_leaves_the_feed_as_it_was(registry):
    point = await registry.point("6401")
    number, other, retried_number = id_number(), id_number(), id_number()
    legacy = await asyncio.to_thread(
        written_in_clear, registry, point.id, contract_body(seller=individual("张仲景", number))
    )
    kept = await asyncio.to_thread(
        written_in_clear, registry, point.id, contract_body(seller=individual("葛洪", other))
    )
    retried = await asyncio.to_thread(
        written_in_clear, registry, point.id, contract_body(buyer=individual("陶弘景", retried_number))
    )
    assert any("张仲景" in state and number in state for state in stored_bytes(registry, legacy))  # as the old code
    before = await seen(registry, point, legacy)
    assert (before["seller"]["name"], before["seller"]["id_number"]) == ("张仲景", number)

    # a write by today's code on the third contract, with an Idempotency-Key: its answer names the person
    retry_key = {**point.headers, "Idempotency-Key": "erasure-retry-1"}
    amend = {"reason": "typo", "changes": {"title": "一种枸杞多糖提取技术许可合同（修订）"}}
    first = await registry.client.post(f"/v1/contracts/{retried}/amend", json=amend, headers=retry_key)
    assert first.status_code == 200 and first.json()["buyer"]["name"] == "陶弘景"
    await registry.index_caught_up()
    feed_before = await registry.feed()

    erased = await registry.client.delete(f"/v1/individuals/{number}", headers=ADMIN)
    assert (erased.status_code, erased.headers["TCR-Erasure"]) == (204, "erased")  # known only from clear text
    again = await registry.client.delete(f"/v1/individuals/{number.lower()}", headers=ADMIN)
    assert (again.status_code, again.headers["TCR-Erasure"]) == (204, "already erased")
    assert (await registry.client.delete(f"/v1/individuals/{id_number()}", headers=ADMIN)).status_code == 404
    assert (await registry.client.delete(f"/v1/individuals/{retried_number}", headers=ADMIN)).status_code == 204

    after = await seen(registry, point, legacy)
    assert (after["seller"]["name"], after["seller"]["id_number"]) == (ERASED, ERASED)
    assert {**after, "seller": before["seller"]} == before  # number, amounts, status, regions: unchanged
    assert [e["data"]["terms"]["seller"]["name"] for e in await history(registry, point, legacy)] == [ERASED]
    replay = await registry.client.post(f"/v1/contracts/{retried}/amend", json=amend, headers=retry_key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (replay.json()["buyer"]["name"], replay.json()["buyer"]["id_number"]) == (ERASED, ERASED)
    assert {**replay.json(), "buyer": first.json()["buyer"]} == first.json()
    events = await history(registry, point, retried)
    assert [(e["data"]["terms"]["buyer"]["name"]) for e in events] == [ERASED, ERASED]  # clear text and sealed
    assert events[1]["data"]["previous_terms"]["buyer"]["id_number"] == ERASED
    still = await seen(registry, point, kept)
    assert (still["seller"]["name"], still["seller"]["id_number"]) == ("葛洪", other)
    assert await registry.feed() == feed_before  # the feed never carried them: every award and figure stands

    # What erasure cannot change: the legacy event's own bytes (events are never rewritten; docs/security.md)
    assert any(number in state for state in stored_bytes(registry, legacy))


async def test_a_contract_whose_individual_was_erased_can_still_be_amended(registry):
    point = await registry.point("6401")
    number = id_number()
    body = contract_body(seller=individual("孙思邈", number))
    sealed = (await registry.client.post("/v1/contracts", json=body, headers=point.headers)).json()["id"]
    await registry.act(point, sealed, "certify", {"expert_review_ref": "R-9"})
    legacy_number = id_number()
    legacy = await asyncio.to_thread(
        written_in_clear, registry, point.id, contract_body(buyer=individual("李时珍", legacy_number))
    )
    for erased_number in (number, legacy_number):
        assert (await registry.client.delete(f"/v1/individuals/{erased_number}", headers=ADMIN)).status_code == 204

    changes = {"title": "一种枸杞多糖提取技术许可合同（补正）", "amount": "9100000.00"}
    for contract_id, role in ((sealed, "seller"), (legacy, "buyer")):
        before = await seen(registry, point, contract_id)
        amended = await registry.act(point, contract_id, "amend", {"reason": "补正", "changes": changes})
        body = amended.json()
        assert (body["title"], body["amount"]) == (changes["title"], changes["amount"])
        assert body[role] == before[role] and body[role]["name"] == ERASED
        assert {k: v for k, v in body.items() if k not in ("title", "amount", "version", "updated_at")} == {
            k: v for k, v in before.items() if k not in ("title", "amount", "version", "updated_at")
        }
        last = (await history(registry, point, contract_id))[-1]["data"]
        assert last["changed_fields"] == ["title", "amount"]
        assert last["terms"][role]["id_number"] == ERASED

        # the erased party itself cannot be changed: nobody can say who it is any more
        refused = await registry.client.post(
            f"/v1/contracts/{contract_id}/amend",
            json={"reason": "r", "changes": {role: {"name": "某人"}}},
            headers=point.headers,
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == f"changes.{role}"

    # a new contract may not bring the marker in as an identity number
    smuggled = contract_body(seller=individual(ERASED, ERASED))
    assert (await registry.client.post("/v1/contracts", json=smuggled, headers=point.headers)).status_code == 422
