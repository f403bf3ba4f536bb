"""The admin API for virtual keys, through the real platform."""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import Platform
from openapi_contract import validate

pytestmark = pytest.mark.integration


def admin(
    platform: Platform, method: str, path: str, key: str | None = None, **kw: object
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key or platform.admin_key}"}
    return httpx.request(method, platform.base_url + path, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def works(platform: Platform, key: str) -> bool:
    try:
        openai.OpenAI(base_url=platform.v1, api_key=key, max_retries=0).models.list()
    except openai.AuthenticationError:
        return False
    return True


def test_key_lifecycle(platform: Platform) -> None:
    created = admin(platform, "POST", "/admin/keys", json={"team": "search", "name": "indexer"})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(body["prefix"] + "-")
    assert works(platform, key)
    models = {m.id for m in openai.OpenAI(base_url=platform.v1, api_key=key).models.list()}
    assert models == {"all-minilm-l6-v2", "upstream-model"}

    listed = admin(platform, "GET", "/admin/keys?team=search").json()["data"]
    assert body["id"] in {k["id"] for k in listed}
    assert key not in str(listed)

    rotated = admin(platform, "POST", f"/admin/keys/{body['id']}/rotate")
    assert rotated.status_code == 201
    new_key = rotated.json()["key"]
    assert rotated.json()["replaces"] == body["id"]
    assert not works(platform, key)
    assert works(platform, new_key)

    deleted = admin(platform, "DELETE", f"/admin/keys/{rotated.json()['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert not works(platform, new_key)
    assert admin(platform, "DELETE", f"/admin/keys/{rotated.json()['id']}").status_code == 404


def test_key_restricted_to_models(platform: Platform) -> None:
    created = admin(
        platform,
        "POST",
        "/admin/keys",
        json={"team": "dev", "name": "embed-only", "models": ["all-minilm-l6-v2"]},
    ).json()
    sdk = openai.OpenAI(base_url=platform.v1, api_key=created["key"], max_retries=0)
    assert {m.id for m in sdk.models.list()} == {"all-minilm-l6-v2"}
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"team": "nobody", "name": "x"}, "team"),
        ({"team": "dev", "name": "x", "models": ["ghost"]}, "models"),
        ({"team": "dev"}, "name"),
        ({"team": "dev", "name": "x", "expires_in_s": 1}, "expires_in_s"),
    ],
)
def test_create_key_validation(platform: Platform, body: dict[str, object], param: str) -> None:
    response = admin(platform, "POST", "/admin/keys", json=body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param


def test_admin_api_needs_the_admin_key(platform: Platform) -> None:
    for key in (platform.dev_key, "sk-wrong"):
        response = admin(platform, "GET", "/admin/keys", key=key)
        assert response.status_code == 401
        validate("ErrorResponse", response.json())
