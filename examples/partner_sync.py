"""A partner system that keeps a local SQLite table of contracts in sync with the tcr registry.

    pip install ./shared                      # the partner client alone (httpx, pydantic, standardwebhooks)
    python examples/partner_sync.py --url http://127.0.0.1:8001 --key <partner key> --db partner.db
    python examples/partner_sync.py ... --once               # catch up and stop (for cron)
    python examples/partner_sync.py ... --webhook-port 9000 --secret whsec_...   # receive webhooks instead

Pull mode follows the feed from the position saved in the database (catch-up pages, then the live stream,
reconnecting with backoff). Each event is applied in the same transaction as the new position, so a crash never
loses or double-applies one. Push mode verifies each webhook's signature and applies it the same way; a delivery
that is repeated (at-least-once) or older than the saved position is acknowledged and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tcr_shared.partners.client import FeedEvent, InvalidWebhook, PartnerClient, verify_webhook

SCHEMA = """
CREATE TABLE IF NOT EXISTS contracts (
    contract_id TEXT PRIMARY KEY, status TEXT NOT NULL, registration_number TEXT, title TEXT NOT NULL,
    category TEXT NOT NULL, amount TEXT NOT NULL, technology_amount TEXT NOT NULL,
    seller_region TEXT, buyer_region TEXT, last_event_id TEXT NOT NULL, last_position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sync_state (feed TEXT PRIMARY KEY, position INTEGER NOT NULL);
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def saved_position(db: sqlite3.Connection, feed: str) -> int:
    row = db.execute("SELECT position FROM sync_state WHERE feed = ?", (feed,)).fetchone()
    return row[0] if row else 0


def apply(db: sqlite3.Connection, feed: str, event: FeedEvent) -> bool:
    """Apply one event and record its position, atomically. False if it was already applied."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if event.position <= saved_position(db, feed):
            db.execute("ROLLBACK")
            return False
        if event.type.startswith("tcr.registry.contract."):
            d, t = event.data, event.data["terms"]
            db.execute(
                "INSERT INTO contracts VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(contract_id) DO UPDATE SET "
                "status=excluded.status, registration_number=COALESCE(excluded.registration_number, "
                "contracts.registration_number), title=excluded.title, category=excluded.category, "
                "amount=excluded.amount, technology_amount=excluded.technology_amount, "
                "seller_region=excluded.seller_region, buyer_region=excluded.buyer_region, "
                "last_event_id=excluded.last_event_id, last_position=excluded.last_position",
                (
                    d["contract_id"],
                    d["status"],
                    d.get("registration_number"),
                    t["title"],
                    t["category"],
                    t["amount"],
                    t["technology_amount"],
                    (t.get("seller") or {}).get("region"),
                    (t.get("buyer") or {}).get("region"),
                    event.id,
                    event.position,
                ),
            )
        db.execute(
            "INSERT INTO sync_state VALUES (?, ?) ON CONFLICT(feed) DO UPDATE SET position = excluded.position",
            (feed, event.position),
        )
        db.execute("COMMIT")
        return True
    except BaseException:
        db.execute("ROLLBACK")
        raise


async def pull(url: str, key: str, db: sqlite3.Connection, once: bool) -> int:
    applied = 0
    client = PartnerClient(url, key)
    try:
        async for event in client.events(after=saved_position(db, url), live=not once):
            applied += apply(db, url, event)
    finally:
        await client.aclose()
    return applied


def serve_webhooks(port: int, secret: str, db: sqlite3.Connection, feed: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                event = verify_webhook(secret, body, dict(self.headers.items()))
            except InvalidWebhook as exc:
                self.send_response(401)
                self.end_headers()
                self.wfile.write(str(exc).encode())
                return
            apply(db, feed, event)
            self.send_response(204)
            self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001", help="the registry's base URL")
    parser.add_argument("--key", help="a partner API key (pull mode)")
    parser.add_argument("--db", default="partner.db")
    parser.add_argument("--once", action="store_true", help="catch up, then stop")
    parser.add_argument("--webhook-port", type=int, help="receive webhooks on this port instead of pulling")
    parser.add_argument("--secret", help="the subscription's whsec_ secret (push mode)")
    args = parser.parse_args()
    db = open_db(args.db)
    if args.webhook_port:
        serve_webhooks(args.webhook_port, args.secret, db, args.url)
    else:
        applied = asyncio.run(pull(args.url, args.key, db, args.once))
        count = db.execute("SELECT count(*) FROM contracts").fetchone()[0]
        print(f"applied {applied} events; {count} contracts; position {saved_position(db, args.url)}")


if __name__ == "__main__":
    main()
