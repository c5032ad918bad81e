"""The ``securephone`` command line: a thin layer over the Phone object."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from securephone.aio.phone import Phone, PhoneError
from securephone.store.config import Config, ConfigError, config_to_dict, load_config

app = typer.Typer(
    name="securephone",
    help="A secure SIP phone: SIP over TLS, SRTP, and proof on the wire.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and show configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="TOML configuration file.", show_default=False)
]
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line on stderr and return the exit to raise."""
    typer.echo(f"securephone: error: {message}", err=True)
    return typer.Exit(code)


def _load(path: Path) -> Config:
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
) -> None:
    """Run the phone (register its accounts, answer OPTIONS) until SIGINT or SIGTERM."""
    cfg = _load(config)
    _setup_logging(log_level)
    try:
        summary = asyncio.run(_run(cfg, trace))
    except (PhoneError, OSError) as exc:
        raise fail(str(exc)) from None
    if status_json:
        typer.echo(json.dumps(summary, indent=2))


async def _run(cfg: Config, trace: Path | None) -> dict[str, object]:
    phone = Phone(cfg, trace_file=trace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await phone.start()
    logging.getLogger("securephone").info("phone running; stop with Ctrl-C or SIGTERM")
    try:
        await stop.wait()
    finally:
        summary = phone.status()
        await phone.stop()
        final = phone.status()
        summary["accounts_after_stop"] = final["accounts"]
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return summary


@config_app.command("check")
def config_check(config: ConfigOption) -> None:
    """Validate a configuration file and print it with secrets masked."""
    cfg = _load(config)
    typer.echo(json.dumps(config_to_dict(cfg, include_secrets=False), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
