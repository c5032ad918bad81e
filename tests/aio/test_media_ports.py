"""RTP port allocation: even RTP port with RTCP next to it, walking the range without reuse."""

from __future__ import annotations

import pytest

from securephone.aio.media import PortRangeExhausted, bind_rtp_pair


def test_walks_the_range_before_reusing_a_port() -> None:
    seen = []
    for _ in range(6):
        rtp, rtcp = bind_rtp_pair("127.0.0.1", 46100, 46112)
        port = rtp.getsockname()[1]
        assert port % 2 == 0 and rtcp.getsockname()[1] == port + 1
        seen.append(port)
        rtp.close()
        rtcp.close()
    assert sorted(seen) == list(range(46100, 46112, 2))  # every pair once before any repeats


def test_busy_ports_are_skipped_and_exhaustion_is_clear() -> None:
    holders = []
    try:
        holders.append(bind_rtp_pair("127.0.0.1", 46200, 46204))
        holders.append(bind_rtp_pair("127.0.0.1", 46200, 46204))
        assert {h[0].getsockname()[1] for h in holders} == {46200, 46202}
        with pytest.raises(PortRangeExhausted, match="46200-46204"):
            bind_rtp_pair("127.0.0.1", 46200, 46204)
    finally:
        for rtp, rtcp in holders:
            rtp.close()
            rtcp.close()
