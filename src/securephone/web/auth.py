"""Logins, session cookies, CSRF tokens and bearer tokens for the web interface and the API.

Sessions (:mod:`securephone.web.sessions`) are random 256-bit ids kept in memory, sent in an
HttpOnly, SameSite=Strict cookie (Secure and ``__Host-`` prefixed on HTTPS, RFC 6265bis
§4.1.3) and dropped after an idle timeout. Every form carries the session's CSRF token; API calls that use the session cookie
must repeat it in ``X-CSRF-Token``. Bearer tokens need no CSRF token (browsers never send them
on their own).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from securephone.store.users import UserError
from securephone.web.sessions import Session

if TYPE_CHECKING:
    from securephone.web.manager import PhoneManager

log = logging.getLogger("securephone.web")

SECURE_COOKIE = "__Host-sp_session"
PLAIN_COOKIE = "sp_session"
LOGIN_COOKIE = "sp_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PASSWORD_PATHS = ("/password", "/api/v1/password", "/logout", "/api/v1/session")


class AuthError(Exception):
    """Authentication or authorisation failed; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 401, *, redirect: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.redirect = redirect


@dataclass(frozen=True)
class Principal:
    """Who makes an API call: a session user, or the owner of a bearer token."""

    user: str
    session: Session | None


# -- cookies -------------------------------------------------------------------------------------
def is_secure(request: Request) -> bool:
    """True when the request came over HTTPS."""
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if is_secure(request) else PLAIN_COOKIE


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    """HttpOnly, SameSite=Strict, Path=/, Secure on HTTPS; no Max-Age (ends with the browser)."""
    response.set_cookie(
        cookie_name(request),
        session.id,
        httponly=True,
        secure=is_secure(request),
        samesite="strict",
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        cookie_name(request), path="/", secure=is_secure(request), httponly=True, samesite="strict"
    )


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    """The pre-login CSRF token (double submit), so nobody can log a browser in remotely."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        secure=is_secure(request),
        samesite="strict",
        path="/login",
        max_age=3600,
    )


def manager_of(request: Request) -> PhoneManager:
    """The PhoneManager behind the app."""
    manager: PhoneManager = request.app.state.manager
    return manager


def client_address(request: Request) -> str:
    """The peer address of the connection (X-Forwarded-For is never trusted)."""
    return request.client.host if request.client is not None else "unknown"


def session_of(request: Request) -> Session | None:
    """The request's session from its cookie, if it is alive."""
    return manager_of(request).sessions.get(request.cookies.get(cookie_name(request)))


def tokens_equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens (False when either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


# -- login ---------------------------------------------------------------------------------------
async def _pause(seconds: float) -> None:
    """The global login slowdown (its own function so tests can watch it)."""
    await asyncio.sleep(seconds)


async def authenticate(request: Request, user: str, password: str) -> Session:
    """Check a login against the throttle and the argon2 hash; a new session when it succeeds.

    The attempt is reserved in the throttle before the slow hash check (atomic on the event
    loop), so concurrent wrong logins never get more checks than the budget.
    """
    manager = manager_of(request)
    throttle = manager.throttle
    address = client_address(request)
    left = throttle.begin(address, user)
    if left > 0:
        log.warning("web login refused for %s: locked for %d more s", address, left)
        raise AuthError(f"too many failed logins: try again in {int(left) + 1} s", 429)
    ok = False
    try:
        delay = throttle.slowdown()
        if delay > 0:
            await _pause(delay)
        ok = await asyncio.to_thread(manager.users.verify, user, password)
    finally:
        locked = throttle.failure(address, user) if not ok else False
    if not ok:
        log.warning("web login failed for user %r from %s", user[:64], address)
        message = "wrong user name or password"
        if locked:
            message += f"; login is now locked for {int(throttle.lockout)} s"
        raise AuthError(message, 429 if locked else 401)
    throttle.success(address, user)
    log.info("web login: %s from %s", user, address)
    return manager.sessions.create(user, manager.users.must_change(user))


async def change_password(
    request: Request, user: str, old: str, new: str, keep: str | None
) -> None:
    """Verify ``old``, enforce the policy, store ``new``; end the user's other sessions and
    revoke all the user's API tokens (the store does that with the new hash)."""
    manager = manager_of(request)
    if not await asyncio.to_thread(manager.users.verify, user, old):
        raise AuthError("the current password is wrong", 400)
    try:
        digest = await asyncio.to_thread(manager.users.hash_new_password, user, new)
    except UserError as exc:
        raise AuthError(f"new password: {exc}", 400) from None
    manager.users.set_password_hash(user, digest)
    manager.sessions.drop_user(user, keep=keep)


# -- dependencies ----------------------------------------------------------------------------------
def _allowed_before_change(path: str) -> bool:
    return path in PASSWORD_PATHS or path.startswith("/static/")


def page_session(request: Request) -> Session:
    """FastAPI dependency for HTML pages: the session, or a redirect to log in / change password."""
    session = session_of(request)
    if session is None:
        raise AuthError("please log in", 303, redirect="/login")
    if session.must_change and not _allowed_before_change(request.url.path):
        raise AuthError("change the default password first", 303, redirect="/password")
    return session


async def page_form(request: Request) -> tuple[Session, FormData]:
    """The session and the posted form, after checking the form's CSRF token."""
    session = page_session(request)
    form = await request.form(max_files=4, max_fields=200, max_part_size=256 * 1024)
    token = form.get(CSRF_FIELD)
    if not tokens_equal(session.csrf, token if isinstance(token, str) else None):
        log.warning("form refused: bad CSRF token from %s", client_address(request))
        raise AuthError("the form was not sent from this page (CSRF check); reload and retry", 403)
    return session, form


def api_principal(request: Request) -> Principal:
    """FastAPI dependency for the API: bearer token, or session cookie plus X-CSRF-Token."""
    manager = manager_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = manager.users.check_token(header[7:].strip())
        if user is None:
            raise AuthError("invalid API token", 401)
        return Principal(user, None)
    session = session_of(request)
    if session is None:
        raise AuthError("not logged in: POST /api/v1/session or send a bearer token", 401)
    if request.method not in SAFE_METHODS and not tokens_equal(
        session.csrf, request.headers.get(CSRF_HEADER)
    ):
        raise AuthError("missing or wrong X-CSRF-Token header", 403)
    if session.must_change and not _allowed_before_change(request.url.path):
        raise AuthError("change the default password first: POST /api/v1/password", 403)
    return Principal(session.user, session)
