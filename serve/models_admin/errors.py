"""Errors of the model admin API (the gateway's one hierarchy, `serve.errors`)."""

from __future__ import annotations

from serve.errors import GatewayError

__all__ = ["ConfigConflict", "RedeployFailed"]


class ConfigConflict(GatewayError):
    """The change no longer applies as asked: someone else changed the config first
    (``config_conflict``: re-read and re-apply) or the model already exists."""

    status = 409
    type = "invalid_request_error"
    default_code = "config_conflict"


class RedeployFailed(GatewayError):
    """The new config was valid but the platform refused to deploy it; nothing changed."""

    status = 502
    type = "server_error"
    default_code = "redeploy_failed"
