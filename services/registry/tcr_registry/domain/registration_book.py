"""The register of one point for one year: registration numbers, gap-free, in order of certification."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from tcr_registry.domain.errors import InvalidTerms


class RegistrationBook(Aggregate):
    """One per point and year. Issuing a number is an event, so numbers survive restarts and a failed
    certification (whose transaction never commits) consumes none.

    Invariant: sequence numbers run 1, 2, 3, ... without a gap, and the certification times they were issued for
    never decrease: number n+1 is never certified earlier than number n. A back-dated certification earlier than
    the last one numbered is refused, so a late entry cannot slip in behind numbers (and into a year's figures)
    already issued. Two writers racing for the same book are kept apart by the book's version (optimistic
    concurrency): one commits, the other retries against the book as it now is, so neither order nor gaps suffer.
    """

    class Opened(Aggregate.Created):
        point_id: str
        prefix: str
        year: int

    class NumberIssued(Aggregate.Event):
        """v2 records the certification time the number was issued for; v1 numbers load with none (the book
        then knows no bound until its next number)."""

        class_version = 2
        contract_id: str
        sequence: int
        certified_at: str | None

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["certified_at"] = None

        def apply(self, book: RegistrationBook) -> None:
            book.last_sequence = self.sequence
            if self.certified_at is not None:
                book.last_certified_at = self.certified_at

    def __init__(self, point_id: str, prefix: str, year: int) -> None:
        self.point_id = point_id
        self.prefix = prefix  # the point's four-digit jurisdiction and two-digit number, e.g. 640101
        self.year = year
        self.last_sequence = 0
        self.last_certified_at: str | None = None  # ISO 8601 with offset, as certified

    @staticmethod
    @lru_cache(maxsize=4096)  # uuid5 per certification showed in the import's profile; few points and years
    def id_for(point_id: str, year: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"tcr:registration-book:{point_id}:{year}")

    @classmethod
    def open(cls, point_id: str, prefix: str, year: int) -> RegistrationBook:
        return cls._create(cls.Opened, id=cls.id_for(point_id, year), point_id=point_id, prefix=prefix, year=year)

    def issue(self, contract_id: str, certified_at: datetime) -> str:
        self._check_order(certified_at)
        sequence = self.last_sequence + 1
        if sequence > 999_999:
            raise OverflowError(f"registration book {self.prefix}/{self.year} is full")
        self.trigger_event(
            self.NumberIssued, contract_id=contract_id, sequence=sequence, certified_at=certified_at.isoformat()
        )
        return self._number(sequence)

    def _check_order(self, certified_at: datetime) -> None:
        if self.last_certified_at is None:
            return
        last = datetime.fromisoformat(self.last_certified_at)
        if certified_at < last:
            raise InvalidTerms(
                [
                    (
                        "certified_at",
                        f"must not be earlier than {self.last_certified_at}, when this point certified "
                        f"{self._number(self.last_sequence)}, its last number of {self.year}: registration numbers "
                        "follow the order of certification",
                    )
                ]
            )

    def _number(self, sequence: int) -> str:
        return f"{self.year}{self.prefix}{sequence:06d}"
