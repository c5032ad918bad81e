"""STUN (RFC 8489) codec against the RFC 5769 test vectors, and the client transaction with a fake clock."""

from __future__ import annotations

import struct

import pytest

from securephone.errors import StunError
from securephone.net.stun import (
    BINDING,
    Attr,
    BindingOutcome,
    BindingTransaction,
    FlowVerdict,
    RetransmitPolicy,
    StunAgent,
    StunClass,
    StunMessage,
    binding_success,
    encode_address,
    is_stun,
)

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"  # RFC 5769 §2: the short-term password of every sample
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.1 Sample Request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY,
# FINGERPRINT)
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149a"
    "eaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
# RFC 5769 §2.2 Sample IPv4 Response: XOR-MAPPED-ADDRESS 192.0.2.1 port 32853
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001"
    "a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96"
)
# RFC 5769 §2.3 Sample IPv6 Response: 2001:db8:1234:5678:11:2233:4455:6677 port 32853
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002"
    "a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
SERVER = ("198.51.100.1", 3478)


def test_rfc5769_sample_request() -> None:
    message = StunMessage.parse(SAMPLE_REQUEST)
    assert (message.method, message.cls, message.transaction_id) == (
        BINDING,
        StunClass.REQUEST,
        TXID,
    )
    assert message.attribute(Attr.SOFTWARE) == b"STUN test client"
    assert message.attribute(Attr.USERNAME) == b"evtj:h6vY"
    assert message.check_fingerprint() is True
    assert message.check_integrity(PASSWORD) is True
    assert message.check_integrity(b"wrong password") is False


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_sample_responses(data: bytes, address: tuple[str, int]) -> None:
    message = StunMessage.parse(data)
    assert message.cls is StunClass.SUCCESS
    assert message.mapped_address() == address
    assert message.check_fingerprint() is True
    assert message.check_integrity(PASSWORD) is True
    # our encoder writes the same XOR-MAPPED-ADDRESS bytes as the vector
    assert encode_address(address, TXID) == message.attribute(Attr.XOR_MAPPED_ADDRESS)


def test_a_flipped_bit_fails_the_fingerprint() -> None:
    damaged = bytearray(SAMPLE_IPV4_RESPONSE)
    damaged[30] ^= 0x01  # inside XOR-MAPPED-ADDRESS
    message = StunMessage.parse(bytes(damaged))
    assert message.check_fingerprint() is False
    assert message.check_integrity(PASSWORD) is False


def test_round_trip_with_fingerprint() -> None:
    request = StunMessage.parse(SAMPLE_REQUEST)
    data = binding_success(request, ("198.51.100.7", 40000))
    answer = StunMessage.parse(data)
    assert answer.cls is StunClass.SUCCESS and answer.transaction_id == TXID
    assert answer.mapped_address() == ("198.51.100.7", 40000)
    assert answer.check_fingerprint() is True


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"INVITE sip:a@b SIP/2.0\r\n\r\n",
        SAMPLE_IPV4_RESPONSE[:-4],  # length field no longer matches
        SAMPLE_IPV4_RESPONSE[:2] + b"\x00\x08" + SAMPLE_IPV4_RESPONSE[4:20] + b"\x00\x20\x00\x40",
        b"\x01\x01\x00\x00\x21\x12\xa4\x43" + TXID,  # wrong magic cookie
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(StunError):
        StunMessage.parse(data)


def test_is_stun_tells_sip_and_rtp_apart() -> None:
    assert is_stun(SAMPLE_REQUEST)
    assert not is_stun(b"\x80" + SAMPLE_REQUEST[1:])  # RTP first byte
    assert not is_stun(b"\r\n\r\n")


def _answer(tx: BindingTransaction, mapped: tuple[str, int]) -> StunMessage:
    return StunMessage.parse(binding_success(StunMessage.parse(tx.request), mapped))


def test_retransmission_schedule_rfc8489_6_2_1() -> None:
    """RTO 500 ms, Rc 7, Rm 16: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; fails at 39.5 s."""
    tx = BindingTransaction(SERVER, 0.0)
    sends = [0.0]
    while tx.result is None:
        at = tx.get_timer()
        assert at is not None
        if tx.handle_timer(at) is not None:
            sends.append(at)
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.result.outcome is BindingOutcome.TIMED_OUT
    assert tx.get_timer() is None


def test_response_must_come_from_the_server_with_our_id() -> None:
    tx = BindingTransaction(SERVER, 0.0, RetransmitPolicy(rc=2))
    answer = _answer(tx, ("198.51.100.9", 1234))
    assert not tx.receive(answer, ("198.51.100.66", 3478))  # a stranger
    other = StunMessage(BINDING, StunClass.SUCCESS, bytes(12), answer.attributes)
    assert not tx.receive(other, SERVER)  # another transaction
    assert tx.receive(answer, SERVER)
    assert tx.result is not None and tx.result.mapped == ("198.51.100.9", 1234)


def test_error_response_ends_the_transaction() -> None:
    tx = BindingTransaction(SERVER, 0.0)
    reason = b"Bad Request"
    value = struct.pack("!HBB", 0, 4, 0) + reason
    error = StunMessage(BINDING, StunClass.ERROR, tx.transaction_id, ((Attr.ERROR_CODE, value),))
    assert tx.receive(StunMessage.parse(error.with_fingerprint()), SERVER)
    assert tx.result is not None
    assert (tx.result.outcome, tx.result.reason) == (BindingOutcome.ERROR, "400 Bad Request")


def _serve(agent: StunAgent, mapped: tuple[str, int], now: float) -> None:
    for data, server in agent.datagrams_to_send():
        request = StunMessage.parse(data)
        agent.receive(binding_success(request, mapped), server, now)


def test_keepalive_notices_a_new_mapping_rfc5626_4_4_2() -> None:
    agent = StunAgent(RetransmitPolicy(rc=2))
    agent.keep_alive("flow", SERVER, 20.0, 0.0)
    _serve(agent, ("198.51.100.1", 40000), 0.0)
    first = agent.next_event()
    assert first is not None and first.verdict is FlowVerdict.ALIVE
    due = agent.get_timer()
    assert due is not None and 16.0 <= due <= 20.0  # 80-100 % of the interval (RFC 5626 §4.4.1)
    agent.handle_timer(due)
    _serve(agent, ("198.51.100.1", 40002), due)  # the NAT gave the flow a new port
    second = agent.next_event()
    assert second is not None and second.verdict is FlowVerdict.MAPPING_CHANGED
    assert agent.mapped["flow"] == ("198.51.100.1", 40002)


def test_keepalive_without_answer_fails_the_flow() -> None:
    agent = StunAgent(RetransmitPolicy(rto=0.5, rc=2, rm=2))
    agent.keep_alive("flow", SERVER, 20.0, 0.0)
    while (event := agent.next_event()) is None:
        at = agent.get_timer()
        assert at is not None and at < 20.0
        agent.handle_timer(at)
    assert event.verdict is FlowVerdict.FAILED
    assert event.result.outcome is BindingOutcome.TIMED_OUT
