"""Every call of one user agent: INVITE/ACK/CANCEL/BYE, re-INVITE hold, 2xx retransmission, timers.

RFC 3261 §13 (INVITE), §14 (re-INVITE, glare), §15 (BYE), §9 (CANCEL), RFC 6026, RFC 3326
(Reason). Sans-I/O and built from the parts below it — the transaction endpoint, the router and the
digest clients — it never calls back up into the user agent. Events go to the one ordered queue
it is given.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import secrets
from collections.abc import Callable, Mapping

from securephone.errors import CallError, MediaError, ProtocolError
from securephone.sip.auth import DigestClient
from securephone.sip.callsession import CallMedia, CallSession, EventQueue
from securephone.sip.callstate import CallEnding, CallState, Trigger
from securephone.sip.dialog import Dialog, DialogId
from securephone.sip.endpoint import SipEndpoint, new_tag
from securephone.sip.events import (
    CallMediaUpdated,
    HoldChanged,
    IncomingCall,
    InfoReceived,
    RequestReceived,
    SecurityAlarm,
)
from securephone.sip.headers import NameAddr
from securephone.sip.loglimit import LogLimiter
from securephone.sip.message import Headers, Request, Response, make_response
from securephone.sip.router import Router
from securephone.sip.sessiontimer import (
    SESSION_EXPIRES,
    TIMER,
    SessionTimer,
    TooSmall,
    for_request,
    for_response,
    supports_timer,
)
from securephone.sip.transaction import server_key
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri

log = logging.getLogger(__name__)

SDP = "application/sdp"
DEFAULT_INCOMING_RING = 120.0  # seconds an unanswered incoming call may ring before 480
MAX_FORKS = 8  # other forks' 2xx a call ACKs and BYEs (RFC 3261 §13.2.2.4); more are ignored
_CANCELLED = (CallEnding.CANCELLED_HERE, "cancelled")
_HUNG_UP = (CallEnding.HUNG_UP_HERE, "hung up")

# The phone's judgement of an incoming offer before anything rings: (account, INVITE, transport)
# -> the refusal, or None. It is the media policy of the layer above, handed down.
OfferCheck = Callable[[str | None, Request, str], MediaError | None]


def media_ending(exc: MediaError) -> CallEnding:
    """A media refusal caused by the security policy is said so; others are media refusals."""
    return CallEnding.SECURITY_REFUSED if exc.security else CallEnding.MEDIA_REFUSED


class CallManager:
    """Every call of one user agent, keyed by Call-ID."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        router: Router,
        auth: Mapping[str, DigestClient],
        events: EventQueue,
        *,
        max_calls: int = 4,
        incoming_ring_timeout: float = DEFAULT_INCOMING_RING,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.router = router
        self.auth = auth
        self.events = events
        self.max_calls = max_calls
        self.incoming_ring_timeout = incoming_ring_timeout
        self.rng = rng or random.Random()
        self.calls: dict[str, CallSession] = {}
        self.offer_check: OfferCheck | None = None
        self._by_tx: dict[str, str] = {}  # our INVITE / re-INVITE / BYE / CANCEL tx -> call key
        self._by_dialog: dict[DialogId, str] = {}
        self._by_invite: dict[str, str] = {}  # server INVITE transaction id -> call key
        self.session_expires: int | None = SESSION_EXPIRES  # RFC 4028 asked as UAC; None: off
        self.busy_log = LogLimiter(log)  # an INVITE flood at the call limit: counts, not lines
        # offers refused (no SRTP where it is mandatory, nothing in common): anyone can send
        # such INVITEs, so a burst of warnings per interval, then counts
        self.refusal_log = LogLimiter(log, level=logging.WARNING)

    # -- helpers -----------------------------------------------------------------------------------
    def get(self, key: str) -> CallSession:
        call = self.calls.get(key)
        if call is None:
            raise CallError(f"no call {key}")
        return call

    def active(self) -> list[CallSession]:
        return [c for c in self.calls.values() if not c.ended]

    def _send(self, request: Request, peer: Peer, now: float, *, keep_via: bool = False) -> str:
        self.router.stamp_request(request, peer, keep_via=keep_via)
        return self.endpoint.send_request(request, peer, now)

    def _send_stateless(self, message: Request | Response, peer: Peer) -> None:
        if isinstance(message, Request):
            self.router.stamp_request(message, peer)
        self.endpoint.send_stateless(message, peer)

    def _respond(self, tx: str, response: Response, now: float) -> None:
        self.endpoint.send_response(tx, self.router.stamp_response(response), now)

    def _dialog_peer(self, call: CallSession) -> Peer:
        dialog = call.dialog
        assert dialog is not None
        spec = self.router.account(call.account)
        peer = self.router.route_peer(spec, dialog.next_hop(), use_proxy=False)
        first = call.peer
        if first is not None and first.reliable and not dialog.route_set:
            return first  # reuse the connection the INVITE went or came on
        return peer

    def peer_of(self, key: str) -> Peer | None:
        """Where this call's signalling goes (the first hop)."""
        call = self.calls.get(key)
        if call is None:
            return None
        return self._dialog_peer(call) if call.dialog is not None else call.peer

    def _local_contact(self, call: CallSession, transport: str) -> NameAddr:
        invite = call.invite
        secure = (
            invite is not None and isinstance(invite.uri, SipUri) and invite.uri.scheme == "sips"
        )
        spec = self.router.account(call.account)
        return self.router.contact_for(spec, transport, secure=secure, peer=call.peer)

    # -- outgoing calls ------------------------------------------------------------------------------
    def dial(
        self,
        target: SipUri,
        media: CallMedia,
        now: float,
        account: str | None,
        ring_timeout: float | None = None,
    ) -> CallSession:
        """Send an INVITE with our offer (RFC 3261 §13.2.1); give up after ``ring_timeout``."""
        spec = self.router.account(account)
        if account and spec is None:
            raise CallError(f"no account named {account!r}")
        try:
            peer = self.router.route_peer(spec, target)
        except ValueError as exc:
            raise CallError(str(exc)) from None
        key = secrets.token_hex(16)
        call = CallSession(
            key, outgoing=True, account=account, remote=str(target), events=self.events, now=now
        )
        call.media = media
        call.local_tag = new_tag()
        if ring_timeout is not None:
            call.ring_deadline = now + ring_timeout
        headers = Headers()
        local = self.router.local_identity(spec, peer)
        headers.add("From", str(local.with_params(tag=call.local_tag)))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", key)
        headers.add("CSeq", "1 INVITE")
        headers.add("Max-Forwards", "70")
        secure = target.scheme == "sips"
        contact = self.router.contact_for(spec, peer.transport, secure=secure, peer=peer)
        headers.add("Contact", str(contact))
        headers.add("Allow", self.router.allow)
        if self.session_expires is not None:  # RFC 4028 §7.1; the UAS picks the refresher
            headers.add("Supported", TIMER)
            headers.add("Session-Expires", str(self.session_expires))
        headers.add("Content-Type", SDP)
        try:
            request = Request("INVITE", target, headers, media.create_offer(False))
        except MediaError as exc:
            raise CallError(str(exc)) from None
        self.calls[key] = call
        self._send_invite(call, request, peer, now)
        return call

    def _send_invite(self, call: CallSession, request: Request, peer: Peer, now: float) -> None:
        call.invite, call.peer = request, peer
        tx = self._send(request, peer, now)
        call.invite_tx = tx
        self._by_tx[tx] = call.key

    def on_response(self, tx: str, response: Response, now: float) -> bool:
        """A response for one of our call transactions; False when it is not ours."""
        key = self._by_tx.get(tx)
        if key is None or key not in self.calls:
            return False
        call = self.calls[key]
        if response.status >= 200 and tx != call.invite_tx:
            del self._by_tx[tx]
        if tx == call.invite_tx:
            self._on_invite_response(call, response, now)
        elif tx == call.reinvite_tx:
            self._on_reinvite_response(call, response, now)
        elif response.cseq.method == "BYE":
            self._on_bye_response(call, response, now)
        return True

    def _on_invite_response(self, call: CallSession, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            self._on_provisional(call, response, now)
        elif status < 300:
            self._on_invite_success(call, response, now)
        elif self._retried(call, response, now):
            return
        elif not self._retry_with_auth(call, response, now):
            self._on_invite_failure(call, response, now)

    def _on_provisional(self, call: CallSession, response: Response, now: float) -> None:
        if response.status == 100:
            return
        call.provisional = True
        if call.state is CallState.CALLING:
            text = f"{response.status} {response.reason}"
            call.fire(Trigger.PROVISIONAL, text, response.status, now)
        if call.hangup_pending:
            self._send_cancel(call, now)

    def _on_invite_failure(self, call: CallSession, response: Response, now: float) -> None:
        status = response.status
        reason = f"{status} {response.reason}"
        if call.state is CallState.TERMINATING:
            call.end_pending(now, CallEnding.CANCELLED_HERE, status=status)
            return
        ending = CallEnding.MEDIA_REFUSED if status in (488, 606) else CallEnding.REJECTED
        if status in (401, 407):
            reason += ": authentication failed"
        call.end(ending, reason, status, now)

    def _invite_failover(self, call: CallSession, why: str, now: float) -> bool:
        """RFC 3263 §4.3: a new INVITE transaction to the next server, before any answer came."""
        if call.state is not CallState.CALLING or call.provisional or call.dialog is not None:
            return False
        if call.invite is None or call.peer is None:
            return False
        following = self.router.failover(call.peer, why)
        if following is None:
            return False
        log.info("INVITE %s: %s %s, trying %s", call.key[:8], call.peer, why, following)
        call.invite.headers.remove("Authorization")  # the next server challenges anew
        call.invite.headers.remove("Proxy-Authorization")
        call.auth_tries = 0
        self._send_invite(call, call.invite, following, now)
        return True

    def _retried(self, call: CallSession, response: Response, now: float) -> bool:
        """A failure that a new INVITE may cure: 503 (another server), 422 (a longer interval)."""
        if response.status == 503:
            return self._invite_failover(call, "answered 503", now)
        return response.status == 422 and self._retry_with_min_se(call, response, now)

    def _retry_with_min_se(self, call: CallSession, response: Response, now: float) -> bool:
        """RFC 4028 §7.4: after 422, the INVITE once more asking for at least the Min-SE."""
        value = (response.headers.get("Min-SE") or "").split(";")[0].strip()
        if call.min_se_retried or call.invite is None or call.peer is None:
            return False
        if (
            call.state is not CallState.CALLING
            or not value.isdigit()
            or not 0 < int(value) <= 86400
        ):
            return False
        min_se = int(value)
        asked = (call.invite.headers.get("Session-Expires") or "").split(";")[0].strip()
        if asked.isdigit() and min_se <= int(asked):
            return False  # we already asked for that much: retrying cannot help
        again = call.invite.next_in_sequence(Session_Expires=str(min_se), Min_SE=str(min_se))
        call.min_se_retried = True
        call.auth_tries = 0  # the proxy may challenge the new request afresh
        call.provisional = False
        log.info("INVITE %s: 422, asking again with Session-Expires %d", call.key[:8], min_se)
        self._send_invite(call, again, call.peer, now)
        return True

    def _retry_with_auth(self, call: CallSession, response: Response, now: float) -> bool:
        """One authenticated retry of our INVITE after 401/407 (RFC 3261 §22.2)."""
        if response.status not in (401, 407) or call.auth_tries or call.account is None:
            return False
        auth = self.auth.get(call.account)
        if call.state is CallState.TERMINATING or auth is None or call.invite is None:
            return False
        retry = auth.retry(call.invite, response)
        if retry is None or call.peer is None:
            return False
        call.auth_tries += 1
        call.provisional = False
        self._send_invite(call, retry, call.peer, now)
        return True

    def _on_invite_success(self, call: CallSession, response: Response, now: float) -> None:
        assert call.invite is not None
        if call.dialog is None or call.dialog.remote_tag != response.to.tag:
            if call.dialog is not None:  # a second fork answered: ACK and BYE it (§13.2.2.4)
                self._ack_and_bye_fork(call, response, now)
                return
            try:
                call.dialog = Dialog.as_uac(call.invite, response)
            except ProtocolError as exc:
                call.end(CallEnding.PROTOCOL_ERROR, f"bad 2xx: {exc}", 502, now)
                return
            self._by_dialog[call.dialog.id] = call.key
        self._send_ack(call, call.invite.cseq.seq, None)
        if call.state is CallState.TERMINATING:  # answered after we hung up: end it at once
            self._send_bye(call, now, *(call.pending or _CANCELLED), status=response.status)
        elif call.state in (CallState.CALLING, CallState.RINGING):
            self._answer_received(call, response, now)
        # else: a retransmitted 2xx; the ACK above was all it needed

    def _answer_received(self, call: CallSession, response: Response, now: float) -> None:
        assert call.media is not None
        try:
            call.media.receive_answer(response.body)
        except MediaError as exc:
            reason = f"unacceptable answer: {exc}"
            self._send_bye(call, now, media_ending(exc), reason, status=response.status)
            return
        call.fire(Trigger.ACCEPTED, f"{response.status} {response.reason}", response.status, now)
        self._arm_session(call, for_response(response), now)
        self.events.append(CallMediaUpdated(call.key))

    def _send_ack(self, call: CallSession, cseq: int, body: bytes | None) -> None:
        """RFC 3261 §13.2.2.4: the ACK for a 2xx is its own transaction, sent to the dialog's next hop."""
        assert call.dialog is not None
        ack = call.dialog.create_request("ACK", cseq=cseq)
        if body:
            ack.headers.add("Content-Type", SDP)
            ack.body = body
        self._send_stateless(ack, self._dialog_peer(call))

    def _ack_and_bye_fork(self, call: CallSession, response: Response, now: float) -> None:
        """ACK every 2xx of the fork, BYE it once; at most ``MAX_FORKS`` forks a call (whoever
        answers picks where the BYE goes: more 2xx with new tags are ignored)."""
        assert call.invite is not None
        tag = response.to.tag
        known = tag in call.forks
        if not known and len(call.forks) >= MAX_FORKS:
            return
        try:
            fork = Dialog.as_uac(call.invite, response)
        except ProtocolError:
            return
        spec = self.router.account(call.account)
        peer = self.router.route_peer(spec, fork.next_hop(), use_proxy=False)
        self._send_stateless(fork.create_request("ACK", cseq=call.invite.cseq.seq), peer)
        if not known:  # a retransmitted 2xx of this fork needed only the ACK
            call.forks.add(tag)
            self._send(fork.create_request("BYE"), peer, now)

    def _send_cancel(self, call: CallSession, now: float) -> None:
        """RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE."""
        invite = call.invite
        assert invite is not None and call.peer is not None
        headers = Headers()
        for name in ("Via", "From", "To", "Call-ID", "Route"):
            for value in invite.headers.get_all(name):
                headers.add(name, value)
        headers.set("Via", str(invite.top_via))
        headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
        headers.add("Max-Forwards", "70")
        cancel = Request("CANCEL", invite.uri, headers)
        tx = self._send(cancel, call.peer, now, keep_via=True)
        self._by_tx[tx] = call.key
        call.hangup_pending = False  # sent; the 487 to the INVITE ends the call

    # -- incoming calls --------------------------------------------------------------------------------
    def on_request(self, event: RequestReceived, now: float) -> bool:
        """Requests that belong to calls; False when the user agent should handle it."""
        request = event.request
        if request.method == "ACK":
            self._on_ack(request, now)
            return True
        if event.transaction_id is None:
            return False
        if request.method == "CANCEL":
            self._on_cancel(request, event.transaction_id, now)
            return True
        if request.to.tag:
            return self._in_dialog(request, event.transaction_id, now, event.peer)
        if request.method == "INVITE":
            self._on_invite(request, event, now)
            return True
        return False

    def _on_invite(self, request: Request, event: RequestReceived, now: float) -> None:
        tx = event.transaction_id
        assert tx is not None
        if len(self.active()) >= self.max_calls:
            self.busy_log.note(
                now, "busy", f"{len(self.active())} calls already (limit {self.max_calls})"
            )
            self._respond(tx, make_response(request, 486, to_tag=new_tag()), now)
            return
        if request.call_id in self.calls:
            self._respond(tx, make_response(request, 482, to_tag=new_tag()), now)
            return
        timer = for_request(request)
        if isinstance(timer, TooSmall):
            self._respond(tx, self._too_small(request, timer, new_tag()), now)
            return
        call = CallSession(
            request.call_id,
            outgoing=False,
            account=self.router.account_for(request),
            remote=str(request.from_.uri),
            events=self.events,
            now=now,
        )
        call.remote_display_name = request.from_.display_name
        call.invite, call.invite_tx, call.local_tag, call.peer = request, tx, new_tag(), event.peer
        call.ring_deadline = now + self.incoming_ring_timeout
        call.session_timer = timer  # runs from the ACK
        self.calls[call.key] = call
        self._by_invite[tx] = call.key
        self.events.append(IncomingCall(call.key, request))
        refusal = self._check_offer(call, request, event.peer.transport)
        if refusal is not None:  # refused before it rings: no 180 for an offer we cannot take
            self.refusal_log.note(now, "offer refused", f"call {call.key[:8]}: {refusal}")
            self._reject(call, refusal.status, now, media_ending(refusal), str(refusal))
            return
        ringing = make_response(request, 180, to_tag=call.local_tag)
        ringing.headers.add("Contact", str(self._local_contact(call, event.peer.transport)))
        self._respond(tx, ringing, now)

    def _check_offer(
        self, call: CallSession, request: Request, transport: str
    ) -> MediaError | None:
        if self.offer_check is None or not request.body:
            return None
        return self.offer_check(call.account, request, transport)

    def answer(self, key: str, media: CallMedia, now: float) -> None:
        """Accept an incoming call with our answer (or our offer if the INVITE had none).

        The media starts (CallMediaUpdated) once the ACK confirms the call, never before: the
        SDP's address is not trusted to receive packets until the caller has answered our 2xx.
        """
        call = self.get(key)
        if call.state is not CallState.INCOMING or call.invite is None or call.invite_tx is None:
            raise CallError(f"call {key} is {call.state.value}, not ringing here")
        call.media = media
        try:
            body = self._first_answer(call, media, call.invite)
        except MediaError as exc:
            self.refusal_log.note(now, "offer refused", f"call {key[:8]}: {exc}")
            self._reject(call, exc.status, now, media_ending(exc), str(exc))
            return
        try:
            call.dialog = Dialog.as_uas(call.invite, call.local_tag, 0)
        except ProtocolError as exc:
            self._reject(call, 400, now, CallEnding.PROTOCOL_ERROR, str(exc))
            return
        ok = self._ok(call, call.invite, body)
        self._by_dialog[call.dialog.id] = key
        call.ring_deadline = None
        self._respond(call.invite_tx, ok, now)
        self._start_ok_retransmission(call, ok, now)
        call.fire(Trigger.ANSWERED, "answered, waiting for ACK", 200, now)

    def _first_answer(self, call: CallSession, media: CallMedia, invite: Request) -> bytes:
        if invite.body:
            return media.receive_offer(invite.body, False)
        call.offer_in_ack = True
        return media.create_offer(False)

    def _ok(self, call: CallSession, request: Request, body: bytes) -> Response:
        """A 2xx to INVITE: Record-Route copied (§12.1.1), our Contact, the SDP."""
        ok = make_response(request, 200, to_tag=call.local_tag)
        for value in request.headers.get_all("Record-Route"):
            ok.headers.add("Record-Route", value)
        transport = call.peer.transport if call.peer else "udp"
        ok.headers.add("Contact", str(self._local_contact(call, transport)))
        ok.headers.add("Allow", self.router.allow)
        if call.session_timer is not None:  # RFC 4028 §9
            ok.headers.add("Session-Expires", call.session_timer.header(we_are_uac=False))
            if supports_timer(request):
                ok.headers.add("Require", TIMER)
        ok.headers.add("Content-Type", SDP)
        ok.body = body
        return ok

    @staticmethod
    def _too_small(request: Request, small: TooSmall, to_tag: str | None = None) -> Response:
        """RFC 4028 §8.1: 422 Session Interval Too Small, with our Min-SE."""
        response = make_response(request, 422, "Session Interval Too Small", to_tag=to_tag)
        response.headers.add("Min-SE", str(small.min_se))
        return response

    def _arm_session(self, call: CallSession, timer: SessionTimer | None, now: float) -> None:
        """Start (or restart, after a refresh) the session timer (RFC 4028 §10); None stops it."""
        call.session_timer = timer
        call.session_refresh_at = timer.refresh_at(now) if timer else None
        call.session_expires_at = timer.expires_at(now) if timer else None

    def _start_ok_retransmission(self, call: CallSession, ok: Response, now: float) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx at T1, 2T1 ... T2 until the ACK, give up at 64*T1."""
        t1 = self.endpoint.timers.t1
        call.answer_ok = ok
        call.ok_interval = t1
        reliable = call.peer is not None and call.peer.reliable
        call.ok_next = None if reliable else now + t1
        call.ok_deadline = now + 64 * t1

    def reject(self, key: str, status: int, now: float) -> None:
        """Refuse an incoming call (486 Busy Here, 603 Decline ...)."""
        call = self.get(key)
        if call.state is not CallState.INCOMING:
            raise CallError(f"call {key} is {call.state.value}, not ringing here")
        self._reject(call, status, now, CallEnding.DECLINED_HERE)

    def _reject(
        self,
        call: CallSession,
        status: int,
        now: float,
        ending: CallEnding,
        reason: str | None = None,
    ) -> None:
        assert call.invite is not None and call.invite_tx is not None
        response = make_response(call.invite, status, to_tag=call.local_tag)
        if reason and status == 488:
            response.headers.add("Warning", f'304 securephone "{_quoted_text(reason)}"')
        self._respond(call.invite_tx, response, now)
        call.end(ending, reason or f"rejected with {status} {response.reason}", status, now)

    def _on_ack(self, ack: Request, now: float) -> None:
        key = self._by_dialog.get((ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        call = self.calls.get(key) if key else None
        if call is None or call.answer_ok is None:
            return  # a retransmitted ACK, or one for a call we no longer know
        call.ok_next = call.ok_deadline = None
        call.answer_ok = None
        confirms = call.state is CallState.ANSWERING  # the ACK of the call's first 2xx
        answer_in_ack = call.offer_in_ack
        if answer_in_ack and call.media is not None:
            call.offer_in_ack = False
            try:
                call.media.receive_answer(ack.body)
            except MediaError as exc:
                self._bye_now(call, now, media_ending(exc), f"unacceptable answer in ACK: {exc}")
                return
        if confirms:
            call.fire(Trigger.ACKED, "ACK received", 200, now)
            self._arm_session(call, call.session_timer, now)
        elif call.state is CallState.TERMINATING and call.hangup_pending:
            self._send_bye(call, now, *(call.pending or _HUNG_UP))  # hung up while answering
            return
        if call.state is CallState.CONNECTED and (confirms or answer_in_ack):
            self.events.append(CallMediaUpdated(call.key))

    def _bye_now(self, call: CallSession, now: float, ending: CallEnding, reason: str) -> None:
        """End a confirmed call from our side, whatever state the 2xx/ACK exchange left it in."""
        if call.state is CallState.ANSWERING:
            call.fire(Trigger.ACKED, "ACK received", 200, now)
        self._send_bye(call, now, ending, reason)

    def _on_cancel(self, cancel: Request, tx: str, now: float) -> None:
        """RFC 3261 §9.2: 200 to the CANCEL; 487 to the INVITE if it is still unanswered."""
        invite_tx = server_key(cancel, method="INVITE")
        key = self._by_invite.get(invite_tx)
        if key is None or key not in self.calls:
            self._respond(tx, make_response(cancel, 481, to_tag=new_tag()), now)
            return
        call = self.calls[key]
        self._respond(tx, make_response(cancel, 200, to_tag=call.local_tag), now)
        if call.state is CallState.INCOMING:
            assert call.invite is not None
            terminated = make_response(call.invite, 487, to_tag=call.local_tag)
            self._respond(invite_tx, terminated, now)
            ending = CallEnding.CANCELLED_THERE
            call.end(ending, ending.value, 487, now)

    # -- in-dialog requests ------------------------------------------------------------------------------
    def _in_dialog(self, request: Request, tx: str, now: float, peer: Peer) -> bool:
        key = self._by_dialog.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        call = self.calls.get(key) if key else None
        if call is None or call.dialog is None or call.ended:
            self._respond(tx, make_response(request, 481), now)
            return True
        if not _on_dialog_flow(call.peer, peer):
            self.endpoint.bad_input.note(
                now, "in-dialog request off the TLS flow", f"{request.method} from {peer} refused"
            )
            self._respond(tx, make_response(request, 403, "Not On The Dialog's TLS Flow"), now)
            return True
        if not call.dialog.check_remote_cseq(request):
            self._respond(tx, make_response(request, 500), now)
            return True
        handler = {
            "BYE": self._on_bye,
            "INVITE": self._on_reinvite,
            "INFO": self._on_info,
        }.get(request.method, self._on_other_in_dialog)
        handler(call, request, tx, now)
        return True

    def _on_bye(self, call: CallSession, request: Request, tx: str, now: float) -> None:
        self._respond(tx, make_response(request, 200), now)
        ending = CallEnding.HUNG_UP_THERE
        if call.state is CallState.TERMINATING and call.pending is not None:
            call.end_pending(now, ending)  # BYEs crossed: our own cause (e.g. security) stands
            return
        call.end(ending, ending.value, None, now)

    def _on_info(self, call: CallSession, request: Request, tx: str, now: float) -> None:
        self._respond(tx, make_response(request, 200), now)
        self.events.append(InfoReceived(call.key, request))

    def _on_other_in_dialog(self, call: CallSession, request: Request, tx: str, now: float) -> None:
        if request.method == "OPTIONS":
            self._respond(tx, self.router.options_response(request), now)
            return
        response = make_response(request, 501)
        response.headers.add("Allow", self.router.allow)
        self._respond(tx, response, now)

    def _on_reinvite(self, call: CallSession, request: Request, tx: str, now: float) -> None:
        """RFC 3261 §14.2: a target refresh with a new offer (hold/resume, new address)."""
        assert call.dialog is not None and call.media is not None
        if call.reinvite_tx is not None or call.state is not CallState.CONNECTED:
            self._respond(tx, make_response(request, 491), now)  # glare (§14.2)
            return
        timer = for_request(request)
        if isinstance(timer, TooSmall):
            self._respond(tx, self._too_small(request, timer), now)
            return
        try:
            body = call.media.receive_offer(request.body, call.local_hold) if request.body else b""
        except MediaError as exc:
            response = make_response(request, exc.status)
            response.headers.add("Warning", f'304 securephone "{_quoted_text(str(exc))}"')
            self._respond(tx, response, now)  # the call goes on as before (§14.2)
            if exc.security:
                self.events.append(SecurityAlarm(call.key, str(exc)))
            return
        if not body:
            body = call.media.create_offer(call.local_hold)
            call.offer_in_ack = True
        call.dialog.refresh_target(request)
        self._arm_session(call, timer, now)  # a re-INVITE is also a session refresh
        ok = self._ok(call, request, body)
        self._respond(tx, ok, now)
        self._start_ok_retransmission(call, ok, now)
        self._hold_update(call, call.local_hold, call.media.remote_hold)
        if not call.offer_in_ack:
            self.events.append(CallMediaUpdated(call.key))

    # -- hold / resume -----------------------------------------------------------------------------------
    def hold(self, key: str, on: bool, now: float) -> None:
        """Put the call on hold (sendonly re-offer) or resume it (RFC 3264 §8.4)."""
        call = self.get(key)
        if call.state is not CallState.CONNECTED or call.dialog is None or call.media is None:
            raise CallError(f"call {key} is {call.state.value}, not connected")
        if call.reinvite_tx is not None:
            call.reinvite_wanted = on
            return
        request = call.dialog.create_request("INVITE")
        transport = self._dialog_peer(call).transport
        request.headers.add("Contact", str(self._local_contact(call, transport)))
        request.headers.add("Allow", self.router.allow)
        if self.session_expires is not None:
            request.headers.add("Supported", TIMER)
        if call.session_timer is not None:  # RFC 4028 §7.4: keep the agreed interval
            request.headers.add("Session-Expires", call.session_timer.header(we_are_uac=True))
        request.headers.add("Content-Type", SDP)
        request.body = call.media.create_offer(on)
        call.reinvite_request = request
        call.reinvite_wanted = on
        tx = self._send(request, self._dialog_peer(call), now)
        call.reinvite_tx = tx
        self._by_tx[tx] = key

    def _on_reinvite_response(self, call: CallSession, response: Response, now: float) -> None:
        request = call.reinvite_request
        assert request is not None and call.media is not None
        status = response.status
        if status < 200:
            return
        wanted = bool(call.reinvite_wanted)
        call.reinvite_tx = None
        if status < 300:
            self._reinvite_accepted(call, request, response, wanted, now)
        elif status == 491:
            call.glare_at = now + call.glare_delay(self.rng)
        elif status in (408, 481):  # RFC 3261 §14.1: the dialog is gone
            ending = CallEnding.TIMED_OUT if status == 408 else CallEnding.PROTOCOL_ERROR
            self._send_bye(call, now, ending, f"re-INVITE failed: {status} {response.reason}")
        else:
            log.warning("call %s: re-INVITE refused: %d %s", call.key[:8], status, response.reason)
            call.reinvite_wanted = None

    def _reinvite_accepted(
        self, call: CallSession, request: Request, response: Response, hold: bool, now: float
    ) -> None:
        assert call.media is not None and call.dialog is not None
        self._send_ack(call, request.cseq.seq, None)
        call.dialog.update_from_response(response)
        try:
            call.media.receive_answer(response.body)
        except MediaError as exc:
            reason = f"unacceptable answer to re-INVITE: {exc}"
            self._send_bye(call, now, media_ending(exc), reason)
            return
        self._arm_session(call, for_response(response), now)
        self._hold_update(call, hold, call.media.remote_hold)
        self.events.append(CallMediaUpdated(call.key))

    def _hold_update(self, call: CallSession, local: bool, remote: bool) -> None:
        if (call.local_hold, call.remote_hold) != (local, remote):
            call.local_hold, call.remote_hold = local, remote
            self.events.append(HoldChanged(call.key, local, remote))

    # -- hang up -------------------------------------------------------------------------------------------
    def hangup(self, key: str, now: float) -> None:
        """End the call whatever its state: CANCEL, decline, or BYE."""
        call = self.get(key)
        state = call.state
        if state in (CallState.CALLING, CallState.RINGING):
            self._cancel(call, now, *_CANCELLED)
        elif state is CallState.INCOMING:
            self._reject(call, 603, now, CallEnding.DECLINED_HERE, "declined")
        elif state is CallState.ANSWERING:
            call.pending, call.hangup_pending = _HUNG_UP, True  # BYE once the ACK arrives (§15)
            call.fire(Trigger.HANG_UP, "hanging up", None, now)
        elif state is CallState.CONNECTED:
            self._send_bye(call, now, *_HUNG_UP)

    def terminate(self, key: str, ending: CallEnding, reason: str, now: float) -> None:
        """End the call for a cause (e.g. the media keying failed): CANCEL, refuse or BYE with a
        ``Reason`` header saying why (RFC 3326)."""
        call = self.get(key)
        state = call.state
        if state in (CallState.CALLING, CallState.RINGING):
            self._cancel(call, now, ending, reason)
        elif state is CallState.INCOMING:
            self._reject(call, 488 if ending.reason_cause == 488 else 480, now, ending, reason)
        elif state is CallState.ANSWERING:
            call.pending, call.hangup_pending = (ending, reason), True
            call.fire(Trigger.HANG_UP, reason, None, now)
        elif state is CallState.CONNECTED:
            self._send_bye(call, now, ending, reason)

    def _cancel(self, call: CallSession, now: float, ending: CallEnding, reason: str) -> None:
        """Stop our unanswered INVITE: CANCEL now, or once a provisional response allows it (§9.1)."""
        call.pending = (ending, reason)
        call.fire(Trigger.HANG_UP, reason, None, now)
        if call.provisional:
            self._send_cancel(call, now)
        else:
            call.hangup_pending = True

    def _send_bye(
        self,
        call: CallSession,
        now: float,
        ending: CallEnding,
        reason: str,
        status: int | None = None,
    ) -> None:
        """BYE with a Reason header (RFC 3326) when the call ends for a cause, not a plain hang-up."""
        assert call.dialog is not None
        bye = call.dialog.create_request("BYE")
        cause = ending.reason_cause
        if cause is not None:
            bye.headers.add("Reason", f'SIP;cause={cause};text="{_quoted_text(reason)}"')
        tx = self._send(bye, self._dialog_peer(call), now)
        self._by_tx[tx] = call.key
        call.pending, call.hangup_pending = (ending, reason), False
        if call.state is not CallState.TERMINATING:
            call.fire(Trigger.HANG_UP, reason, status, now)

    def _on_bye_response(self, call: CallSession, response: Response, now: float) -> None:
        if response.status >= 200 and call.state is CallState.TERMINATING:
            call.end_pending(now, CallEnding.HUNG_UP_HERE)

    def on_failure(self, tx: str, reason: str, now: float, ending: CallEnding) -> bool:
        """A call transaction timed out (``TIMED_OUT``) or could not be sent (``TRANSPORT_FAILED``)."""
        key = self._by_tx.pop(tx, None)
        call = self.calls.get(key) if key else None
        if call is None:
            return False
        if tx == call.invite_tx:
            if self._invite_failover(call, reason, now):
                return True
            if call.state is CallState.TERMINATING:
                call.end_pending(now, CallEnding.CANCELLED_HERE, f" ({reason})")
            elif call.state in (CallState.CALLING, CallState.RINGING):
                call.end(ending, reason, 408 if ending is CallEnding.TIMED_OUT else 503, now)
        elif tx == call.reinvite_tx:
            call.reinvite_tx = None
            self._send_bye(call, now, ending, f"re-INVITE failed: {reason}")
        elif call.state is CallState.TERMINATING:
            call.end_pending(now, CallEnding.HUNG_UP_HERE, f" ({reason} on BYE)")
        return True

    def on_stray_2xx(self, response: Response) -> bool:
        """A retransmitted 2xx to INVITE after its transaction ended: ACK it again (§13.2.2.4)."""
        key = self._by_dialog.get(
            (response.call_id, response.from_.tag or "", response.to.tag or "")
        )
        call = self.calls.get(key) if key else None
        if call is None or call.dialog is None or response.cseq.method != "INVITE":
            return False
        self._send_ack(call, response.cseq.seq, None)
        return True

    # -- timers ---------------------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return min((t for c in self.calls.values() for t in c.timers()), default=None)

    def handle_timer(self, now: float) -> None:
        for call in list(self.calls.values()):
            self._ok_timers(call, now)
            self._ring_timer(call, now)
            self._session_timers(call, now)
            if call.glare_at is not None and now >= call.glare_at:
                call.glare_at = None
                if call.state is CallState.CONNECTED and call.reinvite_wanted is not None:
                    self.hold(call.key, call.reinvite_wanted, now)

    def _ok_timers(self, call: CallSession, now: float) -> None:
        if call.ok_deadline is not None and now >= call.ok_deadline:
            call.ok_next = call.ok_deadline = None
            call.answer_ok = None
            if call.state is CallState.TERMINATING and call.hangup_pending:
                self._send_bye(call, now, *(call.pending or _HUNG_UP))
            elif call.state in (CallState.ANSWERING, CallState.CONNECTED):
                self._bye_now(call, now, CallEnding.TIMED_OUT, "no ACK for our 200 OK")
        if call.ok_next is not None and now >= call.ok_next and call.answer_ok is not None:
            if call.peer is not None:
                self._send_stateless(call.answer_ok, call.peer)
            call.ok_interval = min(2 * call.ok_interval, self.endpoint.timers.t2)
            call.ok_next = now + call.ok_interval

    def _ring_timer(self, call: CallSession, now: float) -> None:
        """An unanswered call gives up: ours is cancelled, theirs gets 480 (RFC 3261 §21.4.18)."""
        if call.ring_deadline is None or now < call.ring_deadline:
            return
        call.ring_deadline = None
        waited = now - call.started_at
        reason = f"no answer within {waited:g} s"
        if call.state in (CallState.CALLING, CallState.RINGING):
            self._cancel(call, now, CallEnding.NO_ANSWER, reason)
        elif call.state is CallState.INCOMING:
            self._reject(call, 480, now, CallEnding.NO_ANSWER, reason)

    def _session_timers(self, call: CallSession, now: float) -> None:
        """RFC 4028 §10: the refresher re-INVITEs at half the interval; an unrefreshed session ends."""
        if call.state is not CallState.CONNECTED:
            return
        if call.session_expires_at is not None and now >= call.session_expires_at:
            call.session_refresh_at = call.session_expires_at = None
            reason = "the session expired without a refresh (RFC 4028)"
            log.warning("call %s: %s", call.key[:8], reason)
            self._bye_now(call, now, CallEnding.TIMED_OUT, reason)
            return
        if call.session_refresh_at is None or now < call.session_refresh_at:
            return
        if call.reinvite_tx is not None or call.answer_ok is not None:
            call.session_refresh_at = now + 2 * self.endpoint.timers.t1  # after the one in flight
            return
        call.session_refresh_at = None  # the 2xx to the refresh re-arms it
        self.hold(call.key, call.local_hold, now)

    def forget_ended(self, keep: int = 50) -> list[str]:
        """Drop the oldest ended calls beyond ``keep``; returns their keys (history lives in the store)."""
        ended = [c for c in self.calls.values() if c.ended]
        gone = {call.key for call in ended[: max(0, len(ended) - keep)]}
        if not gone:
            return []
        for key in gone:
            del self.calls[key]
        for table in (self._by_tx, self._by_dialog, self._by_invite):
            for ref in [ref for ref, key in table.items() if key in gone]:
                del table[ref]  # type: ignore[arg-type]
        return sorted(gone)


def _on_dialog_flow(first_hop: Peer | None, peer: Peer) -> bool:
    """A dialog set up over TLS takes in-dialog requests only over TLS from its flow (RFC 3261 §26.2).

    Its flow: the same connection, or the same address as the dialog's first hop (a new connection
    from that host, or our own connection to that server). A first hop we reached by name (not an IP
    literal) cannot be compared here; TLS is still required.
    """
    if first_hop is None or first_hop.transport != "tls":
        return True
    if peer.transport != "tls":
        return False
    if first_hop.conn is not None and peer.conn == first_hop.conn:
        return True
    return peer.host == first_hop.host or not _is_ip_literal(first_hop.host)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _quoted_text(text: str) -> str:
    """Text safe inside a quoted-string of a Warning or Reason header."""
    return text.replace('"', "'").replace("\\", "/")[:200]
