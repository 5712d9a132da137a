"""What the tests' own ASGI receivers (partners' webhook endpoints) share."""

from __future__ import annotations


async def read_body(receive) -> bytes:
    """The whole body of an ASGI HTTP request, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
