"""What a test does when ../shared (the project's development data) is absent: fail under
CI (CI=true always has it beside the checkout), skip on a developer's machine without it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def shared_data_missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI must have shared/ beside the checkout)")
    pytest.skip(message)
