"""`make demo`: encrypted calls, captured on the wire and verified, beside a plain one for contrast.

1. Creates a CA and certificates (what `securephone cert` does).
2. Starts two phones on 127.0.0.1: bob answers over TLS with mandatory SRTP.
3. Captures the loopback with tshark while alice calls bob over sips: and speaks, three times:
   - "encrypted": SRTP keyed by SDES, as an encrypted desk phone does it (the keys travel in the
     TLS-protected SDP, so every SIP server on the path could read them: hop by hop);
   - "end-to-end": SRTP keyed by ZRTP in the media path (no server ever sees the keys); both
     phones show the same short authentication string (SAS);
   - "plain": deliberately UDP and RTP, for contrast.
4. Verifies each capture (what `securephone verify` does) and writes HTML reports with pictures:
   the encrypted calls must show TLS signalling and noise (the end-to-end one a completed ZRTP
   exchange too); the plain call shows SIP and speech.

Exit code 0 only when both encrypted calls verified as encrypted, the end-to-end one was keyed by
ZRTP with equal SAS at both ends, and the plain call did not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.pki.certs import create_ca, issue_certificate, write_public_file, write_secret_file
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config
from securephone.verify.keys import load_key_file
from securephone.verify.report import analyze, keying_of, render_terminal, write_outputs

SPEECH = (
    "This is a secure phone call. The signalling travels over TLS, "
    "and the voice is encrypted with SRTP."
)
console = Console(highlight=False)


def make_certificates(out: Path) -> dict[str, Path]:
    """CA (sips.pem), bob's server certificate, alice's device certificate."""
    ca = create_ca("securephone demo CA")
    write_public_file(out / "sips.pem", ca.cert_pem)
    server = issue_certificate(ca, "127.0.0.1", kind="server", ips=["127.0.0.1"], dns=["localhost"])
    write_secret_file(out / "bob.pem", server.combined_pem())
    device = issue_certificate(ca, "alice", kind="client", uris=["sip:alice@127.0.0.1"])
    write_secret_file(out / "alice.pem", device.combined_pem())
    return {"sips": out / "sips.pem", "bob": out / "bob.pem", "alice": out / "alice.pem"}


def make_speech(path: Path, text: str) -> Path:
    """Spoken words with espeak-ng and sox when present; else a tone sequence that sounds like words."""
    if shutil.which("espeak-ng") and shutil.which("sox"):
        raw = path.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True
        )
        raw.unlink()
        return path
    rate, t = 8000, np.arange(0, 4.0, 1 / 8000)
    pitch = 180 + 60 * np.sin(2 * np.pi * 1.5 * t)
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    wave = 0.3 * envelope * np.sin(2 * np.pi * np.cumsum(pitch) / rate)
    import wave as wavemod

    with wavemod.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((wave * 32767).astype("<i2").tobytes())
    return path


#: the demo's calls: label -> (SIP over TLS with mandatory SRTP, how the keys are agreed)
CALLS: dict[str, tuple[bool, str | None]] = {
    "encrypted": (True, "sdes"),
    "end-to-end": (True, "zrtp"),
    "plain": (False, None),
}


def phone_config(out: Path, certs: dict[str, Path], name: str, label: str, **extra: Any) -> Any:
    secure, keying = CALLS[label]
    media: dict[str, Any] = {"port_min": 47000, "port_max": 47999}
    if secure:
        media["srtp"] = "mandatory"
        media["keying"] = [keying]
        if name == "alice" and keying == "sdes":
            media["srtp_key_export"] = str(out / "srtp-keys.json")
    else:
        media["srtp"] = "off"
    (out / name).mkdir(exist_ok=True)  # each phone its own data (its own ZRTP identity)
    return parse_config(
        {
            "data_dir": str(out / name),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp", "tls"], "udp_port": 0,
                    "tls_port": 0, "trace_file": str(out / f"{name}-sip-trace.txt")},
            "tls": {"ca_file": str(certs["sips"]), "use_system_cas": False,
                    "certificate": str(certs[name])},
            "media": media,
            **extra,
        }
    )  # fmt: skip


class Tshark:
    """A loopback capture of the demo's ports."""

    def __init__(self, path: Path, bpf: str) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["tshark", "-i", "lo", "-f", bpf, "-w", str(path), "-F", "pcap", "-q", "-a", "duration:120"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (path.exists() and path.stat().st_size >= 24):
            time.sleep(0.05)
        time.sleep(0.5)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def one_call(out: Path, certs: dict[str, Path], speech: Path, label: str) -> dict[str, Any]:
    secure = CALLS[label][0]
    alice = Phone(phone_config(out, certs, "alice", label))
    bob = Phone(phone_config(out, certs, "bob", label, calls={"auto_answer": True}))
    alice.source_factory = lambda call: WavSource(speech)
    bob.source_factory = lambda call: WavSource(speech)
    bob.sink_factory = lambda call: WavRecorder(out / f"{label}-bob-heard.wav")
    await bob.start()
    await alice.start()
    transport = "tls" if secure else "udp"
    port = bob.status()["listen"][transport].split(":")[1]
    target = f"sips:bob@127.0.0.1:{port}" if secure else f"sip:bob@127.0.0.1:{port}"
    pcap = out / f"{label}-call.pcap"
    # bob's SIP port, and media with both ends in the demo's range: another program's socket that
    # happens to get an ephemeral port in that range does not land in the capture
    media = "udp src portrange 47000-47999 and udp dst portrange 47000-47999"
    capture = Tshark(pcap, f"host 127.0.0.1 and (port {port} or ({media}))")
    try:
        call = alice.dial(target)
        await call.wait_for(CallState.CONNECTED, timeout=15)
        await asyncio.sleep(6.0)
        answered = list(bob.calls.values())
        far_end = answered[0].security if answered else {}
        call.hangup()
        await call.wait_ended(10)
    finally:
        await alice.stop()
        await bob.stop()
        capture.stop()
    brief = _brief(call)
    brief["far_end_sas"] = (far_end.get("path") or {}).get("sas")
    return {"label": label, "pcap": pcap, "summary": brief}


def _brief(call: Call) -> dict[str, Any]:
    summary = call.summary()
    media = summary.get("media") or {}
    signalling = summary.get("signalling") or {}
    tls = signalling.get("tls") or {}
    security = summary.get("security") or {}
    return {
        "state": summary["state"],
        "answered": summary["answered"],
        "duration_s": summary["duration"],
        "signalling": signalling.get("transport"),
        "tls_version": tls.get("version"),
        "tls_cipher": tls.get("cipher"),
        "server_certificate_sha256": tls.get("peer_sha256"),
        "media_encryption": media.get("encryption"),
        "srtp_suite": (media.get("srtp") or {}).get("suite"),
        "keying": security.get("keying"),
        "end_to_end": security.get("end_to_end"),
        "sas": (security.get("path") or {}).get("sas"),
        "packets_sent": media.get("packets_sent"),
        "packets_received": media.get("packets_received"),
    }


def verify(out: Path, result: dict[str, Any]) -> int:
    keys_file = out / "srtp-keys.json"
    keys = load_key_file(keys_file) if result["label"] == "encrypted" and keys_file.exists() else []
    report = analyze(result["pcap"], keys)
    # how the wire shows each media stream's keys agreed (None: not in the media path)
    result["wire_keying"] = sorted({str(keying_of(stream)) for stream in report.media.streams})
    paths = write_outputs(report, out / f"{result['label']}-verify")
    console.rule(f"[bold]{result['label']} call: what the wire shows")
    render_terminal(report, console)
    result["report"] = str(paths.get("html", out / f"{result['label']}-verify" / "report.html"))
    return int(report.exit_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="where everything goes")
    args = parser.parse_args(argv)
    if shutil.which("tshark") is None:
        console.print(
            "securephone demo: tshark is needed to capture the calls (apt-get install tshark)"
        )
        return 2
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    console.rule("[bold]securephone demo")
    certs = make_certificates(out)
    console.print(
        f"certificates: CA {certs['sips'].name}, bob's server and alice's device certificate in {out}"
    )
    speech = make_speech(out / "speech.wav", SPEECH)
    results = [asyncio.run(one_call(out, certs, speech, label)) for label in CALLS]
    codes = [verify(out, result) for result in results]
    console.rule("[bold]calls")
    for result in results:
        console.print(f"{result['label']}: {json.dumps(result['summary'])}")
        console.print(f"  report: {result['report']}")
    checks = verdicts(results, codes)
    for check, ok in checks.items():
        console.print(f"  {'ok' if ok else 'FAILED'}: {check}")
    verdict = "PASS" if all(checks.values()) else "FAIL"
    console.print(f"[bold]{verdict}[/]")
    return 0 if verdict == "PASS" else 1


def verdicts(results: list[dict[str, Any]], codes: list[int]) -> dict[str, bool]:
    """What the demo must show, each with whether it did."""
    calls = {result["label"]: (result, code) for result, code in zip(results, codes, strict=True)}
    sdes, sdes_code = calls["encrypted"]
    e2e, e2e_code = calls["end-to-end"]
    plain, plain_code = calls["plain"]
    brief = e2e["summary"]
    return {
        "the SDES call verified as encrypted (keys hop by hop)": sdes_code == 0
        and sdes["summary"]["answered"]
        and sdes["summary"]["keying"] == "sdes"
        and not sdes["summary"]["end_to_end"],
        "the ZRTP call verified as encrypted, keyed in the media path (end to end)": e2e_code == 0
        and brief["answered"]
        and brief["keying"] == "zrtp"
        and brief["end_to_end"] is True
        and e2e["wire_keying"] == ["zrtp"],
        "both ends of the ZRTP call show the same SAS": bool(brief["sas"])
        and brief["sas"] == brief["far_end_sas"],
        "the plain call was caught as not encrypted": plain_code != 0
        and plain["summary"]["answered"],
    }


if __name__ == "__main__":
    sys.exit(main())
