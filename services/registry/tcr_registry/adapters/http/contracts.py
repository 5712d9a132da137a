"""/v1/contracts: what registration points do, and what readers may see."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from tcr_registry.adapters.feeds.public_events import event_data, event_id, is_public, public_type
from tcr_registry.adapters.http import schemas
from tcr_registry.adapters.http.audit import ACTIONS
from tcr_registry.adapters.http.idempotency import IdempotentRequest, crash_after_commit
from tcr_registry.adapters.http.views import contract_view, etag, parse_if_match
from tcr_registry.adapters.persistence.receipts import Receipt
from tcr_registry.application import commands, queries
from tcr_registry.application.actor import PointActor
from tcr_registry.application.errors import AlreadySubmitted, ContractNotFound
from tcr_registry.application.ports import ContractFilter
from tcr_registry.domain.contract import Contract
from tcr_shared.language.identifiers import canonical_credit_code
from tcr_shared.language.money import parse_money
from tcr_shared.language.regions import area_prefix
from tcr_shared.language.text import TextError, clean_text
from tcr_shared.platform import page_tokens
from tcr_shared.platform.audit import audit_entry, mark_recorded
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem, field_error

T = TypeVar("T")
_IDEMPOTENT_NAMESPACE = uuid.UUID("0b5e2c55-1f2d-4bb8-9a57-1c0d5b0f3a11")


def _actor(principal: Principal) -> PointActor:
    return PointActor(principal.point_id, principal.jurisdiction, principal.point_number)


def _contract_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Problem(404, f"There is no contract {raw!r}.") from None


def _personal(principal: Principal) -> bool:
    return principal.role in ("point", "admin")


def contracts_router(runtime) -> APIRouter:
    router = APIRouter(prefix="/v1/contracts", tags=["contracts"])
    any_point = runtime.require("point")
    reader = runtime.require("point", "analyst")

    async def point(principal: Principal = Depends(any_point)) -> Principal:
        # require() always admits admins, but registering is a point's act: it needs a jurisdiction and the
        # point number that registration numbers carry (an admin key acting here used to crash with a 500).
        if principal.point_id is None or principal.jurisdiction is None:
            raise Problem(
                403,
                "Only a registration point's key may register or change contracts; an admin key reads and administers.",
            )
        return principal

    def written(contract: Contract, position: int | None, status: int = 200, **headers: str) -> JSONResponse:
        response_headers = {"ETag": etag(contract), **headers}
        if position is not None:
            response_headers["TCR-Position"] = str(position)
        return JSONResponse(contract_view(contract, personal=True), status_code=status, headers=response_headers)

    def answer(contract: Contract, position: int | None, status: int) -> JSONResponse:
        extra = {"Location": f"/v1/contracts/{contract.id}"} if status == 201 else {}
        return written(contract, position, status, **extra)

    async def execute(request: Request, principal: Principal, command, action: str, status: int = 200):
        async def handle(idempotent: IdempotentRequest | None) -> JSONResponse:
            # The audit entry goes with the write (one commit answers for both, not the writer's then the trail's);
            # if the write fails or the store cannot take it, the audit middleware records the request as usual.
            entry = audit_entry(request.scope, status, ACTIONS, runtime.audit_target)
            committed = await runtime.writer.execute(command, receipt=_receipt(idempotent, status), audit=entry)
            if committed.audited:
                mark_recorded(request.scope)
            crash_after_commit(runtime.settings.fault_after_commit, action)
            return answer(committed.value, committed.position, status)

        async def replay(earlier) -> JSONResponse:
            reference = earlier.reference
            contract = await runtime.contracts.load_version(uuid.UUID(reference["contract_id"]), reference["version"])
            return answer(contract, earlier.position, earlier.status_code)

        return await runtime.idempotency.run(request, principal, handle, replay)

    @router.post("", status_code=201, summary="Submit a contract (registration points)")
    async def submit(body: schemas.ContractIn, request: Request, principal: Principal = Depends(point)):
        key = request.headers.get("idempotency-key")
        contract_id = uuid.uuid5(_IDEMPOTENT_NAMESPACE, f"{principal.key_id}:{key}") if key else uuid.uuid4()
        command = commands.submit(contract_id, _actor(principal), body.terms(), _now())
        try:
            return await execute(request, principal, command, "submit", status=201)
        except AlreadySubmitted:
            # The first attempt committed but its answer was lost: answer as it would have.
            contract = await runtime.contracts.load(contract_id)
            return written(
                contract, None, 201, **{"Location": f"/v1/contracts/{contract.id}", "Idempotent-Replayed": "true"}
            )

    @router.post("/{contract_id}/certify", summary="Certify: issue the registration number")
    async def certify(
        contract_id: str, request: Request, body: schemas.CertifyIn | None = None, principal: Principal = Depends(point)
    ):
        body = body or schemas.CertifyIn()
        amount = parse_money(body.technology_amount) if body.technology_amount is not None else None
        command = commands.certify(
            _contract_id(contract_id),
            _actor(principal),
            body.certified_at,
            None,  # "now" is read by the writer, in commit order
            amount,
            body.expert_review_ref,
            parse_if_match(request.headers.get("if-match")),
        )
        return await execute(request, principal, command, "certify")

    @router.post("/{contract_id}/reject", summary="Refuse registration (不予登记)")
    async def reject(contract_id: str, body: schemas.RejectIn, request: Request, principal: Principal = Depends(point)):
        command = commands.reject(
            _contract_id(contract_id),
            _actor(principal),
            body.reason_code,
            body.reason,
            _now(),
            parse_if_match(request.headers.get("if-match")),
        )
        return await execute(request, principal, command, "reject")

    @router.post("/{contract_id}/withdraw", summary="Withdraw a submitted contract")
    async def withdraw(
        contract_id: str,
        request: Request,
        body: schemas.WithdrawIn | None = None,
        principal: Principal = Depends(point),
    ):
        body = body or schemas.WithdrawIn()
        command = commands.withdraw(
            _contract_id(contract_id),
            _actor(principal),
            body.reason,
            _now(),
            parse_if_match(request.headers.get("if-match")),
        )
        return await execute(request, principal, command, "withdraw")

    @router.post("/{contract_id}/amend", summary="Amend amounts, category, title or parties' names and regions")
    async def amend(contract_id: str, body: schemas.AmendIn, request: Request, principal: Principal = Depends(point)):
        # exclude_unset, not exclude_none: `"subcategory": null` is a change (e.g. licence -> consulting).
        changes = body.changes.model_dump(exclude_unset=True)
        if not changes:
            raise Problem(
                422,
                "An amendment needs at least one change.",
                errors=[{"field": "changes", "message": "no change given"}],
            )
        command = commands.amend(
            _contract_id(contract_id),
            _actor(principal),
            changes,
            body.reason,
            _now(),
            body.expert_review_ref,
            parse_if_match(request.headers.get("if-match")),
        )
        return await execute(request, principal, command, "amend")

    @router.post("/{contract_id}/revoke", summary="Revoke a certified contract (reason required)")
    async def revoke(contract_id: str, body: schemas.RevokeIn, request: Request, principal: Principal = Depends(point)):
        command = commands.revoke(
            _contract_id(contract_id),
            _actor(principal),
            body.reason,
            _now(),
            parse_if_match(request.headers.get("if-match")),
        )
        return await execute(request, principal, command, "revoke")

    @router.get("/{contract_id}", summary="One contract; ETag is its version")
    async def get_contract(contract_id: str, principal: Principal = Depends(reader)):
        contract = await _readable(
            queries.get_contract(runtime.contracts, _reader(principal), _contract_id(contract_id))
        )
        return JSONResponse(contract_view(contract, personal=_personal(principal)), headers={"ETag": etag(contract)})

    @router.get("/{contract_id}/history", summary="Every event of the contract, oldest first")
    async def history(contract_id: str, principal: Principal = Depends(reader)):
        cid = _contract_id(contract_id)
        domain_events = await _readable(queries.contract_history(runtime.contracts, _reader(principal), cid))
        return {
            "contract_id": str(cid),
            "events": [
                {
                    "id": event_id(e.originator_id, e.originator_version),
                    "version": e.originator_version,
                    "type": public_type(e),
                    "time": e.timestamp.astimezone(UTC).isoformat(),
                    "data": event_data(e, personal=_personal(principal)),
                }
                for e in domain_events
                if is_public(e)
            ],
        }

    @router.get("", summary="List contracts, oldest first, filtered")
    async def list_contracts(
        principal: Principal = Depends(reader),
        status: str | None = Query(None, pattern="^(submitted|certified|rejected|withdrawn|revoked)$"),
        seller: str | None = Query(None, max_length=100, description="Seller's credit code (any spelling)"),
        buyer: str | None = Query(None, max_length=100, description="Buyer's credit code (any spelling)"),
        region: str | None = Query(None, pattern=r"^\d{4}(\d{2})?$", description="Either party in this area"),
        year: int | None = Query(None, ge=1990, le=2100),
        limit: int = Query(50, ge=1, le=500),
        page_token: str | None = None,
    ) -> dict[str, Any]:
        filters = ContractFilter(
            status=status,
            seller=_party_filter("seller", seller),
            buyer=_party_filter("buyer", buyer),
            area_prefix=area_prefix(region) if region else None,
            year=year,
        )
        after = page_tokens.decode_position(page_token, "p") if page_token else None
        page = await queries.list_contracts(runtime.contract_index, _reader(principal), filters, after, limit)
        return {
            "contracts": page.contracts,
            "next_page_token": page_tokens.encode("p", page.last_position) if page.last_position is not None else None,
        }

    return router


def _party_filter(field: str, code: str | None) -> str | None:
    """A credit code to filter on, in the canonical form the index keeps; text that no store could hold (a NUL,
    say) is a 422, not a database error."""
    if code is None:
        return None
    try:
        code = clean_text(code)
    except TextError as refusal:
        raise Problem(422, f"{field} {refusal}.", errors=[field_error(field, str(refusal))]) from None
    return code if ":" in code else canonical_credit_code(code)  # `DE:name` keys a foreign party as it is


def _receipt(idempotent: IdempotentRequest | None, status: int) -> Receipt | None:
    """The receipt the writer stores with the command's events: which contract version the answer shows."""
    if idempotent is None:
        return None
    return Receipt(
        idempotent.key_id,
        idempotent.key,
        idempotent.fingerprint,
        status,
        refer=lambda contract: {"contract_id": str(contract.id), "version": contract.version},
    )


def _reader(principal: Principal) -> queries.Reader:
    return queries.Reader(principal.role, principal.point_id, principal.jurisdiction)


async def _readable(query: Awaitable[T]) -> T:
    try:
        return await query
    except queries.NotYourJurisdiction as refusal:
        raise Problem(403, str(refusal)) from None


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = ["contracts_router", "ContractNotFound"]
