"""A partner's webhook receiver, as a real HTTP server: `uvicorn tests.partners.receiver_app:create_app --factory`.

It verifies each delivery with the partner client's helper and appends what it accepted to a JSON-lines file
(with the client port of the connection it came on, so a test can see connections being kept alive).
Environment: RECEIVER_SECRET (whsec_...), RECEIVER_LOG (file), RECEIVER_DELAY (seconds to stall each request,
to play a slow partner), RECEIVER_STATUS (answer this status instead of 204, to play a broken partner).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from fastapi import FastAPI, Request, Response

from tcr_shared.partners.client import InvalidWebhook, verify_webhook


def create_app() -> FastAPI:
    secret = os.environ["RECEIVER_SECRET"]
    log_path = os.environ["RECEIVER_LOG"]
    delay = float(os.environ.get("RECEIVER_DELAY", "0"))
    status = int(os.environ.get("RECEIVER_STATUS", "204"))
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict:
        return {"ready": True}

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        received = time.time()
        if delay:
            await asyncio.sleep(delay)
        try:
            event = verify_webhook(secret, body, request.headers)
        except InvalidWebhook as exc:
            return Response(str(exc), status_code=401)
        if status >= 300:
            return Response("not today", status_code=status)
        entry = {
            "webhook_id": request.headers["webhook-id"],
            "position": event.position,
            "type": event.type,
            "received_at": received,
            "client_port": request.client.port if request.client else None,  # one per TCP connection
            "data": event.data,
        }
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        return Response(status_code=204)

    return app
