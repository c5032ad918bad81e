"""ZRTP messages (RFC 6189 §5.1-§5.16) as classes with ``parse()`` and ``__bytes__``.

Each message starts with the preamble ``0x505a``, its length in 32-bit words and an
8-character type block (§5.1.1-§5.1.3). Algorithm names are 4-character blocks kept as
``str`` exactly as on the wire (``"B32 "`` keeps its space); unknown names are kept and
ignored by negotiation, like bzrtp does. MACs are the 8 leftmost bytes of HMAC-SHA-256
keyed with the hash chain (§9), computed by :mod:`.crypto` and carried here as bytes.

:func:`parse_message` dispatches on the type block; every malformed input raises
:class:`~.packet.ZrtpParseError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from .packet import ZrtpParseError

__all__ = [
    "ClearAck",
    "Commit",
    "CommitMode",
    "Conf2Ack",
    "Confirm",
    "Confirm1",
    "Confirm2",
    "ConfirmPlaintext",
    "DHPart",
    "DHPart1",
    "DHPart2",
    "Error",
    "ErrorAck",
    "GoClear",
    "Hello",
    "HelloAck",
    "Message",
    "MessageType",
    "Ping",
    "PingAck",
    "RelayAck",
    "SasRelay",
    "SasRelayPlaintext",
    "parse_message",
]

PREAMBLE = b"\x50\x5a"
MAC_LENGTH = 8
ZID_LENGTH = 12
HASH_IMAGE_LENGTH = 32  # H0..H3 are always SHA-256 images (§9)


class MessageType(Enum):
    """Message type blocks (RFC 6189 §5.1.3, Table 1)."""

    HELLO = b"Hello   "
    HELLO_ACK = b"HelloACK"
    COMMIT = b"Commit  "
    DHPART1 = b"DHPart1 "
    DHPART2 = b"DHPart2 "
    CONFIRM1 = b"Confirm1"
    CONFIRM2 = b"Confirm2"
    CONF2ACK = b"Conf2ACK"
    ERROR = b"Error   "
    ERROR_ACK = b"ErrorACK"
    GO_CLEAR = b"GoClear "
    CLEAR_ACK = b"ClearACK"
    SAS_RELAY = b"SASrelay"
    RELAY_ACK = b"RelayACK"
    PING = b"Ping    "
    PING_ACK = b"PingACK "


def _frame(kind: MessageType, body: bytes) -> bytes:
    """Preamble, length in words and type block around ``body`` (RFC 6189 §5.1)."""
    if len(body) % 4:
        raise ValueError("ZRTP message body must be a whole number of words")
    return PREAMBLE + struct.pack("!H", 3 + len(body) // 4) + kind.value + body


def _name(block: bytes) -> str:
    return block.decode("latin-1")


def _block(name: str) -> bytes:
    raw = name.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"algorithm name {name!r} is not a 4-character block")
    return raw


def _expect(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise ZrtpParseError(f"{what} of {len(data)} bytes, expected {length}")


class Message:
    """Base of every ZRTP message: ``TYPE`` and the body after the 12-byte message header."""

    TYPE: ClassVar[MessageType]

    def body(self) -> bytes:
        """The bytes after the type block (overridden by messages that carry fields)."""
        return b""

    def __bytes__(self) -> bytes:
        return _frame(self.TYPE, self.body())

    @classmethod
    def parse(cls, data: bytes) -> Message:
        """Parse a whole message (header included) of this type."""
        if len(data) < 12 or data[4:12] != cls.TYPE.value:
            raise ZrtpParseError(f"not a {cls.TYPE.value!r} message")
        return cls._parse_body(data[12:])

    @classmethod
    def _parse_body(cls, body: bytes) -> Message:
        _expect(body, 0, cls.TYPE.value.decode().strip())
        return cls()


@dataclass(frozen=True)
class Hello(Message):
    """Hello (RFC 6189 §5.2): version, client id, H3, ZID, flags, algorithm lists, MAC(H2)."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    version: str
    client_id: bytes
    h3: bytes
    zid: bytes
    hashes: tuple[str, ...]
    ciphers: tuple[str, ...]
    auth_tags: tuple[str, ...]
    key_agreements: tuple[str, ...]
    sas_types: tuple[str, ...]
    mac: bytes = bytes(MAC_LENGTH)
    signature_capable: bool = False
    mitm: bool = False
    passive: bool = False

    def body(self) -> bytes:
        return self.body_without_mac() + self.mac

    def body_without_mac(self) -> bytes:
        """Everything after the type block up to the MAC."""
        lists = (self.hashes, self.ciphers, self.auth_tags, self.key_agreements, self.sas_types)
        if any(len(names) > 7 for names in lists):
            raise ValueError("at most 7 algorithms of each kind (RFC 6189 §5.2)")
        flags = self.signature_capable << 6 | self.mitm << 5 | self.passive << 4
        counts = bytes(
            [
                flags,
                len(self.hashes),
                len(self.ciphers) << 4 | len(self.auth_tags),
                len(self.key_agreements) << 4 | len(self.sas_types),
            ]
        )
        names = b"".join(_block(n) for names in lists for n in names)
        head = _block(self.version) + _pad16(self.client_id) + self.h3 + self.zid
        return head + counts + names

    @classmethod
    def _parse_body(cls, body: bytes) -> Hello:
        if len(body) < 76:
            raise ZrtpParseError("truncated Hello")
        flags, hc, cc_ac, kc_sc = body[64:68]
        counts = (hc & 0x0F, cc_ac >> 4, cc_ac & 0x0F, kc_sc >> 4, kc_sc & 0x0F)
        if any(count > 7 for count in counts):
            raise ZrtpParseError("Hello algorithm count above 7")
        _expect(body, 76 + 4 * sum(counts), "Hello")
        names = [_name(body[68 + 4 * i : 72 + 4 * i]) for i in range(sum(counts))]
        lists, start = [], 0
        for count in counts:
            lists.append(tuple(names[start : start + count]))
            start += count
        return cls(
            version=_name(body[0:4]),
            client_id=body[4:20],
            h3=body[20:52],
            zid=body[52:64],
            hashes=lists[0],
            ciphers=lists[1],
            auth_tags=lists[2],
            key_agreements=lists[3],
            sas_types=lists[4],
            mac=body[-MAC_LENGTH:],
            signature_capable=bool(flags & 0x40),
            mitm=bool(flags & 0x20),
            passive=bool(flags & 0x10),
        )


def _pad16(client_id: bytes) -> bytes:
    if len(client_id) > 16:
        raise ValueError("client identifier longer than 16 bytes")
    return client_id.ljust(16, b" ")


class HelloAck(Message):
    """HelloACK (RFC 6189 §5.3): header only."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO_ACK

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.TYPE)


class CommitMode(Enum):
    """Key agreement mode a Commit names (RFC 6189 §4.1, §5.4)."""

    DH = "DH"
    MULTISTREAM = "Mult"
    PRESHARED = "Prsh"


@dataclass(frozen=True)
class Commit(Message):
    """Commit (RFC 6189 §5.4): H2, ZID, chosen algorithms, hvi or nonce (+ keyID), MAC(H1)."""

    TYPE: ClassVar[MessageType] = MessageType.COMMIT
    h2: bytes
    zid: bytes
    hash: str
    cipher: str
    auth_tag: str
    key_agreement: str
    sas_type: str
    hvi: bytes = b""  # DH mode, 32 bytes
    nonce: bytes = b""  # Multistream and Preshared modes, 16 bytes
    key_id: bytes = b""  # Preshared mode, 8 bytes
    mac: bytes = bytes(MAC_LENGTH)

    @property
    def mode(self) -> CommitMode:
        """DH, Multistream or Preshared, from the key agreement block (§5.1.5)."""
        if self.key_agreement == "Mult":
            return CommitMode.MULTISTREAM
        if self.key_agreement == "Prsh":
            return CommitMode.PRESHARED
        return CommitMode.DH

    def body(self) -> bytes:
        return self.body_without_mac() + self.mac

    def body_without_mac(self) -> bytes:
        """Everything after the type block up to the MAC."""
        names = (self.hash, self.cipher, self.auth_tag, self.key_agreement, self.sas_type)
        tail = {
            CommitMode.DH: (self.hvi, 32),
            CommitMode.MULTISTREAM: (self.nonce, 16),
            CommitMode.PRESHARED: (self.nonce + self.key_id, 24),
        }[self.mode]
        if len(tail[0]) != tail[1]:
            raise ValueError("Commit hvi/nonce/keyID has the wrong length for its mode")
        return self.h2 + self.zid + b"".join(_block(n) for n in names) + tail[0]

    @classmethod
    def _parse_body(cls, body: bytes) -> Commit:
        if len(body) < 64:
            raise ZrtpParseError("truncated Commit")
        names = [_name(body[44 + 4 * i : 48 + 4 * i]) for i in range(5)]
        mode = {"Mult": CommitMode.MULTISTREAM, "Prsh": CommitMode.PRESHARED}.get(
            names[3], CommitMode.DH
        )
        size = {CommitMode.DH: 104, CommitMode.MULTISTREAM: 88, CommitMode.PRESHARED: 96}[mode]
        _expect(body, size, f"Commit ({mode.value})")
        rest = body[64:-MAC_LENGTH]
        return cls(
            h2=body[0:32],
            zid=body[32:44],
            hash=names[0],
            cipher=names[1],
            auth_tag=names[2],
            key_agreement=names[3],
            sas_type=names[4],
            hvi=rest if mode is CommitMode.DH else b"",
            nonce=rest[:16] if mode is not CommitMode.DH else b"",
            key_id=rest[16:24] if mode is CommitMode.PRESHARED else b"",
            mac=body[-MAC_LENGTH:],
        )


@dataclass(frozen=True)
class DHPart(Message):
    """DHPart1/DHPart2 (RFC 6189 §5.5, §5.6): H1, secret IDs, public value, MAC(H0)."""

    TYPE: ClassVar[MessageType]
    h1: bytes
    rs1_id: bytes
    rs2_id: bytes
    auxsecret_id: bytes
    pbxsecret_id: bytes
    pv: bytes
    mac: bytes = bytes(MAC_LENGTH)

    def body(self) -> bytes:
        return self.body_without_mac() + self.mac

    def body_without_mac(self) -> bytes:
        """Everything after the type block up to the MAC."""
        ids = (self.rs1_id, self.rs2_id, self.auxsecret_id, self.pbxsecret_id)
        if any(len(i) != 8 for i in ids) or not self.pv or len(self.pv) % 4:
            raise ValueError("DHPart secret IDs are 8 bytes, pv a non-empty multiple of 4")
        return self.h1 + b"".join(ids) + self.pv

    @classmethod
    def _parse_body(cls, body: bytes) -> DHPart:
        if len(body) < 76:
            raise ZrtpParseError(f"truncated {cls.__name__}")
        return cls(
            h1=body[0:32],
            rs1_id=body[32:40],
            rs2_id=body[40:48],
            auxsecret_id=body[48:56],
            pbxsecret_id=body[56:64],
            pv=body[64:-MAC_LENGTH],
            mac=body[-MAC_LENGTH:],
        )


@dataclass(frozen=True)
class DHPart1(DHPart):
    """DHPart1, sent by the responder (RFC 6189 §5.5)."""

    TYPE: ClassVar[MessageType] = MessageType.DHPART1


@dataclass(frozen=True)
class DHPart2(DHPart):
    """DHPart2, sent by the initiator (RFC 6189 §5.6)."""

    TYPE: ClassVar[MessageType] = MessageType.DHPART2


@dataclass(frozen=True)
class Confirm(Message):
    """Confirm1/Confirm2 (RFC 6189 §5.7): confirm_mac, CFB IV, encrypted part."""

    TYPE: ClassVar[MessageType]
    confirm_mac: bytes
    iv: bytes
    encrypted: bytes = field(repr=False)

    def body(self) -> bytes:
        if len(self.confirm_mac) != 8 or len(self.iv) != 16 or len(self.encrypted) % 4:
            raise ValueError("Confirm MAC is 8 bytes, IV 16, encrypted part whole words")
        return self.confirm_mac + self.iv + self.encrypted

    @classmethod
    def _parse_body(cls, body: bytes) -> Confirm:
        if len(body) < 64:
            raise ZrtpParseError(f"truncated {cls.__name__}")
        return cls(confirm_mac=body[0:8], iv=body[8:24], encrypted=body[24:])


@dataclass(frozen=True)
class Confirm1(Confirm):
    """Confirm1, sent by the responder (RFC 6189 §5.7)."""

    TYPE: ClassVar[MessageType] = MessageType.CONFIRM1


@dataclass(frozen=True)
class Confirm2(Confirm):
    """Confirm2, sent by the initiator (RFC 6189 §5.7)."""

    TYPE: ClassVar[MessageType] = MessageType.CONFIRM2


@dataclass(frozen=True)
class ConfirmPlaintext:
    """The encrypted part of Confirm1/2 (RFC 6189 §5.7, Figure 10).

    H0, signature length (9 bits, words incl. the type block), flags E/V/A/D, cache
    expiration interval (0xFFFFFFFF = forever) and an optional signature block.
    """

    h0: bytes = field(repr=False)
    verified: bool = False
    allow_clear: bool = False
    disclosure: bool = False
    enrollment: bool = False
    cache_expiration: int = 0xFFFFFFFF
    signature: bytes = b""

    def __bytes__(self) -> bytes:
        if len(self.h0) != 32 or len(self.signature) % 4:
            raise ValueError("H0 is 32 bytes, signature whole words")
        sig_len = len(self.signature) // 4
        flags = self.enrollment << 3 | self.verified << 2 | self.allow_clear << 1
        flags |= int(self.disclosure)
        head = bytes([0, sig_len >> 8 & 1, sig_len & 0xFF, flags])
        head += struct.pack("!I", self.cache_expiration)
        return self.h0 + head + self.signature

    @classmethod
    def parse(cls, data: bytes) -> ConfirmPlaintext:
        """Parse a decrypted Confirm part; the signature length must match the data."""
        if len(data) < 40:
            raise ZrtpParseError("truncated Confirm plaintext")
        sig_len = (data[33] & 1) << 8 | data[34]
        _expect(data, 40 + 4 * sig_len, "Confirm plaintext")
        flags = data[35]
        return cls(
            h0=data[0:32],
            verified=bool(flags & 4),
            allow_clear=bool(flags & 2),
            disclosure=bool(flags & 1),
            enrollment=bool(flags & 8),
            cache_expiration=int.from_bytes(data[36:40], "big"),
            signature=data[40:],
        )


class Conf2Ack(HelloAck):
    """Conf2ACK (RFC 6189 §5.8): header only."""

    TYPE: ClassVar[MessageType] = MessageType.CONF2ACK


@dataclass(frozen=True)
class Error(Message):
    """Error (RFC 6189 §5.9): a 32-bit error code (Table 8)."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: int

    def body(self) -> bytes:
        return struct.pack("!I", self.code)

    @classmethod
    def _parse_body(cls, body: bytes) -> Error:
        _expect(body, 4, "Error")
        return cls(int.from_bytes(body, "big"))


class ErrorAck(HelloAck):
    """ErrorACK (RFC 6189 §5.10): header only."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR_ACK


@dataclass(frozen=True)
class GoClear(Message):
    """GoClear (RFC 6189 §5.11): clear_mac. Parsed so it can be refused."""

    TYPE: ClassVar[MessageType] = MessageType.GO_CLEAR
    clear_mac: bytes

    def body(self) -> bytes:
        if len(self.clear_mac) != 8:
            raise ValueError("clear_mac is 8 bytes")
        return self.clear_mac

    @classmethod
    def _parse_body(cls, body: bytes) -> GoClear:
        _expect(body, 8, "GoClear")
        return cls(body)


class ClearAck(HelloAck):
    """ClearACK (RFC 6189 §5.12): header only."""

    TYPE: ClassVar[MessageType] = MessageType.CLEAR_ACK


@dataclass(frozen=True)
class SasRelay(Confirm):
    """SASrelay (RFC 6189 §5.13): MAC, CFB IV, encrypted relayed SAS."""

    TYPE: ClassVar[MessageType] = MessageType.SAS_RELAY


@dataclass(frozen=True)
class SasRelayPlaintext:
    """The encrypted part of SASrelay (RFC 6189 §5.13, Figure 16)."""

    rendering: str
    sas_hash: bytes
    verified: bool = False
    allow_clear: bool = False
    disclosure: bool = False
    signature: bytes = b""

    def __bytes__(self) -> bytes:
        if len(self.sas_hash) != 32 or len(self.signature) % 4:
            raise ValueError("relayed sashash is 32 bytes, signature whole words")
        sig_len = len(self.signature) // 4
        flags = self.verified << 2 | self.allow_clear << 1 | int(self.disclosure)
        head = bytes([0, sig_len >> 8 & 1, sig_len & 0xFF, flags])
        return head + _block(self.rendering) + self.sas_hash + self.signature

    @classmethod
    def parse(cls, data: bytes) -> SasRelayPlaintext:
        """Parse a decrypted SASrelay part."""
        if len(data) < 40:
            raise ZrtpParseError("truncated SASrelay plaintext")
        sig_len = (data[1] & 1) << 8 | data[2]
        _expect(data, 40 + 4 * sig_len, "SASrelay plaintext")
        return cls(
            rendering=_name(data[4:8]),
            sas_hash=data[8:40],
            verified=bool(data[3] & 4),
            allow_clear=bool(data[3] & 2),
            disclosure=bool(data[3] & 1),
            signature=data[40:],
        )


class RelayAck(HelloAck):
    """RelayACK (RFC 6189 §5.14): header only."""

    TYPE: ClassVar[MessageType] = MessageType.RELAY_ACK


@dataclass(frozen=True)
class Ping(Message):
    """Ping (RFC 6189 §5.15): version and EndpointHash."""

    TYPE: ClassVar[MessageType] = MessageType.PING
    version: str
    endpoint_hash: bytes

    def body(self) -> bytes:
        if len(self.endpoint_hash) != 8:
            raise ValueError("EndpointHash is 8 bytes")
        return _block(self.version) + self.endpoint_hash

    @classmethod
    def _parse_body(cls, body: bytes) -> Ping:
        _expect(body, 12, "Ping")
        return cls(_name(body[0:4]), body[4:12])


@dataclass(frozen=True)
class PingAck(Message):
    """PingACK (RFC 6189 §5.16): version, own and received EndpointHash, the Ping's SSRC."""

    TYPE: ClassVar[MessageType] = MessageType.PING_ACK
    version: str
    endpoint_hash: bytes
    received_endpoint_hash: bytes
    ssrc: int

    def body(self) -> bytes:
        if len(self.endpoint_hash) != 8 or len(self.received_endpoint_hash) != 8:
            raise ValueError("EndpointHash values are 8 bytes")
        hashes = self.endpoint_hash + self.received_endpoint_hash
        return _block(self.version) + hashes + struct.pack("!I", self.ssrc)

    @classmethod
    def _parse_body(cls, body: bytes) -> PingAck:
        _expect(body, 24, "PingACK")
        return cls(_name(body[0:4]), body[4:12], body[12:20], int.from_bytes(body[20:], "big"))


_CLASSES: dict[bytes, type[Message]] = {
    cls.TYPE.value: cls
    for cls in (
        Hello,
        HelloAck,
        Commit,
        DHPart1,
        DHPart2,
        Confirm1,
        Confirm2,
        Conf2Ack,
        Error,
        ErrorAck,
        GoClear,
        ClearAck,
        SasRelay,
        RelayAck,
        Ping,
        PingAck,
    )
}


def parse_message(data: bytes) -> Message:
    """Parse one message (preamble, length word, type block, body) — RFC 6189 §5.1."""
    if len(data) < 12 or data[:2] != PREAMBLE:
        raise ZrtpParseError("missing ZRTP message preamble")
    if int.from_bytes(data[2:4], "big") * 4 != len(data):
        raise ZrtpParseError("ZRTP message length word does not match")
    cls = _CLASSES.get(bytes(data[4:12]))
    if cls is None:
        raise ZrtpParseError(f"unknown ZRTP message type {bytes(data[4:12])!r}")
    return cls.parse(bytes(data))
