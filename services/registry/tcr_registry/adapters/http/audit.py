"""The registry's acts in the audit trail (tcr_shared.platform.audit records them): route function -> action."""

from __future__ import annotations

from tcr_shared.platform.audit import WEBHOOK_ACTIONS

ACTIONS = {
    "submit": "contract.submit",
    "certify": "contract.certify",
    "reject": "contract.reject",
    "withdraw": "contract.withdraw",
    "amend": "contract.amend",
    "revoke": "contract.revoke",
    "create_point": "point.create",
    "create_key": "api_key.issue",
    "revoke_key": "api_key.revoke",
    "erase_individual": "individual.erase",
    "start_import": "import.start",
    **WEBHOOK_ACTIONS,
}
