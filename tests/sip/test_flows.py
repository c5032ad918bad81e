"""The stream-connection policy with a fake clock: RFC 5626 keep-alive, timeouts and the limit."""

from __future__ import annotations

from securephone.sip.flows import FlowAction, FlowCommand, FlowLimits, FlowTable


def run_until(table: FlowTable, end: float) -> list[tuple[float, FlowCommand]]:
    """Fire every timer up to ``end``; the commands with the time they were due."""
    seen = []
    while (due := table.get_timer()) is not None and due <= end:
        seen += [(due, c) for c in table.handle_timer(due)]
    return seen


def test_keepalive_pings_and_closes_without_pong() -> None:
    table = FlowTable(FlowLimits(keepalive_interval=30))
    assert table.opened(1, dialled=True, now=0)
    first = run_until(table, 30)
    assert first == [(30, FlowCommand(1, FlowAction.PING))]
    table.received(1, 30.1, messages=0, partial=False, pongs=1)  # the CRLF pong
    assert run_until(table, 60) == [(60, FlowCommand(1, FlowAction.PING))]
    # no pong this time: the next ping time closes the flow (RFC 5626 §4.4.1)
    assert run_until(table, 90) == [(90, FlowCommand(1, FlowAction.CLOSE, "no keep-alive pong"))]
    assert len(table) == 0 and table.get_timer() is None


def test_no_keepalive_when_off_and_dialled_flows_never_idle_out() -> None:
    table = FlowTable(FlowLimits(keepalive_interval=0, idle_timeout=10))
    table.opened(1, dialled=True, now=0)
    assert table.get_timer() is None
    assert run_until(table, 10_000) == []


def test_accepted_connection_must_send_a_message_in_time() -> None:
    table = FlowTable(FlowLimits(first_message_timeout=32))
    table.opened(7, dialled=False, now=0)
    table.received(7, 10, messages=0, partial=False)  # only CRLFs: still no message
    assert run_until(table, 32) == [(32, FlowCommand(7, FlowAction.CLOSE, "no SIP message"))]


def test_slow_message_is_cut_off() -> None:
    """One byte every two seconds keeps the connection busy but never finishes a message."""
    table = FlowTable(FlowLimits(message_timeout=32, first_message_timeout=1000))
    table.opened(3, dialled=False, now=0)
    for second in range(0, 40, 2):
        table.received(3, second, messages=0, partial=True)
    closed = run_until(table, 40)
    assert closed == [(32, FlowCommand(3, FlowAction.CLOSE, "incomplete message"))]


def test_a_finished_message_resets_the_message_clock() -> None:
    table = FlowTable(FlowLimits(message_timeout=32, idle_timeout=900))
    table.opened(3, dialled=False, now=0)
    table.received(3, 20, messages=0, partial=True)
    table.received(3, 30, messages=1, partial=False)
    assert run_until(table, 100) == []
    table.received(3, 100, messages=1, partial=True)  # one done, the next one begun
    assert run_until(table, 131) == []
    assert run_until(table, 132) == [(132, FlowCommand(3, FlowAction.CLOSE, "incomplete message"))]


def test_idle_accepted_connection_is_closed() -> None:
    table = FlowTable(FlowLimits(idle_timeout=900))
    table.opened(4, dialled=False, now=0)
    table.received(4, 5, messages=1, partial=False)
    table.received(4, 600, messages=0, partial=False)  # a ping counts as traffic
    assert run_until(table, 1499) == []
    assert run_until(table, 1500) == [(1500, FlowCommand(4, FlowAction.CLOSE, "idle"))]


def test_connection_limit_refuses_accepted_but_not_dialled() -> None:
    table = FlowTable(FlowLimits(max_connections=2))
    assert table.opened(1, dialled=False, now=0)
    assert table.opened(2, dialled=False, now=0)
    assert not table.opened(3, dialled=False, now=0)
    assert table.refused == 1
    assert table.opened(4, dialled=True, now=0)  # our own flows are never refused
    table.closed(1)
    assert table.opened(5, dialled=False, now=1)


def test_a_flow_timer_pings_at_80_to_100_percent_of_it_rfc5626_4_4_1() -> None:
    import random

    table = FlowTable(FlowLimits(keepalive_interval=30), rng=random.Random(5))
    table.opened(1, dialled=True, now=0)
    table.opened(2, dialled=True, now=0)  # another flow keeps the configured interval
    assert table.set_keepalive(1, 10, now=1)  # the registrar's 200 said Flow-Timer: 10
    assert table.keepalive_of(1) == 10 and table.keepalive_of(2) is None
    pings: list[float] = []
    now = 1.0
    while (due := table.get_timer()) is not None and due <= 200:
        for command in table.handle_timer(due):
            if command.conn == 1:
                assert command.action is FlowAction.PING
                pings.append(due)
                table.received(1, due + 0.01, messages=0, partial=False, pongs=1)
            else:
                table.received(2, due + 0.01, messages=0, partial=False, pongs=1)
        now = due
    gaps = [b - a for a, b in zip([1.0, *pings], pings, strict=False)]
    assert len(gaps) >= 19 and all(8.0 <= gap <= 10.0 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.5  # drawn at random each time, not a fixed 80 %
    assert table.set_keepalive(1, None, now=now)  # back to the configured interval
    assert table.keepalive_of(1) is None
    assert not table.set_keepalive(9, 10, now=now)  # no such flow
    table.opened(3, dialled=False, now=now)
    assert not table.set_keepalive(3, 10, now=now)  # not a flow we dialled


def test_a_shorter_flow_timer_brings_the_next_ping_forward() -> None:
    table = FlowTable(FlowLimits(keepalive_interval=30))
    table.opened(1, dialled=True, now=0)
    assert table.get_timer() == 30
    table.set_keepalive(1, 5, now=2)
    due = table.get_timer()
    assert due is not None and 2 + 4 <= due <= 2 + 5


def test_beyond_max_dialled_the_least_recently_used_flow_without_a_registration_goes() -> None:
    """Far ends name where our requests go: connections we open are bounded, but never by
    closing a registration's flow (RFC 5626: the registrar reaches us over it)."""
    flows = FlowTable(FlowLimits(max_dialled=3))
    assert flows.opened(1, dialled=True, now=0)
    flows.sent(1, now=0, register=True)  # the registration's flow, the oldest of all
    assert flows.opened(2, dialled=True, now=1)
    flows.sent(2, now=1)
    assert flows.opened(3, dialled=True, now=2)
    assert flows.overflow() == []  # three: at the limit
    flows.received(2, now=3, messages=1, partial=False)  # 2 is used again: 3 is now the oldest
    assert flows.opened(4, dialled=True, now=4)
    assert flows.overflow() == [FlowCommand(3, FlowAction.CLOSE, "too many connections we opened")]
    assert len(flows) == 3 and flows.overflow() == []
    assert flows.opened(5, dialled=True, now=5)
    assert [c.conn for c in flows.overflow()] == [2]  # 1 never goes, however old
    assert flows.accepted == 0  # the accepted connections' count is not touched
