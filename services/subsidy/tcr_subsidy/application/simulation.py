"""Policy what-if (issue 14): the registry's history decided again under a candidate rule book, in memory, by the
live engine's own code, and compared with the awards under the rules in force.

Nothing here writes the live ledger, the award feed, webhooks or figures: a simulation holds its own `Ledger`s and
its result is kept only as a simulation (through `SimulationStore`).

- `DecisionHistory` keeps the registry feed's decision-relevant facts in feed order: certifications, amendments
  and revocations, each a `RegistryEvent` whose data holds only what the engine reads (parties interned, so a
  beneficiary that appears in 1,000 contracts is held once). It is read from the same feed the live projection
  follows, extended incrementally from the position it reached.
- `Simulator` replays that history through `Engine` (the live decision code: same order, same rounding, same
  caps). The rules in force are replayed incrementally (their ledger is kept and extended); a candidate is
  replayed from zero each time.
- `compare` turns two ledgers into the comparison rows (per year and programme; per prefecture and county; the
  beneficiaries whose awards change most).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.money import ZERO, format_money
from tcr_shared.language.policy_time import now_utc
from tcr_shared.language.regions import prefecture_of
from tcr_shared.language.vocabulary import PROGRAMMES
from tcr_shared.platform.collector import collector_paused
from tcr_subsidy.application.ports import RegistryPages, SimulationStore
from tcr_subsidy.application.projection import registry_event
from tcr_subsidy.domain.decision import (
    AMENDED,
    CERTIFIED,
    KNOWN_TYPES,
    REVOKED,
    Engine,
    MalformedEvent,
    RegistryEvent,
    UnknownEventType,
)
from tcr_subsidy.domain.ledger import Ledger
from tcr_subsidy.domain.rules import RuleBook, RuleSet, RuleSetError, parse_rule_set
from tcr_subsidy.domain.terms import Party, Terms, read_terms

Progress = Callable[[str, int, int], None]  # (stage, done, total)
TOP_BENEFICIARIES = 20
_API_ONLY_KEYS = ("effective_until", "in_force", "future")


# -- the candidate ------------------------------------------------------------------------------------------------
class CandidateError(ValueError):
    """A candidate that cannot be simulated; `errors` name the fields (`rules.programmes[0].rate`)."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _refuse(message: str, at: str) -> CandidateError:
    return CandidateError(message, [{"field": at, "message": message}])


def candidate_rule_sets(raw: Any) -> list[dict[str, Any]]:
    """The rule sets of a candidate: one rule set, a list of them, or the body of GET /v1/programmes."""
    if isinstance(raw, dict) and "rule_sets" in raw and "programmes" not in raw:
        raw = raw["rule_sets"]
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, list) and raw:
        return raw
    raise _refuse("rules must be a rule set (a mapping) or a non-empty list of rule sets", "rules")


def candidate_book(raw: Any) -> RuleBook:
    """Check a candidate and build its rule book (the whole book the simulation decides with). Every refusal
    names the field: `rules.<field>` for one rule set, `rules[i].<field>` for a list."""
    sets = candidate_rule_sets(raw)
    single = isinstance(raw, dict) and "rule_sets" not in raw
    parsed: list[tuple[RuleSet, Any, str]] = []
    for i, rs in enumerate(sets):
        at = "rules" if single else f"rules[{i}]"
        try:
            parsed.append((parse_rule_set(rs, where=at), rs, at))
        except RuleSetError as exc:
            raise _refuse(str(exc), f"{at}.{exc.field}" if exc.field else at) from exc
    _check_dates(parsed)
    return RuleBook([rs for rs, _raw, _at in parsed])


def _check_dates(parsed: list[tuple[RuleSet, Any, str]]) -> None:
    """Effective dates may not overlap: no two rule sets start on the same day, and an `effective_until` (the
    API's derived field, accepted back) must be the next rule set's start (or null for the latest)."""
    ordered = sorted(parsed, key=lambda p: p[0].effective_from)
    ids = [rs.id for rs, _r, _a in ordered]
    for i, (rs, raw, at) in enumerate(ordered):
        if ids.count(rs.id) > 1:
            raise _refuse(f"rule set id {rs.id!r} appears twice", f"{at}.id")
        following = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if following is not None and following.effective_from == rs.effective_from:
            raise _refuse(
                f"rule sets {rs.id} and {following.id} both take effect on {rs.effective_from}: effective dates "
                "overlap",
                f"{ordered[i + 1][2]}.effective_from",
            )
        until = raw.get("effective_until") if isinstance(raw, dict) else None
        if until is None:
            continue
        try:
            end = date.fromisoformat(str(until))
        except ValueError as exc:
            raise _refuse("effective_until must be a date (YYYY-MM-DD) or null", f"{at}.effective_until") from exc
        expected = following.effective_from if following else None
        if end != expected:
            why = (
                f"{following.id} takes effect on {expected}: effective dates overlap or leave a gap"
                if following
                else "it is the latest rule set (effective_until must be null)"
            )
            raise _refuse(f"{rs.id} is effective until {end}, but {why}", f"{at}.effective_until")


def rule_book_as_candidate(book: RuleBook) -> list[dict[str, Any]]:
    """A rule book in the shape a candidate takes (what is kept with a simulation)."""
    return [rs.as_dict() for rs in book.rule_sets]


# -- the history ----------------------------------------------------------------------------------------------
class _LeanEngine(Engine):
    """The live engine without what only the live ledger and the award feed read: every decision (order,
    rounding, caps, claw-backs) is the inherited code; only the explanation text, the public award changes (so
    `decide` returns one None per change) and the uuid5 award ids (the plain key they are derived from is as
    unique) are not made, and terms the history parsed once are taken as they are."""

    explains = False  # no reasons for the parties not considered: only explanations read them

    def _explain(self, *args: Any, **kwargs: Any) -> str:
        return ""

    @staticmethod
    def _read_terms(value: Any) -> Terms:
        return value if type(value) is Terms else read_terms(value)

    @staticmethod
    def _award_id(contract_id: str, programme: str, beneficiary: str) -> str:
        return f"{contract_id}|{programme}|{beneficiary}"

    @staticmethod
    def _change(*args: Any) -> None:  # type: ignore[override]
        return None


@dataclass
class DecisionHistory:
    """The registry history's decision-relevant facts, in feed order, and the feed position they reach."""

    events: list[RegistryEvent] = field(default_factory=list)
    position: int = 0
    contracts: int = 0
    _certified: set[str] = field(default_factory=set)
    _status: dict[str, str] = field(default_factory=dict)  # last status-only event of a contract not certified
    _parties: dict[Party, Party] = field(default_factory=dict)

    def extend(self, events: Sequence[FeedEvent], position: int) -> None:
        """Add a page of the registry feed (in order) and the position it reaches."""
        for feed_event in events:
            if feed_event.position <= self.position:
                continue  # already held (a page read twice)
            self._add(registry_event(feed_event))
        self.position = max(self.position, position)

    def _add(self, event: RegistryEvent) -> None:
        cid = event.contract_id
        if event.type == CERTIFIED:
            compact = self._compact(event, ("certified_at", "registration_number"))
            self.events.append(compact)
            if compact is not event and cid not in self._certified:  # one the engine can decide
                self.contracts += 1
                self._certified.add(cid)
                self._status.pop(cid, None)
        elif event.type == AMENDED:
            self.events.append(self._compact(event, ("registration_number",)))
        elif event.type == REVOKED:
            status = self._status.pop(cid, None)
            if status is not None:
                # A revocation of a contract never certified meets the record its status events left: the engine
                # then marks it revoked, which refuses a later certification. Only that record matters, so its
                # last status event is replayed right here, in place of all of them.
                self.events.append(RegistryEvent("", status, event.position, "", cid, {}))
            self.events.append(
                RegistryEvent("", REVOKED, event.position, "", cid, {"reason": event.data.get("reason")})
            )
        elif event.type in KNOWN_TYPES:
            if cid not in self._certified:
                self._status[cid] = event.type
        # other types: the engine skips them (unknown), so they decide nothing

    def _compact(self, event: RegistryEvent, keys: tuple[str, ...]) -> RegistryEvent:
        data = event.data
        try:
            terms = read_terms(data["terms"])
            if "certified_at" in keys:
                datetime.fromisoformat(data["certified_at"])
        except (KeyError, TypeError, ValueError):
            return event  # malformed: kept whole, so that the engine refuses it exactly as the live one did
        compact = {k: data.get(k) for k in keys}
        # The terms as the engine reads them, parsed here once (the lean engine takes them as they are), with
        # each party held once however many contracts name it.
        compact["terms"] = Terms(
            category=terms.category,
            amount=terms.amount,
            technology_amount=terms.technology_amount,
            seller=self._party(terms.seller),
            buyer=self._party(terms.buyer),
            intermediary=None if terms.intermediary is None else self._party(terms.intermediary),
            result_id=terms.result_id,
        )
        return RegistryEvent("", event.type, event.position, "", event.contract_id, compact)

    def _party(self, party: Party) -> Party:
        return self._parties.setdefault(party, party)


async def read_history(
    history: DecisionHistory, feed: RegistryPages, up_to: int | None, *, page_size: int = 1000, progress=None
) -> None:
    """Extend `history` from the feed position it reached up to `up_to` (None: the feed's head)."""
    while up_to is None or history.position < up_to:
        page = await feed.page(history.position, limit=page_size)
        events = [e for e in page.events if up_to is None or e.position <= up_to]
        reach = page.next_after if up_to is None or len(events) == len(page.events) else up_to
        if not page.events or reach <= history.position:
            break
        history.extend(events, reach)
        if progress:
            progress("reading the registry history", history.position, max(page.head, history.position))


# -- replaying ------------------------------------------------------------------------------------------------
@dataclass
class Replay:
    """A ledger decided from the history up to `upto` (an index into the history's events)."""

    engine: Engine
    ledger: Ledger = field(default_factory=Ledger)
    upto: int = 0
    skipped: int = 0

    def advance(self, events: list[RegistryEvent], progress: Progress | None = None, stage: str = "") -> bool:
        """Decide the events not decided yet; True when there were any."""
        decide, ledger = self.engine.decide, self.ledger
        total, step, grew = len(events), 20_000, self.upto < len(events)
        with collector_paused():
            for start in range(self.upto, total, step):
                for event in events[start : start + step]:
                    try:
                        decide(ledger, event)
                    except (UnknownEventType, MalformedEvent):
                        self.skipped += 1
                if progress:
                    progress(stage, min(start + step, total), total)
        self.upto = total
        return grew


class Simulator:
    """The history replayed under the rules in force (kept, extended incrementally) and under candidates."""

    def __init__(self, rulebook: RuleBook, history: DecisionHistory | None = None) -> None:
        self.rulebook = rulebook
        self.history = history or DecisionHistory()
        self._in_force = Replay(_LeanEngine(rulebook))

    def in_force(self, progress: Progress | None = None) -> Replay:
        if self._in_force.advance(self.history.events, progress, "deciding under the rules in force"):
            # The history and the in-force ledger now live as long as the service: moved out of the cycle
            # collector's sight for good, so no later collection rescans them (they hold no cycles).
            gc.freeze()
        return self._in_force

    def candidate(self, book: RuleBook, progress: Progress | None = None) -> Replay:
        replay = Replay(_LeanEngine(book))
        replay.advance(self.history.events, progress, "deciding under the candidate")
        return replay


# -- the comparison -------------------------------------------------------------------------------------------
@dataclass(slots=True)  # one per year, programme and region, added to once per award: slotted is quicker
class _Tally:
    money: Decimal = ZERO
    awards: int = 0
    capped: int = 0
    beneficiaries: set[str] = field(default_factory=set)

    def merge(self, other: _Tally) -> None:
        self.money += other.money
        self.awards += other.awards
        self.capped += other.capped
        self.beneficiaries |= other.beneficiaries


@dataclass
class Tallies:
    """One ledger's standing awards of the years asked (a clawed-back award pays nothing and counts as none), in
    one pass: per year, programme and beneficiary region; and per beneficiary [money, awards, last award]."""

    cells: dict[tuple[int, str, str], _Tally]
    people: dict[str, list]


def tally(ledger: Ledger, from_year: int, to_year: int) -> Tallies:
    cells: dict[tuple[int, str, str], _Tally] = {}
    people: dict[str, list] = {}
    for a in ledger.awards.values():
        if a.status == "clawed_back" or not from_year <= a.policy_year <= to_year:
            continue
        key = (a.policy_year, a.programme, a.beneficiary_region)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = _Tally()
        cell.money += a.award
        cell.awards += 1
        cell.capped += a.status == "capped"
        cell.beneficiaries.add(a.beneficiary)
        person = people.get(a.beneficiary)
        if person is None:
            people[a.beneficiary] = [a.award, 1, a]
        else:
            person[0] += a.award
            person[1] += 1
            person[2] = a
    return Tallies(cells, people)


def _rollups(tallies: Tallies) -> tuple[dict[tuple, _Tally], dict[tuple, _Tally]]:
    """Per year and programme; per year, programme and county, and prefecture (the sum of its counties)."""
    totals: dict[tuple, _Tally] = defaultdict(_Tally)
    regions: dict[tuple, _Tally] = defaultdict(_Tally)
    for (year, programme, region), cell in tallies.cells.items():
        totals[(year, programme)].merge(cell)
        regions[(year, programme, region)].merge(cell)
        prefecture = prefecture_of(region)
        if prefecture and prefecture != region:
            regions[(year, programme, prefecture)].merge(cell)
    return totals, regions


def _row(key: dict[str, Any], before: _Tally, after: _Tally) -> dict[str, Any]:
    return {
        **key,
        "in_force": format_money(before.money),
        "candidate": format_money(after.money),
        "difference": format_money(after.money - before.money),
        "awards": after.awards,
        "beneficiaries": len(after.beneficiaries),
        "capped": after.capped,
        "in_force_awards": before.awards,
        "in_force_beneficiaries": len(before.beneficiaries),
        "in_force_capped": before.capped,
    }


def _sort_key(key: tuple) -> tuple:
    return (key[0], PROGRAMMES.index(key[1]) if key[1] in PROGRAMMES else len(PROGRAMMES), *key[2:])


def _beneficiaries(before: Tallies, after: Tallies) -> list[dict[str, Any]]:
    """The beneficiaries whose awards change most (by the size of the change, then by code)."""
    nothing = [ZERO, 0, None]
    changes = []
    for code in set(before.people) | set(after.people):
        old, new = before.people.get(code, nothing), after.people.get(code, nothing)
        if old[0] != new[0]:
            changes.append((-abs(new[0] - old[0]), code, old, new))
    changes.sort(key=lambda c: (c[0], c[1]))
    rows = []
    for _size, code, old, new in changes[:TOP_BENEFICIARIES]:
        award = new[2] or old[2]
        rows.append(
            {
                "beneficiary": code,
                "name": award.beneficiary_name,
                "kind": award.beneficiary_kind,
                "region": award.beneficiary_region,
                "in_force": format_money(old[0]),
                "candidate": format_money(new[0]),
                "difference": format_money(new[0] - old[0]),
                "in_force_awards": old[1],
                "awards": new[1],
            }
        )
    return rows


def compare_tallies(before: Tallies, after: Tallies) -> dict[str, Any]:
    totals_before, regions_before = _rollups(before)
    totals_after, regions_after = _rollups(after)
    empty = _Tally()
    totals = [
        _row({"policy_year": k[0], "programme": k[1]}, totals_before.get(k, empty), totals_after.get(k, empty))
        for k in sorted(set(totals_before) | set(totals_after), key=_sort_key)
    ]
    regions = [
        _row(
            {"policy_year": k[0], "programme": k[1], "region": k[2]},
            regions_before.get(k, empty),
            regions_after.get(k, empty),
        )
        for k in sorted(set(regions_before) | set(regions_after), key=_sort_key)
    ]
    overall_before = sum((t.money for t in totals_before.values()), ZERO)
    overall_after = sum((t.money for t in totals_after.values()), ZERO)
    summary = {
        "in_force": format_money(overall_before),
        "candidate": format_money(overall_after),
        "difference": format_money(overall_after - overall_before),
        "awards": sum(t.awards for t in totals_after.values()),
        "capped": sum(t.capped for t in totals_after.values()),
        "in_force_awards": sum(t.awards for t in totals_before.values()),
        "in_force_capped": sum(t.capped for t in totals_before.values()),
    }
    return {"summary": summary, "totals": totals, "regions": regions, "beneficiaries": _beneficiaries(before, after)}


def compare(before: Ledger, after: Ledger, from_year: int, to_year: int) -> dict[str, Any]:
    """The comparison of two ledgers over policy years `from_year`..`to_year` (money as strings)."""
    return compare_tallies(tally(before, from_year, to_year), tally(after, from_year, to_year))


# -- the use case ---------------------------------------------------------------------------------------------
JOB_PROGRESS_EVERY = 1.0  # seconds between a running job's progress writes
RESTARTED = "the subsidy service stopped before this simulation finished; nothing of it was kept: run it again"


class Simulations:
    """Runs simulations over the registry history the live projection has applied, and keeps them. A simulation
    over a long history (`job_after` registry events or more) is a job: `submit` keeps it `running` and returns at
    once; it ends `done` (with its result) or `failed` (with the reason)."""

    def __init__(
        self,
        rulebook: RuleBook,
        feed: RegistryPages,
        store: SimulationStore | None = None,
        live_position: Callable[[], int] | None = None,
        page_size: int = 1000,
        job_after: int | None = None,
    ) -> None:
        self.simulator = Simulator(rulebook)
        self.feed = feed
        self.store = store
        self.live_position = live_position
        self.page_size = page_size
        self.job_after = job_after
        self._lock = asyncio.Lock()
        self._in_force_tallies: tuple[tuple[int, int, int], Tallies] | None = None
        self._jobs: dict[str, asyncio.Task] = {}
        self._progress: dict[str, dict[str, Any]] = {}

    @property
    def history(self) -> DecisionHistory:
        return self.simulator.history

    def check(self, candidate: Any, from_year: int, to_year: int) -> RuleBook:
        """The candidate's rule book, or CandidateError naming the field."""
        if from_year > to_year:
            raise _refuse("from_year must not be after to_year", "from_year")
        return candidate_book(candidate)

    def long(self) -> bool:
        """Whether a simulation now replays a history long enough to be a job."""
        if self.job_after is None or self.store is None:
            return False
        reach = max(self.live_position() if self.live_position else 0, self.history.position)
        return reach >= self.job_after

    async def run(
        self,
        candidate: Any,
        from_year: int,
        to_year: int,
        *,
        created_by: str,
        progress: Progress | None = None,
        in_thread: bool = True,
    ) -> dict[str, Any]:
        """Check the candidate (CandidateError names the field), bring the history up to the live projection's
        position, decide under both rule books, compare, keep and return the simulation."""
        book = self.check(candidate, from_year, to_year)
        simulation = _simulation(book, from_year, to_year, created_by)
        simulation["result"] = await self._compute(book, from_year, to_year, progress, in_thread)
        if self.store is not None:
            await self.store.save(simulation)
        return simulation

    async def submit(self, candidate: Any, from_year: int, to_year: int, *, created_by: str) -> dict[str, Any]:
        """`run` for a short history; for a long one the simulation is kept `running` and decided in the
        background (`get` shows its progress, then its result)."""
        if not self.long():
            return await self.run(candidate, from_year, to_year, created_by=created_by)
        assert self.store is not None  # long() is False without a store
        book = self.check(candidate, from_year, to_year)
        simulation = _simulation(book, from_year, to_year, created_by, status="running")
        simulation["progress"] = self._progress[simulation["id"]] = {"stage": "waiting", "done": 0, "total": 0}
        await self.store.save(simulation)
        task = asyncio.create_task(self._job(simulation["id"], book, from_year, to_year))
        self._jobs[simulation["id"]] = task
        task.add_done_callback(lambda _done: self._jobs.pop(simulation["id"], None))
        return simulation

    async def _job(self, simulation_id: str, book: RuleBook, from_year: int, to_year: int) -> None:
        assert self.store is not None
        store = self.store

        def progress(stage: str, done: int, total: int) -> None:  # also called from the deciding thread
            self._progress[simulation_id] = {"stage": stage, "done": done, "total": total}

        async def report() -> None:
            while True:
                await asyncio.sleep(JOB_PROGRESS_EVERY)
                await _quietly(store.progress(simulation_id, self._progress[simulation_id]))  # next second again

        reporter = asyncio.create_task(report())
        try:
            result = await self._compute(book, from_year, to_year, progress, True)
            reporter.cancel()
            await store.finish(simulation_id, result)
        except asyncio.CancelledError:  # the service stops: the job reads failed, never half done
            await _quietly(store.fail(simulation_id, RESTARTED))
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stopped it is the job's outcome, kept for the caller
            await _quietly(store.fail(simulation_id, f"{type(exc).__name__}: {exc}"))
        finally:
            reporter.cancel()
            self._progress.pop(simulation_id, None)

    async def recover(self) -> int:
        """At start: the jobs a stopped process left running read `failed` (nothing of them was kept)."""
        return 0 if self.store is None else await self.store.fail_unfinished(RESTARTED)

    async def stop(self) -> None:
        for task in list(self._jobs.values()):
            task.cancel()
        await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    async def _compute(
        self, book: RuleBook, from_year: int, to_year: int, progress: Progress | None, in_thread: bool
    ) -> dict[str, Any]:
        async with self._lock:  # one at a time: the in-force replay is shared and extended in place
            up_to = self.live_position() if self.live_position else None
            await read_history(self.history, self.feed, up_to or None, page_size=self.page_size, progress=progress)
            work = lambda: self._decide(book, from_year, to_year, progress)  # noqa: E731
            return await asyncio.to_thread(work) if in_thread else work()

    def _decide(self, book: RuleBook, from_year: int, to_year: int, progress: Progress | None) -> dict[str, Any]:
        with collector_paused():
            return self._decide_both(book, from_year, to_year, progress)

    def _decide_both(self, book: RuleBook, from_year: int, to_year: int, progress: Progress | None) -> dict[str, Any]:
        started = time.perf_counter()
        history = self.history
        key = (len(history.events), from_year, to_year)
        if self._in_force_tallies is None or self._in_force_tallies[0] != key:
            self._in_force_tallies = key, tally(self.simulator.in_force(progress).ledger, from_year, to_year)
        before = self._in_force_tallies[1]
        in_force_seconds = time.perf_counter() - started
        started = time.perf_counter()
        after = self.simulator.candidate(book, progress)
        result = compare_tallies(before, tally(after.ledger, from_year, to_year))
        candidate_seconds = time.perf_counter() - started
        return {
            "registry_position": history.position,
            "contracts": history.contracts,
            "events_replayed": len(history.events),
            "events_skipped": after.skipped,
            "rule_sets_in_force": [rs.id for rs in self.simulator.rulebook.rule_sets],
            "rule_sets_candidate": [rs.id for rs in book.rule_sets],
            "seconds": {"in_force": round(in_force_seconds, 3), "candidate": round(candidate_seconds, 3)},
            **result,
        }

    async def get(self, simulation_id: str) -> dict[str, Any] | None:
        simulation = None if self.store is None else await self.store.get(simulation_id)
        if simulation is not None and simulation["status"] == "running" and simulation_id in self._progress:
            simulation["progress"] = self._progress[simulation_id]  # fresher than the last write
        return simulation


def _simulation(book: RuleBook, from_year: int, to_year: int, created_by: str, status: str = "done") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "status": status,
        "created_at": now_utc().isoformat(),
        "created_by": created_by,
        "from_year": from_year,
        "to_year": to_year,
        "candidate": rule_book_as_candidate(book),
    }


async def _quietly(work) -> None:
    with contextlib.suppress(Exception):  # the store may be closing: a restart marks the job failed anyway
        await work
