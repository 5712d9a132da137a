"""The AsyncAPI document: generated from the models, committed, served, and true of the events really sent."""

from __future__ import annotations

import re

import httpx
import jsonschema
import pytest
import yaml
from fastapi import FastAPI

from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.language.events.subsidy import SUBSIDY_EVENT_TYPES
from tcr_shared.partners.asyncapi import DEFAULT_PATH, asyncapi_router, build_document, render
from tests.partners.conftest import feed_events
from tests.partners.events import registry_event, subsidy_event

ALL_TYPES = {**REGISTRY_EVENT_TYPES, **SUBSIDY_EVENT_TYPES}


def published_schemas(document: dict) -> dict[str, jsonschema.protocols.Validator]:
    """event type -> a validator for the payload schema of its message, as the committed document states it."""
    validators = {}
    for message in document["components"]["messages"].values():
        root = {"$ref": message["payload"]["$ref"], "components": document["components"]}
        jsonschema.Draft202012Validator.check_schema(root)
        validators[message["name"]] = jsonschema.Draft202012Validator(root)
    return validators


@pytest.fixture(scope="module")
def committed() -> dict:
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def test_the_committed_document_is_the_generated_one():
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.yaml is stale: run `python -m tcr_shared.partners.asyncapi --write` and commit it"
    )


def test_every_event_type_is_described_with_a_version_on_both_channels(committed):
    assert committed["asyncapi"] == "3.0.0"
    names = {m["name"] for m in committed["components"]["messages"].values()}
    assert names == set(ALL_TYPES)
    assert all(re.fullmatch(r"tcr\.[a-z_]+\.[a-z_]+\.[a-z_]+\.v\d+", t) for t in names)
    nats_addresses = {c["address"] for c in committed["channels"].values() if c["address"]}
    assert nats_addresses == set(ALL_TYPES)
    webhook_messages = {
        ref["$ref"].rsplit("/", 1)[1]
        for name in ("registryWebhooks", "subsidyWebhooks")
        for ref in committed["channels"][name]["messages"].values()
    }
    assert webhook_messages == set(committed["components"]["messages"])
    for operation in committed["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        assert channel in committed["channels"]


def test_schemas_accept_model_events_and_refuse_broken_ones(committed):
    validators = published_schemas(committed)
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/tcr/subsidy",
        "type": "tcr.subsidy.award.decided.v1",
        "time": "2025-03-02T08:00:00+00:00",
        "subject": "c1",
        "datacontenttype": "application/json",
        "position": 3,
        "data": subsidy_event()["data"],
    }
    validators["tcr.subsidy.award.decided.v1"].validate(event)
    for broken in (
        {**event, "position": "three"},
        {**event, "data": {**event["data"], "award": 12.5}},
        {**event, "source": "/tcr/registry"},
        {k: v for k, v in event.items() if k != "id"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validators["tcr.subsidy.award.decided.v1"].validate(broken)
    certified = registry_event("certified")
    validators["tcr.registry.contract.certified.v1"].validate(
        {**event, "source": "/tcr/registry", "type": certified["type"], "data": certified["data"]}
    )


async def test_the_document_is_served():
    app = FastAPI()
    app.include_router(asyncapi_router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/asyncapi.yaml")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == build_document()


@pytest.mark.e2e
async def test_real_registry_events_match_their_published_schemas(http, tmp_path, artifacts_dir, committed):
    from tests.partners.registry import RegistryClient, start_registry

    registry = start_registry(tmp_path, artifacts_dir / "partners")
    try:
        client = RegistryClient(http, registry)
        await client.setup_point()
        await client.every_kind_of_event()
        events = await feed_events(http, registry)
    finally:
        registry.kill()
    validators = published_schemas(committed)
    assert {e["type"] for e in events} == set(REGISTRY_EVENT_TYPES)
    for event in events:
        validators[event["type"]].validate(event)
