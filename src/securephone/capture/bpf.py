"""Which packets a capture keeps: the phone's ports, as a pcap-filter(7) expression for
tcpdump/dumpcap and as a classic BPF program for a raw socket (linux/filter.h, bpf(4)), plus
the same test in Python (:func:`frame_matches`) as a second line and a reference for tests.

The program lets through only IPv4/IPv6 UDP and TCP packets whose source or destination port
is in one of the ranges; later IPv4 fragments (which carry no ports) and IPv6 packets with
extension headers are rejected. It is built from a small label-based assembly and resolved to
the forward-only relative jumps classic BPF uses. A range may name its transport (``udp:5060``,
``tcp:5061``): the pcap-filter expression says so, and on the raw socket the kernel program
checks the port and :func:`frame_matches`, which the socket backend runs on every frame, the
transport too (so a stranger's TCP connection on the number of the phone's UDP port is dropped).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import dpkt

from securephone.verify.pcap import decode_frame

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "MAX_PORT_RANGES",
    "SNAPLEN",
    "Insn",
    "PortRange",
    "bpf_expression",
    "bpf_program",
    "frame_matches",
    "parse_ports",
]

SNAPLEN = 262144
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
MAX_PORT_RANGES = 24


TRANSPORTS = ("udp", "tcp")


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports ``first``..``last`` (inclusive), of UDP and TCP or of one of them (``transport``)."""

    first: int
    last: int
    transport: str | None = None  # "udp" or "tcp"; None: both

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def matches(self, transport: str, port: int) -> bool:
        """True for ``port`` of ``transport`` ("udp" or "tcp")."""
        return self.first <= port <= self.last and self.transport in (None, transport)

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return ports if self.transport is None else f"{self.transport}:{ports}"


def parse_ports(specs: Sequence[str | int]) -> list[PortRange]:
    """``["5060", "30000-30999", "udp:5062", "tcp:5063"]`` → port ranges (a ``udp:`` or ``tcp:``
    prefix keeps only that transport); ValueError with the bad item otherwise."""
    ranges = []
    for spec in specs:
        text = str(spec).strip()
        transport, colon, rest = text.partition(":")
        if colon and transport.lower() not in TRANSPORTS:
            raise ValueError(f"not a port or port range (udp: or tcp: before it): {text!r}")
        first, _, last = (rest if colon else text).partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"not a port or port range: {text!r}") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range out of order or outside 1-65535: {text!r}")
        ranges.append(PortRange(low, high, transport.lower() if colon else None))
    if not ranges:
        raise ValueError("give at least one port to capture")
    if len(ranges) > MAX_PORT_RANGES:
        raise ValueError(f"at most {MAX_PORT_RANGES} ports or port ranges")
    return ranges


def bpf_expression(ports: Sequence[PortRange]) -> str:
    """The pcap-filter(7) expression for tcpdump/dumpcap: ``(tcp or udp) and (port … or udp
    port …)``."""
    terms = []
    for r in ports:
        term = f"port {r.first}" if r.first == r.last else f"portrange {r.first}-{r.last}"
        terms.append(term if r.transport is None else f"{r.transport} {term}")
    return f"(tcp or udp) and ({' or '.join(terms)})"


# --------------------------------------------------------------------------- classic BPF

# Opcodes (linux/filter.h, bpf(4)).
_LDH_ABS, _LDB_ABS, _LDH_IND, _LDXB_MSH = 0x28, 0x30, 0x48, 0xB1
_JEQ, _JGT, _JGE, _JSET = 0x15, 0x25, 0x35, 0x45
_AND_K, _RET_K = 0x54, 0x06

Insn = tuple[int, int, int, int]
_Label = str
_Asm = list[tuple[int, _Label | int, _Label | int, int] | _Label]


def _port_checks(ports: Sequence[PortRange], prefix: str) -> _Asm:
    """A holds a port: jump to "accept" if it is in a range, else fall through."""
    code: _Asm = []
    for n, rng in enumerate(ports):
        skip = f"{prefix}{n}"
        code.append((_JGE, 0, skip, rng.first))
        code.append((_JGT, skip, "accept", rng.last))
        code.append(skip)
    return code


def _transport_ports(link: int, ports: Sequence[PortRange]) -> _Asm:
    """IPv4 at "v4" and IPv6 at "v6", link header of ``link`` bytes; UDP/TCP ports."""
    return [
        "v4",
        (_LDB_ABS, 0, 0, link + 9),  # protocol
        (_JEQ, "v4ok", 0, 6),
        (_JEQ, "v4ok", "reject", 17),
        "v4ok",
        (_LDH_ABS, 0, 0, link + 6),  # flags + fragment offset
        (_JSET, "reject", 0, 0x1FFF),  # a later fragment carries no ports
        (_LDXB_MSH, 0, 0, link),  # X = IPv4 header length
        (_LDH_IND, 0, 0, link),  # source port
        *_port_checks(ports, "s4_"),
        (_LDH_IND, 0, 0, link + 2),  # destination port
        *_port_checks(ports, "d4_"),
        (_RET_K, 0, 0, 0),
        "v6",
        (_LDB_ABS, 0, 0, link + 6),  # next header (no extension headers)
        (_JEQ, "v6ok", 0, 6),
        (_JEQ, "v6ok", "reject", 17),
        "v6ok",
        (_LDH_ABS, 0, 0, link + 40),
        *_port_checks(ports, "s6_"),
        (_LDH_ABS, 0, 0, link + 42),
        *_port_checks(ports, "d6_"),
        "reject",
        (_RET_K, 0, 0, 0),
        "accept",
        (_RET_K, 0, 0, SNAPLEN),
    ]


def bpf_program(ports: Sequence[PortRange], linktype: int = LINKTYPE_ETHERNET) -> list[Insn]:
    """A classic BPF filter: IPv4/IPv6 UDP or TCP with a source or destination port listed.

    ``linktype`` 1 reads the EtherType at offset 12 (Ethernet and loopback frames); 101 (raw
    IP) reads the IP version nibble.
    """
    if linktype == LINKTYPE_ETHERNET:
        head: _Asm = [
            (_LDH_ABS, 0, 0, 12),
            (_JEQ, "v4", 0, 0x0800),
            (_JEQ, "v6", "reject", 0x86DD),
        ]
        link = 14
    else:
        head = [
            (_LDB_ABS, 0, 0, 0),
            (_AND_K, 0, 0, 0xF0),
            (_JEQ, "v4", 0, 0x40),
            (_JEQ, "v6", "reject", 0x60),
        ]
        link = 0
    return _assemble([*head, *_transport_ports(link, ports)])


def _assemble(code: _Asm) -> list[Insn]:
    """Resolve label names to the relative jump offsets classic BPF uses (forward only)."""
    where: dict[str, int] = {}
    count = 0
    for entry in code:
        if isinstance(entry, str):
            where[entry] = count
        else:
            count += 1
    out: list[Insn] = []
    for entry in code:
        if isinstance(entry, str):
            continue
        op, jt, jf, k = entry
        here = len(out) + 1
        out.append((op, _offset(jt, where, here), _offset(jf, where, here), k))
    return out


def _offset(target: _Label | int, where: dict[str, int], here: int) -> int:
    if isinstance(target, int):
        return target
    delta = where[target] - here
    if not 0 <= delta <= 255:
        raise ValueError("BPF program too long for its jumps: use fewer port ranges")
    return delta


def frame_matches(frame: bytes, linktype: int, ports: Sequence[PortRange]) -> bool:
    """The BPF program's test in Python (a second line, and the reference for tests)."""
    try:
        ip = decode_frame(linktype, frame)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError):
        return False
    if ip is None or (isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset)):
        return False
    layer = ip.data
    if not isinstance(layer, dpkt.udp.UDP | dpkt.tcp.TCP):
        return False
    transport = "udp" if isinstance(layer, dpkt.udp.UDP) else "tcp"
    return any(
        r.matches(transport, layer.sport) or r.matches(transport, layer.dport) for r in ports
    )
