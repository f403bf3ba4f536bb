"""JWTVerifier against a real loopback JWKS server, with keys generated here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from serve.auth.jwt_verifier import JWTIdentity, JWTVerifier
from serve.config import JWTIssuerConfig
from serve.errors import AuthenticationFailed, ConfigError

ISSUER = "https://idp.test"
GROUPS_ISSUER = "https://groups.test"
AUDIENCE = "raygate"

# --- keys and tokens ---------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa: RSAPrivateKey
    rsa_new: RSAPrivateKey  # published later (rotation)
    rsa_other: RSAPrivateKey  # never published
    ec: EllipticCurvePrivateKey

    def jwk(self, kid: str) -> dict[str, Any]:
        key: Any = {"rsa": self.rsa, "rsa-new": self.rsa_new, "ec": self.ec}[kid]
        if isinstance(key, RSAPrivateKey):
            data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            data["alg"] = "RS256"
        else:
            data = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            data["alg"] = "ES256"
        return {**data, "kid": kid, "use": "sig"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_new=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, kid: str | None, alg: str = "RS256", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT refuses to make: ``alg: none`` or HMAC keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def public_pem(key: RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- the JWKS server, the clock and the verifier -----------------------------------


@dataclass
class JWKSServer:
    url: str
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, *jwks: dict[str, Any]) -> None:
        self.jwks = {"keys": list(jwks)}


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[JWKSServer]:
    state = JWKSServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            body = json.dumps(state.jwks).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    state.publish(keys.jwk("rsa"), keys.jwk("ec"))
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def issuer_config(url: str, **overrides: Any) -> JWTIssuerConfig:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": url,
        "teams": {"alice": "team-a", "bob": "team-b"},
        "leeway_s": 30,
        "jwks_cache_s": 300,
    }
    fields.update(overrides)
    return JWTIssuerConfig(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(jwks_server: JWKSServer, clock: Clock) -> AsyncIterator[JWTVerifier]:
    groups = issuer_config(
        jwks_server.url,
        issuer=GROUPS_ISSUER,
        team_claim="groups",
        teams={"ml": "team-ml"},
        default_team="fallback",
    )
    v = JWTVerifier([issuer_config(jwks_server.url), groups], clock=clock)
    try:
        yield v
    finally:
        await v.aclose()


# --- table: one token each, a team or a 401 ----------------------------------------

Case = Callable[[Keys], str]
HOUR = 3600

CASES: list[tuple[str, Case, str]] = [
    ("rs256 valid", lambda k: sign(k.rsa, "rsa"), "team-a"),
    ("es256 valid", lambda k: sign(k.ec, "ec", "ES256", sub="bob"), "team-b"),
    ("within leeway", lambda k: sign(k.rsa, "rsa", exp=int(time.time()) - 10), "team-a"),
    ("list claim", lambda k: sign(k.rsa, "rsa", iss=GROUPS_ISSUER, groups=["x", "ml"]), "team-ml"),
    ("default team", lambda k: sign(k.rsa, "rsa", iss=GROUPS_ISSUER, groups=["x"]), "fallback"),
    ("expired", lambda k: sign(k.rsa, "rsa", exp=int(time.time()) - HOUR), "expired"),
    ("not yet valid", lambda k: sign(k.rsa, "rsa", nbf=int(time.time()) + HOUR), "not yet valid"),
    ("iat in future", lambda k: sign(k.rsa, "rsa", iat=int(time.time()) + HOUR), "not yet valid"),
    ("wrong audience", lambda k: sign(k.rsa, "rsa", aud="someone-else"), "audience"),
    ("wrong issuer", lambda k: sign(k.rsa, "rsa", iss="https://evil.test"), "not trusted"),
    ("missing exp", lambda k: sign(k.rsa, "rsa", exp=None), "'exp'"),
    ("missing sub", lambda k: sign(k.rsa, "rsa", sub=None), "'sub'"),
    ("unmapped subject", lambda k: sign(k.rsa, "rsa", sub="mallory"), "not mapped to a team"),
    ("bad signature", lambda k: sign(k.rsa_other, "rsa"), "signature is invalid"),
    ("ES256 header, RSA kid", lambda k: sign(k.ec, "rsa", "ES256"), "does not match"),
    ("RS384 not configured", lambda k: sign(k.rsa, "rsa", "RS384"), "algorithm is not allowed"),
    (
        "alg none",
        lambda k: forge({"alg": "none", "kid": "rsa"}, claims(), None),
        "algorithm is not allowed",
    ),
    (
        "HS256 keyed with the RSA public key",
        lambda k: forge({"alg": "HS256", "kid": "rsa"}, claims(), public_pem(k.rsa)),
        "algorithm is not allowed",
    ),
    ("not a jwt", lambda k: "sk-rg-abcdefgh-" + "x" * 40, "not a valid JWT"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_verify(verifier: JWTVerifier, keys: Keys, make: Case, expected: str) -> None:
    token = make(keys)
    if expected.startswith(("team-", "fallback")):
        identity = await verifier.verify(token)
        assert isinstance(identity, JWTIdentity)
        assert identity.team == expected
        assert identity.claims["sub"] == identity.subject
    else:
        with pytest.raises(AuthenticationFailed, match=expected) as info:
            await verifier.verify(token)
        assert info.value.status == 401
        assert token not in info.value.message


def test_looks_like_jwt(keys: Keys) -> None:
    assert JWTVerifier.looks_like_jwt(sign(keys.rsa, "rsa"))
    assert JWTVerifier.looks_like_jwt(forge({"alg": "none"}, claims(), None))
    for token in ("sk-rg-abcdefgh-secret", "a.b.c", "e30.e30.e30", "x" * 20_000, "..", ""):
        assert not JWTVerifier.looks_like_jwt(token)


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_symmetric_or_none_algorithms_are_refused_in_config(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        JWTVerifier([issuer_config("http://127.0.0.1:1/", algorithms=algorithms)])


def test_duplicate_issuer_is_refused() -> None:
    cfg = issuer_config("http://127.0.0.1:1/")
    with pytest.raises(ConfigError):
        JWTVerifier([cfg, cfg])


# --- caching, rotation, rate limits, failures --------------------------------------


async def test_jwks_is_cached_until_it_expires(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys, clock: Clock
) -> None:
    token = sign(keys.rsa, "rsa")
    for _ in range(3):
        await verifier.verify(token)
    assert jwks_server.requests == 1
    clock.advance(301)
    await verifier.verify(token)
    assert jwks_server.requests == 2


async def test_unknown_kid_refetches_once_and_rotation_works(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys, clock: Clock
) -> None:
    await verifier.verify(sign(keys.rsa, "rsa"))
    jwks_server.publish(keys.jwk("rsa"), keys.jwk("rsa-new"))
    rotated = sign(keys.rsa_new, "rsa-new", sub="bob")
    # Within the refetch interval of the last fetch, an unknown kid does not refetch.
    with pytest.raises(AuthenticationFailed, match="key is unknown"):
        await verifier.verify(rotated)
    assert jwks_server.requests == 1
    clock.advance(31)
    assert (await verifier.verify(rotated)).team == "team-b"
    assert (await verifier.verify(rotated)).team == "team-b"
    assert jwks_server.requests == 2


async def test_burst_of_garbage_kids_refetches_at_most_once(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys, clock: Clock
) -> None:
    await verifier.verify(sign(keys.rsa, "rsa"))
    clock.advance(31)
    tokens = [sign(keys.rsa_other, f"garbage-{i}") for i in range(25)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    for token in tokens[:5]:
        with pytest.raises(AuthenticationFailed, match="key is unknown"):
            await verifier.verify(token)
    assert jwks_server.requests == 2


async def test_concurrent_cold_verifications_share_one_fetch(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys
) -> None:
    tokens = [sign(keys.rsa, "rsa"), sign(keys.ec, "ec", "ES256", sub="bob")] * 10
    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [i.team for i in identities] == ["team-a", "team-b"] * 10
    assert jwks_server.requests == 1


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks"


async def test_jwks_server_down_is_a_401_and_is_logged_without_the_token(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = JWTVerifier([issuer_config(_closed_port_url())])
    token = sign(keys.rsa, "rsa")
    try:
        with (
            caplog.at_level(logging.WARNING, logger="serve.auth.jwt_verifier"),
            pytest.raises(AuthenticationFailed, match="unavailable"),
        ):
            await verifier.verify(token)
    finally:
        await verifier.aclose()
    assert "JWKS fetch" in caplog.text
    assert token not in caplog.text


async def test_failed_fetch_backs_off_then_recovers(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys, clock: Clock
) -> None:
    token = sign(keys.rsa, "rsa")
    jwks_server.status = 500
    for _ in range(3):
        with pytest.raises(AuthenticationFailed, match="unavailable"):
            await verifier.verify(token)
    assert jwks_server.requests == 1
    jwks_server.status = 200
    clock.advance(6)
    assert (await verifier.verify(token)).team == "team-a"
    assert jwks_server.requests == 2


async def test_stale_keys_are_used_while_the_jwks_server_fails(
    verifier: JWTVerifier, jwks_server: JWKSServer, keys: Keys, clock: Clock
) -> None:
    token = sign(keys.rsa, "rsa")
    await verifier.verify(token)
    jwks_server.status = 503
    clock.advance(301)
    assert (await verifier.verify(token)).team == "team-a"
    assert (await verifier.verify(token)).team == "team-a"
    assert jwks_server.requests == 2


async def test_shared_http_client_is_not_closed(jwks_server: JWKSServer, keys: Keys) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier([issuer_config(jwks_server.url)], http)
        assert (await verifier.verify(sign(keys.rsa, "rsa"))).team == "team-a"
        await verifier.aclose()
        assert not http.is_closed
