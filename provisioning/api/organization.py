"""The organisation the token belongs to: subscription, business account, country."""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import func, select

from provisioning.api.framework import ApiError, ApiModel, ApiRequest, route
from provisioning.audit import snapshot
from provisioning.models import Country
from provisioning.store import Location, Number, Organization, Subscription

TRIAL_NUMBER_LIMIT = 10


class OrganizationIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    country: Country
    subscription: Subscription
    business_account: bool = False


class OrganizationOut(ApiModel):
    id: str
    name: str
    country: str
    subscription: Subscription
    business_account: bool
    sip_realm: str = Field(description="Digest realm of the organisation's SIP devices")
    call_recording_available: bool = Field(description="Call recording is offered to business accounts only")

    @classmethod
    def of(cls, org: Organization) -> OrganizationOut:
        return cls(id=org.id, name=org.name, country=org.country, subscription=org.subscription,
                   business_account=org.business_account, sip_realm=org.sip_realm,
                   call_recording_available=org.business_account)


def load_org(session, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:  # the token outlived its organisation
        raise ApiError(404, "Organisation not found", "the token's organisation no longer exists", rule="not-found")
    return org


def count_numbers(session, org_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Number).join(Location)
                          .where(Location.org_id == org_id)) or 0


@route("GET", "/v1/organization", summary="The organisation", tags=["organization"], response=OrganizationOut)
async def get_organization(req: ApiRequest) -> OrganizationOut:
    with req.ctx.read() as s:
        return OrganizationOut.of(load_org(s, req.org_id))


@route("PUT", "/v1/organization", summary="Change the organisation's name, country or subscription",
       tags=["organization"], body=OrganizationIn, response=OrganizationOut)
async def put_organization(req: ApiRequest) -> OrganizationOut:
    body: OrganizationIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        org = load_org(s, req.org_id)
        req.check_if_match(OrganizationOut.of(org))
        if body.name != org.name and s.scalar(select(Organization.id).where(Organization.name == body.name)):
            raise ApiError(409, "Name taken", f"another organisation is called {body.name!r}", field="name",
                           rule="organization-name-unique")
        if body.subscription == Subscription.TRIAL and org.subscription != Subscription.TRIAL:
            held = count_numbers(s, org.id)
            if held > TRIAL_NUMBER_LIMIT:
                raise ApiError(409, "Too many numbers for a trial", f"a trial organisation has at most "
                               f"{TRIAL_NUMBER_LIMIT} numbers and this one has {held}", field="subscription",
                               rule="trial-number-limit")
        before = snapshot(org)
        org.name, org.country = body.name, body.country
        org.subscription, org.business_account = body.subscription, body.business_account
        after = snapshot(org)
        if after != before:
            uow.change("organization", org.id, "updated", before, after)
        return OrganizationOut.of(org)
