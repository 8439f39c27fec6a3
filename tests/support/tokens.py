"""Bearer tokens an attacker or a misconfigured identity provider could present.

Tokens are put together by hand (header, claims, signature) rather than with PyJWT, because
PyJWT itself refuses to make some of them (an HMAC keyed with a PEM public key): a forger
would not use a library that stops them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from coaching_shared.settings import ServiceSettings

# The public half of an RSA key made for the tests (the unit tests of auth use it too);
# public keys are not secrets.
IDENTITY_PROVIDER_PUBLIC_KEY = (Path(__file__).resolve().parents[2] / "shared" / "tests"
                                / "identity_provider_public_key.pem").read_text()


def _segment(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def signed(claims: dict[str, Any], key: bytes | None, algorithm: str = "HS256") -> str:
    """A compact JWS: HMAC-SHA256 with `key`, or no signature at all for `none`."""
    header = _segment(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    payload = _segment(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    if algorithm == "none" or key is None:
        return f"{header}.{payload}."
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_segment(signature)}"


def valid_claims(settings: ServiceSettings, tenant_id: str, subject: str, *roles: str,
                 ) -> dict[str, Any]:
    """The claims of a good token, valid from a minute ago for an hour."""
    now = int(time.time())
    return {"tid": tenant_id, "sub": subject, "roles": list(roles), "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience, "iat": now - 60, "nbf": now - 60, "exp": now + 3600}


def forged_tokens(settings: ServiceSettings, tenant_id: str, subject: str, *roles: str,
                  ) -> dict[str, str]:
    """Every kind of token a service must refuse, by name; each differs from a good token
    of the same caller in exactly one way."""
    good = valid_claims(settings, tenant_id, subject, *roles)
    secret = settings.jwt_secret.get_secret_value().encode()
    now = int(time.time())

    def without(claim: str) -> dict[str, Any]:
        return {name: value for name, value in good.items() if name != claim}

    return {
        "expired": signed({**good, "exp": now - 30}, secret),
        "not yet valid": signed({**good, "nbf": now + 600}, secret),
        "badly signed": signed(good, b"not-the-deployment-secret-0123456789abcdef"),
        "altered claims": _with_claims_of(signed(good, secret),
                                          {**good, "roles": ["admin", "integration"]}),
        "alg none": signed(good, None, "none"),
        "missing tid": signed(without("tid"), secret),
        "missing sub": signed(without("sub"), secret),
        "missing roles": signed(without("roles"), secret),
        "empty tid": signed({**good, "tid": ""}, secret),
        "wrong issuer": signed({**good, "iss": "someone-else"}, secret),
        "wrong audience": signed({**good, "aud": "another-platform"}, secret),
        "not a token": "coaching-platform",
    }


def _with_claims_of(token: str, claims: dict[str, Any]) -> str:
    """The token with its claims swapped, keeping the original signature."""
    header, _, signature = token.split(".")
    return f"{header}.{_segment(json.dumps(claims).encode())}.{signature}"


def key_confusion_token(settings: ServiceSettings, tenant_id: str, subject: str,
                        *roles: str) -> str:
    """An HS256 token keyed with the identity provider's public key (which anyone can read),
    aimed at a service that verifies RS256 tokens with that key."""
    assert settings.jwt_public_key, "the service must be configured with a public key"
    return signed(valid_claims(settings, tenant_id, subject, *roles),
                  settings.jwt_public_key.encode())


def authorization(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
