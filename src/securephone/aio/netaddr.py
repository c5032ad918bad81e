"""IPv4/IPv6 address handling for the shell's sockets: dual stack, mapped addresses, route lookups.

A socket bound to ``::`` with ``IPV6_V6ONLY`` off takes IPv4 peers too (RFC 4038 §4.2, RFC 3493
§5.3); the kernel shows them as IPv4-mapped addresses (``::ffff:127.0.0.1``, RFC 4291 §2.5.5.2).
The core sees plain IPv4 addresses only: sources are unmapped on the way in and destinations
mapped on the way out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

WILDCARDS = frozenset({"0.0.0.0", "::"})


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (bracketed or not), else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def is_wildcard(host: str) -> bool:
    """True for ``0.0.0.0`` and ``::``: every address of the host (``::`` also IPv4, dual stack)."""
    return host.strip("[]") in WILDCARDS


def is_dual_stack(host: str) -> bool:
    """True for ``::``: one IPv6 socket that also takes IPv4 (``IPV6_V6ONLY`` off)."""
    return host.strip("[]") == "::"


def families(host: str) -> tuple[str, ...]:
    """The address families a socket bound to ``host`` reaches: ``("IPv6", "IPv4")`` for ``::``."""
    if is_dual_stack(host):
        return ("IPv6", "IPv4")
    return ("IPv6",) if ":" in host else ("IPv4",)


def bracket(host: str) -> str:
    """``[::1]`` for an IPv6 literal, the host unchanged otherwise (RFC 3986 §3.2.2)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def hostport(host: str, port: int) -> str:
    """``host:port`` with an IPv6 host in brackets: ``[::1]:5060``, ``127.0.0.1:5060``."""
    return f"{bracket(host)}:{port}"


def unmap(host: str) -> str:
    """``::ffff:127.0.0.1`` -> ``127.0.0.1``; every other address unchanged."""
    if not host.startswith("::ffff:"):
        return host
    try:
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
    except ValueError:
        return host
    return str(mapped) if mapped is not None else host


def for_socket(host: str, family: int) -> str:
    """The address to give ``sendto``/``connect`` on a socket of ``family``.

    An IPv4 literal on an IPv6 (dual-stack) socket becomes its IPv4-mapped form.
    """
    host = host.strip("[]")
    if family == socket.AF_INET6 and ":" not in host:
        with contextlib.suppress(ValueError):
            return f"::ffff:{ipaddress.IPv4Address(host)}"
    return host


def dual_stack_options(sock: socket.socket, host: str) -> None:
    """Turn ``IPV6_V6ONLY`` off on a socket about to bind ``::`` (IPv4 reaches it too)."""
    if sock.family == socket.AF_INET6 and is_dual_stack(host):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


def route_source(host: str) -> str | None:
    """Our address on the route to ``host`` (an IP literal), as the kernel would choose it.

    A UDP ``connect`` only looks the route up; no packet is sent. None when there is no route
    or ``host`` is not an IP literal.
    """
    host = unmap(host.strip("[]"))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    try:
        with socket.socket(family_of(host), socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None
