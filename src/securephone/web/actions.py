"""What the web interface can do, once: the HTML pages and the JSON API both call these.

Each function raises :class:`ApplyError` (status and message for the user) when it refuses;
then nothing was changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from securephone.aio.call import Call
from securephone.aio.phone import PhoneError
from securephone.audit import Finding, audit_config
from securephone.pki.certs import CertError, write_secret_file
from securephone.store.config import (
    AccountConfig,
    CallSettings,
    ConfigError,
    DnsSettings,
    MediaSettings,
    NatSettings,
    SipSettings,
    TlsConfig,
    WebSettings,
    config_to_dict,
    format_validation_error,
    parse_config,
)
from securephone.web import backup, certstore
from securephone.web.capturing import CaptureRefused, CaptureState, Verification, interfaces
from securephone.web.manager import ApplyError, PhoneManager

SECTIONS: dict[str, type[BaseModel]] = {
    "sip": SipSettings,
    "tls": TlsConfig,
    "media": MediaSettings,
    "calls": CallSettings,
    "dns": DnsSettings,
    "nat": NatSettings,
}
SECTION_TITLES = {
    "sip": "SIP",
    "tls": "TLS",
    "media": "Media and SRTP",
    "calls": "Calls",
    "dns": "Finding servers (DNS, RFC 3263)",
    "nat": "NAT (STUN)",
}
_DTMF = re.compile(r"[0-9*#A-Da-d]{1,32}")
# Files the phone writes whose names the web/API may set: confined to the data directory.
WRITTEN_FILES: dict[str, tuple[str, ...]] = {
    "sip": ("trace_file",),
    "tls": ("keylog_file",),
    "media": ("srtp_key_export",),
}


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field."""
    text = format_validation_error(exc)
    if not prefix:
        return text
    return "; ".join(f"{prefix}.{part}" for part in text.split("; "))


# -- files the web may name --------------------------------------------------------------------------
def inside_data_dir(data_dir: Path, value: str, what: str) -> str:
    """``value`` as an absolute path inside ``data_dir`` (relative names are taken from there;
    symbolic links are followed); ApplyError naming ``what`` when it leads elsewhere."""
    base = data_dir.expanduser().resolve()
    target = (base / value).resolve()
    if target == base or not target.is_relative_to(base):
        raise ApplyError(
            f"{what}: only a file inside the data directory {base} can be set from the web "
            "(the configuration file may name any path)"
        )
    return str(target)


def confine_files(manager: PhoneManager, name: str, data: dict[str, Any]) -> None:
    """Check (and make absolute) the written-file names of section ``name`` in ``data``: a
    value the configuration already has stays as it is (the machine's owner wrote it)."""
    current = getattr(manager.config, name, None)
    for field in WRITTEN_FILES.get(name, ()):
        value = data.get(field)
        if value in (None, "") or value == getattr(current, field, None):
            continue
        data[field] = inside_data_dir(manager.config.data_path, str(value), f"{name}.{field}")


# -- status ----------------------------------------------------------------------------------------
def call_ref(key: str) -> str:
    """A short URL-safe id for a call (SIP Call-IDs may hold any character)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def signalling_label(summary: dict[str, Any] | None) -> str:
    """How the signalling travels, in words: TLS version and cipher, or NOT ENCRYPTED."""
    if not summary:
        return "unknown"
    transport = str(summary.get("transport") or "?").upper()
    tls = summary.get("tls")
    if transport == "TLS" and tls:
        verified = "verified" if tls.get("verified") else "NOT verified"
        return f"TLS {tls.get('version')} ({tls.get('cipher')}, certificate {verified})"
    return f"{transport}: NOT ENCRYPTED"


def media_label(media: dict[str, Any] | None) -> str:
    """How the media travels: the SRTP suite, or NOT ENCRYPTED said plainly (with the reason)."""
    if media is None:
        return "no media yet"
    suite = media_suite(media)
    if suite is not None:
        return f"SRTP {suite}"
    reason = media.get("not_encrypted_reason")
    return "NOT ENCRYPTED (plain RTP)" + (f": {reason}" if reason else "")


def media_suite(media: dict[str, Any]) -> str | None:
    """The SRTP suite of a call's media summary, or None when the media is plain RTP."""
    encryption = media.get("encryption")
    if encryption in (None, "", "none", "rtp"):
        return None
    srtp = media.get("srtp")
    if isinstance(srtp, dict) and srtp.get("suite"):
        return str(srtp["suite"])
    return str(encryption)


def call_view(call: Call) -> dict[str, Any]:
    """A call's summary plus its web id and the encryption in words."""
    summary = call.summary()
    summary["id"] = call_ref(call.key)
    summary["signalling_label"] = signalling_label(summary.get("signalling"))
    summary["media_label"] = media_label(summary.get("media"))
    summary["encrypted"] = not summary["media_label"].startswith(("NOT", "no media"))
    summary["zrtp"] = zrtp_view(summary.get("security"))
    if summary["zrtp"] is not None and summary["encrypted"]:
        summary["media_label"] += " · keys by ZRTP (end to end)"
    return summary


def zrtp_view(security: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the call panel shows of a ZRTP call: the SAS to read aloud and where it stands."""
    if not security or security.get("keying") != "zrtp":
        return None
    path = security.get("path") or {}
    sas = path.get("sas")
    verified = path.get("sas_verified")
    if sas is None:
        state = "agreeing keys…" if not path.get("failure") else str(path["failure"])
    elif verified is True:
        state = "you confirmed the SAS"
    elif verified is False:
        state = "you said the SAS did NOT match: treat this call as intercepted"
    elif path.get("previously_verified"):
        state = "previously verified: the SAS was compared in an earlier call"
    else:
        state = "read the SAS aloud: does the far end see the same?"
    return {
        "sas": sas,
        "sas_type": path.get("sas_type"),
        "sas_verified": verified,
        "previously_verified": bool(path.get("previously_verified")),
        "cache_mismatch": bool(path.get("cache_mismatch")),
        "state": state,
        "can_confirm": sas is not None and verified is None,
        "alarms": list(security.get("alarms") or []),
    }


def account_views(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Registration state per account with the TLS of its connection in words."""
    out = []
    for account in status.get("accounts", []):
        view = dict(account)
        tls = account.get("tls")
        sig = {"transport": account.get("transport"), "tls": tls}
        view["signalling_label"] = signalling_label(sig)
        out.append(view)
    return out


def status(manager: PhoneManager, history: int = 20) -> dict[str, Any]:
    """Everything the status page and ``GET /api/v1/status`` show."""
    phone = manager.phone
    server = manager.server
    cert = getattr(server, "certificate", None)
    web = {
        "url": getattr(server, "url", ""),
        "type": manager.web.type,
        "certificate_fingerprint": cert.fingerprint if cert is not None else None,
        "certificate_generated": cert.generated if cert is not None else None,
    }
    data: dict[str, Any] = {
        "running": phone is not None and phone.ua is not None,
        "error": manager.phone_error,
        "web": web,
        "listen": {},
        "listen_families": {},
        "media_certificate": {"fingerprint": None},
        "tls_alarms": [],
        "nat": None,
        "accounts": [],
        "servers": {"located": {}, "failovers": []},
        "calls": [],
        "recent_calls": [r.to_dict() for r in manager.history.recent(history)],
        "audit": [f.to_dict() for f in _audit(manager)],
    }
    if phone is not None and phone.ua is not None:
        raw = phone.status()
        data["listen"] = raw["listen"]
        data["listen_families"] = raw["listen_families"]
        data["media_certificate"] = raw["media_certificate"]
        data["tls_alarms"] = raw["tls_alarms"]
        data["nat"] = raw["nat"]
        data["accounts"] = account_views(raw)
        data["servers"] = raw["servers"]
        data["calls"] = [call_view(c) for c in phone.calls.values() if not c.ended]
    return data


def _audit(manager: PhoneManager) -> list[Finding]:
    """The self-audit (``securephone audit``) with what only the running phone knows."""
    return audit_config(
        manager.config,
        default_web_password=manager.users.must_change("admin"),
        web_scheme=manager.web.type,
    )


# -- calls -----------------------------------------------------------------------------------------
def _phone(manager: PhoneManager) -> Any:
    if manager.phone is None:
        raise ApplyError(f"the phone is not running: {manager.phone_error or 'stopped'}", 503)
    return manager.phone


def find_call(manager: PhoneManager, ref: str) -> Call:
    """The active or recent call with web id ``ref`` (404 when there is none)."""
    phone = _phone(manager)
    for call in phone.calls.values():
        if call_ref(call.key) == ref:
            return call  # type: ignore[no-any-return]
    raise ApplyError(f"no call {ref!r}", 404)


def dial(manager: PhoneManager, uri: str, account: str | None) -> Call:
    """Place a call to a SIP URI (from an account, or directly when ``account`` is None)."""
    uri = uri.strip()
    if not uri:
        raise ApplyError("uri: enter a SIP URI such as sip:bob@example.com")
    if ":" not in uri:
        uri = "sip:" + uri
    try:
        call: Call = _phone(manager).dial(uri, account=account or None)
    except PhoneError as exc:
        raise ApplyError(f"uri: {exc}") from None
    return call


def control(manager: PhoneManager, ref: str, action: str, digits: str | None = None) -> Call:
    """answer, hangup, hold, resume, dtmf, confirm-sas or reject-sas (ZRTP) on one call."""
    call = find_call(manager, ref)
    try:
        if action == "answer":
            call.answer()
        elif action == "hangup":
            call.hangup()
        elif action == "hold":
            call.hold()
        elif action == "resume":
            call.resume()
        elif action == "confirm-sas":
            call.confirm_sas()
        elif action == "reject-sas":
            call.reject_sas()
        elif action == "dtmf":
            if not digits or not _DTMF.fullmatch(digits):
                raise ApplyError("digits: 1 to 32 of 0-9 * # A-D")
            call.send_dtmf(digits)
        else:
            raise ApplyError(f"unknown call action {action!r}", 404)
    except (PhoneError, ValueError) as exc:
        raise ApplyError(f"{action}: {exc}", 409) from None
    return call


# -- accounts --------------------------------------------------------------------------------------
def account_public(account: AccountConfig) -> dict[str, Any]:
    """An account without its password (only whether one is set)."""
    data = account.model_dump(mode="json", by_alias=True, exclude={"password"})
    data["password_set"] = bool(account.password.get_secret_value())
    return data


def accounts(manager: PhoneManager) -> list[dict[str, Any]]:
    return [account_public(a) for a in manager.config.accounts]


def get_account(manager: PhoneManager, name: str) -> AccountConfig:
    for account in manager.config.accounts:
        if account.name == name:
            return account
    raise ApplyError(f"no account named {name!r}", 404)


def _check_account(data: dict[str, Any]) -> None:
    try:
        AccountConfig.model_validate(data)
    except ValidationError as exc:
        raise ApplyError(validation_message(exc)) from None


async def save_account(
    manager: PhoneManager, name: str | None, data: dict[str, Any], password: str | None
) -> str:
    """Create (``name`` None) or update an account; ``password`` None keeps the stored one."""
    current = get_account(manager, name) if name is not None else None
    data = {k: v for k, v in data.items() if k != "password"}
    if password is not None:
        data["password"] = password
    elif current is not None:
        data["password"] = current.password.get_secret_value()
    _check_account(data)

    def mutate(config: dict[str, Any]) -> None:
        items = config.setdefault("accounts", [])
        if name is None:
            items.append(data)
            return
        index = next(i for i, a in enumerate(items) if a["name"] == name)
        items[index] = data

    what = f"account {data.get('name')}"
    return await manager.change(mutate, what)


async def delete_account(manager: PhoneManager, name: str) -> str:
    get_account(manager, name)

    def mutate(config: dict[str, Any]) -> None:
        config["accounts"] = [a for a in config.get("accounts", []) if a["name"] != name]

    return await manager.change(mutate, f"account {name} deleted")


# -- settings sections -----------------------------------------------------------------------------
def section(manager: PhoneManager, name: str) -> dict[str, Any]:
    if name not in SECTIONS:
        raise ApplyError(f"no settings section {name!r}", 404)
    model: BaseModel = getattr(manager.config, name)
    return model.model_dump(mode="json")


async def save_section(manager: PhoneManager, name: str, data: dict[str, Any]) -> str:
    """Validate and apply one section (sip, tls, media, calls, dns, nat)."""
    model = SECTIONS.get(name)
    if model is None:
        raise ApplyError(f"no settings section {name!r}", 404)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise ApplyError(validation_message(exc, name)) from None
    confine_files(manager, name, data)

    def mutate(config: dict[str, Any]) -> None:
        config[name] = data

    return await manager.change(mutate, f"{SECTION_TITLES[name]} settings")


async def save_web(manager: PhoneManager, data: dict[str, Any]) -> str:
    """Validate the web settings, bind the new listeners, save; the URL to open next."""
    try:
        web = WebSettings.model_validate(data)
    except ValidationError as exc:
        raise ApplyError(validation_message(exc, "web")) from None
    return await manager.change_web(web)


# -- certificates ----------------------------------------------------------------------------------
def certificates(manager: PhoneManager) -> list[dict[str, Any]]:
    return [certstore.describe(slot, manager.data_dir).to_dict() for slot in certstore.SLOTS]


def _uses_tls(manager: PhoneManager) -> bool:
    config = manager.config
    return "tls" in config.sip.transports or any(a.transport == "tls" for a in config.accounts)


async def import_certificate(
    manager: PhoneManager,
    slot: str,
    data: bytes,
    filename: str | None,
    key: bytes | None = None,
    key_filename: str | None = None,
) -> tuple[str, list[str]]:
    """Validate, write (0600, atomic) and put to use; the old file stays when anything fails."""
    try:
        prepared = certstore.prepare(slot, data, filename, key, key_filename)
    except CertError as exc:
        raise ApplyError(f"{slot}: {exc}") from None
    path = manager.data_dir / prepared.slot.filename
    old = path.read_bytes() if path.exists() else None
    certstore.install(prepared, manager.data_dir)
    try:
        message = await _use_certificate(manager, slot)
    except ApplyError:
        _put_back(path, old)
        if slot != "https" and _uses_tls(manager):
            with contextlib.suppress(ApplyError):  # the rollback ran with the new file: redo it
                await manager.restart_phone(f"{slot}.pem put back")
        raise
    return f"{prepared.slot.filename} imported ({prepared.infos[0].subject}); {message}", (
        prepared.warnings
    )


def _put_back(path: Any, old: bytes | None) -> None:
    if old is None:
        path.unlink(missing_ok=True)
    else:
        write_secret_file(path, old)


async def _use_certificate(manager: PhoneManager, slot: str) -> str:
    if slot == "https":
        if manager.server is None or manager.web.type != "https":
            return "it is used when the web server runs HTTPS"
        url = await manager.change_web(manager.web)
        return f"the web server restarted with it at {url}"
    if slot == "device" and manager.config.tls.certificate is None:

        def mutate(config: dict[str, Any]) -> None:
            config.setdefault("tls", {})["certificate"] = "device.pem"

        return await manager.change(mutate, "device certificate")
    if _uses_tls(manager):
        return await manager.restart_phone(f"{slot}.pem")
    return "it is used for the next SIP over TLS connection"


# -- backup and restore ----------------------------------------------------------------------------
def make_backup(
    manager: PhoneManager, include_secrets: bool, passphrase: str | None
) -> tuple[str, bytes]:
    """The file name and bytes of a configuration backup."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = config_to_dict(manager.config, include_secrets=True)
    if not include_secrets:
        return f"securephone-{stamp}.toml", backup.make_plain(data)
    try:
        blob = backup.make_encrypted(data, passphrase or "")
    except backup.BackupError as exc:
        raise ApplyError(f"passphrase: {exc}") from None
    return f"securephone-{stamp}.backup", blob


def _keep_passwords(manager: PhoneManager, data: dict[str, Any]) -> None:
    current = {a.name: a.password.get_secret_value() for a in manager.config.accounts}
    for account in data.get("accounts", []):
        if isinstance(account, dict) and "password" not in account:
            name = account.get("name")
            account["password"] = current.get(name, "") if isinstance(name, str) else ""


async def restore_backup(manager: PhoneManager, blob: bytes, passphrase: str | None) -> str:
    """Read and validate a backup completely, then apply it like any other change."""
    try:
        data = backup.read_backup(blob, passphrase or None)
    except backup.BackupError as exc:
        raise ApplyError(f"restore: {exc}") from None
    _keep_passwords(manager, data)
    for name in WRITTEN_FILES:
        section_data = data.get(name)
        if isinstance(section_data, dict):
            try:
                confine_files(manager, name, section_data)
            except ApplyError as exc:
                raise ApplyError(f"restore refused, nothing changed: {exc}") from None
    try:
        config = parse_config(data, "backup")
    except ConfigError as exc:
        raise ApplyError(f"restore refused, nothing changed: {exc}") from None
    if config.data_dir != manager.config.data_dir:
        raise ApplyError("restore refused: data_dir differs from this phone's")
    return await manager.replace(config, "restore")


# -- packet capture --------------------------------------------------------------------------------
def capture_ports(manager: PhoneManager) -> list[str]:
    """The phone's SIP listen ports (as bound, each with its transport: UDP, or TCP for TCP and
    TLS) and its RTP/RTCP port range (UDP), for the capture: another program's traffic on the
    same numbers over the other transport stays out."""
    listen: dict[str, str] = _phone(manager).status()["listen"]
    sip = sorted(
        {
            ("udp" if transport == "udp" else "tcp", int(address.rsplit(":", 1)[1]))
            for transport, address in listen.items()
        }
    )
    media = manager.config.media
    return [
        *(f"{transport}:{port}" for transport, port in sip if port > 0),
        f"udp:{media.port_min}-{media.port_max}",
    ]


def default_interface(manager: PhoneManager) -> str:
    """``lo`` when the phone listens on a loopback address, else the first other interface."""
    names = interfaces()
    try:
        loopback = ipaddress.ip_address(manager.config.sip.listen_address).is_loopback
    except ValueError:
        loopback = False
    others = [name for name in names if name != "lo"]
    if loopback or not others:
        return "lo"
    return others[0]


def capture_state(manager: PhoneManager) -> CaptureState:
    return manager.capture.state()


async def start_capture(
    manager: PhoneManager, interface: str | None = None, seconds: int | None = None
) -> CaptureState:
    """Capture the phone's own traffic (one capture at a time, bounded in time and size)."""
    ports = capture_ports(manager)
    try:
        await manager.capture.start(ports, interface or default_interface(manager), seconds)
    except CaptureRefused as exc:
        raise ApplyError(f"capture: {exc}", exc.status) from None
    return manager.capture.state()


async def stop_capture(manager: PhoneManager) -> CaptureState:
    try:
        return await manager.capture.stop()
    except CaptureRefused as exc:
        raise ApplyError(f"capture: {exc}", exc.status) from None


def capture_file(manager: PhoneManager) -> tuple[Path, str]:
    """The finished pcap file and the name to download it as."""
    try:
        return manager.capture.download(), manager.capture.download_name()
    except CaptureRefused as exc:
        raise ApplyError(f"capture: {exc}", exc.status) from None


async def verify_capture(manager: PhoneManager) -> Verification:
    """Run ``securephone verify`` on the finished capture: verdicts and an HTML report."""
    try:
        return await manager.capture.verify()
    except CaptureRefused as exc:
        raise ApplyError(f"capture: {exc}", exc.status) from None


def capture_report_file(manager: PhoneManager, name: str) -> Path:
    try:
        return manager.capture.report_file(name)
    except CaptureRefused as exc:
        raise ApplyError(f"capture: {exc}", exc.status) from None
