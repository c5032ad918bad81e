"""Issue 13 item 16: a dialog set up over TLS takes in-dialog requests only over TLS from its flow.

Two user agents wired in memory over "tls" peers (connection ids as the shell gives them): a BYE
for the dialog sent over plain UDP from another port, or over TLS from another host, gets 403
and the call stays up; the same BYE on the dialog's connection ends the call.
"""

from __future__ import annotations

from securephone.media.negotiation import SdpMedia
from securephone.sdp.offer_answer import MediaCapabilities
from securephone.sip.callstate import CallState
from securephone.sip.events import Event, IncomingCall
from securephone.sip.message import Response, parse_message
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent

A = Peer("tls", "127.0.0.1", 40123, conn=7)  # alice's connection, as bob sees it
B = Peer("tls", "127.0.0.1", 5081)  # bob's listener, as alice dialled it


class TlsPair:
    def __init__(self) -> None:
        self.a = UserAgent({"tls": ("127.0.0.1", 5071)})
        self.b = UserAgent({"tls": ("127.0.0.1", 5081), "udp": ("127.0.0.1", 5080)})
        self.events: list[Event] = []
        self.to_a: list[bytes] = []

    def flush(self) -> None:
        for _ in range(50):
            out_a, out_b = self.a.outgoing(), self.b.outgoing()
            for out in out_a:
                self.b.receive_datagram(out.data, A, 0.0)
            for out in out_b:
                self.to_a.append(out.data)
                self.a.receive_datagram(out.data, B, 0.0)
            self.events.extend(iter(self.b.next_event, None))
            self.a.next_event()
            if not out_a and not out_b:
                return


def connect() -> tuple[TlsPair, str]:
    pair = TlsPair()
    offer = SdpMedia(MediaCapabilities(codecs=("PCMU",)), 40000)
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5081;transport=tls"), offer, 0.0).key
    pair.flush()
    incoming = next(e.call_id for e in pair.events if isinstance(e, IncomingCall))
    pair.b.answer(incoming, SdpMedia(MediaCapabilities(codecs=("PCMU",)), 40002), 0.0)
    pair.flush()
    assert pair.b.calls.get(incoming).state is CallState.CONNECTED
    return pair, key


def bye_from_a(pair: TlsPair, key: str, via_transport: str = "TLS") -> bytes:
    """The BYE alice would send, captured instead of delivered."""
    pair.a.hangup(key, 0.0)
    data = next(o.data for o in pair.a.outgoing() if o.data.startswith(b"BYE"))
    return data.replace(b"SIP/2.0/TLS", f"SIP/2.0/{via_transport}".encode())


def answer_to(pair: TlsPair) -> Response:
    message = parse_message(pair.b.outgoing()[-1].data)
    assert isinstance(message, Response)
    return message


def test_a_plain_udp_bye_for_a_tls_dialog_is_refused() -> None:
    pair, key = connect()
    bye = bye_from_a(pair, key, "UDP")
    pair.b.receive_datagram(bye, Peer("udp", "127.0.0.1", 6666), 0.0)
    assert answer_to(pair).status == 403
    assert pair.b.calls.get(key).state is CallState.CONNECTED
    assert pair.b.endpoint.bad_input.total["in-dialog request off the TLS flow"] == 1


def test_a_tls_bye_from_another_host_is_refused() -> None:
    pair, key = connect()
    pair.b.receive_datagram(bye_from_a(pair, key), Peer("tls", "127.0.0.9", 40999, conn=9), 0.0)
    assert answer_to(pair).status == 403
    assert pair.b.calls.get(key).state is CallState.CONNECTED


def test_the_bye_on_the_dialogs_connection_ends_the_call() -> None:
    pair, key = connect()
    pair.b.receive_datagram(bye_from_a(pair, key), A, 0.0)
    assert answer_to(pair).status == 200
    assert pair.b.calls.get(key).state is CallState.TERMINATED


def test_our_own_flow_to_the_server_is_the_dialogs_flow() -> None:
    """For a call we placed, in-dialog requests arrive on our connection to that server."""
    pair, key = connect()
    pair.b.hangup(key, 0.0)
    bye = next(o.data for o in pair.b.outgoing() if o.data.startswith(b"BYE"))
    pair.a.receive_datagram(bye, Peer("tls", "127.0.0.1", 5081, conn=3), 0.0)
    ok = parse_message(pair.a.outgoing()[-1].data)
    assert isinstance(ok, Response) and ok.status == 200
    assert pair.a.calls.get(key).state is CallState.TERMINATED
