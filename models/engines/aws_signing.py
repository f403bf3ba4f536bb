"""AWS credentials and SigV4 request signing for HTTP clients that are not botocore's.

The gateway talks to AWS with its own ``httpx`` client (one pooled, async connection pool
per backend) but leaves the security-sensitive parts to botocore: the standard credential
chain (environment, profiles, SSO, web-identity federation via STS, container and instance
roles) and the SigV4 algorithm itself. The signed headers are then copied onto the httpx
request, whose body must be the exact bytes that were signed.

Credential refreshes can block (STS or the instance metadata service over the network), so
they run in a worker thread; while the cached credentials are comfortably fresh they are
read inline, which saves a thread hop per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "CredentialProvider",
    "CredentialsUnavailable",
    "FrozenCredentials",
    "resolve_credentials",
    "sign_headers",
]

logger = logging.getLogger(__name__)

# botocore refreshes temporary credentials once fewer than 15 minutes (advisory) remain.
# Outside this margin `get_frozen_credentials` cannot trigger a refresh, so it is safe to
# call on the event loop; inside it we always go through a thread.
_INLINE_MARGIN_S = 16 * 60


class FrozenCredentials(NamedTuple):
    """One consistent key/secret/token triple (what botocore's signer reads)."""

    access_key: str
    secret_key: str
    token: str | None


class CredentialsUnavailable(Exception):
    """No credentials could be resolved or refreshed. The message is for logs only."""


def resolve_credentials(profile: str | None = None) -> Credentials:
    """The standard AWS credential chain (blocking: may read files or call the network)."""
    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except (BotoCoreError, ClientError, OSError) as exc:  # OSError: token files
        raise CredentialsUnavailable(f"{type(exc).__name__}: {exc}") from None
    if credentials is None:
        raise CredentialsUnavailable("the AWS credential chain found no credentials")
    return credentials


class CredentialProvider:
    """Resolves the credential chain lazily (first use) and hands out frozen snapshots.

    ``credentials`` may be given (tests, callers with their own source); otherwise the
    chain for ``profile`` is resolved on first use, in a thread. A failed resolution is
    not cached: the next request tries again (the role may just have been granted).
    """

    def __init__(
        self, credentials: Credentials | None = None, *, profile: str | None = None
    ) -> None:
        self._credentials = credentials
        self._profile = profile
        self._lock = asyncio.Lock()

    async def frozen(self) -> FrozenCredentials:
        credentials = self._credentials
        if credentials is None or _may_refresh(credentials):
            # One thread at a time: concurrent requests wait for the same refresh instead
            # of queueing N blocking refreshes on the default executor.
            async with self._lock:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(resolve_credentials, self._profile)
                credentials = self._credentials
                return await asyncio.to_thread(_freeze, credentials)
        return _freeze(credentials)


def _may_refresh(credentials: Credentials) -> bool:
    refresh_needed = getattr(credentials, "refresh_needed", None)
    return refresh_needed is not None and bool(refresh_needed(_INLINE_MARGIN_S))


def _freeze(credentials: Credentials) -> FrozenCredentials:
    try:
        frozen: Any = credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError, OSError) as exc:  # OSError: token files
        raise CredentialsUnavailable(f"{type(exc).__name__}: {exc}") from None
    if not frozen.access_key or not frozen.secret_key:
        raise CredentialsUnavailable("the AWS credentials are incomplete")
    return FrozenCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def sign_headers(
    credentials: FrozenCredentials,
    *,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, str]:
    """SigV4-sign one request; returns ``headers`` plus the authentication headers.

    ``url`` is the URL exactly as it will be sent (path segments already percent-encoded
    once); botocore encodes the path again for the canonical request, as SigV4 requires
    for every service but S3. Every header in ``headers`` is signed, and ``host`` is
    derived from ``url`` the way HTTP clients send it (port only when not the default).
    """
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())
