"""What the softphone shows, as plain functions of a call's ``summary()``: testable without a screen.

Every line is ``(text, style)``; alarms use ``ALARM`` (bold red). The security panel answers the
questions a user of a secure phone asks: how does signalling travel (transport, TLS version,
cipher, whose certificate), how were the media keys agreed (SDES in the signalling, ZRTP end to
end, DTLS-SRTP), with which SRTP suite, and is there anything to worry about (media not
encrypted, ZRTP cache mismatch, a SAS not yet compared or rejected, keying failed).
``summary_lines`` is the same for a finished call, printed by ``securephone call``/``answer``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ALARM", "OK", "Line", "call_lines", "call_row", "security_lines", "summary_lines"]

Line = tuple[str, str]
ALARM = "bold red"
OK = "green"
WARN = "yellow"
PLAIN = ""


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def call_row(summary: dict[str, Any], muted: bool = False) -> tuple[str, str, str, str]:
    """One row of the calls table: direction, who, state (with hold/mute), duration."""
    arrow = "→" if summary.get("direction") == "outgoing" else "←"
    state = str(summary.get("state", ""))
    flags = []
    if summary.get("local_hold"):
        flags.append("on hold")
    if summary.get("remote_hold"):
        flags.append("held by far end")
    if muted:
        flags.append("muted")
    if flags:
        state += " (" + ", ".join(flags) + ")"
    who = summary.get("remote_display_name") or summary.get("remote") or "?"
    return arrow, str(who), state, _duration(float(summary.get("duration") or 0))


def call_lines(
    summary: dict[str, Any], muted: bool, sent_digits: str, audio: dict[str, Any]
) -> list[Line]:
    """The selected call: who, state, media figures, DTMF, the device buffers."""
    lines: list[Line] = [
        (f"{summary.get('direction', '')} call with {summary.get('remote', '')}", "bold"),
        (f"state: {call_row(summary, muted)[2]}", PLAIN),
    ]
    if summary.get("reason"):
        lines.append((f"reason: {summary['reason']}", PLAIN))
    media = summary.get("media") or {}
    if media.get("codec"):
        lines.append((f"codec: {media['codec']}  ptime {media.get('ptime', 20)} ms", PLAIN))
    if media:
        lines.append(
            (
                f"packets: sent {media.get('packets_sent', 0)}  "
                f"received {media.get('packets_received', 0)}  "
                f"lost {media.get('packets_lost', 0)}",
                PLAIN,
            )
        )
    lines.append(
        (f"DTMF sent: {sent_digits or '-'}  received: {summary.get('dtmf_received') or '-'}", PLAIN)
    )
    lines.append(("microphone: MUTED" if muted else "microphone: on", WARN if muted else PLAIN))
    for side in ("input", "output"):
        figures = audio.get(side)
        if isinstance(figures, dict):
            lines.append(
                (
                    f"{side} device buffer: {figures['depth_ms']} ms of "
                    f"{figures['capacity_ms']} ms, underruns {figures['underruns']}, "
                    f"overruns {figures['overruns']}, drift: "
                    f"{figures.get('drift_dropped', 0)} samples dropped, "
                    f"{figures.get('drift_inserted', 0)} repeated",
                    PLAIN,
                )
            )
    return lines


def _signalling_lines(signalling: dict[str, Any] | None) -> list[Line]:
    if not signalling:
        return [("signalling: (no hop yet)", PLAIN)]
    transport = str(signalling.get("transport", "?")).upper()
    lines: list[Line] = [(f"signalling: {transport} with {signalling.get('peer', '?')}", PLAIN)]
    tls = signalling.get("tls")
    if transport == "TLS" and isinstance(tls, dict):
        lines.append((f"  TLS version: {tls.get('version')}", OK))
        lines.append((f"  cipher: {tls.get('cipher')}", PLAIN))
        subject = tls.get("peer_subject")
        lines.append((f"  peer certificate: {subject or '(none presented)'}", PLAIN))
        if tls.get("peer_issuer"):
            lines.append((f"  issued by: {tls['peer_issuer']}", PLAIN))
        if tls.get("peer_sha256"):
            lines.append((f"  SHA-256: {tls['peer_sha256']}", PLAIN))
        if not tls.get("verified"):
            lines.append(("  ALARM: the peer certificate was NOT verified", ALARM))
    elif transport != "TLS":
        lines.append(("  not encrypted (the signalling can be read on the path)", WARN))
    return lines


def _media_lines(summary: dict[str, Any]) -> list[Line]:
    media = summary.get("media") or {}
    security = summary.get("security") or {}
    keying = security.get("keying")
    e2e = bool(security.get("end_to_end"))
    lines: list[Line] = []
    if keying:
        scope = "end to end" if e2e else "hop by hop (the signalling path can see the keys)"
        lines.append((f"media keying: {keying}, {scope}", OK if e2e else PLAIN))
    else:
        lines.append(("media keying: none", PLAIN))
    srtp = media.get("srtp")
    if isinstance(srtp, dict):
        lines.append((f"media: SRTP {srtp.get('suite')}", OK))
        if srtp.get("auth_failures"):
            lines.append((f"ALARM: {srtp['auth_failures']} packets failed authentication", ALARM))
    elif media and media.get("codec"):
        reason = media.get("not_encrypted_reason")
        lines.append(("ALARM: media NOT encrypted" + (f" ({reason})" if reason else ""), ALARM))
    elif media:
        lines.append(("media: not keyed yet", PLAIN))
    return lines


SAS_KEYS = "s = it matches, w = it does not"  # the softphone's keys for the SAS verdict


def _zrtp_lines(path: dict[str, Any] | None, sas_hint: str | None = SAS_KEYS) -> list[Line]:
    if not path or path.get("method") != "zrtp":
        return []
    lines: list[Line] = []
    if path.get("failure"):
        lines.append((f"ALARM: ZRTP failed: {path['failure']}", ALARM))
    sas = path.get("sas")
    if sas is None:
        lines.append((f"ZRTP: {path.get('state', 'starting')}", PLAIN))
        return lines
    lines.append((f"ZRTP SAS: {sas}   (read it aloud; compare with the far end)", "bold"))
    verified = path.get("sas_verified")
    if verified is True:
        lines.append(("SAS confirmed: peer verified", OK))
    elif verified is False:
        lines.append(("ALARM: SAS rejected: someone may be in the middle", ALARM))
    elif path.get("previously_verified"):
        lines.append(("peer verified on an earlier call", OK))
    else:
        lines.append(
            (f"SAS not compared yet: {sas_hint}" if sas_hint else "SAS not compared", WARN)
        )
    return lines


def security_lines(summary: dict[str, Any], sas_hint: str | None = SAS_KEYS) -> list[Line]:
    """The security panel of one call (``sas_hint``: how to give the SAS verdict, if one can)."""
    security = summary.get("security") or {}
    return [
        *_signalling_lines(summary.get("signalling")),
        *_media_lines(summary),
        *_zrtp_lines(security.get("path"), sas_hint),
        # the call's alarms in words: a ZRTP cache mismatch, refused downgrades (README, ZRTP)
        *((f"ALARM: {alarm}", ALARM) for alarm in security.get("alarms") or ()),
    ]


def summary_lines(summary: dict[str, Any]) -> list[Line]:
    """A finished call for the command line: who and how it went, its security, its media."""
    outcome = "answered" if summary.get("answered") else "not answered"
    how = summary.get("reason") or summary.get("error")
    lines: list[Line] = [
        (
            f"{summary.get('direction', '')} call with {summary.get('remote', '?')}: {outcome}, "
            f"{float(summary.get('duration') or 0):.1f} s" + (f", {how}" if how else ""),
            "bold",
        ),
        *(("  " + text, style) for text, style in security_lines(summary, sas_hint=None)),
    ]
    media = summary.get("media") or {}
    if media.get("codec"):
        lines.append(
            (
                f"  audio: {media['codec']}, packets sent {media.get('packets_sent', 0)}, "
                f"received {media.get('packets_received', 0)}, lost "
                f"{media.get('packets_lost', 0)}, jitter {media.get('jitter_ms', 0)} ms",
                PLAIN,
            )
        )
    return lines
