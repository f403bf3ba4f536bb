"""Entity types the detectors report, grouped into personal data and secrets."""

from __future__ import annotations

__all__ = ["ALL_ENTITIES", "PII_ENTITIES", "SECRET_ENTITIES", "STRUCTURED_ENTITIES"]

PII_ENTITIES: frozenset[str] = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "US_SSN",
        "PERSON",
        "JP_MY_NUMBER",
        "JP_POSTAL_CODE",
        "JP_ADDRESS",
        "LOCATION",
    }
)

SECRET_ENTITIES: frozenset[str] = frozenset(
    {
        "URL_CREDENTIALS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_KEY",
        "GCP_SERVICE_ACCOUNT_KEY",
        "GITHUB_TOKEN",
        "SLACK_TOKEN",
        "OPENAI_API_KEY",
        "PRIVATE_KEY",
        "JWT",
        "PASSWORD",
    }
)

ALL_ENTITIES: frozenset[str] = PII_ENTITIES | SECRET_ENTITIES

# Precise, format-defined types: what the output filter masks in model responses by
# default (a model naming a person or a city is usually not a leak; a card number is).
STRUCTURED_ENTITIES: frozenset[str] = SECRET_ENTITIES | {
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "JP_MY_NUMBER",
}
