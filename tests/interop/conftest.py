"""Fixtures for interop tests that need a real Kamailio registrar/proxy on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .kamailio import Kamailio, missing_tools

KamailioFactory = Callable[..., Kamailio]

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


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[KamailioFactory]:
    """Start Kamailio instances on demand; every one is stopped (by PID) at teardown.

    Call it like ``kam = kamailio_factory(users={"alice": "pw"}, tls=TlsConfig(...))``;
    keyword arguments go to :class:`kamailio.Kamailio`.  Skips if Kamailio is missing.
    """
    require_kamailio()
    started: list[Kamailio] = []
    counter = itertools.count()

    def factory(**kwargs: Any) -> Kamailio:
        kam = Kamailio(tmp_path / f"kamailio-{next(counter)}", **kwargs)
        started.append(kam)
        kam.start()
        return kam

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for kam in reversed(started):
            try:
                kam.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
