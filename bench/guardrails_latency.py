"""Added latency of the guardrails on the gateway's request path (no NER).

Two gateways in this process, identical but for `guardrails.enabled`, in front of the
same loopback OpenAI-compatible upstream (the tests' fake, answering at once); the same
1 KB English and Japanese prompts (with PII in them) through each, through the real
HTTP edge (ASGI), alternating, so both see the same machine. Prints p50/p95 per language
and the added p50. Usage: .venv/bin/python bench/guardrails_latency.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

EN = (
    "Hi team, please summarise the attached customer complaint and draft a reply. The "
    "customer is Jane Doe (jane.doe@example.com, +1 415 555 0134); her card ending 4242 was "
    "charged twice on 3 November for order 88-1123. She asks for a refund to the original "
    "payment method and wants confirmation by email. Keep the tone apologetic but concise, "
    "mention our 14-day refund policy, and propose a 10% voucher for the next order. Also "
    "list the internal steps: verify the duplicate charge in the billing console, open a "
    "refund ticket, and notify the fraud team if the second charge came from another IP. "
    "Our support hours are 9-18 CET; escalations go to the billing lead. Thanks a lot! "
)
JA = (
    "お疲れ様です。添付の問い合わせについて、返信の下書きをお願いします。お客様は山田花子様"
    "（電話 090-1234-5678、メール hanako.yamada@example.jp、〒100-0005 東京都千代田区丸の内1-2-3）"
    "です。11月3日のご注文で二重に請求されたため、元のお支払い方法への返金をご希望です。"
    "丁寧かつ簡潔な文面で、14日以内の返金ポリシーに触れ、次回のご注文で使える10%クーポンを"
    "ご提案ください。社内手順として、請求コンソールで二重請求を確認し、返金チケットを起票し、"
    "別のIPからの請求であれば不正対策チームに連絡してください。サポート時間は平日9時から18時"
    "です。よろしくお願いいたします。"
)


def pad(text: str, size: int = 1024) -> str:
    out = text
    while len(out.encode()) < size:
        out += " " + text
    return out.encode()[:size].decode(errors="ignore")


async def main(n: int) -> None:
    from fake_upstream import FakeUpstream

    from serve.api.app import create_app, with_context
    from serve.bootstrap import build_gateway
    from serve.config import parse_platform_config

    upstream = FakeUpstream()
    upstream.start()
    key = "sk-rg-bench0001-" + "a" * 32
    os.environ["RG_BENCH_KEY"] = key
    tmp = Path(tempfile.mkdtemp())
    clients = {}
    for guarded in (True, False):
        config = parse_platform_config(
            {
                "database": {"url": f"sqlite+aiosqlite:///{tmp}/{guarded}.db"},
                "teams": [{"name": "bench"}],
                "keys": [{"team": "bench", "name": "b", "key": "env:RG_BENCH_KEY"}],
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
                "guardrails": {"enabled": guarded},
                "telemetry": {"prometheus": {"enabled": False}},
            }
        )
        gateway = await build_gateway(config, {})
        app = with_context(create_app(gateway), gateway, under_serve=False)
        clients[guarded] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        )
    headers = {"authorization": f"Bearer {key}"}
    for name, text in (("English", pad(EN)), ("Japanese", pad(JA))):
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": text}]}
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(n + 20):
            for guarded in (True, False) if i % 2 else (False, True):
                start = time.perf_counter()
                response = await clients[guarded].post(
                    "/v1/chat/completions", json=body, headers=headers
                )
                elapsed = (time.perf_counter() - start) * 1000
                assert response.status_code == 200, response.text
                if i >= 20:  # warm-up
                    times[guarded].append(elapsed)
        on, off = statistics.median(times[True]), statistics.median(times[False])
        p95 = statistics.quantiles(times[True], n=20)[18]
        print(
            f"{name:9} {len(text.encode())} B  guardrails on p50 {on:.2f} ms (p95 {p95:.2f})"
            f"  off p50 {off:.2f} ms  added p50 {on - off:.2f} ms  ratio {on / off:.2f}x"
        )
    upstream.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
