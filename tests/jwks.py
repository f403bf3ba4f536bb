"""Signing keys and JWKS documents generated in the tests (no external identity provider)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def rsa(cls, kid: str) -> KeyPair:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, issuer: str, subject: str, audience: str = "raygate", ttl_s: int = 300) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})
