"""HTML forms made from the pydantic config models, and posted forms turned back into dicts.

A field's input follows its type: bool → checkbox, Literal → select, list of Literal →
checkboxes, int/float → number, secret → password (never filled in), anything else → text.
A list whose order is a preference (``ORDERED``: the codecs) → checkboxes each with a position
number (``<name>.order.<choice>``): ticked choices are kept in the order of their numbers, so
the list is re-ordered by typing numbers, with no JavaScript.
The posted values go through the same model validation as the API, so both give the same
errors naming the same fields.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, SecretStr
from starlette.datastructures import FormData

HELP: dict[str, str] = {
    "register": "register this account at start",
    "password": "write-only: leave empty to keep the stored password",
    "transport": "udp, tcp or tls (tls: SIP over TLS, sips: URIs)",
    "registrar": "e.g. sip:pbx.example.com:5061;transport=tls (default: the domain)",
    "expires": "60 to 86400 seconds",
    "verify_server": "check the server certificate and its name (RFC 5922)",
    "min_version": "TLS 1.0/1.1 are obsolete (RFC 8996)",
    "certificate": "device certificate for mutual TLS (file in the data directory)",
    "ca_file": "default: sips.pem from the certificates page",
    "keylog_file": "writes TLS session keys for Wireshark: leave empty",
    "type": "HTTPS is strongly recommended",
    "port": "empty: 443/80 (8443/8080 when not running as root)",
    "http_redirect_port": "with HTTPS: plain HTTP on this port redirects to HTTPS",
    "listen_address": "an IP address; empty: the SIP listen address",
    "server_name": "the host name browsers use; the HTTP redirect goes there (empty: the address)",
    "srtp": "off, optional or mandatory (mandatory never falls back to plain RTP)",
    "srtp_suites": "SRTP crypto suites offered (RFC 4568, RFC 7714)",
    "allow_sdes_over_plaintext": "labs only: SDES keys would cross UDP/TCP in clear",
    "codecs": "tick the codecs to offer; the numbers set the preference (1 = first)",
    "outbound_proxies": "RFC 5626 edge proxies, comma-separated (sip:edge1.example.org, ...); needs outbound",
    "opus_bitrate": "the most we ask a peer to send with Opus, 6000 to 510000 bit/s",
}
ORDERED = frozenset({"codecs"})  # list fields whose order is a preference
ORDER_MARK = ".order."


@dataclass(frozen=True)
class FieldSpec:
    """One input of a form."""

    name: str
    label: str
    kind: str  # text, number, checkbox, select, multi, ordered, password
    value: Any
    choices: tuple[str, ...] = ()
    help: str = ""
    optional: bool = False


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), optional
    return annotation, False


def _literal_choices(annotation: Any) -> tuple[str, ...]:
    if typing.get_origin(annotation) is Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return ()


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    base = typing.get_origin(annotation)
    if annotation is SecretStr:
        return "password", ()
    if annotation is bool:
        return "checkbox", ()
    if _literal_choices(annotation):
        return "select", _literal_choices(annotation)
    if base is list:
        inner = typing.get_args(annotation)[0] if typing.get_args(annotation) else str
        choices = _literal_choices(inner)
        return ("multi", choices) if choices else ("list", ())
    if annotation in (int, float):
        return "number", ()
    return "text", ()


def _field_info(model: type[BaseModel]) -> list[tuple[str, Any, bool]]:
    out = []
    for name, info in model.model_fields.items():
        annotation, optional = _strip_optional(info.annotation)
        out.append((info.alias or name, annotation, optional))
    return out


def specs(
    model: type[BaseModel], values: dict[str, Any], exclude: tuple[str, ...] = ()
) -> list[FieldSpec]:
    """Inputs for every field of ``model`` filled from ``values`` (secrets never filled)."""
    fields = []
    for name, annotation, optional in _field_info(model):
        if name in exclude:
            continue
        kind, choices = _kind(annotation)
        value = None if kind == "password" else values.get(name)
        if kind == "multi" and name in ORDERED:
            kind, choices = "ordered", _current_first(choices, value)
        label = name.replace("_", " ")
        fields.append(FieldSpec(name, label, kind, value, choices, HELP.get(name, ""), optional))
    return fields


def _current_first(choices: tuple[str, ...], value: Any) -> tuple[str, ...]:
    """The chosen values in their order, then the others (how an ordered list is shown)."""
    chosen = [c for c in (value or []) if c in choices]
    return (*chosen, *(c for c in choices if c not in chosen))


def defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The default of every optional field (a new, empty form), by alias."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            value = info.get_default(call_default_factory=True)
            out[info.alias or name] = (
                value.get_secret_value() if isinstance(value, SecretStr) else value
            )
    return out


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse(model: type[BaseModel], form: FormData, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dict for ``model.model_validate`` from a posted form (password fields left out)."""
    data: dict[str, Any] = {}
    for name, annotation, optional in _field_info(model):
        if name in exclude:
            continue
        kind, _ = _kind(annotation)
        if kind == "password":
            continue
        if kind == "checkbox":
            data[name] = name in form
        elif kind == "multi":
            chosen = [v for v in form.getlist(name) if isinstance(v, str)]
            if name in ORDERED:
                chosen = _by_position(form, name, chosen)
            data[name] = None if not chosen and optional else chosen  # none ticked: the default
        elif kind == "list" and name in form:  # free values, one per comma
            data[name] = [v.strip() for v in _text(form, name).split(",") if v.strip()]
        elif name in form:  # a field left out entirely keeps the model's default
            text = _text(form, name)
            data[name] = None if text == "" and optional else text
    return data


def _by_position(form: FormData, name: str, chosen: list[str]) -> list[str]:
    """Ticked values sorted by their position numbers; a missing or unreadable number sorts
    last, and equal numbers keep the order the form listed them in."""

    def position(value: str) -> float:
        text = _text(form, f"{name}{ORDER_MARK}{value}")
        try:
            return float(text)
        except ValueError:
            return float("inf")

    return sorted(chosen, key=position)
