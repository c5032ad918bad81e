"""The configuration's SRTP suite names come from the phone's one suite table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from securephone.media.suites import DEFAULT_SUITES
from securephone.store.config import MediaSettings


def test_the_configuration_accepts_exactly_the_implemented_suites() -> None:
    assert tuple(MediaSettings().srtp_suites) == DEFAULT_SUITES
    chosen = MediaSettings(srtp_suites=["AES_CM_128_HMAC_SHA1_80"])
    assert chosen.srtp_suites == ["AES_CM_128_HMAC_SHA1_80"]
    with pytest.raises(ValidationError, match="srtp_suites"):
        MediaSettings(srtp_suites=["AES_256_CM_HMAC_SHA1_80"])  # registered, not implemented


@pytest.mark.parametrize(("given", "stored"), [("::1", "::1"), ("[::1]", "::1"), ("::", "::"),
                                               ("0:0::1", "::1"), ("127.0.0.1", "127.0.0.1")])  # fmt: skip
def test_listen_addresses_take_ipv6_literals_with_or_without_brackets(
    given: str, stored: str
) -> None:
    from securephone.store.config import SipSettings, WebSettings

    assert SipSettings(listen_address=given).listen_address == stored
    assert WebSettings(listen_address=given).listen_address == stored
    assert MediaSettings(address=given).address == stored


@pytest.mark.parametrize("bad", ["[127.0.0.1", "[127.0.0.1]", "::g", "[example.test]", "localhost"])
def test_listen_addresses_refuse_what_is_not_an_ip_literal(bad: str) -> None:
    from securephone.store.config import SipSettings

    with pytest.raises(ValidationError, match="is not an IP address"):
        SipSettings(listen_address=bad)
