"""Bearer tokens: tenant, subject and roles, and who may read a client's data."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from coaching_shared.auth import Principal, Role, TokenError, mint_token, verify_token
from coaching_shared.settings import ServiceSettings

SETTINGS = ServiceSettings(service_name="tests")


def test_minted_token_verifies_to_its_principal():
    token = mint_token(SETTINGS, "acme", "coach-1", ["coach"])
    assert verify_token(token, SETTINGS) == Principal("acme", "coach-1",
                                                      frozenset({Role.COACH}))


def test_expired_wrong_key_and_wrong_audience_are_refused():
    expired = mint_token(SETTINGS, "acme", "c-1", ["client"], ttl=timedelta(seconds=-5))
    with pytest.raises(TokenError, match="expired"):
        verify_token(expired, SETTINGS)
    other = ServiceSettings(service_name="tests", jwt_secret="another-secret-0123456789abcdef-0123")
    with pytest.raises(TokenError, match="Signature"):
        verify_token(mint_token(other, "acme", "c-1", ["client"]), SETTINGS)
    foreign = ServiceSettings(service_name="tests", jwt_audience="someone-else")
    with pytest.raises(TokenError, match=r"(?i)audience"):
        verify_token(mint_token(foreign, "acme", "c-1", ["client"]), SETTINGS)


def test_tokens_without_tenant_or_role_are_refused():
    claims = {"sub": "c-1", "roles": ["client"], "iss": SETTINGS.jwt_issuer,
              "aud": SETTINGS.jwt_audience, "exp": 4102444800}
    secret = SETTINGS.jwt_secret.get_secret_value()
    with pytest.raises(TokenError, match="tid"):
        verify_token(jwt.encode(claims, secret, algorithm="HS256"), SETTINGS)
    with pytest.raises(TokenError, match="no role"):
        verify_token(jwt.encode({**claims, "tid": "acme", "roles": []}, secret,
                                algorithm="HS256"), SETTINGS)
    with pytest.raises(TokenError, match="unknown role"):
        verify_token(jwt.encode({**claims, "tid": "acme", "roles": ["root"]}, secret,
                                algorithm="HS256"), SETTINGS)


def test_unsigned_tokens_are_refused():
    token = jwt.encode({"tid": "acme", "sub": "x", "roles": ["admin"]}, None, algorithm="none")
    with pytest.raises(TokenError):
        verify_token(token, SETTINGS)


def test_who_may_read_a_clients_data():
    client = Principal("acme", "c-1", frozenset({Role.CLIENT}))
    coach = Principal("acme", "k-1", frozenset({Role.COACH}))
    admin = Principal("acme", "a-1", frozenset({Role.ADMIN}))
    assert client.may_read_client("c-1", "k-1")
    assert not client.may_read_client("c-2", "k-1")
    assert coach.may_read_client("c-1", "k-1")
    assert not coach.may_read_client("c-1", "k-2")
    assert not coach.may_read_client("c-1", None)
    assert not admin.may_read_client("c-1", "k-1")  # admins see aggregates only


def test_scope_always_carries_the_tenant():
    coach = Principal("acme", "k-1", frozenset({Role.COACH}))
    assert coach.scope(client_id="c-1") == {"tenant_id": "acme", "client_id": "c-1"}
