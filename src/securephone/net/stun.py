"""STUN (RFC 8489) Binding, sans-I/O: the message codec, one client transaction, and keep-alives.

- ``StunMessage``: parse()/``__bytes__`` of the 20-byte header (§5) and the attributes the phone
  uses: XOR-MAPPED-ADDRESS (§14.2), MAPPED-ADDRESS (§14.1), ERROR-CODE (§14.8), SOFTWARE (§14.14),
  MESSAGE-INTEGRITY (§14.5, checked only) and FINGERPRINT (§14.7).
- ``BindingTransaction``: one Binding request over UDP with the §6.2.1 retransmission schedule
  (RTO doubling from ``rto``, ``rc`` sends, then ``rm``·RTO of waiting), driven by
  ``get_timer()`` / ``handle_timer(now)``; a response counts only from the server the request went
  to, with our transaction id and, when present, a valid FINGERPRINT (§6.3).
- ``StunAgent``: the transactions of one socket, plus RFC 5626 §4.4.2 keep-alives: a Binding
  request to a flow's server every ``interval``; a changed mapped address or no answer means the
  flow failed (the caller registers again, §4.5).

No socket and no clock here: datagrams in with their source, datagrams out with their
destination, ``now`` with every call.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
import struct
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from securephone.errors import StunError

log = logging.getLogger(__name__)

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E
HEADER = struct.Struct("!HHI12s")
BINDING = 0x001
Address = tuple[str, int]


class StunClass(IntEnum):
    """The two class bits of the message type (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class Attr(IntEnum):
    """Attribute types the phone writes or reads (RFC 8489 §18.3)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    XOR_MAPPED_ADDRESS = 0x0020
    SOFTWARE = 0x8022
    FINGERPRINT = 0x8028


def is_stun(data: bytes) -> bool:
    """A datagram that looks like STUN: top two bits zero and the magic cookie (§5, RFC 7983)."""
    return len(data) >= HEADER.size and data[0] < 4 and data[4:8] == MAGIC_COOKIE.to_bytes(4, "big")


def _encode_type(method: int, cls: StunClass) -> int:
    """Interleave the method and class bits into the 14-bit message type (§5, figure 3)."""
    c0, c1 = cls & 1, (cls >> 1) & 1
    return (method & 0xF) | (c0 << 4) | ((method & 0x70) << 1) | (c1 << 8) | ((method & 0xF80) << 2)


def _decode_type(value: int) -> tuple[int, StunClass]:
    method = (value & 0xF) | ((value >> 1) & 0x70) | ((value >> 2) & 0xF80)
    cls = ((value >> 4) & 1) | ((value >> 7) & 2)
    return method, StunClass(cls)


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


@dataclass(frozen=True)
class StunMessage:
    """One STUN message; ``raw`` keeps the bytes parsed so integrity and fingerprint can be checked."""

    method: int
    cls: StunClass
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...] = ()
    raw: bytes = field(default=b"", repr=False, compare=False)
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> StunMessage:
        """Parse one message (§5, §14); StunError when it is not well-formed STUN."""
        if not is_stun(data):
            raise StunError("not a STUN message (first bits or magic cookie)")
        kind, length, _, txid = HEADER.unpack_from(data)
        if length % 4 or HEADER.size + length != len(data):
            raise StunError(f"STUN length {length} does not match the datagram ({len(data)} bytes)")
        method, klass = _decode_type(kind)
        attributes, offsets = _parse_attributes(data)
        return cls(method, klass, txid, tuple(attributes), bytes(data), tuple(offsets))

    def __bytes__(self) -> bytes:
        """The message with its attributes in order (values padded to 32 bits with zeros)."""
        body = b"".join(
            struct.pack("!HH", kind, len(value)) + value + b"\x00" * _pad(len(value))
            for kind, value in self.attributes
        )
        kind = _encode_type(self.method, self.cls)
        return HEADER.pack(kind, len(body), MAGIC_COOKIE, self.transaction_id) + body

    def with_fingerprint(self) -> bytes:
        """The message with a FINGERPRINT attribute appended (§14.7)."""
        bare = bytes(self)
        length = len(bare) - HEADER.size + 8
        head = bare[:2] + struct.pack("!H", length) + bare[4:]
        crc = (binascii.crc32(head) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        return head + struct.pack("!HHI", Attr.FINGERPRINT, 4, crc)

    def attribute(self, kind: int) -> bytes | None:
        """The first attribute of ``kind`` (§14: later duplicates are ignored)."""
        return next((value for k, value in self.attributes if k == kind), None)

    def mapped_address(self) -> Address | None:
        """XOR-MAPPED-ADDRESS, else the old MAPPED-ADDRESS (§14.1, §14.2)."""
        value = self.attribute(Attr.XOR_MAPPED_ADDRESS)
        if value is not None:
            return decode_address(value, self.transaction_id, xor=True)
        value = self.attribute(Attr.MAPPED_ADDRESS)
        return None if value is None else decode_address(value, self.transaction_id, xor=False)

    def error(self) -> tuple[int, str] | None:
        """ERROR-CODE as (code, reason) (§14.8)."""
        value = self.attribute(Attr.ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise StunError("ERROR-CODE shorter than 4 bytes")
        code = (value[2] & 0x7) * 100 + value[3]
        return code, value[4:].decode("utf-8", errors="replace")

    def check_fingerprint(self) -> bool | None:
        """None without FINGERPRINT; else whether its CRC-32 matches (§14.7)."""
        at = self._offset_of(Attr.FINGERPRINT)
        if at is None:
            return None
        head = self._head_up_to(at, 8)
        expected = (binascii.crc32(head) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        return bool(struct.unpack_from("!I", self.raw, at + 4)[0] == expected)

    def check_integrity(self, key: bytes) -> bool | None:
        """None without MESSAGE-INTEGRITY; else whether its HMAC-SHA1 with ``key`` matches (§14.5)."""
        at = self._offset_of(Attr.MESSAGE_INTEGRITY)
        if at is None:
            return None
        head = self._head_up_to(at, 24)
        digest = hmac.new(key, head, hashlib.sha1).digest()
        return hmac.compare_digest(digest, self.raw[at + 4 : at + 24])

    def _offset_of(self, kind: int) -> int | None:
        return next(
            (o for (k, _), o in zip(self.attributes, self.offsets, strict=True) if k == kind), None
        )

    def _head_up_to(self, offset: int, attribute_size: int) -> bytes:
        """The bytes before the attribute at ``offset``, with the length covering that attribute."""
        length = offset - HEADER.size + attribute_size
        return self.raw[:2] + struct.pack("!H", length) + self.raw[4:offset]


def _parse_attributes(data: bytes) -> tuple[list[tuple[int, bytes]], list[int]]:
    attributes: list[tuple[int, bytes]] = []
    offsets: list[int] = []
    at = HEADER.size
    while at < len(data):
        if at + 4 > len(data):
            raise StunError("truncated STUN attribute header")
        kind, length = struct.unpack_from("!HH", data, at)
        end = at + 4 + length
        if end > len(data):
            raise StunError(f"STUN attribute 0x{kind:04x} runs past the message")
        attributes.append((kind, bytes(data[at + 4 : end])))
        offsets.append(at)
        at = end + _pad(length)
    return attributes, offsets


def encode_address(address: Address, transaction_id: bytes, *, xor: bool = True) -> bytes:
    """(X)OR-MAPPED-ADDRESS value for ``address`` (§14.1, §14.2)."""
    ip = ipaddress.ip_address(address[0].strip("[]"))
    family = 1 if ip.version == 4 else 2
    port, packed = address[1], ip.packed
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = MAGIC_COOKIE.to_bytes(4, "big") + transaction_id
        packed = bytes(a ^ b for a, b in zip(packed, mask, strict=False))
    return struct.pack("!BBH", 0, family, port) + packed


def decode_address(value: bytes, transaction_id: bytes, *, xor: bool) -> Address:
    """Read a (XOR-)MAPPED-ADDRESS value; StunError when malformed."""
    if len(value) < 4:
        raise StunError("address attribute shorter than 4 bytes")
    _, family, port = struct.unpack_from("!BBH", value)
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) != 4 + size:
        raise StunError(f"address attribute: family {family} with {len(value) - 4} address bytes")
    packed = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = MAGIC_COOKIE.to_bytes(4, "big") + transaction_id
        packed = bytes(a ^ b for a, b in zip(packed, mask, strict=False))
    return str(ipaddress.ip_address(packed)), port


def binding_request(
    transaction_id: bytes | None = None, software: str | None = None
) -> StunMessage:
    """A Binding request (§6.1) with a fresh 96-bit transaction id from ``secrets``."""
    attributes = () if software is None else ((int(Attr.SOFTWARE), software.encode()[:763]),)
    return StunMessage(
        BINDING, StunClass.REQUEST, transaction_id or secrets.token_bytes(12), attributes
    )


def binding_success(request: StunMessage, source: Address) -> bytes:
    """The success response a server gives ``request`` from ``source`` (§6.3.1), fingerprinted."""
    value = encode_address(source, request.transaction_id)
    attributes = ((int(Attr.XOR_MAPPED_ADDRESS), value),)
    return StunMessage(
        BINDING, StunClass.SUCCESS, request.transaction_id, attributes
    ).with_fingerprint()


# -- one client transaction ----------------------------------------------------------------------


class BindingOutcome(Enum):
    """How a Binding transaction ended."""

    MAPPED = "mapped"
    ERROR = "error"  # an error response (§6.3.4) or a success without an address
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class BindingResult:
    outcome: BindingOutcome
    server: Address
    mapped: Address | None = None
    reason: str = ""


@dataclass(frozen=True)
class RetransmitPolicy:
    """RFC 8489 §6.2.1: RTO, Rc and Rm (defaults 500 ms, 7, 16: 39.5 s in all)."""

    rto: float = 0.5
    rc: int = 7
    rm: int = 16


class BindingTransaction:
    """One Binding request to ``server`` and its answer (RFC 8489 §6.2.1, §6.3)."""

    def __init__(
        self,
        server: Address,
        now: float,
        policy: RetransmitPolicy | None = None,
        software: str | None = None,
    ) -> None:
        self.server = server
        self.policy = policy or RetransmitPolicy()
        self.message = binding_request(software=software)
        self.request = bytes(self.message.with_fingerprint())
        self.sent = 1
        self._rto = self.policy.rto
        self._next: float | None = now + self._rto
        self.result: BindingResult | None = None

    @property
    def transaction_id(self) -> bytes:
        return self.message.transaction_id

    def get_timer(self) -> float | None:
        return self._next

    def handle_timer(self, now: float) -> bytes | None:
        """The request to send again when due; after the last wait, the timeout result."""
        if self._next is None or now < self._next:
            return None
        if self.sent >= self.policy.rc:
            self._finish(
                BindingResult(BindingOutcome.TIMED_OUT, self.server, reason="no STUN response")
            )
            return None
        self.sent += 1
        self._rto *= 2
        last = self.sent == self.policy.rc
        self._next = now + (self.policy.rto * self.policy.rm if last else self._rto)
        return self.request

    def receive(self, message: StunMessage, source: Address) -> bool:
        """A response from ``source``: True when it answered this transaction."""
        if self.result is not None or message.transaction_id != self.transaction_id:
            return False
        if not _same_address(source, self.server) or message.cls < StunClass.SUCCESS:
            return False
        if message.check_fingerprint() is False:
            log.debug("STUN response from %s:%d with a bad FINGERPRINT ignored", *source)
            return False
        self._finish(self._judge(message))
        return True

    def _judge(self, message: StunMessage) -> BindingResult:
        if message.cls is StunClass.ERROR:
            code, reason = message.error() or (0, "error response without ERROR-CODE")
            return BindingResult(BindingOutcome.ERROR, self.server, reason=f"{code} {reason}")
        try:
            mapped = message.mapped_address()
        except StunError as exc:
            return BindingResult(BindingOutcome.ERROR, self.server, reason=str(exc))
        if mapped is None:
            return BindingResult(BindingOutcome.ERROR, self.server, reason="no mapped address")
        return BindingResult(BindingOutcome.MAPPED, self.server, mapped)

    def _finish(self, result: BindingResult) -> None:
        self.result = result
        self._next = None


def _same_address(a: Address, b: Address) -> bool:
    try:
        return (
            ipaddress.ip_address(a[0].strip("[]")) == ipaddress.ip_address(b[0].strip("[]"))
            and a[1] == b[1]
        )
    except ValueError:
        return a == b


# -- the transactions and keep-alives of one socket ----------------------------------------------


class FlowVerdict(Enum):
    """What a keep-alive found out about a flow (RFC 5626 §4.4.2)."""

    ALIVE = "alive"
    MAPPING_CHANGED = "mapping changed"
    FAILED = "failed"  # no answer, or an error response


@dataclass(frozen=True)
class StunEvent:
    """A finished Binding: a discovery (``key``) or a keep-alive of a flow, with its verdict."""

    key: str
    result: BindingResult
    verdict: FlowVerdict | None = None


@dataclass
class _Keepalive:
    server: Address
    interval: float
    due: float
    mapped: Address | None = None


class StunAgent:
    """Every STUN transaction of one UDP socket: discoveries and RFC 5626 §4.4.2 keep-alives."""

    def __init__(
        self,
        policy: RetransmitPolicy | None = None,
        software: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetransmitPolicy()
        self.rng = rng or random.Random()
        self.software = software
        self._pending: dict[bytes, tuple[str, BindingTransaction]] = {}
        self._keepalives: dict[str, _Keepalive] = {}
        self._out: list[tuple[bytes, Address]] = []
        self._events: list[StunEvent] = []
        self.mapped: dict[str, Address] = {}  # key -> the last address a server saw

    def discover(self, key: str, server: Address, now: float) -> None:
        """Send one Binding request to ``server``; its result comes as a StunEvent for ``key``."""
        tx = BindingTransaction(server, now, self.policy, self.software)
        self._pending[tx.transaction_id] = (key, tx)
        self._out.append((tx.request, server))

    def keep_alive(self, key: str, server: Address, interval: float, now: float) -> None:
        """Check flow ``key`` to ``server`` every 80–100 % of ``interval`` seconds (first one now)."""
        self._keepalives[key] = _Keepalive(server, interval, now)
        self.handle_timer(now)

    def keepalive_interval(self, key: str) -> float | None:
        """The interval flow ``key`` is kept alive by, None when it is not."""
        entry = self._keepalives.get(key)
        return None if entry is None else entry.interval

    @property
    def keeping(self) -> list[str]:
        """The flows kept alive."""
        return list(self._keepalives)

    def stop_keepalive(self, key: str) -> None:
        self._keepalives.pop(key, None)

    def receive(self, data: bytes, source: Address, now: float) -> bool:
        """A datagram from ``source``; True when it was STUN (answered one of ours or not)."""
        try:
            message = StunMessage.parse(data)
        except StunError:
            return False
        entry = self._pending.get(message.transaction_id)
        if entry is not None and entry[1].receive(message, source):
            del self._pending[message.transaction_id]
            self._done(entry[0], entry[1].result, now)
        return True

    def get_timer(self) -> float | None:
        times = [tx.get_timer() for _, tx in self._pending.values()]
        times += [k.due for k in self._keepalives.values()]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        for txid, (key, tx) in list(self._pending.items()):
            again = tx.handle_timer(now)
            if again is not None:
                self._out.append((again, tx.server))
            elif tx.result is not None:
                del self._pending[txid]
                self._done(key, tx.result, now)
        for key, keep in self._keepalives.items():
            if now >= keep.due and not self._in_flight(key):
                keep.due = now + keep.interval * self.rng.uniform(0.8, 1.0)  # RFC 5626 §4.4.1
                self.discover(key, keep.server, now)

    def _in_flight(self, key: str) -> bool:
        return any(k == key for k, _ in self._pending.values())

    def _done(self, key: str, result: BindingResult | None, now: float) -> None:
        assert result is not None
        verdict = None
        keep = self._keepalives.get(key)
        if keep is not None:
            verdict = self._verdict(keep, result)
        if result.mapped is not None:
            self.mapped[key] = result.mapped
        self._events.append(StunEvent(key, result, verdict))

    @staticmethod
    def _verdict(keep: _Keepalive, result: BindingResult) -> FlowVerdict:
        """RFC 5626 §4.4.2: a new mapped address, or none at all, means the flow is gone."""
        if result.mapped is None:
            return FlowVerdict.FAILED
        before, keep.mapped = keep.mapped, result.mapped
        if before is not None and before != result.mapped:
            return FlowVerdict.MAPPING_CHANGED
        return FlowVerdict.ALIVE

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> StunEvent | None:
        return self._events.pop(0) if self._events else None
