"""Activation: the purchaser proves their address with a 6-digit code and becomes the owner.

On start (``begin_activation``), if ``owner.email`` is configured and the organisation has no
owner yet, a fresh code is mailed to that address. ``POST /v1/activation {email, code}``
returns the owner's token. Five wrong answers lock activation for 15 minutes. Only a keyed hash
of the code is stored. The decision itself (``judge``) is a pure function of the stored state,
the answer and the time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from sqlalchemy import func, select

from provisioning.api.framework import ApiContext, ApiError, ApiModel, ApiRequest, hash_secret, route
from provisioning.audit import snapshot
from provisioning.models import Email
from provisioning.service import Role, system_actor
from provisioning.store import Organization, Subscription
from provisioning.tables_access import Activation, ApiToken

log = logging.getLogger("callrouter.activation")

MAX_FAILURES = 5
LOCK_DURATION = timedelta(minutes=15)


def code_hash(org_id: str, code: str) -> str:
    return hmac.new(org_id.encode(), code.encode(), hashlib.sha256).hexdigest()


def new_token_secret() -> str:
    return "cr_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    failed_attempts: int
    locked_until: datetime | None
    error: ApiError | None = None


def judge(activation: Activation, email: str, code: str, now: datetime) -> Verdict:
    """Whether ``email``/``code`` activate, and the attempt counters to store either way."""
    if activation.completed_at is not None:
        return Verdict(False, activation.failed_attempts, activation.locked_until,
                       ApiError(409, "Already activated", "this organisation already has its owner",
                                rule="already-activated"))
    if activation.locked_until is not None and now < activation.locked_until:
        wait = int((activation.locked_until - now).total_seconds()) + 1
        return Verdict(False, activation.failed_attempts, activation.locked_until,
                       ApiError(429, "Activation locked", f"too many wrong codes; try again in {wait} s",
                                rule="activation-locked", headers={"Retry-After": str(wait)}))
    right = hmac.compare_digest(code_hash(activation.org_id, code), activation.code_hash)
    if right and email == activation.email.lower():
        return Verdict(True, 0, None)
    failures = activation.failed_attempts + 1
    if failures >= MAX_FAILURES:
        return Verdict(False, 0, now + LOCK_DURATION,
                       ApiError(429, "Activation locked", f"{MAX_FAILURES} wrong codes; activation is locked for "
                                f"{int(LOCK_DURATION.total_seconds() // 60)} minutes", field="code",
                                rule="activation-locked", headers={"Retry-After": str(int(LOCK_DURATION.total_seconds()))}))
    return Verdict(False, failures, None,
                   ApiError(422, "Wrong activation code", f"the e-mail address or code is wrong; "
                            f"{MAX_FAILURES - failures} attempts left before a {int(LOCK_DURATION.total_seconds() // 60)}"
                            "-minute lock", field="code", rule="activation-code-wrong"))


def _organization_for(session, settings) -> Organization | None:
    owner = settings.owner
    if owner.organization:
        return session.scalar(select(Organization).where(Organization.name == owner.organization))
    orgs = session.scalars(select(Organization).limit(2)).all()
    if len(orgs) > 1:
        raise ValueError("the store holds several organisations; set owner.organization to the owner's one")
    return orgs[0] if orgs else None


def begin_activation(ctx: ApiContext) -> bool:
    """Mail a fresh code to ``owner.email`` unless the organisation has its owner; True if mailed."""
    settings = ctx.settings
    if settings is None or settings.owner.email is None:
        return False
    email = settings.owner.email.lower()
    code = f"{secrets.randbelow(10**6):06d}"
    with ctx.unit_of_work(system_actor("activation")) as uow:
        s = uow.session
        org = _organization_for(s, settings)
        if org is None:
            name = settings.owner.organization or email.split("@", 1)[1]
            realm = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "callrouter"
            if s.scalar(select(func.count()).select_from(Organization).where(Organization.sip_realm == realm)):
                realm = f"{realm}-{secrets.token_hex(3)}"
            org = Organization(name=name, country=settings.owner.country, subscription=Subscription.TRIAL,
                               business_account=False, sip_realm=realm)
            s.add(org)
            s.flush()
            uow.org_id = org.id
            uow.change("organization", org.id, "created", None, snapshot(org))
        uow.org_id = org.id
        row = s.scalar(select(Activation).where(Activation.org_id == org.id))
        owner_exists = s.scalar(select(func.count()).select_from(ApiToken).where(
            ApiToken.org_id == org.id, ApiToken.role == Role.OWNER, ApiToken.revoked_at.is_(None)))
        if (row is not None and row.completed_at is not None) or owner_exists:
            return False
        if row is None:
            row = Activation(org_id=org.id, email=email, failed_attempts=0, created_at=uow.now)
            s.add(row)
        # A restart sends a new code; a lock in force stays in force.
        row.email = email
        row.code_hash = code_hash(org.id, code)
        uow.audit("activation.code-sent", "organization", org.id, None, {"email": email})
        uow.mail(email, "Your callrouter activation code",
                 f"Your activation code for {org.name} is {code}.\n\n"
                 f"Send it with your e-mail address to POST /v1/activation to become the account owner.\n")
    log.info("activation code mailed to %s", email)
    return True


class ActivationIn(ApiModel):
    email: Email
    code: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$", description="The 6-digit code mailed")


class OwnerToken(ApiModel):
    token: str = Field(description="The owner's bearer token; shown only now")
    token_id: str
    role: Role
    organization_id: str


@route("POST", "/v1/activation", summary="Activate the organisation with the mailed code and get the owner token",
       tags=["activation"], body=ActivationIn, response=OwnerToken, status=201, public=True,
       responses={429: "Too many wrong codes: activation is locked for 15 minutes"})
async def activate(req: ApiRequest) -> OwnerToken:
    body: ActivationIn = req.body
    secret = new_token_secret()
    error: ApiError | None = None
    result: OwnerToken | None = None
    with req.ctx.unit_of_work(None) as uow:
        s = uow.session
        pending = s.scalars(select(Activation).where(Activation.completed_at.is_(None))).all()
        matching = [a for a in pending if a.email.lower() == body.email] or pending
        if not matching:
            raise ApiError(409, "Nothing to activate", "no activation is pending (already activated, or no "
                           "owner.email configured)", rule="no-activation-pending")
        row = matching[0]
        uow.org_id = row.org_id
        verdict = judge(row, body.email, body.code, uow.now)
        row.failed_attempts = verdict.failed_attempts
        row.locked_until = verdict.locked_until
        if verdict.accepted:
            row.completed_at = uow.now
            token = ApiToken(org_id=row.org_id, role=Role.OWNER, name=row.email, secret_hash=hash_secret(secret),
                             created_at=uow.now)
            s.add(token)
            s.flush()
            uow.audit("activation.completed", "token", token.id, None, {"role": "OWNER", "name": row.email})
            result = OwnerToken(token=secret, token_id=token.id, role=Role.OWNER, organization_id=row.org_id)
        else:
            # The failed attempt is committed (it counts towards the lock) before the error is raised.
            uow.audit("activation.failed", "organization", row.org_id, None,
                      {"email": body.email, "failedAttempts": verdict.failed_attempts})
            error = verdict.error
    if error is not None:
        raise error
    assert result is not None
    return result
