"""The fault suite's checks catch what they are for: fed a log with a gap, a repeated event, a doubled write, an
acknowledged write the log does not hold, or a retry refused after its write committed, they say so."""

from __future__ import annotations

from tests.chaos.harness import Committed, Findings, Load, Write, check_feed, check_numbers, check_writes

CONTRACT = "c-1"


def event(position: int, kind: str, subject: str = CONTRACT, **data) -> dict:
    terms = {"title": data.pop("title", "t"), "amount": "10.00", "technology_amount": "9.00"}
    return {
        "id": f"e-{position}",
        "position": position,
        "type": f"tcr.registry.contract.{kind}.v1",
        "subject": subject,
        "data": {"terms": terms, "status": kind, **data},
    }


def submit(title: str = "t", **fields) -> Write:
    body = {"title": title, "amount": "10.00", "technology_amount": "9.00"}
    return Write("submit", CONTRACT, "k-submit", body, "kill -9 registry", **fields)


def test_numbers_must_be_gap_free_and_issued_once() -> None:
    certified = [
        event(n, "certified", f"c-{n}", registration_number=f"2026640101{s:06d}") for n, s in enumerate((1, 3))
    ]
    findings = Findings()
    check_numbers(certified, findings)
    assert findings.problems and "missing [2]" in findings.problems[0]

    findings = Findings()
    check_numbers([event(n, "certified", f"c-{n}", registration_number="2026640101000001") for n in (1, 2)], findings)
    assert findings.problems and "issued twice [1]" in findings.problems[0]

    findings = Findings()
    check_numbers([event(1, "certified", registration_number="2026640101000001")], findings)
    assert not findings.problems


def test_the_feed_must_not_repeat_or_go_back() -> None:
    findings = Findings()
    check_feed([event(1, "submitted"), event(2, "certified"), event(2, "amended")], findings)
    assert len(findings.problems) == 2  # position 2 twice, and event id e-2 twice


def test_an_acknowledged_write_missing_from_the_log_is_lost() -> None:
    load = Load(writes=[submit(answer={"id": CONTRACT, "title": "t", "amount": "10.00", "technology_amount": "9.00"})])
    findings = Findings()
    check_writes(load, Committed.of([]), findings)
    assert findings.lost and findings.rows["kill -9 registry"]["lost"] == 1

    findings = Findings()
    check_writes(load, Committed.of([event(1, "submitted")]), findings)
    assert not findings.failed and findings.rows["kill -9 registry"]["acknowledged"] == 1


def test_a_write_applied_twice_is_duplicated() -> None:
    load = Load(writes=[submit(answer={"id": CONTRACT, "title": "t", "amount": "10.00", "technology_amount": "9.00"})])
    findings = Findings()
    check_writes(load, Committed.of([event(1, "submitted"), event(2, "submitted", "c-2")]), findings)
    assert findings.duplicated


def test_a_retry_refused_after_its_write_committed_is_a_contradiction() -> None:
    certify = Write("certify", CONTRACT, "k", {}, "pg restart -m fast", attempts=[503, "ambiguous", 409])
    findings = Findings()
    check_writes(Load(writes=[certify]), Committed.of([event(1, "submitted"), event(2, "certified")]), findings)
    # Every write records its Idempotency-Key with its events: a refused retry of a committed write fails the run.
    assert findings.contradictions and findings.failed
    assert findings.rows["pg restart -m fast"]["contradictions"] == 1

    refused_submit = submit(attempts=["ambiguous", 422])
    findings = Findings()
    check_writes(Load(writes=[refused_submit]), Committed.of([event(1, "submitted")]), findings)
    assert findings.contradictions and findings.failed  # submit is meant to be safe: this fails the suite

    findings = Findings()
    check_writes(Load(writes=[certify]), Committed.of([event(1, "submitted")]), findings)
    assert not findings.known_contradictions  # refused and not committed: an honest answer
