"""The settings loader: the one place raygate reads the process environment.

Config files never hold secrets, only references of the form ``env:NAME``; they are
resolved here, in the process that needs them (a Serve replica resolves its own).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from serve.errors import ConfigError

SECRET_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
SECRET_REF_PATTERN = SECRET_REF.pattern


def is_secret_ref(value: str) -> bool:
    return SECRET_REF.match(value) is not None


def resolve_secret(ref: str) -> str:
    """Resolve ``env:NAME`` to the variable's value; refuse anything else."""
    match = SECRET_REF.match(ref)
    if match is None:
        raise ConfigError(f"secret must be a reference like env:NAME, got {ref[:8]!r}...")
    name = match.group(1)
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"secret reference {ref} is not set in the environment")
    return value


def resolve_optional(value: str | None) -> str | None:
    """Resolve a value that may be given inline or as an ``env:NAME`` reference."""
    if value is None:
        return None
    return resolve_secret(value) if is_secret_ref(value) else value


def raygate_home() -> Path:
    """Directory for local state of the embedded default (dev key, SQLite file)."""
    return Path(os.environ.get("RAYGATE_HOME") or Path.home() / ".raygate")


def env(name: str) -> str | None:
    """Read one raygate launcher variable (RAYGATE_*); used by the CLI only."""
    return os.environ.get(name) or None


def set_env(name: str, value: str) -> None:
    """Export a variable to processes started later (Ray workers inherit it)."""
    os.environ[name] = value


def expand_database_url(url: str) -> str:
    """Expand ``~`` and ``$RAYGATE_HOME`` in a SQLite URL's path."""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if path.startswith("~") or path.startswith("$RAYGATE_HOME"):
        path = path.replace("$RAYGATE_HOME", str(raygate_home()), 1)
        path = str(Path(path).expanduser())
    return prefix + path
