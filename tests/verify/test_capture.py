"""Packet capture: port parsing, the classic BPF program, live captures on the loopback, and a
clear error when capturing is not possible."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import dpkt
import pytest
from typer.testing import CliRunner

import securephone.capture.backends as capture_module
from securephone.capture import (
    CaptureUnavailable,
    PacketCapture,
    PortRange,
    bpf_expression,
    bpf_program,
    frame_matches,
    parse_ports,
)
from securephone.capture.cli import app
from securephone.verify.pcap import read_capture

from ..helpers import wait_until
from .synth import LO, Packet, frame

runner = CliRunner()


def test_parse_ports_and_expression() -> None:
    ports = parse_ports(["5060", " 30000-30999", 5061])
    assert ports == [PortRange(5060, 5060), PortRange(30000, 30999), PortRange(5061, 5061)]
    assert (
        bpf_expression(ports)
        == "(tcp or udp) and (port 5060 or portrange 30000-30999 or port 5061)"
    )
    for bad in (["x"], ["0"], ["70000"], ["10-5"], [], ["sctp:5060"], ["udp:"], [":5060"]):
        with pytest.raises(ValueError):
            parse_ports(bad)


def test_a_port_can_name_its_transport() -> None:
    ports = parse_ports(["udp:5060", "TCP:5061-5070", "5080"])
    assert ports == [
        PortRange(5060, 5060, "udp"),
        PortRange(5061, 5070, "tcp"),
        PortRange(5080, 5080),
    ]
    assert [str(p) for p in ports] == ["udp:5060", "tcp:5061-5070", "5080"]
    assert bpf_expression(ports) == (
        "(tcp or udp) and (udp port 5060 or tcp portrange 5061-5070 or port 5080)"
    )
    udp_5060 = Packet(0, (LO, 40000), (LO, 5060), b"x")
    tcp_5060 = Packet(0, (LO, 5060), (LO, 40000), b"x", "tcp")  # a stranger on the same number
    tcp_5065 = Packet(0, (LO, 40001), (LO, 5065), b"x", "tcp")
    udp_5065 = Packet(0, (LO, 40001), (LO, 5065), b"x")
    both_5080 = [Packet(0, (LO, 40002), (LO, 5080), b"x", t) for t in ("udp", "tcp")]
    for linktype in (1, 101):
        assert frame_matches(frame(udp_5060, linktype), linktype, ports)
        assert not frame_matches(frame(tcp_5060, linktype), linktype, ports)
        assert frame_matches(frame(tcp_5065, linktype), linktype, ports)
        assert not frame_matches(frame(udp_5065, linktype), linktype, ports)
        assert all(frame_matches(frame(p, linktype), linktype, ports) for p in both_5080)


def test_bpf_program_jumps_stay_inside_the_program() -> None:
    for linktype in (1, 101):
        program = bpf_program(parse_ports(["5060", "20000-20999"]), linktype)
        for index, (op, jt, jf, _k) in enumerate(program):
            if op & 0x07 == 0x05:  # BPF_JMP
                assert index + 1 + max(jt, jf) < len(program)
        assert program[-1] == (0x06, 0, 0, 262144) and program[-2] == (0x06, 0, 0, 0)


def test_frame_matches_is_the_filter_in_python() -> None:
    ports = parse_ports(["5060", "30000-30010"])
    udp_in = Packet(0, (LO, 40000), (LO, 30005), b"x")
    tcp_in = Packet(0, (LO, 5060), (LO, 40000), b"x", "tcp")
    v6_in = Packet(0, ("::1", 40000), ("::1", 5060), b"x")
    out = Packet(0, (LO, 40000), (LO, 30011), b"x")
    assert frame_matches(frame(udp_in, 1), 1, ports) and frame_matches(
        frame(tcp_in, 101), 101, ports
    )
    assert frame_matches(frame(v6_in, 1), 1, ports)
    assert not frame_matches(frame(out, 1), 1, ports)
    assert not frame_matches(b"\x00" * 10, 1, ports)


def _free_udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LO, 0))
    return sock


def _tcp_exchange(listener: socket.socket, data: bytes) -> None:
    """One connection to ``listener`` carrying ``data``, received whole, then closed."""
    with socket.create_connection(listener.getsockname()[:2]) as client:
        conn, _ = listener.accept()
        with conn:
            client.sendall(data)
            assert conn.recv(100) == data


def _frames_seen(cap: PacketCapture) -> int:
    """Frames captured so far: counted by the socket backend, read from a program's file."""
    if cap.backend == "socket":
        return cap.packets
    count = 0
    with contextlib.suppress(OSError, ValueError, dpkt.UnpackError), cap.path.open("rb") as f:
        for _ in dpkt.pcap.Reader(f):  # up to a record still being written
            count += 1
    return count


def _start(cap: PacketCapture, ports: list[Any]) -> None:
    try:
        cap.start(ports)
    except CaptureUnavailable as exc:
        pytest.skip(f"capturing not possible here: {exc}")


@pytest.mark.parametrize("backend", ["socket", "dumpcap", "tcpdump"])
def test_live_capture_keeps_only_the_ports_asked_for(tmp_path: Path, backend: str) -> None:
    if backend != "socket" and shutil.which(backend) is None:
        pytest.skip(f"{backend} not installed")
    wanted, other, sender = _free_udp(), _free_udp(), _free_udp()
    port, other_port = wanted.getsockname()[1], other.getsockname()[1]
    listener = socket.create_server((LO, 0))
    tcp_port = listener.getsockname()[1]
    cap = PacketCapture(tmp_path / "cap.pcap", backend=backend)  # type: ignore[arg-type]
    _start(cap, [port, tcp_port])
    try:
        for i in range(20):
            sender.sendto(b"wanted %d" % i, (LO, port))
            sender.sendto(b"other %d" % i, (LO, other_port))
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:
            v6.sendto(b"over ipv6", ("::1", port))
        _tcp_exchange(listener, b"hello over tcp")
        wait_until(  # 21 datagrams and at least the TCP data segment reached the capture
            lambda: _frames_seen(cap) >= 22, 10, message=f"{backend} captured the packets"
        )
    finally:
        summary = cap.stop()
        for sock in (wanted, other, sender, listener):
            sock.close()
    assert summary.backend == backend and summary.path == tmp_path / "cap.pcap"
    result = read_capture(summary.path)
    udp = [d.payload for d in result.datagrams]
    assert udp == [b"wanted %d" % i for i in range(20)] + [b"over ipv6"]  # each packet once
    assert [c.forward.data for c in result.connections] == [b"hello over tcp"]
    assert summary.packets == result.frames
    if backend == "socket":
        assert summary.dropped_by_python == 0  # the kernel's BPF filter did the work


def test_no_way_to_capture_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_socket = socket.socket

    def refuse(family: int = -1, *args: Any, **kwargs: Any) -> socket.socket:
        if family == socket.AF_PACKET:
            raise PermissionError(1, "Operation not permitted")
        return real_socket(family, *args, **kwargs)

    monkeypatch.setattr(capture_module.socket, "socket", refuse)
    monkeypatch.setattr(capture_module.shutil, "which", lambda name: None)
    cap = PacketCapture(tmp_path / "x.pcap")
    with pytest.raises(CaptureUnavailable) as caught:
        cap.start([5060])
    text = str(caught.value)
    assert (
        "CAP_NET_RAW" in text
        and "tcpdump is not installed" in text
        and "dumpcap is not installed" in text
    )
    assert not cap.running
    result = runner.invoke(app, ["--out", str(tmp_path / "y.pcap"), "--port", "5060"])
    assert result.exit_code == 2 and "cannot capture packets here" in result.stderr


def test_unknown_interface(tmp_path: Path) -> None:
    with pytest.raises(CaptureUnavailable, match="no network interface named 'nope0'"):
        PacketCapture(tmp_path / "x.pcap", interface="nope0", backend="socket").start([5060])


def test_cli_captures_for_a_duration(tmp_path: Path) -> None:
    target = _free_udp()
    port = target.getsockname()[1]
    stop = threading.Event()

    def chatter() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                s.sendto(b"ping", (LO, port))
                time.sleep(0.05)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        result = runner.invoke(
            app, ["--out", str(tmp_path / "d.pcap"), "-p", str(port), "--duration", "1"]
        )
    finally:
        stop.set()
        thread.join()
        target.close()
    if result.exit_code == 2 and "cannot capture" in result.stderr:
        pytest.skip(result.stderr)
    assert result.exit_code == 0, result.output
    assert "packets written to" in result.stdout
    assert read_capture(tmp_path / "d.pcap").datagrams[0].payload == b"ping"
    bad = runner.invoke(app, ["--out", str(tmp_path / "e.pcap"), "-p", "x"])
    assert bad.exit_code == 2 and "not a port" in bad.stderr


def test_live_capture_of_a_udp_port_leaves_out_tcp_on_the_same_number(tmp_path: Path) -> None:
    """``udp:PORT``: the socket backend keeps the phone's datagrams and drops a TCP connection
    that happens to use the same port number (another program's, e.g. another test's)."""
    udp, sender = _free_udp(), _free_udp()
    port = udp.getsockname()[1]
    try:
        listener = socket.create_server((LO, port))
    except OSError:
        pytest.skip(f"TCP port {port} is taken here")
    cap = PacketCapture(tmp_path / "cap.pcap", backend="socket")
    _start(cap, [f"udp:{port}"])
    try:
        for i in range(5):
            sender.sendto(b"datagram %d" % i, (LO, port))
        _tcp_exchange(listener, b"a stranger over tcp")
        wait_until(lambda: cap.packets >= 5 and cap.dropped_by_python > 0, 10)
    finally:
        summary = cap.stop()
        for sock in (udp, sender, listener):
            sock.close()
    result = read_capture(summary.path)
    assert [d.payload for d in result.datagrams] == [b"datagram %d" % i for i in range(5)]
    assert result.connections == []
