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
