"""The verification report: a verdict per flow and overall, as a terminal table, HTML and JSON.

Verdicts, from worst to best:

* ``plaintext`` — SIP readable on the wire, RTP audio recoverable, or a TLS NULL cipher;
* ``exposed`` — SRTP, but its SDES key is readable in plaintext SDP (RFC 4568 §8.3 requires
  SDES to travel only over a secure channel), so anyone with the capture can decrypt it;
* ``weak`` — encrypted, but not well: TLS below 1.2 (RFC 8996), a weak cipher suite, SRTP
  without an authentication tag, or RTCP left in plaintext beside SRTP;
* ``unknown`` — too little data to tell;
* ``encrypted`` — TLS 1.2+ signalling, SRTP media (random payload, suite-consistent tag).

The overall verdict is the worst one found; a capture with no SIP, TLS or RTP at all is
``unknown``. :attr:`VerifyReport.exit_code` is 0 only when the overall verdict is
``encrypted`` — everything in the capture was encrypted — and 1 otherwise.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from securephone.media.codecs.opus import opus_available
from securephone.verify.export import StreamExport, export_stream
from securephone.verify.flows import (
    FlowKind,
    SignallingReport,
    SipFlow,
    find_signalling,
    tls_version_name,
)
from securephone.verify.keys import KeyEntry
from securephone.verify.media import MediaClass, MediaReport, MediaStream, find_media
from securephone.verify.pcap import Capture, read_capture

__all__ = [
    "Item",
    "Verdict",
    "VerifyReport",
    "analyze",
    "analyze_capture",
    "render_html",
    "render_terminal",
    "write_outputs",
]


class Verdict(StrEnum):
    """How well one flow (or the whole capture) is protected."""

    PLAINTEXT = "plaintext"
    EXPOSED = "exposed"
    WEAK = "weak"
    UNKNOWN = "unknown"
    ENCRYPTED = "encrypted"


_RANK = [Verdict.PLAINTEXT, Verdict.EXPOSED, Verdict.WEAK, Verdict.UNKNOWN, Verdict.ENCRYPTED]
_OVERALL_TEXT = {
    Verdict.PLAINTEXT: "NOT ENCRYPTED: something in this capture can be read",
    Verdict.EXPOSED: "NOT PROTECTED: SRTP keys are readable in the capture",
    Verdict.WEAK: "WEAKLY ENCRYPTED: encrypted, but below today's minimum",
    Verdict.UNKNOWN: "INCONCLUSIVE: not enough to decide",
    Verdict.ENCRYPTED: "ENCRYPTED: every signalling flow and media stream is encrypted",
}
_COLOURS = {
    Verdict.PLAINTEXT: "red",
    Verdict.EXPOSED: "red",
    Verdict.WEAK: "yellow",
    Verdict.UNKNOWN: "yellow",
    Verdict.ENCRYPTED: "green",
}
_HTML_COLOURS = {
    Verdict.PLAINTEXT: "#b00020",
    Verdict.EXPOSED: "#b00020",
    Verdict.WEAK: "#a66300",
    Verdict.UNKNOWN: "#6b6b6b",
    Verdict.ENCRYPTED: "#1b7f3b",
}


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """The least protected verdict of a list (``unknown`` for an empty one)."""
    return min(verdicts, key=_RANK.index) if verdicts else Verdict.UNKNOWN


@dataclass(slots=True)
class Item:
    """One row of the report: a signalling flow or a media stream with its verdict."""

    kind: str
    name: str
    verdict: Verdict
    summary: str
    details: list[str] = field(default_factory=list)
    stream: MediaStream | None = None
    flow: SipFlow | None = None
    export: StreamExport | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "details": list(self.details),
        }
        if self.flow is not None:
            data["signalling"] = _flow_dict(self.flow)
        if self.stream is not None:
            data["media"] = _stream_dict(self.stream)
        if self.export is not None:
            data["files"] = _export_dict(self.export)
        return data


@dataclass(slots=True)
class VerifyReport:
    """Everything ``securephone verify`` found in one capture."""

    capture: Capture
    signalling: SignallingReport
    media: MediaReport
    items: list[Item]
    warnings: list[str]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def overall(self) -> Verdict:
        """The worst verdict; ``unknown`` when nothing was found."""
        verdicts = [item.verdict for item in self.items]
        if self.signalling.stray_sip_text:
            verdicts.append(Verdict.PLAINTEXT)
        return worst(verdicts)

    @property
    def overall_text(self) -> str:
        """One sentence for the overall verdict."""
        if not self.items:
            return "INCONCLUSIVE: no SIP, TLS or RTP found in this capture"
        return _OVERALL_TEXT[self.overall]

    @property
    def plaintext_sip(self) -> int:
        """How many plaintext SIP messages appear anywhere in the capture."""
        return len(self.signalling.messages) + self.signalling.stray_sip_text

    @property
    def exit_code(self) -> int:
        """0 only when everything in the capture is encrypted."""
        return 0 if self.overall is Verdict.ENCRYPTED else 1

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        cap = self.capture
        return {
            "capture": {
                "path": cap.path,
                "format": cap.file_format,
                "link_types": cap.link_names,
                "frames": cap.frames,
                "udp_datagrams": len(cap.datagrams),
                "tcp_connections": len(cap.connections),
                "truncated": cap.truncated,
                "duration": _duration(cap),
            },
            "overall": self.overall.value,
            "overall_text": self.overall_text,
            "exit_code": self.exit_code,
            "plaintext_sip_messages": self.plaintext_sip,
            "items": [item.to_dict() for item in self.items],
            "warnings": list(self.warnings),
            "files": {name: str(path) for name, path in self.files.items()},
        }


def _duration(cap: Capture) -> float:
    if cap.first_time is None or cap.last_time is None:
        return 0.0
    return round(cap.last_time - cap.first_time, 3)


# --------------------------------------------------------------------------- analysis


def analyze(path: Path | str, keys: Sequence[KeyEntry] = ()) -> VerifyReport:
    """Read a capture file and judge it (no files are written; see :func:`write_outputs`)."""
    return analyze_capture(read_capture(path), keys)


def analyze_capture(capture: Capture, keys: Sequence[KeyEntry] = ()) -> VerifyReport:
    """Judge an already read capture."""
    signalling = find_signalling(capture)
    sip_frames = signalling.sip_datagrams
    media_datagrams = [d for d in capture.datagrams if d.frame not in sip_frames]
    media = find_media(media_datagrams, signalling.messages, keys)
    items = [_flow_item(flow) for flow in signalling.flows]
    items += [_stream_item(stream, bool(keys)) for stream in media.streams]
    return VerifyReport(capture, signalling, media, items, _warnings(capture, signalling, media))


def _warnings(capture: Capture, signalling: SignallingReport, media: MediaReport) -> list[str]:
    found = list(capture.warnings)
    if signalling.stray_sip_text:
        found.append(
            f"plaintext SIP text found in {signalling.stray_sip_text} other packets "
            "(outside any SIP flow)"
        )
    found += [f"{name}: not SIP, not TLS" for name in signalling.other_tcp]
    for pair, info in media.zrtp_only.items():
        found.append(f"ZRTP packets without RTP on {pair}: {', '.join(info.messages[:8])}")
    if media.unmatched_rtcp_plain:
        found.append(f"{media.unmatched_rtcp_plain} plaintext RTCP packets not matched to a stream")
    return found


def _flow_item(flow: SipFlow) -> Item:
    if flow.kind is FlowKind.TLS and flow.tls is not None:
        verdict, summary, details = _tls_verdict(flow)
    else:
        verdict, summary, details = _sip_verdict(flow)
    return Item("signalling", flow.name, verdict, summary, details, flow=flow)


def _sip_verdict(flow: SipFlow) -> tuple[Verdict, str, list[str]]:
    methods = ", ".join(flow.methods) or "no requests"
    summary = f"plaintext SIP readable: {methods}"
    details = [f"{len(flow.messages)} SIP messages in clear text"]
    if flow.responses:
        details.append("responses: " + ", ".join(flow.responses))
    if flow.call_ids:
        details.append("Call-IDs: " + ", ".join(flow.call_ids[:5]))
    if any(b"a=crypto:" in m.body for m in flow.messages):
        details.append("SDP carries a=crypto keys in plaintext: the SRTP keys are exposed")
    return Verdict.PLAINTEXT, summary, details


def _tls_verdict(flow: SipFlow) -> tuple[Verdict, str, list[str]]:
    tls = flow.tls
    assert tls is not None
    details = _tls_details(flow)
    if tls.plaintext_after_handshake:
        return Verdict.PLAINTEXT, "plaintext SIP after the TLS records", details
    if not tls.handshake_seen:
        what = "application data" if tls.application_bytes else "no application data"
        return Verdict.ENCRYPTED, f"TLS (handshake not captured, {what})", details
    summary = f"{tls.version_name}, {tls.cipher_suite_name or 'cipher suite unknown'}"
    if tls.null_cipher:
        return Verdict.PLAINTEXT, summary + ": NULL cipher, nothing is encrypted", details
    if tls.version is not None and tls.version < 0x0303:
        return Verdict.WEAK, summary + " (below TLS 1.2, RFC 8996)", details
    if tls.weak_cipher:
        return Verdict.WEAK, summary + " (weak cipher suite)", details
    return Verdict.ENCRYPTED, summary, details


def _tls_details(flow: SipFlow) -> list[str]:
    tls = flow.tls
    assert tls is not None
    details = [f"{tls.application_bytes} bytes of encrypted application data"]
    if tls.client_versions:
        offered = ", ".join(dict.fromkeys(_version_names(tls.client_versions)))
        details.append(f"client offered {offered}")
    if tls.server_name:
        details.append(f"server name (SNI): {tls.server_name}")
    if tls.server_certificates:
        details.append("server certificate: " + tls.server_certificates[0])
    if tls.hello_retry:
        details.append("HelloRetryRequest seen")
    if tls.alerts:
        details.append(f"{tls.alerts} alert records")
    if flow.note:
        details.append(flow.note)
    return details + tls.problems


def _version_names(versions: Sequence[int]) -> list[str]:
    return [tls_version_name(v) for v in versions]


def _stream_item(stream: MediaStream, keyed: bool) -> Item:
    verdict, summary = _stream_verdict(stream)
    details = _stream_details(stream, keyed)
    return Item("media", "RTP " + stream.name, verdict, summary, details, stream=stream)


def _stream_verdict(stream: MediaStream) -> tuple[Verdict, str]:
    codec = stream.codec or f"payload type {stream.payload_type}"
    if stream.media_class is MediaClass.PLAIN_RTP:
        decodable = stream.g711 or stream.codec in ("G722", "opus", "OPUS")
        audible = "audio recoverable" if decodable else "payload readable"
        return Verdict.PLAINTEXT, f"plain RTP ({codec}): {audible}"
    if stream.media_class is MediaClass.UNKNOWN:
        return Verdict.UNKNOWN, f"{len(stream.packets)} packets: too few to tell"
    if stream.exposed_keys:
        done = stream.decryption is not None and stream.decryption.confirmed
        how = "and was decrypted with it" if done else "(key not confirmed)"
        return Verdict.EXPOSED, f"SRTP, but its SDES key is in plaintext SDP {how}"
    summary = _keyed_srtp(stream) + ": payload indistinguishable from random"
    if stream.tag_length == 0:
        return Verdict.WEAK, summary + ", but no authentication tag"
    summary += f", {stream.suite_hint}" if stream.suite_hint else ""
    if stream.rtcp.plain:
        kinds = "/".join(stream.rtcp.plain_types)
        return (
            Verdict.WEAK,
            summary + f"; but {stream.rtcp.plain} RTCP packets ({kinds}) in plaintext",
        )
    return Verdict.ENCRYPTED, summary


def keying_of(stream: MediaStream) -> str | None:
    """How the stream's SRTP keys were agreed, as seen on its own ports (RFC 6189 §4.6: a ZRTP
    exchange that reached Confirm2/Conf2ACK; RFC 5764: DTLS records), else None (SDES or
    unknown: the keys were not agreed in the media path)."""
    if stream.zrtp.completed:
        return "zrtp"
    return "dtls-srtp" if stream.dtls_records else None


def _keyed_srtp(stream: MediaStream) -> str:
    keying = keying_of(stream)
    if keying == "zrtp":
        return "ZRTP-keyed SRTP (end to end)"
    return "DTLS-keyed SRTP (DTLS-SRTP, end to end)" if keying else "SRTP"


def _stream_details(stream: MediaStream, keyed: bool) -> list[str]:
    stats = stream.stats
    details = [
        f"{len(stream.packets)} packets, {stream.duration:.1f} s, {stream.lost} lost, "
        f"codec {stream.codec or '?'} (PT {stream.payload_type}), "
        f"timestamp step {stream.timestamp_step}"
    ]
    if stats is not None:
        details.append(
            f"payload entropy {stats.entropy:.3f} bits/byte, chi-square z {stats.chi2_z:.1f}, "
            f"first byte {stats.first_byte_distinct} distinct values "
            f"(random would give ~{stats.first_byte_expected:.0f})"
        )
    details += _codec_details(stream)
    details += _keying_details(stream)
    details += _decryption_details(stream, keyed)
    return details


_AUDIO_BANDS = {
    "PCMU": "narrowband, 8 kHz",
    "PCMA": "narrowband, 8 kHz",
    "G722": "wideband, 16 kHz",
}


def _codec_details(stream: MediaStream) -> list[str]:
    """Which codec the stream carries and how it is exported (RFC 3551 §4.5, RFC 7587)."""
    name = (stream.codec or "").upper()
    if name == "OPUS":
        how = "decoded with libopus to 48 kHz" if opus_available() else "not decoded (no libopus)"
        return [f"Opus (RFC 7587): {len(stream.main_packets)} Opus payloads, {how}"]
    band = _AUDIO_BANDS.get(name)
    return [f"{stream.codec} ({band}) exported at its own rate"] if band else []


def _keying_details(stream: MediaStream) -> list[str]:
    details = []
    sdp = stream.sdp_receiver or stream.sdp_sender
    if sdp is not None:
        details.append(f"announced in plaintext SDP as {sdp.proto} ({sdp.message})")
    if stream.zrtp.packets:
        state = "completed" if stream.zrtp.completed else "not completed"
        details.append(f"ZRTP key agreement {state}: {stream.zrtp.packets} ZRTP packets")
        if stream.zrtp.go_clear:
            details.append("ZRTP GoClear seen: encryption may have been switched off")
    if stream.dtls_records:
        details.append(f"DTLS-SRTP: {stream.dtls_records} DTLS records on this port pair")
    rtcp = stream.rtcp
    if rtcp.plain or rtcp.encrypted:
        line = f"RTCP: {rtcp.plain} plaintext, {rtcp.encrypted} SRTCP"
        if rtcp.plain_types:
            line += f"; readable RTCP: {', '.join(rtcp.plain_types)}"
        if rtcp.cnames:
            line += f" (CNAME {', '.join(rtcp.cnames)})"
        details.append(line)
    return details


def _decryption_details(stream: MediaStream, keyed: bool) -> list[str]:
    result = stream.decryption
    if result is None:
        return (
            ["no key for this stream in the key file"]
            if keyed and stream.media_class is MediaClass.SRTP
            else []
        )
    if result.note:
        return [result.note]
    line = (
        f"{result.suite} key from {result.source}: {result.ok}/{result.packets} "
        f"authentication tags verified"
    )
    if result.confirmed and result.plain_stats is not None and result.plain_stats.random is False:
        line += "; decrypted payload is structured audio"
    if not result.ok and result.tried > 1:
        return [f"none of the {result.tried} keys tried verifies a tag ({result.packets} packets)"]
    return [line if result.ok else line + " (wrong key)"]


# --------------------------------------------------------------------------- dicts


def _flow_dict(flow: SipFlow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "transport": flow.kind.value,
        "client": str(flow.client),
        "server": str(flow.server),
        "methods": flow.methods,
        "responses": flow.responses,
        "messages": len(flow.messages),
        "call_ids": flow.call_ids,
    }
    if flow.tls is not None:
        data["tls"] = flow.tls.to_dict()
    return data


def _stream_dict(stream: MediaStream) -> dict[str, Any]:
    return {
        "src": str(stream.src),
        "dst": str(stream.dst),
        "ssrc": f"0x{stream.ssrc:08x}",
        "class": stream.media_class.value,
        "packets": len(stream.packets),
        "lost": stream.lost,
        "duration": round(stream.duration, 3),
        "payload_type": stream.payload_type,
        "codec": stream.codec,
        "timestamp_step": stream.timestamp_step,
        "tag_length": stream.tag_length,
        "suite_hint": stream.suite_hint,
        "stats": None if stream.stats is None else stream.stats.to_dict(),
        "keying": keying_of(stream),
        "zrtp_packets": stream.zrtp.packets,
        "zrtp_messages": stream.zrtp.messages[:32],
        "dtls_records": stream.dtls_records,
        "rtcp_plain": stream.rtcp.plain,
        "rtcp_encrypted": stream.rtcp.encrypted,
        "rtcp_plain_types": stream.rtcp.plain_types,
        "rtcp_cnames": stream.rtcp.cnames,
        "found_by": "SDP" if stream.by_sdp else "RTP header heuristics",
        "sdes_keys_exposed": len(stream.exposed_keys),
        "decryption": None if stream.decryption is None else stream.decryption.to_dict(),
    }


def _export_dict(export: StreamExport) -> dict[str, Any]:
    return {
        "wav": str(export.wav),
        "png": str(export.png),
        "spectral_flatness": _round(export.flatness),
        "decrypted_wav": None if export.decrypted_wav is None else str(export.decrypted_wav),
        "decrypted_png": None if export.decrypted_png is None else str(export.decrypted_png),
        "decrypted_spectral_flatness": _round(export.decrypted_flatness),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --------------------------------------------------------------------------- outputs


def write_outputs(report: VerifyReport, out_dir: Path) -> dict[str, Path]:
    """Write per-stream WAV/PNG, ``report.html`` and ``report.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = 0
    for item in report.items:
        if item.stream is not None:
            index += 1
            item.export = export_stream(item.stream, index, out_dir, item.summary)
    report.files["html"] = out_dir / "report.html"
    report.files["json"] = out_dir / "report.json"
    report.files["html"].write_text(render_html(report), encoding="utf-8")
    report.files["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return dict(report.files)


def render_terminal(report: VerifyReport, console: Console) -> None:
    """A rich table on a terminal (plain lines when piped), then the overall verdict."""
    cap = report.capture
    console.print(
        Text(
            f"{cap.path}: {cap.file_format}, {', '.join(cap.link_names)}, "
            f"{cap.frames} frames, {_duration(cap):.1f} s"
        ),
        soft_wrap=True,
    )
    if console.is_terminal:
        _table(report, console)
    else:
        _lines(report, console)
    answer = "yes" if report.plaintext_sip else "no"
    console.print(
        f"plaintext SIP anywhere in the capture: {answer} ({report.plaintext_sip} messages)"
    )
    for warning in report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    for name, path in report.files.items():
        console.print(Text(f"{name}: {path}"), soft_wrap=True)
    colour = _COLOURS[report.overall]
    console.print(Text(f"overall: {report.overall_text}", style=f"bold {colour}"), soft_wrap=True)


def _table(report: VerifyReport, console: Console) -> None:
    if not report.items:
        return
    table = Table(show_lines=True, expand=False)
    for column in ("#", "kind", "flow", "verdict", "what was seen"):
        table.add_column(column, overflow="fold")
    for number, item in enumerate(report.items, start=1):
        verdict = Text(item.verdict.value.upper(), style=f"bold {_COLOURS[item.verdict]}")
        body = "\n".join([item.summary, *[f"• {d}" for d in item.details]])
        table.add_row(str(number), item.kind, Text(item.name), verdict, Text(body))
    console.print(table)


def _lines(report: VerifyReport, console: Console) -> None:
    for number, item in enumerate(report.items, start=1):
        head = f"[{number}] {item.kind} {item.name}: {item.verdict.value.upper()} - {item.summary}"
        console.print(Text(head), soft_wrap=True)
        for detail in item.details:
            console.print(Text(f"      • {detail}"), soft_wrap=True)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.4em} .banner{padding:1em;border-radius:6px;color:#fff;font-weight:bold}
table{border-collapse:collapse;width:100%;margin:1em 0} td,th{border:1px solid #ccc;
padding:.4em;vertical-align:top;text-align:left} .v{font-weight:bold;color:#fff;
padding:.15em .5em;border-radius:4px} ul{margin:.2em 0 .2em 1.2em;padding:0}
.stream{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}
img{max-width:100%} code{font-size:.9em} .warn{color:#a66300}
"""


def _badge(verdict: Verdict) -> str:
    colour = _HTML_COLOURS[verdict]
    return f'<span class="v" style="background:{colour}">{verdict.value.upper()}</span>'


def _image(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _audio(path: Path | None, label: str) -> str:
    if path is None:
        return ""
    name = html.escape(path.name)
    return f'<p>{html.escape(label)}: <audio controls src="{name}"></audio> <a href="{name}">{name}</a></p>'


def render_html(report: VerifyReport) -> str:
    """A self-contained HTML page (pictures embedded as base64 PNG; WAVs linked beside it)."""
    esc = html.escape
    cap = report.capture
    colour = _HTML_COLOURS[report.overall]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>securephone verify: {esc(Path(cap.path).name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Wire verification of <code>{esc(cap.path)}</code></h1>",
        f'<p class="banner" style="background:{colour}">{esc(report.overall_text)}</p>',
        f"<p>{esc(cap.file_format)}, {esc(', '.join(cap.link_names))}, {cap.frames} frames, "
        f"{_duration(cap):.1f} s; report made {esc(report.created.strftime('%Y-%m-%d %H:%M:%S UTC'))}.</p>",
        f"<p>Plaintext SIP anywhere in the capture: <b>{'yes' if report.plaintext_sip else 'no'}</b> "
        f"({report.plaintext_sip} messages).</p>",
        _items_table(report.items),
        _sip_messages(report),
        *[_stream_section(item) for item in report.items if item.stream is not None],
        _warnings_html(report.warnings),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _items_table(items: Sequence[Item]) -> str:
    if not items:
        return "<p>No SIP, TLS or RTP flows were found.</p>"
    rows = [
        "<table><tr><th>#</th><th>kind</th><th>flow</th><th>verdict</th><th>what was seen</th></tr>"
    ]
    for number, item in enumerate(items, start=1):
        details = "".join(f"<li>{html.escape(d)}</li>" for d in item.details)
        rows.append(
            f"<tr><td>{number}</td><td>{html.escape(item.kind)}</td><td><code>{html.escape(item.name)}"
            f"</code></td><td>{_badge(item.verdict)}</td><td>{html.escape(item.summary)}"
            f"<ul>{details}</ul></td></tr>"
        )
    return "".join(rows) + "</table>"


def _sip_messages(report: VerifyReport, limit: int = 60) -> str:
    messages = report.signalling.messages
    if not messages:
        return ""
    first = messages[0].time
    rows = [f"<h2>Plaintext SIP seen on the wire ({len(messages)} messages)</h2><table>"]
    rows.append("<tr><th>time</th><th>from</th><th>to</th><th>start line</th></tr>")
    for m in messages[:limit]:
        rows.append(
            f"<tr><td>{m.time - first:.3f}</td><td>{html.escape(str(m.src))}</td>"
            f"<td>{html.escape(str(m.dst))}</td><td><code>{html.escape(m.start_line)}</code></td></tr>"
        )
    more = f"<p>… and {len(messages) - limit} more.</p>" if len(messages) > limit else ""
    return "".join(rows) + "</table>" + more


def _stream_section(item: Item) -> str:
    export = item.export
    head = f"<div class='stream'><h3>{_badge(item.verdict)} {html.escape(item.name)}</h3>"
    body = f"<p>{html.escape(item.summary)}</p>"
    if export is None:
        return head + body + "</div>"
    flat = "" if export.flatness is None else f" (spectral flatness {export.flatness:.2f})"
    parts = [
        head,
        body,
        _audio(export.wav, "as on the wire, decoded as G.711" + flat),
        _image(export.png),
    ]
    if export.decrypted_png is not None:
        dflat = (
            ""
            if export.decrypted_flatness is None
            else f" (spectral flatness {export.decrypted_flatness:.2f})"
        )
        parts += [
            _audio(export.decrypted_wav, "decrypted with its key" + dflat),
            _image(export.decrypted_png),
        ]
    return "".join(parts) + "</div>"


def _warnings_html(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warnings)
    return f"<h2>Warnings</h2><ul>{items}</ul>"
