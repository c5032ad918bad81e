"""The JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``).

Every action of the HTML pages is here too, through the same functions in
:mod:`securephone.web.actions`. Authentication: the session cookie (``POST /api/v1/session``)
plus the ``X-CSRF-Token`` header on changes, or ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from securephone.store.config import (
    AccountConfig,
    CallSettings,
    DnsSettings,
    MediaSettings,
    NatSettings,
    SipSettings,
    TlsConfig,
    WebSettings,
)
from securephone.web import actions
from securephone.web.auth import (
    AuthError,
    Principal,
    api_principal,
    authenticate,
    change_password,
    clear_session_cookie,
    manager_of,
    set_session_cookie,
)
from securephone.web.capturing import MAX_SECONDS, REPORT_TYPES, CaptureState, Verification
from securephone.web.certstore import MAX_UPLOAD
from securephone.web.manager import ApplyError


class ErrorOut(BaseModel):
    """Why a request was refused, in one sentence; nothing was changed."""

    detail: str


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorOut(BaseModel):
    """A request that does not fit the schema: every problem, each naming its field."""

    detail: str
    errors: list[FieldError] = []


def _error(text: str, model: type[BaseModel] = ErrorOut) -> dict[str, Any]:
    return {"model": model, "description": text}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("refused: a value is not acceptable (the message names the field)"),
    401: _error("not logged in, wrong credentials, or an invalid bearer token"),
    403: _error("missing CSRF header, or the default password must be changed first"),
    404: _error("no such item"),
    409: _error("not possible in the current state"),
    413: _error("the request is too large"),
    422: _error("the request does not fit the schema", ValidationErrorOut),
    429: _error("too many failed logins from this address: wait"),
    503: _error("the phone is not running, or capturing is not possible here"),
}
router = APIRouter(prefix="/api/v1", tags=["api"], responses=ERRORS)
Auth = Annotated[Principal, Depends(api_principal)]
Slot = Literal["https", "sips", "device"]
CallAction = Literal["answer", "hangup", "hold", "resume", "confirm-sas", "reject-sas"]


STRICT = ConfigDict(strict=True)


class StrictIn(BaseModel):
    """A JSON request body: strict types (``true`` is not 1, ``"3"`` is not 3), no coercion."""

    model_config = STRICT


class SipSettingsIn(SipSettings):
    """The SIP settings, strictly typed."""

    model_config = STRICT


class TlsConfigIn(TlsConfig):
    """The TLS settings, strictly typed."""

    model_config = STRICT


class MediaSettingsIn(MediaSettings):
    """The media settings, strictly typed."""

    model_config = STRICT


class CallSettingsIn(CallSettings):
    """The call settings, strictly typed."""

    model_config = STRICT


class DnsSettingsIn(DnsSettings):
    """How SIP servers are located, strictly typed."""

    model_config = STRICT


class NatSettingsIn(NatSettings):
    """The NAT (STUN) settings, strictly typed."""

    model_config = STRICT


class WebSettingsIn(WebSettings):
    """The web server settings, strictly typed."""

    model_config = STRICT


class Message(BaseModel):
    """What happened, in words; warnings the user should read."""

    message: str
    warnings: list[str] = []


class LoginIn(StrictIn):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    user: str
    csrf_token: str
    must_change_password: bool


class PasswordIn(StrictIn):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class DialIn(StrictIn):
    uri: str = Field(min_length=1, max_length=512, examples=["sip:bob@127.0.0.1:5080"])
    account: str | None = Field(default=None, max_length=64)


class DtmfIn(StrictIn):
    digits: str = Field(pattern=r"^[0-9*#A-Da-d]{1,32}$")


class AccountIn(AccountConfig):
    """An account; ``password`` is write-only: leave it out (or null) to keep the stored one."""

    model_config = STRICT

    password: SecretStr | None = None  # type: ignore[assignment]


class TokenIn(StrictIn):
    label: str = Field(default="token", max_length=64)


class TokenOut(BaseModel):
    id: str
    label: str
    user: str
    created_at: float
    token: str | None = Field(default=None, description="the secret, shown only once")


class CaptureStartIn(StrictIn):
    """Where and how long to capture; the ports are always the phone's own."""

    interface: str | None = Field(
        default=None,
        max_length=64,
        description="network interface (default: lo when the phone listens on loopback)",
        examples=["lo"],
    )
    seconds: int = Field(
        default=MAX_SECONDS, ge=1, le=MAX_SECONDS, description="stop by itself after this long"
    )


class BackupIn(StrictIn):
    include_secrets: bool = False
    passphrase: str | None = Field(default=None, max_length=1024)


def _read_upload(upload: UploadFile | None) -> bytes | None:
    if upload is None:
        return None
    return upload.file.read(MAX_UPLOAD + 1)


# -- session ---------------------------------------------------------------------------------------
@router.post("/session", response_model=LoginOut)
async def login(request: Request, body: LoginIn) -> Response:
    """Log in; sets the session cookie. Too many failures lock the address (429)."""
    session = await authenticate(request, body.username, body.password)
    out = LoginOut(
        user=session.user, csrf_token=session.csrf, must_change_password=session.must_change
    )
    response = JSONResponse(out.model_dump())
    set_session_cookie(response, request, session)
    return response


@router.delete("/session", response_model=Message)
async def logout(request: Request, who: Auth) -> Response:
    """End the session."""
    if who.session is not None:
        manager_of(request).sessions.drop(who.session.id)
    response = JSONResponse(Message(message="logged out").model_dump())
    clear_session_cookie(response, request)
    return response


@router.post("/password", response_model=Message)
async def password(request: Request, body: PasswordIn, who: Auth) -> Message:
    """Change the password (required first with the default admin/admin)."""
    keep = who.session.id if who.session else None
    await change_password(request, who.user, body.current_password, body.new_password, keep)
    if who.session is not None:
        who.session.must_change = False
    return Message(message="password changed")


# -- status and calls ------------------------------------------------------------------------------
@router.get("/status")
async def status(request: Request, who: Auth) -> dict[str, Any]:
    """Registration per account with TLS details, active calls with encryption, recent calls."""
    return actions.status(manager_of(request))


@router.get("/calls")
async def calls(request: Request, who: Auth) -> list[dict[str, Any]]:
    """Active calls."""
    return list(actions.status(manager_of(request), history=0)["calls"])


@router.post("/calls", status_code=201)
async def dial(request: Request, body: DialIn, who: Auth) -> dict[str, Any]:
    """Place a call to a SIP URI."""
    call = actions.dial(manager_of(request), body.uri, body.account)
    return actions.call_view(call)


@router.get("/calls/{call_id}")
async def get_call(request: Request, call_id: str, who: Auth) -> dict[str, Any]:
    return actions.call_view(actions.find_call(manager_of(request), call_id))


@router.post("/calls/{call_id}/dtmf")
async def dtmf(request: Request, call_id: str, body: DtmfIn, who: Auth) -> dict[str, Any]:
    """Send DTMF digits (RFC 4733 telephone-events)."""
    call = actions.control(manager_of(request), call_id, "dtmf", body.digits)
    return actions.call_view(call)


@router.post("/calls/{call_id}/{action}")
async def call_action(
    request: Request, call_id: str, action: CallAction, who: Auth
) -> dict[str, Any]:
    """Answer, hang up, hold or resume a call; confirm or reject its ZRTP SAS."""
    return actions.call_view(actions.control(manager_of(request), call_id, action))


@router.get("/history")
async def history(request: Request, who: Auth, limit: int = 50) -> list[dict[str, Any]]:
    """Recent calls, newest first."""
    limit = max(0, min(limit, 1000))
    return [r.to_dict() for r in manager_of(request).history.recent(limit)]


# -- accounts --------------------------------------------------------------------------------------
@router.get("/accounts")
async def list_accounts(request: Request, who: Auth) -> list[dict[str, Any]]:
    """Accounts (passwords never returned; ``password_set`` says whether one is stored)."""
    return actions.accounts(manager_of(request))


def _account_data(body: AccountIn) -> tuple[dict[str, Any], str | None]:
    data = body.model_dump(mode="json", by_alias=True, exclude={"password"}, exclude_none=True)
    secret = body.password.get_secret_value() if body.password is not None else None
    return data, secret


@router.post("/accounts", response_model=Message, status_code=201)
async def create_account(request: Request, body: AccountIn, who: Auth) -> Message:
    data, secret = _account_data(body)
    return Message(message=await actions.save_account(manager_of(request), None, data, secret))


@router.get("/accounts/{name}")
async def get_account(request: Request, name: str, who: Auth) -> dict[str, Any]:
    return actions.account_public(actions.get_account(manager_of(request), name))


@router.put("/accounts/{name}", response_model=Message)
async def put_account(request: Request, name: str, body: AccountIn, who: Auth) -> Message:
    data, secret = _account_data(body)
    return Message(message=await actions.save_account(manager_of(request), name, data, secret))


@router.delete("/accounts/{name}", response_model=Message)
async def delete_account(request: Request, name: str, who: Auth) -> Message:
    return Message(message=await actions.delete_account(manager_of(request), name))


# -- settings --------------------------------------------------------------------------------------
@router.get("/settings/{section}")
async def get_section(
    request: Request,
    section: Literal["sip", "tls", "media", "calls", "dns", "nat", "web"],
    who: Auth,
) -> dict[str, Any]:
    manager = manager_of(request)
    if section == "web":
        return manager.web.model_dump(mode="json")
    return actions.section(manager, section)


async def _put(request: Request, name: str, body: BaseModel) -> Message:
    data = body.model_dump(mode="json", exclude_unset=True)
    return Message(message=await actions.save_section(manager_of(request), name, data))


@router.put("/settings/sip", response_model=Message)
async def put_sip(request: Request, body: SipSettingsIn, who: Auth) -> Message:
    return await _put(request, "sip", body)


@router.put("/settings/tls", response_model=Message)
async def put_tls(request: Request, body: TlsConfigIn, who: Auth) -> Message:
    return await _put(request, "tls", body)


@router.put("/settings/media", response_model=Message)
async def put_media(request: Request, body: MediaSettingsIn, who: Auth) -> Message:
    return await _put(request, "media", body)


@router.put("/settings/calls", response_model=Message)
async def put_calls(request: Request, body: CallSettingsIn, who: Auth) -> Message:
    return await _put(request, "calls", body)


@router.put("/settings/dns", response_model=Message)
async def put_dns(request: Request, body: DnsSettingsIn, who: Auth) -> Message:
    return await _put(request, "dns", body)


@router.put("/settings/nat", response_model=Message)
async def put_nat(request: Request, body: NatSettingsIn, who: Auth) -> Message:
    return await _put(request, "nat", body)


@router.put("/settings/web", response_model=Message)
async def put_web(request: Request, body: WebSettingsIn, who: Auth) -> Message:
    """Web server type, port, address: the server restarts in place; the message has the new URL."""
    data = body.model_dump(mode="json", exclude_unset=True)
    url = await actions.save_web(manager_of(request), data)
    return Message(message=f"web server settings saved; open {url}" if url else "saved")


# -- certificates ----------------------------------------------------------------------------------
@router.get("/certificates")
async def list_certificates(request: Request, who: Auth) -> list[dict[str, Any]]:
    """https.pem, sips.pem, device.pem: subject, issuer, SANs, validity, key type, fingerprint."""
    return actions.certificates(manager_of(request))


@router.post("/certificates/{slot}", response_model=Message)
async def import_certificate(
    request: Request,
    slot: Slot,
    who: Auth,
    file: Annotated[
        UploadFile, File(description="PEM: certificate(s), and the key for https/device")
    ],
    key: Annotated[
        UploadFile | None, File(description="the private key, when in its own file")
    ] = None,
) -> Message:
    """Import a certificate; validated completely before the old file is replaced."""
    message, warnings = await actions.import_certificate(
        manager_of(request),
        slot,
        _read_upload(file) or b"",
        file.filename,
        _read_upload(key),
        key.filename if key is not None else None,
    )
    return Message(message=message, warnings=warnings)


# -- system ----------------------------------------------------------------------------------------
@router.post("/backup", response_class=Response)
async def backup(request: Request, body: BackupIn, who: Auth) -> Response:
    """A configuration backup: TOML without secrets, or everything encrypted (passphrase)."""
    name, blob = actions.make_backup(manager_of(request), body.include_secrets, body.passphrase)
    return Response(
        blob,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/restore", response_model=Message)
async def restore(
    request: Request,
    who: Auth,
    file: Annotated[UploadFile, File()],
    passphrase: Annotated[str | None, Form(max_length=1024)] = None,
) -> Message:
    """Restore a backup: validated completely first, then applied like any change."""
    blob = _read_upload(file) or b""
    return Message(message=await actions.restore_backup(manager_of(request), blob, passphrase))


@router.get("/log")
async def log_tail(request: Request, who: Auth, lines: int = 200) -> list[str]:
    """The newest log lines."""
    return manager_of(request).log_buffer.tail(max(0, min(lines, 1000)))


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(request: Request, who: Auth) -> list[TokenOut]:
    return [
        TokenOut(id=t.id, label=t.label, user=t.user, created_at=t.created_at)
        for t in manager_of(request).users.tokens()
    ]


@router.post("/tokens", response_model=TokenOut, status_code=201)
async def create_token(request: Request, body: TokenIn, who: Auth) -> TokenOut:
    """A new bearer token; its secret is in this response only. Only a logged-in session
    (with its X-CSRF-Token) may make one: a bearer token never mints another (403)."""
    if who.session is None:
        raise AuthError("API tokens are created from a logged-in session, not a bearer token", 403)
    token, secret = manager_of(request).users.create_token(who.user, body.label)
    return TokenOut(
        id=token.id, label=token.label, user=token.user, created_at=token.created_at, token=secret
    )


@router.delete("/tokens/{token_id}", response_model=Message)
async def revoke_token(request: Request, token_id: str, who: Auth) -> Message:
    if not manager_of(request).users.revoke_token(token_id):
        raise ApplyError(f"no token {token_id!r}", 404)
    return Message(message="token revoked")


@router.post("/reboot", response_model=Message, status_code=202)
async def reboot(request: Request, who: Auth) -> Message:
    """Restart the whole phone process cleanly (unregister, hang up, start again)."""
    manager_of(request).request_stop(reboot=True)
    return Message(message="the phone restarts")


# -- packet capture --------------------------------------------------------------------------------
PCAP_TYPE = "application/vnd.tcpdump.pcap"


@router.get("/capture", response_model=CaptureState)
async def capture_state(request: Request, who: Auth) -> CaptureState:
    """The packet capture: running, packets, size, backend, or why capturing is not possible."""
    return actions.capture_state(manager_of(request))


@router.post("/capture/start", response_model=CaptureState, status_code=201)
async def capture_start(
    request: Request, who: Auth, body: CaptureStartIn | None = None
) -> CaptureState:
    """Capture the phone's SIP and RTP traffic (409 when one runs, 503 when not possible)."""
    body = body or CaptureStartIn()
    return await actions.start_capture(manager_of(request), body.interface, body.seconds)


@router.post("/capture/stop", response_model=CaptureState)
async def capture_stop(request: Request, who: Auth) -> CaptureState:
    """Stop the running capture (409 when none runs)."""
    return await actions.stop_capture(manager_of(request))


@router.get(
    "/capture/file",
    response_class=Response,
    responses={200: {"content": {PCAP_TYPE: {}}, "description": "the pcap file"}},
)
async def capture_file(request: Request, who: Auth) -> Response:
    """Download the finished capture as a pcap file."""
    path, name = actions.capture_file(manager_of(request))
    return FileResponse(path, media_type=PCAP_TYPE, filename=name)


@router.post("/capture/verify", response_model=Verification)
async def capture_verify(request: Request, who: Auth) -> Verification:
    """Verify the finished capture (securephone verify): a verdict per flow and overall."""
    return await actions.verify_capture(manager_of(request))


@router.get(
    "/capture/report/{name}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in REPORT_TYPES.values()}, "description": "a file"}},
)
async def capture_report(request: Request, name: str, who: Auth) -> Response:
    """A file of the verification report: report.html, report.json, stream-N.wav/png."""
    return report_response(actions.capture_report_file(manager_of(request), name))


def report_response(path: Path) -> Response:
    """A report file with its type (the report's own CSP is set in app.py)."""
    return FileResponse(path, media_type=REPORT_TYPES[path.suffix])
