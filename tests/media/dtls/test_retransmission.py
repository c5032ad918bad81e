"""Lost handshake flights are retransmitted (RFC 6347 §4.2.4).

OpenSSL keeps the retransmission schedule on its own clock (pyOpenSSL offers no way to give it
ours; see the engine's docstring), so these tests feed the engines the real monotonic clock and
wait, with a deadline, until the handshake completes: about one second each (RFC 6347 §4.2.4.1's
initial timer).
"""

from __future__ import annotations

import time

import pytest

from securephone.media.dtls import DtlsConnected, DtlsRole, DtlsState
from tests.media.dtls.helpers import Pair, make_pair

LIMIT = 10.0  # seconds; the first retransmission is due after 1 s


def run_until_connected(pair: Pair) -> None:
    """Drive timers and the link on the real clock until both ends are connected."""
    start = time.monotonic()
    pair.client.start(start)
    while not (pair.client.state is pair.server.state is DtlsState.CONNECTED):
        now = time.monotonic()
        assert now - start < LIMIT, "no handshake within the limit"
        for endpoint in (pair.client, pair.server):
            timer = endpoint.get_timer()
            if timer is not None and now >= timer:
                endpoint.handle_timer(now)
        pair.pump(now)
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("sender", "index", "flight"),
    [
        (DtlsRole.CLIENT, 0, "ClientHello"),
        (DtlsRole.SERVER, 0, "ServerHello ... ServerHelloDone"),
        (DtlsRole.CLIENT, 1, "Certificate ... Finished"),
        (DtlsRole.SERVER, 1, "ChangeCipherSpec, Finished (the last flight)"),
    ],
)
def test_a_lost_flight_is_sent_again(sender: DtlsRole, index: int, flight: str) -> None:
    dropped: list[bytes] = []

    def link(role: DtlsRole, n: int, data: bytes) -> bool:
        if role is sender and n == index:
            dropped.append(data)
            return False
        return True

    pair = make_pair(link=link)
    run_until_connected(pair)
    assert dropped, f"the {flight} flight was never sent"
    assert len(pair.sent[sender]) > index + 1  # something was sent again after the loss
    assert pair.client.stats.retransmissions + pair.server.stats.retransmissions >= 1
    for endpoint in (pair.client, pair.server):
        events = pair.events(endpoint)
        assert len(events) == 1 and isinstance(events[0], DtlsConnected)
