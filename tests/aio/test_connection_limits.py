"""Issue 13 item 5 (the rest): a per-address limit on accepted SIP connections, descriptor
exhaustion (EMFILE) on accept handled without a crash or a log storm, and an auto-answered call
that cannot get its sockets refused cleanly instead of escaping as an OSError."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
from typing import Any

import pytest

from securephone.aio import phone as phone_module
from securephone.aio.phone import Phone
from securephone.aio.transport import STREAM_WRITE_HIGH_WATER, STREAM_WRITE_LIMIT, TransportLayer
from securephone.sip.callstate import CallState
from securephone.sip.flows import FlowLimits, FlowTable
from securephone.sip.transport import Outgoing
from securephone.store.config import parse_config
from tests.helpers import await_until


def test_the_per_address_limit_in_the_core() -> None:
    flows = FlowTable(FlowLimits(max_connections=10, max_per_address=2))
    assert flows.opened(1, dialled=False, now=0, host="192.0.2.1")
    assert flows.opened(2, dialled=False, now=0, host="192.0.2.1")
    assert not flows.opened(3, dialled=False, now=0, host="192.0.2.1")
    assert flows.opened(4, dialled=False, now=0, host="192.0.2.2")  # another address still gets in
    flows.closed(1)
    assert flows.opened(5, dialled=False, now=0, host="192.0.2.1")
    assert flows.refused == 1 and flows.from_address("192.0.2.1") == 2


async def test_one_address_cannot_take_every_slot() -> None:
    transports = TransportLayer(lambda message, peer: None, lambda peer, reason: None)
    transports.flows = FlowTable(FlowLimits(max_connections=50, max_per_address=3))
    host, port = await transports.listen_stream("tcp", "127.0.0.1", 0)
    clients = []
    try:
        for _ in range(5):
            clients.append(socket.create_connection((host, port)))
        await await_until(lambda: transports.flows.refused == 2, 5, message="two refused")
        assert transports.flows.accepted == 3
    finally:
        for sock in clients:
            sock.close()
        await transports.close()


async def test_accept_under_emfile_neither_crashes_nor_floods_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transports = TransportLayer(lambda message, peer: None, lambda peer, reason: None)
    host, port = await transports.listen_stream("tcp", "127.0.0.1", 0)
    clients = [socket.socket() for _ in range(8)]  # descriptors taken before the limit drops
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    caplog.set_level(logging.INFO)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 1, hard))
        for sock in clients:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect((host, port))
        await await_until(lambda: transports.accept_failures >= 2, 10, message="EMFILE twice")
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await await_until(lambda: transports.flows.accepted == 8, 10, message="accepting again")
        assert len([r for r in caplog.records if "accept" in r.getMessage()]) <= 6
        assert not [r for r in caplog.records if r.exc_info]  # no traceback per retry
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for sock in clients:
            sock.close()
        await transports.close()


def config(**calls: Any) -> Any:
    return parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"port_min": 49000, "port_max": 49999, "srtp": "off"},
            "calls": calls,
        }
    )


async def test_an_auto_answer_without_descriptors_ends_the_call_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = Phone(config()), Phone(config(auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call = alice.dial("sip:bob@" + bob.status()["listen"]["udp"])  # media bound before
        real = phone_module.bind_rtp_pair

        def exhausted(*args: Any) -> Any:
            raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr(phone_module, "bind_rtp_pair", exhausted)
        await call.wait_for(CallState.TERMINATED, timeout=5)
        assert call.status == 503
        theirs = next(iter(bob.calls.values()))
        assert theirs.state is CallState.TERMINATED
        monkeypatch.setattr(phone_module, "bind_rtp_pair", real)
    finally:
        await alice.stop(timeout=0.5)
        await bob.stop(timeout=0.5)


async def test_a_peer_that_never_reads_cannot_grow_our_send_buffer() -> None:
    """Requests that each get a large answer, from a client that never reads: the connection
    stops being read past the high-water mark and is closed past the limit, so what waits in
    our buffer stays below the limit (plus one answer) however much the client sends."""
    answer = b"SIP/2.0 200 OK\r\n" + b"X-Pad: " + b"x" * 8000 + b"\r\nContent-Length: 0\r\n\r\n"
    handled = 0

    def on_message(message: object, peer: Any) -> None:
        nonlocal handled
        handled += 1
        transports.send(Outgoing(answer, peer))

    transports = TransportLayer(on_message, lambda peer, reason: None)
    host, port = await transports.listen_stream("tcp", "127.0.0.1", 0)
    client = socket.create_connection((host, port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    request = (
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK%d\r\n"
        b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: %d@h\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    sent, largest, blocked = 0, 0, False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8
    try:
        while sent < 20_000 and loop.time() < deadline:  # bounded in count and time
            try:
                client.send(request % (sent, sent))
                sent += 1
            except BlockingIOError:
                blocked = True
                await asyncio.sleep(0.01)
            except OSError:
                break  # closed by the phone: also an outcome
            if sent % 50 == 0:
                await asyncio.sleep(0)
            for conn in list(transports._live.values()):
                if conn.transport is not None:
                    largest = max(largest, conn.transport.get_write_buffer_size())
        assert largest <= STREAM_WRITE_LIMIT + len(answer), largest
        # the flood was held back: the phone stopped reading it (requests left unanswered in
        # the kernel's buffers, however large they are on this machine) or closed it
        await asyncio.sleep(0.2)
        assert not transports._live or handled < sent, (handled, sent, blocked)
        assert handled * len(answer) > STREAM_WRITE_HIGH_WATER  # the answers did pile up
    finally:
        client.close()
        await transports.close()
