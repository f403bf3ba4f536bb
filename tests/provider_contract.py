"""What every fake provider server offers the shared provider suite (tests only).

A fake provider is a loopback HTTP server (uvicorn in a thread, like `fake_upstream`)
that speaks one provider's real wire format, records every request it receives, and
answers according to the behaviour the test scripted. `tests/test_provider_contract.py`
runs the same cases against every adapter through this interface; each provider's own
test file checks its wire details (paths, auth headers, translated bodies) further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from models.engine import Engine

# text:      a plain assistant answer "Hello from <provider>" with usage 11 in / 7 out
# tool_call: one call of the first tool in the request, arguments {"city": "Tokyo"}
# json:      the answer is the JSON object {"answer": 42} as text
# error_400 / error_403 / error_429 / error_500 / error_503: that HTTP status with the
#            provider's real error body shape (429 carries Retry-After: 1)
# slow:      waits 2 s before answering (timeouts)
Behaviour = Literal[
    "text", "tool_call", "json", "error_400", "error_403", "error_429", "error_500",
    "error_503", "slow",
]


@dataclass
class Received:
    method: str
    # path and query string, e.g. /v1/projects/p/.../models/m:streamGenerateContent?alt=sse
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None


class FakeProvider(Protocol):
    name: str
    received: list[Received]

    def respond_with(self, behaviour: Behaviour) -> None:
        """Every following request gets this behaviour (default: text)."""
        ...

    def make_engine(self, *, valid_credentials: bool = True, timeout_s: float = 5.0) -> Engine:
        """An adapter pointed at this server. With invalid credentials the server answers
        the provider's real auth failure (401/403 with its body)."""
        ...

    def assert_authenticated(self, received: Received) -> None:
        """Provider-specific auth checks on one received request (SigV4 / bearer)."""
        ...
