"""A loopback Datadog Agent stand-in (tests only) that records what ddtrace sends.

Serves ``/info`` the way an agent with the EVP proxy does, accepts every POST/PUT
(LLM Observability events arrive at ``/evp_proxy/v2/api/v2/llmobs`` as JSON; traces and
telemetry are accepted and kept raw) and lets tests wait for a path with a bounded timeout.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LLMOBS_PATH = "/evp_proxy/v2/api/v2/llmobs"
INFO = {
    "version": "7.70.0",
    "endpoints": ["/v0.4/traces", "/v0.7/config", "/evp_proxy/v2/", "/evp_proxy/v4/"],
    "client_drop_p0s": True,
}


def _lower(items: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in items}


@dataclass(frozen=True)
class Received:
    """One request; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeDatadogAgent:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self, status: int, body: bytes = b"{}") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                agent._keep(Received("GET", self.path, _lower(self.headers.items()), b""))
                if self.path == "/info":
                    self._reply(200, json.dumps(INFO).encode())
                else:
                    self._reply(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                agent._keep(Received("POST", self.path, _lower(self.headers.items()), body))
                self._reply(202)

            do_PUT = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # listening from here
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _keep(self, item: Received) -> None:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()

    def llmobs_spans(self) -> list[dict[str, Any]]:
        spans = []
        with self._changed:
            items = [r for r in self.received if r.path == LLMOBS_PATH]
        for item in items:
            payload = item.json()
            for event in payload if isinstance(payload, list) else [payload]:
                spans.extend(event.get("spans", []))
        return spans

    def wait_for_llmobs_spans(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.llmobs_spans()) >= count, timeout_s)
        spans = self.llmobs_spans()
        if len(spans) < count:
            raise AssertionError(f"agent got {len(spans)} LLMObs spans, wanted {count}")
        return spans

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
