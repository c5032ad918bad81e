"""Start-up time and memory of the ``securephone`` command.

For each source tree (this one, and the ``BENCH_BASELINE`` git revision when set): the wall
time of ``securephone --help`` over repeated runs (mean, min, max, like hyperfine), how many
modules it imported, and the peak RSS of ``answer`` and ``call`` processes carrying one
3-second SRTP call over loopback (read from the kernel's rusage of each child, so nothing is
sampled). A second table gives the floor under those figures: the peak RSS of a bare Python,
and of one that imports only the libraries a call needs by docs/DESIGN's dependency table
(asyncio, ssl, numpy, cryptography's X.509 and primitives, pydantic, pylibsrtp) and nothing of
securephone. Printed, never asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import free_port_in, print_table, source_trees

RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "10"))
CONFIG = """[media]
srtp = "mandatory"
allow_sdes_over_plaintext = true
port_min = {port_min}
port_max = {port_max}
"""


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def help_times(src: Path) -> list[float]:
    """Wall seconds of ``python -m securephone.cli --help``, RUNS times (one warm-up first)."""
    times = []
    for i in range(RUNS + 1):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "securephone.cli", "--help"],
            env=_env(src), stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        if i:
            times.append(time.perf_counter() - start)
    return times


def help_modules(src: Path) -> int:
    """How many modules ``--help`` leaves in ``sys.modules``."""
    code = (
        "import sys, runpy\nsys.argv=['securephone','--help']\n"
        "try: runpy.run_module('securephone.cli', run_name='__main__')\n"
        "except SystemExit: pass\nprint(len(sys.modules), file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(src), capture_output=True, text=True, check=True
    )
    return int(out.stderr.strip().splitlines()[-1])


def _wait_rss(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for ``proc``; its peak RSS in MB (``ru_maxrss`` is kB on Linux), nan if it failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss / 1024 if proc.returncode == 0 else float("nan")
        time.sleep(0.05)
    proc.kill()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return float("nan")


def call_rss(src: Path) -> tuple[float, float]:
    """Peak RSS (MB) of ``answer`` and of ``call`` for one 3 s SRTP call with a tone."""
    port = free_port_in(25000, 25099, 0)
    base = 25100 + (port - 25000) * 8
    files = []
    for side, first in (("answer", base), ("call", base + 4)):
        fd, name = tempfile.mkstemp(suffix=f"-{side}.toml")
        with os.fdopen(fd, "w") as handle:
            handle.write(CONFIG.format(port_min=first, port_max=first + 3))
        files.append(name)
    try:
        answer = subprocess.Popen(
            [sys.executable, "-m", "securephone.cli", "answer", "--config", files[0],
             "--listen", f"127.0.0.1:{port}", "--play", "tone:300"],
            env=_env(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.5)  # the answering side binds its SIP port
        call = subprocess.Popen(
            [sys.executable, "-m", "securephone.cli", "call", f"sip:bench@127.0.0.1:{port}",
             "--config", files[1], "--listen", "127.0.0.1:0", "--play", "tone:440",
             "--duration", "3", "--ring-timeout", "10"],
            env=_env(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        call_mb = _wait_rss(call, 30)
        answer_mb = _wait_rss(answer, 15)
        return answer_mb, call_mb
    finally:
        for name in files:
            Path(name).unlink(missing_ok=True)


# what a call process imports of the dependency table, nothing of ours, library by library
FLOOR = (
    ("bare python", ""),
    ("+ asyncio, ssl", "import asyncio, ssl"),
    ("+ numpy", "import numpy"),
    ("+ cryptography (X.509, ciphers, EC/DH)", "import cryptography.x509, "
     "cryptography.hazmat.primitives.ciphers, cryptography.hazmat.primitives.asymmetric.ec, "
     "cryptography.hazmat.primitives.asymmetric.dh"),
    ("+ pydantic", "import pydantic"),
    ("+ pylibsrtp", "import pylibsrtp"),
    # pydantic builds its schema machinery with the first model: what any model costs
    ("+ one two-field pydantic model, validated", "class M(pydantic.BaseModel):\n    a: int = 1\n"
     "    b: list[str] = []\nM.model_validate({'a': 2})"),
)  # fmt: skip


def floor_rss() -> list[list[object]]:
    """Peak RSS (MB) of a Python importing the FLOOR libraries cumulatively, one process each."""
    rows: list[list[object]] = []
    code = ""
    for label, line in FLOOR:
        code += line + "\n"
        probe = code + "import resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        rows.append([label, int(out.stdout) / 1024 if out.returncode == 0 else float("nan")])
    return rows


def main() -> None:
    print_table(
        "The floor: peak RSS of a Python importing only the libraries a call needs",
        ["imports (cumulative)", "peak RSS MB"],
        floor_rss(),
    )
    rows = []
    for label, src in source_trees():
        times = help_times(src)
        answer_mb, call_mb = call_rss(src)
        rows.append(
            [
                label,
                statistics.mean(times),
                min(times),
                max(times),
                help_modules(src),
                answer_mb,
                call_mb,
            ]
        )
    print_table(
        f"securephone start-up ({RUNS} runs of --help; peak RSS of one 3 s SRTP call per side)",
        ["tree", "--help mean s", "min s", "max s", "modules", "answer RSS MB", "call RSS MB"],
        rows,
    )


if __name__ == "__main__":
    main()
