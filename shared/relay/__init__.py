"""NATS JetStream relay of the public feeds: `python -m tcr_shared.relay` (needs TCR_NATS_URL)."""
from tcr_shared.relay.relay import RelaySettings, last_published_position, run, subject_for

__all__ = ["RelaySettings", "last_published_position", "run", "subject_for"]
