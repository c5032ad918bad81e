"""The ``securephone`` command line: a thin layer over the Phone object."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from securephone.audit import app as audit_app
from securephone.capture.cli import app as capture_app
from securephone.pki.cli import app as cert_app
from securephone.verify.cli import app as verify_app

# Heavy parts load only in the command that uses them (docs/performance.md): the phone and
# its media for `call`/`answer`, the web server for `run`, the verifier's pictures for
# `verify`. `securephone --help` loads none of them.
if TYPE_CHECKING:
    from securephone.store.config import Config

app = typer.Typer(
    name="securephone",
    help="A secure SIP phone: SIP over TLS, SRTP, and proof on the wire.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and show configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(
    cert_app, name="cert", help="Create and inspect certificates (CA, server, device, web)."
)
app.add_typer(capture_app)
app.add_typer(verify_app)
app.add_typer(audit_app)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="TOML configuration file.", show_default=False)
]
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line on stderr and return the exit to raise."""
    typer.echo(f"securephone: error: {message}", err=True)
    return typer.Exit(code)


def _load(path: Path) -> Config:
    from securephone.store.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


@app.command()
def run(
    config: ConfigOption,
    trace: Annotated[
        Path | None, typer.Option(help="Write every SIP message in and out to this file.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    status_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON status summary when stopping.")
    ] = False,
    web: Annotated[
        bool, typer.Option("--web/--no-web", help="Serve the web interface ([web]).")
    ] = True,
) -> None:
    """Run the phone (register, answer calls and OPTIONS, serve the web interface) until stopped."""
    import asyncio

    from securephone.aio.phone import PhoneError
    from securephone.run import run_phone
    from securephone.store.config import ConfigError, load_config

    try:
        load_config(config)  # validates [web] too; the error names the key
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    _setup_logging(log_level)
    try:
        restart, summary = asyncio.run(run_phone(config, trace_file=trace, web=web))
    except (ConfigError, PhoneError, OSError) as exc:
        raise fail(str(exc)) from None
    if status_json:
        typer.echo(json.dumps(summary, indent=2))
    if restart:  # the web page's "restart the phone" button
        os.execv(sys.executable, [sys.executable, "-m", "securephone.cli", *sys.argv[1:]])


# -- calls ------------------------------------------------------------------------------------------
PlayOption = Annotated[
    str | None,
    typer.Option(
        "--play",
        help="Audio to send: a WAV file, 'tone:440', 'tone:350+440', 'silence', or the "
        "microphone: 'device' ([audio] input) or 'device:NAME'.",
    ),
]
RecordOption = Annotated[
    Path | None,
    typer.Option(
        "--record",
        help="Write the audio the far end sent to this WAV file, or play it: 'device' "
        "([audio] output) or 'device:NAME'.",
    ),
]
DurationOption = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Hang up this many seconds after answer (default: wait for the far end)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary at the end.")]
ListenOption = Annotated[
    str | None,
    typer.Option(
        "--listen", help="SIP listen address and port, HOST:PORT (UDP and TCP); port 0 = any."
    ),
]
SrtpOption = Annotated[
    str | None,
    typer.Option(
        "--srtp",
        help="Media encryption for this run: off, optional or mandatory (default: the config's, "
        "which defaults to mandatory).",
    ),
]
KeyingOption = Annotated[
    str | None,
    typer.Option(
        "--keying",
        help="How media keys are agreed for this run, in preference order, e.g. dtls or "
        "dtls,zrtp,sdes (default: the config's, which defaults to sdes,zrtp).",
    ),
]
CodecsOption = Annotated[
    str | None,
    typer.Option(
        "--codecs",
        help="Audio codecs for this run, in preference order, e.g. G722 or opus,PCMU "
        "(default: the config's, which defaults to opus,G722,PCMU,PCMA).",
    ),
]
OptConfig = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file.", show_default=False)
]


def _call_config(
    config: Path | None,
    listen: str | None,
    srtp: str | None = None,
    keying: str | None = None,
    codecs: str | None = None,
) -> Config:
    from securephone.store.config import Config

    cfg = (
        _load(config)
        if config is not None
        else Config.model_validate({"sip": {"udp_port": 0, "tcp_port": 0}})
    )
    if listen is not None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise fail(f"--listen wants HOST:PORT, not {listen!r}", 2)
        try:
            cfg.sip.listen_address = host.strip("[]")
            cfg.sip.udp_port = cfg.sip.tcp_port = int(port)
        except ValueError as exc:
            raise fail(f"--listen: {exc}", 2) from None
    if srtp is not None:
        try:
            cfg.media.srtp = srtp  # type: ignore[assignment]  # validated by pydantic
            for account in cfg.accounts:
                account.srtp = None
        except ValueError:
            raise fail(f"--srtp must be off, optional or mandatory, not {srtp!r}", 2) from None
    if keying is not None:
        try:
            cfg.media.keying = [k.strip() for k in keying.split(",")]  # type: ignore[misc]
            for account in cfg.accounts:
                account.keying = None
        except ValueError:
            raise fail(f"--keying must list sdes, zrtp and/or dtls, not {keying!r}", 2) from None
    if codecs is not None:
        _set_codecs(cfg, codecs)
    return cfg


def _set_codecs(cfg: Config, codecs: str) -> None:
    try:
        cfg.media.codecs = [c.strip() for c in codecs.split(",")]  # type: ignore[misc]
        for account in cfg.accounts:
            account.codecs = None
    except ValueError:
        raise fail(f"--codecs must list opus, G722, PCMU and/or PCMA, not {codecs!r}", 2) from None


def _check_audio_options(
    cfg: Config, play: str | None, record: Path | None = None
) -> tuple[str | None, Path | None]:
    """A bad file or a missing/busy sound device is one clear line before any call.

    With ``[audio] on_device_error = "continue"`` a device problem is one warning and the call
    goes on without that device (silence sent, nothing played): returns what to use instead.
    """
    from securephone.aio.sound import CallAudio, check_device, is_device
    from securephone.audio.devices import DeviceError
    from securephone.audio.sources import AudioError, open_source

    if play is not None and not is_device(play):
        try:
            open_source(play).close()
        except (AudioError, OSError) as exc:
            raise fail(f"--play: {exc}", 2) from None
    checks = (("--play", play, "input"), ("--record", str(record) if record else None, "output"))
    for option, spec, kind in checks:
        if spec is None or not is_device(spec):
            continue
        try:
            chosen = CallAudio.from_settings(cfg.audio, spec if kind == "input" else None,
                                             spec if kind == "output" else None)  # fmt: skip
            check_device(kind, chosen.input if kind == "input" else chosen.output)
        except DeviceError as exc:
            if cfg.audio.on_device_error == "fail":
                raise fail(f"{option}: {exc}", 1) from None
            typer.echo(
                f"securephone: warning: {option}: {exc}; the call goes on without it", err=True
            )
            if kind == "input":
                play = None
            else:
                record = None
        except AudioError as exc:
            raise fail(f"{option}: {exc}", 2) from None
    return play, record


@app.command()
def call(
    uri: Annotated[str, typer.Argument(help="Who to call, e.g. sip:bob@127.0.0.1:5080.")],
    config: OptConfig = None,
    account: Annotated[
        str | None, typer.Option(help="Account to call from (default: the first one, or none).")
    ] = None,
    direct: Annotated[
        bool, typer.Option(help="Call the URI directly, without any account.")
    ] = False,
    play: PlayOption = None,
    record: RecordOption = None,
    duration: DurationOption = None,
    dtmf: Annotated[str | None, typer.Option(help="DTMF digits to send after answer.")] = None,
    ring_timeout: Annotated[
        float, typer.Option(help="Give up when not answered within this time.")
    ] = 60.0,
    listen: ListenOption = None,
    srtp: SrtpOption = None,
    keying: KeyingOption = None,
    codecs: CodecsOption = None,
    json_summary: JsonOption = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Place one call; exit 0 only if it was answered and ended cleanly."""
    cfg = _call_config(config, listen, srtp, keying, codecs)
    play, record = _check_audio_options(cfg, play, record)
    _setup_logging(log_level)
    if direct:
        chosen = None
    elif account is not None:
        chosen = account
    else:
        chosen = cfg.accounts[0].name if cfg.accounts else None
    import asyncio

    from securephone.aio.runner import CallOptions, place_call

    options = CallOptions(play, record, duration, dtmf)
    summary = asyncio.run(place_call(cfg, uri, chosen, options, ring_timeout))
    _finish([summary], json_summary)


@app.command()
def answer(
    config: OptConfig = None,
    calls: Annotated[
        int, typer.Option(help="Answer this many calls, then exit (0 = until stopped).")
    ] = 1,
    play: PlayOption = None,
    record: RecordOption = None,
    duration: DurationOption = None,
    dtmf: Annotated[str | None, typer.Option(help="DTMF digits to send after answer.")] = None,
    listen: ListenOption = None,
    srtp: SrtpOption = None,
    keying: KeyingOption = None,
    codecs: CodecsOption = None,
    json_summary: JsonOption = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Wait for calls and answer them; exit 0 only if every call was answered and ended cleanly."""
    cfg = _call_config(config, listen, srtp, keying, codecs)
    play, record = _check_audio_options(cfg, play, record)
    _setup_logging(log_level)
    import asyncio

    from securephone.aio.runner import CallOptions, answer_calls

    options = CallOptions(play, record, duration, dtmf)
    summaries = asyncio.run(answer_calls(cfg, calls, options))
    _finish(summaries, json_summary)


def _finish(summaries: list[dict[str, object]], json_summary: bool) -> None:
    if json_summary:
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        from securephone.tui.view import ALARM, summary_lines  # plain functions, no Textual

        for summary in summaries:
            for text, style in summary_lines(dict(summary)):
                typer.secho(text, fg="red" if style == ALARM else None)
    failed = [s for s in summaries if not s.get("ok")]
    for summary in failed:
        typer.echo(
            f"securephone: call failed: {summary.get('error') or summary.get('reason')}", err=True
        )
    if failed or not summaries:
        raise typer.Exit(1)


@app.command()
def devices() -> None:
    """List the sound devices PortAudio sees (inputs and outputs), for [audio] input/output."""
    from securephone.audio.devices import DeviceError, describe, list_devices

    try:
        found = list_devices()
    except DeviceError as exc:
        raise fail(str(exc)) from None
    if not found:
        raise fail("no sound devices found (no sound card, or PortAudio sees none)")
    for line in describe(found):
        typer.echo(line)


@app.command()
def phone(
    config: ConfigOption,
    log_file: Annotated[
        Path | None, typer.Option(help="Write the log here (the screen belongs to the phone).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """A full-screen terminal softphone (keyboard first; works over SSH)."""
    cfg = _load(config)
    if log_file is not None:
        logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, filename=str(log_file))
    else:
        logging.disable(logging.CRITICAL)  # a log line would tear the full-screen display
    from securephone.aio.phone import PhoneError
    from securephone.tui.app import run_softphone  # Textual only for this command

    try:
        run_softphone(cfg)
    except PhoneError as exc:
        raise fail(str(exc)) from None


@config_app.command("check")
def config_check(config: ConfigOption) -> None:
    """Validate a configuration file and print it with secrets masked."""
    from securephone.store.config import config_to_dict

    cfg = _load(config)
    typer.echo(json.dumps(config_to_dict(cfg, include_secrets=False), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
