"""The fault suite (issue 12): load from many clients writing with Idempotency-Keys while the faults a production
system meets happen (kill -9 of each service, PostgreSQL restarted with -m fast and -m immediate, two registry
processes racing on one database), then checks that the system kept its word: every acknowledged write present
once and unchanged, registration numbers gap-free, the registry feed exactly-once, every projection equal to a
rebuild, and no client answer that contradicts what was committed.

Everything runs on a throwaway PostgreSQL cluster this module starts itself (it must restart PostgreSQL) and real
uvicorn processes. `python -m tests.chaos` (`make chaos`) runs the full scale; tests/chaos/test_chaos.py runs a
short one inside `make test`."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.support.processes import ServiceProcess, free_port, start_service
from tests.support.registry import auth, contract_body, party
from tests.support.servers import PostgresCluster

ADMIN_KEY = "chaos-admin-key"
ADMIN = auth(ADMIN_KEY)
REGISTRY_APP = "tcr_registry.bootstrap:create_app"
SUBSIDY_APP = "tcr_subsidy.bootstrap:create_app"
REPORTING_APP = "tcr_reporting.bootstrap:create_app"
AMBIGUOUS = "ambiguous"  # an attempt that got no answer (a 5xx leaves the outcome unknown as well)
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Scale:
    clients: int = 16
    points: int = 4
    phase_seconds: float = 15.0  # load before and after each fault
    write_deadline: float = 90.0  # a client gives up on a write (same key) after this long
    amend_share: float = 0.35
    revoke_share: float = 0.2
    # The short version does not wait for a killed service to come back before the next fault: the restarts
    # overlap (on 2 busy cores one takes 15-30 s) and the run waits for all of them before PostgreSQL restarts.
    overlap_restarts: bool = False


FULL = Scale()
SHORT = Scale(phase_seconds=2.0, write_deadline=60.0, overlap_restarts=True)

FAULTS = (
    "two registries racing",  # the baseline: both registry processes take writes, no other fault
    "kill -9 registry",
    "kill -9 subsidy",
    "kill -9 reporting",
    "pg restart -m fast",
    "pg restart -m immediate",
)


# --- what the clients did ---------------------------------------------------------------------------------------
@dataclass
class Write:
    """One logical write: every attempt uses the same Idempotency-Key and body."""

    kind: str  # submit, certify, amend, revoke
    contract_id: str | None
    key: str
    body: dict[str, Any]
    fault: str
    attempts: list[int | str] = field(default_factory=list)  # status codes, or AMBIGUOUS for no answer
    answer: dict[str, Any] | None = None  # the body of the 2xx, when acknowledged
    refusal: str = ""  # the detail of the last client error, when refused

    @property
    def acknowledged(self) -> bool:
        return self.answer is not None

    @property
    def refused_after_ambiguity(self) -> bool:
        """A retry answered a client error after an attempt whose outcome was unknown."""
        final = self.attempts[-1] if self.attempts else None
        earlier = self.attempts[:-1]
        return isinstance(final, int) and 400 <= final < 500 and any(_ambiguous(a) for a in earlier)


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _ambiguous(attempt: int | str) -> bool:
    return attempt == AMBIGUOUS or (isinstance(attempt, int) and attempt >= 500)


@dataclass
class Load:
    writes: list[Write] = field(default_factory=list)
    fault: str = FAULTS[0]
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class Client:
    """A registration point's client: submit and certify, some amend and revoke; retries with the same key on no
    answer or a 5xx until its deadline, as docs/operations.md tells clients to."""

    def __init__(self, n: int, url: str, key: str, load: Load, scale: Scale) -> None:
        self.n, self.url, self.load, self.scale = n, url, load, scale
        self.http = httpx.AsyncClient(base_url=url, headers=auth(key), timeout=httpx.Timeout(20.0, connect=2.0))
        self.random = random.Random(n)
        self.serial = itertools.count(1)

    async def run(self) -> None:
        try:
            while not self.load.stop.is_set():
                await self.one_contract()
        finally:
            await self.http.aclose()

    async def one_contract(self) -> None:
        title = f"chaos c{self.n} #{next(self.serial)} {uuid.uuid4().hex[:8]}"
        body = contract_body(
            title=title,
            amount="900000.00",  # below the amount that needs an expert review to certify
            technology_amount="800000.00",
            result_id=None,
            seller=party("university", "640104"),
            buyer=party("enterprise", "640181"),
        )
        submitted = await self.write("submit", None, body)
        if not submitted.acknowledged:
            return
        cid = submitted.answer["id"]
        certified = await self.write("certify", cid, {})
        if not certified.acknowledged:
            return
        if self.random.random() < self.scale.amend_share:
            changes = {"title": f"{title} amended"}
            await self.write("amend", cid, {"reason": "chaos amendment", "changes": changes})
        if self.random.random() < self.scale.revoke_share:
            await self.write("revoke", cid, {"reason": "chaos revocation"})

    async def write(self, kind: str, contract_id: str | None, body: dict) -> Write:
        path = "/v1/contracts" if kind == "submit" else f"/v1/contracts/{contract_id}/{kind}"
        write = Write(kind, contract_id, f"chaos-{uuid.uuid4()}", body, self.load.fault)
        self.load.writes.append(write)
        deadline = time.monotonic() + self.scale.write_deadline
        while True:
            try:
                response = await self.http.post(path, json=body, headers={"Idempotency-Key": write.key})
                write.attempts.append(response.status_code)
                if response.status_code < 300:
                    write.answer = response.json()
                    write.contract_id = write.contract_id or write.answer["id"]
                    return write
                if response.status_code not in RETRYABLE:
                    write.refusal = response.json().get("detail", "") if _is_json(response) else response.text
                    return write
            except httpx.TransportError:
                write.attempts.append(AMBIGUOUS)
            if time.monotonic() > deadline:
                return write
            await asyncio.sleep(0.2 + self.random.random() * 0.3)


# --- the system under test --------------------------------------------------------------------------------------
class System:
    """Two registry processes on one database, subsidy and reporting, on a throwaway PostgreSQL cluster."""

    def __init__(self, cluster: PostgresCluster, log_dir: Path) -> None:
        self.cluster, self.log_dir = cluster, log_dir
        for name in ("registry", "subsidy", "reporting", "reporting_fresh"):
            with psycopg.connect(cluster.admin_dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE chaos_{name}")
        self.common = {"TCR_ADMIN_KEY": ADMIN_KEY, "TCR_DATA_DIR": str(log_dir / "data"), "TCR_ACCESS_LOG": "0"}
        self.services: dict[str, ServiceProcess] = {}
        # Ports known before anything starts: the services start together and a restarted one keeps its URL.
        self.ports = {
            name: free_port() for name in ("registry", "registry_b", "subsidy", "reporting", "reporting_fresh")
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, name: str) -> dict[str, str]:
        if name.startswith("registry"):
            env = {"TCR_REGISTRY_DATABASE_URL": self.cluster.url("chaos_registry"), "TCR_DEMO": "0"}
        elif name == "subsidy":
            env = {
                "TCR_SUBSIDY_DATABASE_URL": self.cluster.url("chaos_subsidy"),
                "TCR_REGISTRY_URL": self.url("registry"),
            }
        else:
            env = self._reporting_env(f"chaos_{name}")
        return {**self.common, **env}

    def _reporting_env(self, database: str) -> dict[str, str]:
        return {
            "TCR_REPORTING_DATABASE_URL": self.cluster.url(database),
            "TCR_REGISTRY_URL": self.url("registry"),
            "TCR_SUBSIDY_URL": self.url("subsidy"),
            "TCR_FEED_KEY": ADMIN_KEY,
        }

    def app(self, name: str) -> str:
        return {"subsidy": SUBSIDY_APP, "reporting": REPORTING_APP, "reporting_fresh": REPORTING_APP}.get(
            name, REGISTRY_APP
        )

    def start(self, name: str) -> ServiceProcess:
        self.services[name] = start_service(
            name, self.app(name), self.env(name), self.log_dir, port=self.ports[name], timeout=120
        )
        return self.services[name]

    def start_together(self, *names: str) -> None:
        """Start at once: both registry processes race to migrate one database, then take writes together."""
        failures: list[BaseException] = []

        def start(name: str) -> None:
            try:
                self.start(name)
            except BaseException as exc:  # noqa: BLE001 - reported below, in the main thread
                failures.append(exc)

        threads = [threading.Thread(target=start, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    def kill_and_restart(self, name: str) -> None:
        self.services[name].kill(signal.SIGKILL)
        self.start(name)  # on the same port: the other services follow the same URL

    def restart_postgres(self, mode: str) -> None:
        self.cluster.stop(mode)
        time.sleep(1.0)  # a short outage: requests meet a database that is down, not only a restart
        self.cluster.start()

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()


# --- the run ----------------------------------------------------------------------------------------------------
async def setup_points(url: str, scale: Scale) -> list[str]:
    """`scale.points` registration points (clients share them: their certifications contend for numbers)."""
    keys = []
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as admin:
        for n in range(1, scale.points + 1):
            body = {"number": f"{n:02d}", "name": f"chaos point {n}", "jurisdiction": "6401"}
            point = await admin.post("/v1/points", json=body)
            assert point.status_code == 201, point.text
            key = await admin.post("/v1/api-keys", json={"role": "point", "point_id": point.json()["id"]})
            assert key.status_code == 201, key.text
            keys.append(key.json()["secret"])
    return keys


async def run_load_with_faults(system: System, scale: Scale, say) -> Load:
    load = Load()
    registries = [system.services["registry"].url, system.services["registry_b"].url]
    keys = await setup_points(registries[0], scale)
    clients = [Client(n, registries[n % 2], keys[n % len(keys)], load, scale) for n in range(scale.clients)]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    restarts: list[asyncio.Task] = []
    try:
        for fault in FAULTS:
            load.fault = fault
            say(f"fault: {fault}")
            await asyncio.sleep(scale.phase_seconds)
            if fault.startswith("pg restart") and restarts:
                await asyncio.gather(*restarts)  # every killed service is back before PostgreSQL goes down
                restarts.clear()
            recovery = asyncio.create_task(asyncio.to_thread(inject, system, fault))
            if scale.overlap_restarts and fault.startswith("kill -9"):
                restarts.append(recovery)
            else:
                await recovery
                say(f"fault: {fault}: injected and recovered")
            await asyncio.sleep(scale.phase_seconds)
        await asyncio.gather(*restarts)
    finally:
        load.stop.set()
        await asyncio.gather(*tasks, *restarts, return_exceptions=False)
    return load


def inject(system: System, fault: str) -> None:
    if fault.startswith("kill -9 "):
        system.kill_and_restart(fault.removeprefix("kill -9 "))
    elif fault.startswith("pg restart -m "):
        system.restart_postgres(fault.removeprefix("pg restart -m "))


# --- the checks -------------------------------------------------------------------------------------------------
@dataclass
class Findings:
    rows: dict[str, collections.Counter] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    known_contradictions: list[str] = field(default_factory=list)  # issue 12: retried writes told they failed
    problems: list[str] = field(default_factory=list)  # numbers, feed, projections
    unacknowledged: collections.Counter = field(default_factory=collections.Counter)  # (kind, last answer)

    def count(self, fault: str, column: str, n: int = 1) -> None:
        self.rows.setdefault(fault, collections.Counter())[column] += n

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.contradictions or self.problems)


def read_feed(url: str) -> list[dict]:
    events: list[dict] = []
    after = 0
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as http:
        while True:
            response = http.get("/v1/events", params={"after": after, "limit": 1000})
            response.raise_for_status()
            page = response.json()
            events += page["events"]
            if page["next_after"] == after:
                return events
            after = page["next_after"]


def check_feed(events: list[dict], findings: Findings) -> None:
    positions = [e["position"] for e in events]
    if any(b <= a for a, b in itertools.pairwise(positions)):
        findings.problems.append("feed positions are not strictly increasing")
    ids = collections.Counter(e["id"] for e in events)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        findings.problems.append(f"feed: {len(twice)} event ids appear more than once, e.g. {twice[:3]}")


def kind_of(event: dict) -> str:
    """tcr.registry.contract.certified.v1 -> certified"""
    return event["type"].split(".")[-2]


def check_numbers(events: list[dict], findings: Findings) -> None:
    """Registration numbers are YYYY + the point's six-digit prefix + a six-digit sequence: per point and year the
    sequences issued (certified events) are exactly 1..N."""
    books: dict[str, list[int]] = collections.defaultdict(list)
    for event in events:
        if kind_of(event) == "certified":
            number = event["data"]["registration_number"]
            books[number[:10]].append(int(number[10:]))
    for book, sequences in sorted(books.items()):
        if sorted(sequences) != list(range(1, len(sequences) + 1)):
            missing = sorted(set(range(1, max(sequences) + 1)) - set(sequences))
            doubled = [s for s, n in collections.Counter(sequences).items() if n > 1]
            findings.problems.append(f"registration book {book}: missing {missing[:10]}, issued twice {doubled[:10]}")
    if not books:
        findings.problems.append("no registration number was issued")


EVENT_OF = {"submit": "submitted", "certify": "certified", "amend": "amended", "revoke": "revoked"}


@dataclass
class Committed:
    """What the registry's log holds, indexed for the checks: the events of each contract, and each submitted
    or amended title (every client write carries a title of its own)."""

    by_contract: dict[str, list[dict]]
    by_title: dict[tuple[str, str], list[dict]]

    @classmethod
    def of(cls, events: list[dict]) -> Committed:
        by_contract: dict[str, list[dict]] = collections.defaultdict(list)
        by_title: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
        for event in events:
            by_contract[event["subject"]].append(event)
            if kind_of(event) in ("submitted", "amended"):
                by_title[(kind_of(event), event["data"]["terms"]["title"])].append(event)
        return cls(by_contract, by_title)

    def effects(self, write: Write) -> list[dict]:
        """The events that are this write's effect (more than one: it was applied twice)."""
        if write.kind == "submit":
            return self.by_title[("submitted", write.body["title"])]
        if write.kind == "amend":
            found = self.by_title[("amended", write.body["changes"]["title"])]
            return [e for e in found if e["subject"] == write.contract_id]
        return [e for e in self.by_contract.get(write.contract_id or "", []) if kind_of(e) == EVENT_OF[write.kind]]


def _attempts(attempts: list[int | str]) -> str:
    """[503, 503, 503, 409] -> 503 x3, 409"""
    runs = [(answer, len(list(group))) for answer, group in itertools.groupby(attempts)]
    return ", ".join(f"{answer} x{n}" if n > 1 else str(answer) for answer, n in runs)


def answer_matches(write: Write, effect: dict) -> bool:
    """The acknowledged answer says what the log holds."""
    answer, data = write.answer or {}, effect["data"]
    if answer.get("id") != effect["subject"]:
        return False
    if write.kind == "submit":
        return all(answer[k] == write.body[k] == data["terms"][k] for k in ("title", "amount", "technology_amount"))
    if write.kind == "certify":
        return answer["registration_number"] == data["registration_number"] is not None
    if write.kind == "amend":
        return answer["title"] == data["terms"]["title"]
    return answer["status"] == "revoked"


def check_writes(load: Load, committed: Committed, findings: Findings) -> None:
    for write in load.writes:
        findings.count(write.fault, "writes")
        effects = committed.effects(write)
        label = f"{write.kind} {write.contract_id} key={write.key} attempts: {_attempts(write.attempts)}"
        if write.acknowledged:
            findings.count(write.fault, "acknowledged")
            if not effects or not answer_matches(write, effects[0]):
                findings.count(write.fault, "lost")
                findings.count(write.fault, "contradictions")  # a 2xx whose effect is missing
                findings.lost.append(f"{label}: answered {write.answer}, the log holds {effects[:1]}")
        else:
            findings.unacknowledged[(write.kind, str(write.attempts[-1]) if write.attempts else "none")] += 1
        if len(effects) > 1:
            findings.count(write.fault, "duplicated")
            findings.duplicated.append(f"{label}: committed {len(effects)} times")
        if not write.acknowledged and effects and write.refused_after_ambiguity:
            findings.count(write.fault, "contradictions")
            # Every write records its Idempotency-Key in the transaction of its events, so a retry after any failure
            # gets the original answer: a refusal here is a regression, never a known issue.
            known = False
            (findings.known_contradictions if known else findings.contradictions).append(
                f"{label}: committed, but the retry with the same key answered {write.attempts[-1]} {write.refusal!r}"
            )


# --- projections ------------------------------------------------------------------------------------------------
def wait_caught_up(system: System, reporting: str, timeout: float = 120.0) -> None:
    """Until subsidy has applied the registry's head and `reporting` both feeds' heads."""
    deadline = time.monotonic() + timeout
    with httpx.Client(headers=ADMIN, timeout=30) as http:
        while True:
            try:
                head = http.get(f"{system.services['registry'].url}/v1/events", params={"after": 0, "limit": 1})
                head = head.json()["head"]
                sub = http.get(f"{system.services['subsidy'].url}/v1/status").json()
                rep = http.get(f"{system.services[reporting].url}/v1/status").json()["feeds"]
                positions = sorted(feed["position"] for feed in rep.values())
                if sub["feeds"][0]["position"] >= head and positions == sorted([head, sub["award_feed"]["head"]]):
                    return
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{reporting} did not catch up within {timeout}s")
            time.sleep(0.3)


def contract_list(url: str) -> dict[str, tuple]:
    """The registry's contract index (its list projection), every page."""
    found: dict[str, tuple] = {}
    token = None
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as http:
        while True:
            params = {"limit": 500, **({"page_token": token} if token else {})}
            response = http.get("/v1/contracts", params=params)
            response.raise_for_status()
            page = response.json()
            found.update({c["id"]: (c["status"], c["title"], c["registration_number"]) for c in page["contracts"]})
            token = page["next_page_token"]
            if not token:
                return found


def check_contract_index(url: str, events: list[dict], findings: Findings, timeout: float = 60.0) -> None:
    """The registry's list projection equals the log folded: each contract's status, title and number as its
    last event says."""
    expected: dict[str, tuple] = {}
    for event in events:
        data = event["data"]
        expected[event["subject"]] = (data["status"], data["terms"]["title"], data.get("registration_number"))
    deadline = time.monotonic() + timeout
    while (listed := contract_list(url)) != expected:
        if time.monotonic() > deadline:
            differ = sorted(k for k in expected.keys() | listed.keys() if expected.get(k) != listed.get(k))
            findings.problems.append(
                f"registry contract index differs from the log on {len(differ)} contracts, e.g. "
                + "; ".join(f"{k}: log {expected.get(k)} index {listed.get(k)}" for k in differ[:3])
            )
            return
        time.sleep(0.5)


def policy_years(events: list[dict]) -> list[int]:
    return sorted({e["data"]["policy_year"] for e in events if kind_of(e) == "certified"})


def annual_reports(url: str, years: list[int]) -> dict[int, tuple[int, dict]]:
    found = {}
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as http:
        for year in years:
            response = http.get(f"/v1/reports/annual/{year}")
            body = response.json()
            for differs_by_design in ("generated_at", "request_id", "instance"):
                body.pop(differs_by_design, None)
            found[year] = (response.status_code, body)
    return found


def check_projections(system: System, years: list[int], findings: Findings) -> None:
    wait_caught_up(system, "reporting")
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "tcr-subsidy"), "verify"],
        env={**os.environ, **system.env("subsidy"), "TCR_FEED_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if verify.returncode != 0:
        findings.problems.append(f"tcr-subsidy verify: exit {verify.returncode}: {verify.stderr[-1500:]}")
    system.start("reporting_fresh")  # rebuilt from zero: an empty database following both feeds
    wait_caught_up(system, "reporting_fresh")
    live, rebuilt = (
        annual_reports(system.services["reporting"].url, years),
        annual_reports(system.services["reporting_fresh"].url, years),
    )
    for year in years:
        if live[year] != rebuilt[year]:
            findings.problems.append(f"reporting {year}: live {live[year]} != rebuilt {rebuilt[year]}")
    if not any(code == 200 for code, _ in live.values()):
        findings.problems.append(f"reporting answered no annual report: {live}")


# --- the table --------------------------------------------------------------------------------------------------
COLUMNS = ("writes", "acknowledged", "lost", "duplicated", "contradictions")


def table(findings: Findings) -> str:
    width = max(len(f) for f in (*FAULTS, "total"))
    lines = [f"{'fault':<{width}}  " + "  ".join(f"{c:>14}" for c in COLUMNS)]
    total: collections.Counter = collections.Counter()
    for fault in FAULTS:
        row = findings.rows.get(fault, collections.Counter())
        total.update(row)
        lines.append(f"{fault:<{width}}  " + "  ".join(f"{row[c]:>14}" for c in COLUMNS))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{total[c]:>14}" for c in COLUMNS))
    return "\n".join(lines)


def report(findings: Findings) -> str:
    parts = [table(findings)]
    sections = (
        ("lost (acknowledged, effect missing)", findings.lost),
        ("duplicated", findings.duplicated),
        ("contradictions", findings.contradictions),
        (
            "known contradictions (issue 12: retry after a crash told a committed write failed)",
            findings.known_contradictions,
        ),
        ("problems", findings.problems),
    )
    if findings.unacknowledged:
        given_up = ", ".join(f"{kind} {last}: {n}" for (kind, last), n in sorted(findings.unacknowledged.items()))
        parts.append(f"\nnot acknowledged (write, last answer): {given_up}")
    for title, items in sections:
        if items:
            parts.append(f"\n{title}: {len(items)}\n  " + "\n  ".join(items[:20]))
    return "\n".join(parts)


def run(scale: Scale, log_dir: Path, say=print) -> Findings:
    began = time.monotonic()
    tell = say
    say = lambda line: tell(f"[{time.monotonic() - began:5.1f}s] {line}")  # noqa: E731
    cluster = PostgresCluster.create().start()
    system = System(cluster, log_dir)
    try:
        say("PostgreSQL up")
        system.start_together("registry", "registry_b", "subsidy", "reporting")
        say(f"services up; load from {scale.clients} clients")
        load = asyncio.run(run_load_with_faults(system, scale, say))
        say(f"load done: {len(load.writes)} writes; checking")
        findings = Findings()
        feed = read_feed(system.services["registry"].url)
        check_feed(feed, findings)
        if read_feed(system.services["registry_b"].url) != feed:
            findings.problems.append("the two registry processes serve different feeds from one database")
        check_writes(load, Committed.of(feed), findings)
        check_numbers(feed, findings)
        for registry in ("registry", "registry_b"):
            check_contract_index(system.services[registry].url, feed, findings)
        say("writes, numbers and feed checked; checking projections")
        check_projections(system, policy_years(feed), findings)
        say("done")
        return findings
    finally:
        system.stop()
        cluster.destroy()
