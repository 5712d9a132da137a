"""Webhook delivery settings (environment, prefix TCR_WEBHOOK_). Tests shorten the retry timings."""

from __future__ import annotations

from functools import cached_property

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.partners.webhooks.urls import Network, parse_networks


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_WEBHOOK_", extra="ignore")

    retry_initial: float = 5.0  # first retry after ~5 s
    retry_max: float = 36_000.0  # a single wait never exceeds 10 h
    retry_window: float = 259_200.0  # give up (pause the subscription) after ~3 days of failures
    retry_jitter: float = 0.25  # each wait is drawn from [d*(1-j), d*(1+j)]
    timeout: float = 10.0  # per request (connect + send + read); slower counts as a failure
    concurrency: int = 32  # requests in flight at once, over all subscriptions
    poll_interval: float = 1.0  # how often a caught-up subscription looks for new events without a wake-up
    batch: int = 100  # events read from the log at a time, per subscription
    # Webhook targets (docs/security.md): never loopback or internal networks, unless opened here.
    allow_loopback: bool = False  # TCR_WEBHOOK_ALLOW_LOOPBACK=1 for local development only
    allowed_networks: str = ""  # TCR_WEBHOOK_ALLOWED_NETWORKS="10.20.0.0/16, fd12::/48": on-premises partners
    deliveries_kept: int = 1000  # delivery attempts kept per subscription (older ones are pruned)

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)  # a typo fails at start-up, not at the first delivery
        return value

    @cached_property
    def networks(self) -> tuple[Network, ...]:
        return parse_networks(self.allowed_networks)

    def target_rules(self) -> dict:
        """The keyword arguments of `check_url` these settings ask for."""
        return {"allow_loopback": self.allow_loopback, "allowed_networks": self.networks}
