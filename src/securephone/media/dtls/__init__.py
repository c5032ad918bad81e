"""DTLS-SRTP keying (RFC 5763, RFC 5764): a sans-I/O DTLS 1.2 endpoint over OpenSSL.

See :mod:`securephone.media.dtls.engine` for the endpoint and docs/dtls-srtp.md for the API.
"""

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
