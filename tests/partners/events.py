"""Public events for the partner tests: see tests.support.events (the one event builder)."""

from tests.support.events import CODES, public_terms, registry_event, subsidy_event

terms = public_terms

__all__ = ["CODES", "registry_event", "subsidy_event", "terms"]
