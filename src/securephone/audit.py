"""``securephone audit``: read the configuration and say what weakens the phone, and the fix.

Each :class:`Finding` has a severity (high, medium, low, info), a title and the fix. What is
checked, and the RFC behind it:

* web interface: the default ``admin``/``admin`` password still set, or plain HTTP — the
  web user store and the web server settings live outside ``Config``, so the caller passes
  them (``default_web_password``, ``web_scheme``); None means "not checked" (info);
* SIP over TLS: server verification off (RFC 5922 §7.2 requires it), a TLS floor below 1.2
  (RFC 8996 deprecates 1.0/1.1), weak cipher strings (RFC 7465 for RC4), SIP transports and
  accounts in plaintext (RFC 3261 §26.2.1 wants TLS);
* SRTP: off or only optional, SDES keys allowed over plaintext signalling (RFC 4568 §8.3),
  32-bit authentication tags in the suite list (RFC 3711 §9.5 recommends 80 bits for audio);
* certificates the configuration points to (``sips.pem``/``ca_file``, the device
  certificate, ``https.pem``): expired, not yet valid, weak keys or signatures
  (via :mod:`securephone.pki.certs`), unreadable files;
* DTLS-SRTP: accounts (and plaintext listeners) where the a=fingerprint may cross UDP/TCP
  signalling, so an active attacker could replace it (RFC 5763 §8);
* secrets written to disk: a TLS key log (``tls.keylog_file``), an SRTP key export, a SIP
  trace (which records SDES keys after TLS decryption).

The SRTP keys are read with ``getattr`` and these defaults, so the audit also works on a
``Config`` (or a stand-in) that lacks them:

======================================  ===========  ===========================================
key                                     default      meaning
======================================  ===========  ===========================================
``media.srtp``                          ``"off"``    ``"off"``, ``"optional"`` or ``"mandatory"``
``accounts[].srtp``                     ``None``     per-account override of ``media.srtp``
``media.allow_sdes_over_plaintext``     ``False``    send a=crypto keys over UDP/TCP signalling
``media.srtp_suites``                   ``[]``       SRTP suites offered, RFC 4568 names
``media.srtp_key_export``               ``None``     file the phone appends SRTP keys to
======================================  ===========  ===========================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from securephone.pki.certs import CertError, CertInfo, inspect_pem, warnings_for

if TYPE_CHECKING:  # the configuration model (pydantic) loads only when a file is read
    from securephone.store.config import Config

__all__ = ["Finding", "Severity", "app", "audit_config", "exit_code_for"]


class Severity(StrEnum):
    """How much a finding matters; ``high`` makes ``securephone audit`` exit non-zero."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


_ORDER = [Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) with the configuration, and how to fix it."""

    severity: Severity
    title: str
    fix: str
    key: str = ""

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


Flag = bool | Callable[[], bool] | None


def _resolve(flag: Flag) -> bool | None:
    return flag() if callable(flag) else flag


def audit_config(
    config: Config,
    *,
    default_web_password: Flag = None,
    web_scheme: str | None = None,
    key_export: Flag = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Every finding for ``config``, most severe first.

    ``default_web_password``: True (or a callable returning True) when the web login is
    still the default ``admin``/``admin``. ``web_scheme``: ``"http"`` or ``"https"`` for
    the running web server. ``key_export``: True when SRTP key export is switched on
    elsewhere. None means unknown: reported as info, not as a problem.
    """
    findings = [
        *_web(_resolve(default_web_password), web_scheme),
        *_tls(config),
        *_signalling(config),
        *_srtp(config),
        *_dtls(config),
        *_certificates(config, now),
        *_secrets_on_disk(config, _resolve(key_export)),
    ]
    if not any(f.severity is not Severity.INFO for f in findings):
        findings.append(Finding(Severity.INFO, "no problems found", "nothing to do"))
    return sorted(findings, key=lambda f: _ORDER.index(f.severity))


def exit_code_for(findings: Sequence[Finding]) -> int:
    """1 when anything high was found, else 0."""
    return 1 if any(f.severity is Severity.HIGH for f in findings) else 0


# --------------------------------------------------------------------------- checks


def _web(default_password: bool | None, scheme: str | None) -> list[Finding]:
    found = []
    if default_password:
        found.append(Finding(
            Severity.HIGH,
            "the web interface still uses the default admin/admin password",
            "log in to the web interface and set a new password (it is asked at first login)",
            "web.users",
        ))  # fmt: skip
    elif default_password is None:
        found.append(
            Finding(
                Severity.INFO,
                "web password not checked",
                "run the audit from the web status page",
                "web.users",
            )
        )
    if scheme == "http":
        found.append(Finding(
            Severity.HIGH,
            "the web interface is served over plain HTTP: passwords and settings travel in clear",
            "serve it over HTTPS (import https.pem, or let the phone generate a certificate)",
            "web",
        ))  # fmt: skip
    elif scheme is None:
        found.append(
            Finding(
                Severity.INFO,
                "web server scheme not checked",
                "run the audit from the web status page",
                "web",
            )
        )
    return found


_WEAK_CIPHER_WORDS = ("NULL", "EXPORT", "RC4", "DES", "MD5", "aNULL", "eNULL", "ADH")


def _tls(config: Config) -> list[Finding]:
    tls = config.tls
    found = []
    if not tls.verify_server:
        found.append(Finding(
            Severity.HIGH,
            "TLS server certificates are not verified: anyone in the path can impersonate the server",
            "set [tls] verify_server = true and import the server's CA as sips.pem (RFC 5922)",
            "tls.verify_server",
        ))  # fmt: skip
    if tls.min_version in ("TLSv1", "TLSv1.1"):
        found.append(Finding(
            Severity.HIGH,
            f"TLS floor is {tls.min_version}: versions below 1.2 are deprecated (RFC 8996)",
            'set [tls] min_version = "TLSv1.2" (or "TLSv1.3")',
            "tls.min_version",
        ))  # fmt: skip
    weak = _weak_cipher_words(tls.ciphers)
    if weak:
        found.append(Finding(
            Severity.HIGH,
            f"the TLS cipher list enables weak ciphers ({', '.join(weak)})",
            "remove [tls] ciphers to use the secure defaults, or exclude them with '!'",
            "tls.ciphers",
        ))  # fmt: skip
    from securephone.tls import non_aead_ciphers

    cbc = non_aead_ciphers(tls.ciphers) if tls.ciphers else []
    if cbc and not weak:
        found.append(Finding(
            Severity.MEDIUM,
            f"the TLS cipher list enables {len(cbc)} non-AEAD suites (CBC: Lucky Thirteen), e.g. {cbc[0]}",
            "remove [tls] ciphers: the default allows only ECDHE with AES-GCM or ChaCha20 (and TLS 1.3)",
            "tls.ciphers",
        ))  # fmt: skip
    return found


def _weak_cipher_words(ciphers: str | None) -> list[str]:
    if not ciphers:
        return []
    enabled = [p for p in ciphers.replace(",", ":").replace(" ", ":").split(":") if p]
    enabled = [p.lstrip("+") for p in enabled if not p.startswith(("!", "-"))]
    return sorted({w for w in _WEAK_CIPHER_WORDS for p in enabled if w in p.upper()})


def _signalling(config: Config) -> list[Finding]:
    plain = [a.name for a in config.accounts if a.transport != "tls"]
    found = []
    if plain:
        found.append(Finding(
            Severity.HIGH,
            f"SIP signalling of account(s) {', '.join(plain)} is not encrypted (transport udp/tcp)",
            'set transport = "tls" for each account (RFC 3261 §26.2.1)',
            "accounts[].transport",
        ))  # fmt: skip
    listeners = [t for t in config.sip.transports if t != "tls"]
    if listeners:
        found.append(Finding(
            Severity.MEDIUM,
            f"the phone accepts plaintext SIP on {', '.join(listeners).upper()}",
            'set [sip] transports = ["tls"] when every peer speaks TLS',
            "sip.transports",
        ))  # fmt: skip
    return found


def _srtp(config: Config) -> list[Finding]:
    media = config.media
    found = _srtp_mode(
        str(getattr(media, "srtp", "off")), "media.srtp", "", 'set [media] srtp = "mandatory"'
    )
    for account in config.accounts:
        mode = getattr(account, "srtp", None)
        if mode is not None:
            fix = f'set srtp = "mandatory" in account {account.name}, or remove it'
            found += _srtp_mode(str(mode), "accounts[].srtp", f"account {account.name}: ", fix)
    if getattr(media, "allow_sdes_over_plaintext", False):
        found.append(Finding(
            Severity.HIGH,
            "SDES keys may be sent over plaintext signalling: whoever sees the SIP can decrypt the SRTP",
            "set [media] allow_sdes_over_plaintext = false and use SIP over TLS (RFC 4568 §8.3)",
            "media.allow_sdes_over_plaintext",
        ))  # fmt: skip
    found += _keying(config)
    short = [s for s in getattr(media, "srtp_suites", []) or [] if str(s).endswith("_32")]
    if short:
        found.append(Finding(
            Severity.MEDIUM,
            f"32-bit SRTP authentication tags are offered ({', '.join(map(str, short))})",
            "offer only the _80 or AEAD_AES_*_GCM suites in [media] srtp_suites (RFC 3711 §9.5)",
            "media.srtp_suites",
        ))  # fmt: skip
    return found


def _keying(config: Config) -> list[Finding]:
    """SDES puts a call's keys in the SDP: each SIP server on the path can read them (RFC 4568
    §8.1), TLS only protects them hop by hop; ZRTP and DTLS-SRTP agree them end to end. SDES
    alone is a weakness; SDES first says that calls over TLS will mostly use it."""
    lists: list[tuple[str, str, list[str]]] = [
        ("media.keying", "", list(getattr(config.media, "keying", []) or []))
    ]
    lists += [
        ("accounts[].keying", f"account {a.name}: ", list(getattr(a, "keying", None) or []))
        for a in config.accounts
    ]
    found = []
    for key, where, methods in lists:
        if methods == ["sdes"]:
            found.append(Finding(
                Severity.MEDIUM,
                where + "media keys only by SDES: readable by every SIP server on the path",
                f'add "zrtp" to {key} (keys agreed end to end in the media path, RFC 6189)',
                key,
            ))  # fmt: skip
        elif "sdes" in methods and methods[0] == "sdes":
            # an offer takes the first usable method and an answer the first the offer allows:
            # with SDES first, the end-to-end methods after it only serve calls where SDES cannot
            found.append(Finding(
                Severity.LOW,
                where + "SDES comes first: calls over TLS to peers that accept SDES are keyed hop by "
                "hop (readable by every SIP server on the path); the end-to-end methods after it "
                "are used only where SDES cannot be (plaintext signalling, an offer without "
                "a=crypto)",
                f'put "zrtp" (or "dtls") first in {key} for peers that speak it; a peer that '
                "speaks only SDES then gets an offer it cannot take",
                key,
            ))  # fmt: skip
    return found


def _uses_dtls(keying: object) -> bool:
    return "dtls" in (keying if isinstance(keying, list | tuple) else ())


def _dtls(config: Config) -> list[Finding]:
    """DTLS-SRTP fingerprints over plaintext SIP: a listener learns nothing, but whoever can
    change the SDP can put its own fingerprint there and sit in the middle (RFC 5763 §8)."""
    default = getattr(config.media, "keying", [])
    found = []
    for account in config.accounts:
        keying = getattr(account, "keying", None) or default
        if _uses_dtls(keying) and account.transport != "tls":
            found.append(Finding(
                Severity.MEDIUM,
                f"account {account.name}: DTLS-SRTP fingerprints travel over plaintext SIP "
                f"({account.transport}): whoever can change the SDP can sit in the middle",
                f'set transport = "tls" in account {account.name} (RFC 5763 §8)',
                "accounts[].keying",
            ))  # fmt: skip
    plain = [t for t in config.sip.transports if t != "tls"]
    if _uses_dtls(default) and plain:
        found.append(Finding(
            Severity.LOW,
            f"direct calls over {', '.join(plain).upper()} may use DTLS-SRTP with fingerprints "
            "that are not integrity-protected (the call summary says fingerprint_integrity: false)",
            'set [sip] transports = ["tls"] when every peer speaks TLS (RFC 5763 §8)',
            "media.keying",
        ))  # fmt: skip
    return found


def _srtp_mode(mode: str, key: str, where: str, fix: str) -> list[Finding]:
    if mode == "off":
        what = "SRTP is off: call audio travels as plain RTP, readable by anyone on the path"
        return [Finding(Severity.HIGH, where + what, fix, key)]
    if mode == "optional":
        what = "SRTP is optional: calls to peers without SRTP fall back to plain RTP"
        return [Finding(Severity.MEDIUM, where + what, fix, key)]
    return []


# --------------------------------------------------------------------------- certificates


def _certificate_files(config: Config) -> list[tuple[str, str, Path, bool]]:
    """(what, key, path, required): the files the configuration points to."""
    settings = config.tls_settings()
    files: list[tuple[str, str, Path, bool]] = []
    if settings.ca_file is not None:
        files.append(
            (
                "trusted CA (sips.pem)",
                "tls.ca_file",
                Path(settings.ca_file),
                bool(config.tls.ca_file),
            )
        )
    if settings.certificate is not None:
        files.append(("device certificate", "tls.certificate", Path(settings.certificate), True))
    web = config.data_path / "https.pem"
    if web.exists():
        files.append(("web certificate (https.pem)", "https.pem", web, False))
    return files


def _certificates(config: Config, now: datetime | None) -> list[Finding]:
    found: list[Finding] = []
    for what, key, path, required in _certificate_files(config):
        found += _certificate_file(what, key, path, required, now)
    return found


def _certificate_file(
    what: str, key: str, path: Path, required: bool, now: datetime | None
) -> list[Finding]:
    try:
        infos = inspect_pem(path.read_bytes())
    except FileNotFoundError:
        if not required:
            return []
        return [
            Finding(
                Severity.HIGH,
                f"{what}: {path} does not exist",
                f"create or import it, or fix {key}",
                key,
            )
        ]
    except (OSError, CertError) as exc:
        return [
            Finding(
                Severity.HIGH,
                f"{what}: {path} is not a usable certificate file ({exc})",
                f"replace it with a PEM certificate, or fix {key}",
                key,
            )
        ]
    return [f for info in infos for f in _certificate_warnings(what, key, path, info, now)]


def _certificate_warnings(
    what: str, key: str, path: Path, info: CertInfo, now: datetime | None
) -> list[Finding]:
    found = []
    for warning in warnings_for(info, now):
        severity = _warning_severity(warning)
        title = f"{what} {info.subject} ({path.name}): {warning}"
        found.append(Finding(severity, title, _warning_fix(warning), key))
    return found


def _warning_severity(warning: str) -> Severity:
    if warning.startswith(("expired", "weak key", "not yet valid")):
        return Severity.HIGH
    if warning.startswith(("weak signature", "expires within", "wildcard", "no subjectAltName")):
        return Severity.MEDIUM
    return Severity.LOW


def _warning_fix(warning: str) -> str:
    if warning.startswith(("expired", "expires within", "not yet valid")):
        return "issue a new certificate (securephone cert issue) and import it"
    if warning.startswith(("weak key", "weak signature")):
        return "reissue with an EC P-256 or RSA 2048+ key and SHA-256 (securephone cert issue)"
    return "reissue the certificate with a subjectAltName and no wildcard (securephone cert issue)"


# --------------------------------------------------------------------------- secrets on disk


def _uses_zrtp(config: Config) -> bool:
    keyings = [getattr(config.media, "keying", None) or []]
    keyings += [getattr(a, "keying", None) or [] for a in config.accounts]
    return any("zrtp" in k for k in keyings)


def _secrets_on_disk(config: Config, key_export: bool | None) -> list[Finding]:
    found = []
    if config.tls.keylog_file:
        found.append(Finding(
            Severity.HIGH,
            f"TLS session keys are written to {config.tls.keylog_file}: whoever reads it decrypts the SIP",
            "remove [tls] keylog_file once debugging is done, and delete the file",
            "tls.keylog_file",
        ))  # fmt: skip
    export = getattr(config.media, "srtp_key_export", None)
    if export or key_export:
        where = f" to {export}" if export else ""
        zrtp = _uses_zrtp(config)
        what = " (ZRTP-agreed keys too: it undoes their end-to-end protection)" if zrtp else ""
        found.append(Finding(
            Severity.HIGH,
            f"SRTP keys are exported{where}{what}: whoever reads the file decrypts the calls",
            "switch key export off after the verification and delete the key file",
            "media.srtp_key_export",
        ))  # fmt: skip
    if config.sip.trace_file:
        found.append(Finding(
            Severity.MEDIUM,
            f"every SIP message is written to {config.sip.trace_file}, SDES keys included",
            "remove [sip] trace_file once debugging is done",
            "sip.trace_file",
        ))  # fmt: skip
    return found


# --------------------------------------------------------------------------- CLI

app = typer.Typer(
    help="Audit the phone's configuration.", add_completion=False, pretty_exceptions_enable=False
)
_COLOURS = {
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


@app.command()
def audit(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="TOML configuration file.", show_default=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Print findings with severity and fix; exit 1 when anything high is found."""
    from securephone.store.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"securephone: error: {exc}", err=True)
        raise typer.Exit(2) from None
    findings = audit_config(
        cfg,
        default_web_password=_default_web_login(cfg),
        web_scheme=cfg.web.type if cfg.web.enabled else None,
    )
    code = exit_code_for(findings)
    if as_json:
        data: dict[str, Any] = {
            "config": str(config),
            "exit_code": code,
            "findings": [f.to_dict() for f in findings],
        }
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(findings, Console(highlight=False))
    raise typer.Exit(code)


def _default_web_login(cfg: Config) -> bool | None:
    """True while the web login is still admin/admin (read-only: no users file is created)."""
    if not cfg.web.enabled:
        return None
    path = cfg.data_path / "users.json"
    if not path.exists():
        return True  # the first start creates admin/admin
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = {u["name"]: u for u in data.get("users", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    admin = users.get("admin")
    return bool(admin and admin.get("must_change"))


def _print(findings: Sequence[Finding], console: Console) -> None:
    """A table on a terminal; one finding per line (and its fix) when piped."""
    if console.is_terminal:
        table = Table(show_lines=True)
        for column in ("severity", "finding", "fix"):
            table.add_column(column, overflow="fold")
        for f in findings:
            label = Text(f.severity.value.upper(), style=f"bold {_COLOURS[f.severity]}")
            table.add_row(label, Text(f.title), Text(f.fix))
        console.print(table)
    else:
        for f in findings:
            console.print(Text(f"{f.severity.value.upper():6}  {f.title}"), soft_wrap=True)
            console.print(Text(f"        fix: {f.fix}"), soft_wrap=True)
    highs = sum(1 for f in findings if f.severity is Severity.HIGH)
    console.print(f"{highs} high, {len(findings) - highs} other findings")


if __name__ == "__main__":
    app()
