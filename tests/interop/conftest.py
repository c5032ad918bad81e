"""Fixtures for interop tests that need a real Kamailio registrar/proxy on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from .audio_tools import make_speech_wav
from .baresip import Baresip
from .baresip import missing_tools as baresip_missing
from .kamailio import Kamailio, missing_tools
from .linphone import Linphonec
from .linphone import missing_tools as linphone_missing
from .pki_tools import Pki, make_pki

KamailioFactory = Callable[..., Kamailio]
BaresipFactory = Callable[..., Baresip]
LinphonecFactory = Callable[..., Linphonec]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/interop with the ``interop`` marker."""
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.interop)


def require_kamailio() -> None:
    """Skip the calling test when Kamailio or its tools are not installed."""
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"Kamailio interop: {', '.join(missing)} not found "
            "(apt-get install -y kamailio kamailio-tls-modules)"
        )


class _Peer(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


P = TypeVar("P", bound=_Peer)


def _peers(make: Callable[..., P], workdir: Path, name: str) -> Iterator[Callable[..., P]]:
    """Start far-end programs on demand, each in its own folder; stop every one at teardown.

    Every started program is stopped (by PID, see :class:`tests.helpers.PeerProcess`) even when
    stopping another one fails; the first failure is raised afterwards.
    """
    started: list[P] = []
    counter = itertools.count()

    def factory(**kwargs: Any) -> P:
        peer = make(workdir / f"{name}-{next(counter)}", **kwargs)
        started.append(peer)
        peer.start()
        return peer

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for peer in reversed(started):
            try:
                peer.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[KamailioFactory]:
    """Start Kamailio instances on demand; every one is stopped (by PID) at teardown.

    Call it like ``kam = kamailio_factory(users={"alice": "pw"}, tls=TlsConfig(...))``;
    keyword arguments go to :class:`kamailio.Kamailio`.  Skips if Kamailio is missing.
    """
    require_kamailio()
    yield from _peers(Kamailio, tmp_path, "kamailio")


@pytest.fixture
def baresip_factory(tmp_path: Path) -> Iterator[BaresipFactory]:
    missing = baresip_missing()
    if missing:
        pytest.skip(
            f"baresip interop: {', '.join(missing)} not found (apt-get install baresip-core)"
        )
    yield from _peers(Baresip, tmp_path, "baresip")


@pytest.fixture
def linphonec_factory(tmp_path: Path) -> Iterator[LinphonecFactory]:
    """linphonec instances on demand; every one is stopped (by PID) at teardown."""
    missing = linphone_missing()
    if missing:
        pytest.skip(
            f"linphonec interop: {', '.join(missing)} not found (apt-get install linphone-cli)"
        )
    yield from _peers(Linphonec, tmp_path, "linphonec")


@pytest.fixture
def speech(tmp_path: Path) -> tuple[Path, Path]:
    ours = make_speech_wav(tmp_path / "ours.wav", "Securephone speaking, testing one two three.")
    theirs = make_speech_wav(tmp_path / "theirs.wav", "Baresip here, reading another sentence.")
    return ours, theirs


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A fresh CA, server certificate (localhost, 127.0.0.1) and alice's device certificate."""
    return make_pki(tmp_path)
