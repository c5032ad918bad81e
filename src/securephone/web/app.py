"""``create_app(manager)``: the FastAPI app, a thin layer over the PhoneManager and its Phone.

Security headers on every response: a CSP without inline scripts (there are no scripts at
all), ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``Cache-Control: no-store``,
``nosniff``, no referrer, and HSTS (RFC 6797) when the request came over HTTPS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from securephone import __version__
from securephone.web import api, pages
from securephone.web.auth import AuthError, session_of
from securephone.web.manager import ApplyError, PhoneManager
from securephone.web.server import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The verification report is a generated, self-contained page: inline styles and data: pictures,
# audio beside it, and (like every page here) no script at all.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
REPORT_PATHS = ("/capture/report/", "/api/v1/capture/report/")
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Pure ASGI middleware adding the headers above (HSTS only on HTTPS)."""

    def __init__(self, app: ASGIApp, hsts_max_age: Callable[[], int]) -> None:
        self.app = app
        self.hsts_max_age = hsts_max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"
        report = str(scope.get("path", "")).startswith(REPORT_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if report:
                    headers["content-security-policy"] = REPORT_CSP
                if secure and self.hsts_max_age() > 0:
                    headers["strict-transport-security"] = f"max-age={self.hsts_max_age()}"
            await send(message)

        await self.app(scope, receive, send_with_headers)


MAX_BODY = 1024 * 1024


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            await _refuse(send)
            return
        state = {"received": 0, "exceeded": False}

        async def limited() -> Message:
            if state["exceeded"]:
                return {"type": "http.disconnect"}
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.limit:
                state["exceeded"] = True
                return {"type": "http.disconnect"}
            return message

        async def watch(message: Message) -> None:
            if not state["exceeded"]:
                await send(message)
            elif message["type"] == "http.response.start":
                await _refuse(send)

        await self.app(scope, limited, watch)


async def _refuse(send: Send) -> None:
    body = b'{"detail":"the request is too large"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    if _is_api(request):
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)
    if exc.redirect is not None:
        return RedirectResponse(exc.redirect, status_code=303)
    return pages.render(
        request,
        "message.html",
        session_of(request),
        code=exc.status,
        title="Refused",
        text=str(exc),
    )


def _apply_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApplyError)
    if _is_api(request):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    return pages.render(
        request,
        "message.html",
        session_of(request),
        code=exc.status,
        title="Error",
        text=str(exc),
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "request"


def _validation_error(request: Request, exc: Exception) -> Response:
    """422 naming each field; the submitted values are never echoed (they may be secrets)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": _field(tuple(e.get("loc", ()))),
            "message": str(e.get("msg", "")).removeprefix("Value error, "),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request) or exc.status_code == 405:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )
    return pages.render(
        request,
        "message.html",
        session_of(request),
        code=exc.status_code,
        title="Not found" if exc.status_code == 404 else "Error",
        text=str(exc.detail),
    )


def create_app(manager: PhoneManager) -> FastAPI:
    """The web app for ``manager``: HTML pages, the JSON API and its OpenAPI document."""
    app = FastAPI(
        title="securephone",
        version=__version__,
        description="Manage a securephone: accounts, SIP/TLS/media settings, certificates, "
        "calls, status. Authenticate with POST /api/v1/session (then send X-CSRF-Token on "
        "changes) or with a bearer token created on the system page.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.manager = manager
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(ApplyError, _apply_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts_max_age=lambda: manager.web.hsts_max_age)
    return app
