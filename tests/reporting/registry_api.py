"""The registry for the reporting tests: see tests.support.registry (the one registry driver)."""

from tests.support.registry import RegistryApi, credit_code, org, wait_for_position

__all__ = ["RegistryApi", "credit_code", "org", "wait_for_position"]
