"""Policy validation: secure defaults and clear errors at load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from guardrails.policy import EntityAction, GuardrailsPolicy


def test_secure_defaults() -> None:
    policy = GuardrailsPolicy()
    assert policy.pii.action_for("EMAIL_ADDRESS") is EntityAction.REVERSIBLE
    assert policy.pii.action_for("AWS_SECRET_KEY") is EntityAction.PLACEHOLDER
    assert policy.injection.action == "block"
    assert policy.tools.invalid_action == "remove"
    assert policy.output.pii_action == "mask" and policy.output.leakage
    assert "PERSON" not in policy.output.pii_entities
    assert "OPENAI_API_KEY" in policy.output.pii_entities


def test_loads_from_plain_config() -> None:
    policy = GuardrailsPolicy.model_validate(
        {
            "pii": {"entities": {"PERSON": "off", "CREDIT_CARD": "mask"}},
            "injection": {"action": "flag", "threshold": 0.7},
            "tools": {"allow": ["crm_*"], "invalid_action": "block"},
            "output": {"deny_patterns": ["(?i)internal only"]},
        }
    )
    assert policy.pii.action_for("PERSON") is EntityAction.OFF
    assert policy.pii.action_for("CREDIT_CARD") is EntityAction.MASK
    assert policy.injection.threshold == 0.7


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pii": {"entities": {"EMAIL": "mask"}}}, "unknown entity type(s) ['EMAIL']"),
        ({"pii": {"entities": {"PERSON": "shred"}}}, "Input should be 'mask'"),
        ({"injection": {"action": "warn"}}, "Input should be 'block', 'flag' or 'off'"),
        ({"injection": {"threshold": 1.5}}, "less than 1"),
        ({"output": {"deny_patterns": ["(unclosed"]}}, "deny_patterns[0] is not a valid regex"),
        ({"output": {"deny_patterns": ["x*"]}}, "deny_patterns[0] matches the empty string"),
        ({"output": {"pii_entities": ["SSN"]}}, "unknown entity type(s) ['SSN']"),
        ({"tools": {"allow": [""]}}, "must be non-empty"),
        ({"pii": {"enabeld": False}}, "Extra inputs are not permitted"),
    ],
)
def test_validation_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        GuardrailsPolicy.model_validate(config)
    assert message in str(excinfo.value)


def test_frozen() -> None:
    policy = GuardrailsPolicy()
    with pytest.raises(ValidationError):
        policy.pii.enabled = False  # type: ignore[misc]
