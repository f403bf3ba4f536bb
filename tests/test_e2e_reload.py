"""A config change is a redeploy: new routes take effect, in-flight streams finish.

Redeploys the running platform (real Ray Serve) with a changed platform config while a
stream from the llama.cpp model is in flight, as `serve deploy` of an edited YAML does,
then puts the original config back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import yaml
from conftest import Platform

pytestmark = pytest.mark.integration


def deploy(args: dict[str, Any]) -> None:
    from ray import serve

    from serve.app import build_graph
    from serve.config import parse_platform_config

    serve.run(build_graph(parse_platform_config(args)), name="raygate", route_prefix="/")


@pytest.fixture
def original(platform: Platform) -> Iterator[dict[str, Any]]:
    raw = yaml.safe_load((platform.home / "e2e.yaml").read_text())
    args: dict[str, Any] = raw["applications"][0]["args"]
    yield args
    deploy(args)


def test_redeploy_switches_routes_without_dropping_an_in_flight_stream(
    platform: Platform, original: dict[str, Any]
) -> None:
    client = openai.OpenAI(base_url=platform.v1, api_key=platform.dev_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )

    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Count from one to one hundred in words."}],
        max_tokens=400,
        temperature=0.5,  # not cacheable: the model must really run during the redeploy
        stream=True,
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant" or first.choices[0].delta.content

    rest: list[Any] = []
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            rest.extend(stream)
        except BaseException as exc:  # reported by the assertion below
            failure.append(exc)

    reader = threading.Thread(target=drain)
    reader.start()
    changed = {
        **original,
        "routes": [{"name": "assistant", "targets": [{"model": "upstream-model", "weight": 1}]}],
    }
    deploy(changed)  # returns once the new ingress replicas are running
    reader.join(timeout=300)

    assert not reader.is_alive() and not failure, failure
    assert rest and rest[-1].choices and rest[-1].choices[0].finish_reason in ("stop", "length")
    reply = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "upstream-model"
