"""The NER tier on the request path: Japanese names that only GiNZA recognises never reach
the provider when a team's policy asks for NER, and do when the tier is absent.

Uses the NER deployment's own class (deployments/guardrails_ner.py) in process, as the
ingress reaches it through its handle, and the loopback fake as the provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fake_upstream import FakeUpstream

from deployments.guardrails_ner import NerDeployment
from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config
from serve.guard_stage import NerTier

KEY = "sk-rg-nertier01-" + "a" * 32
NAME = "綾小路麗華"  # in no gazetteer: only the NER model knows it is a person
PROMPT = f"担当の{NAME}さんに見積もりを送ってください。"


@pytest.fixture(scope="module")
def ner() -> NerDeployment:
    return NerDeployment()  # loads GiNZA once (about 2 s)


async def sent_for(
    ner_tier: NerTier | None, upstream: FakeUpstream, tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("RG_NER_KEY", KEY)
    config = parse_platform_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp}/ner-{ner_tier is not None}.db"},
            "teams": [{"name": "jp"}],
            "keys": [{"team": "jp", "name": "jp", "key": "env:RG_NER_KEY"}],
            "models": [
                {
                    "name": "m",
                    "backend": {
                        "kind": "openai_compatible",
                        "base_url": upstream.base_url,
                        "model": "fake",
                    },
                    "tasks": ["chat"],
                }
            ],
            "cache": {"exact": {"enabled": False}},
        }
    )
    gateway = await build_gateway(config, {}, ner=ner_tier)
    try:
        app: Any = with_context(create_app(gateway), gateway, under_serve=False)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key=KEY, http_client=http)
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": PROMPT}]
        )
    finally:
        await gateway.aclose()
    return str(upstream.last("/chat/completions").body["messages"])


async def test_a_name_only_ner_finds_never_reaches_the_provider(
    ner: NerDeployment, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_ner = await sent_for(ner, upstream, tmp_path, monkeypatch)
    without = await sent_for(None, upstream, tmp_path, monkeypatch)
    assert NAME not in with_ner and "<PERSON_1>" in with_ner
    assert NAME in without  # the cheap tier alone does not know this name
