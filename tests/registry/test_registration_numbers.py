"""Registration numbers: YYYY + 4-digit jurisdiction + 2-digit point number + 6-digit sequence, gap-free per
point and year in order of certification, also when many certifications arrive at once."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

from tests.support.asserts import assert_problem
from tests.support.registry import party

COUNTY = {"6400": "640104", "6401": "640104", "6402": "640205", "6403": "640302", "6404": "640402", "6405": "640502"}


async def _submit_many(registry, point, n: int, signed_on: str = "2024-06-01") -> list[str]:
    contracts = await asyncio.gather(
        *(
            registry.submit(point, signed_on=signed_on, seller=party("enterprise", COUNTY[point.jurisdiction]))
            for _ in range(n)
        )
    )
    return [c["id"] for c in contracts]


async def _certify(registry, point, cid: str, certified_at: str):
    return await registry.client.post(
        f"/v1/contracts/{cid}/certify",
        json={"certified_at": certified_at, "expert_review_ref": "ZJ"},
        headers=point.headers,
    )


async def test_concurrent_certifications_are_gap_free_in_certification_order(registry):
    """60 certifications at once, back-dated at random: each is numbered or refused for its order (422 naming
    certified_at and the bound); the numbered ones are gap-free, in commit order, and in order of certification."""
    point = await registry.point("6405")
    ids = await _submit_many(registry, point, 60)
    head = await registry.head()
    rng = random.Random(7)
    times = [
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:15:00+08:00" for _ in ids
    ]
    answers = await asyncio.gather(*(_certify(registry, point, cid, at) for cid, at in zip(ids, times)))
    assert {r.status_code for r in answers} <= {200, 422}
    for refused in (r for r in answers if r.status_code == 422):
        [error] = assert_problem(refused, 422, "certified_at")["errors"]
        assert "must not be earlier than 2025-" in error["message"] and f"20256405{point.number}" in error["message"]
    numbered = [r for r in answers if r.status_code == 200]
    assert numbered  # the first one to commit always gets a number
    _assert_gap_free_in_certification_order(numbered, f"20256405{point.number}")
    feed = [e for e in await registry.feed(head) if e["type"].endswith("certified.v1")]
    assert [int(e["data"]["registration_number"][-6:]) for e in feed] == list(range(1, len(numbered) + 1))


async def test_concurrent_certifications_at_now_are_all_numbered_in_order(registry):
    """Without certified_at the time is read when the writer runs the command, in commit order: racing
    certifications never refuse each other."""
    point = await registry.point("6404")
    ids = await _submit_many(registry, point, 60)
    answers = await asyncio.gather(
        *(
            registry.client.post(
                f"/v1/contracts/{cid}/certify", json={"expert_review_ref": "ZJ"}, headers=point.headers
            )
            for cid in ids
        )
    )
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.status_code != 200][:3]
    year = answers[0].json()["policy_year"]
    _assert_gap_free_in_certification_order(answers, f"{year}6404{point.number}")
    assert len(answers) == 60


def _assert_gap_free_in_certification_order(answers, prefix: str) -> None:
    numbers = [r.json()["registration_number"] for r in answers]
    assert all(len(n) == 16 and n.startswith(prefix) for n in numbers)
    assert sorted(int(n[-6:]) for n in numbers) == list(range(1, len(numbers) + 1))  # no gap, no duplicate
    # "In order of certification": the order the certifications were committed, which is the log's order, and
    # the order of their certification times.
    by_position = sorted(answers, key=lambda r: int(r.headers["TCR-Position"]))
    assert [int(r.json()["registration_number"][-6:]) for r in by_position] == list(range(1, len(numbers) + 1))
    times = [datetime.fromisoformat(r.json()["certified_at"]) for r in by_position]
    assert times == sorted(times)


async def test_a_refused_certification_consumes_no_number(registry):
    point = await registry.point("6405")
    good = await _submit_many(registry, point, 6)
    revoked = good.pop()
    r = await _certify(registry, point, revoked, "2025-03-01T10:00:00+08:00")
    assert r.json()["registration_number"].endswith("000001")
    await registry.client.post(f"/v1/contracts/{revoked}/revoke", json={"reason": "r"}, headers=point.headers)
    # Interleave certifications that must fail (revoked, future, before signing) with ones that succeed.
    calls = []
    for i, cid in enumerate(good):
        calls.append(_certify(registry, point, revoked, "2025-03-02T10:00:00+08:00"))
        calls.append(_certify(registry, point, cid, "2099-01-01T00:00:00+08:00"))
        calls.append(_certify(registry, point, cid, "2024-05-31T10:00:00+08:00"))
        calls.append(_certify(registry, point, cid, f"2025-04-{i + 1:02d}T10:00:00+08:00"))
    answers = await asyncio.gather(*calls)
    ok = [r for r in answers if r.status_code == 200]
    assert len(ok) == len(good)
    assert sorted(r.json()["registration_number"][-6:] for r in ok) == [f"{i:06d}" for i in range(2, 7)]
    # The rest are refused: 409 (revoked, or already certified by the good call) or 422 (bad date).
    assert sum(r.status_code in (409, 422) for r in answers) == 3 * len(good)


async def test_separate_sequences_per_point_and_per_year(registry):
    p1 = await registry.point("6401")
    p2 = await registry.point("6401")
    ids1 = await _submit_many(registry, p1, 12)
    ids2 = await _submit_many(registry, p2, 12)
    # Alternate years; 2025-12-31T16:30Z is 2026-01-01 00:30 in Shanghai, so it counts in 2026.
    years = {"2025": "2025-12-31T23:59:59+08:00", "2026": "2025-12-31T16:30:00+00:00"}
    calls, expected = [], []
    for i, (a, b) in enumerate(zip(ids1, ids2)):
        year = "2025" if i % 2 else "2026"
        calls += [_certify(registry, p1, a, years[year]), _certify(registry, p2, b, years[year])]
        expected += [(p1, year), (p2, year)]
    answers = await asyncio.gather(*calls)
    assert {r.status_code for r in answers} == {200}
    sequences: dict[tuple[str, str], list[int]] = {}
    for r, (point, year) in zip(answers, expected):
        number = r.json()["registration_number"]
        assert number[:4] == year and r.json()["policy_year"] == int(year)
        assert number[4:10] == f"6401{point.number}"
        sequences.setdefault((point.number, year), []).append(int(number[10:]))
    assert len(sequences) == 4
    for seq in sequences.values():
        assert sorted(seq) == list(range(1, 7))


async def test_policy_year_is_taken_in_shanghai(registry):
    point = await registry.point("6402")
    ids = await _submit_many(registry, point, 3, signed_on="2025-12-01")
    cases = [
        ("2026-01-01T00:30:00+08:00", "2026", 2026, 1),
        ("2025-12-31T16:30:00Z", "2026", 2026, 2),
        ("2025-12-31T23:59:00+08:00", "2025", 2025, 1),
    ]
    for cid, (at, prefix, year, sequence) in zip(ids, cases):
        r = await _certify(registry, point, cid, at)
        assert r.status_code == 200, r.text
        assert r.json()["registration_number"] == f"{prefix}6402{point.number}{sequence:06d}"
        assert r.json()["policy_year"] == year
    # Certification on another point of the same jurisdiction: its own number, its own sequence.
    other = await registry.point("6402")
    [cid] = await _submit_many(registry, other, 1, signed_on="2025-12-01")
    r = await _certify(registry, other, cid, "2026-01-01T00:30:00+08:00")
    assert r.json()["registration_number"] == f"20266402{other.number}000001"


async def test_certifying_twice_at_once_issues_one_number(registry):
    point = await registry.point("6403")
    [cid] = await _submit_many(registry, point, 1)
    answers = await asyncio.gather(*(_certify(registry, point, cid, "2025-02-01T10:00:00+08:00") for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409, 409]
    for r in answers:
        if r.status_code == 409:
            assert_problem(r, 409)
    [other] = await _submit_many(registry, point, 1)
    r = await _certify(registry, point, other, "2025-02-02T10:00:00+08:00")
    assert r.json()["registration_number"].endswith("000002")
