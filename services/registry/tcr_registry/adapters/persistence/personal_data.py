"""Individuals' names and identity numbers, encrypted inside the stored events with a key per individual.

At the persistence boundary (the event store's mapper), never in the domain: an event's terms keep their shape,
but an individual party's `name` and `id_number` are stored as `pii:v1:<subject>:<base64(nonce || ciphertext)>`
(AES-256-GCM). <subject> is a keyed hash of the identity number (the pepper is random and sealed like the keys),
so the store never holds the number itself. Each data key is sealed with the master key (tcr_shared.platform.
sealing) in `personal_keys`. Erasure (PIPL art. 47) destroys the data key: the events still load and replay, and
the person's fields read ERASED. Amounts, regions, kinds and everything the public feed carries stay readable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent
from sqlalchemy import Engine, create_engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from tcr_registry.adapters.persistence.models import personal_keys
from tcr_registry.domain.terms import ERASED
from tcr_shared.platform.database import Database
from tcr_shared.platform.sealing import MasterKey, SealingError

PREFIX = "pii:v1:"
PEPPER_SUBJECT = "~pepper"
PERSONAL_FIELDS = ("name", "id_number")
TERMS_FIELDS = ("terms", "previous_terms")
PARTY_ROLES = ("seller", "buyer", "intermediary")
CACHE_SECONDS = 5.0  # how long another process may keep using a key it has read after an erasure elsewhere


def canonical_id_number(id_number: str) -> str:
    return id_number.strip().upper()


class PersonalKeys:
    """The per-individual data keys, sealed with the master key. Thread-safe: the writer thread and the reader
    threads share it."""

    def __init__(self, engine: Engine, master: MasterKey) -> None:
        self._engine = engine
        self._master = master
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._erased: dict[str, tuple[float, bool]] = {}
        self._pepper: bytes | None = None

    @classmethod
    def for_database(cls, database: Database, master: MasterKey) -> PersonalKeys:
        return cls(create_engine(database.sync_url, pool_pre_ping=True), master)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        """The registry database (synchronous), where the keys and the events are."""
        return self._engine

    def subject(self, id_number: str) -> str:
        """Who an identity number belongs to, as the store knows them (never the number itself)."""
        if self._pepper is None:
            try:
                self._pepper = self._key(PEPPER_SUBJECT, create=True)
            except SealingError as exc:
                raise SealingError(
                    f"the master key ({self._master.source}, kid {self._master.kid}) does not open the personal data "
                    "keys of this database: every replica needs the TCR_MASTER_KEY that sealed them"
                ) from exc
        digest = hmac.new(self._pepper, canonical_id_number(id_number).encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def key(self, subject: str, create: bool = False) -> bytes | None:
        """The subject's data key; None once erased (or never created, unless `create`)."""
        cached = self._cache.get(subject)
        if cached is not None and cached[0] > time.monotonic() and (cached[1] is not None or not create):
            return cached[1]
        key = self._key(subject, create)
        with self._lock:
            self._cache[subject] = (time.monotonic() + CACHE_SECONDS, key)
        return key

    def erased(self, subject: str) -> bool:
        """Whether the subject was ever erased (a person registered again after an erasure has a new key, but what
        was held of them before, legacy clear text included, stays erased)."""
        cached = self._erased.get(subject)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        t = personal_keys
        with self._engine.connect() as conn:
            erased_at = conn.execute(select(t.c.erased_at).where(t.c.subject == subject)).scalar_one_or_none()
        with self._lock:
            self._erased[subject] = (time.monotonic() + CACHE_SECONDS, erased_at is not None)
        return erased_at is not None

    def erase(self, subject: str, by: str, held_in_clear: Callable[[], bool] = lambda: False) -> str | None:
        """Destroy the subject's data key. 'erased', 'already erased', or None when nothing was ever held.
        `held_in_clear()` says whether events stored before encryption name the person: such a person has no key,
        and the erasure is recorded all the same (those events then read ERASED)."""
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            row = conn.execute(select(personal_keys).where(personal_keys.c.subject == subject)).first()
            if row is None:
                if not held_in_clear():
                    return None
                conn.execute(
                    insert(personal_keys).values(subject=subject, sealed_key=None, erased_at=now, erased_by=by)
                )
            elif row.sealed_key is None:
                return "already erased"
            else:
                conn.execute(
                    update(personal_keys)
                    .where(personal_keys.c.subject == subject)
                    .values(sealed_key=None, erased_at=now, erased_by=by)
                )
        with self._lock:
            self._cache.pop(subject, None)
            self._erased.pop(subject, None)
        return "erased"

    def _key(self, subject: str, create: bool) -> bytes | None:
        t = personal_keys
        with self._engine.begin() as conn:
            row = conn.execute(select(t.c.sealed_key).where(t.c.subject == subject)).first()
            if row is not None and row.sealed_key is not None:
                return self._master.open_bytes(row.sealed_key)
            if not create:
                return None
            fresh = self._master.seal_bytes(AESGCM.generate_key(bit_length=256))
            try:
                with conn.begin_nested():
                    if row is None:
                        conn.execute(insert(t).values(subject=subject, sealed_key=fresh))
                    else:  # erased earlier: new data about the person gets a new key; the old stays destroyed
                        conn.execute(
                            update(t).where(t.c.subject == subject, t.c.sealed_key.is_(None)).values(sealed_key=fresh)
                        )
            except IntegrityError:
                pass  # another process created it first: theirs is the key
            stored = conn.execute(select(t.c.sealed_key).where(t.c.subject == subject)).scalar_one()
        return self._master.open_bytes(stored)


class PersonalDataMapper(Mapper):
    """The library's mapper, with individuals' personal fields encrypted on the way in and out of the store."""

    keys: PersonalKeys | None = None  # set by the Registry right after construction

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = vars(domain_event)
        if self.keys is None or not any(_has_individual(state.get(f)) for f in TERMS_FIELDS):
            return super().to_stored_event(domain_event)
        sealed = dict(state)
        for field in TERMS_FIELDS:
            if isinstance(state.get(field), dict):
                sealed[field] = _map_parties(state[field], self._seal_party)
        shadow = object.__new__(type(domain_event))
        object.__setattr__(shadow, "__dict__", sealed)
        return super().to_stored_event(shadow)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        domain_event = super().to_domain_event(stored_event)
        state = vars(domain_event)
        for field in TERMS_FIELDS:
            if _has_sealed(state.get(field)) or _has_clear_individual(state.get(field)):
                state[field] = _map_parties(state[field], self._open_party)
        return domain_event

    def _seal_party(self, party: dict[str, Any]) -> dict[str, Any]:
        if party.get("kind") != "individual" or not party.get("id_number") or _is_sealed(party.get("id_number")):
            return party
        if party["id_number"] == ERASED:
            return party
        subject = self.keys.subject(party["id_number"])
        key = self.keys.key(subject, create=True)
        sealed = dict(party)
        for field in PERSONAL_FIELDS:
            if isinstance(party.get(field), str):
                sealed[field] = _encrypt(key, subject, field, party[field])
        return sealed

    def _open_party(self, party: dict[str, Any]) -> dict[str, Any]:
        if _in_clear(party) and self.keys is not None and self.keys.erased(self.keys.subject(party["id_number"])):
            return {**party, **dict.fromkeys(PERSONAL_FIELDS, ERASED)}  # stored before encryption, since erased
        opened = dict(party)
        for field in PERSONAL_FIELDS:
            value = party.get(field)
            if _is_sealed(value):
                subject = value[len(PREFIX) :].split(":", 1)[0]
                opened[field] = _decrypt(self.keys.key(subject) if self.keys else None, subject, field, value)
        return opened


def _encrypt(key: bytes, subject: str, field: str, text: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, text.encode(), f"{subject}:{field}".encode())
    return f"{PREFIX}{subject}:{base64.b64encode(nonce + sealed).decode()}"


def _decrypt(key: bytes | None, subject: str, field: str, value: str) -> str:
    if key is None:
        return ERASED
    payload = base64.b64decode(value.rsplit(":", 1)[1])
    try:
        return AESGCM(key).decrypt(payload[:12], payload[12:], f"{subject}:{field}".encode()).decode()
    except Exception:  # sealed with a key destroyed by an erasure (the person has a new key since)
        return ERASED


def _is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _parties(terms: Any) -> list[dict[str, Any]]:
    if not isinstance(terms, dict):
        return []
    return [terms[role] for role in PARTY_ROLES if isinstance(terms.get(role), dict)]


def _has_individual(terms: Any) -> bool:
    return any(party.get("kind") == "individual" for party in _parties(terms))


def _in_clear(party: dict[str, Any]) -> bool:
    """An individual stored before encryption (by the code before it): name and identity number in clear."""
    number = party.get("id_number")
    return party.get("kind") == "individual" and isinstance(number, str) and not _is_sealed(number) and number != ERASED


def _has_clear_individual(terms: Any) -> bool:
    return any(_in_clear(party) for party in _parties(terms))


def named_in_clear(engine: Engine, events_table: str, id_number: str) -> bool:
    """Whether an event stored before encryption names this identity number as an individual's. The stored bytes
    are searched by the database (one scan of the events table, no event leaves it but the candidates), then each
    candidate is read to be sure the number is an individual party's, not, say, part of a title."""
    number = canonical_id_number(id_number)
    needles = {f'"{spelling}"'.encode() for spelling in (number, number.lower())}
    if engine.dialect.name == "postgresql":
        found = "position(CAST(:needle AS bytea) IN state) > 0"
    else:
        found = "instr(state, :needle) > 0"
    with engine.connect() as conn:
        for needle in needles:
            statement = text(f"SELECT state FROM {events_table} WHERE {found} LIMIT 100")  # noqa: S608 (our name)
            for state in conn.execute(statement, {"needle": needle}).scalars():
                if _names_individual(bytes(state), number):
                    return True
    return False


def _names_individual(state: bytes, number: str) -> bool:
    try:
        event = json.loads(state)
    except ValueError:
        return False
    return any(
        _in_clear(party) and canonical_id_number(party["id_number"]) == number
        for field in TERMS_FIELDS
        for party in _parties(event.get(field) if isinstance(event, dict) else None)
    )


def _has_sealed(terms: Any) -> bool:
    return any(_is_sealed(party.get(f)) for party in _parties(terms) for f in PERSONAL_FIELDS)


def _map_parties(terms: dict[str, Any], change) -> dict[str, Any]:
    mapped = dict(terms)
    for role in PARTY_ROLES:
        if isinstance(terms.get(role), dict):
            mapped[role] = change(terms[role])
    return mapped
