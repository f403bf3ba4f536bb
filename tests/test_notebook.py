"""notebooks/add_open_weight_model.ipynb, executed end to end against the real platform.

The notebook runs in a Jupyter kernel of this venv (nbclient) against the session's
platform (conftest `platform`: Ray Serve for real). It adds a second llama.cpp model
through the admin API (a new config version, a redeploy from inside the ingress), and
afterwards the model answers through the openai SDK from here. An application of its own
deployed next to raygate must keep answering throughout. The model is removed at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import openai
import pytest
from conftest import Platform as Running
from nbclient import NotebookClient

from models.client import Platform

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "add_open_weight_model.ipynb"
MODEL, ALIAS = "smollm2-notebook", "notebook-chat"
KERNEL = "raygate-test-venv"
BYSTANDER = "nb-bystander"


class Bystander:
    """Another team's Serve application on the same cluster."""

    async def __call__(self, request: object) -> str:
        return "still here"


@pytest.fixture
def admin(platform: Running) -> Iterator[Platform]:
    sdk = Platform(platform.base_url, platform.admin_key, api_key=platform.dev_key)
    response = httpx.get(
        platform.base_url + "/admin/config",
        headers={"authorization": f"Bearer {platform.admin_key}"},
        timeout=30,
    )
    if response.status_code == 404:
        pytest.fail(
            "GET /admin/config is 404: serve.api.model_routes.add_routes is not wired into "
            "serve/api/app.py:create_app"
        )
    assert response.status_code == 200, response.text
    yield sdk
    if MODEL in {m["name"] for m in sdk.list_models()}:
        sdk.remove_model(MODEL, timeout_s=600)
    sdk.close()


@pytest.fixture
def bystander(platform: Running) -> Iterator[str]:
    import ray.cloudpickle
    from ray import serve

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    app = serve.deployment(ray_actor_options={"num_cpus": 0})(Bystander).bind()
    serve.run(app, name=BYSTANDER, route_prefix=f"/{BYSTANDER}")
    url = f"{platform.base_url}/{BYSTANDER}"
    assert httpx.get(url, timeout=30).text == "still here"
    yield url
    serve.delete(BYSTANDER)


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this venv's python, in a private Jupyter path."""
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL, prefix=str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    return KERNEL


def test_notebook_adds_a_model_that_then_answers_through_the_openai_sdk(
    platform: Running,
    admin: Platform,
    bystander: str,
    kernel: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = admin.config()["version"]
    assert MODEL not in {m["name"] for m in admin.list_models()}
    monkeypatch.setenv("RAYGATE_URL", platform.base_url)
    monkeypatch.setenv("RAYGATE_ADMIN_KEY", platform.admin_key)
    monkeypatch.setenv("RAYGATE_DEV_KEY", platform.dev_key)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=900,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    outputs = "\n".join(
        str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", ())
    )
    assert "AddedModel(name='smollm2-notebook'" in outputs
    assert "published as notebook-chat" in outputs

    client = openai.OpenAI(base_url=platform.v1, api_key=platform.dev_key, max_retries=0)
    for name in (MODEL, ALIAS):
        reply = client.chat.completions.create(
            model=name,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=16,
            temperature=0,
        )
        assert reply.model == name
        assert reply.choices[0].message.content and reply.choices[0].message.content.strip()

    state = admin.status()
    assert state["version"] == state["running_version"] == before + 2  # add, publish
    assert state["aliases"][ALIAS] == MODEL
    assert {m["name"]: m["status"] for m in state["data"]}[MODEL] == "HEALTHY"
    assert httpx.get(bystander, timeout=30).text == "still here"  # the other app kept running

    admin.remove_model(MODEL, timeout_s=600)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
