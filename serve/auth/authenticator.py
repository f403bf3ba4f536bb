"""Turns an ``Authorization`` header into a `Principal`, or a 401.

API keys are looked up by id in the key store and compared by hash in constant time;
successful lookups are cached per replica for ``auth.key_cache_ttl_s`` (a revocation
made on another replica takes effect within that time; on this replica at once).
JWTs are verified against their issuer's JWKS.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from serve.auth import api_keys
from serve.auth.jwt_verifier import JWTVerifier
from serve.config import PlatformConfig
from serve.errors import AuthenticationFailed, PermissionDenied
from serve.keystore import KeyRecord, KeyStore

_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    team: str
    key_id: str | None
    subject: str | None
    models: frozenset[str] | None  # None: every model the team may use
    role: str = "user"  # serve.config.Role; an "auditor" calls no model

    def may_use(self, config: PlatformConfig, requested: str, canonical: str) -> bool:
        team = config.team(self.team)
        if team is None or self.role not in ("user", "model_owner"):
            return False
        names = {requested, canonical}
        if "*" not in team.models and not names & set(team.models):
            return False
        # A model dedicated to another team; a route that would send this team to one.
        route = config.route(canonical)
        targets = (
            [t.model for t in route.teams.get(self.team, route.targets)]
            if route is not None
            else [canonical]
        )
        for name in targets:
            model = config.model(name)
            if model is not None and not model.usable_by(self.team):
                return False
        return self.models is None or "*" in self.models or bool(names & self.models)


def _bearer(header: str | None) -> str:
    if not header:
        raise AuthenticationFailed(
            "You didn't provide an API key. Pass it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
    return token


class Authenticator:
    def __init__(
        self,
        config: PlatformConfig,
        keys: KeyStore,
        jwt: JWTVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._keys = keys
        self._jwt = jwt
        self._ttl = config.auth.key_cache_ttl_s
        self._clock = clock
        self._cache: OrderedDict[str, tuple[KeyRecord, float]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        if self._jwt is not None and JWTVerifier.looks_like_jwt(token):
            identity = await self._jwt.verify(token)
            return Principal(team=identity.team, key_id=None, subject=identity.subject, models=None)
        record = await self._lookup(token)
        if record is None or not api_keys.matches(token, record.digest):
            raise AuthenticationFailed("Incorrect API key provided.")
        if not record.usable():
            self.forget(record.id)
            raise AuthenticationFailed("This API key has expired or was revoked.")
        return Principal(
            team=record.team,
            key_id=record.id,
            subject=None,
            models=frozenset(record.models) if record.models is not None else None,
            role=record.role,
        )

    async def _lookup(self, token: str) -> KeyRecord | None:
        key_id = api_keys.key_id_of(token)
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = await self._keys.find(key_id)
        if record is not None and self._ttl > 0:
            self._cache[key_id] = (record, now + self._ttl)
            self._cache.move_to_end(key_id)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return record

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    def check_admin(self, authorization: str | None, admin_key: str | None) -> None:
        token = _bearer(authorization)
        if admin_key is None:
            raise AuthenticationFailed("The admin API is disabled (auth.admin_key is not set).")
        if not api_keys.matches(token, api_keys.digest(admin_key)):
            raise AuthenticationFailed("Incorrect admin key provided.")

    async def admin_or_role(
        self, authorization: str | None, admin_key: str | None, role: str, refusal: str
    ) -> Principal | None:
        """None for the admin key; the principal of a valid key with ``role``; otherwise
        401 (no valid key) or 403 ``not_<role>`` with ``refusal`` as the message."""
        try:
            self.check_admin(authorization, admin_key)
            return None
        except AuthenticationFailed:
            pass
        principal = await self.authenticate(authorization)
        if principal.role != role:
            raise PermissionDenied(refusal, code=f"not_{role}")
        return principal
