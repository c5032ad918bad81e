"""``securephone verify CAPTURE``: prove from a pcap/pcapng file what was encrypted.

Writes ``report.html`` (pictures embedded), ``report.json`` and a WAV and PNG per media
stream into ``--out`` (default: ``<capture>-verify`` next to the capture), prints a table or,
with ``--json``, the JSON report. Exit codes: 0 everything encrypted, 1 something is not
(or nothing could be verified), 2 the capture or key file is unusable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from securephone.verify.keys import KeyEntry

__all__ = ["app", "verify"]

EXIT_BAD_INPUT = 2

app = typer.Typer(
    help="Verify a capture: is the signalling TLS and the media SRTP?",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"securephone: error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _keys(path: Path | None) -> list[KeyEntry]:
    if path is None:
        return []
    from securephone.verify.keys import KeyFileError, load_key_file

    try:
        return load_key_file(path)
    except KeyFileError as exc:
        raise _fail(f"key file {exc}") from None


def default_out_dir(capture: Path) -> Path:
    """``calls.pcap`` → ``calls-verify`` in the same directory."""
    return capture.with_name(capture.stem + "-verify")


@app.command()
def verify(
    capture: Annotated[Path, typer.Argument(help="pcap or pcapng file.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Directory for report.html, report.json, WAV and PNG."),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", "-k", help="SRTP key export (JSON) to decrypt and confirm tags."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Find every SIP flow and media stream in CAPTURE and say whether it was encrypted.

    Exit code 0 only when everything in the capture is encrypted.
    """
    # The analysis and its pictures (numpy, matplotlib) load only when a report is made.
    from rich.console import Console

    from securephone.verify.pcap import CaptureError
    from securephone.verify.report import analyze, render_terminal, write_outputs

    entries = _keys(keys)
    try:
        report = analyze(capture, entries)
    except CaptureError as exc:
        raise _fail(str(exc)) from None
    try:
        write_outputs(report, out or default_out_dir(capture))
    except OSError as exc:
        raise _fail(f"cannot write the report: {exc}") from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_terminal(report, Console(highlight=False))
    raise typer.Exit(report.exit_code)


if __name__ == "__main__":
    app()
