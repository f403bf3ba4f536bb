"""The vLLM path end to end on CPU: raygate's real ingress -> Ray Serve LLM's LLMServer.

Ray Serve runs for real; `build_graph` deploys a platform config with one ``vllm`` model
as the `VLLMModel` deployment (``LLMConfig`` from the spec, Ray Serve LLM's placement on
one L4), and the engine inside LLMServer is `tests_gpu.fake_engine.FakeEngine`, injected
through Ray Serve LLM's engine-class seam (``RAYLLM_VLLM_ENGINE_CLS``, which LLMServer
reads when no ``engine_cls`` is bound). Ray is told it has one GPU and an L4 so the
replica's placement group is the one a GPU node gets. Called with the official SDK.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests_gpu.fake_engine import CREATED, FAIL_MID_STREAM, REFUSAL, REFUSED

MODEL = "qwen-test"
PROMPT = "one two three four"
ANSWER = "four three two one"
KEY_ENV = "RAYGATE_VLLM_TEST_KEY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def platform_args(home: Path) -> dict[str, Any]:
    return {
        "state": {"backend": "memory"},
        "database": {"url": f"sqlite+aiosqlite:///{home}/vllm.db"},
        "guardrails": {"enabled": False},
        "teams": [{"name": "ml", "models": ["*"], "accelerator_quota": {"nvidia-l4": 1}}],
        "keys": [{"team": "ml", "name": "ml", "key": f"env:{KEY_ENV}"}],
        "models": [
            {
                "name": MODEL,
                "aliases": ["qwen-alias"],
                "backend": {
                    "kind": "vllm",
                    "source": "hf:Qwen/Qwen2.5-0.5B-Instruct",
                    "accelerator": {"type": "nvidia-l4"},
                    "max_model_len": 2048,
                },
                "deployment": {"max_ongoing_requests": 8},
                "tenancy": {"owner_team": "ml", "sharing": "dedicated"},
            }
        ],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    import ray
    from ray import serve

    from serve.app import build_graph
    from serve.config import parse_platform_config
    from serve.launcher import wait_ready

    home = tmp_path_factory.mktemp("raygate-vllm")
    key = "sk-vllm-" + uuid.uuid4().hex
    os.environ[KEY_ENV] = key
    os.environ["RAYGATE_HOME"] = str(home)
    config = parse_platform_config(platform_args(home))
    port = free_port()
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=4,
        num_gpus=1,
        resources={"accelerator_type:L4": 1},
        runtime_env={
            "env_vars": {"RAYLLM_VLLM_ENGINE_CLS": "tests_gpu.fake_engine.FakeEngine"},
            "py_modules": [str(Path(__file__).parent)],
        },
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_graph(config), name="raygate", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/readyz", 300)
        yield openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()


def test_the_model_is_a_ray_serve_llm_deployment(client: openai.OpenAI) -> None:
    from ray import serve

    status = serve.status().applications["raygate"].deployments
    assert status[f"model-{MODEL}"].status == "HEALTHY"
    assert MODEL in {m.id for m in client.models.list().data}
    # The spec's rollout setting reached Serve through Ray Serve LLM's deployment options:
    # on a config change the replacement starts before the old replica stops.
    from ray.serve.context import _get_global_client

    client_ = _get_global_client()
    assert client_ is not None
    details = client_.get_serve_details()["applications"]["raygate"]["deployments"]
    assert details[f"model-{MODEL}"]["deployment_config"]["max_surge_percent"] == 100


def test_chat(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="qwen-alias", messages=[{"role": "user", "content": PROMPT}]
    )
    assert answer.choices[0].message.content == ANSWER
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "qwen-alias"  # the name the caller asked for
    assert answer.created == CREATED
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 4)


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert {c.model for c in chunks} == {MODEL}


def test_chat_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER


def test_completion_and_its_stream(client: openai.OpenAI) -> None:
    answer = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8)
    assert (answer.choices[0].text, answer.model) == (ANSWER, MODEL)
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt=PROMPT,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
def test_engine_refusal_is_an_openai_400(client: openai.OpenAI, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": REFUSED}]
    with pytest.raises(openai.BadRequestError) as caught:
        if stream:
            list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
        else:
            client.chat.completions.create(model=MODEL, messages=messages)
    assert caught.value.status_code == 400
    assert REFUSAL in caught.value.message


def test_engine_failure_mid_stream_ends_with_an_openai_error(client: openai.OpenAI) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": FAIL_MID_STREAM}], stream=True
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == FAIL_MID_STREAM
    assert "HTTP 500" in caught.value.message
    assert "CUDA" not in caught.value.message  # server-side details stay in the replica
