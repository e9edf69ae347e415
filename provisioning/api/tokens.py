"""API tokens: the owner hands out bearer tokens to administrators and revokes them.

A token's secret is shown once, in the response that creates it; the store keeps only its
SHA-256. Revocation takes effect on the next request (it bumps the store generation, which
the token cache checks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import func, select

from provisioning.api.activation import new_token_secret
from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, hash_secret, not_found, route
from provisioning.service import Role
from provisioning.tables_access import ApiToken

OWNER_ONLY = frozenset({Role.OWNER})


class TokenIn(ApiModel):
    name: str = Field(min_length=1, max_length=254, description="Who holds it (e-mail or label); shown in the audit trail")
    role: Literal["FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY"]


class TokenOut(ApiModel):
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at, revoked_at=row.revoked_at)


class NewToken(TokenOut):
    token: str = Field(description="The bearer token; shown only in this response")


class Me(ApiModel):
    token_id: str
    name: str
    role: Role
    organization_id: str


def _view(row: ApiToken) -> dict:
    return {"id": row.id, "name": row.name, "role": row.role, "revoked": row.revoked_at is not None}


@route("POST", "/v1/tokens", summary="Create a token for an administrator", tags=["tokens"], body=TokenIn,
       response=NewToken, status=201, roles=OWNER_ONLY)
async def create_token(req: ApiRequest) -> NewToken:
    secret = new_token_secret()
    with req.ctx.unit_of_work(req.actor) as uow:
        row = ApiToken(org_id=req.org_id, role=req.body.role, name=req.body.name, secret_hash=hash_secret(secret),
                       created_by=req.actor.token_id if req.actor else None, created_at=uow.now)
        uow.session.add(row)
        uow.session.flush()
        uow.audit("token.created", "token", row.id, None, _view(row))
    return NewToken(token=secret, **TokenOut.of(row).model_dump())


@route("GET", "/v1/tokens", summary="List tokens (never their secrets)", tags=["tokens"], query=PageQuery,
       response=Page[TokenOut], roles=OWNER_ONLY)
async def list_tokens(req: ApiRequest) -> Page[TokenOut]:
    q: PageQuery = req.params
    with req.ctx.read() as s:
        where = ApiToken.org_id == req.org_id
        total = s.scalar(select(func.count()).select_from(ApiToken).where(where)) or 0
        rows = s.scalars(select(ApiToken).where(where).order_by(ApiToken.created_at, ApiToken.id)
                         .offset(q.start).limit(q.max)).all()
        return Page[TokenOut](items=[TokenOut.of(r) for r in rows], start=q.start, max=q.max, total=total)


@route("GET", "/v1/tokens/me", summary="The token this request uses", tags=["tokens"], response=Me)
async def whoami(req: ApiRequest) -> Me:
    assert req.actor is not None
    return Me(token_id=req.actor.token_id, name=req.actor.name, role=req.actor.role, organization_id=req.actor.org_id)


@route("DELETE", "/v1/tokens/{tokenId}", summary="Revoke a token", tags=["tokens"], status=204, roles=OWNER_ONLY)
async def revoke_token(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        row = uow.session.scalar(select(ApiToken).where(ApiToken.id == req.path["tokenId"],
                                                        ApiToken.org_id == req.org_id))
        if row is None:
            raise not_found("token", req.path["tokenId"], field="tokenId")
        if row.role == Role.OWNER:
            raise ApiError(409, "Owner token", "the owner's token cannot be revoked (nobody could create tokens "
                           "any more)", field="tokenId", rule="owner-token-irrevocable")
        req.check_if_match(TokenOut.of(row))
        if row.revoked_at is None:
            before = _view(row)
            row.revoked_at = uow.now
            uow.audit("token.revoked", "token", row.id, before, _view(row))
    return None
