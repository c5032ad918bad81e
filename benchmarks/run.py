"""`make bench`: run every benchmark and print its table."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def arguments(name: str) -> list[str]:
    """Each benchmark's own knobs: call levels for calls.py, rounds for zrtp.py."""
    if name == "calls.py":
        return os.environ.get("BENCH_LEVELS", "").split()
    if name == "zrtp.py":
        return [os.environ.get("BENCH_ZRTP_ROUNDS", "20")]
    return []


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    # each benchmark with its own arguments (arguments()): call levels, ZRTP rounds
    for name in (
        "startup.py",
        "web.py",
        "onecall.py",
        "mediapath.py",
        "calls.py",
        "options_flood.py",
        "zrtp.py",
        "dtls.py",
        "call_setup.py",
        "sipp_setup.py",
        "codecs.py",
        "hd_voice.py",
        "parser.py",
    ):
        print(f"== {name} ==", flush=True)
        sys.argv = [str(HERE / name), *arguments(name)]
        runpy.run_path(str(HERE / name), run_name="__main__")
        print(flush=True)
