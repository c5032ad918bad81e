"""verify on real calls captured by the tests: securephone ↔ securephone and baresip ↔ baresip,
plain and encrypted. The verdicts must be right on other phones' calls too (issue 7).

Each call is captured with :class:`securephone.capture.PacketCapture` on the SIP ports and the
media port block of the phones, then judged by :func:`securephone.verify.report.analyze`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.capture import CaptureUnavailable, PacketCapture
from securephone.media.codecs.opus import opus_available
from securephone.pki.certs import create_ca, issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config
from securephone.verify.flows import FlowKind
from securephone.verify.keys import SUITES, load_key_file
from securephone.verify.media import MediaClass
from securephone.verify.report import Item, Verdict, VerifyReport, analyze, write_outputs

from ..interop.audio_tools import assert_audio_matches, best_alignment, read_wav
from ..interop.baresip import Baresip, PortRange, TlsFiles
from ..interop.conftest import BaresipFactory
from .linphone import Linphonec
from .linphone import missing_tools as linphone_missing

pytestmark = pytest.mark.interop

LO = "127.0.0.1"
SECONDS = 4.0


@pytest.fixture
def media_block() -> Iterator[PortRange]:
    """100 UDP ports reserved for this test's RTP (so the capture sees no other test's calls)."""
    block = PortRange.reserve()
    try:
        yield block
    finally:
        block.release()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = create_ca("verify calls CA")
    folder = tmp_path / "pki"
    folder.mkdir()
    write_secret_file(folder / "sips.pem", ca.cert_pem)
    leaf = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=[LO])
    write_secret_file(folder / "phone.pem", leaf.combined_pem())
    write_secret_file(folder / "baresip.pem", leaf.key_pem + leaf.cert_pem + leaf.chain_pem)
    return {"dir": folder, "ca": folder / "sips.pem", "phone": folder / "phone.pem",
            "baresip": folder / "baresip.pem"}  # fmt: skip


def start_capture(path: Path, ports: list[Any]) -> PacketCapture:
    capture = PacketCapture(path)
    try:
        capture.start(ports)
    except CaptureUnavailable as exc:
        pytest.skip(f"cannot capture here: {exc}")
    return capture


def media_items(report: VerifyReport) -> list[Item]:
    return [item for item in report.items if item.stream is not None]


def item_from(report: VerifyReport, port: int) -> Item:
    (item,) = [i for i in media_items(report) if i.stream is not None and i.stream.src.port == port]
    return item


# --------------------------------------------------------------------------- securephone


def our_phone(
    tmp_path: Path, pki: dict[str, Path], name: str, speech: Path, block: PortRange, **media: Any
) -> Phone:
    config = parse_config(
        {
            "data_dir": str(pki["dir"]),
            "sip": {"listen_address": LO, "transports": ["udp", "tcp", "tls"],
                    "udp_port": 0, "tcp_port": 0, "tls_port": 0},
            "tls": {"ca_file": str(pki["ca"]), "use_system_cas": False, "certificate": str(pki["phone"])},
            "media": {"port_min": block.first, "port_max": block.last, **media},
            "calls": {"auto_answer": True},
        }
    )  # fmt: skip
    phone = Phone(config)
    phone.source_factory = lambda call: WavSource(speech)
    phone.sink_factory = lambda call: WavRecorder(tmp_path / f"{name}-heard.wav")
    return phone


def listen_port(phone: Phone, transport: str) -> int:
    return int(phone.status()["listen"][transport].rsplit(":", 1)[1])


async def call_between(
    alice: Phone, bob: Phone, target: str, capture_to: Path, block: PortRange
) -> Call:
    """Start both, capture their SIP ports and the media block, talk SECONDS, hang up."""
    await alice.start()
    await bob.start()
    # each port with its transport: another test's traffic can use the same number over the
    # other transport (ephemeral ports), and would otherwise count as this call's
    ports: list[Any] = [
        f"{'udp' if t == 'udp' else 'tcp'}:{listen_port(p, t)}"
        for p in (alice, bob)
        for t in ("udp", "tcp", "tls")
    ]
    capture = start_capture(capture_to, [*ports, f"udp:{block.first}-{block.last}"])
    try:
        call = alice.dial(target.format(udp=listen_port(bob, "udp"), tls=listen_port(bob, "tls")))
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, (
            call.reason
        )
        await asyncio.sleep(SECONDS)
        call.hangup()
        await call.wait_ended(10)
    finally:
        await alice.stop()
        await bob.stop()
        capture.stop()
    return call


@pytest.mark.parametrize(
    ("codec", "seen", "rate"),
    [("opus", "OPUS", 48000), ("G722", "G722", 16000), ("PCMU", "PCMU", 8000)],
)
async def test_securephone_plain_call_is_readable(
    tmp_path: Path,
    pki: dict[str, Path],
    speech: tuple[Path, Path],
    media_block: PortRange,
    codec: str,
    seen: str,
    rate: int,
) -> None:
    if codec == "opus" and not opus_available():
        pytest.skip("libopus is not installed")
    alice = our_phone(tmp_path, pki, "alice", speech[0], media_block, srtp="off", codecs=[codec])
    bob = our_phone(tmp_path, pki, "bob", speech[1], media_block, srtp="off")
    call = await call_between(
        alice, bob, "sip:bob@127.0.0.1:{udp}", tmp_path / "plain.pcap", media_block
    )
    report = analyze(tmp_path / "plain.pcap")
    write_outputs(report, tmp_path / "report")
    assert report.overall is Verdict.PLAINTEXT and report.exit_code == 1
    # the capture filter names ephemeral listening ports, which another test's traffic on this
    # machine can share (a CI run saw a second flow): the call's flow is the one with its Call-ID
    (sip,) = [i for i in report.items if i.flow is not None and call.key in i.flow.call_ids]
    assert sip.flow is not None and sip.flow.kind is FlowKind.SIP_UDP
    assert {"INVITE", "ACK", "BYE"} <= set(sip.flow.methods)
    media = media_items(report)
    assert len(media) == 2 and all(i.verdict is Verdict.PLAINTEXT for i in media)
    mine = item_from(report, int(call.summary()["media"]["local_rtp"].rsplit(":", 1)[1]))
    assert mine.stream is not None and mine.stream.by_sdp and mine.stream.codec.upper() == seen
    assert mine.export is not None and mine.export.rate == rate
    assert read_wav(mine.export.wav, rate=None)[1] == rate  # G.722: 16 kHz, Opus: 48 kHz
    assert any(f"codec {mine.stream.codec}" in d for d in mine.details)
    if codec == "opus":
        count = len(mine.stream.main_packets)
        assert count > 100 and f"{count} Opus payloads, decoded" in " ".join(mine.details)
    assert "audio recoverable" in mine.summary
    assert_audio_matches(read_wav(speech[0])[0], read_wav(mine.export.wav)[0])


async def test_securephone_tls_srtp_call_is_encrypted_and_its_keys_confirm_it(
    tmp_path: Path, pki: dict[str, Path], speech: tuple[Path, Path], media_block: PortRange
) -> None:
    keys = tmp_path / "keys.json"
    # G.711's fixed payload size lets verify measure the SRTP tag; Opus is variable-rate
    alice = our_phone(tmp_path, pki, "alice", speech[0], media_block, srtp="mandatory",
                      srtp_key_export=str(keys), codecs=["PCMU"])  # fmt: skip
    bob = our_phone(tmp_path, pki, "bob", speech[1], media_block, srtp="mandatory")
    call = await call_between(
        alice, bob, "sips:bob@127.0.0.1:{tls}", tmp_path / "secure.pcap", media_block
    )
    suite = SUITES[call.summary()["media"]["srtp"]["suite"]]
    report = analyze(tmp_path / "secure.pcap")
    write_outputs(report, tmp_path / "report")
    assert report.overall is Verdict.ENCRYPTED and report.exit_code == 0, [
        (i.name, i.summary) for i in report.items
    ]
    assert report.plaintext_sip == 0
    flows = [i.flow for i in report.items if i.flow is not None]
    assert flows and all(
        f.kind is FlowKind.TLS and f.tls and f.tls.version_name == "TLS 1.3" for f in flows
    )
    media = media_items(report)
    assert len(media) == 2
    for item in media:
        assert item.stream is not None and item.stream.media_class is MediaClass.SRTP
        assert item.stream.tag_length == suite.tag_length
    alice_port = int(call.summary()["media"]["local_rtp"].rsplit(":", 1)[1])
    mine = item_from(report, alice_port)
    assert (
        mine.export is not None and mine.export.flatness is not None and mine.export.flatness > 0.4
    )
    assert best_alignment(read_wav(speech[0])[0], read_wav(mine.export.wav)[0])[1] < 0.3

    keyed = analyze(tmp_path / "secure.pcap", load_key_file(keys))
    write_outputs(keyed, tmp_path / "keyed")
    assert keyed.exit_code == 0
    for item in media_items(keyed):
        result = item.stream.decryption if item.stream else None
        assert result is not None and result.confirmed and result.auth_failed == 0
    decrypted = item_from(keyed, alice_port).export
    assert decrypted is not None and decrypted.decrypted_wav is not None
    assert_audio_matches(read_wav(speech[0])[0], read_wav(decrypted.decrypted_wav)[0])


# --------------------------------------------------------------------------- baresip


def baresip_pair(
    factory: BaresipFactory, speech: tuple[Path, Path], **common: Any
) -> tuple[Baresip, Baresip]:
    alice = factory(user="alice", audio_source=speech[0], **common)
    bob = factory(user="bob", audio_source=speech[1], **common)
    return alice, bob


def baresip_ports(*phones: Baresip) -> list[Any]:
    ports: list[Any] = []
    for phone in phones:
        assert phone.rtp_ports is not None
        ports += [
            phone.sip_port,  # UDP and TCP
            f"tcp:{phone.tls_port}",
            f"udp:{phone.rtp_ports.first}-{phone.rtp_ports.last}",
        ]
    return ports


def baresip_call(alice: Baresip, bob: Baresip, pcap: Path) -> None:
    capture = start_capture(pcap, baresip_ports(alice, bob))
    try:
        alice.dial(bob.sip_uri)
        alice.wait_event("CALL_ESTABLISHED", 15)
        bob.wait_event("CALL_ESTABLISHED", 15)
        bob.wait_heard(SECONDS)
        alice.hangup()
        bob.wait_event("CALL_CLOSED", 10)
    finally:
        capture.stop()


def rtp_port_of(phone: Baresip, report: VerifyReport) -> int:
    assert phone.rtp_ports is not None
    found = [
        i.stream.src.port
        for i in media_items(report)
        if i.stream and i.stream.src.port in phone.rtp_ports
    ]
    assert len(found) == 1, found
    return found[0]


def test_baresip_plain_call_is_readable_also_as_pcapng(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    alice, bob = baresip_pair(baresip_factory, speech)
    baresip_call(alice, bob, tmp_path / "plain.pcap")
    report = analyze(tmp_path / "plain.pcap")
    write_outputs(report, tmp_path / "report")
    assert report.overall is Verdict.PLAINTEXT and report.exit_code == 1
    sip = [i.flow for i in report.items if i.flow is not None]
    assert {"INVITE", "ACK", "BYE"} <= {m for f in sip for m in f.methods}
    media = media_items(report)
    assert len(media) == 2 and all(i.verdict is Verdict.PLAINTEXT for i in media)
    mine = item_from(report, rtp_port_of(alice, report))
    assert mine.export is not None
    assert_audio_matches(read_wav(speech[0])[0], read_wav(mine.export.wav)[0])
    if shutil.which("tshark") is None:
        return
    converted = tmp_path / "plain.pcapng"
    subprocess.run(["tshark", "-r", str(tmp_path / "plain.pcap"), "-F", "pcapng", "-w", str(converted)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    again = analyze(converted)
    assert again.capture.file_format == "pcapng"
    assert [(i.name, i.verdict) for i in again.items] == [(i.name, i.verdict) for i in report.items]


def test_baresip_tls_srtp_call_is_encrypted_but_leaks_rtcp(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path], tmp_path: Path, pki: dict[str, Path]
) -> None:
    """TLS + SDES-SRTP: signalling and audio are encrypted. baresip 1.0.0 still sends some RTCP
    in the clear (an APP "PING" before keying; BYE and SDES with its CNAME, a SIP URI, when
    the call ends), so verify calls the streams weak and does not exit 0 — which is the truth."""
    tls = TlsFiles(pki["baresip"], pki["ca"])
    alice, bob = baresip_pair(
        baresip_factory, speech, transport="tls", mediaenc="srtp-mand", tls=tls
    )
    baresip_call(alice, bob, tmp_path / "secure.pcap")
    assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in alice.log_text()
    report = analyze(tmp_path / "secure.pcap")
    write_outputs(report, tmp_path / "report")
    summary = [(i.name, i.verdict.value, i.summary, i.details) for i in report.items]
    flows = [i for i in report.items if i.flow is not None]
    assert flows and all(i.verdict is Verdict.ENCRYPTED for i in flows), summary
    assert all(i.flow and i.flow.kind is FlowKind.TLS for i in flows)
    assert any(i.flow and i.flow.tls and i.flow.tls.version in (0x0303, 0x0304) for i in flows)
    assert report.plaintext_sip == 0
    media = media_items(report)
    assert len(media) == 2
    for item in media:
        stream = item.stream
        assert stream is not None and stream.media_class is MediaClass.SRTP, summary
        assert stream.tag_length == 10 and "80-bit tag" in item.summary  # AES_CM_128_HMAC_SHA1_80
        assert stream.rtcp.encrypted > 0  # SRTCP during the call
        if stream.rtcp.plain:
            assert item.verdict is Verdict.WEAK and "in plaintext" in item.summary
        else:
            assert item.verdict is Verdict.ENCRYPTED
    leaked = {t for i in media if i.stream for t in i.stream.rtcp.plain_types}
    cnames = {c for i in media if i.stream for c in i.stream.rtcp.cnames}
    assert report.overall is (Verdict.WEAK if leaked else Verdict.ENCRYPTED)
    assert report.exit_code == (1 if leaked else 0)
    assert all(c.startswith("sip:") for c in cnames)
    mine = item_from(report, rtp_port_of(alice, report))
    assert mine.export is not None
    assert best_alignment(read_wav(speech[0])[0], read_wav(mine.export.wav)[0])[1] < 0.3


def test_baresip_sdes_over_plaintext_sip_is_exposed_and_decrypted(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    alice, bob = baresip_pair(baresip_factory, speech, mediaenc="srtp-mand")
    baresip_call(alice, bob, tmp_path / "sdes.pcap")
    report = analyze(tmp_path / "sdes.pcap")
    write_outputs(report, tmp_path / "report")
    assert report.overall is Verdict.PLAINTEXT and report.exit_code == 1
    media = media_items(report)
    assert len(media) == 2 and all(i.verdict is Verdict.EXPOSED for i in media), [
        i.summary for i in media
    ]
    mine = item_from(report, rtp_port_of(alice, report))
    assert mine.export is not None and mine.export.decrypted_wav is not None
    assert best_alignment(read_wav(speech[0])[0], read_wav(mine.export.wav)[0])[1] < 0.3
    assert_audio_matches(read_wav(speech[0])[0], read_wav(mine.export.decrypted_wav)[0])


# --------------------------------------------------------------------------- linphonec


@pytest.fixture
def linphones(tmp_path: Path) -> Iterator[list[Linphonec]]:
    missing = linphone_missing()
    if missing:
        pytest.skip(
            f"linphonec interop: {', '.join(missing)} missing (apt-get install linphone-cli)"
        )
    started: list[Linphonec] = []
    try:
        yield started
    finally:
        for phone in started:
            phone.stop()
        for phone in started:
            shutil.rmtree(phone.workdir, ignore_errors=True)


@pytest.mark.parametrize("encryption", ["zrtp", "none"])
def test_linphonec_call_zrtp_or_plain(
    linphones: list[Linphonec], speech: tuple[Path, Path], tmp_path: Path,
    media_block: PortRange, encryption: str,
) -> None:  # fmt: skip
    # pytest's tmp_path is 0700 root: linphonec runs under another uid, so it gets /tmp dirs
    folders = [Path(tempfile.mkdtemp(prefix=f"verify-linphone-{n}-")) for n in "ab"]
    for folder in folders:
        folder.chmod(0o755)
    alice = Linphonec(folders[0], "alice", media_block.first, speech[0], encryption=encryption)
    bob = Linphonec(
        folders[1],
        "bob",
        media_block.first + 10,
        speech[1],
        encryption=encryption,
        auto_answer=True,
    )
    for phone in (alice, bob):
        linphones.append(phone)
        phone.start()
    ports = [alice.sip_port, bob.sip_port, f"udp:{media_block.first}-{media_block.last}"]
    capture = start_capture(tmp_path / "linphone.pcap", ports)
    try:
        alice.command(f"call {bob.uri}")
        alice.wait_for("fully encrypted" if encryption == "zrtp" else "StreamsRunning", 20)
        time.sleep(SECONDS)  # the call carries audio this long
        alice.command("terminate")
        for phone in (alice, bob):  # the BYE went out and arrived
            phone.wait_for(" ended (", 10)
    finally:
        capture.stop()
    report = analyze(tmp_path / "linphone.pcap")
    write_outputs(report, tmp_path / "report")
    summary = [(i.name, i.verdict.value, i.summary, i.details) for i in report.items]
    assert report.overall is Verdict.PLAINTEXT and report.exit_code == 1  # SIP over UDP
    sip = [i.flow for i in report.items if i.flow is not None]
    assert {"INVITE", "ACK", "BYE"} <= {m for f in sip for m in f.methods}, summary
    media = media_items(report)
    assert len(media) == 2, summary
    mine = item_from(report, alice.rtp_port)
    assert mine.stream is not None and mine.export is not None and mine.stream.codec == "PCMU"
    sent = read_wav(speech[0])[0]
    if encryption == "zrtp":
        for item in media:
            stream = item.stream
            assert stream is not None and stream.media_class is MediaClass.SRTP, summary
            assert stream.zrtp.packets > 0 and stream.zrtp.completed, stream.zrtp.messages
            assert stream.sdp_receiver is not None and stream.sdp_receiver.zrtp_hash
            assert stream.tag_length in (4, 10)  # HS32 or HS80 (RFC 6189 §5.1.4)
            assert any("ZRTP key agreement completed" in d for d in item.details)
        assert "Hello" in mine.stream.zrtp.messages and "Commit" in mine.stream.zrtp.messages
        assert best_alignment(sent, read_wav(mine.export.wav)[0])[1] < 0.3
    else:
        assert all(i.verdict is Verdict.PLAINTEXT for i in media)
        assert_audio_matches(sent, read_wav(mine.export.wav)[0])
