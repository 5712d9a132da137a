"""The NATS JetStream relay of the public feeds: `tcr-relay serve` (needs TCR_NATS_URL)."""
