"""Fixtures for the verify tests: the interop fixtures (baresip, speech) reused here."""

from __future__ import annotations

from ..interop.conftest import baresip_factory, speech

__all__ = ["baresip_factory", "speech"]
