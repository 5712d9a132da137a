"""A row's terms read exactly as POST /v1/contracts reads a request body: the API's schema (types, lengths, party
kinds, money as text) and then the API's own construction of the domain terms."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tcr_registry.adapters.http import schemas
from tcr_registry.application.imports import RowRefused, column_of_field
from tcr_registry.domain.terms import Terms


def read_terms(body: dict[str, Any]) -> Terms:
    try:
        request = schemas.ContractIn.model_validate(body)
    except ValidationError as invalid:
        raise RowRefused([_error(error) for error in invalid.errors()]) from None
    return request.terms()


def _error(error: Any) -> tuple[str, str]:
    field = column_of_field(".".join(str(part) for part in error.get("loc", ())))
    return field, error.get("msg", "invalid").removeprefix("Value error, ")
