"""JWT bearer authentication: who is calling, for which tenant, in which roles.

Tokens carry `tid` (tenant), `sub` (the person or system), `roles` (client, coach, admin,
integration), plus `iss`, `aud` and `exp`. HS256 with a shared secret for development and
tests; an RS256/ES256 public key (from the enterprise's identity provider) when configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coaching_shared.events import utc_now
from coaching_shared.settings import ServiceSettings


class Role(StrEnum):
    CLIENT = "client"
    COACH = "coach"
    ADMIN = "admin"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Every query a request makes is scoped by `tenant_id`."""

    tenant_id: str
    subject: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    def scope(self, **criteria: Any) -> dict[str, Any]:
        """A query filter confined to the caller's tenant: the easy way to write a query."""
        return {"tenant_id": self.tenant_id, **criteria}

    def may_read_client(self, client_id: str, coach_id: str | None) -> bool:
        """Personal coaching data: the client themself, their coach, or an integration."""
        if Role.CLIENT in self.roles and self.subject == client_id:
            return True
        if Role.COACH in self.roles and coach_id is not None and self.subject == coach_id:
            return True
        return Role.INTEGRATION in self.roles


class TokenError(ValueError):
    """A bearer token that cannot be trusted."""


def _verification_key(settings: ServiceSettings) -> tuple[Any, list[str]]:
    if settings.jwt_public_key:
        return settings.jwt_public_key, ["RS256", "ES256"]
    return settings.jwt_secret.get_secret_value(), ["HS256"]


def verify_token(token: str, settings: ServiceSettings) -> Principal:
    """Check signature, algorithm, validity period, issuer, audience, tenant and roles.

    Raises TokenError saying why not. The accepted algorithms follow from the configured key
    alone (never from the token's header), so an HS256 token cannot pass itself off as
    signed by the identity provider's public key, and `alg: none` never verifies.
    """
    key, algorithms = _verification_key(settings)
    try:
        claims = jwt.decode(token, key, algorithms=algorithms, audience=settings.jwt_audience,
                            issuer=settings.jwt_issuer,
                            options={"require": ["exp", "sub", "tid", "iss", "aud"]})
    except jwt.PyJWTError as error:
        raise TokenError(str(error)) from error
    tenant_id, subject = claims["tid"], claims["sub"]
    if not isinstance(tenant_id, str) or not tenant_id:
        raise TokenError("tid claim must be a non-empty string")
    if not isinstance(subject, str) or not subject:
        raise TokenError("sub claim must be a non-empty string")
    if settings.tenants and tenant_id not in settings.tenants:
        # The same rule as for events: a deployment answers only the tenants it serves.
        raise TokenError("tenant not served by this deployment")
    raw_roles = claims.get("roles", [])
    if not isinstance(raw_roles, list):
        raise TokenError("roles claim must be a list")
    try:
        roles = frozenset(Role(role) for role in raw_roles)
    except ValueError as error:
        raise TokenError(f"unknown role in {raw_roles}") from error
    if not roles:
        raise TokenError("token carries no role")
    return Principal(tenant_id=tenant_id, subject=subject, roles=roles)


def mint_token(settings: ServiceSettings, tenant_id: str, subject: str, roles: list[str],
               ttl: timedelta = timedelta(hours=12)) -> str:
    """An HS256 token for development, demos and tests (never for production use)."""
    now = utc_now()
    claims = {"tid": tenant_id, "sub": subject, "roles": [Role(r).value for r in roles],
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
              "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


_bearer = HTTPBearer(auto_error=False, description="JWT with tid, sub and roles claims")


def authenticated(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(_bearer)]) -> Principal:
    """FastAPI dependency: the caller's principal, or 401 with a reason."""
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify_token(credentials.credentials, request.app.state.settings)
    except TokenError as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: {error}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                            ) from error


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]


def require(principal: Principal, *roles: Role) -> None:
    """403 unless the caller has one of the roles."""
    if not principal.has(*roles):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"requires one of the roles: {', '.join(r.value for r in roles)}")
