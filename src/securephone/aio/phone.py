"""The Phone: one object that runs the sans-I/O user agent on asyncio and serves every interface.

The CLI, the web pages, the JSON API and library users all drive this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.keyexport import write_key_export
from securephone.aio.media import MediaChannel, bind_rtp_pair
from securephone.aio.transport import TransportLayer
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, SilenceSource
from securephone.errors import CallError, MediaError, ProtocolError
from securephone.media.codecs.dtmf import DtmfDigit
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
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.sdp.crypto import redact
from securephone.sdp.offer_answer import MediaCapabilities
from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.events import (
    CallMediaUpdated,
    CallStateChanged,
    Event,
    HoldChanged,
    IncomingCall,
    InfoReceived,
    RegistrationChanged,
    RequestCompleted,
    RequestFailed,
)
from securephone.sip.message import Request, Response
from securephone.sip.registration import RegState, RetryPolicy
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent
from securephone.store import zrtpcache
from securephone.store.config import AccountConfig, Config
from securephone.tls import TlsConfigError, client_context, server_context

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]
KEEP_ENDED_CALLS = 50
SourceFactory = Callable[[Call], AudioSource]
SinkFactory = Callable[[Call], AudioSink]


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
    )


class SipTrace:
    """Writes every SIP message in and out to a file, with time, direction and peer."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a", encoding="utf-8")

    def __call__(self, direction: str, peer: Peer, data: bytes) -> None:
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1000) % 1000:03d}Z"
        )
        arrow = "<<" if direction == "in" else ">>"
        text = redact(data.decode("utf-8", errors="replace"))  # SDES keys never reach a trace
        self._file.write(f"{stamp} {arrow} {direction} {peer} ({len(data)} bytes)\n{text}\n")
        self._file.flush()

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

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the listeners, add the accounts and start registering."""
        if self._trace_path is not None:
            self._trace = SipTrace(self._trace_path)
            self._transports.trace = self._trace
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
        listen = await self._open_listeners()
        self.ua = UserAgent(
            listen,
            user_agent=self.config.sip.user_agent,
            max_calls=self.config.calls.max_calls,
            incoming_ring_timeout=self.config.calls.ring_timeout,
        )
        self.ua.calls.offer_check = self._check_offer
        for account in self.config.accounts:
            try:
                self.ua.add_account(account_spec(account))
            except ValueError as exc:
                await self._transports.close()
                raise PhoneError(str(exc)) from None
        now = self._now()
        for account in self.config.accounts:
            if account.register_:
                self.ua.register(account.name, now)
        self._pump()

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
            log.info("listening for SIP on %s:%s:%d", name, *listen[name])
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
        if isinstance(message, bytes):
            ua.receive_datagram(message, peer, self._now())
        else:
            ua.receive_message(message, peer, self._now())
        self._pump()

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
                "account %s: %s -> %s: %s",
                event.account,
                change.old.value,
                change.new.value,
                change.reason,
            )
        elif isinstance(event, RequestCompleted | RequestFailed):
            self._resolve(event)
        elif isinstance(event, IncomingCall):
            self._incoming(event)
        elif isinstance(event, CallStateChanged | CallMediaUpdated | HoldChanged | InfoReceived):
            self._call_event(event)
        for listener in list(self._listeners):
            listener(event)

    # -- calls -------------------------------------------------------------------------------------
    def _call_event(
        self, event: CallStateChanged | CallMediaUpdated | HoldChanged | InfoReceived
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
            self.answer(call)

    def _media_updated(self, call: Call) -> None:
        sdp, channel = call.sdp, call.channel
        if sdp is None or channel is None or sdp.negotiated is None:
            return
        media = sdp.negotiated
        channel.stream.configure(media)
        required = sdp.srtp.mode == "mandatory"
        if sdp.path is not None:  # ZRTP: the keys come from the media path
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

    def _caps(self, account: str | None = None) -> MediaCapabilities:
        media = self.config.media
        spec = next((a for a in self.config.accounts if a.name == account), None)
        codecs = (spec.codecs if spec is not None else None) or media.codecs
        return MediaCapabilities(
            local_address=self.config.media_address,
            codecs=tuple(codecs),
            opus_payload_type=opus_payload_type(media.dtmf_payload_type),
            opus_fmtp=opus_fmtp(media.opus_bitrate),
            telephone_event_pt=media.dtmf_payload_type,
        )

    def _new_media(self, transport: str, account: str | None) -> tuple[SdpMedia, MediaChannel]:
        """RTP sockets, a media stream and the SDP negotiator for one call."""
        media = self.config.media
        sockets = bind_rtp_pair(self.config.media_address, media.port_min, media.port_max)
        stream = MediaStream(
            f"{secrets.token_hex(4)}@{self.config.media_address}",
            jitter_depth=media.jitter_buffer_frames,
        )
        stream.symmetric_rtp = media.symmetric_rtp
        channel = MediaChannel(stream, sockets)
        policy = self._srtp_policy(account, transport)
        resources = KeyingResources(stream.ssrc, self._zrtp_cache)
        return SdpMedia(self._caps(account), channel.local_port, policy, resources), channel

    def _check_offer(
        self, account: str | None, invite: Request, transport: str
    ) -> MediaError | None:
        """Would we refuse this offer? Judged before the phone rings (no sockets are bound)."""
        policy = self._srtp_policy(account, transport)
        trial = SdpMedia(self._caps(account), 9, policy, KeyingResources(0, self._zrtp_cache))
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
        try:
            uri = SipUri.parse(target)
        except ProtocolError as exc:
            raise PhoneError(f"bad URI {target!r}: {exc}") from None
        if account is not None and account not in ua.accounts:
            raise PhoneError(f"no account named {account!r}")
        try:
            transport = ua.router.route_peer(ua.router.account(account), uri).transport
        except ValueError as exc:
            raise PhoneError(str(exc)) from None
        sdp, channel = self._new_media(transport, account)
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

    # -- typed call commands (the Call handle and the web actions use these) ----------------------
    def answer(self, call: Call) -> None:
        """Answer an incoming call (media from the phone's source and sink factories)."""
        if call.state is not CallState.INCOMING:
            raise PhoneError(f"the call is {call.state.value}, not ringing")
        peer = self._core().calls.peer_of(call.key)
        sdp, channel = self._new_media(peer.transport if peer else "udp", call.account)
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
        try:
            uri = SipUri.parse(target)
        except Exception as exc:
            raise PhoneError(f"bad URI {target!r}: {exc}") from None
        if account is not None and account not in ua.accounts:
            raise PhoneError(f"no account named {account!r}")
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
                    "registration": reg.state.value,
                    "reason": reg.reason,
                    "status": reg.status,
                    "expires_in": None
                    if reg.expires_at is None
                    else max(0, round(reg.expires_at - self._now())),
                    "tls": self._tls_dict(ua.router.registrar_peer(name)),
                }
            )
        listen = {k: f"{h}:{p}" for k, (h, p) in ua.listen.items()}
        calls = [call.summary() for call in self.calls.values()]
        return {"listen": listen, "accounts": accounts, "calls": calls}
