"""What the HD voice interop tests share: the codecs under test and a phone forced to one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.store.config import parse_config

from ..helpers import await_until

SECONDS = 4.0  # how long each call carries audio
# codec -> (audio rate of our recording, does a 6 kHz tone get through)
CODECS = {"G722": (16000, True), "opus": (48000, True), "PCMU": (8000, False)}


def hd_phone(tmp_path: Path, source: Path, codec: str, **calls: Any) -> Phone:
    """A phone offering only ``codec``, SDES-SRTP mandatory over UDP (lab), playing ``source``
    and recording what it hears to ``tmp_path/we-heard.wav``."""
    config = parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
            "media": {
                "port_min": 30000, "port_max": 39999, "codecs": [codec],
                "srtp": "mandatory", "keying": ["sdes"],
                "allow_sdes_over_plaintext": True,  # lab: direct SIP over UDP on loopback
            },
            "calls": calls,
        }
    )  # fmt: skip
    phone = Phone(config)
    phone.source_factory = lambda call: WavSource(source)
    phone.sink_factory = lambda call: WavRecorder(tmp_path / "we-heard.wav")
    return phone


async def first_call(phone: Phone, timeout: float = 10.0) -> Call:
    """The first call that reached ``phone``."""
    return await await_until(
        lambda: next(iter(phone.calls.values()), None),
        timeout,
        message="no call reached securephone",
    )
