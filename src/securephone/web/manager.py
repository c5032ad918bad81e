"""The PhoneManager: the one place that owns the running Phone, its configuration file, the
call history, the web users and the web server, and that applies configuration changes.

Every change goes the same way: build the new configuration as a dict, validate it (pydantic,
an error names the field), apply it (media and auto-answer at once; SIP, TLS and accounts by
restarting the Phone inside the same event loop, rolling back when the new one cannot start),
then save it atomically (0600). Nothing is saved that could not be applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from securephone.aio.phone import Phone, PhoneError
from securephone.sip.callstate import CallState
from securephone.sip.events import CallStateChanged, Event
from securephone.store.config import (
    Config,
    ConfigError,
    WebSettings,
    config_to_dict,
    load_config,
    parse_config,
    save_config,
)
from securephone.store.history import CallHistory
from securephone.store.users import LoginThrottle, UserStore
from securephone.web.capturing import CaptureControl
from securephone.web.logbuffer import RingBufferHandler
from securephone.web.server import ASGIApp, WebServer
from securephone.web.sessions import SessionStore

log = logging.getLogger("securephone.web")

PhoneFactory = Callable[..., Phone]  # (config, *, trace_file=...) like Phone
HOT_MEDIA_KEYS = ("media",)


class ApplyError(Exception):
    """A change was refused or could not be applied; nothing was saved. Meant for the user."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def needs_restart(old: Config, new: Config) -> bool:
    """True unless only media settings or auto-answer changed (the Phone reads those per call)."""
    a, b = old.model_dump(), new.model_dump()
    for data in (a, b):
        for key in HOT_MEDIA_KEYS:
            data.pop(key, None)
        data["calls"].pop("auto_answer", None)
        data.pop("web", None)
    return a != b


class PhoneManager:
    """Owns the Phone and everything the web interface changes; one per process."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        web: WebSettings | None = None,
        *,
        hasher: PasswordHasher | None = None,
        phone_factory: PhoneFactory = Phone,
        trace_file: Path | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config if web is None else config.model_copy(update={"web": web})
        self._factory = phone_factory
        self._trace_file = trace_file
        self.phone: Phone | None = None
        self.phone_error: str | None = None
        self.log_buffer = RingBufferHandler()
        self.log_buffer.attach()
        data = config.data_path
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.history = CallHistory(data / "history.sqlite3")
        self.users = UserStore(data / "users.json", hasher)
        self.throttle = LoginThrottle()
        self.sessions = SessionStore(lambda: self.web.session_idle_minutes * 60.0)
        self.capture = CaptureControl(data / "capture")
        self.server: WebServer | None = None
        self.reboot_requested = False
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> PhoneManager:
        """A manager for the configuration file ``path`` (ConfigError when it is unusable)."""
        return cls(path, load_config(path), **kwargs)

    @property
    def data_dir(self) -> Path:
        return self.config.data_path

    @property
    def web(self) -> WebSettings:
        """The web server settings: the ``[web]`` section of the configuration."""
        return self.config.web

    @web.setter
    def web(self, value: WebSettings) -> None:
        self.config = self.config.model_copy(update={"web": value})

    # -- the phone -------------------------------------------------------------------------------
    async def start_phone(self) -> None:
        """Start a Phone for the current config (PhoneError/OSError when it cannot start).

        A half-started phone is stopped again so that its sockets are free for a rollback.
        """
        phone: Phone | None = None
        try:
            phone = self._factory(self.config, trace_file=self._trace_file)
            self._watch(phone)
            await phone.start()
        except Exception as exc:
            self.phone, self.phone_error = None, str(exc) or type(exc).__name__
            if phone is not None:
                with contextlib.suppress(Exception):
                    await phone.stop(0.1)
            if isinstance(exc, PhoneError | OSError):
                raise
            log.exception("the phone could not start")
            raise PhoneError(f"{type(exc).__name__}: {exc}") from exc
        self.phone, self.phone_error = phone, None

    def _watch(self, phone: Phone) -> None:
        def on_event(event: Event) -> None:
            if isinstance(event, CallStateChanged) and event.new is CallState.TERMINATED:
                call = phone.calls.get(event.call_id)
                if call is not None:
                    self.history.record(call.summary())

        phone.add_listener(on_event)

    async def start_web(self, app: ASGIApp) -> str:
        """Serve ``app`` with the current web settings on this event loop; the URL to open."""
        if self.server is None:
            self.server = WebServer(app, self.data_dir, self.config.sip.listen_address)
        return await self.server.start(self.web)

    async def stop_phone(self, timeout: float = 2.0) -> None:
        """Stop the Phone (unregister, hang up) if it runs."""
        phone, self.phone = self.phone, None
        if phone is not None:
            await phone.stop(timeout)

    async def shutdown(self) -> None:
        """Stop the web server, a running packet capture and the phone; close the history."""
        if self.server is not None:
            await self.server.stop()
        await self.capture.close()
        await self.stop_phone(5.0)
        for task in list(self._tasks):
            task.cancel()
        self.history.close()
        self.log_buffer.detach()

    def request_stop(self, *, reboot: bool = False) -> None:
        """Ask :meth:`wait_stopped` to return (``reboot``: the process should start again)."""
        self.reboot_requested = self.reboot_requested or reboot
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` detached from the request that asked for it (kept referenced)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- configuration changes ----------------------------------------------------------------
    def config_data(self) -> dict[str, Any]:
        """The current config as a dict with secrets (to be changed and re-validated)."""
        return config_to_dict(self.config, include_secrets=True)

    async def change(self, mutate: Callable[[dict[str, Any]], None], what: str) -> str:
        """Apply ``mutate`` to a copy of the config dict, validate, apply, save; say what happened."""
        async with self._lock:
            data = self.config_data()
            mutate(data)
            try:
                new = parse_config(data, what)
            except ConfigError as exc:
                raise ApplyError(str(exc).removeprefix("configuration: ")) from None
            return await self._apply(new, what)

    async def replace(self, new: Config, what: str) -> str:
        """Apply a whole validated configuration (restore), then its web settings.

        The phone part is applied with the current web settings; a different ``[web]``
        section then goes through :meth:`change_web`, which binds the new listeners.
        """
        async with self._lock:
            message = await self._apply(new.model_copy(update={"web": self.web}), what)
        if new.web != self.web:
            url = await self.change_web(new.web)
            message += f"; the web server now listens at {url}" if url else "; web settings saved"
        return message

    async def restart_phone(self, what: str) -> str:
        """Restart the Phone with the current configuration (new certificates, trust store)."""
        async with self._lock:
            return await self._apply(self.config, what, force=True)

    async def _apply(self, new: Config, what: str, *, force: bool = False) -> str:
        old = self.config
        if not force and not needs_restart(old, new) and self.phone is not None:
            self.phone.config = new
            self.config = new
            self._save(what)
            return f"{what}: saved and applied at once"
        await self.stop_phone()
        self.config = new
        try:
            await self.start_phone()
        except (PhoneError, OSError) as exc:
            await self._roll_back(old)
            raise ApplyError(f"{what}: not applied, the phone could not start: {exc}") from None
        self._save(what)
        return f"{what}: saved and applied (the phone restarted and registers again)"

    async def _roll_back(self, old: Config) -> None:
        self.config = old
        try:
            await self.start_phone()
        except (PhoneError, OSError) as exc:
            log.error("the previous configuration does not start either: %s", exc)

    def _save(self, what: str) -> None:
        try:
            save_config(self.config, self.config_path)
        except OSError as exc:
            log.error("cannot save the configuration to %s: %s", self.config_path, exc)
            raise ApplyError(
                f"{what}: applied but NOT saved to {self.config_path}: {exc}"
            ) from None
        log.info("configuration changed (%s) and saved to %s", what, self.config_path)

    async def change_web(self, web: WebSettings) -> str:
        """Bind the new web listeners (errors here change nothing), save, then switch over.

        The switch runs detached from the calling request: the old server finishes the
        response that announces the new URL before it closes.
        """
        if self.server is None:
            self.web = web
            self._save("web server")
            return ""
        try:
            pending = self.server.prepare(web)
        except OSError as exc:
            raise ApplyError(f"web: not applied: {exc}") from None
        old, self.web = self.web, web
        try:
            self._save("web server")
        except ApplyError:
            self.web = old
            pending.close()
            raise
        self.spawn(self.server.switch(pending))
        return str(pending.url)
