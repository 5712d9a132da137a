"""The registry as an eventsourcing application: the contract and registration-book aggregates in one
event store, whose notification log is the public feed's source."""

from __future__ import annotations

from eventsourcing.application import Application


class Registry(Application):
    name = "registry"
    # Events are facts of a government register: keep them readable JSON, uncompressed and uncached here;
    # the writer keeps its own cache of the aggregates it has just written.
    env = {"CREATE_TABLE": "y"}
