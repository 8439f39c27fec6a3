"""Bearer tokens at every service's door: only a sound token of a served tenant gets in.

Each service runs for real (Kafka, FerretDB) and serves only the tenant `acme`. Every kind of
forged or flawed token (expired, not yet valid, badly signed, altered, `alg: none`, without
tenant, subject or roles, of another issuer or audience), a token of a tenant the deployment
does not serve, and an HS256 token keyed with the identity provider's public key all get 401
problem details; the same caller with a sound token gets 200, so the refusals are not an
endpoint that refuses everyone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from coaching_shared.settings import ServiceSettings
from support.infra import Infrastructure
from support.tokens import (
    IDENTITY_PROVIDER_PUBLIC_KEY,
    authorization,
    forged_tokens,
    key_confusion_token,
    signed,
    valid_claims,
)
from support.whole_platform import SERVICES, platform_settings, running_platform

pytestmark = pytest.mark.integration

TENANT = "acme"
PREFIX = f"jwt{uuid.uuid4().hex[:8]}."
# One endpoint per service that any signed-in client may call.
PROTECTED = {"assessment": "/v1/instruments", "goals": "/v1/smart-limits",
             "feedback": "/v1/reflection-prompts", "notifier": "/v1/inbox"}
CALLER = (TENANT, "c-door", "client")


@pytest.fixture(scope="module")
async def platform(infra: Infrastructure) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with running_platform(infra, PREFIX, tenants=[TENANT, "globex"]) as clients:
        yield clients


def settings_of(client: httpx.AsyncClient) -> ServiceSettings:
    return client.app.state.settings


def token_of(settings: ServiceSettings, tenant_id: str, subject: str, *roles: str) -> str:
    """A sound token, signed with the deployment's secret."""
    return signed(valid_claims(settings, tenant_id, subject, *roles),
                  settings.jwt_secret.get_secret_value().encode())


def assert_refused(response: httpx.Response, why: str) -> None:
    assert response.status_code == 401, (why, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_sound_token_gets_in(platform, service):
    token = token_of(settings_of(platform[service]), *CALLER)
    response = await platform[service].get(PROTECTED[service], headers=authorization(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("service", list(SERVICES))
async def test_no_token_and_every_flawed_token_get_401(platform, service):
    client = platform[service]
    assert_refused(await client.get(PROTECTED[service]), "no token")
    assert_refused(await client.get(PROTECTED[service], headers={"Authorization": "Basic eDp5"}),
                   "not a bearer token")
    forged = forged_tokens(settings_of(client), *CALLER)
    for flaw, token in forged.items():
        assert_refused(await client.get(PROTECTED[service], headers=authorization(token)), flaw)
    assert len(forged) >= 10


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_tenant_the_deployment_does_not_serve_gets_401(platform, service):
    client = platform[service]
    served = await client.get(PROTECTED[service], headers=authorization(
        token_of(settings_of(client), "globex", "c-door", "client")))
    assert served.status_code == 200, served.text
    response = await client.get(PROTECTED[service], headers=authorization(
        token_of(settings_of(client), "initech", "c-door", "client")))
    assert_refused(response, "tenant not served")
    assert "tenant not served" in response.json()["detail"]


@pytest.mark.parametrize("service", list(SERVICES))
async def test_an_hs256_token_keyed_with_the_public_key_gets_401(infra, service):
    """Key-type confusion, against the service configured for its identity provider's RS256
    tokens. The refusal happens at the door, before any database or broker is needed."""
    create_app, _ = SERVICES[service]
    settings = platform_settings(infra, PREFIX, service,
                                 jwt_public_key=IDENTITY_PROVIDER_PUBLIC_KEY)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://service") as client:
        for roles in (("client",), ("admin",), ("integration",)):
            token = key_confusion_token(settings, TENANT, "c-door", *roles)
            assert_refused(await client.get(PROTECTED[service], headers=authorization(token)),
                           f"HS256 with the public key as {roles}")
