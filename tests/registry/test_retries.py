"""Safe retries: every write with an Idempotency-Key answers a retry with the first answer (same status, body,
ETag and TCR-Position), also after the process died between the commit and the answer; the receipt is stored in
the write's own transaction and holds no personal data."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from tcr_registry.adapters.persistence.models import idempotency_records
from tests.support.processes import start_service
from tests.support.registry import ADMIN, ADMIN_KEY, REGISTRY_APP, auth, contract_body, party

REPLAYED = ("etag", "tcr-position", "location")


def individual(region: str = "640104") -> dict:
    body = party("individual", region, name="张三丰")
    body.pop("credit_code")
    return {**body, "id_number": "11010519491231002X"}


def same_answer(first: httpx.Response, again: httpx.Response) -> None:
    assert again.status_code == first.status_code, again.text
    assert again.json() == first.json() if first.status_code != 204 else again.content == b""
    for header in REPLAYED:
        assert again.headers.get(header) == first.headers.get(header), header
    assert again.headers.get("Idempotent-Replayed") == "true"


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"retry-{uuid.uuid4()}"}


async def test_every_contract_write_replays_its_first_answer(registry):
    point = await registry.point("6401")
    h = point.headers

    async def twice(path: str, body: dict | None) -> httpx.Response:
        headers = {**h, **key()}
        first = await registry.client.post(path, json=body, headers=headers)
        assert first.status_code in (200, 201), first.text
        again = await registry.client.post(path, json=body, headers=headers)
        same_answer(first, again)
        return first

    submitted = (await twice("/v1/contracts", contract_body(seller=individual()))).json()
    cid = submitted["id"]
    certified = await twice(f"/v1/contracts/{cid}/certify", {"expert_review_ref": "ZJPS-1"})
    assert certified.json()["registration_number"]
    amend = {"reason": "typo", "changes": {"title": "一种枸杞多糖提取技术许可合同（修订）"}}
    amended = await twice(f"/v1/contracts/{cid}/amend", amend)
    await twice(f"/v1/contracts/{cid}/revoke", {"reason": "forged"})
    other = (await registry.submit(point))["id"]
    await twice(f"/v1/contracts/{other}/reject", {"reason_code": "incomplete", "reason": "no signature page"})
    third = (await registry.submit(point))["id"]
    await twice(f"/v1/contracts/{third}/withdraw", {"reason": "resubmitting"})

    # A replay shows the contract as the first answer did, not as it is now (it was revoked since).
    again = await registry.client.post(f"/v1/contracts/{cid}/amend", json=amend, headers={**h, **key()})
    assert again.status_code == 409
    history = (await registry.client.get(f"/v1/contracts/{cid}/history", headers=h)).json()["events"]
    assert [e["type"].split(".")[-2] for e in history] == ["submitted", "certified", "amended", "revoked"]
    assert amended.json()["status"] == "certified"


async def test_a_key_reused_with_another_body_is_refused(registry):
    point = await registry.point("6401")
    cid = (await registry.submit(point))["id"]
    headers = {**point.headers, **key()}
    first = await registry.client.post(
        f"/v1/contracts/{cid}/reject", json={"reason_code": "other", "reason": "a"}, headers=headers
    )
    assert first.status_code == 200
    other = await registry.client.post(
        f"/v1/contracts/{cid}/reject", json={"reason_code": "other", "reason": "b"}, headers=headers
    )
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_admin_writes_replay_their_first_answer(registry):
    headers = {**ADMIN, **key()}
    body = {"number": "77", "name": "登记点 重试", "jurisdiction": "6402"}
    first = await registry.client.post("/v1/points", json=body, headers=headers)
    assert first.status_code == 201
    same_answer(first, await registry.client.post("/v1/points", json=body, headers=headers))

    headers = {**ADMIN, **key()}
    body = {"role": "point", "point_id": first.json()["id"]}
    issued = await registry.client.post("/v1/api-keys", json=body, headers=headers)
    assert issued.status_code == 201
    same_answer(issued, await registry.client.post("/v1/api-keys", json=body, headers=headers))
    points = [
        p for p in (await registry.client.get("/v1/points", headers=ADMIN)).json()["points"] if p["number"] == "77"
    ]
    assert len(points) == 1

    headers = {**ADMIN, **key()}
    revoked = await registry.client.delete(f"/v1/api-keys/{issued.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    same_answer(revoked, await registry.client.delete(f"/v1/api-keys/{issued.json()['id']}", headers=headers))
    unkeyed = await registry.client.delete(f"/v1/api-keys/{issued.json()['id']}", headers=ADMIN)
    assert unkeyed.status_code == 404


async def test_receipts_keep_no_personal_data_in_clear(registry):
    point = await registry.point("6401")
    headers = {**point.headers, **key()}
    body = contract_body(seller=individual())
    assert (await registry.client.post("/v1/contracts", json=body, headers=headers)).status_code == 201
    issued = await registry.client.post("/v1/api-keys", json={"role": "analyst"}, headers={**ADMIN, **key()})
    engine = create_engine(registry.runtime.database.sync_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(idempotency_records)).mappings().all()
    finally:
        engine.dispose()
    stored = json.dumps([{k: str(v) for k, v in row.items()} for row in rows], ensure_ascii=False)
    assert rows
    for secret in ("张三丰", "11010519491231002X", body["buyer"]["name"], issued.json()["secret"]):
        assert secret not in stored


# --- a crash between the commit and the answer --------------------------------------------------------------------
WRITES = ("submit", "certify", "reject", "withdraw", "amend", "revoke", "create_point", "issue_key", "revoke_key")


# Each crash costs a process start (~10 s on a loaded 2-core machine): every write on SQLite; on PostgreSQL the
# writes whose receipts take each path there (the event store's recorder, an admin's SQL transaction).
CRASHED = {"sqlite": WRITES, "postgresql": ("certify", "amend", "issue_key")}


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_database(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'registry.db'}"
    return "postgresql", request.getfixturevalue("make_pg_database")()


def test_a_retry_after_a_crash_between_commit_and_answer_gets_the_original_answer(crash_database, tmp_path):
    backend, url = crash_database
    crashed = CRASHED[backend]
    env = {
        "TCR_REGISTRY_DATABASE_URL": url,
        "TCR_DATA_DIR": str(tmp_path),
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "TCR_DEMO": "0",
    }
    log_dir = tmp_path / "logs"
    registry = start_service("registry", REGISTRY_APP, env, log_dir)
    try:
        admin = httpx.Client(base_url=registry.url, headers=ADMIN, timeout=30)
        point = admin.post("/v1/points", json={"number": "01", "name": "登记点", "jurisdiction": "6401"}).json()
        point_key = admin.post("/v1/api-keys", json={"role": "point", "point_id": point["id"]}).json()
        client = httpx.Client(base_url=registry.url, headers=auth(point_key["secret"]), timeout=30)
        ids = [client.post("/v1/contracts", json=contract_body()).json()["id"] for _ in range(5)]
        for cid in ids[3:]:
            assert client.post(f"/v1/contracts/{cid}/certify", json={"expert_review_ref": "R"}).status_code == 200
        spare = admin.post("/v1/api-keys", json={"role": "analyst"}).json()["id"]
    finally:
        registry.stop()

    requests = {
        "submit": ("POST", "/v1/contracts", contract_body(seller=individual()), "point"),
        "certify": ("POST", f"/v1/contracts/{ids[0]}/certify", {"expert_review_ref": "R"}, "point"),
        "reject": ("POST", f"/v1/contracts/{ids[1]}/reject", {"reason_code": "other", "reason": "r"}, "point"),
        "withdraw": ("POST", f"/v1/contracts/{ids[2]}/withdraw", {"reason": "w"}, "point"),
        "amend": ("POST", f"/v1/contracts/{ids[3]}/amend", {"reason": "a", "changes": {"title": "新标题"}}, "point"),
        "revoke": ("POST", f"/v1/contracts/{ids[4]}/revoke", {"reason": "v"}, "point"),
        "create_point": ("POST", "/v1/points", {"number": "02", "name": "第二", "jurisdiction": "6401"}, "admin"),
        "issue_key": ("POST", "/v1/api-keys", {"role": "partner"}, "admin"),
        "revoke_key": ("DELETE", f"/v1/api-keys/{spare}", None, "admin"),
    }
    keys = {action: f"crash-{action}" for action in WRITES}
    headers = {"point": auth(point_key["secret"]), "admin": ADMIN}

    def send(url: str, action: str) -> httpx.Response:
        method, path, body, who = requests[action]
        return httpx.request(
            method, url + path, json=body, headers={**headers[who], "Idempotency-Key": keys[action]}, timeout=30
        )

    # Each write kills its process right after the commit: the client gets no answer at all.
    faulty_env = {**env, "TCR_FAULT_AFTER_COMMIT": ",".join(WRITES)}
    for action in crashed:
        faulty = start_service("registry", REGISTRY_APP, faulty_env, log_dir)
        with pytest.raises(httpx.TransportError):
            send(faulty.url, action)
        assert faulty.process.wait(timeout=30) == 137

    registry = start_service("registry", REGISTRY_APP, env, log_dir)
    try:
        for action in crashed:
            answer = send(registry.url, action)
            expected = {"submit": 201, "create_point": 201, "issue_key": 201, "revoke_key": 204}.get(action, 200)
            assert answer.status_code == expected, (action, answer.text)
            assert answer.headers["Idempotent-Replayed"] == "true", action
        contract_writes = [a for a in ("certify", "reject", "withdraw", "amend", "revoke") if a in crashed]
        contracts = {action: send(registry.url, action) for action in contract_writes}
        point_client = httpx.Client(base_url=registry.url, headers=headers["point"], timeout=30)
        for action, answer in contracts.items():
            contract_path = requests[action][1].rsplit("/", 1)[0]
            now = point_client.get(contract_path)
            assert now.status_code == 200
            assert answer.headers["ETag"] == now.headers["ETag"], action  # the write was the contract's last
            assert answer.json() == now.json(), action
            assert int(answer.headers["TCR-Position"]) > 0
            history = point_client.get(contract_path + "/history").json()["events"]
            done = [e for e in history if e["type"].split(".")[-2] == _past(action)]
            assert len(done) == 1, (action, history)  # committed once, not twice
        if "submit" in crashed:
            submitted = send(registry.url, "submit")
            assert submitted.status_code == 201
            assert submitted.json()["seller"]["name"] == "张三丰"
        if "create_point" in crashed:
            points = httpx.get(registry.url + "/v1/points", headers=ADMIN).json()["points"]
            assert sorted(p["number"] for p in points) == ["01", "02"]
        if "issue_key" in crashed:  # the replayed secret is the one that was stored (it works)
            secret = send(registry.url, "issue_key").json()["secret"]
            assert httpx.get(registry.url + "/v1/whoami", headers=auth(secret)).json()["role"] == "partner"
    finally:
        registry.stop()


def _past(action: str) -> str:
    return {"certify": "certified", "reject": "rejected", "withdraw": "withdrawn", "amend": "amended"}.get(
        action, "revoked"
    )


def test_the_receipt_commits_with_the_events_or_not_at_all(tmp_path):
    """The recorder stores receipts inside the events' transaction: a batch refused by the store (a duplicate
    event) leaves no receipt behind."""
    from eventsourcing.persistence import IntegrityError

    from tcr_registry.adapters.persistence import migrate
    from tcr_registry.adapters.persistence.event_store import Registry
    from tcr_registry.adapters.persistence.receipts import Receipt
    from tcr_registry.domain.registration_book import RegistrationBook
    from tcr_shared.platform.database import Database

    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate.upgrade(database)
    app = Registry(database.eventsourcing_env())
    try:
        book = RegistrationBook.open("p1", "640101", 2025)
        events = book.collect_events()
        receipt = Receipt("k1", "key-1", "hash", 200, refer=lambda _r: {}, reference={"contract_id": "x", "version": 1})
        receipt.last_event = 0
        app.save(*events, receipts=[receipt])
        again = Receipt("k1", "key-2", "hash", 200, refer=lambda _r: {}, reference={"contract_id": "x", "version": 1})
        again.last_event = 0
        with pytest.raises(IntegrityError):
            app.save(*events, receipts=[again])  # the same event twice: refused
        engine = create_engine(database.sync_url)
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT idempotency_key, position FROM idempotency_records")).all()
        engine.dispose()
        assert keys == [("key-1", 1)]
    finally:
        app.close()


def test_receipts_stored_before_keep_only_their_reference(database_url):
    """Migration 0003: records that held whole answers (names and identity numbers included) keep which contract
    version they showed and their position; their bodies are gone."""
    from alembic import command
    from alembic.config import Config

    from tcr_registry.adapters.persistence.migrate import MIGRATIONS
    from tcr_shared.platform.database import Database

    database = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.sync_url.replace("%", "%%"))
    command.upgrade(config, "0002")
    old_body = {"id": "c-1", "version": 2, "seller": {"name": "张三丰", "id_number": "11010519491231002X"}}
    engine = create_engine(database.sync_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO idempotency_records (key_id, idempotency_key, request_hash, status_code, body, headers)"
                    " VALUES ('k', 'old', 'h', 200, :body, :headers)"
                ),
                {"body": json.dumps(old_body), "headers": json.dumps({"etag": '"2"', "tcr-position": "41"})},
            )
        command.upgrade(config, "head")
        with engine.connect() as conn:
            row = conn.execute(select(idempotency_records)).mappings().one()
    finally:
        engine.dispose()
    assert "body" not in row
    reference = row["reference"] if isinstance(row["reference"], dict) else json.loads(row["reference"])
    assert reference == {"contract_id": "c-1", "version": 2}
    assert row["position"] == 41
    assert "张三丰" not in json.dumps({k: str(v) for k, v in row.items()}, ensure_ascii=False)
