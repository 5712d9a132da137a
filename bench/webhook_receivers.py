"""Partners' webhook receivers for bench/partners.py: several real HTTP servers (uvicorn, one port each) in one
process, so that 20 receivers do not need 20 interpreters on a 2-core machine.

    python bench/webhook_receivers.py RECEIVERS.json      # [{"port": 9101, "secret": "whsec_..."}, ...]

Each receiver verifies every delivery with the partner client's `verify_webhook` (signature, freshness, the event
in the body) and checks its own order: a position below the last one accepted is counted `out_of_order`, a
`webhook-id` already seen is counted `duplicates` (deliveries are at least once). `GET /report` answers
`{"received", "positions", "out_of_order", "duplicates", "invalid"}`; `GET /healthz` answers once it listens.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tcr_shared.partners.client import InvalidWebhook, verify_webhook  # noqa: E402
from tests.support.asgi import read_body  # noqa: E402


class Receiver:
    """One partner: a raw ASGI app (no framework on the hot path, so the receiver is not what is measured)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.positions: list[int] = []
        self.seen: set[str] = set()
        self.out_of_order = 0
        self.duplicates = 0
        self.invalid = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["method"] == "GET":
            await self._answer(send, 200, self._report(scope["path"]))
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            event = verify_webhook(self.secret, body, headers)
        except InvalidWebhook:
            self.invalid += 1
            await self._answer(send, 401, b"")
            return
        if event.id in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(event.id)
            if self.positions and event.position <= self.positions[-1]:
                self.out_of_order += 1
            self.positions.append(event.position)
        await self._answer(send, 204, b"")

    def _report(self, path: str) -> bytes:
        if path == "/report":
            return json.dumps(
                {
                    "received": len(self.positions),
                    "positions": self.positions,
                    "out_of_order": self.out_of_order,
                    "duplicates": self.duplicates,
                    "invalid": self.invalid,
                }
            ).encode()
        return json.dumps({"received": len(self.positions)}).encode()

    @staticmethod
    async def _answer(send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def serve(receivers: list[dict]) -> None:
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                Receiver(r["secret"]),
                host="127.0.0.1",
                port=r["port"],
                log_level="warning",
                access_log=False,
                http="httptools",
                lifespan="off",
            )
        )
        for r in receivers
    ]
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    asyncio.run(serve(json.loads(Path(sys.argv[1]).read_text())))
