"""The phone's TOML configuration: pydantic models, clear errors naming the key, atomic 0600 writes."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from securephone.errors import ProtocolError
from securephone.media.suites import DEFAULT_SUITES
from securephone.sip.uri import SipUri
from securephone.store.files import atomic_write
from securephone.tls import TlsSettings

Transport = Literal["udp", "tcp", "tls"]
SrtpMode = Literal["off", "optional", "mandatory"]
KeyingName = Literal["sdes", "zrtp", "dtls"]
ZrtpKeyAgreement = Literal[
    "X255", "DH3k", "EC25"
]  # what the ZRTP engine computes (RFC 6189 §5.1.5)
ZrtpSasName = Literal["B32", "B256"]  # base-32 letters or two PGP words (RFC 6189 §5.1.6)
ZrtpAuthTag = Literal["HS80", "HS32"]  # SRTP tag length (RFC 6189 §5.1.4)
CodecName = Literal["opus", "G722", "PCMU", "PCMA"]
_CODEC_SPELLING = {name.lower(): name for name in ("opus", "G722", "PCMU", "PCMA")}
if TYPE_CHECKING:
    SrtpSuiteName = str
else:  # a Literal of the implemented suites, from the one table (validation, schema, web forms)
    SrtpSuiteName = Literal[DEFAULT_SUITES]
Port = Annotated[int, Field(ge=0, le=65535)]
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _printable_path(value: str) -> str:
    """File names come from forms and the API too: no NUL or control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a file name must not contain control characters")
    return value


PathText = Annotated[str, AfterValidator(_printable_path)]


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def _check_sip_uri(value: str, what: str) -> str:
    try:
        SipUri.parse(value)
    except ProtocolError as exc:
        raise ValueError(f"not a valid {what} URI: {exc}") from None
    return value


def _check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


class SipSettings(_Model):
    """Where the phone listens for SIP. Port 0 picks a free port."""

    listen_address: str = "127.0.0.1"
    transports: list[Transport] = ["udp", "tcp"]
    udp_port: Port = 5060
    tcp_port: Port = 5060
    tls_port: Port = 5061
    user_agent: str = "securephone/0.1"
    trace_file: PathText | None = None
    keepalive_interval: float = Field(default=30.0, ge=0, le=3600)  # CRLF pings on TCP/TLS; 0 = off

    @field_validator("listen_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _check_ip(value)

    @field_validator("transports")
    @classmethod
    def _unique(cls, value: list[Transport]) -> list[Transport]:
        if not value:
            raise ValueError("at least one transport is needed")
        if len(set(value)) != len(value):
            raise ValueError("a transport is listed twice")
        return value


class MediaSettings(_Model):
    """RTP: where media sockets bind, which ports, which codecs (RFC 3551 names) in preference order."""

    address: str | None = None  # defaults to sip.listen_address
    port_min: int = Field(default=20000, ge=1024, le=65534)
    port_max: int = Field(default=20999, ge=1025, le=65535)
    # in preference order (RFC 3264 §5.1): Opus (RFC 7587), G.722 (wideband), G.711
    codecs: list[CodecName] = ["opus", "G722", "PCMU", "PCMA"]
    opus_bitrate: int = Field(default=32000, ge=6000, le=510000)  # our maxaveragebitrate
    dtmf_payload_type: int = Field(default=101, ge=96, le=127)
    jitter_buffer_frames: int = Field(default=3, ge=1, le=25)
    srtp: SrtpMode = "mandatory"
    srtp_suites: list[SrtpSuiteName] = list(DEFAULT_SUITES)
    allow_sdes_over_plaintext: bool = False  # labs only: SDES keys would cross UDP/TCP in clear
    srtp_key_export: PathText | None = None  # debugging only: append SRTP keys to this JSON file
    # how SRTP keys are agreed, in preference order: SDES (in the SDP, so only over TLS unless
    # allowed), ZRTP (end to end in the media path), DTLS (DTLS-SRTP, end to end in the media
    # path, certificate fingerprints in the SDP); an offer uses the first one that can be used
    keying: list[KeyingName] = ["sdes", "zrtp"]
    # send media to where the peer's media comes from (NAT, RFC 4961): SRTP only after a packet
    # authenticated, plain RTP from any address; off: media only from/to the negotiated address
    symmetric_rtp: bool = False
    # what our ZRTP Hello offers, in preference order (the engine's defaults; the RFC's mandatory
    # DH3k, B32, HS80 and HS32 are always accepted from a peer, RFC 6189 §5.1.5)
    zrtp_key_agreements: list[ZrtpKeyAgreement] = ["X255", "DH3k", "EC25"]
    zrtp_sas: list[ZrtpSasName] = ["B32", "B256"]
    zrtp_auth_tags: list[ZrtpAuthTag] = ["HS80", "HS32"]
    rtcp_mux: bool = True  # offer and accept RTP and RTCP on one port (RFC 5761)

    @field_validator("keying")
    @classmethod
    def _keying(cls, value: list[str]) -> list[str]:
        return _unique_keying(value)

    @field_validator("zrtp_key_agreements", "zrtp_sas", "zrtp_auth_tags")
    @classmethod
    def _zrtp_lists(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list each ZRTP algorithm once, at least one")
        return value

    @field_validator("srtp_suites")
    @classmethod
    def _suites(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list each SRTP suite once, at least one")
        return value

    @field_validator("address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else _check_ip(value)

    @field_validator("codecs", mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        return _codec_spelling(value)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: list[str]) -> list[str]:
        return _unique_codecs(value)

    @model_validator(mode="after")
    def _range(self) -> MediaSettings:
        if self.port_max - self.port_min < 1:
            raise ValueError("port_max must be above port_min (RTP and RTCP need two ports)")
        return self


class TlsConfig(_Model):
    """SIP over TLS: trust, our device certificate, versions (RFC 3261 §26, RFC 5922)."""

    ca_file: PathText | None = None  # default: DATA_DIR/sips.pem when it exists
    use_system_cas: bool = True
    verify_server: bool = True
    certificate: PathText | None = (
        None  # device certificate (+ key, one PEM) for mutual TLS and TLS listeners
    )
    private_key: PathText | None = None  # when the key is in its own file
    min_version: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    ciphers: str | None = None
    keylog_file: PathText | None = None  # SSLKEYLOGFILE format, for Wireshark; off by default
    require_client_cert: bool = False  # for incoming TLS connections
    # servers we dial: record their key on first use (DATA_DIR/known_peers.json); a changed key
    # alarms ("tofu") or also refuses the connection ("strict"); docs/hardening.md
    pinning: Literal["off", "tofu", "strict"] = "tofu"


class CallSettings(_Model):
    """How the phone handles calls."""

    max_calls: int = Field(default=4, ge=1, le=1000)
    auto_answer: bool = False
    # an unanswered incoming call is refused with 480 after this many seconds
    ring_timeout: float = Field(default=120.0, gt=0, le=3600)
    # a connected call whose far end sends no media (RTP, RTCP or keying) for this long is hung
    # up (0 = never); a far end that holds us is not expected to send
    rtp_timeout: float = Field(default=60.0, ge=0, le=86400)


DeviceName = str | int


class AudioSettings(_Model):
    """Sound devices (PortAudio): which ones, at what rate, how deep the device-side buffer is."""

    input: DeviceName | None = None  # microphone: name (or part of it) or index; None: default
    output: DeviceName | None = None  # speaker, also plays the ring tone and ringback
    sample_rate: int | None = Field(default=None, ge=8000, le=192000)  # None: the codec's rate
    buffer_ms: int = Field(default=60, ge=10, le=1000)  # ring buffer between device and media
    ring_tone: bool = True  # ring here, ringback while the far end rings
    input_volume: float = Field(default=1.0, ge=0.0, le=4.0)
    output_volume: float = Field(default=1.0, ge=0.0, le=4.0)
    # a missing or busy device: the call goes on without audio, or does not happen
    on_device_error: Literal["continue", "fail"] = "continue"


class WebSettings(_Model):
    """Web management server: HTTPS (default) or HTTP, where it listens, session lifetime."""

    enabled: bool = True
    type: Literal["https", "http"] = "https"
    listen_address: str | None = None  # default: the SIP listen address
    port: int | None = Field(default=None, ge=0, le=65535)  # default 443/80 (8443/8080 non-root)
    http_redirect_port: int | None = Field(default=None, ge=0, le=65535)
    session_idle_minutes: int = Field(default=15, ge=1, le=1440)
    hsts_max_age: int = Field(default=31536000, ge=0, le=63072000)
    # the host name the HTTP listener redirects to (default: the listen address)
    server_name: str | None = Field(default=None, max_length=253)

    @field_validator("listen_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_ip(str(value))

    @field_validator("server_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        text = str(value)
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(text))
        if not _HOST_NAME.fullmatch(text):
            raise ValueError(f"{text!r} is not a host name (letters, digits, '-' and '.')")
        return text.lower()

    @model_validator(mode="after")
    def _redirect(self) -> WebSettings:
        if self.http_redirect_port is not None and self.type != "https":
            raise ValueError("http_redirect_port only makes sense with type 'https'")
        if (
            self.http_redirect_port is not None
            and self.http_redirect_port != 0
            and self.http_redirect_port == self.port
        ):
            raise ValueError("http_redirect_port must differ from port")
        return self


def _codec_spelling(value: Any) -> Any:
    """Encoding names are case-insensitive (RFC 4855 §3): ``OPUS`` and ``g722`` are accepted."""
    if isinstance(value, list):
        return [_CODEC_SPELLING.get(v.lower(), v) if isinstance(v, str) else v for v in value]
    return value


def _unique_codecs(value: list[str]) -> list[str]:
    if not value or len(set(value)) != len(value):
        raise ValueError("list each codec once, at least one")
    return value


def _unique_keying(value: list[str]) -> list[str]:
    if not value or len(set(value)) != len(value):
        raise ValueError("list each keying method once, at least one")
    return value


class AccountConfig(_Model):
    """One SIP account: who we are, where we register, how we authenticate."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    user: str = Field(min_length=1, max_length=128)
    domain: str = Field(min_length=1, max_length=253)
    display_name: str | None = None
    auth_user: str | None = None
    password: SecretStr = SecretStr("")
    registrar: str | None = None
    outbound_proxy: str | None = None
    transport: Transport = "udp"
    srtp: SrtpMode | None = None  # None: [media] srtp
    keying: list[KeyingName] | None = None  # None: [media] keying
    codecs: list[CodecName] | None = None  # None: [media] codecs
    register_: bool = Field(default=True, alias="register")
    expires: int = Field(default=600, ge=60, le=86400)
    retry_base: float = Field(default=30.0, gt=0, le=3600)
    retry_max: float = Field(default=1800.0, gt=0, le=86400)
    # Desk-phone rule against scanner "ghost calls": take requests only from the registrar or
    # outbound proxy. None: on for accounts that register, off otherwise.
    accept_only_from_proxy: bool | None = None

    @field_validator("keying")
    @classmethod
    def _keying(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_keying(value)

    @field_validator("codecs", mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        return _codec_spelling(value)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_codecs(value)

    @field_validator("registrar", "outbound_proxy")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_sip_uri(str(value), "SIP")

    @field_validator("user", "domain")
    @classmethod
    def _no_space(cls, value: str) -> str:
        if any(c.isspace() or c in '<>@"' for c in value):
            raise ValueError("must not contain spaces, quotes, '<', '>' or '@'")
        return value


class DnsSettings(_Model):
    """``[dns]``: how SIP servers are located (RFC 3263); no servers means the system resolver."""

    enabled: bool = True  # NAPTR/SRV lookups for host names; off: the host's A/AAAA only
    servers: list[str] = []  # e.g. ["127.0.0.1"]; empty: /etc/resolv.conf
    port: Port = 53
    timeout: float = Field(default=3.0, gt=0, le=60)

    @field_validator("servers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for server in value:
            ipaddress.ip_address(server)  # ValueError names the bad one
        return value


class Config(_Model):
    """The whole configuration file."""

    data_dir: PathText = "~/.local/share/securephone"
    sip: SipSettings = SipSettings()
    tls: TlsConfig = TlsConfig()
    media: MediaSettings = MediaSettings()
    calls: CallSettings = CallSettings()
    audio: AudioSettings = AudioSettings()
    web: WebSettings = WebSettings()
    dns: DnsSettings = DnsSettings()
    accounts: list[AccountConfig] = []

    @property
    def data_path(self) -> Path:
        """The phone's data directory (sips.pem, https.pem, device.pem, history)."""
        return Path(self.data_dir).expanduser()

    def tls_settings(self) -> TlsSettings:
        """TLS settings with files resolved against the data directory."""
        tls = self.tls
        ca = self._data_file(tls.ca_file) if tls.ca_file else self.data_path / "sips.pem"
        return TlsSettings(
            ca_file=ca if tls.ca_file or ca.exists() else None,
            use_system_cas=tls.use_system_cas,
            verify_server=tls.verify_server,
            certificate=self._data_file(tls.certificate) if tls.certificate else None,
            key_file=self._data_file(tls.private_key) if tls.private_key else None,
            min_version=tls.min_version,
            ciphers=tls.ciphers,
            keylog_file=Path(tls.keylog_file).expanduser() if tls.keylog_file else None,
            require_client_cert=tls.require_client_cert,
        )

    def _data_file(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.data_path / path

    @property
    def media_address(self) -> str:
        """The address RTP binds to and SDP announces."""
        return self.media.address or self.sip.listen_address

    @field_validator("accounts")
    @classmethod
    def _unique_names(cls, value: list[AccountConfig]) -> list[AccountConfig]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError("two accounts have the same name")
        return value


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the key: ``accounts[0].expires: ...``."""
    lines = []
    for err in exc.errors():
        where = _location(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "configuration") -> Config:
    """Validate a dict (from TOML or the API) into a Config."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config(path: Path) -> Config:
    """Read and validate a TOML configuration file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def config_to_dict(config: Config, *, include_secrets: bool) -> dict[str, Any]:
    """A TOML-ready dict; secrets as plain text only when asked (for the file itself)."""
    data = config.model_dump(mode="python", exclude_none=True, by_alias=True)
    for account, model in zip(data.get("accounts", []), config.accounts, strict=True):
        secret = model.password.get_secret_value()
        account["password"] = secret if include_secrets else ("********" if secret else "")
    return data


def save_config(config: Config, path: Path) -> None:
    """Write the whole file (``[web]`` included) atomically with mode 0600: nothing half-written."""
    text = tomli_w.dumps(config_to_dict(config, include_secrets=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"), mode=0o600)
