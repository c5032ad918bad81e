"""DTLS record framing (RFC 6347 §4.1) and the RFC 5764 §4.2 key layout."""

from __future__ import annotations

import pytest

from securephone.media.dtls import SrtpProfile, split_keying_material
from securephone.media.dtls.profiles import keying_material_length
from securephone.media.dtls.records import is_plausible_datagram, pack_datagrams, split_records


def record(content_type: int, body: bytes, epoch: int = 0, seq: int = 0) -> bytes:
    head = bytes([content_type, 0xFE, 0xFD]) + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big")
    return head + len(body).to_bytes(2, "big") + body


def test_split_whole_records_and_refuse_partial_ones() -> None:
    a, b = record(22, b"x" * 100), record(20, b"\x01", epoch=0, seq=1)
    assert split_records(a + b) == [a, b]
    assert split_records(a + b[:5]) is None
    assert split_records(a[:-1]) is None
    assert split_records(b"") == []


def test_plausible_datagrams() -> None:
    assert is_plausible_datagram(record(22, b"hello") + record(23, b"data", epoch=1))
    assert not is_plausible_datagram(b"")
    assert not is_plausible_datagram(record(24, b"heartbeat"))  # not a content type we take
    assert not is_plausible_datagram(b"\x16\x03\x03" + record(22, b"x")[3:])  # TLS, not DTLS
    assert not is_plausible_datagram(record(22, b"hello")[:-1])


def test_pack_keeps_order_and_the_mtu() -> None:
    records = [record(22, bytes([i]) * 300) for i in range(10)]  # 313 bytes each
    datagrams = pack_datagrams(records, 1000)
    assert [len(d) for d in datagrams] == [939, 939, 939, 313]
    assert b"".join(datagrams) == b"".join(records)
    assert all(split_records(d) for d in datagrams)
    big = record(22, b"z" * 2000)
    assert pack_datagrams([big, records[0]], 1000) == [big, records[0]]


@pytest.mark.parametrize("profile", list(SrtpProfile))
def test_rfc_5764_key_layout(profile: SrtpProfile) -> None:
    key, salt = profile.suite.key_length, profile.suite.salt_length
    assert keying_material_length(profile) == 2 * (key + salt)
    material = bytes(range(2 * (key + salt)))
    client_key, server_key = material[:key], material[key : 2 * key]
    client_salt = material[2 * key : 2 * key + salt]
    server_salt = material[2 * key + salt :]
    client = split_keying_material(profile, material, is_client=True)
    server = split_keying_material(profile, material, is_client=False)
    assert client.local_key_salt == client_key + client_salt == server.remote_key_salt
    assert client.remote_key_salt == server_key + server_salt == server.local_key_salt
    with pytest.raises(ValueError, match="keying material"):
        split_keying_material(profile, material[:-1], is_client=True)


def test_profile_names_and_suites() -> None:
    assert SrtpProfile.from_openssl(b"SRTP_AES128_CM_SHA1_80") is SrtpProfile.AES128_CM_SHA1_80
    assert SrtpProfile.from_openssl(b"") is None
    assert SrtpProfile.from_openssl(b"SRTP_NULL_SHA1_80") is None
    assert SrtpProfile.AEAD_AES_128_GCM.suite.name == "AEAD_AES_128_GCM"
    assert SrtpProfile.AES128_CM_SHA1_80.suite.name == "AES_CM_128_HMAC_SHA1_80"
