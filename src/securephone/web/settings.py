"""The ``[web]`` configuration section: server type, port, address, sessions.

Until ``Config`` grows a ``web`` field, the manager keeps these settings beside the Config and
writes them into the same TOML file (see :mod:`securephone.web.manager`).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PRIVILEGED_DEFAULTS = {"https": 443, "http": 80}
UNPRIVILEGED_DEFAULTS = {"https": 8443, "http": 8080}


class WebSettings(BaseModel):
    """Web management server: HTTPS (default) or HTTP, where it listens, session lifetime."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = True
    type: Literal["https", "http"] = "https"
    listen_address: str | None = None  # default: the SIP listen address
    port: int | None = Field(default=None, ge=0, le=65535)  # default 443/80 (8443/8080 non-root)
    http_redirect_port: int | None = Field(default=None, ge=0, le=65535)
    session_idle_minutes: int = Field(default=15, ge=1, le=1440)
    hsts_max_age: int = Field(default=31536000, ge=0, le=63072000)

    @field_validator("listen_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            ipaddress.ip_address(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        return value

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


def is_root() -> bool:
    """True when the process may bind ports below 1024."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_port(kind: str, root: bool | None = None) -> int:
    """443/80 as on the desk phone; 8443/8080 when running without root."""
    table = PRIVILEGED_DEFAULTS if (is_root() if root is None else root) else UNPRIVILEGED_DEFAULTS
    return table[kind]


def resolved_port(settings: WebSettings) -> int:
    """The port to bind: the configured one or the default for the type."""
    return settings.port if settings.port is not None else default_port(settings.type)
