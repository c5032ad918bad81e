"""The ``securephone run`` runner: the phone (SIP) and its web interface in one event loop
until SIGINT/SIGTERM or the web page's restart button.

It sits beside the CLI, above the packages it puts together (the :class:`PhoneManager` of
``web/``, which owns the asyncio ``Phone`` of ``aio/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securephone.web.app import create_app
from securephone.web.manager import PhoneManager


async def run_phone(
    config_path: Path,
    *,
    trace_file: Path | None = None,
    web: bool = True,
    started: Callable[[PhoneManager], None] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Run the phone (and its web interface) until SIGINT/SIGTERM or a restart request.

    Returns (restart requested, the phone's last status). ConfigError, PhoneError and OSError
    from the start propagate to the caller. ``started`` is called with the manager once both
    SIP and web run (tests and embedding use it).
    """
    manager = PhoneManager.from_file(config_path, trace_file=trace_file)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, manager.request_stop)
    summary: dict[str, Any] = {}
    phone = None
    try:
        await manager.start_phone()
        if web and manager.web.enabled:
            await manager.start_web(create_app(manager))
        logging.getLogger("securephone").info("phone running; stop with Ctrl-C or SIGTERM")
        if started is not None:
            started(manager)
        await manager.wait_stopped()
        phone = manager.phone
        if phone is not None:
            summary = phone.status()
    finally:
        try:
            await manager.shutdown()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
    if summary and phone is not None and phone.ua is not None:
        summary["accounts_after_stop"] = phone.status()["accounts"]  # unregistered, or why not
    return manager.reboot_requested, summary
