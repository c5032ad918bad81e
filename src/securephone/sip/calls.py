"""Call handling of the user agent: INVITE/ACK/CANCEL/BYE, re-INVITE hold, 2xx retransmission.

RFC 3261 §13 (INVITE), §14 (re-INVITE, glare), §15 (BYE), §9 (CANCEL), RFC 6026. Sans-I/O: the
``CallManager`` is part of ``UserAgent`` and sends through its transaction layer.
"""

from __future__ import annotations

import logging
import random
import secrets
from typing import TYPE_CHECKING

from securephone.sip.call import (
    Call,
    CallMedia,
    CallMediaUpdated,
    CallState,
    HoldChanged,
    IncomingCall,
    InfoReceived,
    MediaError,
)
from securephone.sip.dialog import Dialog, DialogId
from securephone.sip.endpoint import new_tag
from securephone.sip.errors import ProtocolError
from securephone.sip.events import Event, RequestReceived
from securephone.sip.headers import NameAddr
from securephone.sip.message import Headers, Request, Response, make_response
from securephone.sip.transaction import server_key
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri

if TYPE_CHECKING:
    from securephone.sip.useragent import UserAgent

log = logging.getLogger(__name__)

SDP = "application/sdp"


class CallError(Exception):
    """A call operation that cannot be done now (wrong state, unknown call)."""


class CallManager:
    """Every call of one user agent."""

    def __init__(self, ua: UserAgent, max_calls: int = 4, rng: random.Random | None = None) -> None:
        self.ua = ua
        self.max_calls = max_calls
        self.rng = rng or random.Random()
        self.calls: dict[str, Call] = {}
        self._by_tx: dict[str, str] = {}  # client transaction id -> call key
        self._by_dialog: dict[DialogId, str] = {}
        self._by_invite: dict[str, str] = {}  # server INVITE transaction id -> call key
        self._peers: dict[str, Peer] = {}  # call key -> where the remote INVITE came from
        self._byes: dict[str, str] = {}  # BYE/CANCEL transaction -> call key
        self.events: list[Event] = []

    # -- helpers -----------------------------------------------------------------------------------
    def get(self, key: str) -> Call:
        call = self.calls.get(key)
        if call is None:
            raise CallError(f"no call {key}")
        return call

    def active(self) -> list[Call]:
        return [c for c in self.calls.values() if not c.ended]

    def _emit(self, call: Call) -> None:
        self.events.extend(call.events)
        call.events.clear()

    def _end(self, call: Call, reason: str, status: int | None, now: float) -> None:
        if not call.ended:
            call.set_state(CallState.TERMINATED, reason, status, now)

    def _dialog_peer(self, call: Call) -> Peer:
        dialog = call.dialog
        assert dialog is not None
        spec = self.ua.accounts.get(call.account) if call.account else None
        peer = self.ua.route_peer(spec, dialog.next_hop(), use_proxy=False)
        incoming = self._peers.get(call.key)
        if incoming is not None and incoming.reliable and not dialog.route_set:
            return incoming  # reuse the connection the INVITE came on
        return peer

    def peer_of(self, key: str) -> Peer | None:
        """Where this call's signalling goes (the first hop)."""
        call = self.calls.get(key)
        if call is None:
            return None
        return self._dialog_peer(call) if call.dialog is not None else self._peers.get(key)

    def _local_contact(self, call: Call, transport: str) -> NameAddr:
        spec = self.ua.accounts.get(call.account) if call.account else None
        invite = call.invite
        secure = (
            invite is not None and isinstance(invite.uri, SipUri) and invite.uri.scheme == "sips"
        )
        return self.ua.contact_for(spec, transport, secure=secure)

    # -- outgoing calls ------------------------------------------------------------------------------
    def dial(self, target: SipUri, media: CallMedia, now: float, account: str | None) -> str:
        """Send an INVITE with our offer (RFC 3261 §13.2.1)."""
        spec = self.ua.accounts.get(account) if account else None
        if account and spec is None:
            raise CallError(f"no account named {account!r}")
        peer = self.ua.route_peer(spec, target)
        local = NameAddr(spec.aor, spec.display_name) if spec else NameAddr(self.ua.identity)
        key = secrets.token_hex(16)
        call = Call(key, True, account, CallState.CALLING)
        call.media = media
        call.local_tag = new_tag()
        call.started_at = now
        headers = Headers()
        headers.add("From", str(local.with_params(tag=call.local_tag)))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", key)
        headers.add("CSeq", "1 INVITE")
        headers.add("Max-Forwards", "70")
        secure = target.scheme == "sips"
        headers.add("Contact", str(self.ua.contact_for(spec, peer.transport, secure=secure)))
        headers.add("Allow", self.ua.allow)
        headers.add("Content-Type", SDP)
        request = Request("INVITE", target, headers, media.create_offer(False))
        self.calls[key] = call
        self._send_invite(call, request, peer, now)
        return key

    def _send_invite(self, call: Call, request: Request, peer: Peer, now: float) -> None:
        call.invite = request
        tx = self.ua.send(request, peer, now)
        call.invite_tx = tx
        self._by_tx[tx] = call.key
        self._peers[call.key] = peer

    def on_response(self, tx: str, response: Response, now: float) -> bool:
        """A response for one of our call transactions; False when it is not ours."""
        key = self._by_tx.get(tx) or self._byes.get(tx)
        if key is None:
            return False
        call = self.calls[key]
        if tx in self._byes:
            self._on_bye_response(call, tx, response, now)
        elif tx == call.invite_tx:
            self._on_invite_response(call, response, now)
        elif tx == call.reinvite_tx:
            self._on_reinvite_response(call, response, now)
        self._emit(call)
        return True

    def _on_invite_response(self, call: Call, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            if status > 100:
                call.provisional = True
                if call.state is CallState.CALLING:
                    call.set_state(CallState.RINGING, f"{status} {response.reason}", status, now)
                if call.cancel_wanted:
                    self._send_cancel(call, now)
            return
        if status < 300:
            self._on_invite_success(call, response, now)
            return
        retry = status in (401, 407) and call.auth_tries == 0
        if (
            retry
            and call.state is not CallState.TERMINATING
            and self._retry_with_auth(call, response, now)
        ):
            return
        reason = f"{status} {response.reason}"
        if status == 487 and call.state is CallState.TERMINATING:
            reason = "cancelled"
        elif status in (401, 407):
            reason += ": authentication failed"
        self._end(call, reason, status, now)

    def _retry_with_auth(self, call: Call, response: Response, now: float) -> bool:
        assert call.invite is not None
        retry = self.ua.authorized_retry(call.account, call.invite, response)
        if retry is None:
            return False
        call.auth_tries += 1
        peer = self._peers[call.key]
        self._send_invite(call, retry, peer, now)
        return True

    def _on_invite_success(self, call: Call, response: Response, now: float) -> None:
        assert call.invite is not None
        if call.dialog is None or call.dialog.remote_tag != response.to.tag:
            if call.dialog is not None:  # a second fork answered: ACK and BYE it (§13.2.2.4)
                self._ack_and_bye_fork(call, response, now)
                return
            try:
                call.dialog = Dialog.as_uac(call.invite, response)
            except ProtocolError as exc:
                self._end(call, f"bad 2xx: {exc}", 502, now)
                return
            self._by_dialog[call.dialog.id] = call.key
        self._send_ack(call, call.invite.cseq.seq, None)
        if call.state not in (CallState.CALLING, CallState.RINGING, CallState.TERMINATING):
            return  # a retransmitted 2xx: the ACK above was all it needed
        if call.cancel_wanted or call.state is CallState.TERMINATING:
            self._send_bye(call, now, reason="answered after hang-up")
            return
        self._answer_received(call, response, now)

    def _answer_received(self, call: Call, response: Response, now: float) -> None:
        assert call.media is not None
        try:
            call.media.receive_answer(response.body)
        except MediaError as exc:
            call.set_state(CallState.CONNECTED, "answer not acceptable", response.status, now)
            self._send_bye(call, now, reason=f"unacceptable answer: {exc}")
            return
        call.set_state(CallState.CONNECTED, f"{response.status} {response.reason}", 200, now)
        self.events.append(CallMediaUpdated(call.key))

    def _send_ack(self, call: Call, cseq: int, body: bytes | None) -> None:
        """RFC 3261 §13.2.2.4: the ACK for a 2xx is its own transaction, sent to the dialog's next hop."""
        assert call.dialog is not None
        ack = call.dialog.create_request("ACK", cseq=cseq)
        if body:
            ack.headers.add("Content-Type", SDP)
            ack.body = body
        self.ua.send_stateless(ack, self._dialog_peer(call))

    def _ack_and_bye_fork(self, call: Call, response: Response, now: float) -> None:
        assert call.invite is not None
        try:
            fork = Dialog.as_uac(call.invite, response)
        except ProtocolError:
            return
        spec = self.ua.accounts.get(call.account) if call.account else None
        peer = self.ua.route_peer(spec, fork.next_hop(), use_proxy=False)
        self.ua.send_stateless(fork.create_request("ACK", cseq=call.invite.cseq.seq), peer)
        self.ua.send(fork.create_request("BYE"), peer, now)

    def _send_cancel(self, call: Call, now: float) -> None:
        """RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE."""
        invite = call.invite
        assert invite is not None
        headers = Headers()
        for name in ("Via", "From", "To", "Call-ID", "Route"):
            for value in invite.headers.get_all(name):
                headers.add(name, value)
        headers.set("Via", str(invite.top_via))
        headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
        headers.add("Max-Forwards", "70")
        cancel = Request("CANCEL", invite.uri, headers)
        tx = self.ua.send(cancel, self._peers[call.key], now, keep_via=True)
        self._byes[tx] = call.key
        call.cancel_wanted = False  # sent; a second hang-up does nothing more

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
            return self._in_dialog(request, event.transaction_id, now)
        if request.method == "INVITE":
            self._on_invite(request, event, now)
            return True
        return False

    def _respond(self, tx: str, response: Response, now: float) -> None:
        self.ua.respond(tx, response, now)

    def _on_invite(self, request: Request, event: RequestReceived, now: float) -> None:
        tx = event.transaction_id
        assert tx is not None
        if len(self.active()) >= self.max_calls:
            log.info("busy: %d calls already (limit %d)", len(self.active()), self.max_calls)
            self._respond(tx, make_response(request, 486, to_tag=new_tag()), now)
            return
        call = Call(request.call_id, False, self.ua.account_for(request), CallState.INCOMING)
        if request.call_id in self.calls:
            self._respond(tx, make_response(request, 482, to_tag=new_tag()), now)
            return
        call.invite, call.invite_tx, call.local_tag, call.started_at = request, tx, new_tag(), now
        self.calls[call.key] = call
        self._by_invite[tx] = call.key
        self._peers[call.key] = event.peer
        ringing = make_response(request, 180, to_tag=call.local_tag)
        ringing.headers.add("Contact", str(self._local_contact(call, event.peer.transport)))
        self._respond(tx, ringing, now)
        self.events.append(IncomingCall(call.key, request))

    def answer(self, key: str, media: CallMedia, now: float) -> None:
        """Accept an incoming call with our answer (or our offer if the INVITE had none)."""
        call = self.get(key)
        if call.state is not CallState.INCOMING or call.invite is None or call.invite_tx is None:
            raise CallError(f"call {key} is {call.state.value}, not ringing here")
        call.media = media
        try:
            body, media_ready = self._first_answer(call, media, call.invite)
        except MediaError as exc:
            log.warning("call %s: offer not acceptable: %s", key, exc)
            self._reject(call, exc.status, now, reason=str(exc))
            return
        ok = self._ok(call, call.invite, body)
        try:
            call.dialog = Dialog.as_uas(call.invite, call.local_tag, 0)
        except ProtocolError as exc:
            self._reject(call, 400, now, reason=str(exc))
            return
        self._by_dialog[call.dialog.id] = key
        self._respond(call.invite_tx, ok, now)
        self._start_ok_retransmission(call, ok, now)
        call.set_state(CallState.ANSWERING, "answered, waiting for ACK", 200, now)
        if media_ready:
            self.events.append(CallMediaUpdated(key))
        self._emit(call)

    def _first_answer(self, call: Call, media: CallMedia, invite: Request) -> tuple[bytes, bool]:
        if invite.body:
            return media.receive_offer(invite.body, False), True
        call.offer_in_ack = True
        return media.create_offer(False), False

    def _ok(self, call: Call, request: Request, body: bytes) -> Response:
        """A 2xx to INVITE: Record-Route copied (§12.1.1), our Contact, the SDP."""
        ok = make_response(request, 200, to_tag=call.local_tag)
        for value in request.headers.get_all("Record-Route"):
            ok.headers.add("Record-Route", value)
        transport = self._peers[call.key].transport
        ok.headers.add("Contact", str(self._local_contact(call, transport)))
        ok.headers.add("Allow", self.ua.allow)
        ok.headers.add("Content-Type", SDP)
        ok.body = body
        return ok

    def _start_ok_retransmission(self, call: Call, ok: Response, now: float) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx at T1, 2T1 ... T2 until the ACK, give up at 64*T1."""
        t1 = self.ua.endpoint.timers.t1
        call.answer_ok = ok
        call.ok_interval = t1
        call.ok_next = None if self._peers[call.key].reliable else now + t1
        call.ok_deadline = now + 64 * t1

    def reject(self, key: str, status: int, now: float) -> None:
        """Refuse an incoming call (486 Busy Here, 603 Decline ...)."""
        call = self.get(key)
        if call.state is not CallState.INCOMING:
            raise CallError(f"call {key} is {call.state.value}, not ringing here")
        self._reject(call, status, now)
        self._emit(call)

    def _reject(self, call: Call, status: int, now: float, reason: str | None = None) -> None:
        assert call.invite is not None and call.invite_tx is not None
        response = make_response(call.invite, status, to_tag=call.local_tag)
        if reason and status == 488:
            response.headers.add("Warning", f'304 securephone "{_warning_text(reason)}"')
        self._respond(call.invite_tx, response, now)
        self._end(call, reason or f"rejected with {status} {response.reason}", status, now)

    def _on_ack(self, ack: Request, now: float) -> None:
        key = self._by_dialog.get((ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        call = self.calls.get(key) if key else None
        if call is None:
            return
        call.ok_next = call.ok_deadline = None
        call.answer_ok = None
        if call.offer_in_ack and call.media is not None:
            call.offer_in_ack = False
            try:
                call.media.receive_answer(ack.body)
            except MediaError as exc:
                call.set_state(CallState.CONNECTED, "ACK received", 200, now)
                self._send_bye(call, now, reason=f"unacceptable answer in ACK: {exc}")
                self._emit(call)
                return
            self.events.append(CallMediaUpdated(call.key))
        if call.state is CallState.ANSWERING:
            call.set_state(CallState.CONNECTED, "ACK received", 200, now)
            if call.cancel_wanted:
                self._send_bye(call, now)
        self._emit(call)

    def _on_cancel(self, cancel: Request, tx: str, now: float) -> None:
        """RFC 3261 §9.2: 200 to the CANCEL; 487 to the INVITE if it is still unanswered."""
        invite_tx = server_key(cancel, method="INVITE")
        key = self._by_invite.get(invite_tx)
        if key is None:
            self._respond(tx, make_response(cancel, 481, to_tag=new_tag()), now)
            return
        call = self.calls[key]
        self._respond(tx, make_response(cancel, 200, to_tag=call.local_tag), now)
        if call.state is CallState.INCOMING:
            assert call.invite is not None
            terminated = make_response(call.invite, 487, to_tag=call.local_tag)
            self._respond(invite_tx, terminated, now)
            self._end(call, "cancelled by the caller", 487, now)
            self._emit(call)

    # -- in-dialog requests ------------------------------------------------------------------------------
    def _in_dialog(self, request: Request, tx: str, now: float) -> bool:
        key = self._by_dialog.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        call = self.calls.get(key) if key else None
        if call is None or call.dialog is None or call.ended:
            self._respond(tx, make_response(request, 481), now)
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
        self._emit(call)
        return True

    def _on_bye(self, call: Call, request: Request, tx: str, now: float) -> None:
        self._respond(tx, make_response(request, 200), now)
        self._end(call, "the far end hung up", None, now)

    def _on_info(self, call: Call, request: Request, tx: str, now: float) -> None:
        self._respond(tx, make_response(request, 200), now)
        self.events.append(InfoReceived(call.key, request))

    def _on_other_in_dialog(self, call: Call, request: Request, tx: str, now: float) -> None:
        if request.method == "OPTIONS":
            self._respond(tx, self.ua.options_response(request), now)
            return
        response = make_response(request, 501)
        response.headers.add("Allow", self.ua.allow)
        self._respond(tx, response, now)

    def _on_reinvite(self, call: Call, request: Request, tx: str, now: float) -> None:
        """RFC 3261 §14.2: a target refresh with a new offer (hold/resume, new address)."""
        assert call.dialog is not None and call.media is not None
        if call.reinvite_tx is not None or call.state is not CallState.CONNECTED:
            self._respond(tx, make_response(request, 491), now)  # glare (§14.2)
            return
        try:
            body = call.media.receive_offer(request.body, call.local_hold) if request.body else b""
        except MediaError as exc:
            response = make_response(request, exc.status)
            response.headers.add("Warning", f'304 securephone "{_warning_text(str(exc))}"')
            self._respond(tx, response, now)  # the call goes on as before (§14.2)
            return
        if not body:
            body = call.media.create_offer(call.local_hold)
            call.offer_in_ack = True
        call.dialog.refresh_target(request)
        self._peers.setdefault(call.key, self._dialog_peer(call))
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
        request.headers.add(
            "Contact", str(self._local_contact(call, self._dialog_peer(call).transport))
        )
        request.headers.add("Allow", self.ua.allow)
        request.headers.add("Content-Type", SDP)
        request.body = call.media.create_offer(on)
        call.reinvite_request = request
        call.reinvite_wanted = on
        tx = self.ua.send(request, self._dialog_peer(call), now)
        call.reinvite_tx = tx
        self._by_tx[tx] = key

    def _on_reinvite_response(self, call: Call, response: Response, now: float) -> None:
        request = call.reinvite_request
        assert request is not None and call.media is not None
        status = response.status
        if status < 200:
            return
        wanted = bool(call.reinvite_wanted)
        call.reinvite_tx = None
        if status < 300:
            self._send_ack(call, request.cseq.seq, None)
            if call.dialog is not None:
                call.dialog.update_from_response(response)
            try:
                call.media.receive_answer(response.body)
            except MediaError as exc:
                self._send_bye(call, now, reason=f"unacceptable answer to re-INVITE: {exc}")
                return
            self._hold_update(call, wanted, call.media.remote_hold)
            self.events.append(CallMediaUpdated(call.key))
        elif status == 491:
            call.glare_at = now + call.glare_delay(self.rng)
        elif status in (408, 481):
            self._send_bye(call, now, reason=f"re-INVITE failed: {status} {response.reason}")
        else:
            log.warning("call %s: re-INVITE refused: %d %s", call.key, status, response.reason)
            call.reinvite_wanted = None

    def _hold_update(self, call: Call, local: bool, remote: bool) -> None:
        if (call.local_hold, call.remote_hold) != (local, remote):
            call.local_hold, call.remote_hold = local, remote
            self.events.append(HoldChanged(call.key, local, remote))

    # -- hang up -------------------------------------------------------------------------------------------
    def hangup(self, key: str, now: float) -> None:
        """End the call whatever its state: CANCEL, decline, or BYE."""
        call = self.get(key)
        state = call.state
        if state in (CallState.CALLING, CallState.RINGING):
            call.set_state(CallState.TERMINATING, "hanging up", None, now)
            if call.provisional:
                self._send_cancel(call, now)
            else:
                call.cancel_wanted = True  # CANCEL once a provisional response arrives (§9.1)
        elif state is CallState.INCOMING:
            self._reject(call, 603, now, reason="declined")
        elif state is CallState.ANSWERING:
            call.cancel_wanted = True  # BYE once the ACK arrives (§15)
        elif state is CallState.CONNECTED:
            self._send_bye(call, now)
        self._emit(call)

    def _send_bye(self, call: Call, now: float, reason: str | None = None) -> None:
        assert call.dialog is not None
        bye = call.dialog.create_request("BYE")
        if reason:
            bye.headers.add("Reason", f'SIP;cause=488;text="{_warning_text(reason)}"')
        tx = self.ua.send(bye, self._dialog_peer(call), now)
        self._byes[tx] = call.key
        call.set_state(CallState.TERMINATING, reason or "hanging up", None, now)

    def _on_bye_response(self, call: Call, tx: str, response: Response, now: float) -> None:
        if response.status < 200:
            return
        self._byes.pop(tx, None)
        if call.state is CallState.TERMINATING and response.cseq.method == "BYE":
            reason = "hung up" if call.reason == "hanging up" else call.reason
            self._end(call, reason, None, now)

    def on_failure(self, tx: str, reason: str, now: float) -> bool:
        """A call transaction timed out or could not be sent."""
        key = self._by_tx.get(tx) or self._byes.pop(tx, None)
        if key is None:
            return False
        call = self.calls[key]
        if tx == call.invite_tx and call.state in (
            CallState.CALLING,
            CallState.RINGING,
            CallState.TERMINATING,
        ):
            self._end(call, reason, 408, now)
        elif tx == call.reinvite_tx:
            call.reinvite_tx = None
            self._send_bye(call, now, reason=f"re-INVITE failed: {reason}")
        elif call.state is CallState.TERMINATING:
            self._end(call, f"hung up ({reason} on BYE)", None, now)
        self._emit(call)
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
            self._call_timers(call, now)
            self._emit(call)

    def _call_timers(self, call: Call, now: float) -> None:
        if call.ok_deadline is not None and now >= call.ok_deadline:
            call.ok_next = call.ok_deadline = None
            if call.state is CallState.ANSWERING:
                call.set_state(CallState.CONNECTED, "no ACK", None, now)
            self._send_bye(call, now, reason="no ACK for our 200 OK")
        if call.ok_next is not None and now >= call.ok_next and call.answer_ok is not None:
            self.ua.send_stateless(call.answer_ok, self._peers[call.key])
            call.ok_interval = min(2 * call.ok_interval, self.ua.endpoint.timers.t2)
            call.ok_next = now + call.ok_interval
        if call.glare_at is not None and now >= call.glare_at:
            call.glare_at = None
            if call.state is CallState.CONNECTED and call.reinvite_wanted is not None:
                self.hold(call.key, call.reinvite_wanted, now)

    def forget_ended(self, keep: int = 50) -> None:
        """Drop the oldest ended calls beyond ``keep`` (history lives in the store, not here)."""
        ended = [c for c in self.calls.values() if c.ended]
        gone = {call.key for call in ended[: max(0, len(ended) - keep)]}
        if not gone:
            return
        for key in gone:
            self.calls.pop(key, None)
            self._peers.pop(key, None)
        for table in (self._by_tx, self._by_dialog, self._by_invite, self._byes):
            for ref in [ref for ref, key in table.items() if key in gone]:
                del table[ref]  # type: ignore[arg-type]


def _warning_text(text: str) -> str:
    return text.replace('"', "'").replace("\\", "/")[:200]
