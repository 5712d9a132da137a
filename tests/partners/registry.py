"""The registry for the partner tests: see tests.support.registry (the one registry driver)."""

from tests.support.registry import (
    REGISTRY_APP,
    REGISTRY_WITH_WEBHOOKS,
    RegistryClient,
    named_contract_body,
    start_registry,
)

contract_body = named_contract_body

__all__ = ["REGISTRY_APP", "REGISTRY_WITH_WEBHOOKS", "RegistryClient", "contract_body", "start_registry"]
