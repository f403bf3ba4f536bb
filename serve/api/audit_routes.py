"""Admin read API for the audit log and the usage report.

``GET /admin/audit`` lists records newest first (keyset pages); ``GET /admin/usage``
reports per team x model x day plus the model inventory. `authorize` turns the
Authorization header into an `AuditScope`: the admin key sees every team and the
decrypted text of ``full`` records; a team auditor sees its own team, text encrypted.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from serve.audit.scope import AuditScope
from serve.audit.store import AuditStore
from serve.errors import InvalidRequest, PermissionDenied

__all__ = ["DEFAULT_USAGE_DAYS", "MAX_LIMIT", "add_routes"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_USAGE_DAYS = 7
AUDIT_PARAMS = frozenset({"team", "since", "until", "model", "limit", "cursor"})
USAGE_PARAMS = frozenset({"team", "since", "until"})
# An unencoded "+00:00" offset arrives as " 00:00" (a query string's "+" is a space).
_SPACED_OFFSET = re.compile(r" (\d\d(?::?\d\d)?)$")


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def _check_params(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise InvalidRequest(
                f"Unknown query parameter '{name}'; use: {', '.join(sorted(allowed))}.",
                param=name,
                code="unknown_parameter",
            )


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if "T" in value:
        value = _SPACED_OFFSET.sub(r"+\1", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"'{name}' must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z.",
            param=name,
            code="invalid_time",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _window(params: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    since, until = _time(params, "since"), _time(params, "until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("'since' must be before 'until'.", param="since", code="invalid_time")
    return since, until


def _limit(params: Mapping[str, str]) -> int:
    value = params.get("limit")
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(
            f"'limit' must be an integer from 1 to {MAX_LIMIT}.",
            param="limit",
            code="invalid_limit",
        )
    return int(value)


def _team(scope: AuditScope, requested: str | None) -> str | None:
    """The team a query is limited to: a team auditor's own, whatever it asked for."""
    team = requested or None
    if scope.team is None:
        return team
    if team is not None and team != scope.team:
        raise PermissionDenied(
            f"This key may read the audit log of team '{scope.team}' only.",
            param="team",
            code="team_not_allowed",
        )
    return scope.team


def add_routes(
    app: FastAPI,
    store: AuditStore,
    authorize: Callable[[str | None], Awaitable[AuditScope]],
) -> None:
    @app.get("/admin/audit")
    async def audit_log(request: Request) -> Response:
        scope = await authorize(request.headers.get("authorization"))
        params = request.query_params
        _check_params(params, AUDIT_PARAMS)
        team = _team(scope, params.get("team"))
        since, until = _window(params)
        page = await store.query(
            team=team,
            since=since,
            until=until,
            model=params.get("model") or None,
            limit=_limit(params),
            cursor=params.get("cursor") or None,
        )
        rows = [r.revealed(store.cipher) if scope.is_admin else r for r in page.rows]
        return _json(
            {
                "object": "list",
                "data": [r.public() for r in rows],
                "has_more": page.next_cursor is not None,
                "next_cursor": page.next_cursor,
            }
        )

    @app.get("/admin/usage")
    async def usage(request: Request) -> Response:
        scope = await authorize(request.headers.get("authorization"))
        params = request.query_params
        _check_params(params, USAGE_PARAMS)
        team = _team(scope, params.get("team"))
        since, until = _window(params)
        until = until or datetime.now(UTC)
        since = since or until - timedelta(days=DEFAULT_USAGE_DAYS)
        if since >= until:
            raise InvalidRequest(
                "'since' must be before 'until'.", param="since", code="invalid_time"
            )
        report = await store.usage(since, until, team)
        inventory = await store.inventory(team, since, until)
        return _json(
            {
                "object": "usage.report",
                "since": since.isoformat(),
                "until": until.isoformat(),
                "team": team,
                "data": [r.public() for r in report],
                "inventory": [r.public() for r in inventory],
            }
        )
