"""uvicorn inside the phone's own event loop: HTTPS (default) or HTTP, an optional HTTP listener
that redirects to HTTPS, the generated self-signed certificate, and restart in place.

No second event loop and no thread: each listener is a ``uvicorn.Server.serve()`` task on the
running loop. A restart binds the new socket first (so a busy or privileged port is reported
while the old server keeps running), then stops the old listeners and starts the new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from securephone.aio.netaddr import dual_stack_options
from securephone.pki.certs import (
    CertError,
    CertInfo,
    create_self_signed,
    inspect_pem,
    load_cert_and_key,
    write_secret_file,
)
from securephone.store.config import WebSettings
from securephone.web.certstore import SELF_SIGNED_NAME
from securephone.web.connections import ConnectionGuard, ConnectionLimits, GuardedH11
from securephone.web.settings import default_port, is_root, resolved_port

log = logging.getLogger("securephone.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SELF_SIGNED_DAYS = 365
RENEW_BEFORE = timedelta(days=30)
WEB_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the phone owns SIGINT/SIGTERM), its
    connections behind a :class:`ConnectionGuard`."""

    def __init__(self, config: uvicorn.Config, guard: ConnectionGuard) -> None:
        super().__init__(config)
        self.guard = guard

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.guard.close_pending()  # uvicorn does not know the connections still in handshake
        await super().shutdown(sockets)


@dataclass(frozen=True)
class WebCertificate:
    """The certificate the HTTPS server presents."""

    path: Path
    info: CertInfo
    generated: bool

    @property
    def fingerprint(self) -> str:
        return self.info.sha256_fingerprint


def _host_names(address: str) -> tuple[list[str], list[str]]:
    dns = ["localhost"]
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        dns.append(hostname.lower())
    ips = ["127.0.0.1", "::1"]
    with contextlib.suppress(ValueError):
        if not ipaddress.ip_address(address).is_unspecified and address not in ips:
            ips.append(address)
    return dns, ips


def _usable(path: Path, address: str) -> CertInfo | None:
    """The info of a generated certificate that is still good for ``address``, else None."""
    try:
        info = inspect_pem(path.read_bytes())[0]
    except (OSError, CertError, IndexError):
        return None
    if info.not_after - datetime.now(UTC) < RENEW_BEFORE:
        return None
    _, ips = _host_names(address)
    return info if set(ips) <= set(info.san_ips) else None


def web_certificate(data_dir: Path, address: str) -> WebCertificate:
    """The imported ``https.pem``, else a self-signed ECDSA certificate made on first start."""
    imported = data_dir / "https.pem"
    if imported.exists():
        try:
            load_cert_and_key(imported.read_bytes())
            return WebCertificate(imported, inspect_pem(imported.read_bytes())[0], False)
        except (OSError, CertError) as exc:
            log.error("https.pem cannot be used (%s); using the self-signed certificate", exc)
    path = data_dir / SELF_SIGNED_NAME
    info = _usable(path, address)
    if info is None:
        dns, ips = _host_names(address)
        cn = dns[-1] if len(dns[-1]) <= 64 else "securephone"
        issued = create_self_signed(cn, dns=dns, ips=ips, key_type="ec", days=SELF_SIGNED_DAYS)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(path, issued.combined_pem())
        info = inspect_pem(issued.cert_pem)[0]
        log.info("generated a self-signed ECDSA certificate for the web server: %s", path)
    return WebCertificate(path, info, True)


def ssl_context(cert: WebCertificate) -> ssl.SSLContext:
    """TLS 1.2 or newer, forward-secret AEAD ciphers only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(WEB_CIPHERS)
    ctx.load_cert_chain(str(cert.path))
    return ctx


def bind(address: str, port: int) -> socket.socket:
    """A bound TCP socket; OSError with a message a user can act on."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # Protocol IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listener says TCP, and without it each response on a kept-alive connection waits ~40 ms
    # for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        dual_stack_options(sock, address)  # "::" takes IPv4 too, whatever the system default
        sock.bind((address, port))
    except PermissionError:
        sock.close()
        raise OSError(
            f"cannot listen on {address}:{port}: permission denied (ports below 1024 need root)"
        ) from None
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _url(scheme: str, address: str, port: int) -> str:
    host = "localhost" if ipaddress.ip_address(address).is_unspecified else address
    host = f"[{host}]" if ":" in host else host
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    return f"{scheme}://{host}/" if default else f"{scheme}://{host}:{port}/"


def redirect_app(https_port: int, host: str | None) -> ASGIApp:
    """An ASGI app that sends every HTTP request to HTTPS (308, RFC 9110 §15.4.9).

    The target host is ``host`` (the configured server name or listen address); only when the
    server listens on every address is it the local address the connection arrived at. The
    request's Host header is never used, so the Location cannot be pointed elsewhere. Path and
    query string are kept as sent (h11 has checked the request target).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        target = host or (str(scope["server"][0]) if scope.get("server") else "localhost")
        target = f"[{target}]" if ":" in target else target
        port = "" if https_port == 443 else f":{https_port}"
        path = bytes(scope.get("raw_path") or b"/").decode("latin-1")
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        location = f"https://{target}{port}{path}" + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    return app


def redirect_host(settings: WebSettings, address: str) -> str | None:
    """Where the HTTP redirect points: the server name, else the listen address (None: any)."""
    if settings.server_name:
        return settings.server_name
    return None if ipaddress.ip_address(address).is_unspecified else address


@dataclass
class _Listener:
    server: _EmbeddedServer
    sock: socket.socket
    task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])


@dataclass
class Pending:
    """Listeners bound but not started yet (the result of :meth:`WebServer.prepare`)."""

    settings: WebSettings
    main: _Listener
    redirect: _Listener | None
    url: str
    certificate: WebCertificate | None

    def close(self) -> None:
        """Give the bound sockets back (the change was abandoned)."""
        for listener in (self.main, self.redirect):
            if listener is not None:
                listener.sock.close()


class WebServer:
    """The web management server of one phone (uvicorn tasks on the running loop)."""

    def __init__(
        self,
        app: ASGIApp,
        data_dir: Path,
        default_address: str,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.app = app
        self.limits = limits or ConnectionLimits()
        self.data_dir = data_dir
        self.default_address = default_address
        self.url = ""
        self.certificate: WebCertificate | None = None
        self._main: _Listener | None = None
        self._redirect: _Listener | None = None

    @property
    def main_guard(self) -> ConnectionGuard:
        """The connection guard of the main listener (its limits and counts)."""
        if self._main is None:
            raise RuntimeError("the web server is not running")
        return self._main.server.guard

    def _listener(
        self, app: ASGIApp, sock: socket.socket, cert: WebCertificate | None
    ) -> _Listener:
        config = uvicorn.Config(
            app,
            log_config=None,
            lifespan="off",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            http="h11",
            ws="none",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=3,
            limit_concurrency=None,  # the guard limits connections (uvicorn would answer 503)
        )
        config.load()
        guard = ConnectionGuard(self.limits)
        tls = ssl_context(cert) if cert is not None else None  # TLS is done by GuardedH11
        config.http_protocol_class = functools.partial(GuardedH11, guard=guard, tls=tls)  # type: ignore[assignment]
        return _Listener(_EmbeddedServer(config, guard), sock)

    def _socket_for(self, address: str, port: int, current: _Listener | None) -> socket.socket:
        """A new bound socket, or a duplicate of the current one when nothing moves.

        Port 0 ("any free port") keeps the port the listener already has.
        """
        if current is not None and port == 0 and current.address[0] == address:
            return current.sock.dup()
        for listener in (self._main, self._redirect):
            if listener is not None and listener.address == (address, port):
                return listener.sock.dup()
        return bind(address, port)

    def prepare(self, settings: WebSettings) -> Pending:
        """Bind the sockets for ``settings`` and build the servers; OSError when impossible."""
        address = settings.listen_address or self.default_address
        port = resolved_port(settings)
        if settings.port is None and not is_root():
            log.info(
                "not running as root: the web server uses port %d instead of %d",
                port,
                default_port(settings.type, root=True),
            )
        cert = web_certificate(self.data_dir, address) if settings.type == "https" else None
        sock = self._socket_for(address, port, self._main)
        main = self._listener(self.app, sock, cert)
        actual = main.address[1]
        redirect = None
        if settings.http_redirect_port is not None:
            try:
                rsock = self._socket_for(address, settings.http_redirect_port, self._redirect)
            except OSError:
                sock.close()
                raise
            redirect = self._listener(
                redirect_app(actual, redirect_host(settings, address)), rsock, None
            )
        return Pending(settings, main, redirect, _url(settings.type, address, actual), cert)

    async def start(self, settings: WebSettings) -> str:
        """Start serving; the URL the user should open."""
        self._activate(self.prepare(settings))
        return self.url

    def _activate(self, pending: Pending) -> None:
        self._main, self._redirect = pending.main, pending.redirect
        self.url, self.certificate = pending.url, pending.certificate
        for listener in (pending.main, pending.redirect):
            if listener is not None:
                listener.task = asyncio.get_running_loop().create_task(
                    listener.server.serve(sockets=[listener.sock])
                )
        self._announce(pending)

    def _announce(self, pending: Pending) -> None:
        log.info("web management interface at %s", pending.url)
        cert = pending.certificate
        if cert is None:
            log.warning("the web interface uses plain HTTP: logins and settings are not encrypted")
            return
        kind = "self-signed" if cert.generated else "imported"
        log.info("web certificate (%s) SHA-256 fingerprint %s", kind, cert.fingerprint)
        if pending.redirect is not None:
            log.info("plain HTTP on port %d redirects to HTTPS", pending.redirect.address[1])

    async def restart(self, settings: WebSettings) -> str:
        """Bind the new listeners, then stop the old ones and start the new; the new URL."""
        pending = self.prepare(settings)
        await self.switch(pending)
        return self.url

    async def switch(self, pending: Pending) -> None:
        """Start the ``pending`` listeners, then stop the ones they replace."""
        old = [x for x in (self._main, self._redirect) if x is not None]
        self._activate(pending)
        await self._stop(old)

    async def stop(self) -> None:
        """Stop every listener (in-flight responses are finished first)."""
        listeners = [x for x in (self._main, self._redirect) if x is not None]
        self._main = self._redirect = None
        await self._stop(listeners)

    @staticmethod
    async def _stop(listeners: list[_Listener]) -> None:
        for listener in listeners:
            listener.server.should_exit = True
        for listener in listeners:
            if listener.task is not None:
                with contextlib.suppress(Exception):
                    await listener.task
