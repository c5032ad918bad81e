"""``securephone --help`` loads only the command line, not the phone, the web or the pictures.

Which modules a command imports decides its start-up time and memory (docs/performance.md);
this checks *which* modules are loaded, never how long anything takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
HEAVY = ("matplotlib", "fastapi", "uvicorn", "starlette", "numpy", "PIL", "pydantic")
PHONE = ("securephone.web", "securephone.aio", "securephone.run", "securephone.media")

PROBE = """
import json, runpy, sys
sys.argv = ["securephone", *sys.argv[1:]]
try:
    runpy.run_module("securephone.cli", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage" in result.stdout
    return list(json.loads(result.stderr.strip().splitlines()[-1]))


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_help_imports_no_heavy_library_and_no_phone() -> None:
    modules = _modules("--help")
    assert "typer" in modules
    assert _loaded(modules, HEAVY) == []
    assert _loaded(modules, PHONE) == []


def test_subcommand_help_stays_lean() -> None:
    # typer itself loads pydantic to convert a command's parameters, so it is allowed here.
    heavy = tuple(h for h in HEAVY if h != "pydantic")
    for command in ("call", "verify", "run"):
        modules = _modules(command, "--help")
        assert _loaded(modules, heavy) == [], command
        assert _loaded(modules, PHONE) == [], command


CALL_PATH_PROBE = """
import json, sys
import securephone.cli
from securephone.aio.runner import answer_calls, place_call
print(json.dumps(sorted(sys.modules)))
"""


def test_call_path_loads_no_capture_and_no_dns_library() -> None:
    # ``call``/``answer`` import the command line and the runner: dpkt (packet capture) and
    # dnspython load only when capturing or on the first DNS query (docs/performance.md).
    result = subprocess.run(
        [sys.executable, "-c", CALL_PATH_PROBE],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = list(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "securephone.aio.phone" in modules
    assert _loaded(modules, ("dpkt", "dns", "securephone.capture.backends")) == []
    # pyOpenSSL and the DTLS engine load only when a call chooses DTLS-SRTP
    assert _loaded(modules, ("OpenSSL", "securephone.media.dtls.engine")) == []
