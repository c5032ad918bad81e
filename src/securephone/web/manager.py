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
import tomllib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import tomli_w
from argon2 import PasswordHasher
from pydantic import BaseModel, ValidationError

from securephone.aio.phone import Phone, PhoneError
from securephone.sip.call import CallState, CallStateChanged
from securephone.sip.events import Event
from securephone.store.config import (
    Config,
    ConfigError,
    WebSettings,
    atomic_write,
    config_to_dict,
    format_validation_error,
)
from securephone.store.history import CallHistory
from securephone.store.users import LoginThrottle, UserStore
from securephone.web.auth import SessionStore
from securephone.web.capturing import CaptureControl
from securephone.web.logbuffer import RingBufferHandler
from securephone.web.server import ASGIApp, WebServer

log = logging.getLogger("securephone.web")

PhoneFactory = Callable[..., Phone]  # (config, *, trace_file=...) like Phone
HOT_MEDIA_KEYS = ("media",)


class ApplyError(Exception):
    """A change was refused or could not be applied; nothing was saved. Meant for the user."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _config_has_web() -> bool:
    return "web" in Config.model_fields


def split_web(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the ``[web]`` table from the rest (until Config has a ``web`` field)."""
    rest = dict(data)
    web = rest.pop("web", {}) if not _config_has_web() else _web_dump(rest.get("web"))
    if not isinstance(web, dict):
        raise ConfigError("web: must be a table")
    return rest, web


def _web_dump(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump()
    return dict(value) if isinstance(value, dict) else {}


def validate_config(data: dict[str, Any], source: str = "configuration") -> Config:
    """A Config from a dict; ConfigError naming the key (``accounts[0].expires: ...``)."""
    rest, _ = split_web(data)
    try:
        return Config.model_validate(rest if not _config_has_web() else data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def validate_web(data: dict[str, Any], source: str = "web") -> WebSettings:
    """WebSettings from a dict; ConfigError naming the key."""
    try:
        return WebSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_file(path: Path) -> tuple[Config, WebSettings]:
    """Read the TOML file: the phone's Config and its ``[web]`` settings."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    _, web = split_web(data)
    return validate_config(data, str(path)), validate_web(web, f"{path}: web")


def full_dict(config: Config, web: WebSettings, *, include_secrets: bool) -> dict[str, Any]:
    """The whole file as a TOML-ready dict (passwords masked unless asked for)."""
    data = config_to_dict(config, include_secrets=include_secrets)
    data["web"] = web.model_dump(exclude_none=True)
    return data


def save_file(config: Config, web: WebSettings, path: Path) -> None:
    """Write config and web settings atomically (temporary file, fsync, rename), mode 0600."""
    text = tomli_w.dumps(full_dict(config, web, include_secrets=True))
    atomic_write(path, text.encode("utf-8"), mode=0o600)


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
        self.config = config
        self._web = WebSettings()
        self.web = web if web is not None else self._web_of(config)
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
        config, web = load_file(path)
        return cls(path, config, web, **kwargs)

    @property
    def data_dir(self) -> Path:
        return self.config.data_path

    @staticmethod
    def _web_of(config: Config) -> WebSettings:
        value = getattr(config, "web", None) if _config_has_web() else None
        return WebSettings.model_validate(_web_dump(value)) if value is not None else WebSettings()

    @property
    def web(self) -> WebSettings:
        """The web server settings (kept in the Config once it has a ``web`` field)."""
        return self._web_of(self.config) if _config_has_web() else self._web

    @web.setter
    def web(self, value: WebSettings) -> None:
        if _config_has_web():
            self.config = self.config.model_copy(update={"web": value})
        self._web = value

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
                new = validate_config(data, what)
            except ConfigError as exc:
                raise ApplyError(str(exc).removeprefix("configuration: ")) from None
            return await self._apply(new, what)

    async def replace(self, new: Config, web: WebSettings, what: str) -> str:
        """Apply a whole validated configuration (restore); the web settings too."""
        async with self._lock:
            message = await self._apply(new, what)
        if web != self.web:
            url = await self.change_web(web)
            message += f"; the web server now listens at {url}"
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
            save_file(self.config, self.web, self.config_path)
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
