"""Pure rules of webhook delivery: type patterns, region filters, the retry schedule, personal data."""

from __future__ import annotations

import random

import pytest

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.privacy import scrub
from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.partners.webhooks import FilterError, SubscriptionFilter, WebhookSettings, retry_delay, type_matches
from tcr_shared.partners.webhooks.filters import validate_event_types, validate_regions
from tests.partners.events import registry_event, subsidy_event


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "tcr.registry.contract.certified.v1", True),
        ("tcr.registry.contract.*", "tcr.registry.contract.certified.v1", True),
        ("tcr.registry.contract.*", "tcr.subsidy.award.decided.v1", False),
        ("tcr.*.certified.v1", "tcr.registry.contract.certified.v1", True),
        ("tcr.registry.contract.certified.v1", "tcr.registry.contract.certified.v1", True),
        ("tcr.registry.contract.certified.v1", "tcr.registry.contract.certified.v10", False),
        ("tcr.registry.contract.certified", "tcr.registry.contract.certified.v1", False),
        ("tcr.registry.*.v1", "tcr.registry.contract.revoked.v1", True),
    ],
)
def test_type_patterns(pattern, event_type, expected):
    assert type_matches(pattern, event_type) is expected


def test_patterns_must_be_well_formed_and_match_something_published():
    assert validate_event_types(["tcr.registry.contract.*", "tcr.registry.contract.*"], REGISTRY_EVENT_TYPES) == [
        "tcr.registry.contract.*"
    ]
    for bad in (
        ["tcr.registry.contract.cert*"],
        ["tcr..contract"],
        ["TCR.registry.*"],
        ["tcr.subsidy.*"],
        [],
        ["tcr.registry.contract.**"],
        [7],
    ):
        with pytest.raises(FilterError):
            validate_event_types(bad, REGISTRY_EVENT_TYPES)


def test_region_codes():
    assert validate_regions(["6401", "640205", "6400", "640100", "1101", "110108"]) == [
        "6401",
        "640205",
        "6400",
        "640100",
        "1101",
        "110108",
    ]
    for bad in (["64"], ["6409"], ["640199"], ["999999"], ["64010"], ["abcd"], [6401]):
        with pytest.raises(FilterError):
            validate_regions(bad)


@pytest.mark.parametrize(
    ("regions", "seller", "buyer", "expected"),
    [
        (("6402",), "640205", "640104", True),  # seller in the prefecture
        (("6402",), "110108", "640221", True),  # buyer in the prefecture
        (("6402",), "640104", "640181", False),
        (("640100",), "640104", "640302", True),  # 6-digit prefecture code
        (("640181",), "640104", "640181", True),  # county
        (("640181",), "640104", "640106", False),
        (("6400",), "110108", "640522", True),  # the whole region
        (("6400",), "110108", "310101", False),
        (("6403", "6405"), "640502", "110108", True),
    ],
)
def test_region_filter_on_parties(regions, seller, buyer, expected):
    event = registry_event("certified", seller, buyer)
    assert SubscriptionFilter(("*",), regions).matches(event["type"], event["data"]) is expected


def test_amendment_that_moves_a_contract_out_of_a_region_still_reaches_that_region():
    event = registry_event("certified", "640205", "640104")
    data = dict(
        event["data"],
        previous_terms=event["data"]["terms"],
        terms=registry_event("certified", "640302", "640104")["data"]["terms"],
    )
    assert SubscriptionFilter(("*",), ("6402",)).matches("tcr.registry.contract.amended.v1", data)


def test_subsidy_events_filter_on_the_beneficiary_region():
    award = subsidy_event(region="640521")
    assert SubscriptionFilter(("tcr.subsidy.award.*",), ("6405",)).matches(award["type"], award["data"])
    assert not SubscriptionFilter(("tcr.subsidy.award.*",), ("6401",)).matches(award["type"], award["data"])


def test_retry_schedule_runs_from_5_seconds_to_10_hours_over_about_3_days():
    settings = WebhookSettings()
    rng = random.Random(7)
    delays, total = [], 0.0
    while total < settings.retry_window:
        delay = retry_delay(len(delays) + 1, settings, rng)
        delays.append(delay)
        total += delay
    assert 3.75 <= delays[0] <= 6.25
    assert all(later > earlier for earlier, later in zip(delays[:10], delays[1:10]))  # doubling beats the jitter
    assert max(delays) <= 36_000 * 1.25 and max(delays) >= 36_000 * 0.75
    assert 12 <= len(delays) <= 25  # attempts before the subscription is paused
    assert 2.9 * 86_400 <= total <= 3.6 * 86_400


def test_scrub_removes_individuals_names_and_identity_numbers_only():
    item = registry_event(
        "certified", buyer_individual=True, extra_personal={"name": "张三", "id_number": "640104199001011237"}
    )
    event = FeedEvent(
        id="e", source="/tcr/registry", type=item["type"], time="t", subject="s", position=1, data=item["data"]
    )
    clean = scrub(event)
    assert clean.data["terms"]["buyer"] == {
        k: v for k, v in item["data"]["terms"]["buyer"].items() if k != "id_number"
    } | {"name": None}
    assert clean.data["terms"]["seller"]["name"] == "Ningxia University"  # organisations keep their names
    assert event.data["terms"]["buyer"]["name"] == "张三"  # the original is untouched
