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


def build_app(args: dict[str, Any]) -> Any:
    from serve.app import build_graph
    from serve.config import parse_platform_config

    return build_graph(parse_platform_config(args))


def run(app: Any) -> None:
    from ray import serve

    serve.run(app, name="raygate", route_prefix="/")


def deploy(args: dict[str, Any]) -> None:
    run(build_app(args))


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


MODEL_DEPLOYMENT = "model-smollm2-135m-instruct"


def replica_states(client: Any, deployment: str) -> dict[str, int]:
    """Replica counts by state, from the controller's details as a plain dict. Not
    `serve.status()`: it builds Serve config objects whose pickling setup is not
    thread-safe, and this runs in a thread while the main thread deploys."""
    details = client.get_serve_details()
    app = details.get("applications", {}).get("raygate") or {}
    replicas = (app.get("deployments", {}).get(deployment) or {}).get("replicas") or []
    states: dict[str, int] = {}
    for replica in replicas:
        state = str(getattr(replica["state"], "value", replica["state"]))
        states[state] = states.get(state, 0) + 1
    return states


def test_a_redeploy_never_leaves_the_self_hosted_model_without_a_running_replica(
    platform: Platform, original: dict[str, Any]
) -> None:
    """Every config change restarts the model's replicas (Serve gives the application a
    new code version); with `max_surge_percent` the replacement starts before the old
    replica stops, so the one-replica llama.cpp model is never down during the rollout
    (Serve's default, 0, stops it first). Watched through Serve's own status."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert replica_states(client, MODEL_DEPLOYMENT).get("RUNNING") == 1
    app = build_app(
        {
            **original,
            "routes": [{"name": "surge", "targets": [{"model": "upstream-model", "weight": 1}]}],
        }
    )
    seen: list[dict[str, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(replica_states(client, MODEL_DEPLOYMENT))
            done.wait(0.05)  # polling cadence, not synchronisation: deploy() returning is

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run(app)
    finally:
        done.set()
        watcher.join(timeout=60)
    assert any(s.get("STARTING", 0) or s.get("STOPPING", 0) for s in seen), seen  # it rolled
    assert min(s.get("RUNNING", 0) for s in seen) >= 1, seen
