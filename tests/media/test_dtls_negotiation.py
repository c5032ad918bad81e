"""DTLS-SRTP in the SDP offer/answer of one call (RFC 5763 §5, RFC 8122, RFC 8842, RFC 5761),
and the DtlsKeying of two SdpMedia objects wired together in memory with a fake clock."""

from __future__ import annotations

import pytest

from securephone.errors import MediaError
from securephone.media.dtls.certificate import DtlsCertificate
from securephone.media.dtls.keying import DtlsKeying
from securephone.media.keying import KeyingFailed, KeyingMethod, KeysAgreed
from securephone.media.negotiation import KeyingResources, SdpMedia, SrtpPolicy
from securephone.pki import create_media_certificate
from securephone.sdp import session as sdp_session
from securephone.sdp.offer_answer import MediaCapabilities

CERTS = [DtlsCertificate.from_issued(create_media_certificate()) for _ in range(3)]
DTLS_FIRST = (KeyingMethod.DTLS, KeyingMethod.ZRTP, KeyingMethod.SDES)


def media(
    port: int,
    cert: DtlsCertificate | None = CERTS[0],
    *,
    tls: bool = False,
    mux: bool = True,
    methods: tuple[KeyingMethod, ...] = DTLS_FIRST,
    suites: tuple[str, ...] = ("AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"),
) -> SdpMedia:
    policy = SrtpPolicy("mandatory", suites, secure_signalling=tls, methods=methods)
    caps = MediaCapabilities(rtcp_mux=mux)
    return SdpMedia(caps, port, policy, KeyingResources(1234, dtls_certificate=cert))


def attrs(body: bytes, name: str) -> list[str]:
    return sdp_session.parse(body).media[0].attribute_values(name)


def test_offer_carries_fingerprint_actpass_tls_id_and_mux() -> None:
    offer = media(40000).create_offer(hold=False)
    parsed = sdp_session.parse(offer).media[0]
    assert parsed.proto == "UDP/TLS/RTP/SAVP"
    assert attrs(offer, "fingerprint") == [str(CERTS[0].fingerprint())]
    assert attrs(offer, "fingerprint")[0].startswith("sha-256 ")
    assert attrs(offer, "setup") == ["actpass"]
    assert len(attrs(offer, "tls-id")[0]) >= 20
    assert parsed.rtcp_mux and not parsed.crypto_lines


def test_offer_without_mux_when_configured_off() -> None:
    offer = media(40000, mux=False).create_offer(hold=False)
    assert not sdp_session.parse(offer).media[0].rtcp_mux


def test_re_offer_keeps_the_association_attributes() -> None:
    alice = media(40000)
    first = alice.create_offer(hold=False)
    bob = media(40002, CERTS[1])
    alice.receive_answer(bob.receive_offer(first, hold=False))
    again = alice.create_offer(hold=True)
    for name in ("fingerprint", "setup", "tls-id"):
        assert attrs(again, name) == attrs(first, name)
    assert "sendonly" in again.decode()


@pytest.mark.parametrize(
    ("offered", "answered", "role"),
    [
        ("actpass", "active", "client"),
        ("active", "passive", "server"),
        ("passive", "active", "client"),
    ],
)
def test_answer_setup_and_role(offered: str, answered: str, role: str) -> None:
    offer = (
        media(40000)
        .create_offer(hold=False)
        .replace(b"a=setup:actpass", f"a=setup:{offered}".encode())
    )
    bob = media(40002, CERTS[1])
    answer = bob.receive_offer(offer, hold=False)
    assert attrs(answer, "setup") == [answered]
    assert isinstance(bob.path, DtlsKeying) and bob.path.role is not None
    assert bob.path.role.value == role
    assert attrs(answer, "fingerprint") == [str(CERTS[1].fingerprint())]
    assert bob.path.remote_fingerprints == (CERTS[0].fingerprint(),)


BARESIP_STYLE_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "a=fingerprint:sha-256 {fp}\r\n"
    "m=audio 30000 UDP/TLS/RTP/SAVPF 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=setup:actpass\r\na=rtcp-mux\r\na=sendrecv\r\n"
)


def test_answers_a_savpf_offer_with_a_session_level_fingerprint() -> None:
    fp = CERTS[2].fingerprint().hex
    bob = media(40002, CERTS[1])
    answer = bob.receive_offer(BARESIP_STYLE_OFFER.format(fp=fp).encode(), hold=False)
    parsed = sdp_session.parse(answer).media[0]
    assert parsed.proto == "UDP/TLS/RTP/SAVPF" and parsed.rtcp_mux
    assert attrs(answer, "setup") == ["active"]
    assert bob.negotiated is not None and bob.negotiated.rtcp_mux
    assert bob.negotiated.remote_rtcp_port == 30000  # RFC 5761: RTCP to the RTP port


def test_offer_without_fingerprint_is_refused_with_488() -> None:
    body = BARESIP_STYLE_OFFER.replace("a=fingerprint:sha-256 {fp}\r\n", "").encode()
    with pytest.raises(MediaError) as caught:
        media(40002, CERTS[1]).receive_offer(body, hold=False)
    assert caught.value.status == 488


def test_mandatory_without_dtls_allowed_refuses_a_dtls_offer() -> None:
    offer = media(40000).create_offer(hold=False)
    with pytest.raises(MediaError) as caught:
        media(40002, CERTS[1], methods=(KeyingMethod.SDES,)).receive_offer(offer, hold=False)
    assert caught.value.status == 488 and caught.value.security


def test_answer_with_an_invalid_setup_is_refused() -> None:
    alice = media(40000)
    offer = alice.create_offer(hold=False)
    answer = media(40002, CERTS[1]).receive_offer(offer, hold=False)
    with pytest.raises(MediaError) as caught:
        alice.receive_answer(answer.replace(b"a=setup:active", b"a=setup:actpass"))
    assert caught.value.status == 488


def test_answer_without_fingerprint_is_refused() -> None:
    alice = media(40000)
    offer = alice.create_offer(hold=False)
    answer = media(40002, CERTS[1]).receive_offer(offer, hold=False)
    stripped = b"".join(
        line for line in answer.splitlines(keepends=True) if not line.startswith(b"a=fingerprint")
    )
    with pytest.raises(MediaError) as caught:
        alice.receive_answer(stripped)
    assert caught.value.status == 488


def test_no_certificate_means_no_dtls_offer() -> None:
    without = media(40000, None, methods=(KeyingMethod.DTLS, KeyingMethod.SDES))
    with pytest.raises(MediaError):  # mandatory, no DTLS certificate, SDES over plaintext
        without.create_offer(False)
    with_tls = media(40000, None, tls=True, methods=(KeyingMethod.DTLS, KeyingMethod.SDES))
    offer = with_tls.create_offer(False)  # falls back to the next preference: SDES over TLS
    assert sdp_session.parse(offer).media[0].proto == "RTP/SAVP"


def run(alice: DtlsKeying, bob: DtlsKeying, a_port: int, b_port: int) -> None:
    """Move datagrams between the two keyings with a fake clock until both are quiet."""
    now = 100.0
    alice.start(now)
    bob.start(now)
    for _ in range(20):
        moved = False
        for sender, receiver, port in ((alice, bob, a_port), (bob, alice, b_port)):
            for datagram in sender.datagrams_to_send():
                receiver.receive(datagram, ("127.0.0.1", port), now)
                moved = True
        if not moved:
            break
        now += 0.01


def negotiated_pair(tls: bool, tamper: bool = False) -> tuple[DtlsKeying, DtlsKeying]:
    alice, bob = media(40000, tls=tls), media(40002, CERTS[1], tls=tls)
    answer = bob.receive_offer(alice.create_offer(hold=False), hold=False)
    if tamper:  # somebody on the signalling path put its own fingerprint in the answer
        fake = CERTS[2].fingerprint()
        answer = answer.replace(str(CERTS[1].fingerprint()).encode(), str(fake).encode())
    alice.receive_answer(answer)
    assert isinstance(alice.path, DtlsKeying) and isinstance(bob.path, DtlsKeying)
    run(alice.path, bob.path, 40000, 40002)
    return alice.path, bob.path


def events(keying: DtlsKeying) -> list[object]:
    out = []
    while (event := keying.next_event()) is not None:
        out.append(event)
    return out


@pytest.mark.parametrize("tls", [False, True])
def test_two_negotiated_keyings_agree_keys(tls: bool) -> None:
    alice, bob = negotiated_pair(tls)
    (mine,), (theirs,) = events(alice), events(bob)
    assert isinstance(mine, KeysAgreed) and isinstance(theirs, KeysAgreed)
    assert mine.local_key == theirs.remote_key and mine.remote_key == theirs.local_key
    assert mine.suite == "AEAD_AES_128_GCM"
    assert mine.details["fingerprint_integrity"] is tls
    assert mine.details["remote_fingerprint"] == str(CERTS[1].fingerprint())
    assert mine.details["local_fingerprint"] == str(CERTS[0].fingerprint())
    assert "key" not in repr(mine.details).lower().replace("keying", "")


def test_rewritten_fingerprint_fails_with_that_reason() -> None:
    alice, bob = negotiated_pair(tls=False, tamper=True)
    failed = [e for e in events(alice) if isinstance(e, KeyingFailed)]
    assert failed and "fingerprint mismatch" in failed[0].reason
    assert not any(isinstance(e, KeysAgreed) for e in events(bob))
    alice.close()
    assert alice.summary()["state"] == "failed"
