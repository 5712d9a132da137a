"""The AsyncAPI 3 document of tcr's public events, generated from the pydantic models the code uses.

    python -m tcr_shared.partners.asyncapi            # print it
    python -m tcr_shared.partners.asyncapi --write    # write docs/asyncapi.yaml (committed; a test fails on drift)

Services serve it with `app.include_router(asyncapi_router())` at `/asyncapi.yaml`.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tcr_shared.language.events import registry as registry_events
from tcr_shared.language.events import subsidy as subsidy_events
from tcr_shared.language.events.envelope import FeedEvent

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
PUBLISHERS: dict[str, tuple[str, dict[str, type[BaseModel]]]] = {
    "registry": (registry_events.SOURCE, registry_events.REGISTRY_EVENT_TYPES),
    "subsidy": (subsidy_events.SOURCE, subsidy_events.SUBSIDY_EVENT_TYPES),
}

DESCRIPTION = """\
Every registration, certification, amendment, revocation (registry) and every subsidy award decision,
adjustment and claw-back (subsidy) as a CloudEvents 1.0 JSON object, in each publisher's global order
(`position`). Three ways to receive them, with the same payloads:

* **Feed** (pull): `GET /v1/events?after=<position>&limit=&wait=` and Server-Sent Events at `/v1/events/stream`
  on each service (registry :8001, subsidy :8002), with a `partner` key.
* **Webhooks** (push): `POST /v1/subscriptions` on the registry (contract events) or the subsidy service (award
  events). One event per POST, in feed order per subscription, at least once; signed per Standard Webhooks
  (`webhook-id` = the event id, `webhook-timestamp`, `webhook-signature` = HMAC-SHA256 with the subscription's
  `whsec_` secret). De-duplicate on `webhook-id`. Answer 2xx within 10 s; failures are retried with exponential
  backoff (5 s up to 10 h) for about 3 days, then the subscription is paused with a reason until resumed.
* **NATS JetStream**: stream `TCR`, subject = the event type (`tcr.registry.contract.certified.v1`), header
  `Nats-Msg-Id` = the event id, `Tcr-Position`, `Tcr-Source`. Use your own durable consumer.

Every type carries its version (`.v1`); a change that breaks consumers gets a new type (`.v2`), published
alongside the old one for a transition period. Individuals' names and identity numbers never appear.
"""


def _pascal(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace("_", ".").split(".")[1:])


def _envelope_schema(defs: dict[str, Any]) -> dict[str, Any]:
    schema = FeedEvent.model_json_schema(ref_template=REF, mode="serialization")
    defs.update(schema.pop("$defs", {}))
    schema["title"] = "CloudEvent"
    schema["description"] = "CloudEvents 1.0 (structured JSON) with the tcr extension attribute `position`."
    schema["required"] = sorted(set(schema.get("required", [])) | {"specversion", "datacontenttype"})
    return schema


@lru_cache(maxsize=1)
def build_document() -> dict[str, Any]:
    all_models = [(m, "serialization") for _, types in PUBLISHERS.values() for m in types.values()]
    refs, top = models_json_schema(all_models, ref_template=REF)
    schemas: dict[str, Any] = dict(sorted(top.get("$defs", {}).items()))
    schemas["CloudEvent"] = _envelope_schema(schemas)

    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    webhook_messages: dict[str, dict[str, Any]] = {"registry": {}, "subsidy": {}}
    for publisher, (source, types) in PUBLISHERS.items():
        for event_type, model in types.items():
            name = _pascal(event_type)
            data_ref = refs[(model, "serialization")]["$ref"]
            schemas[f"{name}Event"] = {
                "title": event_type,
                "allOf": [
                    {"$ref": REF.format(model="CloudEvent")},
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "type": {"const": event_type},
                            "source": {"const": source},
                            "datacontenttype": {"const": "application/json"},
                            "data": {"$ref": data_ref},
                        },
                    },
                ],
            }
            messages[name] = {
                "name": event_type,
                "title": model.__name__,
                "summary": (model.__doc__ or f"{event_type}").strip().splitlines()[0],
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": REF.format(model="DeliveryHeaders")},
                "payload": {"$ref": REF.format(model=f"{name}Event")},
            }
            channel = f"nats{name}"
            channels[channel] = {
                "address": event_type,
                "title": f"NATS subject {event_type}",
                "servers": [{"$ref": "#/servers/nats"}],
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            operations[f"publish{name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"The relay publishes every {event_type} event to JetStream stream TCR.",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
            }
            webhook_messages[publisher][name] = {"$ref": f"#/components/messages/{name}"}
    for publisher, msgs in webhook_messages.items():
        channel = f"{publisher}Webhooks"
        channels[channel] = {
            "address": None,
            "title": f"Webhooks from the {publisher} service",
            "description": f"POST to the URL of a subscription made with `POST /v1/subscriptions` on the {publisher} "
            "service; one event per request, Standard Webhooks signature headers.",
            "servers": [{"$ref": "#/servers/partnerEndpoint"}],
            "messages": msgs,
        }
        operations[f"deliver{publisher.capitalize()}Webhooks"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"Deliver {publisher} events to a subscriber, in feed order, at least once.",
            "bindings": {"http": {"method": "POST"}},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in msgs],
        }
    schemas["DeliveryHeaders"] = {
        "type": "object",
        "description": "Webhooks carry the Standard Webhooks headers; NATS messages carry Nats-Msg-Id, "
        "Tcr-Position and Tcr-Source. Both name the event id for de-duplication.",
        "properties": {
            "webhook-id": {"type": "string", "description": "The event id; the same on every retry and replay"},
            "webhook-timestamp": {"type": "string", "description": "Unix seconds when this attempt was signed"},
            "webhook-signature": {"type": "string", "description": "v1,<base64 HMAC-SHA256 of id.timestamp.body>"},
            "Nats-Msg-Id": {"type": "string", "description": "The event id (JetStream de-duplication)"},
            "Tcr-Position": {"type": "string", "description": "The event's position in its publisher's feed"},
            "Tcr-Source": {"type": "string", "enum": list(PUBLISHERS)},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tcr public events (Ningxia technology contract registry)",
            "version": VERSION,
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "NATS JetStream; stream TCR (subjects tcr.registry.contract.> and tcr.subsidy.award.>)",
            },
            "partnerEndpoint": {
                "host": "{host}",
                "protocol": "https",
                "description": "The partner's own webhook endpoint (http allowed for local tests)",
                "variables": {"host": {"description": "host of the subscription's URL"}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def render() -> str:
    return yaml.dump(build_document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def asyncapi_router(path: str = "/asyncapi.yaml") -> APIRouter:
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    async def asyncapi() -> Response:
        return Response(render(), media_type="application/yaml")

    return router


DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", nargs="?", const=str(DEFAULT_PATH), help="write the file (default docs/asyncapi.yaml)"
    )
    args = parser.parse_args(argv)
    if args.write:
        Path(args.write).write_text(render(), encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
