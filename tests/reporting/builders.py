"""Feed events for the reporting tests: see tests.support.events (the one event builder)."""

from tests.support.events import Feed, award, party, terms

__all__ = ["Feed", "award", "party", "terms"]
