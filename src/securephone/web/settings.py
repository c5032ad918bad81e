"""The web server's port rules: 443/80 as on the desk phone, 8443/8080 without root.

The ``[web]`` section model itself, ``WebSettings``, lives in :mod:`securephone.store.config`
beside the other sections: the store never imports the web package.
"""

from __future__ import annotations

import os

from securephone.store.config import WebSettings

PRIVILEGED_DEFAULTS = {"https": 443, "http": 80}
UNPRIVILEGED_DEFAULTS = {"https": 8443, "http": 8080}


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
