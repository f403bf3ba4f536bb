"""OAuth access tokens for Google APIs, kept fresh without blocking the event loop.

google-auth does the real work (service-account JWT grant, the GKE/GCE metadata server
for Workload Identity, external-account federation, gcloud user credentials); its
transport is synchronous, so loading and refreshing run in a worker thread, one refresh
at a time under an asyncio lock. A token is refreshed `refresh_margin_s` before it
expires, so requests never go out with one about to lapse; concurrent requests that find
it stale wait for the one refresh instead of each starting their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
from google.auth.credentials import Credentials

from serve.errors import ConfigError, UpstreamError
from serve.settings import resolve_optional

log = logging.getLogger("raygate.google_credentials")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class TokenSource(Protocol):
    async def headers(self) -> dict[str, str]:
        """Request headers that authenticate one call (``authorization`` and friends)."""
        ...

    def invalidate(self, headers: dict[str, str]) -> None:
        """The API refused these headers (401): the next `headers` call refreshes."""
        ...

    def close(self) -> None: ...


def _utcnow() -> datetime:
    # google-auth keeps `expiry` as a naive UTC datetime.
    return datetime.now(UTC).replace(tzinfo=None)


class GoogleTokenSource:
    """Tokens from given credentials, a credentials file (path or ``env:NAME``), or ADC."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        credentials_file: str | None = None,
        scopes: tuple[str, ...] = (CLOUD_PLATFORM,),
        refresh_margin_s: float = 300.0,
        timeout_s: float = 30.0,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._credentials = credentials
        self._credentials_file = credentials_file
        self._scopes = list(scopes)
        self._margin = timedelta(seconds=refresh_margin_s)
        self._now = now
        self._http = google.auth.transport.requests.Request()  # one keep-alive session
        self._transport = _TimeoutRequest(self._http, timeout_s)
        self._lock = asyncio.Lock()
        self._refused: str | None = None  # a token the API refused before its expiry

    async def headers(self) -> dict[str, str]:
        credentials = self._credentials
        if credentials is None or not self._fresh(credentials):
            credentials = await self._refresh()
        headers = {"authorization": f"Bearer {credentials.token}"}
        quota_project = getattr(credentials, "quota_project_id", None)
        if quota_project:
            headers["x-goog-user-project"] = str(quota_project)
        return headers

    def invalidate(self, headers: dict[str, str]) -> None:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if self._credentials is not None and self._credentials.token == token:
            self._refused = token

    def close(self) -> None:
        self._http.session.close()

    def _fresh(self, credentials: Credentials) -> bool:
        token = credentials.token
        if not token or token == self._refused:
            return False
        expiry = credentials.expiry
        return expiry is None or self._now() < expiry - self._margin

    async def _refresh(self) -> Credentials:
        async with self._lock:  # whoever waited here finds the token the first one got
            credentials = self._credentials
            if credentials is not None and self._fresh(credentials):
                return credentials
            return await asyncio.to_thread(self._load_and_refresh)

    def _load_and_refresh(self) -> Credentials:
        """Runs in a worker thread: google-auth's transport is blocking."""
        try:
            credentials = self._credentials or self._load()
            credentials.refresh(self._transport)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.RefreshError as exc:
            # Refused by the token service (a deleted key, say): retrying won't help,
            # unless google-auth marked it transient (a 5xx of the token endpoint).
            log.error("Google token refresh failed: %s", exc)
            code = "upstream_error" if getattr(exc, "retryable", False) else "upstream_auth_failed"
            raise UpstreamError(
                "The gateway could not authenticate to the model backend.", code=code
            ) from None
        except google.auth.exceptions.TransportError as exc:
            log.error("Google token service unreachable: %s", exc)
            raise UpstreamError(
                "The gateway could not reach the model backend's token service."
            ) from None
        except (google.auth.exceptions.GoogleAuthError, ConfigError, OSError, ValueError) as exc:
            log.error("Google credentials unusable: %s", exc)
            raise UpstreamError(
                "The gateway could not authenticate to the model backend.",
                code="upstream_auth_failed",
            ) from None
        self._credentials = credentials
        self._refused = None
        return credentials

    def _load(self) -> Credentials:
        path = resolve_optional(self._credentials_file)
        if path is not None:
            # Any credentials file: service account, external account (workload identity
            # federation), or gcloud's authorized user.
            loaded = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                path, scopes=self._scopes
            )
        else:
            # Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's
            # user credentials, or the metadata server (Workload Identity on GKE).
            loaded = google.auth.default(scopes=self._scopes)
        credentials: Credentials = loaded[0]
        return credentials


class _TimeoutRequest:
    """google-auth's requests transport with our timeout (its default is 120 s)."""

    def __init__(self, inner: google.auth.transport.requests.Request, timeout_s: float) -> None:
        self._inner = inner
        self._timeout_s = timeout_s

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._inner(
            url,
            method=method,
            body=body,
            headers=headers,
            timeout=timeout if timeout is not None else self._timeout_s,
            **kwargs,
        )
