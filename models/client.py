"""The notebook SDK: add an open-weight model to a running raygate platform.

```python
from models.client import Platform

platform = Platform("http://127.0.0.1:8000", admin_or_model_owner_key, api_key=team_key)
platform.add_model("models/specs/my-model.yaml", publish_alias="chat-small")
platform.list_models()
platform.remove_model("my-model")
platform.rollback()
```

`add_model` validates the spec here (`ModelSpec`), asks the platform to add it (a new
config version, then a redeploy), waits until the model's deployment is healthy and the
platform serves the new version, runs a smoke evaluation through the OpenAI API (each
prompt must get a non-empty answer) and only then publishes the alias. Changes are
versioned: when another notebook changed the config first (409 ``config_conflict``) the
change is re-read and re-applied, and refused if it no longer applies. Progress is shown
as it goes (a live line in Jupyter, printed lines elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from models.spec import ModelSpec, load_spec

__all__ = [
    "DEFAULT_SMOKE_PROMPTS",
    "AddedModel",
    "Platform",
    "PlatformError",
    "SmokeTestFailed",
]

DEFAULT_SMOKE_PROMPTS = (
    "Say hello in one short sentence.",
    "What is 2 + 2? Answer with a number.",
    "Name one colour of the rainbow.",
)
MAX_CONFLICT_RETRIES = 5


class PlatformError(RuntimeError):
    """The admin API refused a request; ``code`` is the OpenAI-style error code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"{status} {code or 'error'}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SmokeTestFailed(RuntimeError):
    """The model is deployed but did not answer every smoke prompt; it is not published."""


@dataclass(frozen=True)
class AddedModel:
    name: str
    version: int  # the config version that serves it (after publishing, if asked)
    answers: tuple[str, ...]  # the smoke evaluation's answers, one per prompt
    alias: str | None


def _progress_sink() -> Callable[[str], None]:
    """A live-updating line in Jupyter (IPython.display), else plain printed lines."""
    try:
        from IPython import get_ipython
        from IPython.display import Pretty, display
    except ImportError:
        return _print
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return _print
    handle: list[Any] = []

    def show(line: str) -> None:
        if not handle:
            handle.append(display(Pretty(line), display_id=True))  # type: ignore[no-untyped-call]
        else:
            handle[0].update(Pretty(line))  # type: ignore[no-untyped-call]

    return show


def _print(line: str) -> None:
    print(line, flush=True)


class Platform:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60,
        poll_interval_s: float = 2.0,
        progress: Callable[[str], None] | None = None,
        http: httpx.Client | None = None,
        openai_client: openai.OpenAI | None = None,
    ) -> None:
        """``key``: the admin key, or a team's model owner key (changes only models with
        that team as ``tenancy.owner_team``); ``api_key``: a key that may call the model, for
        the smoke evaluation (a model owner key can be both)."""
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(base_url=self.url, timeout=timeout_s)
        self._headers = {"authorization": f"Bearer {key}"}
        self._api_key = api_key
        self._openai = openai_client
        self._poll_interval_s = poll_interval_s
        self._progress = progress or _progress_sink()

    # --- reading -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The latest config version (``version``, ``running_version``, ``history``, ...)."""
        return self._call("GET", "/admin/config")

    def status(self) -> dict[str, Any]:
        """Models, aliases, versions and Serve's application/deployment statuses."""
        return self._call("GET", "/admin/models")

    def list_models(self) -> list[dict[str, Any]]:
        """One entry per model: name, aliases, backend, deployment, status."""
        data: list[dict[str, Any]] = self.status()["data"]
        return data

    # --- changing ------------------------------------------------------------------------

    def add_model(
        self,
        spec: ModelSpec | Mapping[str, Any] | str | Path,
        *,
        smoke_prompts: Sequence[str] = DEFAULT_SMOKE_PROMPTS,
        publish_alias: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        ready_timeout_s: float = 600,
        reason: str | None = None,
    ) -> AddedModel:
        """Validate, deploy, wait until ready, smoke-test, then publish ``publish_alias``.

        ``overrides`` are deep-merged into the spec's platform entry (how it runs on this
        platform: ``{"backend": {"n_threads": 1}, "deployment": {"num_cpus": 0.25}}``)."""
        model = _as_spec(spec)
        if smoke_prompts and self._api_key is None and self._openai is None:
            raise ValueError("the smoke evaluation needs api_key (a team key) or openai_client")
        self._progress(f"{model.name}: spec is valid; asking the platform to add it")
        body: dict[str, Any] = {
            "spec": model.model_dump(mode="json"),
            "overrides": dict(overrides or {}),
        }
        if reason:
            body["reason"] = reason
        version = self._change("POST", "/admin/models", body)
        self._progress(f"{model.name}: config version {version}; deploying")
        self.wait_until_ready(version, model=model.name, timeout_s=ready_timeout_s)
        answers = self.smoke(model.name, smoke_prompts) if smoke_prompts else ()
        if publish_alias is not None:
            version = self.publish(model.name, publish_alias, timeout_s=ready_timeout_s)
        self._progress(
            f"{model.name}: ready (config version {version})"
            + (f", published as {publish_alias}" if publish_alias else "")
        )
        return AddedModel(model.name, version, tuple(answers), publish_alias)

    def publish(self, name: str, alias: str, *, timeout_s: float = 600) -> int:
        """Point ``alias`` at model ``name`` (moved from another model if it had it)."""
        version = self._change("POST", f"/admin/models/{name}/publish", {"alias": alias})
        self._progress(f"{name}: publishing {alias} (config version {version})")
        self.wait_until_ready(version, model=name, timeout_s=timeout_s)
        return version

    def remove_model(self, name: str, *, wait: bool = True, timeout_s: float = 600) -> int:
        version = self._change("DELETE", f"/admin/models/{name}", None)
        self._progress(f"{name}: removing (config version {version})")
        if wait:
            self.wait_until_ready(version, absent=name, timeout_s=timeout_s)
            self._progress(f"{name}: removed (config version {version})")
        return version

    def rollback(
        self, version: int | None = None, *, wait: bool = True, timeout_s: float = 600
    ) -> int:
        """A new config version with the config of ``version`` (default: the previous one)."""
        body: dict[str, Any] = {} if version is None else {"version": version}
        new = self._change("POST", "/admin/config/rollback", body)
        self._progress(f"rollback: config version {new}")
        if wait:
            self.wait_until_ready(new, timeout_s=timeout_s)
            self._progress(f"rollback: config version {new} is running")
        return new

    # --- waiting and checking ------------------------------------------------------------

    def wait_until_ready(
        self,
        version: int,
        *,
        model: str | None = None,
        absent: str | None = None,
        timeout_s: float = 600,
    ) -> dict[str, Any]:
        """Until the platform serves ``version`` (or newer), the application is RUNNING and
        ``model``'s deployment is HEALTHY (``absent``: gone from the list)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            try:
                state = self.status()
            except (httpx.TransportError, PlatformError) as exc:
                # Replicas restart during a redeploy: a refused connection or a 503 passes.
                if isinstance(exc, PlatformError) and exc.status < 500:
                    raise
                line = f"waiting for the platform ({type(exc).__name__})"
            else:
                ready, line = _readiness(state, version, model, absent)
                if ready:
                    return state
            if line != last:
                self._progress(line)
                last = line
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not ready after {timeout_s:.0f}s: {line}")
            time.sleep(self._poll_interval_s)

    def smoke(
        self, model: str, prompts: Iterable[str], *, max_tokens: int = 32, timeout_s: float = 120
    ) -> list[str]:
        """Each prompt through the OpenAI API; every answer must be non-empty."""
        client = self._openai or openai.OpenAI(
            base_url=self.url + "/v1", api_key=self._api_key, max_retries=0, timeout=timeout_s
        )
        answers = []
        for index, prompt in enumerate(prompts, 1):
            text = self._answer(client, model, prompt, max_tokens, timeout_s)
            if not text.strip():
                raise SmokeTestFailed(f"{model}: empty answer to smoke prompt {index}: {prompt!r}")
            self._progress(f"{model}: smoke prompt {index} answered ({len(text)} chars)")
            answers.append(text)
        return answers

    def _answer(
        self, client: openai.OpenAI, model: str, prompt: str, max_tokens: int, timeout_s: float
    ) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reply = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                    temperature=0,
                )
                return reply.choices[0].message.content or "" if reply.choices else ""
            except (
                openai.NotFoundError,
                openai.APIConnectionError,
                openai.InternalServerError,
            ) as exc:
                # An old ingress replica still draining does not know the model yet.
                if time.monotonic() >= deadline:
                    raise SmokeTestFailed(f"{model}: no answer to {prompt!r}: {exc}") from exc
                time.sleep(self._poll_interval_s)
            except openai.APIError as exc:
                raise SmokeTestFailed(f"{model}: no answer to {prompt!r}: {exc}") from exc

    # --- plumbing ------------------------------------------------------------------------

    def _change(self, method: str, path: str, body: dict[str, Any] | None) -> int:
        """Send a change based on the latest version; on ``config_conflict`` re-read the
        latest version and send it again (the server re-applies it, or refuses it when it
        no longer applies). Returns the new version."""
        for _ in range(MAX_CONFLICT_RETRIES):
            base = int(self.config()["version"])
            try:
                if body is None:
                    result = self._call(method, path, params={"base_version": base})
                else:
                    result = self._call(method, path, json={**body, "base_version": base})
            except PlatformError as exc:
                if exc.code == "config_conflict":
                    self._progress(f"config changed meanwhile (was version {base}); retrying")
                    continue
                raise
            return int(result["version"])
        raise PlatformError(409, "the config kept changing; try again", "config_conflict")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, headers=self._headers, **kwargs)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            error = (payload or {}).get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):
                raise PlatformError(
                    response.status_code, str(error.get("message")), error.get("code")
                )
            raise PlatformError(response.status_code, response.text[:300])
        if not isinstance(payload, dict):
            raise PlatformError(response.status_code, "expected a JSON object")
        return payload

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_spec(spec: ModelSpec | Mapping[str, Any] | str | Path) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, (str, Path)):
        return load_spec(spec)
    return ModelSpec.model_validate(dict(spec))


def _readiness(
    state: Mapping[str, Any], version: int, model: str | None, absent: str | None
) -> tuple[bool, str]:
    running = state.get("running_version")
    app = state.get("application") or {}
    models = {m["name"]: m for m in state.get("data") or ()}
    parts = [f"config version {running} of {version} running", f"application {app.get('status')}"]
    ready = running is not None and running >= version and app.get("status") == "RUNNING"
    if model is not None:
        entry = models.get(model)
        status = entry["status"] if entry else "NOT_IN_CONFIG"
        parts.append(f"{model} {status}")
        ready = ready and status in ("HEALTHY", "IN_INGRESS")
    if absent is not None:
        ready = ready and absent not in models
    return ready, "; ".join(parts)
