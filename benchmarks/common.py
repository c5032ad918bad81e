"""Shared pieces of the benchmarks: source trees to compare, ports inside a range, tables."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def source_trees() -> list[tuple[str, Path]]:
    """("now", src) and, when ``BENCH_BASELINE`` names a git revision, ("REV", its src).

    The baseline is exported with ``git archive`` into a temporary directory (removed at exit),
    so "before" and "after" are measured in the same run on the same machine.
    """
    trees = []
    rev = os.environ.get("BENCH_BASELINE", "").strip()
    if rev:
        tmp = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
        atexit.register(shutil.rmtree, tmp, True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        trees.append((rev[:10], tmp / "src"))
    trees.append(("now", SRC))
    return trees


def free_port_in(first: int, last: int, kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """The first port in ``first..last`` that binds on 127.0.0.1 (UDP and TCP when asked)."""
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if kind == 0 else (kind,)
    for port in range(first, last + 1):
        try:
            for k in kinds:
                with socket.socket(socket.AF_INET, k) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {first}-{last}")


def print_table(title: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table: right-aligned columns, floats with two decimals."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(head)]
    print(title)
    line = " ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in cells:
        print(" ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print(flush=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.2f}"
    return str(value)
