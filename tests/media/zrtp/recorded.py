"""Reading the recorded linphonec ZRTP calls (shared/zrtp/data, outside the repository).

The data directory is ``$SECUREPHONE_ZRTP_DATA`` or the first ``shared/zrtp/data`` found
next to the repository or one of its parents (worktrees live one level deeper than the
main checkout). Tests skip, saying why, when it is absent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dpkt
import pytest

from securephone.media.zrtp.messages import Message, parse_message
from securephone.media.zrtp.packet import ZrtpPacket, is_zrtp

REPO = Path(__file__).resolve().parents[3]


def data_dir() -> Path | None:
    """Where the recorded calls are, or None."""
    env = os.environ.get("SECUREPHONE_ZRTP_DATA")
    if env:
        return Path(env) if (Path(env) / "expected.json").is_file() else None
    candidates = [REPO / "tests" / "vectors" / "zrtp"]
    candidates += [parent / "shared" / "zrtp" / "data" for parent in REPO.parents]
    return next((c for c in candidates if (c / "expected.json").is_file()), None)


def require_data() -> Path:
    """The data directory, or skip the test with the reason."""
    found = data_dir()
    if found is None:
        pytest.skip(
            "recorded linphonec ZRTP calls not found: set SECUREPHONE_ZRTP_DATA, or restore "
            "tests/vectors/zrtp"
        )
    return found


def expected() -> dict[str, Any]:
    """expected.json of the recorded calls."""
    result: dict[str, Any] = json.loads((require_data() / "expected.json").read_text())
    return result


@dataclass(frozen=True)
class Captured:
    """One ZRTP packet of a capture: UDP source port, raw datagram, parsed packet and message."""

    port: int
    datagram: bytes
    packet: ZrtpPacket
    message: Message


def zrtp_packets(pcap: Path) -> list[Captured]:
    """Every ZRTP datagram of a pcap or pcapng file, parsed (dpkt reads both formats)."""
    with pcap.open("rb") as handle:
        magic = handle.read(4)
        handle.seek(0)
        reader: Any = (
            dpkt.pcapng.Reader(handle) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(handle)
        )
        frames = [(reader.datalink(), buf) for _, buf in reader]
    found = []
    for link, buf in frames:
        udp = _udp(link, buf)
        if udp is not None and is_zrtp(udp.data):
            packet = ZrtpPacket.parse(udp.data)
            found.append(
                Captured(udp.sport, bytes(udp.data), packet, parse_message(packet.message))
            )
    return found


def _udp(link: int, buf: bytes) -> Any:
    if link == dpkt.pcap.DLT_EN10MB:
        ip = dpkt.ethernet.Ethernet(buf).data
    elif link == dpkt.pcap.DLT_LINUX_SLL:
        ip = dpkt.sll.SLL(buf).data
    else:
        ip = dpkt.loopback.Loopback(buf).data
    if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.udp.UDP):
        return ip.data
    return None


def cache_rows(path: Path) -> dict[bytes, dict[str, bytes | None]]:
    """A linphone ZID cache (sqlite, opened read-only): peer ZID → rs1, rs2, pvs."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT ziduri.zid, zrtp.rs1, zrtp.rs2, zrtp.pvs FROM ziduri "
            "JOIN zrtp ON zrtp.zuid = ziduri.zuid WHERE ziduri.peeruri != 'self'"
        ).fetchall()
    finally:
        conn.close()
    return {bytes(zid): {"rs1": rs1, "rs2": rs2, "pvs": pvs} for zid, rs1, rs2, pvs in rows}
