"""Verifies bearer JWTs from trusted issuers against their JWKS.

The issuer is chosen by the token's (unverified) ``iss``; the signing key by its ``kid``
from the issuer's JWKS, which is fetched with httpx, cached for ``jwks_cache_s`` and
fetched by one caller at a time per issuer (concurrent callers wait for that fetch).
An unknown ``kid`` refetches the JWKS (key rotation), at most once per
``refetch_interval_s``; a failed fetch is retried at most once per ``retry_after_failure_s``
and, meanwhile, previously fetched keys stay in use. Only asymmetric algorithms are
accepted, and only those configured for the issuer; ``exp``, ``iss``, ``aud`` and ``sub``
are required. Error messages and logs never contain the token.

Token lifetimes (``exp``/``nbf``/``iat``) are checked against wall-clock time by PyJWT;
``clock`` (monotonic) only drives JWKS caching and rate limits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from serve.config import JWTIssuerConfig
from serve.errors import AuthenticationFailed, ConfigError

logger = logging.getLogger(__name__)

#: Algorithms an issuer may be configured with: asymmetric only, so a public key can
#: never be used as an HMAC secret and ``none`` is never accepted.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_CHARS = 16_384
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


@dataclass(frozen=True, slots=True)
class JWTIdentity:
    issuer: str
    subject: str
    team: str
    claims: Mapping[str, Any]


class _KeysUnavailable(Exception):
    """The JWKS could not be fetched or parsed (the message is for logs only)."""


@dataclass(slots=True)
class _IssuerState:
    config: JWTIssuerConfig
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    keys: dict[str | None, dict[str, Any]] | None = None  # kid -> JWK; None: never fetched
    parsed: dict[tuple[str | None, str], jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = -math.inf  # last successful fetch
    attempted_at: float = -math.inf  # last fetch, successful or not
    failed_at: float = -math.inf  # last failed fetch (reset by a successful one)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _fail(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message)


class JWTVerifier:
    """Verifies JWTs for a set of trusted issuers (one per distinct ``issuer``)."""

    def __init__(
        self,
        issuers: Sequence[JWTIssuerConfig],
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval_s: float = 30.0,
        retry_after_failure_s: float = 5.0,
    ) -> None:
        self._issuers: dict[str, _IssuerState] = {}
        for cfg in issuers:
            if cfg.issuer in self._issuers:
                raise ConfigError(f"auth.jwt_issuers: issuer {cfg.issuer!r} is listed twice")
            bad = [a for a in cfg.algorithms if a not in ASYMMETRIC_ALGORITHMS]
            if bad or not cfg.algorithms:
                raise ConfigError(
                    f"auth.jwt_issuers: issuer {cfg.issuer!r} has unsupported algorithms "
                    f"{bad}; use asymmetric ones: {sorted(ASYMMETRIC_ALGORITHMS)}"
                )
            self._issuers[cfg.issuer] = _IssuerState(cfg)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=5.0)
        self._clock = clock
        self._refetch_interval_s = refetch_interval_s
        self._retry_after_failure_s = retry_after_failure_s

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        """Cheap shape check: three base64url segments, the first a JSON header with ``alg``."""
        parts = token.split(".")
        if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or not parts[0] or not parts[1]:
            return False
        if not all(_SEGMENT.match(p) for p in parts):
            return False
        try:
            header = json.loads(_b64decode(parts[0]))
        except (ValueError, binascii.Error):
            return False
        return isinstance(header, dict) and isinstance(header.get("alg"), str)

    async def verify(self, token: str) -> JWTIdentity:
        """Verify ``token`` and map it to a team; raise `AuthenticationFailed` otherwise."""
        if not self.looks_like_jwt(token):
            raise _fail("The bearer token is not a valid JWT.")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _fail("The bearer token is not a valid JWT.") from None
        iss = unverified.get("iss")
        state = self._issuers.get(iss) if isinstance(iss, str) else None
        if state is None:
            raise _fail("The token issuer is not trusted.")
        cfg = state.config
        alg = header.get("alg")
        if alg not in cfg.algorithms:
            raise _fail("The token algorithm is not allowed.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("The token key id is invalid.")
        key = await self._key(state, kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _fail("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise _fail("The token is not yet valid.") from None
        except jwt.InvalidAudienceError:
            raise _fail("The token audience is not accepted.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _fail(f"The token is missing the {exc.claim!r} claim.") from None
        except jwt.InvalidSignatureError:
            raise _fail("The token signature is invalid.") from None
        except jwt.PyJWTError:
            raise _fail("The token is invalid.") from None
        return JWTIdentity(
            issuer=cfg.issuer,
            subject=str(claims["sub"]),
            team=self._team(cfg, claims),
            claims=claims,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @staticmethod
    def _team(cfg: JWTIssuerConfig, claims: Mapping[str, Any]) -> str:
        value = claims.get(cfg.team_claim)
        candidates = value if isinstance(value, list) else [value]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in cfg.teams:
                return cfg.teams[candidate]
        if cfg.default_team is not None:
            return cfg.default_team
        raise _fail("The token is not mapped to a team.")

    async def _key(self, state: _IssuerState, kid: str | None, alg: str) -> jwt.PyJWK:
        ttl = state.config.jwks_cache_s
        if state.keys is not None and self._clock() - state.fetched_at < ttl:
            found = self._lookup(state, kid, alg)
            if found is not None:
                return found
        async with state.lock:  # one fetch per issuer at a time; waiters re-check below
            now = self._clock()
            if state.keys is not None and now - state.fetched_at < ttl:
                found = self._lookup(state, kid, alg)
                if found is not None:
                    return found
                # Unknown kid: maybe a rotation; refetch, but rarely.
                if now - state.attempted_at < self._refetch_interval_s:
                    raise _fail("The token signing key is unknown.")
            elif now - state.failed_at < self._retry_after_failure_s:
                return self._stale_or_unavailable(state, kid, alg)
            state.attempted_at = now
            try:
                state.keys = await self._fetch(state.config)
            except _KeysUnavailable as exc:
                state.failed_at = now
                logger.warning("JWKS fetch for issuer %s failed: %s", state.config.issuer, exc)
                return self._stale_or_unavailable(state, kid, alg)
            state.parsed.clear()
            state.fetched_at = now
            state.failed_at = -math.inf
            found = self._lookup(state, kid, alg)
            if found is None:
                raise _fail("The token signing key is unknown.")
            return found

    def _stale_or_unavailable(self, state: _IssuerState, kid: str | None, alg: str) -> jwt.PyJWK:
        found = self._lookup(state, kid, alg) if state.keys is not None else None
        if found is None:
            raise _fail("The signing keys of the token issuer are unavailable.")
        return found

    @staticmethod
    def _lookup(state: _IssuerState, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The key for ``kid`` bound to ``alg``; without a kid, the JWKS's only key."""
        keys = state.keys or {}
        if kid is None and len(keys) == 1:
            kid = next(iter(keys))
        jwk = keys.get(kid)
        if jwk is None:
            return None
        if jwk.get("alg", alg) != alg:
            raise _fail("The token algorithm does not match its signing key.")
        cached = state.parsed.get((kid, alg))
        if cached is None:
            try:
                cached = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise _fail("The token algorithm does not match its signing key.") from None
            state.parsed[(kid, alg)] = cached
        return cached

    async def _fetch(self, cfg: JWTIssuerConfig) -> dict[str | None, dict[str, Any]]:
        try:
            response = await self._http.get(cfg.jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _KeysUnavailable(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
            raise _KeysUnavailable("response is not a JWKS")
        keys: dict[str | None, dict[str, Any]] = {}
        for jwk in body["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            if jwk.get("kty") not in ("RSA", "EC", "OKP"):
                continue
            kid = jwk.get("kid")
            keys[kid if isinstance(kid, str) else None] = jwk
        return keys
