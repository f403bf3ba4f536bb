"""Recognizers for credentials: cloud keys, tokens, private keys, passwords.

Secrets score above personal data (1.0), so a token that happens to contain a digit run
is redacted as the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from guardrails.recognizer import CheckedRecognizer

__all__ = ["secret_recognizers"]

_NOT_TOKEN_BEFORE = r"(?<![A-Za-z0-9_-])"
_NOT_TOKEN_AFTER = r"(?![A-Za-z0-9_-])"

_AWS_KEY_ID = (
    r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}"
    r"(?![A-Z0-9])"
)
_AWS_SECRET = (
    r"(?=[A-Za-z0-9/+])(?<=(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key|secretaccesskey)"
    r"[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
# The two secret fields of a service-account key file (JSON, or JSON pasted in a prompt).
_GCP_PRIVATE_KEY = r"(?<=\"\s*:\s*\")(?<=\"private_key\"\s*:\s*\")(?:[^\"\\]|\\.){16,}(?=\")"
_GCP_PRIVATE_KEY_ID = r"(?=[0-9a-f])(?<=\"private_key_id\"\s*:\s*\")[0-9a-f]{40}(?=\")"
_GITHUB = (
    _NOT_TOKEN_BEFORE
    + r"(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
    + _NOT_TOKEN_AFTER
)
_SLACK = _NOT_TOKEN_BEFORE + r"(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,250}" + _NOT_TOKEN_AFTER
# OpenAI-style keys (sk-..., sk-proj-..., sk-svcacct-...; also sk-ant-... look-alikes).
_OPENAI = _NOT_TOKEN_BEFORE + r"sk-(?:[A-Za-z0-9]+-){0,2}[A-Za-z0-9_-]{20,200}" + _NOT_TOKEN_AFTER
# The user:password part of any URL (https://user:pass@host, postgres://u:pw@db:5432).
_URL_USERINFO = (
    r"(?<=//)(?<=[A-Za-z][A-Za-z0-9+.-]{1,20}://)[^\s:/@?#\[\]]{1,128}:[^\s@/?#]{1,128}"
    r"(?=@[A-Za-z0-9.\-\[])"
)
_PEM = (
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*?)PRIVATE KEY(?: BLOCK)?-----"
    r".*?-----END (?P=kind)PRIVATE KEY(?: BLOCK)?-----"
)
_PEM_UNTERMINATED = r"-----BEGIN [A-Z0-9 ]*?PRIVATE KEY-----(?:\\n|\s)*[A-Za-z0-9+/=\\\s]{64,}"
_JWT = (
    r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
    r"(?![A-Za-z0-9_.-])"
)
# A password given as a key/value (password=..., "password": "...", パスワード:...) or
# in plain words ("my password is ..."). The value only: the key stays readable.
_PASSWORD_KV = (
    r"(?=[^\s\"'`;,&<>])(?<=[:=][\"']?|[:=]\s+[\"']?)(?<=(?i:(?<![A-Za-z])(?:password|passwd|passphrase|pwd|pgpassword|mysql_pwd|"
    r"db_pass(?:word)?|client_secret|secret_key|api_secret))[\"']?\s*[:=]\s*[\"']?)[^\s\"'`;,&<>]{3,128}"
)
_PASSWORD_WORDS = (
    r"(?=[!#-&(-~])(?<=(?i:(?:password|passcode|passphrase)\s+(?:is|was|:)\s+[\"']?)|"
    r"パスワード(?:は|:)\s*[「\"']?)[!#-&(-~]{3,64}"  # printable ASCII but quotes
)
_PLACEHOLDER_VALUE = re.compile(
    r"^(?:\*+|x+|\.{3}|<[^>]*>?|\$\{?\w*\}?|\{\{.*|%\(?\w*|\[?redacted\]?|changeme|none|null|"
    r"true|false|required|optional|your[_-]?password.*|os\.|env\b.*|getenv.*|process\.env.*)$",
    re.IGNORECASE,
)
_CODE_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*[\[(]")


def _jwt_valid(value: str) -> bool:
    header = value.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        parsed = json.loads(decoded)
    except (binascii.Error, ValueError):
        return False
    return isinstance(parsed, dict) and "alg" in parsed


def _password_valid(value: str) -> bool:
    return not (_PLACEHOLDER_VALUE.match(value) or _CODE_REFERENCE.match(value))


def _openai_valid(value: str) -> bool:
    # A real key mixes letters and digits; "sk-learn-is-a-python-library" does not.
    body = value.rsplit("-", 1)[-1] if len(value.rsplit("-", 1)[-1]) >= 20 else value
    return any(c.isdigit() for c in body) and any(c.isalpha() for c in body)


def secret_recognizers() -> list[CheckedRecognizer]:
    return [
        CheckedRecognizer("URL_CREDENTIALS", [("url_userinfo", _URL_USERINFO, 1.0)]),
        CheckedRecognizer("AWS_ACCESS_KEY_ID", [("aws_key_id", _AWS_KEY_ID, 1.0)]),
        CheckedRecognizer("AWS_SECRET_KEY", [("aws_secret", _AWS_SECRET, 1.0)]),
        CheckedRecognizer(
            "GCP_SERVICE_ACCOUNT_KEY",
            [
                ("gcp_private_key", _GCP_PRIVATE_KEY, 1.0),
                ("gcp_private_key_id", _GCP_PRIVATE_KEY_ID, 1.0),
            ],
        ),
        CheckedRecognizer("GITHUB_TOKEN", [("github", _GITHUB, 1.0)]),
        CheckedRecognizer("SLACK_TOKEN", [("slack", _SLACK, 1.0)]),
        CheckedRecognizer("OPENAI_API_KEY", [("openai", _OPENAI, 1.0)], _openai_valid),
        CheckedRecognizer(
            "PRIVATE_KEY", [("pem", _PEM, 1.0), ("pem_unterminated", _PEM_UNTERMINATED, 0.95)]
        ),
        CheckedRecognizer("JWT", [("jwt", _JWT, 1.0)], _jwt_valid),
        CheckedRecognizer(
            "PASSWORD",
            [("password_kv", _PASSWORD_KV, 0.95), ("password_words", _PASSWORD_WORDS, 0.9)],
            _password_valid,
        ),
    ]
