"""`securephone cert`: create a local CA, issue server/device certificates, inspect PEM files.

Files use the desk-phone names: ``ca.pem`` + ``ca.key`` (0600) and ``sips.pem`` (the CA
certificate a phone imports as its SIP-over-TLS trust), ``server.pem`` / ``device.pem``
(certificate, CA certificate and key in one file, 0600), ``https.pem`` (web server
certificate and key, 0600). Every error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from securephone.pki.certs import (
    CertError,
    CertInfo,
    Issued,
    KeyInfo,
    KeyType,
    create_ca,
    create_self_signed,
    inspect_keys,
    inspect_pem,
    issue_certificate,
    load_cert_and_key,
    warnings_for,
    write_public_file,
    write_secret_file,
)

app = typer.Typer(
    help="Create and inspect certificates: a local CA, SIP server and device certificates, "
    "https.pem.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Kind(StrEnum):
    """What an issued certificate is for (its ExtendedKeyUsage)."""

    server = "server"
    client = "client"


_DEFAULT_OUT = {Kind.server: Path("server.pem"), Kind.client: Path("device.pem")}

RsaOption = Annotated[
    int | None,
    typer.Option(
        "--rsa", metavar="BITS", help="RSA key of BITS (2048, 3072, 4096); default EC P-256"
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="overwrite existing files")]
DnsOption = Annotated[list[str] | None, typer.Option("--dns", help="DNS subjectAltName (repeat)")]
IpOption = Annotated[list[str] | None, typer.Option("--ip", help="IP subjectAltName (repeat)")]


@contextmanager
def _errors(about: str = "") -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 1 (no traceback).

    ``about`` (a file name) prefixes certificate errors so the user knows which file is bad.
    """
    try:
        yield
    except CertError as exc:
        prefix = f"{about}: " if about else ""
        typer.echo(f"error: {prefix}{exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def _key_choice(rsa_bits: int | None) -> tuple[KeyType, int]:
    return ("rsa", rsa_bits) if rsa_bits is not None else ("ec", 3072)


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    existing = [str(path) for path in paths if path.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise CertError(f"{', '.join(existing)} already {verb}; use --force to overwrite")


def _read(path: Path) -> bytes:
    return path.read_bytes()


@app.command("ca")
def ca_command(
    out: Annotated[Path, typer.Option("--out", help="directory for ca.pem, ca.key, sips.pem")],
    cn: Annotated[str, typer.Option("--cn", help="CA common name")] = "securephone local CA",
    rsa_bits: RsaOption = None,
    days: Annotated[int, typer.Option("--days", help="validity in days")] = 3650,
    force: ForceOption = False,
) -> None:
    """Create a CA: DIR/ca.pem, DIR/ca.key (0600) and DIR/sips.pem (what phones import)."""
    with _errors():
        paths = [out / "ca.pem", out / "ca.key", out / "sips.pem"]
        _refuse_overwrite(paths, force)
        key_type, bits = _key_choice(rsa_bits)
        ca = create_ca(cn, key_type=key_type, rsa_bits=bits, days=days)
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(paths[1], ca.key_pem)
        write_public_file(paths[0], ca.cert_pem)
        write_public_file(paths[2], ca.cert_pem)
    typer.echo(f"CA certificate: {paths[0]}")
    typer.echo(f"CA private key: {paths[1]} (mode 0600, keep it secret)")
    typer.echo(f"trust bundle for phones (SIP over TLS): {paths[2]}")
    typer.echo(f"SHA-256 fingerprint: {inspect_pem(ca.cert_pem)[0].sha256_fingerprint}")


def _load_ca_dir(ca_dir: Path) -> Issued:
    """Read DIR/ca.pem and DIR/ca.key; a broken pair is reported against those files."""
    hint = f"(create one with: securephone cert ca --out {ca_dir})"
    cert_path, key_path = ca_dir / "ca.pem", ca_dir / "ca.key"
    for path in (cert_path, key_path):
        if not path.is_file():
            raise CertError(f"{path} not found {hint}")
    ca = Issued(cert_pem=_read(cert_path), key_pem=_read(key_path))
    with _errors(f"{cert_path} + {key_path}"):
        load_cert_and_key(ca.cert_pem, ca.key_pem)
    return ca


@app.command("issue")
def issue_command(
    ca_dir: Annotated[Path, typer.Option("--ca-dir", help="directory holding ca.pem and ca.key")],
    kind: Annotated[Kind, typer.Option("--kind", help="server (serverAuth) or client (device)")],
    cn: Annotated[str, typer.Option("--cn", help="common name")],
    dns: DnsOption = None,
    ip: IpOption = None,
    uri: Annotated[
        list[str] | None,
        typer.Option("--uri", help="URI subjectAltName, e.g. sip:alice@example.com"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="output file (default server.pem / device.pem)")
    ] = None,
    rsa_bits: RsaOption = None,
    days: Annotated[int, typer.Option("--days", help="validity in days")] = 90,
    force: ForceOption = False,
) -> None:
    """Issue a server or device certificate: one PEM with certificate, CA certificate, key."""
    target = out if out is not None else _DEFAULT_OUT[kind]
    with _errors():
        _refuse_overwrite([target], force)
        ca = _load_ca_dir(ca_dir)
        key_type, bits = _key_choice(rsa_bits)
        issued = issue_certificate(
            ca, cn, kind=kind.value, dns=dns or [], ips=ip or [], uris=uri or [],
            key_type=key_type, rsa_bits=bits, days=days,
        )  # fmt: skip
        write_secret_file(target, issued.combined_pem())
    typer.echo(f"{kind.value} certificate, CA certificate and key: {target} (mode 0600)")
    typer.echo(f"SHA-256 fingerprint: {inspect_pem(issued.cert_pem)[0].sha256_fingerprint}")


@app.command("self-signed")
def self_signed_command(
    out: Annotated[Path, typer.Option("--out", help="output file")] = Path("https.pem"),
    cn: Annotated[str, typer.Option("--cn", help="common name")] = "localhost",
    dns: DnsOption = None,
    ip: IpOption = None,
    rsa_bits: RsaOption = None,
    days: Annotated[int, typer.Option("--days", help="validity in days")] = 365,
    force: ForceOption = False,
) -> None:
    """Create a self-signed web server certificate + key in one file (https.pem, 0600)."""
    with _errors():
        _refuse_overwrite([out], force)
        key_type, bits = _key_choice(rsa_bits)
        issued = create_self_signed(
            cn, dns=dns or [], ips=ip or [], key_type=key_type, rsa_bits=bits, days=days
        )
        write_secret_file(out, issued.combined_pem())
    typer.echo(f"self-signed certificate and key: {out} (mode 0600)")
    typer.echo(f"SHA-256 fingerprint: {inspect_pem(issued.cert_pem)[0].sha256_fingerprint}")


@app.command("show")
def show_command(
    file: Annotated[Path, typer.Argument(help="PEM (or DER) file to inspect")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show each certificate in FILE, then warnings; private keys are never printed."""
    with _errors(str(file)):
        data = _read(file)
        infos = inspect_pem(data)
        keys = inspect_keys(data)
    notes = _file_warnings(file, keys)
    if as_json:
        typer.echo(json.dumps(_show_json(file, infos, keys, notes), indent=2))
        return
    _show_text(infos, keys, notes)


def _file_warnings(path: Path, keys: list[KeyInfo]) -> list[str]:
    """A file holding a private key must not be readable by group or others."""
    mode = os.stat(path).st_mode & 0o777
    if keys and mode & 0o077:
        return [f"{path} holds a private key but has mode {mode:04o}; use chmod 600"]
    return []


def _key_text(key: KeyInfo) -> str:
    if key.encrypted:
        return "private key: present (encrypted)"
    match = (
        f"matches certificate #{key.matches + 1}"
        if key.matches is not None
        else "matches NO certificate in this file"
    )
    return f"private key: present ({key.key_type}), {match}"


def _show_json(
    path: Path, infos: list[CertInfo], keys: list[KeyInfo], notes: list[str]
) -> dict[str, Any]:
    certificates = [{**info.to_dict(), "warnings": warnings_for(info)} for info in infos]
    private_keys = [
        {
            "key_type": key.key_type,
            "key_bits": key.key_bits,
            "encrypted": key.encrypted,
            "matches_certificate": None if key.matches is None else key.matches + 1,
        }
        for key in keys
    ]
    return {
        "file": str(path),
        "certificates": certificates,
        "private_keys": private_keys,
        "warnings": notes,
    }


def _cert_table(number: int, total: int, info: CertInfo) -> Table:
    table = Table(title=f"certificate #{number} of {total}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in _rows(info):
        table.add_row(field, Text(value))
    return table


def _rows(info: CertInfo) -> list[tuple[str, str]]:
    kind = "CA" if info.is_ca else "end entity"
    signed = "self-signed" if info.self_signed else "issued"
    return [
        ("subject", info.subject),
        ("issuer", info.issuer),
        ("serial", info.serial),
        ("valid from", info.not_before.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("valid until", info.not_after.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("SAN DNS", ", ".join(info.san_dns) or "-"),
        ("SAN IP", ", ".join(info.san_ips) or "-"),
        ("SAN URI", ", ".join(info.san_uris) or "-"),
        ("key", info.key_type),
        ("signature hash", info.signature_hash or "-"),
        ("type", f"{kind}, {signed}"),
        ("extended key usage", ", ".join(info.eku) or "-"),
        ("SHA-256", info.sha256_fingerprint),
    ]


def _show_text(infos: list[CertInfo], keys: list[KeyInfo], notes: list[str]) -> None:
    console = Console(highlight=False)
    for number, info in enumerate(infos, start=1):
        console.print(_cert_table(number, len(infos), info))
        for warning in warnings_for(info):
            console.print(Text(f"  warning: {warning}", style="yellow"), soft_wrap=True)
    for key in keys:
        console.print(Text(_key_text(key)))
    if not keys:
        console.print(Text("private key: none"))
    for note in notes:
        console.print(Text(f"warning: {note}", style="yellow"), soft_wrap=True)
