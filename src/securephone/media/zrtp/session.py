"""The ZRTP state machine, sans I/O (RFC 6189 §4, §5, §6; bzrtp 5.1.64 interop rules).

Datagrams in with their source and ``now``; datagrams out through
:meth:`ZrtpSession.datagrams_to_send`; one timer through :meth:`~ZrtpSession.get_timer` /
:meth:`~ZrtpSession.handle_timer`; events out through :meth:`~ZrtpSession.next_event`.

States (one table, :data:`TRANSITIONS`; every change goes through ``_set_state``)::

    IDLE ─start→ DISCOVERY ─(peer Hello + our Hello acked)→ COMMIT_SENT ─DHPart1→ DHPART2_SENT
      ─Confirm1→ CONFIRM2_SENT ─Conf2ACK→ SECURE                              (initiator)
    DISCOVERY/COMMIT_SENT ─peer Commit wins→ DHPART1_SENT ─DHPart2→ CONFIRM1_SENT
      ─Confirm2→ SECURE                                                      (responder)
    Preshared mode skips the DHPart messages (COMMIT_SENT ─Confirm1→ CONFIRM2_SENT,
    DISCOVERY ─Prsh Commit→ CONFIRM1_SENT). Any state ─fatal error→ FAILED.

Commit contention (§4.2) follows bzrtp: both DH with the same key agreement → the lower hvi
becomes responder; a different key agreement → we yield (bzrtp never does); DH beats Prsh;
two Prsh → the lower nonce yields. Timers (§6): Hello T1 50 ms doubling to 200 ms, 20
retransmissions (60 once the peer is known to speak ZRTP); Commit, DHPart2 and Confirm2 T2
150 ms doubling to 1.2 s, 10 retransmissions; the responder gives up after 10 s of silence;
the whole agreement after ``handshake_timeout``. Responders never retransmit on their own:
they answer repeated messages (§6). Sequence numbers start in [1, 4096], grow by one per
packet (retransmissions included) and received ones must grow strictly, as bzrtp requires.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from . import crypto
from .algorithms import (
    AlgorithmFamily,
    AlgorithmOffer,
    Algorithms,
    negotiate,
    unsupported_family,
)
from .cache import ZrtpCache
from .crypto import BadPublicValue, DerivedKeys, HashChain, KeyPair
from .events import (
    CacheUpdated,
    DropReason,
    Event,
    FailureReason,
    PacketDropped,
    ReceiveKeyReady,
    Role,
    SecureOn,
    ZrtpFailed,
)
from .messages import (
    ClearAck,
    Commit,
    CommitMode,
    Conf2Ack,
    Confirm,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    DHPart,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    parse_message,
)
from .packet import ZrtpPacket, ZrtpParseError

__all__ = ["TRANSITIONS", "State", "Trigger", "ZrtpConfig", "ZrtpSession", "ZrtpUsageError"]

log = logging.getLogger(__name__)

VERSION = "1.10"
# PingACKs a session sends at most (RFC 6189 §5.16): a Ping may come from anyone who can reach
# the media port, and each answer takes one of our 16-bit sequence numbers, which must never
# wrap; an endpoint checking that we are alive needs a handful per call
MAX_PING_ACKS = 64
Address = Any  # whatever the shell uses for a datagram source; kept for diagnostics only


class ZrtpUsageError(RuntimeError):
    """The session was driven wrongly by the code using it (not a peer problem)."""


class State(Enum):
    """Protocol states (RFC 6189 §4, brief §5.2)."""

    IDLE = "idle"
    DISCOVERY = "discovery"
    COMMIT_SENT = "commit-sent"
    DHPART2_SENT = "dhpart2-sent"
    CONFIRM2_SENT = "confirm2-sent"
    DHPART1_SENT = "dhpart1-sent"
    CONFIRM1_SENT = "confirm1-sent"
    SECURE = "secure"
    FAILED = "failed"


class Trigger(Enum):
    """What moves the machine."""

    START = "start"
    SEND_COMMIT = "send-commit"
    RESPOND_DH = "respond-dh"
    RESPOND_PRESHARED = "respond-preshared"
    DHPART1_OK = "dhpart1-ok"
    CONFIRM1_OK = "confirm1-ok"
    CONF2ACK_OK = "conf2ack-ok"
    DHPART2_OK = "dhpart2-ok"
    CONFIRM2_OK = "confirm2-ok"
    FAIL = "fail"


S, T = State, Trigger
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (S.IDLE, T.START): S.DISCOVERY,
    (S.DISCOVERY, T.SEND_COMMIT): S.COMMIT_SENT,
    (S.DISCOVERY, T.RESPOND_DH): S.DHPART1_SENT,
    (S.COMMIT_SENT, T.RESPOND_DH): S.DHPART1_SENT,
    (S.DISCOVERY, T.RESPOND_PRESHARED): S.CONFIRM1_SENT,
    (S.COMMIT_SENT, T.RESPOND_PRESHARED): S.CONFIRM1_SENT,
    (S.COMMIT_SENT, T.DHPART1_OK): S.DHPART2_SENT,
    (S.DHPART2_SENT, T.CONFIRM1_OK): S.CONFIRM2_SENT,
    (S.COMMIT_SENT, T.CONFIRM1_OK): S.CONFIRM2_SENT,  # Preshared mode
    (S.CONFIRM2_SENT, T.CONF2ACK_OK): S.SECURE,
    (S.DHPART1_SENT, T.DHPART2_OK): S.CONFIRM1_SENT,
    (S.CONFIRM1_SENT, T.CONFIRM2_OK): S.SECURE,
    **{(state, T.FAIL): S.FAILED for state in State if state is not S.FAILED},
}


@dataclass(frozen=True)
class ZrtpConfig:
    """What we offer and how patient we are (RFC 6189 §5.2, §6)."""

    offer: AlgorithmOffer = field(default_factory=AlgorithmOffer)
    client_id: bytes = b"securephone"
    passive: bool = False  # never send Commit (RFC 6189 §5.2 P flag; a test knob)
    preshared: bool = False  # use Preshared mode when the peer lists Prsh and we hold rs1
    cache_expiration: int = 0xFFFFFFFF
    t1_initial: float = 0.05
    t1_cap: float = 0.2
    hello_retries: int = 20
    hello_retries_known_peer: int = 60  # ≥ 12 s once the peer is known to speak ZRTP
    t2_initial: float = 0.15
    t2_cap: float = 1.2
    t2_retries: int = 10
    responder_timeout: float = 10.0
    handshake_timeout: float = 30.0


@dataclass
class _Retransmit:
    """One message on a retransmission timer (T1 or T2, RFC 6189 §6)."""

    message: bytes
    deadline: float
    interval: float
    cap: float
    remaining: int


@dataclass
class _Peer:
    """What we learned from the peer's messages (raw bytes kept for hashing and MACs)."""

    hello: Hello | None = None
    hello_raw: bytes = b""
    ssrc: int | None = None
    address: Address = None
    commit: Commit | None = None
    commit_raw: bytes = b""
    dhpart: DHPart | None = None
    dhpart_raw: bytes = b""
    confirm_raw: bytes = b""
    verified_flag: bool = False
    last_sequence: int = 0


class ZrtpSession:
    """One ZRTP stream (RFC 6189), both roles, DH and Preshared modes."""

    def __init__(
        self,
        config: ZrtpConfig,
        cache: ZrtpCache,
        ssrc: int,
        *,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        peer_hello_hash: str | None = None,
    ) -> None:
        self.config, self.cache, self.ssrc, self._rng = config, cache, ssrc, rng
        self.state = State.IDLE
        self.role: Role | None = None
        self.algorithms: Algorithms | None = None
        self.sas: str | None = None
        self.cache_mismatch = False
        self._chain = HashChain(rng(32))
        self._sequence = 1 + int.from_bytes(rng(2), "big") % 0x1000
        self._hello_raw = bytes(self._build_hello())
        self._peer_hello_hash = peer_hello_hash.lower() if peer_hello_hash else None
        self._peer = _Peer()
        self._hello_acked = False
        self._dropped_hello_for_hash = False
        self._key_pair: KeyPair | None = None
        self._commit_raw = b""
        self._dhpart_raw = b""
        self._confirm_raw = b""
        self._keys: DerivedKeys | None = None
        self._pending_rs1: bytes | None = None
        self._timers: dict[str, _Retransmit] = {}
        self._deadlines: dict[str, float] = {}
        self._outbox: list[bytes] = []
        self.pings_ignored = 0  # Pings past MAX_PING_ACKS: counted, not answered
        self._ping_acks = 0
        self._events: deque[Event] = deque()
        self._last_now = 0.0
        self._current_ssrc: int | None = None

    # -- public API ---------------------------------------------------------------------------
    @property
    def local_hello_hash(self) -> str:
        """SHA-256 of our Hello message, lowercase hex, for ``a=zrtp-hash`` (RFC 6189 §8.1)."""
        return crypto.sha256(self._hello_raw).hex()

    @property
    def sdp_zrtp_hash(self) -> str:
        """The ``a=zrtp-hash`` value: ``1.10 <hex>`` (RFC 6189 §8.1)."""
        return f"{VERSION} {self.local_hello_hash}"

    @property
    def peer_zid(self) -> bytes | None:
        """The peer's ZID once its Hello was accepted."""
        return self._peer.hello.zid if self._peer.hello else None

    def start(self, now: float) -> None:
        """Send the first Hello and arm T1 and the overall deadline (RFC 6189 §4.1, §6)."""
        self._set_state(Trigger.START)
        retries = self.config.hello_retries
        if self._peer_hello_hash is not None:
            retries = self.config.hello_retries_known_peer
        self._arm(
            "hello", self._hello_raw, now, self.config.t1_initial, self.config.t1_cap, retries
        )
        self._deadlines["handshake"] = now + self.config.handshake_timeout

    def set_peer_hello_hash(self, value: str) -> None:
        """The peer's ``a=zrtp-hash`` (hex, or ``1.10 <hex>``) arrived in SDP (RFC 6189 §8.1).

        A Hello already received that does not match is forgotten and a matching one awaited
        (bzrtp's behaviour); after the Commit exchange began, a mismatch aborts.
        """
        self._peer_hello_hash = value.split()[-1].lower()
        hello = self._peer.hello
        if hello is None or crypto.sha256(self._peer.hello_raw).hex() == self._peer_hello_hash:
            self._extend_hello_retries()
            return
        if self.state is State.DISCOVERY:
            self._peer = _Peer(last_sequence=self._peer.last_sequence)
            self._drop(DropReason.HELLO_HASH_MISMATCH, "stored Hello does not match a=zrtp-hash")
            self._dropped_hello_for_hash = True
        elif self.state not in (State.IDLE, State.FAILED):
            self._fail(FailureReason.HELLO_HASH_MISMATCH, "peer Hello does not match a=zrtp-hash")

    def receive(self, datagram: bytes, source: Address, now: float) -> None:
        """One datagram the demultiplexer classified as ZRTP (RFC 6189 §5, RFC 7983)."""
        try:
            packet = ZrtpPacket.parse(datagram)
            message = parse_message(packet.message)
        except ZrtpParseError as exc:
            self._drop(DropReason.MALFORMED, str(exc))
            return
        if isinstance(message, Ping):  # answered in any state (RFC 6189 §5.15)
            self._answer_ping(message, packet.ssrc)
            return
        if not self._accept_header(packet):
            return
        if self.state is State.IDLE:
            self._drop(DropReason.UNEXPECTED, "session not started")
            return
        if self._peer.hello is None and not isinstance(message, Hello):
            # only the peer's Hello (checked against a=zrtp-hash) binds us to a peer: before
            # it, nobody's Error, Commit or sequence number may change anything
            self._drop(DropReason.UNEXPECTED, f"{type(message).__name__} before the peer's Hello")
            return
        previous = self._peer.last_sequence
        self._peer.last_sequence = packet.sequence
        self._current_ssrc = packet.ssrc
        if "responder" in self._deadlines:
            self._deadlines["responder"] = now + self.config.responder_timeout
        self._dispatch(message, packet.message, source, now)
        if self._peer.hello is None:  # a Hello we did not take moves no sequence number
            self._peer.last_sequence = previous

    def datagrams_to_send(self) -> list[bytes]:
        """ZRTP packets to send to the peer's media address, in order."""
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """The next deadline (monotonic seconds) at which :meth:`handle_timer` must run."""
        times = [t.deadline for t in self._timers.values()] + list(self._deadlines.values())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due (RFC 6189 §6) and fail what timed out."""
        for name, deadline in list(self._deadlines.items()):
            if now >= deadline and name in self._deadlines:
                self._timeout(name)
        for name, timer in list(self._timers.items()):
            if now >= timer.deadline and self._timers.get(name) is timer:
                self._retransmit(name, timer, now)

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def sas_verified(self, verified: bool) -> None:
        """The user compared the SAS (RFC 6189 §7.1): store the V flag; after a cache
        mismatch, a confirmation also performs the postponed cache update (§4.6.1.1)."""
        zid = self.peer_zid
        if zid is None or self.state is not State.SECURE:
            raise ZrtpUsageError("the SAS can only be confirmed on a secured session")
        record = self.cache.record(zid)
        record.verified = verified
        if verified and self._pending_rs1 is not None:
            record.rs2, record.rs1 = record.rs1, self._pending_rs1
            self._pending_rs1 = None
        self._events.append(CacheUpdated(zid))

    def srtp_authenticated(self) -> None:
        """An SRTP packet authenticated with the peer's key: as good as Conf2ACK (§4.6)."""
        if self.state is State.CONFIRM2_SENT:
            self._finish(Trigger.CONF2ACK_OK)

    # -- state --------------------------------------------------------------------------------
    def _set_state(self, trigger: Trigger) -> None:
        new = TRANSITIONS.get((self.state, trigger))
        if new is None:
            raise ZrtpUsageError(f"no transition from {self.state.value} on {trigger.value}")
        log.debug("ZRTP %s -> %s (%s)", self.state.value, new.value, trigger.value)
        self.state = new

    def _fail(self, reason: FailureReason, text: str, code: int | None = None) -> None:
        """Abort (RFC 6189 §5.9): send Error (retransmitted on T2 until ErrorACK) if coded."""
        if self.state is State.FAILED:
            return
        self._set_state(Trigger.FAIL)
        self._timers.clear()
        self._deadlines.clear()
        log.warning("ZRTP failed: %s (%s)", reason.value, text)
        self._events.append(ZrtpFailed(reason, text, code))
        if code is not None:
            raw = bytes(Error(code))
            self._arm("error", raw, self._last_now, self.config.t2_initial, self.config.t2_cap)

    def _drop(self, reason: DropReason, detail: str) -> None:
        # anyone can send such packets to the media port: counted (the summary's "dropped"),
        # logged only at debug level
        log.debug("ZRTP packet dropped: %s (%s)", reason.value, detail)
        self._events.append(PacketDropped(reason, detail))

    # -- sending and timers -------------------------------------------------------------------
    def _send(self, message: bytes) -> None:
        if self._sequence > 0xFFFF:  # never wrap: bzrtp requires strictly growing numbers
            self._fail(FailureReason.SEQUENCE_EXHAUSTED, "ZRTP sequence numbers used up")
            return
        self._outbox.append(bytes(ZrtpPacket(self._sequence, self.ssrc, message)))
        self._sequence += 1

    def _arm(
        self,
        name: str,
        message: bytes,
        now: float,
        initial: float,
        cap: float,
        retries: int | None = None,
    ) -> None:
        self._last_now = now
        remaining = self.config.t2_retries if retries is None else retries
        self._timers[name] = _Retransmit(message, now + initial, initial, cap, remaining)
        self._send(message)

    def _retransmit(self, name: str, timer: _Retransmit, now: float) -> None:
        self._last_now = now
        if timer.remaining <= 0:
            del self._timers[name]
            self._retransmissions_exhausted(name)
            return
        timer.remaining -= 1
        timer.interval = min(timer.interval * 2, timer.cap)
        timer.deadline = now + timer.interval
        self._send(timer.message)

    def _retransmissions_exhausted(self, name: str) -> None:
        if name == "error":
            return
        if name == "hello" and self._hello_acked:
            return
        reason = FailureReason.TIMEOUT
        if name == "hello" and self._dropped_hello_for_hash:
            reason = FailureReason.HELLO_HASH_MISMATCH
        self._fail(reason, f"no answer to {name} after its retransmissions (RFC 6189 §6)")

    def _timeout(self, name: str) -> None:
        del self._deadlines[name]
        reason = FailureReason.TIMEOUT
        if self._dropped_hello_for_hash and self._peer.hello is None:
            reason = FailureReason.HELLO_HASH_MISMATCH
        code = 0xB0 if name == "responder" else None
        self._fail(reason, f"{name} timeout: the peer stopped answering", code)

    def _extend_hello_retries(self) -> None:
        timer = self._timers.get("hello")
        if timer is not None and not self._hello_acked:
            extra = self.config.hello_retries_known_peer - self.config.hello_retries
            timer.remaining = max(timer.remaining, extra)

    # -- receiving ----------------------------------------------------------------------------
    def _accept_header(self, packet: ZrtpPacket) -> bool:
        """SSRC binding (brief pitfall 7) and strictly growing sequence numbers (bzrtp)."""
        if self._peer.ssrc is not None and packet.ssrc != self._peer.ssrc:
            self._drop(DropReason.WRONG_SSRC, f"SSRC {packet.ssrc:#010x} is not the peer's")
            return False
        if packet.sequence <= self._peer.last_sequence:
            self._drop(DropReason.REPLAYED, f"sequence {packet.sequence} not above the last")
            return False
        return True

    def _dispatch(self, message: Message, raw: bytes, source: Address, now: float) -> None:
        self._last_now = now
        if self.state is State.FAILED:
            if isinstance(message, ErrorAck):
                self._timers.pop("error", None)
            return
        handler = _HANDLERS.get(type(message))
        if handler is None:
            self._drop(DropReason.UNEXPECTED, f"{type(message).__name__} ignored")
            return
        handler(self, message, raw, source, now)

    def _on_hello(self, hello: Hello, raw: bytes, source: Address, now: float) -> None:
        """RFC 6189 §4.1: store the first valid Hello, answer every one with HelloACK."""
        if self.state is State.SECURE:
            return
        if self._peer.hello is not None:
            if raw != self._peer.hello_raw:
                self._drop(DropReason.CHANGED_HELLO, "repeated Hello differs from the first")
                return
            self._send(bytes(HelloAck()))
            return
        if not hello.version.startswith("1.1"):
            self._drop(DropReason.UNSUPPORTED_VERSION, f"version {hello.version!r}")
            return
        if self._peer_hello_hash and crypto.sha256(raw).hex() != self._peer_hello_hash:
            self._dropped_hello_for_hash = True
            self._drop(DropReason.HELLO_HASH_MISMATCH, "Hello does not match a=zrtp-hash")
            return
        if hello.zid == self.cache.zid:
            self._fail(FailureReason.EQUAL_ZID, "peer uses our own ZID", 0x90)
            return
        self._peer.hello, self._peer.hello_raw = hello, raw
        self._peer.ssrc = self._current_ssrc
        self._peer.address = source
        self._extend_hello_retries()
        self._send(bytes(HelloAck()))
        self._maybe_commit(now)

    def _on_hello_ack(self, _msg: Message, _raw: bytes, _src: Address, now: float) -> None:
        """RFC 6189 §5.3: our Hello arrived; stop T1."""
        if self.state is State.DISCOVERY and not self._hello_acked:
            self._hello_acked = True
            self._timers.pop("hello", None)
            self._maybe_commit(now)

    def _maybe_commit(self, now: float) -> None:
        """Send Commit once we hold the peer's Hello and ours was acknowledged (§4.1)."""
        hello = self._peer.hello
        if self.state is not State.DISCOVERY or hello is None or not self._hello_acked:
            return
        if self.config.passive:
            return
        self.algorithms = negotiate(self.config.offer, _hello_lists(hello))
        if self._use_preshared(hello):
            commit = self._preshared_commit(self.algorithms)
        else:
            commit = self._dh_commit(self.algorithms, hello)
        self._commit_raw = bytes(commit)
        self._set_state(Trigger.SEND_COMMIT)
        self._arm("t2", self._commit_raw, now, self.config.t2_initial, self.config.t2_cap)

    def _use_preshared(self, hello: Hello) -> bool:
        record = self.cache.peers.get(hello.zid)
        has_rs1 = record is not None and record.rs1 is not None
        return self.config.preshared and has_rs1 and "Prsh" in hello.key_agreements

    def _dh_commit(self, algorithms: Algorithms, hello: Hello) -> Commit:
        """DH-mode Commit: hvi = hash(DHPart2 ‖ responder Hello) (RFC 6189 §4.4.1.1)."""
        self._key_pair = crypto.generate_key_pair(algorithms.key_agreement)
        self._dhpart_raw = self._build_dhpart(DHPart2, algorithms.hash, b"Initiator")
        hvi = self._hash(algorithms.hash, self._dhpart_raw + self._peer.hello_raw)[:32]
        return self._mac_commit(
            Commit(self._chain.h2, self.cache.zid, *_names(algorithms), hvi=hvi)
        )

    def _preshared_commit(self, algorithms: Algorithms) -> Commit:
        """Preshared-mode Commit: nonce and keyID = MAC(preshared_key, "Prsh") (§4.4.2)."""
        chosen = Algorithms(
            algorithms.hash, algorithms.cipher, algorithms.auth_tag, "Prsh", algorithms.sas_type
        )
        self.algorithms = chosen
        psk = self._preshared_key(chosen.hash)
        key_id = crypto.hmac_full(chosen.hash, psk, b"Prsh")[:8]
        commit = Commit(self._chain.h2, self.cache.zid, *_names(chosen), nonce=self._rng(16))
        return self._mac_commit(replace(commit, key_id=key_id))

    def _mac_commit(self, commit: Commit) -> Commit:
        mac = crypto.chain_mac(self._chain.h1, bytes(commit)[:-8])
        return replace(commit, mac=mac)

    # -- Commit and contention ----------------------------------------------------------------
    def _on_commit(self, commit: Commit, raw: bytes, _src: Address, now: float) -> None:
        """RFC 6189 §4.2, §5.4: answer a Commit, or resolve contention."""
        if self.state in (State.DHPART1_SENT, State.CONFIRM1_SENT):
            if raw == self._peer.commit_raw:  # repeated: answer again (§6)
                self._send(
                    self._dhpart_raw if self.state is State.DHPART1_SENT else self._confirm_raw
                )
            return
        if self.state not in (State.DISCOVERY, State.COMMIT_SENT):
            return
        if not self._commit_chain_ok(commit, raw):
            return
        self._hello_acked = True  # a Commit also acknowledges our Hello (§5.3)
        self._timers.pop("hello", None)
        chosen = Algorithms(
            commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas_type
        )
        family = unsupported_family(self.config.offer, chosen)
        if family is not None or commit.mode is CommitMode.MULTISTREAM:
            code = family.value if family else AlgorithmFamily.KEY_AGREEMENT.value
            self._fail(FailureReason.UNSUPPORTED_ALGORITHM, f"Commit names {_names(chosen)}", code)
            return
        if self.state is State.COMMIT_SENT and not self._yield_to(commit):
            return
        self._timers.pop("t2", None)
        self.role, self.algorithms = Role.RESPONDER, chosen
        self._peer.commit, self._peer.commit_raw = commit, raw
        self._deadlines["responder"] = now + self.config.responder_timeout
        if commit.mode is CommitMode.PRESHARED:
            self._respond_preshared(commit)
        else:
            self._respond_dh(commit)

    def _commit_chain_ok(self, commit: Commit, raw: bytes) -> bool:
        """H2 hashes to the peer Hello's H3 and keys the Hello MAC (§9)."""
        hello = self._peer.hello
        if hello is None or commit.zid != hello.zid:
            self._drop(DropReason.UNEXPECTED, "Commit without a matching peer Hello")
            return False
        return self._check_preimage(commit.h2, hello.h3, self._peer.hello_raw, hello.mac)

    def _check_preimage(self, key: bytes, image: bytes, signed: bytes, mac: bytes) -> bool:
        if crypto.sha256(key) != image:
            self._drop(DropReason.HASH_CHAIN, "hash image does not match the earlier message")
            return False
        if crypto.chain_mac(key, signed[:-8]) != mac:
            self._drop(DropReason.BAD_MAC, "MAC of the earlier message does not verify")
            return False
        return True

    def _yield_to(self, theirs: Commit) -> bool:
        """Commit contention (RFC 6189 §4.2 with bzrtp's rules): True if we become responder."""
        ours = Commit.parse(self._commit_raw)
        assert isinstance(ours, Commit)
        dh, prsh = CommitMode.DH, CommitMode.PRESHARED
        if ours.mode is dh and theirs.mode is dh:
            if ours.key_agreement != theirs.key_agreement:
                return True  # bzrtp keeps its own Commit: yield to avoid a deadlock
            return ours.hvi < theirs.hvi
        if ours.mode is prsh and theirs.mode is prsh:
            return ours.nonce < theirs.nonce
        return ours.mode is prsh  # DH beats Preshared

    def _respond_dh(self, commit: Commit) -> None:
        """Send DHPart1 with the committed key agreement (reuse our pair if the same type)."""
        if self._key_pair is None or self._key_pair.name != commit.key_agreement:
            self._key_pair = crypto.generate_key_pair(commit.key_agreement)
        self._dhpart_raw = self._build_dhpart(DHPart1, commit.hash, b"Responder")
        self._set_state(Trigger.RESPOND_DH)
        self._send(self._dhpart_raw)

    def _respond_preshared(self, commit: Commit) -> None:
        """Preshared mode (RFC 6189 §4.4.2): check keyID, derive s0, send Confirm1."""
        record = self.cache.peers.get(commit.zid)
        psk = self._preshared_key(commit.hash) if record and record.rs1 else None
        if psk is None or crypto.hmac_full(commit.hash, psk, b"Prsh")[:8] != commit.key_id:
            self._fail(FailureReason.NO_SHARED_SECRET, "no matching preshared secret", 0x56)
            return
        self._derive_preshared(psk)
        self._confirm_raw = self._build_confirm(Confirm1)
        self._set_state(Trigger.RESPOND_PRESHARED)
        self._send(self._confirm_raw)

    # -- DHPart -------------------------------------------------------------------------------
    def _on_dhpart1(self, part: DHPart1, raw: bytes, _src: Address, now: float) -> None:
        """Initiator: check H1 against the responder's Hello, agree, send DHPart2 (§4.4.1)."""
        if self.state is not State.COMMIT_SENT or self._key_pair is None:
            if raw != self._peer.dhpart_raw:
                self._drop(DropReason.UNEXPECTED, f"DHPart1 in state {self.state.value}")
            return
        hello = self._peer.hello
        assert hello is not None
        if not self._check_preimage(
            crypto.sha256(part.h1), hello.h3, self._peer.hello_raw, hello.mac
        ):
            return
        self._peer.dhpart, self._peer.dhpart_raw = part, raw
        self.role = Role.INITIATOR
        responder_hello = self._peer.hello_raw
        if not self._derive_dh(part, responder_hello, raw, self._dhpart_raw, initiator=True):
            return
        self._timers.pop("t2", None)
        self._set_state(Trigger.DHPART1_OK)
        self._arm("t2", self._dhpart_raw, now, self.config.t2_initial, self.config.t2_cap)

    def _on_dhpart2(self, part: DHPart2, raw: bytes, _src: Address, _now: float) -> None:
        """Responder: check H1 against the Commit, hvi, agree, send Confirm1 (§4.4.1)."""
        if self.state is State.CONFIRM1_SENT and raw == self._peer.dhpart_raw:
            self._send(self._confirm_raw)
            return
        commit = self._peer.commit
        if self.state is not State.DHPART1_SENT or commit is None:
            self._drop(DropReason.UNEXPECTED, f"DHPart2 in state {self.state.value}")
            return
        if not self._check_preimage(part.h1, commit.h2, self._peer.commit_raw, commit.mac):
            return
        if self._hash(commit.hash, raw + self._hello_raw)[:32] != commit.hvi:
            self._fail(FailureReason.HVI_MISMATCH, "hvi does not match DHPart2 (MiTM?)", 0x62)
            return
        self._peer.dhpart, self._peer.dhpart_raw = part, raw
        if not self._derive_dh(part, self._hello_raw, self._dhpart_raw, raw, initiator=False):
            return
        self._confirm_raw = self._build_confirm(Confirm1)
        self._set_state(Trigger.DHPART2_OK)
        self._send(self._confirm_raw)

    def _derive_dh(
        self, part: DHPart, hello_r: bytes, dhpart1: bytes, dhpart2: bytes, *, initiator: bool
    ) -> bool:
        """DHResult, shared-secret matching, total_hash, s0 and the keys (§4.4.1.4, §4.5)."""
        assert self._key_pair is not None and self.algorithms is not None
        try:
            dh_result = self._key_pair.agree(part.pv)
        except BadPublicValue as exc:
            self._fail(FailureReason.BAD_PUBLIC_VALUE, str(exc), 0x61)
            return False
        hash_name = self.algorithms.hash
        commit = self._commit_raw if initiator else self._peer.commit_raw
        total_hash = self._hash(hash_name, hello_r + commit + dhpart1 + dhpart2)
        s1 = self._match_secret(hash_name, part, initiator)
        zid_i, zid_r = self._zids(initiator)
        s0 = crypto.s0_dh(hash_name, dh_result, zid_i, zid_r, total_hash, (s1, None, None))
        self._keys = crypto.derive_keys(
            hash_name, self.algorithms.cipher, s0, zid_i + zid_r + total_hash
        )
        return True

    def _match_secret(self, hash_name: str, part: DHPart, initiator: bool) -> bytes | None:
        record = self.cache.peers.get(part_zid := self._require_peer_zid())
        own = (record.rs1, record.rs2) if record else (None, None)
        s1 = crypto.match_shared_secret(hash_name, own, (part.rs1_id, part.rs2_id), initiator)
        self.cache_mismatch = record is not None and record.rs1 is not None and s1 is None
        if self.cache_mismatch:
            log.warning("ZRTP cache mismatch for peer ZID %s: compare the SAS", part_zid.hex())
        return s1

    def _derive_preshared(self, psk: bytes) -> None:
        """s0 = KDF(preshared_key, "ZRTP PSK", ZIDi ‖ ZIDr ‖ hash(Hello_r ‖ Commit)) — §4.4.2."""
        assert self.algorithms is not None
        initiator = self.role is Role.INITIATOR
        hello_r = self._peer.hello_raw if initiator else self._hello_raw
        commit = self._commit_raw if initiator else self._peer.commit_raw
        total_hash = self._hash(self.algorithms.hash, hello_r + commit)
        zid_i, zid_r = self._zids(initiator)
        context = zid_i + zid_r + total_hash
        s0 = crypto.s0_preshared(self.algorithms.hash, psk, context)
        self._keys = crypto.derive_keys(self.algorithms.hash, self.algorithms.cipher, s0, context)

    # -- Confirm ------------------------------------------------------------------------------
    def _on_confirm1(self, confirm: Confirm1, raw: bytes, _src: Address, now: float) -> None:
        """Initiator: verify Confirm1, install receive keys, send Confirm2 (§4.6, §5.7)."""
        if self.state is State.CONFIRM2_SENT and raw == self._peer.confirm_raw:
            return
        preshared = self.state is State.COMMIT_SENT and self._is_preshared_initiator()
        if self.state is not State.DHPART2_SENT and not preshared:
            self._drop(DropReason.UNEXPECTED, f"Confirm1 in state {self.state.value}")
            return
        if preshared:
            self.role = Role.INITIATOR
            self._derive_preshared(self._preshared_key(self._alg().hash))
        keys = self._require_keys()
        plain = self._open_confirm(confirm, keys.mackey_r, keys.zrtpkey_r)
        if plain is None or not self._confirm_chain_ok(plain.h0, initiator=True):
            return
        self._peer.confirm_raw, self._peer.verified_flag = raw, plain.verified
        self._timers.pop("t2", None)
        self._events.append(ReceiveKeyReady(self._alg().srtp_suite, self._remote_key()))
        self._set_state(Trigger.CONFIRM1_OK)
        self._arm(
            "t2", self._build_confirm(Confirm2), now, self.config.t2_initial, self.config.t2_cap
        )

    def _on_confirm2(self, confirm: Confirm2, raw: bytes, _src: Address, _now: float) -> None:
        """Responder: verify Confirm2, send Conf2ACK, go secure (§4.6, §5.7, §5.8)."""
        if self.state is State.SECURE and raw == self._peer.confirm_raw:
            self._send(bytes(Conf2Ack()))  # bzrtp waits for Conf2ACK: answer every Confirm2
            return
        if self.state is not State.CONFIRM1_SENT:
            self._drop(DropReason.UNEXPECTED, f"Confirm2 in state {self.state.value}")
            return
        keys = self._require_keys()
        plain = self._open_confirm(confirm, keys.mackey_i, keys.zrtpkey_i)
        if plain is None or not self._confirm_chain_ok(plain.h0, initiator=False):
            return
        self._peer.confirm_raw, self._peer.verified_flag = raw, plain.verified
        self._events.append(ReceiveKeyReady(self._alg().srtp_suite, self._remote_key()))
        self._send(bytes(Conf2Ack()))
        self._finish(Trigger.CONFIRM2_OK)

    def _on_conf2ack(self, _msg: Message, _raw: bytes, _src: Address, _now: float) -> None:
        """Initiator: Conf2ACK ends the exchange (§5.8)."""
        if self.state is State.CONFIRM2_SENT:
            self._finish(Trigger.CONF2ACK_OK)

    def _open_confirm(
        self, confirm: Confirm, mackey: bytes, zrtpkey: bytes
    ) -> ConfirmPlaintext | None:
        """confirm_mac = HMAC(mackey, encrypted part), then AES-CFB decryption (§5.7)."""
        hash_name = self._alg().hash
        if crypto.hmac_full(hash_name, mackey, confirm.encrypted)[:8] != confirm.confirm_mac:
            self._drop(DropReason.BAD_CONFIRM, "confirm_mac does not verify")
            return None
        try:
            return ConfirmPlaintext.parse(
                crypto.confirm_decrypt(zrtpkey, confirm.iv, confirm.encrypted)
            )
        except ZrtpParseError as exc:
            self._drop(DropReason.BAD_CONFIRM, str(exc))
            return None

    def _confirm_chain_ok(self, h0: bytes, *, initiator: bool) -> bool:
        """H0 closes the chain: DHPart MAC (DH) or Commit/Hello MAC (Preshared) — §9."""
        part = self._peer.dhpart
        if part is not None:
            return self._check_preimage(h0, part.h1, self._peer.dhpart_raw, part.mac)
        h1 = crypto.sha256(h0)
        if initiator:
            hello = self._peer.hello
            assert hello is not None
            return self._check_preimage(
                crypto.sha256(h1), hello.h3, self._peer.hello_raw, hello.mac
            )
        commit = self._peer.commit
        assert commit is not None
        return self._check_preimage(h1, commit.h2, self._peer.commit_raw, commit.mac)

    def _finish(self, trigger: Trigger) -> None:
        """SECURE: update the cache (§4.6.1) and report keys and SAS."""
        self._set_state(trigger)
        self._timers.clear()
        self._deadlines.clear()
        keys, alg, zid = self._require_keys(), self._alg(), self._require_peer_zid()
        record = self.cache.peers.get(zid)
        previously = bool(record and record.verified) and self._peer.verified_flag
        self._update_cache(zid, keys.retained_secret)
        self.sas = crypto.render_sas(alg.sas_type, keys.sas_value)
        assert self.role is not None
        self._events.append(
            SecureOn(
                role=self.role,
                sas=self.sas,
                sas_type=alg.sas_type,
                algorithms=alg,
                peer_zid=zid,
                srtp_suite=alg.srtp_suite,
                local_key=self._local_key(),
                remote_key=self._remote_key(),
                previously_verified=previously and not self.cache_mismatch,
                peer_verified_flag=self._peer.verified_flag,
                cache_mismatch=self.cache_mismatch,
                rtcp_tag_caveat=alg.auth_tag == "HS32",
            )
        )

    def _update_cache(self, zid: bytes, new_rs1: bytes) -> None:
        """rs2 := rs1, rs1 := new — postponed after a mismatch until the SAS is confirmed
        (RFC 6189 §4.6.1, §4.6.1.1); the stored V flag is cleared on a mismatch, like bzrtp."""
        record = self.cache.record(zid)
        if self.cache_mismatch:
            self._pending_rs1 = new_rs1
            record.verified = False
        else:
            record.rs2, record.rs1 = record.rs1, new_rs1
        self._events.append(CacheUpdated(zid))

    # -- other messages -----------------------------------------------------------------------
    def _on_error(self, error: Error, _raw: bytes, _src: Address, _now: float) -> None:
        """RFC 6189 §5.9: acknowledge and stop (an Error after SECURE is only acknowledged)."""
        self._send(bytes(ErrorAck()))
        if self.state is not State.SECURE:
            self._fail(FailureReason.PEER_ERROR, f"peer sent Error {error.code:#x}")

    def _on_ignored_ack(self, msg: Message, _raw: bytes, _src: Address, _now: float) -> None:
        """ErrorACK, ClearACK, RelayACK, PingACK outside their exchanges: nothing to do."""

    def _on_go_clear(self, _msg: Message, _raw: bytes, _src: Address, _now: float) -> None:
        """GoClear is refused: we never send media in the clear once secured (brief §12.4)."""
        self._drop(DropReason.GOCLEAR_REFUSED, "GoClear is not supported")

    def _on_sas_relay(self, _msg: Message, _raw: bytes, _src: Address, _now: float) -> None:
        """SASrelay is acknowledged (RFC 6189 §5.14) but never rendered: no trusted MiTM."""
        self._send(bytes(RelayAck()))
        self._drop(DropReason.SAS_RELAY_IGNORED, "relayed SAS from a PBX is not trusted")

    def _answer_ping(self, ping: Ping, ssrc: int) -> None:
        """PingACK in any state (RFC 6189 §5.16); EndpointHash from our ZID. Only
        ``MAX_PING_ACKS`` per session: beyond that Pings are counted and left unanswered."""
        if self._ping_acks >= MAX_PING_ACKS:
            self.pings_ignored += 1
            return
        self._ping_acks += 1
        own = crypto.sha256(self.cache.zid)[:8]
        self._send(bytes(PingAck(VERSION, own, ping.endpoint_hash, ssrc)))

    # -- helpers ------------------------------------------------------------------------------
    def _build_hello(self) -> Hello:
        offer = self.config.offer
        hello = Hello(
            version=VERSION,
            client_id=self.config.client_id.ljust(16, b" ")[:16],
            h3=self._chain.h3,
            zid=self.cache.zid,
            hashes=offer.hashes,
            ciphers=offer.ciphers,
            auth_tags=offer.auth_tags,
            key_agreements=offer.key_agreements,
            sas_types=offer.sas_types,
            passive=self.config.passive,
        )
        mac = crypto.chain_mac(self._chain.h2, bytes(hello)[:-8])
        return replace(hello, mac=mac)

    def _build_dhpart(self, cls: type[DHPart], hash_name: str, label: bytes) -> bytes:
        """DHPart with our H1, secret IDs (random when absent, §4.3.1) and MAC(H0)."""
        assert self._key_pair is not None
        record = self.cache.peers.get(self._require_peer_zid())
        ids = [
            crypto.secret_id(hash_name, s, label) if s else self._rng(8)
            for s in ((record.rs1, record.rs2) if record else (None, None))
        ]
        part = cls(
            self._chain.h1, ids[0], ids[1], self._rng(8), self._rng(8), self._key_pair.public_value
        )
        mac = crypto.chain_mac(self._chain.h0, bytes(part)[:-8])
        return bytes(replace(part, mac=mac))

    def _build_confirm(self, cls: type[Confirm]) -> bytes:
        """Confirm1/2: H0, V flag, expiry, encrypted with our ZRTP key, MAC'd (§5.7)."""
        keys, initiator = self._require_keys(), self.role is Role.INITIATOR
        record = self.cache.peers.get(self._require_peer_zid())
        verified = bool(record and record.verified) and not self.cache_mismatch
        plain = ConfirmPlaintext(
            self._chain.h0, verified, cache_expiration=self.config.cache_expiration
        )
        iv = self._rng(16)
        zrtpkey, mackey = (
            (keys.zrtpkey_i, keys.mackey_i) if initiator else (keys.zrtpkey_r, keys.mackey_r)
        )
        encrypted = crypto.confirm_encrypt(zrtpkey, iv, bytes(plain))
        mac = crypto.hmac_full(self._alg().hash, mackey, encrypted)[:8]
        return bytes(cls(mac, iv, encrypted))

    def _preshared_key(self, hash_name: str) -> bytes:
        record = self.cache.peers.get(self._require_peer_zid())
        assert record is not None and record.rs1 is not None
        return crypto.preshared_key(hash_name, record.rs1)

    def _is_preshared_initiator(self) -> bool:
        return self.algorithms is not None and self.algorithms.key_agreement == "Prsh"

    def _zids(self, initiator: bool) -> tuple[bytes, bytes]:
        peer = self._require_peer_zid()
        return (self.cache.zid, peer) if initiator else (peer, self.cache.zid)

    def _local_key(self) -> bytes:
        keys = self._require_keys()
        if self.role is Role.INITIATOR:
            return keys.srtp_key_i + keys.srtp_salt_i
        return keys.srtp_key_r + keys.srtp_salt_r

    def _remote_key(self) -> bytes:
        keys = self._require_keys()
        if self.role is Role.INITIATOR:
            return keys.srtp_key_r + keys.srtp_salt_r
        return keys.srtp_key_i + keys.srtp_salt_i

    def _require_keys(self) -> DerivedKeys:
        assert self._keys is not None
        return self._keys

    def _require_peer_zid(self) -> bytes:
        zid = self.peer_zid
        assert zid is not None
        return zid

    def _alg(self) -> Algorithms:
        assert self.algorithms is not None
        return self.algorithms

    @staticmethod
    def _hash(hash_name: str, data: bytes) -> bytes:
        return crypto.negotiated_hash(hash_name)(data).digest()


def _names(algorithms: Algorithms) -> tuple[str, str, str, str, str]:
    return (
        algorithms.hash,
        algorithms.cipher,
        algorithms.auth_tag,
        algorithms.key_agreement,
        algorithms.sas_type,
    )


def _hello_lists(hello: Hello) -> dict[AlgorithmFamily, tuple[str, ...]]:
    return {
        AlgorithmFamily.HASH: hello.hashes,
        AlgorithmFamily.CIPHER: hello.ciphers,
        AlgorithmFamily.AUTH_TAG: hello.auth_tags,
        AlgorithmFamily.KEY_AGREEMENT: hello.key_agreements,
        AlgorithmFamily.SAS: hello.sas_types,
    }


_Handler = Callable[[ZrtpSession, Any, bytes, Address, float], None]
_HANDLERS: dict[type[Message], _Handler] = {
    Hello: ZrtpSession._on_hello,
    HelloAck: ZrtpSession._on_hello_ack,
    Commit: ZrtpSession._on_commit,
    DHPart1: ZrtpSession._on_dhpart1,
    DHPart2: ZrtpSession._on_dhpart2,
    Confirm1: ZrtpSession._on_confirm1,
    Confirm2: ZrtpSession._on_confirm2,
    Conf2Ack: ZrtpSession._on_conf2ack,
    Error: ZrtpSession._on_error,
    ErrorAck: ZrtpSession._on_ignored_ack,
    ClearAck: ZrtpSession._on_ignored_ack,
    RelayAck: ZrtpSession._on_ignored_ack,
    PingAck: ZrtpSession._on_ignored_ack,
    GoClear: ZrtpSession._on_go_clear,
    SasRelay: ZrtpSession._on_sas_relay,
}
