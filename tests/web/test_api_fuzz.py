"""Every operation of the OpenAPI document, fed hostile values field by field: the API answers
with a clear 4xx (JSON with ``detail``) or succeeds, never a 500. (A schemathesis run is the
fuller check; this one needs nothing beyond the test extra.)"""

from __future__ import annotations

import json
from typing import Any

import httpx

from securephone.web.manager import PhoneManager

NASTY: list[Any] = [None, -1, 2**63, "", "x" * 5000, "\x00\u202e<script>", [], {"a": [None]}]
PATH_VALUES = ["x", "%00", "é" * 200]
VALID_BASES: dict[str, dict[str, Any]] = {
    "AccountIn": {"name": "fz", "user": "fz", "domain": "127.0.0.1", "register": False},
    "DialIn": {"uri": "sip:nobody@127.0.0.1:9;transport=tcp"},  # refused at once, no waiting
    "LoginIn": {"username": "admin", "password": "wrong-password"},
}
FIXED = {"register"}  # an account that registers nowhere makes every restart wait for it
SKIP = {("post", "/api/v1/reboot"), ("delete", "/api/v1/session")}


def _schema(doc: dict[str, Any], ref_or_schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = ref_or_schema.get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[1]
        return name, doc["components"]["schemas"][name]
    return "", ref_or_schema


def _bodies(doc: dict[str, Any], operation: dict[str, Any]) -> list[tuple[str, Any]]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        name, schema = _schema(doc, content["application/json"]["schema"])
        base = VALID_BASES.get(name, {})
        whole: list[Any] = [[], "text", None, {}, base]
        bodies: list[tuple[str, Any]] = [("json", b) for b in whole]
        for field in set(schema.get("properties", {})) - FIXED:
            bodies += [("json", base | {field: value}) for value in NASTY]
        return bodies
    if "multipart/form-data" in content:
        return [
            ("files", {"file": ("x.pem", b"\x00" * 10, "application/octet-stream")}),
            ("files", {"file": ("../../etc/passwd", b"-----BEGIN CERTIFICATE-----", "text/plain")}),
            ("files", {"key": ("k.pem", b"", "text/plain")}),
            ("data", {"passphrase": "x" * 2000}),
        ]
    return [("none", None)]


async def _send(
    client: httpx.AsyncClient, method: str, url: str, kind: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    if kind == "json":
        return await client.request(
            method,
            url,
            content=json.dumps(body),
            headers=headers | {"content-type": "application/json"},
        )
    if kind == "files":
        return await client.request(method, url, files=body, headers=headers)
    if kind == "data":
        return await client.request(method, url, data=body, headers=headers)
    return await client.request(method, url, headers=headers)


async def test_no_500_on_hostile_input(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    secret = (await client.post("/api/v1/tokens", json={"label": "fuzz"}, headers=api)).json()[
        "token"
    ]
    auth = {"authorization": f"Bearer {secret}"}
    doc = (await client.get("/api/v1/openapi.json")).json()
    sent = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if (method, path) in SKIP:
                continue
            urls = [path]
            if "{" in path:
                urls = [
                    path.replace("{call_id}", v)
                    .replace("{name}", v)
                    .replace("{token_id}", v)
                    .replace("{slot}", v)
                    .replace("{section}", v)
                    .replace("{action}", v)
                    for v in PATH_VALUES
                ]
            bodies = _bodies(doc, operation)
            for number, url in enumerate(urls):
                for kind, body in bodies if number == 0 else bodies[:2]:
                    response = await _send(client, method, url, kind, body, auth)
                    sent += 1
                    assert response.status_code < 500, (method, url, body, response.text)
                    if response.status_code >= 400 and response.url.path.startswith("/api/"):
                        assert "detail" in response.json(), (method, url, response.text)
    assert sent > 400
    assert manager.users.check_token(secret) == "admin"  # nothing broke the login either
    assert (await client.get("/api/v1/status", headers=auth)).json()["running"]
    await manager.stop_phone(timeout=0.1)  # accounts the fuzzing made may register nowhere
