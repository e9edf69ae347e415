"""Trunks: the SIP peers a location's PSTN connection goes through.

The password is write-only and never stored: the trunk keeps H(username:realm:password) per
digest algorithm, which answers the peer's challenges in ``realm``. Changing the username or
the realm therefore needs the password again. A location names its trunk; renaming a trunk
carries its locations along, and a trunk in use cannot be deleted.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from sqlalchemy import func, select

from provisioning.api._views import LocationOut, TrunkOut, view
from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, not_found, route
from provisioning.digest import ha1_all
from provisioning.store import Location, new_id
from provisioning.tables_access import Trunk

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError(f"must be an IP address or a host name, got {value!r}") from None
    return value


Host = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_check_host)]


class TrunkIn(ApiModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    host: Host
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["UDP", "TCP", "TLS"] = "UDP"
    registers: bool = Field(default=False, alias="register", description="Register with the peer (needs credentials)")
    username: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    password: str | None = Field(default=None, min_length=1, max_length=200, json_schema_extra={"writeOnly": True},
                                 description="Write-only; on PUT leave out to keep the stored digests")
    realm: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[^\s\"]+$",
                              description="Digest realm the peer challenges with; defaults to host")

    @model_validator(mode="after")
    def _credentials(self):
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self


class TrunkQuery(PageQuery):
    name: str | None = Field(default=None, max_length=200)


def _get(s, org_id: str, trunk_id: str) -> Trunk:
    row = s.scalar(select(Trunk).where(Trunk.id == trunk_id, Trunk.org_id == org_id))
    if row is None:
        raise not_found("trunk", trunk_id, field="trunkId")
    return row


def _apply(row: Trunk, body: TrunkIn) -> None:
    realm = body.realm or (body.host if body.username else None)
    if body.password is not None:
        assert body.username is not None
        row.ha1 = ha1_all(body.username, realm or body.host, body.password)
    elif body.username is None:
        row.ha1 = None
    elif row.ha1 is None or (body.username, realm) != (row.username, row.realm):
        raise ApiError(422, "Password needed", "a new username or realm needs the password again (only its "
                       "digests are stored)", field="password", rule="trunk-password-required")
    if body.registers and row.ha1 is None:
        raise ApiError(422, "Credentials needed", "a registering trunk needs a username and password",
                       field="password", rule="trunk-register-credentials")
    row.name, row.host, row.port, row.transport = body.name, body.host, body.port, body.transport
    row.register, row.username, row.realm = body.registers, body.username, realm


def _check_name(s, org_id: str, name: str, current: Trunk | None) -> None:
    taken = s.scalar(select(Trunk.id).where(Trunk.org_id == org_id, Trunk.name == name))
    if taken and (current is None or taken != current.id):
        raise ApiError(409, "Name taken", f"a trunk named {name!r} exists", field="name", rule="trunk-name-unique")


@route("POST", "/v1/trunks", summary="Create a trunk", tags=["trunks"], body=TrunkIn, response=TrunkOut, status=201)
async def create_trunk(req: ApiRequest) -> TrunkOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        _check_name(uow.session, req.org_id, req.body.name, None)
        row = Trunk(id=new_id(), org_id=req.org_id)
        _apply(row, req.body)
        uow.session.add(row)
        uow.session.flush()
        out = TrunkOut.of(row)
        uow.change("trunk", row.id, "created", None, view(out))
    return out


@route("GET", "/v1/trunks", summary="List trunks", tags=["trunks"], query=TrunkQuery, response=Page[TrunkOut])
async def list_trunks(req: ApiRequest) -> Page[TrunkOut]:
    q: TrunkQuery = req.params
    where = [Trunk.org_id == req.org_id]
    if q.name is not None:
        where.append(Trunk.name == q.name)
    with req.ctx.read() as s:
        total = s.scalar(select(func.count()).select_from(Trunk).where(*where)) or 0
        rows = s.scalars(select(Trunk).where(*where).order_by(Trunk.name).offset(q.start).limit(q.max))
        return Page[TrunkOut](items=[TrunkOut.of(r) for r in rows], start=q.start, max=q.max, total=total)


@route("GET", "/v1/trunks/{trunkId}", summary="One trunk", tags=["trunks"], response=TrunkOut)
async def get_trunk(req: ApiRequest) -> TrunkOut:
    with req.ctx.read() as s:
        return TrunkOut.of(_get(s, req.org_id, req.path["trunkId"]))


@route("PUT", "/v1/trunks/{trunkId}", summary="Change a trunk", tags=["trunks"], body=TrunkIn, response=TrunkOut)
async def put_trunk(req: ApiRequest) -> TrunkOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = _get(s, req.org_id, req.path["trunkId"])
        before = TrunkOut.of(row)
        req.check_if_match(before)
        _check_name(s, req.org_id, req.body.name, row)
        old_name = row.name
        old_ha1 = row.ha1
        _apply(row, req.body)
        after = TrunkOut.of(row)
        if after != before or row.ha1 != old_ha1:
            uow.change("trunk", row.id, "updated", view(before), view(after))
        if row.name != old_name:
            for location in s.scalars(select(Location).where(Location.org_id == req.org_id,
                                                             Location.pstn_trunk == old_name)):
                was = view(LocationOut.of(location))
                location.pstn_trunk = row.name
                uow.change("location", location.id, "updated", was, view(LocationOut.of(location)))
    return after


@route("DELETE", "/v1/trunks/{trunkId}", summary="Delete a trunk no location uses", tags=["trunks"], status=204)
async def delete_trunk(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = _get(s, req.org_id, req.path["trunkId"])
        before = TrunkOut.of(row)
        req.check_if_match(before)
        user = s.scalar(select(Location.name).where(Location.org_id == req.org_id, Location.pstn_trunk == row.name))
        if user is not None:
            raise ApiError(409, "Trunk in use", f"{user} connects to the PSTN through this trunk", field="trunkId",
                           rule="trunk-in-use")
        s.delete(row)
        uow.change("trunk", row.id, "deleted", view(before), None)
