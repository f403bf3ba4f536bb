"""Recognizers for personal data written the same way in any language.

Boundaries are ASCII look-arounds, never `\\b`: `\\b` does not match between a kanji and a
digit ("番号4111…"), and a digit run must not match inside a longer one.
"""

from __future__ import annotations

import ipaddress
import re

from guardrails.checksums import iban_valid, luhn_valid
from guardrails.recognizer import CheckedRecognizer

__all__ = ["pii_recognizers"]

_NO_DIGIT_BEFORE = r"(?<![0-9])"
_NO_DIGIT_AFTER = r"(?![0-9])"


def _digits(value: str) -> str:
    return re.sub(r"[^0-9]", "", value)


def _card_valid(value: str) -> bool:
    digits = _digits(value)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _ssn_valid(value: str) -> bool:
    digits = _digits(value)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area.startswith("9") or group == "00" or serial == "0000":
        return False
    return len(set(digits)) > 1


def _ip_valid(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    # Version-like strings ("1.2.3.4") are valid addresses too; keep them: an address in
    # a prompt is rarely a version number with exactly four parts.
    return not (address.version == 6 and value.count(":") < 2)


def _phone_valid(value: str) -> bool:
    return 7 <= len(_digits(value)) <= 15


_EMAIL = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_CARD = _NO_DIGIT_BEFORE + r"(?:[0-9]{4}[ -]?){3}[0-9]{1,7}" + _NO_DIGIT_AFTER
_CARD_AMEX = _NO_DIGIT_BEFORE + r"3[47][0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{5}" + _NO_DIGIT_AFTER
_IBAN = (
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"
    r"(?![A-Za-z0-9])"
)
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = r"(?<![0-9.])" + _IPV4_OCTET + r"(?:\." + _IPV4_OCTET + r"){3}" + r"(?![0-9]|\.[0-9])"
_IPV6 = r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"
_SSN = _NO_DIGIT_BEFORE + r"[0-9]{3}-[0-9]{2}-[0-9]{4}" + _NO_DIGIT_AFTER
_SSN_CONTEXT = (
    r"(?=[0-9])(?<=(?i:ssn|social security(?: number)?|社会保障番号)[^0-9\n]{0,12})"
    r"[0-9]{3} ?[0-9]{2} ?[0-9]{4}" + _NO_DIGIT_AFTER
)
# North American and international numbers with separators (a bare digit run is not a
# phone number outside a context: it is an order id, an amount, an account).
_PHONE_NANP = (
    r"(?<![0-9+-])(?:\+?1[-. ]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}"
    + r"(?![0-9-])"
)
_PHONE_INTL = (
    r"(?<![0-9+])\+[1-9][0-9]{0,2}(?:[-. ]?\(0\))?(?:[-. ]?\(?[0-9]{1,4}\)?){1,4}"
    + r"[-. ]?[0-9]{2,4}(?![0-9])"
)
_PHONE_CONTEXT = (
    r"(?=[0-9(])(?<=(?i:phone|tel|telephone|mobile|cell|call|fax|電話|携帯|TEL)"
    r"(?i:\s*(?:number|no\.?|#))?[^0-9\n]{0,6})"
    r"\(?[0-9][0-9 ().-]{6,16}[0-9]" + r"(?![0-9])"
)


def pii_recognizers() -> list[CheckedRecognizer]:
    return [
        CheckedRecognizer("EMAIL_ADDRESS", [("email", _EMAIL, 0.9)]),
        CheckedRecognizer(
            "CREDIT_CARD",
            [("card", _CARD, 0.3), ("amex", _CARD_AMEX, 0.3)],
            _card_valid,
            confirms=True,
        ),
        CheckedRecognizer("IBAN_CODE", [("iban", _IBAN, 0.3)], iban_valid, confirms=True),
        CheckedRecognizer("IP_ADDRESS", [("ipv4", _IPV4, 0.8), ("ipv6", _IPV6, 0.5)], _ip_valid),
        CheckedRecognizer(
            "US_SSN", [("ssn", _SSN, 0.5), ("ssn_context", _SSN_CONTEXT, 0.5)], _ssn_valid
        ),
        CheckedRecognizer(
            "PHONE_NUMBER",
            [
                ("nanp", _PHONE_NANP, 0.7),
                ("intl", _PHONE_INTL, 0.7),
                ("context", _PHONE_CONTEXT, 0.6),
            ],
            _phone_valid,
        ),
    ]
