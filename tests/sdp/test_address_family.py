"""IPv6 in SDP (RFC 4566 §5.7 ``c=IN IP6``, RFC 3264): our o=/c= follow our media address, media
follows the peer's c=, and a family our media socket cannot reach is refused (488) with the reason."""

from __future__ import annotations

import pytest

from securephone.sdp.offer_answer import (
    MediaCapabilities,
    create_answer,
    create_offer,
    process_answer,
)
from securephone.sdp.session import SdpError, SessionDescription, parse

V4 = MediaCapabilities(local_address="127.0.0.1")
V6 = MediaCapabilities(local_address="::1")
DUAL_V4 = MediaCapabilities(local_address="127.0.0.1", dual_stack=True)


def peer_sdp(address: str, port: int = 40000) -> SessionDescription:
    kind = "IP6" if ":" in address else "IP4"
    return parse(
        f"v=0\r\no=peer 1 1 IN {kind} {address}\r\ns=-\r\nc=IN {kind} {address}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def test_an_ipv6_offer_says_ip6_in_origin_and_connection() -> None:
    text = create_offer(V6, 55000, 1, 0).to_bytes().decode()
    assert "o=- 1 0 IN IP6 ::1\r\n" in text and "c=IN IP6 ::1\r\n" in text


def test_an_ipv6_offer_gets_an_ipv6_answer() -> None:
    answer, media = create_answer(peer_sdp("::1"), V6, 55000, 2, 0)
    assert answer.connection is not None and answer.connection.address == "::1"
    assert "c=IN IP6 ::1\r\n" in answer.to_bytes().decode()
    assert (media.remote_address, media.remote_port) == ("::1", 40000)


def test_an_ip6_answer_to_our_ip4_offer_sends_media_to_ipv6_on_a_dual_stack_socket() -> None:
    offer = create_offer(DUAL_V4, 55000, 3, 0)
    media = process_answer(offer, peer_sdp("::1", 40002), DUAL_V4)
    assert (media.remote_address, media.remote_port) == ("::1", 40002)


def test_an_ip6_answer_to_our_ip4_offer_is_refused_when_the_socket_is_ipv4_only() -> None:
    offer = create_offer(V4, 55000, 4, 0)
    with pytest.raises(SdpError) as refused:
        process_answer(offer, peer_sdp("::1"), V4)
    assert refused.value.status_hint == 488
    assert str(refused.value).startswith(
        "the peer's media address ::1 is IPv6, but this phone's media address 127.0.0.1 is IPv4"
    )


def test_an_ipv4_offer_to_an_ipv6_only_phone_is_refused() -> None:
    with pytest.raises(SdpError, match=r"127\.0\.0\.1 is IPv4, but .* ::1 is IPv6 only") as refused:
        create_answer(peer_sdp("127.0.0.1"), V6, 55000, 5, 0)
    assert refused.value.status_hint == 488


@pytest.mark.parametrize("hold", ["0.0.0.0", "::"])
def test_a_hold_address_has_no_family_to_reach(hold: str) -> None:
    """RFC 3264 §8.4: c= of the unspecified address means "do not send"; never refused."""
    for caps in (V4, V6):
        _, media = create_answer(peer_sdp(hold), caps, 55000, 6, 0)
        assert media.remote_address == hold


def test_dual_stack_reaches_both_families() -> None:
    assert DUAL_V4.reaches("::1") and DUAL_V4.reaches("127.0.0.1")
    assert V4.reaches("127.0.0.1") and not V4.reaches("::1")
    assert V6.reaches("::1") and not V6.reaches("127.0.0.1")
