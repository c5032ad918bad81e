"""Capture the phone's own traffic to a pcap file (Linux), for ``securephone verify``.

Three ways, tried in this order by ``backend="auto"``:

1. **raw socket** — an ``AF_PACKET`` socket (packet(7)) on the loopback or a named interface,
   with a classic BPF program attached (``SO_ATTACH_FILTER``, socket(7)) that lets through
   only IPv4/IPv6 UDP and TCP packets whose source or destination port is one of the phone's.
   The same test runs again in Python on every frame, so packets queued before the filter
   was attached never reach the file. Needs ``CAP_NET_RAW`` (root, or ``setcap``).
2. **tcpdump**, then 3. **dumpcap**, when installed and allowed to capture.

When none works, :class:`CaptureUnavailable` says why for each. The file is a classic pcap
(written with dpkt): Ethernet framing for Ethernet-like interfaces and the loopback, raw IP
for point-to-point ones. On the loopback each packet is kept once (the kernel shows it going
out and coming in; the outgoing copy is dropped, as libpcap does).

:class:`PacketCapture` is a small object for programs (the web interface's start/stop/
download): ``start(ports)`` returns at once, ``stop()`` returns a :class:`CaptureSummary`,
``path`` is the file.

Modules: :mod:`~securephone.capture.bpf` (ports, the pcap-filter expression, the classic BPF
program and its Python twin), :mod:`~securephone.capture.backends` (:class:`PacketCapture` and
its raw socket, tcpdump and dumpcap backends), :mod:`~securephone.capture.cli` (the
``securephone capture`` command, ``app``; ``python -m securephone.capture`` runs it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securephone.capture.backends import (
        Backend,
        CaptureSummary,
        CaptureUnavailable,
        PacketCapture,
    )
    from securephone.capture.bpf import (
        PortRange,
        bpf_expression,
        bpf_program,
        frame_matches,
        parse_ports,
    )

# The names load with their module on first use (PEP 562), so importing the command
# (``capture.cli``, registered by ``securephone``) does not load dpkt and the backends.
_MODULE_OF = {
    "Backend": "backends",
    "CaptureSummary": "backends",
    "CaptureUnavailable": "backends",
    "PacketCapture": "backends",
    "PortRange": "bpf",
    "bpf_expression": "bpf",
    "bpf_program": "bpf",
    "frame_matches": "bpf",
    "parse_ports": "bpf",
}

__all__ = [
    "Backend",
    "CaptureSummary",
    "CaptureUnavailable",
    "PacketCapture",
    "PortRange",
    "bpf_expression",
    "bpf_program",
    "frame_matches",
    "parse_ports",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
