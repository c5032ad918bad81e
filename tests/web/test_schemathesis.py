"""schemathesis against the OpenAPI document (issue 6 acceptance, issue 13 strict types): every
operation, destructive ones included (restore, reboot, password, deletions, web restart), fed
data generated from its schema with a valid bearer token (a session with its CSRF header for
the token endpoint, which refuses bearers), never answers 5xx, every answer matches the
documented status codes, content types and response schemas, and no generated request that
violates the schema (a wrong type included) is accepted.

The app runs in schemathesis's own event loop (its ASGI transport): an ASGI lifespan wrapper
starts the real Phone there, on 127.0.0.1. A few generated values are pinned so that the run
stays on the loopback and writes no files outside the phone's data directory (a registrar,
a dialled URI, listen addresses, trace/key-log paths); everything else is what schemathesis
generates, positive and negative.

Each operation runs as a Hypothesis test built from ``operation.as_strategy()``, not through
``schemathesis.pytest.from_fixture(...).parametrize()``: with pytest 9.2 that lazy loader fails
(schemathesis 4.32 reads ``Function._nodeid``, which pytest no longer has), and a schema loaded at
import time would start the phone during collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from securephone.web.app import create_app
from securephone.web.auth import PLAIN_COOKIE
from securephone.web.manager import PhoneManager
from securephone.web.server import Receive, Scope, Send

from .conftest import make_manager

MAX_EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 80}  # wrong types hide
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# the only operation a bearer token may not use: a session (with CSRF) makes tokens
SESSION_ONLY = {("POST", "/api/v1/tokens")}
LOOPBACK_ACCOUNT = {
    "domain": "127.0.0.1",
    "registrar": "sip:127.0.0.1:9",
    "outbound_proxy": None,
    "register": False,
}
PINNED: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/calls"): {"uri": "sip:nobody@127.0.0.1:9;transport=tcp", "account": None},
    ("POST", "/api/v1/accounts"): LOOPBACK_ACCOUNT,
    ("PUT", "/api/v1/accounts/{name}"): LOOPBACK_ACCOUNT,
    ("PUT", "/api/v1/settings/sip"): {
        "listen_address": "127.0.0.1",
        "udp_port": 0,
        "tcp_port": 0,
        "tls_port": 0,
        "trace_file": None,
    },
    ("PUT", "/api/v1/settings/media"): {"address": None, "srtp_key_export": None},
    ("PUT", "/api/v1/settings/tls"): {"keylog_file": None},
}


class PhoneLifespan:
    """The web app, plus an ASGI lifespan that makes the PhoneManager (its SQLite history is
    bound to a thread) and runs the Phone in the server's own event loop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.manager: PhoneManager | None = None
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        self.manager = make_manager(self.directory)
        self.app = create_app(self.manager)
        await self.manager.start_phone()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.manager.shutdown()
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture
def phone_app(tmp_path: Path) -> Iterator[PhoneLifespan]:
    app = PhoneLifespan(tmp_path)
    try:
        yield app
    finally:
        shutdown_lifespans()  # the phone stops (schemathesis's pytest plugin does it too)


@pytest.fixture
def api_schema(phone_app: PhoneLifespan) -> Any:
    """The OpenAPI document, fetched from the app (which starts its lifespan: the phone)."""
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", phone_app)


@pytest.fixture
def bearer(phone_app: PhoneLifespan, api_schema: Any) -> dict[str, str]:
    assert phone_app.manager is not None
    _, secret = phone_app.manager.users.create_token("admin", "schemathesis")
    return {"authorization": f"Bearer {secret}"}


def pin(case: Any) -> bool:
    """Keep a generated request on the loopback and inside the data directory; True when the
    body was changed (then a negative case may have become a valid one)."""
    pinned = PINNED.get((case.method.upper(), case.path))
    if pinned is not None and isinstance(case.body, dict):
        case.body.update(pinned)
        return True
    return False


@pytest.fixture
def session(phone_app: PhoneLifespan, api_schema: Any) -> dict[str, str]:
    """Headers of a logged-in session (cookie and CSRF token) whose password was changed."""
    assert phone_app.manager is not None
    live = phone_app.manager.sessions.create("admin", must_change=False)
    return {"cookie": f"{PLAIN_COOKIE}={live.id}", "x-csrf-token": live.csrf}


def run_operation(
    operation: Any, mode: GenerationMode, auth: dict[str, str], seen: set[int]
) -> None:
    """Hypothesis over one operation: every generated request answered within the schema."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        checks = CHECKS
        if pin(case) and mode is GenerationMode.NEGATIVE:
            # the pinned values may have replaced the very values that made the case invalid;
            # the wrong types of these bodies are covered in test_api.py
            checks = [c for c in CHECKS if c is not negative_data_rejection]
        response = case.call_and_validate(headers=auth, checks=checks)
        assert b"the phone is not running" not in response.content  # a running phone answered
        seen.add(response.status_code)

    check()


def test_every_operation_conforms_to_the_openapi_document(
    api_schema: Any, bearer: dict[str, str], session: dict[str, str], phone_app: PhoneLifespan
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /api/v1/capture/start", "GET /api/v1/status", "PUT /api/v1/settings/sip"} <= names
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in operations:
            name = f"{operation.method.upper()} {operation.path}"
            try:
                auth = (
                    session
                    if (operation.method.upper(), operation.path) in SESSION_ONLY
                    else bearer
                )
                run_operation(operation, mode, auth, statuses.setdefault(name, set()))
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, name  # nothing in it can be made invalid
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then fail with all
                failures.append(f"{mode.value} {name}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert all(statuses[name] for name in names), [n for n in names if not statuses[n]]
    destructive = {
        "POST /api/v1/restore",
        "POST /api/v1/reboot",
        "POST /api/v1/password",
        "DELETE /api/v1/accounts/{name}",
        "DELETE /api/v1/tokens/{token_id}",
        "DELETE /api/v1/session",
        "PUT /api/v1/settings/web",
    }
    assert destructive <= names  # every one of them ran above
    # authenticated all along, and changes really went through
    for name in ("GET /api/v1/status", "PUT /api/v1/settings/media", "POST /api/v1/tokens"):
        assert statuses[name] & {200, 201}, (name, statuses[name])
    assert 422 in statuses["PUT /api/v1/settings/sip"]  # the negative cases were refused
    assert phone_app.manager is not None and phone_app.manager.phone is not None
