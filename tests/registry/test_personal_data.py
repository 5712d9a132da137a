"""Personal data at rest: individuals' names and identity numbers are encrypted inside the stored events with a key
per individual; erasing a person (PIPL art. 47) destroys that key, and everything else stays as it was."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import create_engine, text
from stdnum.cn import ric

from tcr_shared.platform.database import Database
from tests.support.registry import ADMIN, contract_body, party

ERASED = "[已删除 erased]"
_serial = itertools.count(1)


def id_number() -> str:
    first17 = f"11010519491231{next(_serial):03d}"
    return first17 + ric.calc_check_digit(first17 + "0")  # the function ignores the last character


def individual(name: str, number: str) -> dict:
    body = party("individual", "640104", name=name)
    body.pop("credit_code")
    return {**body, "id_number": number}


def stored_states(registry) -> str:
    table = "registry_events" if registry.backend == "postgresql" else "stored_events"
    engine = create_engine(registry.runtime.database.sync_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT state FROM {table}")).scalars().all()
    finally:
        engine.dispose()
    return "\n".join(bytes(state).decode() for state in rows)


@pytest.fixture(autouse=True)
def _loopback_webhooks(monkeypatch):
    """Subscriptions here point at 127.0.0.1 (nothing is delivered there): allow loopback targets, as local
    development does; production refuses them (TCR_WEBHOOK_ALLOW_LOOPBACK is off by default)."""
    monkeypatch.setenv("TCR_WEBHOOK_ALLOW_LOOPBACK", "1")


async def test_names_and_identity_numbers_are_encrypted_in_the_stored_events(registry):
    point = await registry.point("6401")
    number = id_number()
    body = contract_body(seller=individual("李时珍", number))
    contract = (await registry.client.post("/v1/contracts", json=body, headers=point.headers)).json()
    await registry.act(point, contract["id"], "certify", {"expert_review_ref": "R-1"})
    await registry.act(point, contract["id"], "amend", {"reason": "r", "changes": {"seller": {"name": "李时珍二"}}})

    states = stored_states(registry)
    for clear in ("李时珍", number):
        assert clear not in states
    assert "pii:v1:" in states
    assert body["buyer"]["name"] in states  # organisations are not personal data: they stay readable

    seen = (await registry.client.get(f"/v1/contracts/{contract['id']}", headers=point.headers)).json()
    assert (seen["seller"]["name"], seen["seller"]["id_number"]) == ("李时珍二", number)
    history = (await registry.client.get(f"/v1/contracts/{contract['id']}/history", headers=point.headers)).json()
    assert history["events"][2]["data"]["previous_terms"]["seller"]["name"] == "李时珍"


async def test_erasure_destroys_the_person_and_nothing_else(registry):
    point = await registry.point("6401")
    number, other = id_number(), id_number()
    erased_id = (
        await registry.client.post(
            "/v1/contracts", json=contract_body(seller=individual("华佗", number)), headers=point.headers
        )
    ).json()["id"]
    await registry.act(point, erased_id, "certify", {"expert_review_ref": "R-2"})
    kept_id = (
        await registry.client.post(
            "/v1/contracts", json=contract_body(seller=individual("扁鹊", other)), headers=point.headers
        )
    ).json()["id"]
    before = (await registry.client.get(f"/v1/contracts/{erased_id}", headers=point.headers)).json()
    feed_before = await registry.feed()

    analyst = await registry.key("analyst")
    assert (await registry.client.delete(f"/v1/individuals/{number}", headers=point.headers)).status_code == 403
    assert (await registry.client.delete(f"/v1/individuals/{number}", headers=analyst)).status_code == 403
    erased = await registry.client.delete(f"/v1/individuals/{number}", headers=ADMIN)
    assert erased.status_code == 204
    assert erased.headers["TCR-Erasure"] == "erased"
    again = await registry.client.delete(f"/v1/individuals/{number}", headers=ADMIN)
    assert (again.status_code, again.headers["TCR-Erasure"]) == (204, "already erased")
    unknown = await registry.client.delete(f"/v1/individuals/{id_number()}", headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")

    after = (await registry.client.get(f"/v1/contracts/{erased_id}", headers=point.headers)).json()
    assert (after["seller"]["name"], after["seller"]["id_number"]) == (ERASED, ERASED)
    assert {**after, "seller": before["seller"]} == before  # number, amounts, status, regions: unchanged
    history = (await registry.client.get(f"/v1/contracts/{erased_id}/history", headers=point.headers)).json()
    assert [e["data"]["terms"]["seller"]["name"] for e in history["events"]] == [ERASED, ERASED]
    assert await registry.feed() == feed_before  # the feed never carried them: every award and figure stands
    kept = (await registry.client.get(f"/v1/contracts/{kept_id}", headers=point.headers)).json()
    assert (kept["seller"]["name"], kept["seller"]["id_number"]) == ("扁鹊", other)

    # The writer's own memory forgot the person too: a later write answers with the erased fields.
    revoked = await registry.act(point, erased_id, "revoke", {"reason": "erasure test"})
    assert revoked.json()["seller"]["name"] == ERASED

    trail = (await registry.client.get("/v1/audit", params={"action": "individual.erase"}, headers=ADMIN)).json()
    entries = [e for e in trail["entries"] if e["outcome"] == 204]
    assert len(entries) >= 2
    assert all(e["target"].startswith("subject:") and number not in e["target"] for e in entries)
    assert all(number not in str(e) for e in trail["entries"])


async def test_a_person_erased_then_registered_again_gets_a_new_key(registry):
    point = await registry.point("6401")
    number = id_number()
    first = (
        await registry.client.post(
            "/v1/contracts", json=contract_body(seller=individual("孙思邈", number)), headers=point.headers
        )
    ).json()["id"]
    assert (await registry.client.delete(f"/v1/individuals/{number}", headers=ADMIN)).status_code == 204
    second = (
        await registry.client.post(
            "/v1/contracts", json=contract_body(seller=individual("孙思邈", number)), headers=point.headers
        )
    ).json()["id"]
    old = (await registry.client.get(f"/v1/contracts/{first}", headers=point.headers)).json()
    new = (await registry.client.get(f"/v1/contracts/{second}", headers=point.headers)).json()
    assert old["seller"]["name"] == ERASED
    assert new["seller"]["name"] == "孙思邈"


def test_events_stored_in_clear_before_encryption_still_load(tmp_path):
    """Events written before this change carry names in clear: they load unchanged."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from tcr_registry.adapters.persistence import migrate
    from tcr_registry.adapters.persistence.event_store import Registry
    from tcr_registry.adapters.persistence.personal_data import PersonalKeys
    from tcr_registry.domain.contract import Contract
    from tcr_registry.domain.terms import Party, Terms
    from tcr_shared.platform.database import Database
    from tcr_shared.platform.sealing import MasterKey

    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate.upgrade(database)
    number = id_number()
    terms = Terms(
        title="t",
        category="licence",
        subcategory="patent_ordinary",
        signed_on=datetime(2025, 1, 1).date(),
        amount=Decimal("10.00"),
        technology_amount=Decimal("10.00"),
        consideration="money",
        seller=Party(name="张仲景", kind="individual", region="640104", id_number=number),
        buyer=Party(name="B", kind="enterprise", region="640104", credit_code="x"),
    )
    contract = Contract._create(
        Contract.Submitted, point_id="p", terms=terms.to_record(), submitted_at=datetime.now(UTC).isoformat()
    )
    plain = Registry(database.eventsourcing_env())  # no personal keys: stored as before
    plain.save(contract)
    plain.close()
    keys = PersonalKeys.for_database(database, MasterKey(b"k" * 32, "test"))
    app = Registry(database.eventsourcing_env(), keys)
    try:
        loaded = app.repository.get(contract.id)
        assert (loaded.terms.seller.name, loaded.terms.seller.id_number) == ("张仲景", number)
    finally:
        app.close()
        keys.close()


async def test_webhook_signing_secrets_are_sealed_at_rest(database_url, tmp_path):
    from tcr_shared.platform.sealing import is_sealed, unseal
    from tests.support.registry import RegistryEnv, registry_in_process

    async with registry_in_process(database_url, tmp_path) as client:  # built after the loopback fixture
        registry = RegistryEnv(client, "", database_url)
        partner = await registry.key("partner")
        body = {"url": "http://127.0.0.1:9/hooks", "start": "now"}  # loopback: allowed here by the fixture above
        created = await registry.client.post("/v1/subscriptions", json=body, headers=partner)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    engine = create_engine(Database(database_url).sync_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": created.json()["id"]}
            ).scalar_one()
    finally:
        engine.dispose()
    assert secret not in stored
    assert is_sealed(stored)
    assert unseal(stored) == secret


async def test_master_key_rotation_keeps_everything_readable(database_url, tmp_path):
    import base64
    import os

    from tcr_registry.adapters.persistence.key_rotation import rotate
    from tcr_shared.platform.sealing import MasterKey, unseal
    from tests.support.registry import RegistryEnv, registry_in_process

    old, new = (base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2))
    number = id_number()
    receipt = {**ADMIN, "Idempotency-Key": "rotation-key"}
    async with registry_in_process(database_url, tmp_path, master_key=old) as client:
        registry = RegistryEnv(client, "", database_url)
        point = await registry.point("6401")
        body = contract_body(seller=individual("葛洪", number))
        contract_id = (await client.post("/v1/contracts", json=body, headers=point.headers)).json()["id"]
        issued = await client.post("/v1/api-keys", json={"role": "analyst"}, headers=receipt)
        partner = await registry.key("partner")
        hook = {"url": "http://127.0.0.1:9/hooks", "start": "now"}
        webhook = (await client.post("/v1/subscriptions", json=hook, headers=partner)).json()
        sync_url = registry.runtime.database.sync_url

    rotating = MasterKey.from_environment({"TCR_MASTER_KEY": new, "TCR_PREVIOUS_MASTER_KEY": old})
    engine = create_engine(sync_url)
    try:
        rotated = {done.table: done.resealed for done in rotate(engine, rotating)}
        assert rotated["personal_keys"] >= 2 and rotated["idempotency_records"] == 1
        assert rotated["webhook_subscriptions"] == 1
        again = {done.table: done.resealed for done in rotate(engine, rotating)}
        assert set(again.values()) == {0}  # idempotent
    finally:
        engine.dispose()

    async with registry_in_process(database_url, tmp_path, master_key=new) as client:  # the old key is gone
        seen = (await client.get(f"/v1/contracts/{contract_id}", headers=point.headers)).json()
        assert (seen["seller"]["name"], seen["seller"]["id_number"]) == ("葛洪", number)
        replayed = await client.post("/v1/api-keys", json={"role": "analyst"}, headers=receipt)
        assert replayed.json() == issued.json()
        engine = create_engine(sync_url)
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": webhook["id"]}
            ).scalar_one()
        engine.dispose()
        assert unseal(stored) == webhook["secret"]


def test_without_a_master_key_a_development_key_is_kept_in_the_data_directory(tmp_path, caplog):
    import stat

    import pytest

    from tcr_shared.platform.sealing import MasterKey, SealingError

    first = MasterKey.from_environment({"TCR_DATA_DIR": str(tmp_path)})
    assert "TCR_MASTER_KEY is not set" in caplog.text
    path = tmp_path / "dev-master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert MasterKey.from_environment({"TCR_DATA_DIR": str(tmp_path)}).key == first.key  # kept, not regenerated
    chosen = MasterKey.from_environment({"TCR_MASTER_KEY": "dGNyLXRlc3RzLW9ubHktbWFzdGVyLWtleS0zMmJ5dGU="})
    assert chosen.source == "environment" and chosen.key != first.key
    with pytest.raises(SealingError):
        chosen.open(first.seal("secret"))
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey.from_environment({"TCR_MASTER_KEY": "c2hvcnQ="})
