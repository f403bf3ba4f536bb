"""Observability on the live platform (real Ray Serve): the gateway's Prometheus metrics
appear on Ray's metrics endpoint, labelled by team and model."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from conftest import Platform

pytestmark = pytest.mark.integration


def metrics_url() -> str:
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    return f"http://127.0.0.1:{port}/metrics"


def test_request_metrics_reach_rays_metrics_endpoint(platform: Platform) -> None:
    client = openai.OpenAI(base_url=platform.v1, api_key=platform.dev_key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(
            model="upstream-model", messages=[{"role": "user", "content": "What is 2 + 2?"}]
        )
    # Ray's metrics agent exports on its own schedule (every few seconds): wait for the
    # series to appear, bounded.
    deadline = time.monotonic() + 90
    lines: list[str] = []
    while time.monotonic() < deadline:
        text = httpx.get(metrics_url(), timeout=10).text
        lines = [
            line
            for line in text.splitlines()
            if line.startswith("ray_raygate_requests_total{") and 'model="upstream-model"' in line
        ]
        if lines:
            break
        time.sleep(2)
    assert lines, "raygate_requests_total never appeared on Ray's metrics endpoint"
    assert any('team="dev"' in line and 'outcome="ok"' in line for line in lines), lines
    assert all("request_id" not in line and "key_id" not in line for line in lines)
