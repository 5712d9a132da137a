"""The OpenAPI helpers of tcr_shared.platform.problems: error answers declared as application/problem+json."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from tcr_shared.platform.problems import (
    PROBLEM_JSON,
    PROBLEM_RESPONSES,
    PROBLEM_SCHEMA,
    install_problem_openapi,
    problem_responses,
)


class Thing(BaseModel):
    name: str


def test_a_router_declares_problems_with_responses():
    router = APIRouter(responses=PROBLEM_RESPONSES)

    @router.post("/things")
    async def create(thing: Thing) -> dict:
        return {}

    @router.get("/things/{name}", responses=problem_responses(404))
    async def one(name: str) -> dict:
        return {}

    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    post = paths["/things"]["post"]["responses"]
    for status in ("401", "409", "412", "413", "429"):
        assert post[status]["content"] == {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}, status
    assert post["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert paths["/things/{name}"]["get"]["responses"]["404"]["content"][PROBLEM_JSON]["schema"]["title"] == "Problem"


def test_install_declares_every_route_and_replaces_the_json_422():
    app = FastAPI()

    @app.post("/things", responses={404: {"description": "no such list"}})
    async def create(thing: Thing) -> dict:
        return {}

    @app.get("/things")
    async def read() -> dict:
        return {}

    install_problem_openapi(app)
    document = app.openapi()
    assert document["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    assert "HTTPValidationError" not in document["components"]["schemas"]
    post = document["paths"]["/things"]["post"]["responses"]
    assert post["422"]["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert post["404"]["description"] == "no such list" and list(post["404"]["content"]) == [PROBLEM_JSON]
    assert {"409", "412", "413"} <= post.keys()
    get = document["paths"]["/things"]["get"]["responses"]
    assert {"401", "403", "429", "503"} <= get.keys() and "409" not in get
    assert app.openapi() is document  # built once
