"""Issue 13 item 10: bad input is logged as counts per interval, not one line per packet."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from securephone.aio.phone import Phone
from securephone.sip.endpoint import SipEndpoint
from securephone.sip.events import MalformedMessage
from securephone.sip.transport import Peer
from securephone.store.config import parse_config
from tests.helpers import await_until

GARBAGE = b"\x16\x03\x01garbage that is not SIP\r\n\r\n"


def test_a_garbage_flood_logs_a_few_lines_and_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = SipEndpoint()
    peer = Peer("udp", "127.0.0.1", 5099)
    caplog.set_level(logging.INFO, logger="securephone.sip.endpoint")
    for i in range(5_000):  # 5,000 datagrams over 50 s
        endpoint.receive_datagram(GARBAGE, peer, 1000.0 + i / 100)
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    assert len(events) == 5_000 and all(isinstance(e, MalformedMessage) for e in events)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) <= 5 * 6  # 5 per 10 s window, plus one summary per window
    summaries = [line for line in lines if "more not logged" in line]
    assert summaries and "995 more" in summaries[0]
    assert endpoint.bad_input.total["malformed SIP"] == 5_000


async def test_a_phone_under_a_garbage_flood_stays_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    phone = Phone(
        parse_config(
            {
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"srtp": "off"},
            }
        )
    )
    await phone.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        host, port = phone.status()["listen"]["udp"].split(":")
        caplog.clear()
        assert phone.ua is not None
        limiter = phone.ua.endpoint.bad_input
        for _ in range(20):
            for _ in range(100):
                sock.sendto(GARBAGE, (host, int(port)))
            await asyncio.sleep(0)  # let the phone read
        await await_until(lambda: limiter.total.get("malformed SIP", 0) >= 1000, 10)
        assert len(caplog.records) <= 10
    finally:
        sock.close()
        await phone.stop(timeout=0.2)
