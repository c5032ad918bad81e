"""A 60 s call captured on the loopback: one frame of RTP timestamp per packet, and a send schedule
that does not drift (under 20 ms in total over the call), measured from kernel capture times."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ..helpers import free_port, port_listening, wait_until
from .capture import LoopbackCapture, read_segments

CALL_SECONDS = 60


def write_config(path: Path, port_min: int, port_max: int) -> Path:
    path.write_text(
        '[sip]\nlisten_address = "127.0.0.1"\nudp_port = 0\ntcp_port = 0\n\n'
        f'[media]\nport_min = {port_min}\nport_max = {port_max}\nsrtp = "off"\n'
        'codecs = ["PCMU"]\n'  # the check below reads G.711 packets: 160 timestamp units each
    )
    return path


def rtp_packets(pcap: Path, port_min: int, port_max: int) -> list[tuple[float, bytes, str]]:
    """(capture time, RTP bytes, destination address) for UDP packets sent from the port range."""
    found = []
    for seg in read_segments(pcap):
        data = seg.payload
        rtp = seg.proto == "udp" and port_min <= seg.src[1] <= port_max and len(data) >= 12
        if rtp and data[0] >> 6 == 2 and data[1] & 0x7F in (0, 8):  # PCMU/PCMA, not RTCP
            found.append((seg.time, data, seg.dst[0]))
    return found


@pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)"
)
def test_sixty_second_call_no_drift(tmp_path: Path) -> None:
    port_min = 50000 + (free_port() % 20) * 200  # a block no other test (or the demo) uses
    port_max = port_min + 99
    answer_port = free_port("both")
    pcap = tmp_path / "call.pcap"
    bpf = f"udp src portrange {port_min}-{port_max}"
    with LoopbackCapture(pcap, bpf, time_limit=CALL_SECONDS + 30):
        answer = subprocess.Popen(
            [sys.executable, "-m", "securephone.cli", "answer", "--listen",
             f"127.0.0.1:{answer_port}", "--calls", "1", "--srtp", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until(
                lambda: port_listening(answer_port, "udp") or answer.poll() is not None,
                20,
                message=f"the answering phone listens on UDP {answer_port}",
            )
            caller = subprocess.run(
                [sys.executable, "-m", "securephone.cli", "call", f"sip:bob@127.0.0.1:{answer_port}",
                 "--config", str(write_config(tmp_path / "c.toml", port_min, port_max)),
                 "--play", "tone:440", "--duration", str(CALL_SECONDS), "--json"],
                capture_output=True, text=True, timeout=CALL_SECONDS + 40,
            )  # fmt: skip
            answer.wait(timeout=20)
        finally:
            if answer.poll() is None:
                answer.terminate()
                answer.wait(timeout=10)
    assert caller.returncode == 0, caller.stderr
    packets = rtp_packets(pcap, port_min, port_max)
    assert len(packets) >= CALL_SECONDS * 50 - 10, f"only {len(packets)} RTP packets captured"
    assert {dest for _, _, dest in packets} == {"127.0.0.1"}
    times = np.array([t for t, _, _ in packets])
    seqs = np.array([int.from_bytes(p[2:4], "big") for _, p, _ in packets])
    stamps = np.array([int.from_bytes(p[4:8], "big") for _, p, _ in packets], dtype=np.int64)
    # Every packet is the next sequence number and exactly one 20 ms frame (160 units) later.
    assert np.all((np.diff(seqs) % 65536) == 1)
    assert np.all((np.diff(stamps) % 2**32) == 160)
    # Send times against the ideal 20 ms grid from the first packet: no drift over the minute.
    ideal = times[0] + np.arange(len(times)) * 0.020
    offset = times - ideal
    drift = offset[-50:].mean() - offset[:50].mean()
    assert abs(drift) < 0.020, f"drift {drift * 1000:.2f} ms over {len(times)} packets"
    intervals_ms = np.diff(times) * 1000
    jitter = np.abs(intervals_ms - 20.0)
    print(
        f"\nRTP send schedule over {len(times)} packets: drift {drift * 1000:.3f} ms, "
        f"interval jitter p50 {np.percentile(jitter, 50):.3f} ms, p99 {np.percentile(jitter, 99):.3f} ms, "
        f"max offset {np.abs(offset).max() * 1000:.3f} ms"
    )
