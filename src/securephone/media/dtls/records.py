"""DTLS record framing: tell a plausible DTLS datagram, cut OpenSSL's output into datagrams.

RFC 6347 §4.1: a record is a 13-byte header (type, version, epoch, 48-bit sequence number,
length) and ``length`` bytes; a datagram carries one or more whole records (§4.1.1), and a
record never spans datagrams. OpenSSL's memory BIO hands its output over as one byte stream,
so the records are found again by their length fields and packed into datagrams of at most
``mtu`` bytes.
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPES",
    "HEADER_LENGTH",
    "MAX_RECORD_LENGTH",
    "is_plausible_datagram",
    "pack_datagrams",
    "split_records",
]

HEADER_LENGTH = 13
# RFC 6347 §4.1.2.1 / RFC 5246 §6.2.3: at most 2^14 + 2048 bytes of (protected) fragment.
MAX_RECORD_LENGTH = 2**14 + 2048
# change_cipher_spec, alert, handshake, application_data (RFC 5246 §6.2.1).
CONTENT_TYPES = frozenset({20, 21, 22, 23})
_DTLS_MAJOR = 0xFE  # DTLS 1.0 is {254, 255}, DTLS 1.2 is {254, 253} (RFC 6347 §4.1)


def split_records(data: bytes) -> list[bytes] | None:
    """The whole records in ``data``, or None when it does not consist of whole records."""
    records: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_LENGTH:
            return None
        length = int.from_bytes(data[offset + 11 : offset + 13], "big")
        end = offset + HEADER_LENGTH + length
        if length > MAX_RECORD_LENGTH or end > len(data):
            return None
        records.append(data[offset:end])
        offset = end
    return records


def is_plausible_datagram(datagram: bytes) -> bool:
    """Whole DTLS records of known content types and a DTLS version (RFC 6347 §4.1).

    This only filters what OpenSSL would discard anyway, before it reaches OpenSSL; it does
    not judge the records' contents.
    """
    records = split_records(datagram)
    if not records:
        return False
    return all(rec[0] in CONTENT_TYPES and rec[1] == _DTLS_MAJOR for rec in records)


def pack_datagrams(records: list[bytes], mtu: int) -> list[bytes]:
    """Pack records in order into as few datagrams of at most ``mtu`` bytes as possible.

    A record longer than ``mtu`` goes alone into its own datagram (OpenSSL fragments handshake
    messages to the MTU it was given, so this does not happen for the handshake).
    """
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams
