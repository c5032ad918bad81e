"""The Phone: one object that runs the sans-I/O user agent on asyncio and serves every interface.

The CLI, the web pages, the JSON API and library users all drive this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from securephone.aio.call import Call, CallKeyingChanged, TlsPeerChanged
from securephone.aio.dns import Located, SipResolver
from securephone.aio.keyexport import write_key_export
from securephone.aio.media import MediaChannel, bind_rtp_pair
from securephone.aio.nat import NatTraversal
from securephone.aio.netaddr import families, hostport, is_dual_stack, is_wildcard, route_source
from securephone.aio.transport import TransportLayer, is_ip
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, SilenceSource
from securephone.errors import CallError, MediaError, ProtocolError
from securephone.media.codecs.dtmf import DtmfDigit
from securephone.media.dtls.certificate import DtlsCertificate
from securephone.media.keying import KeyingEvent, KeyingFailed, KeysAgreed, parse_methods
from securephone.media.negotiation import (
    KeyingResources,
    SdpMedia,
    SrtpPolicy,
    opus_fmtp,
    opus_payload_type,
)
from securephone.media.session import MediaStream
from securephone.media.srtp import SrtpContext
from securephone.media.zrtp.algorithms import AlgorithmOffer
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.media.zrtp.session import ZrtpConfig
from securephone.net.stun import FlowVerdict, StunEvent
from securephone.sdp.crypto import redact
from securephone.sdp.offer_answer import MediaCapabilities
from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.events import (
    CallMediaUpdated,
    CallStateChanged,
    Event,
    FlowTimerChanged,
    HoldChanged,
    IncomingCall,
    InfoReceived,
    RegistrationChanged,
    RequestCompleted,
    RequestFailed,
    SecurityAlarm,
)
from securephone.sip.locate import LocateError, NoServerFound
from securephone.sip.message import Request, Response
from securephone.sip.outbound import flow_summary
from securephone.sip.registration import Registration, RegState, RetryPolicy
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent
from securephone.store import knownpeers, media_cert, zrtpcache
from securephone.store.config import AccountConfig, Config, MediaSettings
from securephone.store.instance import instance_urn
from securephone.tls import TlsConfigError, client_context, server_context

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]
KEEP_ENDED_CALLS = 50
SourceFactory = Callable[[Call], AudioSource]
SinkFactory = Callable[[Call], AudioSink]
MediaSpare = tuple[tuple[socket.socket, socket.socket], tuple[str, int] | None]


class PhoneError(Exception):
    """A phone operation failed; the message is meant for the user."""


def account_spec(account: AccountConfig) -> AccountSpec:
    """Turn a validated account config into what the SIP core needs."""
    scheme = "sips" if account.transport == "tls" else "sip"
    aor = SipUri(scheme, account.domain, account.user)
    registrar = (
        SipUri.parse(account.registrar) if account.registrar else SipUri(scheme, account.domain)
    )
    proxy = SipUri.parse(account.outbound_proxy) if account.outbound_proxy else None
    return AccountSpec(
        name=account.name,
        aor=aor,
        registrar=registrar,
        auth_user=account.auth_user or account.user,
        password=account.password.get_secret_value(),
        transport=account.transport,
        outbound_proxy=proxy,
        register=account.register_,
        expires=account.expires,
        display_name=account.display_name,
        retry=RetryPolicy(account.retry_base, account.retry_max),
        accept_only_from_proxy=account.register_
        if account.accept_only_from_proxy is None
        else account.accept_only_from_proxy,
        outbound=account.outbound,
        outbound_proxies=tuple(SipUri.parse(uri) for uri in account.outbound_proxies),
    )


def flow_key(name: str, reg: Registration) -> str:
    """The name an outbound UDP flow's STUN keep-alive goes by: the account, ``/reg-id`` after
    the first flow."""
    return name if (reg.reg_id or 1) == 1 else f"{name}/{reg.reg_id}"


def flow_interval(configured: float, flow_timer: int | None) -> float:
    """Seconds between keep-alives on a flow: the configured interval, or the registrar's
    Flow-Timer when it is shorter (RFC 5626 §4.4.1: at least that often); 0 stays off."""
    if configured <= 0 or not flow_timer:
        return max(configured, 0.0)
    return min(configured, float(flow_timer))


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Once per process, after the first phone has started: collect, then move every object that
    exists (modules, classes, functions, the configuration, the listeners) out of the cyclic
    collector's view (``gc.freeze``).

    A full collection otherwise walks all of them while every call's media waits: with 300 calls
    up one took 36 ms (117,000 tracked objects), 14 ms once the 52,000 start-up objects were
    frozen. Frozen objects are never collected; start-up objects live as long as the process.
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


def _private_opener(path: str, flags: int) -> int:
    """Open a trace file as the owner's alone (0600, also when it existed with a wider mode)."""
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return fd


def zrtp_config(media: MediaSettings) -> ZrtpConfig:
    """What our ZRTP Hello offers, from ``[media] zrtp_*`` (RFC 6189 §5.2)."""
    offer = AlgorithmOffer(
        key_agreements=tuple(media.zrtp_key_agreements),
        sas_types=tuple(name.ljust(4) for name in media.zrtp_sas),  # "B32 " on the wire
        auth_tags=tuple(media.zrtp_auth_tags),
    )
    return ZrtpConfig(offer=offer)


TRACE_MAX_BYTES = 64 * 1024 * 1024  # a trace file this large goes to FILE.1 and starts again


class SipTrace:
    """Writes every SIP message in and out to a file, with time, direction and peer.

    Everything that reaches the SIP ports is written, garbage included, so the file is bounded:
    past ``max_bytes`` it becomes ``FILE.1`` (replacing the one before) and a new one begins.
    """

    def __init__(
        self, path: Path, clock: Callable[[], float] = time.time, max_bytes: int = TRACE_MAX_BYTES
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file: TextIO = open(path, "a", encoding="utf-8", opener=_private_opener)  # noqa: SIM115
        self._size = self._file.tell()
        self._clock = clock

    def _write(self, text: str) -> None:
        if self._size >= self.max_bytes:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = open(self.path, "a", encoding="utf-8", opener=_private_opener)  # noqa: SIM115
            self._size = 0
        self._file.write(text)
        self._file.flush()
        self._size += len(text.encode("utf-8"))

    def __call__(self, direction: str, peer: Peer, data: bytes) -> None:
        millis = int(self._clock() * 1000)  # one clock read: seconds and milliseconds agree
        seconds, fraction = divmod(millis, 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}Z"
        arrow = "<<" if direction == "in" else ">>"
        text = redact(data.decode("utf-8", errors="replace"))  # SDES keys never reach a trace
        self._write(f"{stamp} {arrow} {direction} {peer} ({len(data)} bytes)\n{text}\n")

    def note(self, text: str) -> None:
        """A line that is not a SIP message (DNS answers, failovers), with its time."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))
        self._write(f"{stamp} ## {text}\n")

    def close(self) -> None:
        self._file.close()


class Phone:
    """A running SIP phone: listeners, accounts, registrations, requests."""

    def __init__(self, config: Config, *, trace_file: Path | None = None) -> None:
        self.config = config
        self.ua: UserAgent | None = None
        self._trace_path = trace_file or (
            Path(config.sip.trace_file) if config.sip.trace_file else None
        )
        self._trace: SipTrace | None = None
        self._resolver = SipResolver(config.dns) if config.dns.enabled else None
        self.located: dict[str, Located] = {}  # host name -> the servers DNS gave (RFC 3263)
        self._transports = TransportLayer(
            self._on_message, self._on_transport_error, on_bad_message=self._on_bad_message
        )
        self._tls = config.tls_settings()
        self._transports.keepalive_interval = config.sip.keepalive_interval
        self._transports.client_has_cert = self._tls.certificate is not None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._listeners: list[EventCallback] = []
        self._waiters: dict[str, asyncio.Future[Response]] = {}
        self._changed = asyncio.Event()
        self.calls: dict[str, Call] = {}
        self.source_factory: SourceFactory = lambda call: SilenceSource()
        self.sink_factory: SinkFactory = lambda call: NullSink()
        self.on_incoming: Callable[[Call], None] | None = None
        self._pumping = False
        self._zrtp_cache: ZrtpCache | None = None
        self._media_certificate: DtlsCertificate | None = None
        self._wildcard = False  # a listener on :: or 0.0.0.0: Via/Contact/SDP follow each peer
        self._known_peers: knownpeers.KnownPeers | None = None
        self.tls_alarms: dict[str, TlsPeerChanged] = {}  # by host:port, the latest one
        self.pins_full = 0  # first-use servers not pinned because the pin table was full
        self.nat = NatTraversal(
            config.nat, self._transports.send_stun, software=config.sip.user_agent, note=self._note
        )
        self.nat.on_event = self._nat_event
        self._transports.on_stun = self.nat.receive
        self._media_spare: asyncio.Task[MediaSpare] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the listeners, add the accounts and start registering."""
        if self._trace_path is not None:
            self._trace = SipTrace(self._trace_path)
            self._transports.trace = self._trace
            if self._resolver is not None:
                self._resolver.on_answer = lambda line: self._note(f"DNS {line}")
            log.info("writing a SIP trace to %s", self._trace_path)
        uses_tls = "tls" in self.config.sip.transports or any(
            a.transport == "tls" for a in self.config.accounts
        )
        try:
            self._transports.client_ssl = client_context(self._tls)
        except TlsConfigError as exc:
            if uses_tls:
                raise PhoneError(str(exc)) from None
            self._transports.tls_unavailable = str(exc)  # only sips:/TLS calls will say so
            log.warning("outgoing TLS is unavailable: %s", exc)
        self._zrtp_cache = self._load_zrtp_cache()
        self._load_known_peers()
        self._media_certificate = self._load_media_certificate()
        listen = await self._open_listeners()
        self._wildcard = any(is_wildcard(host) for host, _ in listen.values())
        self.ua = UserAgent(
            listen,
            user_agent=self.config.sip.user_agent,
            max_calls=self.config.calls.max_calls,
            incoming_ring_timeout=self.config.calls.ring_timeout,
            failback_interval=self.config.dns.failback_interval,
        )
        self.ua.calls.offer_check = self._check_offer
        await self._learn_public_address()
        for account in self.config.accounts:
            try:
                spec = account_spec(account)
                with contextlib.suppress(ValueError):  # a bad hop is reported when registering
                    self._learn_route(self.ua.router.route_peer(spec, spec.registrar).host)
                self.ua.add_account(spec)
            except ValueError as exc:
                await self._transports.close()
                raise PhoneError(str(exc)) from None
        await self._locate_accounts()
        now = self._now()
        for account in self.config.accounts:
            if account.register_:
                self.ua.register(account.name, now)
        self._pump()
        self._keep_flows_alive()
        freeze_startup_objects()

    # -- NAT (STUN, RFC 5626 outbound) -------------------------------------------------------------
    async def _learn_public_address(self) -> None:
        """STUN for the SIP UDP socket (Contact) and a first RTP socket (SDP); the instance id."""
        router = self._core().router
        if any(a.outbound for a in self.config.accounts):
            router.instance = instance_urn(self.config.data_path)
        if not self.nat.enabled or "udp" not in router.listen:
            return
        public = await self.nat.start()
        if public is not None:
            router.public["udp"] = public
            self._media_spare = asyncio.create_task(self._spare_media())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(self._media_spare), self.config.nat.stun_timeout
                )

    def _keep_flows_alive(self) -> None:
        """RFC 5626 §4.4: keep-alives on every outbound flow: STUN on UDP flows (§4.4.2), CRLF
        pings on TCP/TLS flows (§4.4.1), at least as often as the flow's registrar asked with
        Flow-Timer when that is sooner than the configured interval (0 in the configuration
        keeps them off). Run at start, when a flow registers and when a Flow-Timer changes;
        only a flow whose interval changes is touched."""
        ua = self._core()
        for name, reg in ua.flows_of_all():
            spec = ua.accounts[name]
            if not (spec.outbound and spec.register):
                continue
            peer = ua.flow_peer(name, reg)
            if peer.transport == "udp":
                interval = flow_interval(self.config.nat.keepalive_interval, reg.flow_timer)
                key = flow_key(name, reg)
                if is_ip(peer.host) and interval and self.nat.keepalive_interval(key) != interval:
                    self.nat.keep_alive(key, (peer.host.strip("[]"), peer.port), interval)
                continue
            configured = self.config.sip.keepalive_interval
            interval = flow_interval(configured, reg.flow_timer)
            self._transports.set_flow_keepalive(peer, None if interval == configured else interval)

    def _flow_keepalive(self, name: str, reg: Registration) -> float | None:
        """Seconds between the keep-alives on an outbound flow now (STUN on UDP, CRLF on TCP/TLS),
        None when it has none (not outbound, off, or no connection yet)."""
        ua = self._core()
        spec = ua.accounts[name]
        if not (spec.outbound and spec.register):
            return None
        peer = ua.flow_peer(name, reg)
        if peer.transport == "udp":
            return self.nat.keepalive_interval(flow_key(name, reg))
        if not self._transports.connected(peer):
            return None
        override = self._transports.flow_keepalive(peer)
        return override if override is not None else (self.config.sip.keepalive_interval or None)

    def _nat_event(self, event: StunEvent) -> None:
        """A keep-alive said a flow broke or moved: new Contact, register again (RFC 5626 §4.5)."""
        if event.verdict in (None, FlowVerdict.ALIVE) or self.ua is None:
            return
        name, _, flow = event.key.removeprefix("flow:").partition("/")
        if name not in self.ua.registrations:
            return
        if event.verdict is FlowVerdict.MAPPING_CHANGED and event.result.mapped is not None:
            if "udp" in self.ua.router.public:
                self.ua.router.public["udp"] = event.result.mapped
            self.ua.refresh_contacts()
        reason = f"keep-alive: {event.verdict.value} ({event.result.reason or event.result.mapped})"
        self._note(f"flow of {name}: {reason}")
        self.ua.flow_failed(name, reason, self._now(), int(flow) if flow else None)
        self._pump()

    async def _spare_media(self) -> MediaSpare:
        """An RTP/RTCP socket pair and what the STUN server saw of its RTP socket."""
        media = self.config.media
        sockets = bind_rtp_pair(self.config.media_address, media.port_min, media.port_max)
        try:
            return sockets, await self.nat.map_media(sockets[0])
        except BaseException:  # cancelled at stop: the pair goes with it
            for sock in sockets:
                sock.close()
            raise

    def _media_sockets(self) -> MediaSpare:
        """The spare pair when its mapping is known (then prepare the next one), else a new pair."""
        spare, mapped = self._media_spare, None
        if spare is not None and spare.done() and not spare.cancelled() and not spare.exception():
            sockets, mapped = spare.result()
            self._media_spare = None
        else:
            media = self.config.media
            sockets = bind_rtp_pair(self.config.media_address, media.port_min, media.port_max)
            if self.nat.server is not None:
                log.warning("RTP mapping not learnt yet: SDP carries the local address")
        if self.nat.server is not None and self._media_spare is None:
            self._media_spare = asyncio.create_task(self._spare_media())
        return sockets, mapped

    def _drop_spare(self) -> None:
        spare, self._media_spare = self._media_spare, None
        if spare is None:
            return
        if spare.done() and not spare.cancelled() and not spare.exception():
            for sock in spare.result()[0]:
                sock.close()
        else:
            spare.cancel()

    async def _locate_accounts(self) -> None:
        """Locate every account's registrar or proxy at once, within ``[dns] timeout`` in all."""
        ua = self._core()
        lookups = [self.locate(ua.accounts[a.name].registrar, a.name) for a in self.config.accounts]
        if not lookups:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*lookups), self.config.dns.timeout)
        except TimeoutError:
            log.warning(
                "DNS: no answer within %.0f s; using the host names as they are",
                self.config.dns.timeout,
            )

    def _note(self, text: str) -> None:
        if self._trace is not None:
            self._trace.note(text)

    async def locate(self, target: SipUri | str, account: str | None = None) -> None:
        """RFC 3263: find the servers of the next hop towards ``target`` (NAPTR, SRV, A/AAAA).

        The core then sends there, in order, failing over to the next one (§4.3). A host given
        with a port or as an address, or with no NAPTR/SRV records, is left to the transport's
        own name lookup. Answers are kept for their TTL. PhoneError when the domain offers no
        server this request may use (e.g. only UDP for a sips: URI).
        """
        ua = self._core()
        uri = target if isinstance(target, SipUri) else self._target(target, account)
        spec = ua.router.account(account)
        hop = spec.outbound_proxy if spec is not None and spec.outbound_proxy else uri
        host = hop.host.strip("[]").lower()
        if self._resolver is None or hop.port is not None or is_ip(host):
            return
        known = self.located.get(host)
        if known is not None and known.expires > time.monotonic():
            return
        try:
            found = await self._resolver.locate(hop, spec.transport if spec else None)
        except NoServerFound as exc:
            log.info("DNS: %s; using the host name as it is", exc)
            return
        except LocateError as exc:
            raise PhoneError(str(exc)) from None
        self.located[host] = found
        for located in found.targets:
            self._learn_route(located.peer.host)
        if any(t.source != "a" for t in found.targets):
            ua.router.use_targets(host, [t.peer for t in found.targets])

    def _load_zrtp_cache(self) -> ZrtpCache | None:
        """Our ZRTP identity and retained secrets, when any account or the phone may use ZRTP."""
        wanted = "zrtp" in self.config.media.keying or any(
            "zrtp" in (a.keying or ()) for a in self.config.accounts
        )
        if not wanted:
            return None
        try:
            return zrtpcache.load_or_create(self._zrtp_cache_path)
        except (zrtpcache.ZrtpCacheFileError, OSError) as exc:
            raise PhoneError(str(exc)) from None

    def _load_known_peers(self) -> None:
        """TOFU pins of the SIP-TLS servers we dial (``[tls] pinning``), checked by the transport."""
        mode = knownpeers.PinMode(self.config.tls.pinning)
        if mode is knownpeers.PinMode.OFF:
            return
        path = self.config.data_path / knownpeers.KNOWN_PEERS_NAME
        try:
            self._known_peers = knownpeers.load(path, mode)
        except knownpeers.KnownPeersError as exc:
            raise PhoneError(str(exc)) from None
        self._transports.check_pin = self._check_pin

    def _check_pin(self, peer: Peer, der_certificate: bytes) -> str | None:
        """Compare a server's key with its pin: record a first use, alarm on a change (the
        transport refuses the connection when a reason comes back)."""
        pins = self._known_peers
        if pins is None:
            return None
        check = pins.check(peer.host, peer.port, der_certificate)
        if check.verdict is knownpeers.PinVerdict.NEW:
            log.info("pinned the TLS key of %s on first use: %s", check.peer, check.seen)
            try:
                pins.save()
            except OSError as exc:
                log.error("cannot save %s: %s", pins.path, exc)
        elif check.verdict is knownpeers.PinVerdict.UNPINNED:
            self.pins_full += 1
            if self.pins_full == 1:  # once: every later server is in the same situation
                log.warning(
                    "%s holds %d pins, the most it keeps: %s and later new servers are "
                    "connected without a pin (remove pins you no longer need)",
                    pins.path, len(pins.pins), check.peer,
                )  # fmt: skip
        elif check.verdict is knownpeers.PinVerdict.MATCH:
            self.tls_alarms.pop(check.peer, None)
        elif check.verdict is knownpeers.PinVerdict.CHANGED:
            self._tls_alarm(check)
            if check.refused:
                return f"the server's key changed since it was pinned (pinning is strict): {check.message}"
        return None

    def _tls_alarm(self, check: knownpeers.PinCheck) -> None:
        log.warning("TLS PEER CHANGED: %s", check.message)
        alarm = TlsPeerChanged(
            check.peer, check.pinned or "", check.seen, check.refused, check.message
        )
        self.tls_alarms[check.peer] = alarm
        for listener in list(self._listeners):
            listener(alarm)
        self._changed.set()

    def trust_tls_peer(self, peer: str) -> None:
        """The user accepts the new key of ``peer`` (host:port) after an alarm: pin it."""
        alarm = self.tls_alarms.pop(peer, None)
        if alarm is None or self._known_peers is None:
            raise PhoneError(f"no changed TLS key to accept for {peer}")
        self._known_peers.trust(peer, alarm.seen)
        try:
            self._known_peers.save()
        except OSError as exc:
            raise PhoneError(f"cannot save {self._known_peers.path}: {exc}") from None

    def _load_media_certificate(self) -> DtlsCertificate | None:
        """The DTLS-SRTP media certificate (made once, RFC 5763 §5) when DTLS may be used."""
        wanted = "dtls" in self.config.media.keying or any(
            "dtls" in (a.keying or ()) for a in self.config.accounts
        )
        if not wanted:
            return None
        try:
            certificate = media_cert.load_or_create(self.config.data_path)
        except (media_cert.CertError, OSError) as exc:
            raise PhoneError(str(exc)) from None
        log.info("media certificate fingerprint: %s", certificate.fingerprint())
        return certificate

    @property
    def media_fingerprint(self) -> str | None:
        """Our DTLS-SRTP certificate's sha-256 fingerprint (RFC 8122 form), when loaded."""
        certificate = self._media_certificate
        return str(certificate.fingerprint()) if certificate is not None else None

    @property
    def _zrtp_cache_path(self) -> Path:
        return self.config.data_path / zrtpcache.CACHE_NAME

    async def _open_listeners(self) -> dict[str, tuple[str, int]]:
        sip = self.config.sip
        listen: dict[str, tuple[str, int]] = {}
        for name in sip.transports:
            if name == "udp":
                listen[name] = await self._transports.listen_udp(sip.listen_address, sip.udp_port)
            elif name == "tcp":
                port = sip.tcp_port
                if port == 0 and "udp" in listen:
                    port = listen["udp"][1]  # same number for UDP and TCP when we can
                listen[name] = await self._listen_tcp(sip.listen_address, port)
            else:
                listen[name] = await self._listen_tls(sip.listen_address, sip.tls_port)
            log.info(
                "listening for SIP on %s:%s (%s)",
                name,
                hostport(*listen[name]),
                " and ".join(families(listen[name][0])),
            )
        return listen

    async def _listen_tls(self, host: str, port: int) -> tuple[str, int]:
        try:
            ctx = server_context(self._tls)
        except TlsConfigError as exc:
            raise PhoneError(str(exc)) from None
        return await self._transports.listen_stream("tls", host, port, ctx)

    async def _listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        try:
            return await self._transports.listen_stream("tcp", host, port)
        except OSError:
            return await self._transports.listen_stream("tcp", host, 0)

    async def stop(self, timeout: float = 5.0) -> None:
        """Unregister every account (waiting up to ``timeout``), then close the sockets."""
        ua = self.ua
        if ua is not None:
            await self._hang_up_all(timeout)
            now = self._now()
            waiting = [name for name in ua.registrations if ua.unregister(name, now)]
            self._pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._until_unregistered(waiting), timeout)
        if self._timer is not None:
            self._timer.cancel()
        self.nat.close()
        self._drop_spare()
        await self._transports.close()
        if self._trace is not None:
            self._trace.close()

    async def _hang_up_all(self, timeout: float) -> None:
        active = [call for call in self.calls.values() if not call.ended]
        for call in active:
            call.hangup()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.wait_ended() for c in active)), timeout)
        for call in active:
            if call.channel is not None:
                call.channel.close()

    async def _until_unregistered(self, names: list[str]) -> None:
        ua = self.ua
        assert ua is not None
        while any(ua.registration_state(n) is RegState.UNREGISTERING for n in names):
            await self._wait_change()

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    # -- the pump: socket/timer input -> core -> socket output and events ----------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> float:
        """The phone's monotonic clock (the event loop's)."""
        return self._now()

    def _on_message(self, message: bytes | Request | Response, peer: Peer) -> None:
        ua = self._core()
        self._learn_route(peer.host)
        if isinstance(message, bytes):
            ua.receive_datagram(message, peer, self._now())
        else:
            ua.receive_message(message, peer, self._now())
        self._pump()

    def _learn_route(self, host: str) -> None:
        """With a wildcard listener: our address toward ``host`` for Via, Contact and SDP (a route
        lookup; nothing is sent). Concrete listeners and host names need none."""
        ua = self.ua
        if ua is None or not self._wildcard:
            return
        key = host.strip("[]").lower()
        if key in ua.router.routes:
            return
        local = route_source(key)
        if local is not None:
            ua.router.learn_route(key, local)

    def _on_bad_message(self, exc: ProtocolError, peer: Peer) -> None:
        self._core().endpoint.receive_error(exc, peer)
        self._pump()

    def _on_transport_error(self, peer: Peer, reason: str) -> None:
        log.info("%s", reason)
        self._core().transport_failed(peer, reason, self._now())
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._core().handle_timer(self._now())
        self._pump()

    def _pump(self) -> None:
        """Send what the core wants sent and hand out its events, in order.

        A command run from inside an event handler (auto-answer, a hang-up in a listener) only
        adds to the core's queue: the pump already running hands those events out after the
        current one, so every listener sees the calls' events in the order they happened.
        """
        if self._pumping:
            return
        ua = self._core()
        self._pumping = True
        try:
            while True:
                for out in ua.outgoing():
                    self._transports.send(out)
                event = ua.next_event()
                if event is None:
                    break
                self._dispatch(event)
        finally:
            self._pumping = False
        self._arm_timer(ua.get_timer())
        self._changed.set()

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        loop = asyncio.get_running_loop()
        self._timer = None if deadline is None else loop.call_at(deadline, self._on_timer)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RegistrationChanged):
            change = event.change
            log.info(
                "account %s%s: %s -> %s: %s",
                event.account,
                "" if event.flow is None else f" flow {event.flow}",
                change.old.value,
                change.new.value,
                change.reason,
            )
            if change.new is RegState.REGISTERED:  # a new flow (connection) may need its timer
                self._keep_flows_alive()
        elif isinstance(event, FlowTimerChanged):
            flow = "" if event.flow is None else f" {event.flow}"
            said = "none" if event.seconds is None else f"{event.seconds} s"
            log.info("flow%s of %s: the registrar's Flow-Timer is %s", flow, event.account, said)
            self._note(f"flow{flow} of {event.account}: registrar's Flow-Timer {said}")
            self._keep_flows_alive()
        elif isinstance(event, RequestCompleted | RequestFailed):
            self._resolve(event)
        elif isinstance(event, IncomingCall):
            self._incoming(event)
        elif isinstance(
            event, CallStateChanged | CallMediaUpdated | HoldChanged | InfoReceived | SecurityAlarm
        ):
            self._call_event(event)
        for listener in list(self._listeners):
            listener(event)

    # -- calls -------------------------------------------------------------------------------------
    def _call_event(
        self,
        event: CallStateChanged | CallMediaUpdated | HoldChanged | InfoReceived | SecurityAlarm,
    ) -> None:
        call = self.calls.get(event.call_id)
        if call is None:
            return
        if isinstance(event, CallMediaUpdated):
            self._media_updated(call)
        elif isinstance(event, CallStateChanged) and event.new is CallState.TERMINATED:
            if call.channel is not None:
                call.channel.close()
            self._forget_ended()
        call.deliver(event)

    def _forget_ended(self, keep: int = KEEP_ENDED_CALLS) -> None:
        """A long-running phone keeps the last ``keep`` ended calls (history lives in the store).

        The core decides which calls go; their handles go with them.
        """
        for key in self._core().calls.forget_ended(keep):
            self.calls.pop(key, None)

    def _incoming(self, event: IncomingCall) -> None:
        call = Call(self, self._core().calls.get(event.call_id))
        self.calls[call.key] = call
        call.deliver(event)
        log.info("incoming call from %s", call.remote)
        if self.on_incoming is not None:
            self.on_incoming(call)
        if self.config.calls.auto_answer and call.state is CallState.INCOMING:
            try:
                self.answer(call)
            except PhoneError as exc:  # the call was refused; the phone carries on
                log.warning("auto-answer of %s failed: %s", call.remote, exc)

    def _media_updated(self, call: Call) -> None:
        sdp, channel = call.sdp, call.channel
        if sdp is None or channel is None or sdp.negotiated is None:
            return
        media = sdp.negotiated
        channel.stream.configure(media)
        required = sdp.srtp.mode == "mandatory"
        if sdp.path is not None:  # ZRTP, DTLS-SRTP: the keys come from the media path
            channel.stream.set_keying(
                sdp.path, required=required, allow_key_export=self._export_keys
            )
        else:
            self._key_sdes(channel.stream, sdp, required)
        channel.set_remote(media.remote_address, media.remote_port, media.remote_rtcp_port)
        channel.start()

    def _key_sdes(self, stream: MediaStream, sdp: SdpMedia, required: bool) -> None:
        """SDES keys from the last offer/answer; a direction whose key stayed keeps its session
        (and its replay window) across a re-INVITE."""
        choice = sdp.keying
        current = stream.srtp
        if choice is not None and current is not None:
            current.rekey(choice.suite, choice.local_key, choice.remote_key)
            stream.require_srtp = required
            context: SrtpContext | None = current
        else:
            context = choice.context(allow_key_export=self._export_keys) if choice else None
            stream.set_srtp(context, required=required)
        if context is not None and self._export_keys:
            self._write_key_export(context)

    def _keying_event(self, call: Call, event: KeyingEvent) -> None:
        """Keys agreed, failed or updated in the media path (ZRTP): act, then tell everyone."""
        method = event.method.label
        if isinstance(event, KeysAgreed):
            log.info("call %s: media keys agreed by %s (%s)", call.key[:8], method, event.suite)
            srtp = call.channel.stream.srtp if call.channel is not None else None
            if srtp is not None and self._export_keys:
                self._write_key_export(srtp)
        elif isinstance(event, KeyingFailed):
            self._keying_failed(call, event)
        elif event.persist:
            self._save_zrtp_cache()
        notice = CallKeyingChanged(call.key, event)
        call.deliver(notice)
        for listener in list(self._listeners):
            listener(notice)

    def _silent(self, call: Call, seconds: float) -> None:
        """The far end stopped sending media: a dead peer must not hold a call slot for ever."""
        if call.state is CallState.CONNECTED:
            reason = f"no media from the far end for {seconds:g} s"
            log.warning("call %s: %s; hanging up", call.key[:8], reason)
            self._command(lambda ua, now: ua.terminate(call.key, CallEnding.TIMED_OUT, reason, now))

    def _keying_failed(self, call: Call, event: KeyingFailed) -> None:
        sdp = call.sdp
        if sdp is not None and sdp.srtp.mode == "mandatory" and not call.ended:
            log.warning(
                "call %s: %s; encryption is mandatory: ending the call", call.key[:8], event.reason
            )
            self._command(
                lambda ua, now: ua.terminate(
                    call.key, CallEnding.SECURITY_REFUSED, event.reason, now
                )
            )
        else:
            log.warning("call %s: %s; the media is NOT encrypted", call.key[:8], event.reason)

    def _save_zrtp_cache(self) -> None:
        if self._zrtp_cache is None:
            return
        try:
            zrtpcache.save(self._zrtp_cache_path, self._zrtp_cache)
        except OSError as exc:
            log.error("cannot save the ZRTP cache %s: %s", self._zrtp_cache_path, exc)

    def confirm_sas(self, call: Call, verified: bool = True) -> None:
        """The user compared the ZRTP SAS with the far end: it matched (True) or not (False)."""
        path = call.sdp.path if call.sdp is not None else None
        if not isinstance(path, ZrtpKeying) or path.secure is None:
            raise PhoneError("the call has no ZRTP key agreement to confirm")
        path.confirm_sas(verified)
        if call.channel is not None:
            call.channel.poll_keying()

    @property
    def _export_keys(self) -> bool:
        return self.config.media.srtp_key_export is not None

    def _write_key_export(self, context: SrtpContext) -> None:
        path = Path(str(self.config.media.srtp_key_export)).expanduser()
        log.warning("SRTP key export is ON: this call's keys are written to %s", path)
        write_key_export(path, context.export_keys())

    def _srtp_policy(self, account: str | None, transport: str) -> SrtpPolicy:
        media = self.config.media
        spec = next((a for a in self.config.accounts if a.name == account), None)
        mode = (spec.srtp if spec is not None else None) or media.srtp
        keying = (spec.keying if spec is not None else None) or media.keying
        return SrtpPolicy(
            mode=mode,
            suites=tuple(media.srtp_suites),
            secure_signalling=transport == "tls",
            allow_plaintext_keys=media.allow_sdes_over_plaintext,
            methods=parse_methods(keying),
        )

    def _caps(
        self, account: str | None = None, peer_host: str | None = None, address: str | None = None
    ) -> MediaCapabilities:
        media = self.config.media
        spec = next((a for a in self.config.accounts if a.name == account), None)
        codecs = (spec.codecs if spec is not None else None) or media.codecs
        bound = self.config.media_address
        return MediaCapabilities(
            # the STUN mapping, else our address toward the peer (wildcard listeners)
            local_address=address or self._core().router.local_host(peer_host, bound),
            dual_stack=is_dual_stack(bound),
            codecs=tuple(codecs),
            opus_payload_type=opus_payload_type(media.dtmf_payload_type),
            opus_fmtp=opus_fmtp(media.opus_bitrate),
            telephone_event_pt=media.dtmf_payload_type,
            rtcp_mux=media.rtcp_mux,
        )

    def _new_media(
        self, transport: str, account: str | None, peer_host: str | None = None
    ) -> tuple[SdpMedia, MediaChannel]:
        """RTP sockets, a media stream and the SDP negotiator for one call."""
        media = self.config.media
        sockets, mapped = self._media_sockets()
        stream = MediaStream(
            f"{secrets.token_hex(4)}@{self.config.media_address}",
            jitter_depth=media.jitter_buffer_frames,
        )
        stream.symmetric_rtp = media.symmetric_rtp
        channel = MediaChannel(stream, sockets)
        policy = self._srtp_policy(account, transport)
        address, port = mapped or (None, channel.local_port)  # the STUN mapping goes in SDP
        sdp = SdpMedia(
            self._caps(account, peer_host, address), port, policy, self._resources(stream.ssrc)
        )
        return sdp, channel

    def _resources(self, ssrc: int) -> KeyingResources:
        """What one call's media keying may use: the ZRTP cache and offer, the media certificate."""
        return KeyingResources(
            ssrc,
            zrtp_cache=self._zrtp_cache,
            zrtp_config=zrtp_config(self.config.media),
            dtls_certificate=self._media_certificate,
        )

    def _check_offer(
        self, account: str | None, invite: Request, transport: str
    ) -> MediaError | None:
        """Would we refuse this offer? Judged before the phone rings (no sockets are bound)."""
        policy = self._srtp_policy(account, transport)
        trial = SdpMedia(self._caps(account), 9, policy, self._resources(0))
        try:
            trial.receive_offer(invite.body, False)
        except MediaError as exc:
            return exc
        return None

    def _attach_media(self, call: Call, sdp: SdpMedia, channel: MediaChannel) -> None:
        def digit(d: DtmfDigit) -> None:
            if call.on_digit is not None:
                call.on_digit(d.digit)

        channel.on_digit = digit
        channel.on_keying = lambda event: self._keying_event(call, event)
        channel.on_silence = lambda seconds: self._silent(call, seconds)
        channel.silence_timeout = self.config.calls.rtp_timeout
        channel.source = self.source_factory(call)
        channel.sink = self.sink_factory(call)
        call.sdp, call.channel = sdp, channel

    def dial(
        self, target: str, *, account: str | None = None, ring_timeout: float | None = None
    ) -> Call:
        """Place a call to ``target`` (a SIP URI), with an account or directly.

        An unanswered call is cancelled after ``ring_timeout`` seconds (the core's timer).
        """
        ua = self._core()
        uri = self._target(target, account)
        try:
            hop = ua.router.route_peer(ua.router.account(account), uri)
        except ValueError as exc:
            raise PhoneError(str(exc)) from None
        self._learn_route(hop.host)
        sdp, channel = self._new_media(hop.transport, account, hop.host)
        try:
            session = ua.dial(uri, sdp, self._now(), account=account, ring_timeout=ring_timeout)
        except CallError as exc:
            channel.close()
            raise PhoneError(str(exc)) from None
        call = Call(self, session)
        self._attach_media(call, sdp, channel)
        self.calls[call.key] = call
        self._pump()
        return call

    def _target(self, target: str, account: str | None) -> SipUri:
        """A request target given by the user, and the account to use: PhoneError if either is bad."""
        try:
            uri = SipUri.parse(target)
        except ProtocolError as exc:
            raise PhoneError(f"bad URI {target!r}: {exc}") from None
        if account is not None and account not in self._core().accounts:
            raise PhoneError(f"no account named {account!r}")
        return uri

    # -- typed call commands (the Call handle and the web actions use these) ----------------------
    def answer(self, call: Call) -> None:
        """Answer an incoming call (media from the phone's source and sink factories)."""
        if call.state is not CallState.INCOMING:
            raise PhoneError(f"the call is {call.state.value}, not ringing")
        peer = self._core().calls.peer_of(call.key)
        try:
            sdp, channel = self._new_media(
                peer.transport if peer else "udp", call.account, peer.host if peer else None
            )
        except (
            OSError
        ) as exc:  # out of descriptors or ports: refuse the call, do not leave it ringing
            self._command(lambda ua, now: ua.reject(call.key, 503, now))
            raise PhoneError(f"cannot open media sockets: {exc.strerror or exc}") from None
        self._attach_media(call, sdp, channel)
        self._command(lambda ua, now: ua.answer(call.key, sdp, now))

    def reject(self, call: Call, status: int = 486) -> None:
        """Refuse an incoming call with ``status`` (486 Busy Here, 603 Decline ...)."""
        self._command(lambda ua, now: ua.reject(call.key, status, now))

    def hangup(self, call: Call) -> None:
        """End a call in any state (CANCEL, decline or BYE); nothing when it has ended."""
        if not call.ended:
            self._command(lambda ua, now: ua.hangup(call.key, now))

    def hold(self, call: Call) -> None:
        """Put a connected call on hold (RFC 3264 §8.4)."""
        self._command(lambda ua, now: ua.hold(call.key, True, now))

    def resume(self, call: Call) -> None:
        """Take a held call off hold."""
        self._command(lambda ua, now: ua.hold(call.key, False, now))

    def send_dtmf(self, call: Call, digits: str) -> None:
        """Send digits as RFC 4733 telephone-events on the call's media."""
        if call.channel is None:
            raise PhoneError("the call has no media yet")
        call.channel.stream.send_dtmf(digits)

    def _command(self, run: Callable[[UserAgent, float], None]) -> None:
        """Run one call command in the core and pump; CallError becomes PhoneError."""
        try:
            run(self._core(), self._now())
        except CallError as exc:
            raise PhoneError(str(exc)) from None
        self._pump()

    def signalling_of(self, call: Call) -> dict[str, Any] | None:
        """How the call's signalling travels (None before it has a first hop)."""
        peer = self._core().calls.peer_of(call.key) if self.ua is not None else None
        return self.signalling(peer) if peer is not None else None

    def _resolve(self, event: RequestCompleted | RequestFailed) -> None:
        future = self._waiters.pop(event.handle, None)
        if future is None or future.done():
            return
        if isinstance(event, RequestCompleted):
            future.set_result(event.response)
        else:
            future.set_exception(PhoneError(event.reason))

    def _core(self) -> UserAgent:
        if self.ua is None:
            raise PhoneError("the phone is not started")
        return self.ua

    # -- API ---------------------------------------------------------------------------------------
    def add_listener(self, callback: EventCallback) -> None:
        """Call ``callback`` with every event of the SIP core."""
        self._listeners.append(callback)

    async def request(self, method: str, target: str, *, account: str | None = None) -> Response:
        """Send an out-of-dialog request (OPTIONS, ...) and return its final response."""
        ua = self._core()
        uri = self._target(target, account)
        handle = ua.request(method, uri, self._now(), account=account)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiters[handle] = future
        self._pump()
        return await future

    async def options(self, target: str, *, account: str | None = None) -> Response:
        """RFC 3261 §11: ask what ``target`` supports (and whether it is there)."""
        return await self.request("OPTIONS", target, account=account)

    async def wait_registration(
        self, name: str, states: tuple[RegState, ...], timeout: float
    ) -> RegState:
        """Wait until account ``name`` reaches one of ``states``."""
        ua = self._core()

        async def until() -> RegState:
            while (state := ua.registration_state(name)) not in states:
                await self._wait_change()
            return state

        return await asyncio.wait_for(until(), timeout)

    def _tls_dict(self, peer: Peer) -> dict[str, Any] | None:
        info = self._transports.tls_info(peer)
        return info.to_dict() if info is not None else None

    def signalling(self, peer: Peer) -> dict[str, Any]:
        """How signalling to ``peer`` travels: transport and, for TLS, version, cipher, certificate."""
        return {"transport": peer.transport, "peer": str(peer), "tls": self._tls_dict(peer)}

    def servers(self) -> dict[str, Any]:
        """What DNS gave for each server name, the one in use and the failovers (RFC 3263)."""
        router = self._core().router
        located = {
            host: {
                "targets": [str(t) for t in found.targets],
                "in_use": str(router.resolved[host][0]) if router.resolved.get(host) else None,
                "dns": found.lines,
            }
            for host, found in self.located.items()
        }
        failovers = [{"from": str(a), "to": str(b), "why": why} for a, b, why in router.failovers]
        return {"located": located, "failovers": failovers}

    def status(self) -> dict[str, Any]:
        """What a user cares about, for the CLI's --json, the API and the web pages alike."""
        ua = self._core()
        accounts = []
        for name, reg in ua.registrations.items():
            spec = ua.accounts[name]
            accounts.append(
                {
                    "name": name,
                    "aor": str(spec.aor),
                    "transport": spec.transport,
                    "registration": ua.registration_state(name).value,
                    "reason": reg.reason,
                    "status": reg.status,
                    "expires_in": None
                    if reg.expires_at is None
                    else max(0, round(reg.expires_at - self._now())),
                    "server": str(ua.router.registrar_peer(name)),
                    "contact": str(reg.contact),
                    "outbound": spec.outbound,
                    "outbound_granted": reg.outbound_granted,
                    "flow_timer": reg.flow_timer,
                    "keepalive_s": self._flow_keepalive(name, reg),
                    "flows": [
                        {
                            **flow_summary(f, self._now()),
                            "keepalive_s": self._flow_keepalive(name, f),
                        }
                        for f in ua.flows[name]
                        if f.proxy
                    ],
                    "tls": self._tls_dict(ua.router.registrar_peer(name)),
                }
            )
        listen = {k: hostport(h, p) for k, (h, p) in ua.listen.items()}
        calls = [call.summary() for call in self.calls.values()]
        return {
            "listen": listen,
            "listen_families": {k: list(families(h)) for k, (h, _) in ua.listen.items()},
            "accounts": accounts,
            "servers": self.servers(),
            "calls": calls,
            "media_certificate": {"fingerprint": self.media_fingerprint},
            "tls_alarms": [dataclasses.asdict(a) for a in self.tls_alarms.values()],
            "nat": self.nat.status(),
        }
