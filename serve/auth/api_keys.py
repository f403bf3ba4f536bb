"""Virtual API keys: generation, parsing and hashing.

Format: ``sk-rg-<id>-<secret>``. The id (8 chars) identifies the key in lists, logs and
the admin API; the secret is 256 random bits. Only the SHA-256 of the whole key is
stored (a fast hash is right for high-entropy keys); comparison is constant-time.
Keys provisioned from config may have any value; their id is derived from the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sk-rg-"
_FORMAT = re.compile(r"^sk-rg-([a-z0-9]{8})-([A-Za-z0-9_-]{32,})$")


def generate() -> tuple[str, str]:
    """Return (key id, plaintext key)."""
    key_id = secrets.token_hex(4)
    return key_id, f"{PREFIX}{key_id}-{secrets.token_urlsafe(32)}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    """The id a presented key is stored under (derived for free-form config keys)."""
    match = _FORMAT.match(key)
    return match.group(1) if match else "cfg" + digest(key)[:13]


def display_prefix(key_id: str) -> str:
    return f"{PREFIX}{key_id}" if not key_id.startswith("cfg") else key_id


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)
