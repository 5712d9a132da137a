"""Deprecated import path, kept so that partners' code written against tcr-partner 1.0 keeps working:
use `tcr_shared.partners.client`."""

from tcr_shared.partners.client import *  # noqa: F403
from tcr_shared.partners.client import __all__  # noqa: F401
