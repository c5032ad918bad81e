"""DTLS-SRTP keying (RFC 5763, RFC 5764): a sans-I/O DTLS 1.2 endpoint over OpenSSL.

See :mod:`securephone.media.dtls.engine` for the endpoint and docs/dtls-srtp.md for the API.

The names below load their module on first use (PEP 562), so a process whose calls never
choose DTLS-SRTP never imports pyOpenSSL (docs/performance.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from securephone.media.dtls.certificate import DtlsCertificate
    from securephone.media.dtls.engine import (
        DEFAULT_MTU,
        HANDSHAKE_TIMEOUT,
        Address,
        DtlsEndpoint,
        DtlsState,
        DtlsStats,
    )
    from securephone.media.dtls.events import (
        DtlsClosed,
        DtlsConnected,
        DtlsEvent,
        DtlsFailed,
        DtlsFailure,
    )
    from securephone.media.dtls.profiles import (
        DEFAULT_PROFILES,
        EXPORTER_LABEL,
        SrtpKeys,
        SrtpProfile,
        split_keying_material,
    )
    from securephone.sdp.dtls import DtlsRole, Fingerprint

_HOME = {
    "DtlsCertificate": "securephone.media.dtls.certificate",
    "DEFAULT_MTU": "securephone.media.dtls.engine",
    "HANDSHAKE_TIMEOUT": "securephone.media.dtls.engine",
    "Address": "securephone.media.dtls.engine",
    "DtlsEndpoint": "securephone.media.dtls.engine",
    "DtlsState": "securephone.media.dtls.engine",
    "DtlsStats": "securephone.media.dtls.engine",
    "DtlsClosed": "securephone.media.dtls.events",
    "DtlsConnected": "securephone.media.dtls.events",
    "DtlsEvent": "securephone.media.dtls.events",
    "DtlsFailed": "securephone.media.dtls.events",
    "DtlsFailure": "securephone.media.dtls.events",
    "DEFAULT_PROFILES": "securephone.media.dtls.profiles",
    "EXPORTER_LABEL": "securephone.media.dtls.profiles",
    "SrtpKeys": "securephone.media.dtls.profiles",
    "SrtpProfile": "securephone.media.dtls.profiles",
    "split_keying_material": "securephone.media.dtls.profiles",
    "DtlsRole": "securephone.sdp.dtls",
    "Fingerprint": "securephone.sdp.dtls",
}

__all__ = [
    "DEFAULT_MTU",
    "DEFAULT_PROFILES",
    "EXPORTER_LABEL",
    "HANDSHAKE_TIMEOUT",
    "Address",
    "DtlsCertificate",
    "DtlsClosed",
    "DtlsConnected",
    "DtlsEndpoint",
    "DtlsEvent",
    "DtlsFailed",
    "DtlsFailure",
    "DtlsRole",
    "DtlsState",
    "DtlsStats",
    "Fingerprint",
    "SrtpKeys",
    "SrtpProfile",
    "split_keying_material",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
