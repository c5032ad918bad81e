"""The HTML pages: Jinja2 templates, plain forms, no JavaScript needed.

Every form posts to a route here that calls the same function of
:mod:`securephone.web.actions` as the JSON API, then redirects (303) with a message, or shows
the page again with the error naming the field (400) and nothing changed.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData, UploadFile

from securephone import __version__
from securephone.store.config import AccountConfig, WebSettings
from securephone.web import actions, api, forms
from securephone.web.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    AuthError,
    authenticate,
    change_password,
    clear_session_cookie,
    manager_of,
    page_form,
    page_session,
    session_of,
    set_login_cookie,
    set_session_cookie,
    tokens_equal,
)
from securephone.web.capturing import MAX_SECONDS, size_text
from securephone.web.certstore import MAX_UPLOAD
from securephone.web.manager import ApplyError
from securephone.web.sessions import Session

TEMPLATES = Path(__file__).parent / "templates"
router = APIRouter(include_in_schema=False)
PageSession = Annotated[Session, Depends(page_session)]
PageForm = Annotated[tuple[Session, FormData], Depends(page_form)]


def _when(epoch: float | None) -> str:
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.globals["version"] = __version__
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    return env


ENV = _environment()


def render(
    request: Request, template: str, session: Session | None, *, code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page; flash messages of the session are shown once."""
    flash = list(session.flash) if session is not None else []
    if session is not None:
        session.flash.clear()
    html = ENV.get_template(template).render(
        request=request, session=session, flash=flash, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _upload(form: FormData, name: str) -> tuple[bytes | None, str | None]:
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        return None, None
    return await value.read(MAX_UPLOAD + 1), value.filename


# -- login and password ---------------------------------------------------------------------------
def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, code=status, login_token=token, error=error)
    set_login_cookie(response, request, token)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if session_of(request) is not None:
        return redirect("/")
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    if not tokens_equal(request.cookies.get(LOGIN_COOKIE), _text(form, CSRF_FIELD)):
        return _login_page(request, "the login form expired; please log in again", 403)
    try:
        session = await authenticate(request, _text(form, "username"), _text(form, "password"))
    except AuthError as exc:
        return _login_page(request, str(exc), exc.status)
    response = redirect("/password" if session.must_change else "/")
    set_session_cookie(response, request, session)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, posted: PageForm) -> Response:
    session, _ = posted
    manager_of(request).sessions.drop(session.id)
    response = redirect("/login")
    clear_session_cookie(response, request)
    return response


@router.get("/password")
async def password_page(request: Request, session: PageSession) -> Response:
    return render(request, "password.html", session, title="Change password")


@router.post("/password")
async def password(request: Request, posted: PageForm) -> Response:
    session, form = posted
    new, again = _text(form, "new_password"), _text(form, "new_password_again")
    try:
        if new != again:
            raise AuthError("new password: the two entries differ", 400)
        await change_password(
            request, session.user, _text(form, "current_password"), new, session.id
        )
    except AuthError as exc:
        return render(
            request,
            "password.html",
            session,
            code=exc.status,
            title="Change password",
            error=str(exc),
        )
    session.must_change = False
    session.flash.append(("ok", "password changed"))
    return redirect("/")


# -- status and calls ------------------------------------------------------------------------------
@router.get("/")
async def status_page(request: Request, session: PageSession, refresh: str = "") -> Response:
    manager = manager_of(request)
    seconds = int(refresh) if refresh.isdigit() and len(refresh) < 3 else 0
    return render(
        request,
        "status.html",
        session,
        title="Status",
        status=actions.status(manager),
        accounts=[a.name for a in manager.config.accounts],
        refresh=seconds if 2 <= seconds <= 60 else 0,
    )


@router.post("/calls")
async def dial(request: Request, posted: PageForm) -> Response:
    session, form = posted
    try:
        call = actions.dial(manager_of(request), _text(form, "uri"), _text(form, "account") or None)
        session.flash.append(("ok", f"calling {call.remote}"))
    except ApplyError as exc:
        session.flash.append(("error", str(exc)))
    return redirect("/")


@router.post("/calls/{ref}/{action}")
async def call_action(request: Request, ref: str, action: str, posted: PageForm) -> Response:
    session, form = posted
    try:
        actions.control(manager_of(request), ref, action, _text(form, "digits") or None)
        session.flash.append(("ok", f"{action}: done"))
    except ApplyError as exc:
        session.flash.append(("error", str(exc)))
    return redirect("/")


# -- accounts --------------------------------------------------------------------------------------
def _accounts_page(
    request: Request,
    session: Session,
    editing: str | None,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    manager = manager_of(request)
    if values is None:
        if editing:
            values = actions.account_public(actions.get_account(manager, editing))
        else:
            values = forms.defaults(AccountConfig)
    return render(
        request,
        "accounts.html",
        session,
        code=status,
        title="Accounts",
        accounts=actions.accounts(manager),
        editing=editing,
        fields=forms.specs(AccountConfig, values),
        error=error,
    )


@router.get("/accounts")
async def accounts_page(request: Request, session: PageSession) -> Response:
    return _accounts_page(request, session, None)


@router.get("/accounts/{name}")
async def account_page(request: Request, name: str, session: PageSession) -> Response:
    try:
        return _accounts_page(request, session, name)
    except ApplyError as exc:
        session.flash.append(("error", str(exc)))
        return redirect("/accounts")


async def _save_account(
    request: Request, name: str | None, posted: tuple[Session, FormData]
) -> Response:
    session, form = posted
    data = forms.parse(AccountConfig, form, exclude=("password",))
    secret = _text(form, "password") or None
    try:
        message = await actions.save_account(manager_of(request), name, data, secret)
    except ApplyError as exc:
        return _accounts_page(request, session, name, data, str(exc), exc.status)
    session.flash.append(("ok", message))
    return redirect("/accounts")


@router.post("/accounts")
async def create_account(request: Request, posted: PageForm) -> Response:
    return await _save_account(request, None, posted)


@router.post("/accounts/{name}")
async def update_account(request: Request, name: str, posted: PageForm) -> Response:
    return await _save_account(request, name, posted)


@router.post("/accounts/{name}/delete")
async def delete_account(request: Request, name: str, posted: PageForm) -> Response:
    session, _ = posted
    try:
        session.flash.append(("ok", await actions.delete_account(manager_of(request), name)))
    except ApplyError as exc:
        session.flash.append(("error", str(exc)))
    return redirect("/accounts")


# -- settings --------------------------------------------------------------------------------------
def _settings_page(
    request: Request,
    session: Session,
    posted: tuple[str, dict[str, Any]] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    manager = manager_of(request)
    sections = []
    for name, model in actions.SECTIONS.items():
        values = posted[1] if posted and posted[0] == name else actions.section(manager, name)
        sections.append((name, actions.SECTION_TITLES[name], forms.specs(model, values)))
    return render(
        request,
        "settings.html",
        session,
        code=status,
        title="Settings",
        sections=sections,
        error=error,
    )


@router.get("/settings")
async def settings_page(request: Request, session: PageSession) -> Response:
    return _settings_page(request, session)


@router.post("/settings/{name}")
async def save_settings(request: Request, name: str, posted: PageForm) -> Response:
    session, form = posted
    model = actions.SECTIONS.get(name)
    if model is None:
        return redirect("/settings")
    data = forms.parse(model, form)
    try:
        message = await actions.save_section(manager_of(request), name, data)
    except ApplyError as exc:
        return _settings_page(request, session, (name, data), str(exc), exc.status)
    session.flash.append(("ok", message))
    return redirect("/settings")


# -- web server ------------------------------------------------------------------------------------
def _web_page(
    request: Request,
    session: Session,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    manager = manager_of(request)
    current = values if values is not None else manager.web.model_dump(mode="json")
    server = manager.server
    return render(
        request,
        "web.html",
        session,
        code=status,
        title="Web server",
        fields=forms.specs(WebSettings, current),
        url=server.url if server is not None else "",
        error=error,
    )


@router.get("/web")
async def web_page(request: Request, session: PageSession) -> Response:
    return _web_page(request, session)


@router.post("/web")
async def save_web(request: Request, posted: PageForm) -> Response:
    session, form = posted
    data = forms.parse(WebSettings, form)
    try:
        url = await actions.save_web(manager_of(request), data)
    except ApplyError as exc:
        return _web_page(request, session, data, str(exc), exc.status)
    return render(request, "moved.html", session, title="Web server restarted", url=url)


# -- certificates ----------------------------------------------------------------------------------
def _certificates_page(
    request: Request, session: Session, error: str | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "certificates.html",
        session,
        code=status,
        title="Certificates",
        slots=actions.certificates(manager_of(request)),
        error=error,
    )


@router.get("/certificates")
async def certificates_page(request: Request, session: PageSession) -> Response:
    return _certificates_page(request, session)


@router.post("/certificates/{slot}")
async def import_certificate(request: Request, slot: str, posted: PageForm) -> Response:
    session, form = posted
    data, filename = await _upload(form, "file")
    key, key_filename = await _upload(form, "key")
    if data is None:
        return _certificates_page(request, session, f"{slot}: choose a file to import", 400)
    try:
        message, warnings = await actions.import_certificate(
            manager_of(request), slot, data, filename, key, key_filename
        )
    except ApplyError as exc:
        return _certificates_page(request, session, str(exc), exc.status)
    session.flash.append(("ok", message))
    session.flash.extend(("warning", w) for w in warnings)
    return redirect("/certificates")


# -- packet capture --------------------------------------------------------------------------------
def _capture_page(
    request: Request, session: Session, error: str | None = None, status: int = 200
) -> Response:
    manager = manager_of(request)
    state = actions.capture_state(manager)
    ports: list[str] = []
    interface = "lo"
    if manager.phone is not None:
        ports, interface = actions.capture_ports(manager), actions.default_interface(manager)
    return render(
        request,
        "capture.html",
        session,
        code=status,
        title="Packet capture",
        capture=state,
        ports=ports,
        default_interface=interface,
        max_seconds=MAX_SECONDS,
        max_size=size_text(state.max_bytes),
        refresh=5 if state.running else 0,
        error=error,
    )


@router.get("/capture")
async def capture_page(request: Request, session: PageSession) -> Response:
    return _capture_page(request, session)


def _seconds(text: str) -> int | None:
    """The posted duration; None (the maximum) when empty, ApplyError when not a number."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise ApplyError(f"seconds: a whole number from 1 to {MAX_SECONDS}")
    return int(text)


@router.post("/capture/start")
async def capture_start(request: Request, posted: PageForm) -> Response:
    session, form = posted
    try:
        seconds = _seconds(_text(form, "seconds"))
        state = await actions.start_capture(
            manager_of(request), _text(form, "interface") or None, seconds
        )
    except ApplyError as exc:
        return _capture_page(request, session, str(exc), exc.status)
    session.flash.append(("ok", f"capturing with {state.backend} on {state.interface}"))
    return redirect("/capture")


@router.post("/capture/stop")
async def capture_stop(request: Request, posted: PageForm) -> Response:
    session, _ = posted
    try:
        state = await actions.stop_capture(manager_of(request))
    except ApplyError as exc:
        return _capture_page(request, session, str(exc), exc.status)
    session.flash.append(("ok", f"capture stopped: {state.packets} packets"))
    return redirect("/capture")


@router.get("/capture/file")
async def capture_file(request: Request, session: PageSession) -> Response:
    try:
        path, name = actions.capture_file(manager_of(request))
    except ApplyError as exc:
        return _capture_page(request, session, str(exc), exc.status)
    return FileResponse(path, media_type=api.PCAP_TYPE, filename=name)


@router.post("/capture/verify")
async def capture_verify(request: Request, posted: PageForm) -> Response:
    session, _ = posted
    try:
        result = await actions.verify_capture(manager_of(request))
    except ApplyError as exc:
        return _capture_page(request, session, str(exc), exc.status)
    session.flash.append(("ok" if result.encrypted else "warning", result.overall_text))
    return redirect("/capture")


@router.get("/capture/report/{name}")
async def capture_report(request: Request, name: str, session: PageSession) -> Response:
    return api.report_response(actions.capture_report_file(manager_of(request), name))


# -- system ----------------------------------------------------------------------------------------
def _system_page(
    request: Request,
    session: Session,
    error: str | None = None,
    status: int = 200,
    new_token: str | None = None,
) -> Response:
    manager = manager_of(request)
    return render(
        request,
        "system.html",
        session,
        code=status,
        title="System",
        tokens=manager.users.tokens(),
        new_token=new_token,
        log_lines=manager.log_buffer.tail(200),
        error=error,
    )


@router.get("/system")
async def system_page(request: Request, session: PageSession) -> Response:
    return _system_page(request, session)


@router.post("/system/tokens")
async def create_token(request: Request, posted: PageForm) -> Response:
    session, form = posted
    _, secret = manager_of(request).users.create_token(session.user, _text(form, "label"))
    return _system_page(request, session, new_token=secret)


@router.post("/system/tokens/{token_id}/delete")
async def revoke_token(request: Request, token_id: str, posted: PageForm) -> Response:
    session, _ = posted
    ok = manager_of(request).users.revoke_token(token_id)
    session.flash.append(("ok", "token revoked") if ok else ("error", "no such token"))
    return redirect("/system")


@router.post("/system/backup")
async def backup(request: Request, posted: PageForm) -> Response:
    session, form = posted
    include = "include_secrets" in form
    try:
        name, blob = actions.make_backup(manager_of(request), include, _text(form, "passphrase"))
    except ApplyError as exc:
        return _system_page(request, session, str(exc), exc.status)
    return Response(
        blob,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/system/restore")
async def restore(request: Request, posted: PageForm) -> Response:
    session, form = posted
    blob, _ = await _upload(form, "file")
    if blob is None:
        return _system_page(request, session, "restore: choose a backup file", 400)
    try:
        message = await actions.restore_backup(manager_of(request), blob, _text(form, "passphrase"))
    except ApplyError as exc:
        return _system_page(request, session, str(exc), exc.status)
    session.flash.append(("ok", message))
    return redirect("/system")


@router.post("/system/reboot")
async def reboot(request: Request, posted: PageForm) -> Response:
    session, _ = posted
    manager_of(request).request_stop(reboot=True)
    return render(
        request, "message.html", session, title="Restarting", text="The phone restarts now."
    )
