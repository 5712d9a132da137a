"""The register of one point for one year: registration numbers, gap-free, in order of certification."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate


class RegistrationBook(Aggregate):
    """One per point and year. Issuing a number is an event, so numbers survive restarts and a failed
    certification (whose transaction never commits) consumes none."""

    class Opened(Aggregate.Created):
        point_id: str
        prefix: str
        year: int

    class NumberIssued(Aggregate.Event):
        contract_id: str
        sequence: int

        def apply(self, book: RegistrationBook) -> None:
            book.last_sequence = self.sequence

    def __init__(self, point_id: str, prefix: str, year: int) -> None:
        self.point_id = point_id
        self.prefix = prefix  # the point's four-digit jurisdiction and two-digit number, e.g. 640101
        self.year = year
        self.last_sequence = 0

    @staticmethod
    def id_for(point_id: str, year: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"tcr:registration-book:{point_id}:{year}")

    @classmethod
    def open(cls, point_id: str, prefix: str, year: int) -> RegistrationBook:
        return cls._create(cls.Opened, id=cls.id_for(point_id, year), point_id=point_id, prefix=prefix, year=year)

    def issue(self, contract_id: str) -> str:
        sequence = self.last_sequence + 1
        if sequence > 999_999:
            raise OverflowError(f"registration book {self.prefix}/{self.year} is full")
        self.trigger_event(self.NumberIssued, contract_id=contract_id, sequence=sequence)
        return f"{self.year}{self.prefix}{sequence:06d}"
