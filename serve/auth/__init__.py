"""Caller authentication: API keys and tokens from trusted JWT issuers."""
