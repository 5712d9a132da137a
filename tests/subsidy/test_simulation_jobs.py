"""Long simulations are jobs (issue 14), through the real subsidy app (httpx against ASGI, its lifespan run, its
own database: SQLite and PostgreSQL): a history shorter than TCR_SUBSIDY_SIMULATION_JOB_AFTER answers 201 with the
comparison; a longer one 202 and a job whose GET shows running (with progress), then done with the same result; a
job a crash left running reads failed once the service starts again. The registry's feed is the edge of the world
here (FeedOf: a hand-made history served in pages); test_simulation_e2e.py runs the real registry."""

from __future__ import annotations

import asyncio
import contextlib
import copy

import httpx
import pytest

from tcr_subsidy.adapters.persistence.simulations import SqlSimulationStore
from tcr_subsidy.application.simulation import RESTARTED
from tcr_subsidy.bootstrap import create_app
from tcr_subsidy.settings import SubsidySettings
from tests.subsidy.history import History, party, terms
from tests.subsidy.stack import ADMIN_KEY, admin_headers, database_url
from tests.subsidy.test_simulation import FeedOf, at, in_force_candidate
from tests.support import postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    url, drop = database_url(request.param, tmp_path, "subsidy_jobs")
    yield url
    if drop:
        postgres.drop_database(url)


def history() -> History:
    h = History()
    buyer, seller = party("enterprise", 1, region="640104"), party("university", 2, region="640105")
    for i, amount in enumerate(("9000000.00", "6000000.00", "2000000.00", "750000.00")):
        h.certified(terms(amount=amount, technology_amount="100000.00", buyer=buyer, seller=seller), at(3, i + 1))
    return h


def candidate() -> dict:
    rules = copy.deepcopy(in_force_candidate()[0])
    imports = next(p for p in rules["programmes"] if p["programme"] == "import")
    imports["rate"], imports["cap"] = "0.20", "3000000.00"
    return {"rules": dict(rules, id="what-if"), "from_year": 2021, "to_year": 2025}


@contextlib.asynccontextmanager
async def subsidy(url: str, tmp_path, h: History, job_after: int):
    """The subsidy app with its lifespan (migrations, the start-up recovery of unfinished jobs), not following."""
    settings = SubsidySettings(
        subsidy_database_url=url,
        data_dir=tmp_path,
        admin_key=ADMIN_KEY,
        subsidy_follow=False,
        subsidy_simulation_job_after=job_after,
    )
    app = create_app(settings)
    runtime = app.state.runtime
    runtime.simulations.feed = FeedOf(h)  # the registry: the edge of the world
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://subsidy", headers=admin_headers()) as c:
            yield c, runtime


async def finished(client: httpx.AsyncClient, location: str) -> tuple[dict, list[dict]]:
    """Poll a job until it is no longer running; every answer seen on the way."""
    seen = []
    for _ in range(600):
        answer = await client.get(location)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if seen[-1]["status"] != "running":
            return seen[-1], seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job at {location} never finished: {seen[-1]}")


async def test_a_short_history_answers_201_and_a_long_one_a_job_with_the_same_result(backend, tmp_path):
    h = history()
    async with subsidy(backend, tmp_path, h, job_after=10_000) as (client, _runtime):
        short = await client.post("/v1/simulations", json=candidate())
        assert short.status_code == 201, short.text
        assert short.json()["status"] == "done" and short.json()["result"]["summary"]["difference"] != "0.00"
    async with subsidy(backend, tmp_path, h, job_after=len(h.events)) as (client, _runtime):
        # the history reaches the threshold once read: the next simulation is a job
        assert (await client.post("/v1/simulations", json=candidate())).status_code == 201
        started = await client.post("/v1/simulations", json=candidate())
        assert started.status_code == 202, started.text
        job = started.json()
        assert started.headers["location"] == f"/v1/simulations/{job['id']}"
        assert job["status"] == "running" and "result" not in job
        assert set(job["progress"]) == {"stage", "done", "total"}
        assert job["candidate"] == short.json()["candidate"]
        done, seen = await finished(client, started.headers["location"])
        assert all(s["status"] == "running" and "progress" in s for s in seen[:-1])
        assert done["status"] == "done" and "progress" not in done
        for part in ("summary", "totals", "regions", "beneficiaries"):
            assert done["result"][part] == short.json()["result"][part]
        csv = await client.get(started.headers["location"], headers={"Accept": "text/csv"})
        assert csv.status_code == 200 and csv.text.count("\n") > 3


async def test_bad_candidates_are_refused_at_once_even_when_long(backend, tmp_path):
    bad = candidate()
    bad["rules"]["programmes"][0]["rate"] = "1.5"
    async with subsidy(backend, tmp_path, history(), job_after=0) as (client, runtime):
        refused = await client.post("/v1/simulations", json=bad)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "rules.programmes[0].rate"
        assert runtime.simulations._jobs == {}  # nothing started, nothing kept


async def test_a_job_that_cannot_read_the_registry_reads_failed(backend, tmp_path):
    class Unreachable:
        async def page(self, after: int, *, limit: int | None = None):
            raise httpx.ConnectError("the registry does not answer")

    async with subsidy(backend, tmp_path, history(), job_after=0) as (client, runtime):
        runtime.simulations.feed = Unreachable()
        started = await client.post("/v1/simulations", json=candidate())
        assert started.status_code == 202
        failed, _seen = await finished(client, started.headers["location"])
        assert failed["status"] == "failed" and "does not answer" in failed["error"]
        download = await client.get(started.headers["location"], params={"format": "xlsx"})
        assert download.status_code == 409 and download.headers["content-type"] == "application/problem+json"


async def test_a_job_a_crash_left_running_reads_failed_after_a_restart(backend, tmp_path):
    h = history()
    async with subsidy(backend, tmp_path, h, job_after=0) as (client, runtime):
        # A job as a process that died mid-way leaves it: its row says running, nothing of its result is kept.
        job = {**candidate(), "id": "5d1b7c2e-0000-4000-8000-00000000dead", "status": "running"}
        job.update(created_at="2026-01-01T00:00:00+00:00", created_by="admin:test", candidate=[job.pop("rules")])
        await SqlSimulationStore(runtime.db).save({**job, "progress": {"stage": "x", "done": 1, "total": 9}})
        assert (await client.get(f"/v1/simulations/{job['id']}")).json()["status"] == "running"
    async with subsidy(backend, tmp_path, h, job_after=0) as (client, _runtime):  # the service starts again
        after = (await client.get(f"/v1/simulations/{job['id']}")).json()
        assert after["status"] == "failed" and after["error"] == RESTARTED
        assert after["progress"] == {"stage": "x", "done": 1, "total": 9}  # how far it had come
