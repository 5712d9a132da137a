"""Feeds: the `/v1/events` router a publisher mounts, the client that reads one, and the exactly-once follower."""
