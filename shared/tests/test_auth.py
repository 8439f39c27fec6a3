"""Bearer tokens: tenant, subject and roles, and who may read a client's data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path

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


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {"tid": "acme", "sub": "c-1", "roles": ["client"], "iss": SETTINGS.jwt_issuer,
              "aud": SETTINGS.jwt_audience, "iat": now, "exp": now + 600}
    return {name: value for name, value in {**claims, **changes}.items() if value is not None}


def _hs256(claims: dict, key: bytes) -> str:
    """HS256 made by hand: PyJWT will not key an HMAC with a PEM, a forger's tool would."""
    def segment(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    signing_input = (segment(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
                     + segment(json.dumps(claims).encode()))
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{segment(signature)}"


SECRET = SETTINGS.jwt_secret.get_secret_value().encode()
# The public half of an RSA key made for the tests; public keys are not secrets.
PUBLIC_KEY = (Path(__file__).parent / "identity_provider_public_key.pem").read_text()


def test_the_hand_made_token_is_a_good_one():
    # The refusals below change one thing each; this shows the rest of the token is sound.
    assert verify_token(_hs256(_claims(), SECRET), SETTINGS).subject == "c-1"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ({"exp": int(time.time()) - 30}, "expired"),
    ({"iss": "someone-else"}, "issuer"),
    ({"aud": "another-platform"}, "audience"),
    ({"sub": None}, "sub"),
    ({"tid": None}, "tid"),
    ({"exp": None}, "exp"),
    ({"roles": None}, "no role"),
    ({"roles": "admin"}, "must be a list"),
    ({"tid": ""}, "tid claim must be a non-empty string"),
    ({"tid": {"$ne": None}}, "tid claim must be a non-empty string"),
    ({"sub": 7}, "sub"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_flaw_of_a_token_is_refused_with_its_reason(changes, reason):
    with pytest.raises(TokenError, match=f"(?i){reason}"):
        verify_token(_hs256(_claims(**changes), SECRET), SETTINGS)


def test_an_hs256_token_keyed_with_the_public_key_is_refused():
    """Key-type confusion: with an identity provider's public key configured, a token whose
    HMAC key is that (public) PEM must not verify as if the provider had signed it."""
    provider = ServiceSettings(service_name="tests", jwt_public_key=PUBLIC_KEY)
    forged = _hs256(_claims(roles=["admin"]), PUBLIC_KEY.encode())
    with pytest.raises(TokenError):
        verify_token(forged, provider)
    # Nor does the deployment's shared secret still work once a public key is configured.
    with pytest.raises(TokenError):
        verify_token(_hs256(_claims(), SECRET), provider)


def test_a_tenant_the_deployment_does_not_serve_is_refused():
    serving = ServiceSettings(service_name="tests", tenants=["acme", "globex"])
    assert verify_token(_hs256(_claims(tid="globex"), SECRET), serving).tenant_id == "globex"
    with pytest.raises(TokenError, match="tenant not served"):
        verify_token(_hs256(_claims(tid="initech"), SECRET), serving)
    # Empty list: a development deployment serves every tenant.
    assert verify_token(_hs256(_claims(tid="initech"), SECRET), SETTINGS).tenant_id == "initech"


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


def _identity_provider_keys(algorithm: str) -> tuple[bytes, str]:
    """A fresh private key (PEM) and its public half, as an identity provider holds them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
               if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_identity_provider_tokens_verify_with_its_public_key(algorithm):
    private_pem, public_pem = _identity_provider_keys(algorithm)
    provider = ServiceSettings(service_name="tests", jwt_public_key=public_pem)
    token = jwt.encode(_claims(roles=["coach"], sub="coach-7"), private_pem, algorithm=algorithm)
    assert verify_token(token, provider) == Principal(tenant_id="acme", subject="coach-7",
                                                      roles=frozenset({Role.COACH}))
    impostor_pem, _ = _identity_provider_keys(algorithm)
    forged = jwt.encode(_claims(roles=["admin"]), impostor_pem, algorithm=algorithm)
    with pytest.raises(TokenError):
        verify_token(forged, provider)
